"""``predict --input`` rows: ``3,30,5`` or ``x1=3,x2=30,x3=5`` → raw columns → predictions.

Cheap to import: no pandas, no scikit-learn, no pydantic, no TensorFlow.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from cnncli.data.cells import NA_STRINGS, cell_problem, empty_allowed, parse_date
from cnncli.data.preprocess import Preprocessor
from cnncli.errors import CnnCliError, Location, did_you_mean
from cnncli.serve.predictor import Predictions, Predictor, predict_columns


def parse_input(pre: Preprocessor, text: str, missing: str = "error") -> dict[str, Any]:
    """``3,30,5`` (feature order) or ``x1=3,x2=30,x3=5`` (by name) → one raw row.

    Cells follow the training reader's rules (``cnncli.data.cells``); an empty cell is taken
    where the run's ``data.missing`` fills it.

    Raises:
        CnnCliError: wrong count, unknown name, or a value that is not a number.
    """
    names = pre.feature_names
    where = Location(file=f"--input {text}")
    split = split_input(text, where)
    named = [(name, value) for name, value in split if name is not None]
    if len(named) == len(split):
        row: dict[str, Any] = {}
        for name, value in named:
            if name not in names:
                raise unknown_feature(name, names, where)
            if name in row:
                raise CnnCliError(
                    f"{name} is given twice ({row[name]!r} and {value!r})",
                    where=where,
                    hint="give each feature once",
                )
            row[name] = value
        absent = [name for name in names if name not in row]
        if absent:
            raise missing_features(absent, names, where)
    else:
        cells = [value if name is None else f"{name}={value}" for name, value in split]
        if len(cells) != len(names):
            raise wrong_cell_count(
                len(cells),
                names,
                where,
                f"for example --input {','.join(names)} values in that order, or name=value pairs",
            )
        row = dict(zip(names, cells, strict=True))
    fillable = empty_allowed(pre, missing)
    return {
        feature.name: parse_cell(
            feature.name, feature.kind, row[feature.name], where, feature.name in fillable
        )
        for feature in pre.features
    }


def unknown_feature(name: str, names: list[str], where: Location) -> CnnCliError:
    """The one wording of a cell named for no feature (``--input x9=1``, a record's key)."""
    hint = did_you_mean(name, names, f"features are: {', '.join(names)}")
    return CnnCliError(f"unknown feature '{name}'", where=where, hint=hint)


def missing_features(absent: list[str], names: list[str], where: Location) -> CnnCliError:
    """The one wording of a row by name that leaves features out."""
    return CnnCliError(
        f"missing feature(s) {', '.join(absent)}",
        where=where,
        hint=f"give all of: {', '.join(names)}",
    )


def wrong_cell_count(count: int, names: list[str], where: Location, hint: str) -> CnnCliError:
    """The one wording of a row in feature order with too few or too many cells."""
    return CnnCliError(
        f"got {count} value(s), the model expects {len(names)}: {', '.join(names)}",
        where=where,
        hint=hint,
    )


def split_input(text: str, where: Location) -> list[tuple[str | None, str]]:
    """The cells of one ``--input`` row as (name or None, value), with CSV's quoting.

    ``3,"a,b",5`` has three cells, the second ``a,b``; ``x1=3,city="York, UK"`` names its cells;
    a doubled quote inside quotes is one quote. Whitespace around a cell is dropped.

    Raises:
        CnnCliError: a quote that is not closed.
    """
    cells: list[tuple[str | None, str]] = []
    name: str | None = None
    value: list[str] = []
    quoted = False
    index = 0
    while index < len(text):
        char = text[index]
        if quoted and char == '"' and text[index + 1 : index + 2] == '"':
            value.append('"')
            index += 1
        elif char == '"':
            quoted = not quoted
        elif quoted:
            value.append(char)
        elif char == ",":
            cells.append((name, "".join(value).strip()))
            name, value = None, []
        elif char == "=" and name is None:
            name, value = "".join(value).strip(), []
        else:
            value.append(char)
        index += 1
    if quoted:
        raise CnnCliError(
            "a quote is not closed", where=where, hint='quote a whole cell: --input 3,"a,b",5'
        )
    cells.append((name, "".join(value).strip()))
    return cells


def parse_cell(name: str, kind: str, value: str, where: Location, may_be_empty: bool) -> Any:
    """One ``--input`` cell: text for a categorical feature, days since 1970-01-01 for a date,
    a float otherwise (NaN if empty).

    Raises:
        CnnCliError: text or an infinite value where a number belongs, a date that is not one,
            or an empty cell the run cannot fill.
    """
    numeric, date = kind == "numeric", kind == "date"
    problem = cell_problem(name, value, numeric=numeric, may_be_empty=may_be_empty, date=date)
    if problem is not None:
        hint = "give a finite number" if numeric else "give a date, YYYY-MM-DD" if date else None
        raise CnnCliError(problem, where=where, hint=hint or "give a value")
    if value.strip() in NA_STRINGS:  # empty, as the file reader and training read it
        return math.nan
    if date:
        return parse_date(value)
    return float(value) if numeric else value


def rows_to_columns(pre: Preprocessor, rows: list[dict[str, Any]]) -> dict[str, np.ndarray]:
    """Parsed rows → one array per feature, float64 for numbers and dates (days), as the
    training reader gives."""
    columns: dict[str, np.ndarray] = {}
    for feature in pre.features:
        values = [row[feature.name] for row in rows]
        columns[feature.name] = np.asarray(
            values, dtype=object if feature.kind == "categorical" else np.float64
        )
    return columns


def predict_rows(predictor: Predictor, texts: list[str]) -> Predictions:
    """Predict ``--input`` rows.

    Raises:
        CnnCliError: a row that does not parse (see ``parse_input``).
    """
    missing = predictor.run.config.get("data", {}).get("missing", "error")
    rows = [parse_input(predictor.preprocessor, text, missing) for text in texts]
    result = predict_columns(predictor, rows_to_columns(predictor.preprocessor, rows))
    result.inputs = list(texts)
    return result
