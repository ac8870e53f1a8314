"""A JSON request's rows, ``{"rows": [[3, 30, 5]]}`` or ``{"records": [{"x1": 3, ...}]}``, as
the raw columns ``predict --input`` builds, through the same cell rules and the same messages.

A column of plain JSON numbers is taken in one NumPy step; any other cell (text, ``null``, a
number beyond float32) goes through ``rows.parse_cell`` one by one, as an ``--input`` cell
would, so the wording of every problem is the CLI's. Cheap to import: NumPy only.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np

from cnncli.data.cells import NA_STRINGS, empty_allowed, out_of_range
from cnncli.data.preprocess import FeatureTransform, Preprocessor
from cnncli.errors import CnnCliError, Location, did_you_mean, short_repr
from cnncli.serve.rows import (
    missing_features,
    parse_cell,
    unknown_feature,
    wrong_cell_count,
)

#: The two shapes a request body may have.
BODY_KEYS = ("rows", "records")


class BadRequest(CnnCliError):
    """A request body a client must fix, with the HTTP status that says which kind.

    Attributes:
        status: 400 (not JSON, wrong shape), 413 (over a limit), 415 (content type) or 422 (a
            cell the cell rules refuse).
        row: the 0-based row the problem is in, when it is in one (a CSV body names its line
            in ``where`` instead).
        column: the feature it is about, when it is about one.
    """

    def __init__(
        self,
        status: int,
        message: str,
        *,
        where: Location | None = None,
        hint: str | None = None,
        row: int | None = None,
        column: str | None = None,
    ) -> None:
        super().__init__(message, where=where, hint=hint)
        self.status = status
        self.row = row
        self.column = column

    def to_json(self) -> dict[str, Any]:
        """The response body: the one line the CLI would print, and its parts."""
        return {
            "error": self.one_line(),
            "row": self.row,
            "line": self.where.line if self.where is not None else None,
            "column": self.column,
            "hint": self.hint,
        }


def _refuse_constant(name: str) -> float:
    raise ValueError(f"{name} is not a JSON number")


def _refuse_twice(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """An object as a dict; a key given twice is refused, as ``--input x1=1,x1=2`` is (the
    JSON module would keep the last value without a word)."""
    found = dict(pairs)
    if len(found) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise ValueError(f"the key {short_repr(key)} appears twice in one object")
            seen.add(key)
    return found


def load_body(body: bytes) -> Any:
    """Parse a request body as strict JSON (no ``NaN``/``Infinity``, UTF-8).

    Raises:
        BadRequest: 400, naming the line and column where parsing stopped.
    """
    try:
        return json.loads(body, parse_constant=_refuse_constant, object_pairs_hook=_refuse_twice)
    except UnicodeDecodeError:
        raise BadRequest(400, "the body is not UTF-8 text", hint="send UTF-8 JSON") from None
    except RecursionError:
        raise BadRequest(400, "the body nests too deeply", hint="send rows of cells") from None
    except ValueError as exc:
        where = ""
        if isinstance(exc, json.JSONDecodeError):
            detail = exc.msg
            where = f" at line {exc.lineno} column {exc.colno}"
        else:
            detail = str(exc)
        raise BadRequest(
            400,
            f"the body is not JSON: {detail}{where}",
            hint='send {"rows": [[...], ...]} or {"records": [{...}, ...]}',
        ) from None


def request_rows(body: Any, max_rows: int) -> tuple[str, list[Any]]:
    """The rows of a parsed body: which shape it has and its list of rows.

    Raises:
        BadRequest: 400 for a body of another shape, 413 for more than ``max_rows`` rows.
    """
    example = 'send {"rows": [[...], ...]} or {"records": [{...}, ...]}'
    if not isinstance(body, dict):
        raise BadRequest(400, f"the body is a JSON {_json_kind(body)}, not an object", hint=example)
    unknown = [key for key in body if key not in BODY_KEYS]
    if unknown:
        hint = did_you_mean(str(unknown[0]), BODY_KEYS, example)
        raise BadRequest(400, f"unknown key {short_repr(unknown[0])} in the body", hint=hint)
    given = [key for key in BODY_KEYS if key in body]
    if len(given) != 1:
        what = "both 'rows' and 'records'" if given else "neither 'rows' nor 'records'"
        raise BadRequest(400, f"the body has {what}", hint=example)
    shape = given[0]
    rows = body[shape]
    if not isinstance(rows, list):
        raise BadRequest(400, f"'{shape}' is a JSON {_json_kind(rows)}, not a list", hint=example)
    if len(rows) > max_rows:
        raise BadRequest(
            413,
            f"{len(rows):,} rows in one request, over the limit of {max_rows:,} (--max-rows)",
            hint="send fewer rows per request, or POST a CSV to /predict/csv",
        )
    return shape, rows


def rows_to_inputs(
    pre: Preprocessor, shape: str, rows: list[Any], missing: str = "error"
) -> dict[str, np.ndarray]:
    """A request's rows as raw columns, one array per feature, as ``predict --input`` makes.

    Args:
        pre: the run's preprocessing (feature names, kinds).
        shape: ``rows`` (cells in feature order) or ``records`` (cells by name).
        rows: the rows of the body.
        missing: the run's ``data.missing``, which says which empty cells it fills.

    Raises:
        BadRequest: 400 for a row of the wrong shape, 422 for a cell the cell rules refuse;
            both name the row and the column.
    """
    names = pre.feature_names
    if shape == "rows" and all(feature.kind == "numeric" for feature in pre.features):
        matrix = _plain_numbers(rows, len(names))
        if matrix is not None:
            return {name: matrix[:, index] for index, name in enumerate(names)}
    if shape == "rows":
        cells = [_row_cells(row, index, names) for index, row in enumerate(rows)]
    else:
        cells = [_record_cells(row, index, names) for index, row in enumerate(rows)]
    fillable = empty_allowed(pre, missing)
    columns: dict[str, np.ndarray] = {}
    for position, feature in enumerate(pre.features):
        values = [row[position] for row in cells]
        fast = _fast_column(feature, values, feature.name in fillable)
        if fast is None:
            parsed = [
                _parse_json_cell(feature, value, index, shape, feature.name in fillable)
                for index, value in enumerate(values)
            ]
            fast = np.asarray(parsed, dtype=object if feature.kind == "categorical" else np.float64)
        columns[feature.name] = fast
    return columns


def _plain_numbers(rows: list[Any], width: int) -> np.ndarray | None:
    """Rows of only JSON numbers, all usable, as one float64 matrix in one NumPy step, or None
    (then each row and cell is checked, and the first problem named)."""
    for row in rows:  # NumPy would read True as 1.0 and "3" as 3.0, which the rules decide
        if type(row) is not list or len(row) != width:
            return None
        for value in row:
            if type(value) is not float and type(value) is not int:
                return None
    try:
        matrix = np.asarray(rows, dtype=np.float64)
    except OverflowError:  # an integer with 400 digits
        return None
    return None if out_of_range(matrix).any() else matrix.reshape(len(rows), width)


def _row_cells(row: Any, index: int, names: list[str]) -> list[Any]:
    where = Location(key=f"rows[{index}]")
    hint = f"give [{', '.join(names)}] in that order, or send records"
    if not isinstance(row, list):
        raise _not_a(f"a row is a JSON {_json_kind(row)}, not a list of cells", where, hint, index)
    if len(row) != len(names):
        error = wrong_cell_count(len(row), names, where, hint)
        raise BadRequest(400, error.message, where=where, hint=error.hint, row=index)
    return row


def _not_a(what: str, where: Location, hint: str, index: int) -> BadRequest:
    """A row of a JSON type no row has."""
    return BadRequest(400, what, where=where, hint=hint, row=index)


def _record_cells(record: Any, index: int, names: list[str]) -> list[Any]:
    where = Location(key=f"records[{index}]")
    if not isinstance(record, dict):
        hint = f"give {{{', '.join(repr(n) for n in names)}: ...}}"
        raise _not_a(f"a record is a JSON {_json_kind(record)}, not an object", where, hint, index)
    if len(record) != len(names) or any(name not in record for name in names):
        unknown = [key for key in record if key not in names]
        if unknown:
            error = unknown_feature(unknown[0], names, where)
            column = unknown[0]
        else:
            error = missing_features([n for n in names if n not in record], names, where)
            column = None
        raise BadRequest(400, error.message, where=where, hint=error.hint, row=index, column=column)
    return [record[name] for name in names]


def _fast_column(feature: FeatureTransform, values: list[Any], fillable: bool) -> np.ndarray | None:
    """The column in one step when every cell is plainly fine, else None (check one by one)."""
    if feature.kind == "numeric":
        if not all(type(v) in (int, float) for v in values):  # bool is no number here
            return None
        try:
            column = np.asarray(values, dtype=np.float64)
        except OverflowError:  # an integer with 400 digits
            return None
        return None if out_of_range(column).any() else column
    if feature.kind == "categorical":
        if not all(type(v) is str for v in values):
            return None
        cells = [v.strip() for v in values]  # as `--input` reads a cell: see _parse_json_cell
        if any(cell in NA_STRINGS for cell in cells):
            return None
        return np.asarray(cells, dtype=object)
    return None  # dates: each cell through the date rule


def _parse_json_cell(
    feature: FeatureTransform, value: Any, index: int, shape: str, fillable: bool
) -> Any:
    """One JSON cell through ``rows.parse_cell``, as the CSV text it stands for."""
    where = Location(key=f"{shape}[{index}]")
    if value is None:
        text = ""
    elif type(value) is str:
        # whitespace around a cell is dropped, as `predict --input` (rows.split_input) and the
        # training reader drop it: " Paris" was an unseen category here and Paris there
        text = value.strip()
    elif type(value) is int:
        text = str(value)
    elif type(value) is float:
        text = repr(value)
    else:
        raise BadRequest(
            422,
            f"column '{feature.name}': a JSON {_json_kind(value)} is not a cell",
            where=where,
            hint="give a number or a text",
            row=index,
            column=feature.name,
        )
    try:
        return parse_cell(feature.name, feature.kind, text, where, fillable)
    except CnnCliError as exc:
        raise BadRequest(
            422, exc.message, where=where, hint=exc.hint, row=index, column=feature.name
        ) from None


def _json_kind(value: Any) -> str:
    """What a parsed JSON value is, in JSON's words."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    return "list" if isinstance(value, list) else "object"
