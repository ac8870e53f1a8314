"""``summary.json``: what a run trained on and with, written by ``train`` for ``report``.

The data (rows of each part, features, the label's class balance on the training rows, how
empty cells were handled), the layer table and the test rows' per-class scores and confusion
matrix. ``train`` knows all of it at the end of a run; a report reads it back instead of
reading the data and running the model again. Read back as untrusted input, like every file of
a run (``data.untrusted``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from cnncli.config.models import Config
from cnncli.data.preprocess import Preprocessor
from cnncli.data.untrusted import (
    Field,
    count,
    items,
    mapping,
    member,
    number,
    one_line,
    optional,
    read_json,
    string,
    text,
)

#: The parts a run's rows are split into, in the order a report lists them.
PARTS = ("train", "validation", "test")


def run_summary(
    config: Config,
    preprocessor: Preprocessor,
    layers: list[dict[str, Any]],
    train_truth: np.ndarray,
    rows: dict[str, int],
    notes: list[str],
    test: tuple[np.ndarray, np.ndarray],
) -> dict[str, Any]:
    """The content of ``summary.json``.

    Args:
        config: the run's config.
        preprocessor: the preprocessing fitted on the training rows.
        layers: the layer table (``model.build.describe_layers``).
        train_truth: each training row's class index (or value).
        rows: rows of each part that was scored (``train``, ``validation``, ``test``).
        notes: what reading the data said (rows dropped, cells filled, columns ignored).
        test: the test rows' model outputs and truth.
    """
    from cnncli.serve.evaluate import classification_scores

    label = preprocessor.label
    classes = None
    per_class: list[dict[str, Any]] = []
    confusion: list[list[int]] = []
    if label.is_classification:
        counts = np.bincount(np.asarray(train_truth, dtype=np.int64), minlength=len(label.classes))
        classes = [
            {"class": name, "train_rows": int(counts[index])}
            for index, name in enumerate(label.classes)
        ]
        outputs, truth = test
        if len(truth):
            _, per_class, confusion = classification_scores(preprocessor, outputs, truth)
    return {
        "data": {
            "path": str(config.data.path),
            "test_path": str(config.data.test_path) if config.data.test_path else None,
            "rows": {part: int(rows[part]) for part in PARTS if part in rows},
            "features": list(preprocessor.feature_names),
            "input_shape": [int(size) for size in preprocessor.input_shape],
            "label": label.name or "",
            "classes": classes,
            "missing": config.data.missing,
            "filled": [
                feature.name for feature in preprocessor.features if feature.fill is not None
            ],
            "notes": [str(note) for note in notes],
        },
        "layers": layers,
        "per_class": per_class,
        "confusion": confusion,
    }


def read_summary(path: Path) -> dict[str, Any]:
    """``summary.json`` with every field checked (a hand-edited file is one line naming the field).

    Raises:
        CnnCliError: the file does not parse, or a field is missing or out of shape.
    """
    top = Field(str(path))
    summary = mapping(read_json(path), top)
    where = top.at("data")
    data = member(summary, "data", top, mapping)
    member(data, "path", where, text)
    member(data, "test_path", where, optional(text))
    parts = member(data, "rows", where, mapping)
    for part, value in parts.items():
        if part not in PARTS:
            raise where.at("rows").at(part).damaged("not a part of a run's rows")
        count(value, where.at("rows").at(part))
    member(data, "features", where, lambda value, at: items(value, at, one_line))
    member(data, "input_shape", where, lambda value, at: items(value, at, count))
    member(data, "label", where, string)
    member(data, "classes", where, optional(lambda value, at: items(value, at, _class_rows)))
    member(data, "missing", where, text)
    member(data, "filled", where, lambda value, at: items(value, at, one_line))
    member(data, "notes", where, lambda value, at: items(value, at, text))
    member(summary, "layers", top, lambda value, at: items(value, at, _layer_row))
    member(summary, "per_class", top, lambda value, at: items(value, at, _class_scores))
    size = len(summary["per_class"])
    member(
        summary,
        "confusion",
        top,
        lambda value, at: items(value, at, lambda row, r: items(row, r, count, length=size)),
    )
    if summary["confusion"] and len(summary["confusion"]) != size:
        raise top.at("confusion").refuse(f"a list of {size} item(s)", summary["confusion"])
    return summary


def _class_name(value: Any, where: Field) -> Any:
    if isinstance(value, str):
        return one_line(value, where)
    return number(value, where)


def _class_rows(value: Any, where: Field) -> dict[str, Any]:
    row = mapping(value, where)
    member(row, "class", where, _class_name)
    member(row, "train_rows", where, count)
    return row


def _layer_row(value: Any, where: Field) -> dict[str, Any]:
    row = mapping(value, where)
    for name in ("name", "type", "output_shape"):
        member(row, name, where, one_line)
    member(row, "params", where, count)
    return row


def _class_scores(value: Any, where: Field) -> dict[str, Any]:
    row = mapping(value, where)
    member(row, "class", where, _class_name)
    for name in ("precision", "recall", "f1"):
        member(row, name, where, number)
    member(row, "support", where, count)
    return row
