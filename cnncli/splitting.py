"""Train/test/validation assignment of rows, stored so evaluate can reproduce it exactly."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from cnncli.config import Config
from cnncli.errors import CnnCliError


@dataclass(frozen=True)
class TrainTestSplit:
    """Row positions (after cleaning) of each part; ``test_rows`` is empty with a test file."""

    rows: int
    train_rows: np.ndarray
    test_rows: np.ndarray
    validation_rows: np.ndarray | None
    method: str

    def to_json(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "rows": self.rows,
            "test_rows": self.test_rows.tolist(),
            "validation_rows": None if self.validation_rows is None else self.validation_rows.tolist(),
        }


def split_rows(config: Config, labels: np.ndarray, task: str, seed: int, *, has_test_file: bool) -> TrainTestSplit:
    """Split rows as the seed script does (``train_test_split``), stratified when asked.

    The validation part (``fit.validation_split``) is a random, stratified part of the training
    rows drawn with the run's seed, never the file's last rows as Keras would take.
    """
    rows = np.arange(len(labels))
    classify = task == "classification"
    if has_test_file:
        train, test, method = rows, np.arange(0), "test_file"
    else:
        stratify = labels if classify and config.split.stratify else None
        train, test = _split(rows, config.split.test_size, config.split.random_state, stratify, config, "split.stratify")
        method = "train_test_split"
    validation = None
    if config.fit.validation_split > 0:
        stratify = labels[train] if classify and config.split.stratify else None
        train, validation = _split(train, config.fit.validation_split, seed, stratify, config, "fit.validation_split")
    return TrainTestSplit(len(labels), np.sort(train), np.sort(test), None if validation is None else np.sort(validation), method)


def _split(
    rows: np.ndarray, size: float, seed: int, stratify: np.ndarray | None, config: Config, key: str
) -> tuple[np.ndarray, np.ndarray]:
    from sklearn.model_selection import train_test_split

    if stratify is not None:
        values, counts = np.unique(stratify, return_counts=True)
        if counts.min() < 2:
            rare = values[counts.argmin()]
            raise CnnCliError(
                f"class {rare!r} has only {counts.min()} row, too few to stratify",
                where=config.locate(key),
                hint="add rows of that class, remove it, or set split.stratify: false",
            )
    try:
        first, second = train_test_split(rows, test_size=size, random_state=seed, stratify=stratify)
    except ValueError as exc:
        raise CnnCliError(
            f"cannot split {len(rows)} rows: {str(exc).splitlines()[0]}",
            where=config.locate(key),
            hint="use a larger data set or a different test_size / validation_split",
        ) from exc
    return np.asarray(first), np.asarray(second)
