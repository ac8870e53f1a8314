"""Train/test/validation assignment of rows, stored so evaluate can reproduce it exactly.

Two rules:

- ``shuffle`` (in memory, the default): scikit-learn's ``train_test_split`` as the seed script
  calls it, stratified when asked. It is re-implemented here in NumPy, draw for draw, because
  importing scikit-learn costs two seconds of every ``cnncli train``; a test checks that both
  give the same rows.
- ``hash`` (streaming, or ``split.method: hash``): a row goes to the test part when a hash of its
  row number and ``split.random_state`` falls below ``test_size``. It needs no pass over the
  data, gives the same rows however the file is chunked, and is stored as the rule, not as a
  list of millions of row numbers. Classes are not stratified exactly, only in expectation.

Row numbers count data rows after cleaning (``missing: drop``), from 0.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from cnncli.data.untrusted import (
    Field,
    distinct,
    fraction,
    integer,
    items,
    mapping,
    member,
    one_of,
    optional,
    parse_json,
    positive_count,
    seed_number,
)
from cnncli.errors import CnnCliError

if TYPE_CHECKING:
    from cnncli.config.models import Config

TRAIN, TEST, VALIDATION = 0, 1, 2
#: Salt that makes the validation draw independent of the test draw.
_VALIDATION_SALT = 0x5DEECE66D


@dataclass(frozen=True)
class TrainTestSplit:
    """Row positions (after cleaning) of each part; ``test_rows`` is empty with a test file."""

    rows: int
    train_rows: np.ndarray
    test_rows: np.ndarray
    validation_rows: np.ndarray | None
    method: str
    rule: HashSplit | None = None

    def to_json(self) -> dict[str, Any]:
        if self.rule is not None:
            return {**self.rule.to_json(), "rows": self.rows}
        return {
            "method": self.method,
            "rows": self.rows,
            "test_rows": self.test_rows.tolist(),
            "validation_rows": None
            if self.validation_rows is None
            else self.validation_rows.tolist(),
        }


@dataclass(frozen=True)
class HashSplit:
    """The ``hash`` rule: which part a row number belongs to, without looking at the data.

    Args:
        test_size: fraction of rows for the test part; None when a test file is given.
        random_state: ``split.random_state``.
        validation_split: fraction of the remaining rows held out for validation.
        validation_seed: the run's seed, which draws the validation rows.
    """

    test_size: float | None
    random_state: int
    validation_split: float = 0.0
    validation_seed: int = 0

    def parts(self, row_numbers: np.ndarray) -> np.ndarray:
        """TRAIN, TEST or VALIDATION (int8) for each row number."""
        rows = np.asarray(row_numbers, dtype=np.uint64)
        part = np.zeros(len(rows), dtype=np.int8)
        if self.test_size is not None:
            part[uniform_hash(rows, self.random_state) < self.test_size] = TEST
        if self.validation_split > 0:
            held = (
                uniform_hash(rows, self.validation_seed ^ _VALIDATION_SALT) < self.validation_split
            )
            part[held & (part == TRAIN)] = VALIDATION
        return part

    def to_json(self) -> dict[str, Any]:
        return {
            "method": "hash" if self.test_size is not None else "test_file",
            "test_size": self.test_size,
            "random_state": self.random_state,
            "validation_split": self.validation_split,
            "validation_seed": self.validation_seed,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> HashSplit:
        return cls(
            data["test_size"],
            data["random_state"],
            data["validation_split"],
            data["validation_seed"],
        )


def uniform_hash(rows: np.ndarray, key: int) -> np.ndarray:
    """A float in [0, 1) per row number: SplitMix64 of (row + mixed key), top 53 bits."""
    with np.errstate(over="ignore"):
        mixed_key = _splitmix64(np.asarray([key & 0xFFFFFFFFFFFFFFFF], dtype=np.uint64))[0]
        bits = _splitmix64(rows.astype(np.uint64) + mixed_key)
    return (bits >> np.uint64(11)).astype(np.float64) * (1.0 / (1 << 53))


def _splitmix64(z: np.ndarray) -> np.ndarray:
    z = z + np.uint64(0x9E3779B97F4A7C15)
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


def split_method(config: Config, streaming: bool) -> str:
    """``shuffle`` or ``hash``: what ``split.method`` means for this run.

    Raises:
        CnnCliError: ``shuffle`` asked for while streaming (it needs every label in memory).
    """
    method = config.split.method
    if method == "shuffle" and streaming:
        raise CnnCliError(
            "split.method shuffle needs the whole file in memory, but this run streams it",
            where=config.locate("split.method"),
            hint="use split.method: hash (or auto), or set data.streaming: false",
        )
    if method == "auto":
        return "hash" if streaming else "shuffle"
    return method


def hash_rule(config: Config, seed: int, *, has_test_file: bool) -> HashSplit:
    """The config's ``hash`` rule for this run."""
    return HashSplit(
        test_size=None if has_test_file else config.split.test_size,
        random_state=config.split.random_state,
        validation_split=config.fit.validation_split,
        validation_seed=seed,
    )


def split_rows(
    config: Config, labels: np.ndarray, task: str, seed: int, *, has_test_file: bool
) -> TrainTestSplit:
    """Split rows as the seed script does (``train_test_split``), stratified when asked.

    The validation part (``fit.validation_split``) is a random, stratified part of the training
    rows drawn with the run's seed, never the file's last rows as Keras would take. With
    ``split.method: hash`` the rows are those a streaming run of the same file would pick.
    """
    rows = np.arange(len(labels))
    if split_method(config, streaming=False) == "hash":
        rule = hash_rule(config, seed, has_test_file=has_test_file)
        part = rule.parts(rows)
        validation = rows[part == VALIDATION] if config.fit.validation_split > 0 else None
        return TrainTestSplit(
            len(labels), rows[part == TRAIN], rows[part == TEST], validation, "hash", rule
        )
    classify = task == "classification"
    if has_test_file:
        train, test, method = rows, np.arange(0), "test_file"
    else:
        stratify = labels if classify and config.split.stratify else None
        train, test = _split(
            rows,
            config.split.test_size,
            config.split.random_state,
            stratify,
            config,
            "split.stratify",
        )
        method = "shuffle"  # split.method's name; evaluate still reads "train_test_split" files
    validation = None
    if config.fit.validation_split > 0:
        stratify = labels[train] if classify and config.split.stratify else None
        train, validation = _split(
            train, config.fit.validation_split, seed, stratify, config, "fit.validation_split"
        )
    return TrainTestSplit(
        len(labels),
        np.sort(train),
        np.sort(test),
        None if validation is None else np.sort(validation),
        method,
    )


def stored_test_rows(split: dict[str, Any], rows: int) -> np.ndarray:
    """The test rows a run's ``split.json`` names, for a file that has ``rows`` data rows.

    Runs written before ``shuffle`` was stored by its name say ``train_test_split``; both list
    their test rows.
    """
    if split["method"] == "hash":
        part = HashSplit.from_json(split).parts(np.arange(rows))
        return np.flatnonzero(part == TEST)
    return np.asarray(split["test_rows"], dtype=np.int64)


def read_split(text: str, file: str = "split.json") -> dict[str, Any]:
    """Read a run's ``split.json`` as untrusted input: method, row count, rows in range.

    Returns:
        The file's plain data, every field ``stored_test_rows`` and ``HashSplit`` use checked.

    Raises:
        CnnCliError: not JSON, or a field missing, of the wrong type or out of range.
    """
    top = Field(file)
    data = mapping(parse_json(text, file), top)
    method = member(data, "method", top, one_of("shuffle", "train_test_split", "hash", "test_file"))
    rows = member(data, "rows", top, positive_count)
    if method == "hash" or (method == "test_file" and "test_size" in data):
        check = fraction if method == "hash" else optional(fraction)
        test_size = member(data, "test_size", top, check)
        if method == "hash" and not test_size:
            raise top.at("test_size").refuse("a fraction above 0", test_size)
        # any integer: the hash rule takes the key modulo 2**64
        member(data, "random_state", top, lambda v, at: integer(v, at, minimum=-(2**63)))
        member(data, "validation_split", top, fraction)
        member(data, "validation_seed", top, seed_number)
        return data

    def row_numbers(value: Any, where: Field) -> list[int]:
        numbers = items(value, where, lambda v, at: integer(v, at, maximum=rows - 1))
        distinct(numbers, where)
        return numbers

    test_rows = member(data, "test_rows", top, row_numbers)
    if method != "test_file" and not test_rows:
        raise top.at("test_rows").refuse("at least one row for the test split", test_rows)
    member(data, "validation_rows", top, optional(row_numbers))
    return data


def _split(
    rows: np.ndarray, size: float, seed: int, stratify: np.ndarray | None, config: Config, key: str
) -> tuple[np.ndarray, np.ndarray]:
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
        first, second = train_test_split(rows, size, seed, stratify)
    except ValueError as exc:
        raise _cannot_split(len(rows), exc, config, key) from exc
    return first, second


def train_test_split(
    rows: np.ndarray, test_size: float, random_state: int, stratify: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's ``train_test_split(rows, test_size=, random_state=, stratify=)``.

    The same draws from the same ``RandomState`` as scikit-learn's ``ShuffleSplit`` and
    ``StratifiedShuffleSplit``, so the rows are identical.

    Raises:
        ValueError: a part would be empty or smaller than the number of classes.
    """
    n_samples = len(rows)
    n_train, n_test = part_sizes(n_samples, test_size)
    rng = np.random.RandomState(random_state)
    if stratify is None:
        permutation = rng.permutation(n_samples)
        return rows[permutation[n_test:]], rows[permutation[:n_test]]
    classes, y_indices, class_counts = np.unique(stratify, return_inverse=True, return_counts=True)
    if class_counts.min() < 2:
        raise ValueError(
            f"class {classes[class_counts.argmin()]!r} has a single row, too few to stratify"
        )
    part_sizes(n_samples, test_size, len(classes))
    class_indices = np.split(np.argsort(y_indices, kind="stable"), np.cumsum(class_counts)[:-1])
    n_i = _approximate_mode(class_counts, n_train, rng)
    t_i = _approximate_mode(class_counts - n_i, n_test, rng)
    train: list[int] = []
    test: list[int] = []
    for i in range(len(classes)):
        permuted = class_indices[i].take(rng.permutation(class_counts[i]), mode="clip")
        train.extend(permuted[: n_i[i]])
        test.extend(permuted[n_i[i] : n_i[i] + t_i[i]])
    return rows[rng.permutation(train)], rows[rng.permutation(test)]


def part_sizes(n_samples: int, test_size: float, classes: int = 0) -> tuple[int, int]:
    """(train, test) row counts of ``train_test_split``; each part holds every class's row.

    Raises:
        ValueError: a part would be empty or smaller than the number of ``classes``.
    """
    n_test = math.ceil(test_size * n_samples)
    n_train = n_samples - n_test
    if n_train <= 0 or n_test <= 0:
        raise ValueError(f"with {n_samples} rows and test_size={test_size}, a part would be empty")
    if n_train < classes or n_test < classes:
        raise ValueError(f"each part needs a row of every one of the {classes} classes")
    return n_train, n_test


def check_split_sizes(
    config: Config, rows: int, classes: int, *, has_test_file: bool, streaming: bool
) -> None:
    """What ``split_rows`` refuses for the sizes of its parts, known from counts alone.

    ``validate`` reads every row but keeps only the distinct labels, so it checks that the test
    and validation parts can hold a row (and, stratified, one of each of ``classes``); a
    streamed run's hash split never refuses.

    Raises:
        CnnCliError: the message ``split_rows`` would give, at the same key.
    """
    if split_method(config, streaming) == "hash":
        return
    per_class = classes if config.split.stratify else 0
    train = rows
    if not has_test_file:
        train, _ = _sizes(rows, config.split.test_size, per_class, config, "split.stratify")
    if config.fit.validation_split > 0:
        _sizes(train, config.fit.validation_split, per_class, config, "fit.validation_split")


def _sizes(rows: int, size: float, classes: int, config: Config, key: str) -> tuple[int, int]:
    try:
        return part_sizes(rows, size, classes)
    except ValueError as exc:
        raise _cannot_split(rows, exc, config, key) from exc


def _cannot_split(rows: int, exc: ValueError, config: Config, key: str) -> CnnCliError:
    return CnnCliError(
        f"cannot split {rows} rows: {str(exc).splitlines()[0]}",
        where=config.locate(key),
        hint="use a larger data set or a different test_size / validation_split",
    )


def _approximate_mode(
    class_counts: np.ndarray, n_draws: int, rng: np.random.RandomState
) -> np.ndarray:
    """scikit-learn's ``_approximate_mode``: per-class draws, ties broken by ``rng``."""
    continuous = class_counts / class_counts.sum() * n_draws
    floored = np.floor(continuous)
    need_to_add = int(n_draws - floored.sum())
    if need_to_add > 0:
        remainder = continuous - floored
        for value in np.sort(np.unique(remainder))[::-1]:
            (inds,) = np.where(remainder == value)
            add_now = min(len(inds), need_to_add)
            floored[rng.choice(inds, size=add_now, replace=False)] += 1
            need_to_add -= add_now
            if need_to_add == 0:
                break
    return floored.astype(int)
