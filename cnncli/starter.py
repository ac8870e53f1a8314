"""A first config for a CSV file (``cnncli init``): what a sample of the file says, written as a
commented YAML config that validates and trains as written.

The file's header and its first ``INIT_SAMPLE_ROWS`` rows are read with ``data.csvfile``; each
column is judged by the rules ``validate`` and ``train`` use (``data.columns``: text or numbers,
IDs, free text, dates; ``data.preprocess.task_of`` for the task), so the config never says what
training would then contradict.
"""

from __future__ import annotations

import json
import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from cnncli.config.models import RUN_NAME_PATTERN
from cnncli.data.cells import parse_date
from cnncli.data.columns import (
    RowIds,
    infer_task,
    label_values,
    mostly_numeric,
    text_advice,
)
from cnncli.data.csvfile import (
    guess_delimiter,
    read_header,
    read_sample,
    require_regular_file,
    shown_path,
)
from cnncli.data.split import part_sizes
from cnncli.errors import CnnCliError, Location, did_you_mean, short_repr
from cnncli.runs import new_file_target, unwritable, write_atomic

if TYPE_CHECKING:
    import pandas as pd

#: Rows read to judge the columns: the whole of a small file, a sample of a large one.
INIT_SAMPLE_ROWS = 10_000
MODELS = ("dense", "conv1d", "conv2d")
TASKS = ("classification", "regression")
_PLAIN = re.compile(r"[A-Za-z_/][A-Za-z0-9_./-]*")
#: Plain words YAML 1.1 readers take for booleans or null: written quoted.
_RESERVED = frozenset("y n yes no on off true false null".split())


@dataclass
class Starter:
    """What ``init`` learned about a file and the config it makes of it."""

    data: Path
    rows: int
    whole_file: bool
    label: str
    task: str
    features: list[str]
    #: column → ``categorical`` / ``date`` / ``drop`` (only where inference alone would differ)
    columns: dict[str, str]
    #: column → why it is dropped or typed, one comment each
    reasons: dict[str, str]
    missing: str
    missing_cells: dict[str, int]
    classes: dict[str, int] = field(default_factory=dict)
    #: features read as text (one-hot categories, dates)
    text_features: list[str] = field(default_factory=list)
    model: str = "dense"
    input_shape: list[int] | None = None
    delimiter: str = ","
    #: False where a split by class cannot give the test part a row of every class
    stratify: bool = True


#: The part of the rows ``init``'s config keeps for the test scores.
TEST_SIZE = 0.2


def inspect_csv(
    path: Path,
    *,
    label: str | None = None,
    task: str | None = None,
    model: str = "dense",
    delimiter: str | None = None,
) -> Starter:
    """Read the header and a sample of ``path`` and decide every column, the label and task.

    Args:
        path: the CSV file.
        label: the label column; the last column when None.
        task: classification or regression; inferred from the label when None.
        model: dense, conv1d or conv2d.
        delimiter: the file's delimiter; None: the one of , ; tab | its header holds most.

    Raises:
        CnnCliError: the file cannot be read, the label is not a column, no feature is left,
            a classification label has one class, or the model does not fit the features.
    """
    if delimiter is not None and len(delimiter) != 1:  # data.delimiter's rule, said as the option
        raise CnnCliError(
            f"a delimiter is one character, got {short_repr(delimiter)}",
            where=Location(file="cnncli init", key="--delimiter"),
            hint="e.g. --delimiter ';', or leave it out to read it from the header",
        )
    require_regular_file(path)
    delimiter = delimiter or guess_delimiter(path)
    header = read_header(path, delimiter)
    sample = read_sample(path, delimiter, rows=INIT_SAMPLE_ROWS)
    rows = len(sample)
    label = label if label is not None else header[-1]
    if label not in header:
        listed = ", ".join(header[:12]) + (", ..." if len(header) > 12 else "")
        raise CnnCliError(
            f"column '{label}' is not in {path.name}",
            where=Location(file="cnncli init", key="--label"),
            hint=" ".join(filter(None, [did_you_mean(label, header), f"columns are: {listed}"])),
        )
    columns: dict[str, str] = {}
    reasons: dict[str, str] = {}
    for name in header:
        if name != label:
            _judge(name, sample[name], rows, columns, reasons, keep_constant=model != "dense")
    features = [name for name in header if name != label and columns.get(name) != "drop"]
    if not features:
        raise CnnCliError(
            "no usable feature column is left besides the label",
            where=Location(file=shown_path(path)),
            hint="each other column is constant, an ID or free text: add columns that describe"
            " the rows",
        )
    labels = sample[label].dropna()
    if labels.empty:
        raise CnnCliError(
            f"the label column '{label}' is empty in the first {rows} row(s)",
            where=Location(file=shown_path(path), key=f"column '{label}'"),
            hint="name the label column with --label",
        )
    text_label = not mostly_numeric(labels)
    if task == "regression" and text_label:
        raise CnnCliError(
            f"the label '{label}' holds text, which regression cannot predict",
            where=Location(file="cnncli init", key="--task"),
            hint="use --task classification, or name a numeric label with --label",
        )
    task = task or ("classification" if text_label else infer_task(label_values(labels.to_numpy())))
    classes: dict[str, int] = {}
    if task == "classification":
        counts = labels.astype(str).value_counts()
        classes = {str(name): int(count) for name, count in counts.items()}
        if len(classes) < 2:
            raise CnnCliError(
                f"the label '{label}' has one class ({next(iter(classes))}) in {rows} row(s)",
                where=Location(file=shown_path(path), key=f"column '{label}'"),
                hint="a classifier needs two classes or more; name another label with --label,"
                " or --task regression",
            )
    stratify = _stratify(classes, rows, path, label) if rows < INIT_SAMPLE_ROWS else True
    missing_cells = {
        name: int(count) for name, count in sample[[*features, label]].isna().sum().items() if count
    }
    missing = "drop" if label in missing_cells else "mean" if missing_cells else "error"
    starter = Starter(
        data=path,
        rows=rows,
        whole_file=rows < INIT_SAMPLE_ROWS,
        label=label,
        task=task,
        features=features,
        columns=columns,
        reasons=reasons,
        missing=missing,
        missing_cells=missing_cells,
        classes=classes,
        text_features=[name for name in features if not mostly_numeric(sample[name])],
        model=model,
        delimiter=delimiter,
        stratify=stratify,
    )
    if model != "dense":
        starter.input_shape = _conv_shape(starter, model)
    return starter


def _stratify(classes: dict[str, int], rows: int, path: Path, label: str) -> bool:
    """Whether the whole file's split into training and test rows is stratified (``split``'s
    own sizes): not where the test part is too small to hold every class, as long as no class
    could then fall into the test part alone.

    Raises:
        CnnCliError: a class could be missing from the training rows either way.
    """
    if not classes:
        return True
    try:
        part_sizes(rows, TEST_SIZE, len(classes))
        return True
    except ValueError:
        pass
    rarest = min(classes, key=classes.__getitem__)
    _, test = part_sizes(rows, TEST_SIZE)
    if classes[rarest] > test:
        return False
    raise CnnCliError(
        f"class {rarest!r} of the label '{label}' has {classes[rarest]} row(s) in {rows}:"
        " too few to be both trained on and tested",
        where=Location(file=shown_path(path), key=f"column '{label}'"),
        hint="add rows of that class or remove its rows, or name another label with --label",
    )


def _judge(
    name: str,
    values: pd.Series,
    rows: int,
    columns: dict[str, str],
    reasons: dict[str, str],
    *,
    keep_constant: bool = False,
) -> None:
    """One feature column's type, when inference alone would get it wrong, and why.

    ``keep_constant``: a constant number stays (a convolution's pixel or time step: dropping
    the image's blank border would leave no image).
    """
    present = values.dropna()
    distinct = present.astype(str).nunique()
    numeric = mostly_numeric(values)
    if distinct <= 1 and not (keep_constant and numeric and distinct):
        columns[name] = "drop"
        shown = f"'{present.iloc[0]}'" if distinct else "nothing"
        reasons[name] = f"the same value ({shown}) in every row read: it tells the rows nothing"
        return
    if numeric:
        import pandas as pd

        ids = RowIds([name])
        ids.update({name: pd.to_numeric(values, errors="coerce").to_numpy(np.float64)})
        if ids.advice(name) is not None:
            columns[name] = "drop"
            reasons[name] = "a row ID (distinct whole numbers): it would teach each row's position"
        return
    advice = text_advice(name, set(present.astype(str)), rows)
    if advice is None:
        return
    if advice.dates and not advice.other_dates:
        columns[name] = "date"
        reasons[name] = "dates (YYYY-MM-DD): read as year, month, day of week, day of year"
        return
    columns[name] = "drop"
    reasons[name] = f"looks like {advice.looks_like} ({advice.distinct} distinct in {rows} rows)"
    if advice.other_dates:
        reasons[name] += "; rewrite them as YYYY-MM-DD and set it to date"


def _conv_shape(starter: Starter, model: str) -> list[int]:
    """The input shape of a convolutional stack: the features as a sequence or a square image."""
    count = len(starter.features)
    where = Location(file="cnncli init", key="--model")
    typed = starter.text_features
    if typed:  # a text column one-hot encodes into as many inputs as it has values
        raise CnnCliError(
            f"{model} reads the features as one sequence of numbers, but"
            f" {', '.join(typed)} {'is' if len(typed) == 1 else 'are'} not numeric",
            where=where,
            hint="use --model dense",
        )
    if model == "conv1d":
        return [count, 1]
    side = math.isqrt(count)
    if side * side != count:
        raise CnnCliError(
            f"conv2d needs a square number of features (an image), and there are {count}",
            where=where,
            hint=f"use --model conv1d or dense (the nearest squares are {side * side} and"
            f" {(side + 1) ** 2})",
        )
    return [side, side, 1]


def _yaml(value: Any) -> str:
    """A scalar as YAML: plain where it is a plain word, else double-quoted (JSON's quoting,
    which YAML reads the same)."""
    if isinstance(value, str) and (
        not _PLAIN.fullmatch(value) or value.lower() in _RESERVED or parse_date(value) is not None
    ):
        return json.dumps(value)
    return str(value)


def _layers(starter: Starter) -> list[str]:
    head = (
        "{type: Dense, units: auto, activation: softmax}   # one unit per class"
        if starter.task == "classification"
        else "{type: Dense, units: auto}                        # the predicted value"
    )
    if starter.model == "conv1d":
        kernel = min(3, len(starter.features))
        body = [
            f"{{type: Conv1D, filters: 32, kernel_size: {kernel}, activation: relu,"
            " padding: same}",
            "GlobalAveragePooling1D",
            "{type: Dense, units: 32, activation: relu}",
        ]
    elif starter.model == "conv2d":
        body = [
            "{type: Conv2D, filters: 16, kernel_size: 3, activation: relu, padding: same}",
            "Flatten",
            "{type: Dense, units: 32, activation: relu}",
        ]
    else:
        body = [
            "{type: Dense, units: 64, activation: relu}",
            "{type: Dropout, rate: 0.1}",
            "{type: Dense, units: 32, activation: relu}",
        ]
    return [f"    - {layer}" for layer in (*body, head)]


def render_config(starter: Starter, config_path: Path) -> str:
    """The commented YAML config for ``starter``, its data path relative to ``config_path``."""
    # The folders resolved, the file's own name kept: a link such as current.csv stays the path
    # (the config follows it when it is re-pointed, instead of pinning today's target).
    data = os.path.join(os.path.realpath(starter.data.parent), starter.data.name)
    try:
        relative = os.path.relpath(data, config_path.resolve().parent)
    except ValueError:  # another drive
        relative = data
    if not relative.startswith(f"..{os.sep}..{os.sep}"):  # beside or near the config
        data = relative
    name = re.sub(r"[^A-Za-z0-9_.-]", "-", starter.data.stem).lstrip("-_.")[:80] or "run"
    assert re.fullmatch(RUN_NAME_PATTERN, name)
    read = f"all {starter.rows} rows" if starter.whole_file else f"the first {starter.rows} rows"
    lines = [
        f"# Made by `cnncli init` from {starter.data.name} ({read} read).",
        "# Check it with `cnncli validate`, then `cnncli train`; every key is in the README.",
        f"name: {name}",
        "seed: 0                          # the same weights and split on every run",
        _commented(f"task: {starter.task}", _task_comment(starter)),
        "data:",
        f"  path: {_yaml(data)}",
        f"  label: {_yaml(starter.label)}",
    ]
    if starter.delimiter != ",":
        lines.append(f"  delimiter: {json.dumps(starter.delimiter)}")
    lines += _missing_lines(starter)
    if starter.columns:
        lines.append("  columns:")
        for name, kind in starter.columns.items():
            lines.append(_commented(f"    {_yaml(name)}: {kind}", starter.reasons[name]))
    features = len(starter.features)
    lines += [
        f"# {features} feature column(s): text columns are one-hot encoded, numbers scaled",
        "preprocess:",
        "  features: standard             # each number to mean 0, standard deviation 1",
        "split:",
        _commented(f"  test_size: {TEST_SIZE}", "a fifth of the rows are kept for the test scores"),
        *_stratify_lines(starter),
        "model:",
    ]
    if starter.input_shape is not None:
        shape = ", ".join(map(str, starter.input_shape))
        lines.append(_commented(f"  input_shape: [{shape}]", _shape_comment(starter)))
    lines += ["  layers:", *_layers(starter)]
    lines += [
        "compile:",
        "  optimizer: adam",
        "  # loss and metrics follow from the task when left out"
        + (" (categorical cross-entropy, accuracy)" if starter.task == "classification" else ""),
        "fit:",
        "  epochs: 50",
        "  batch_size: 32",
        _validation_line(starter),
        "output:",
        "  dir: runs",
    ]
    return "\n".join(lines) + "\n"


def _commented(line: str, comment: str) -> str:
    """A line with its comment, the comments of a block lined up."""
    return f"{line.ljust(32)} # {comment}"


def _validation_line(starter: Starter) -> str:
    """A tenth of the training rows for validation, where that is enough rows to mean something
    (and, for a classifier, rows of every class)."""
    held_out = starter.rows * 0.8 * 0.1
    if held_out >= max(10, 2 * len(starter.classes)):
        return _commented(
            "  validation_split: 0.1", "validation loss per epoch, to spot overfitting"
        )
    return _commented(
        "  validation_split: 0.0", f"{starter.rows} rows are too few to hold some out"
    )


def _stratify_lines(starter: Starter) -> list[str]:
    if starter.stratify:
        return []
    return [_commented("  stratify: false", "too few rows for a test part with every class")]


def _task_comment(starter: Starter) -> str:
    if starter.task == "regression":
        return "the label is a number to predict"
    counts = sorted(starter.classes.items())
    shown = ", ".join(f"{_yaml(name)}: {count}" for name, count in counts[:10])
    more = f", ... ({len(starter.classes)} classes)" if len(starter.classes) > 10 else ""
    return f"rows per class: {shown}{more}"


def _missing_lines(starter: Starter) -> list[str]:
    if starter.missing == "error":
        return ["  missing: error                 # no empty cell was read; one stops training"]
    cells = ", ".join(f"{name} {count}" for name, count in starter.missing_cells.items())
    why = (
        "rows with an empty cell are left out (the label has empty cells)"
        if starter.missing == "drop"
        else "empty numbers get the column's mean, empty text no category"
    )
    return [_commented(f"  missing: {starter.missing}", f"{why}; empty cells: {cells}")]


def _shape_comment(starter: Starter) -> str:
    if starter.model == "conv2d":
        return "the features as a square image, one channel"
    return "the features as one sequence, one channel"


def config_target(output: Path, data: Path, force: bool = False) -> Path:
    """Where ``init`` writes its config: checked before anything is read or rendered, so a path
    no file can have (a link loop, a name too long) is named as such.

    Raises:
        CnnCliError: ``output`` exists (without ``force``), is not a regular file (a folder,
            a FIFO), cannot name a file, or is the data file itself; its folder is missing.
    """
    target = new_file_target(output, replace=force, option="-o")
    if target.exists() and target.resolve() == data.resolve():
        raise CnnCliError(
            "is the data file itself",
            where=Location(file=shown_path(output)),
            hint="write the config elsewhere, e.g. -o config.yaml",
        )
    return target


def write_config(text: str, target: Path) -> None:
    """Write ``text`` to ``target`` (from ``config_target``) atomically.

    Raises:
        CnnCliError: the folder cannot be written.
    """
    try:
        write_atomic(target, text)
    except OSError as exc:
        raise unwritable("the config", target.parent, exc, "choose another -o") from exc


def check_config_text(text: str, config_path: Path) -> None:
    """The config as written passes the schema and the cross-field checks (a safety net: a
    config ``init`` writes must load)."""
    from cnncli.config.checks import CROSS_CHECKS
    from cnncli.config.models import config_from_dict
    from cnncli.config.source import parse_yaml
    from cnncli.errors import ConfigErrors

    raw, _ = parse_yaml(text, str(config_path))
    config = config_from_dict(raw, config_path.resolve().parent, str(config_path))
    problems = [problem for check in CROSS_CHECKS if (problem := check(config)) is not None]
    if problems:
        raise ConfigErrors(problems)
