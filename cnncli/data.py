"""Read the CSV a config names, check its columns and cells, split features from the label.

Every problem becomes a one-line ``CnnCliError`` naming the file, the column and the line
number in the file (the header is line 1), so a user can open the file at the right place.
"""

from __future__ import annotations

import csv
import difflib
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from cnncli.config import Config
from cnncli.errors import CnnCliError, Location

if TYPE_CHECKING:
    import pandas as pd

SAMPLE_ROWS = 200
#: Integer labels with at most this many distinct values are taken as classes.
MAX_INTEGER_CLASSES = 50


@dataclass(frozen=True)
class Columns:
    """Which columns of a CSV are features (numeric or categorical) and which is the label."""

    features: tuple[str, ...]
    categorical: tuple[str, ...]
    label: str


@dataclass
class Dataset:
    """A cleaned table: feature columns as arrays, raw labels, and what cleaning did."""

    path: str
    columns: Columns
    features: dict[str, np.ndarray]
    labels: np.ndarray
    rows: int
    dropped_rows: int = 0
    filled_cells: int = 0


def file_location(path: str | Path, column: str | None = None, line: int | None = None) -> Location:
    return Location(file=str(path), key=f"column '{column}'" if column else None, line=line)


def read_header(path: str | Path, delimiter: str = ",") -> list[str]:
    """Read only the header line: cheap enough for ``validate``."""
    path = Path(path)
    try:
        with path.open(newline="", encoding="utf-8-sig") as handle:
            header = next(csv.reader(handle, delimiter=delimiter), None)
    except FileNotFoundError as exc:
        raise CnnCliError(
            "data file not found",
            where=file_location(path),
            hint="check data.path; relative paths resolve against the config file's folder",
        ) from exc
    except UnicodeDecodeError as exc:
        raise CnnCliError(
            "data file is not UTF-8 text",
            where=file_location(path),
            hint="re-save the CSV as UTF-8",
        ) from exc
    except OSError as exc:
        raise CnnCliError(f"cannot read data file: {exc.strerror}", where=file_location(path)) from exc
    if not header or all(not cell.strip() for cell in header):
        raise CnnCliError("data file is empty", where=file_location(path), hint="a CSV needs a header line and rows")
    names = [cell.strip() for cell in header]
    if len(names) == 1 and delimiter == ",":
        for other in (";", "\t", "|"):
            if other in names[0]:
                shown = "\\t" if other == "\t" else other
                raise CnnCliError(
                    f"the header has one column but contains '{shown}'",
                    where=file_location(path, line=1),
                    hint=f"set data.delimiter: '{shown}'",
                )
    return names


def choose_columns(config: Config, header: list[str], sample: pd.DataFrame | None = None) -> Columns:
    """Match the config's label and feature names against the header.

    Raises:
        CnnCliError: a named column is missing (with a did-you-mean and the columns there are).
    """
    label = config.data.label or header[-1]
    _require_column(config, header, label, "data.label")
    if config.data.features:
        for index, name in enumerate(config.data.features):
            _require_column(config, header, name, f"data.features[{index}]")
        features = tuple(config.data.features)
    else:
        features = tuple(name for name in header if name != label)
    if not features:
        raise CnnCliError(
            "no feature columns left besides the label",
            where=config.locate("data"),
            hint="a CSV needs at least one feature column next to the label",
        )
    categorical: tuple[str, ...] = ()
    if sample is not None:
        categorical = tuple(name for name in features if not _is_numeric(sample[name]))
    return Columns(features=features, categorical=categorical, label=label)


def _require_column(config: Config, header: list[str], name: str, key: str) -> None:
    if name in header:
        return
    match = difflib.get_close_matches(name, header, n=1, cutoff=0.5)
    listed = ", ".join(header[:12]) + (", ..." if len(header) > 12 else "")
    hint = f"did you mean '{match[0]}'? columns are: {listed}" if match else f"columns are: {listed}"
    raise CnnCliError(f"column '{name}' is not in {Path(config.data.path).name}", where=config.locate(key), hint=hint)


def _is_numeric(series: pd.Series) -> bool:
    import pandas as pd

    return bool(pd.api.types.is_numeric_dtype(series)) and not pd.api.types.is_bool_dtype(series)


def read_sample(path: str | Path, delimiter: str = ",", rows: int = SAMPLE_ROWS) -> pd.DataFrame:
    """Read the first rows only: enough to tell numeric from text columns."""
    return _read_csv(path, delimiter, nrows=rows)


def _read_csv(path: str | Path, delimiter: str, nrows: int | None = None) -> pd.DataFrame:
    import pandas as pd

    read_header(path, delimiter)  # clear messages for missing, empty and mis-delimited files
    try:
        frame = pd.read_csv(path, sep=delimiter, nrows=nrows, skipinitialspace=True, encoding="utf-8-sig")
    except pd.errors.ParserError as exc:
        raise CnnCliError(
            f"rows have different numbers of cells ({_parser_detail(exc)})",
            where=file_location(path),
            hint="every row needs one cell per header column",
        ) from exc
    except pd.errors.EmptyDataError as exc:
        raise CnnCliError("data file is empty", where=file_location(path)) from exc
    except UnicodeDecodeError as exc:
        raise CnnCliError("data file is not UTF-8 text", where=file_location(path), hint="re-save the CSV as UTF-8") from exc
    frame.columns = [str(name).strip() for name in frame.columns]
    if frame.empty:
        raise CnnCliError(
            "data file has a header but no rows", where=file_location(path), hint="add data rows below the header"
        )
    return frame


def _parser_detail(exc: Exception) -> str:
    text = str(exc).strip().splitlines()[-1]
    return text.replace("Error tokenizing data. C error: ", "")


def load_dataset(config: Config, path: str | None = None, columns: Columns | None = None) -> Dataset:
    """Read a whole CSV and return clean feature arrays and labels.

    Args:
        config: the validated config (column names, delimiter, missing-value policy).
        path: another CSV to read with the same columns (a test file); defaults to data.path.
        columns: the columns fixed at training time; chosen from this file when None.
    """
    path = path or config.data.path
    frame = _read_csv(path, config.data.delimiter)
    header = list(frame.columns)
    if columns is None:
        columns = choose_columns(config, header, frame)
    else:
        missing = [name for name in (*columns.features, columns.label) if name not in header]
        if missing:
            raise CnnCliError(
                f"columns {', '.join(missing)} are missing (it has {', '.join(header)})",
                where=file_location(path),
                hint="a test file needs the same columns as the training file",
            )
    frame = frame[list(columns.features) + [columns.label]]
    frame, dropped, filled = _handle_missing(frame, config.data.missing, path, columns)
    features: dict[str, np.ndarray] = {}
    for name in columns.features:
        if name in columns.categorical:
            features[name] = frame[name].astype(str).to_numpy()
        else:
            features[name] = _numeric_column(frame, name, path)
    return Dataset(
        path=str(path),
        columns=columns,
        features=features,
        labels=frame[columns.label].to_numpy(),
        rows=len(frame),
        dropped_rows=dropped,
        filled_cells=filled,
    )


def _numeric_column(frame: pd.DataFrame, name: str, path: str | Path) -> np.ndarray:
    import pandas as pd

    series = frame[name]
    if _is_numeric(series):
        return series.to_numpy(dtype=np.float64, na_value=np.nan)
    converted = pd.to_numeric(series, errors="coerce")
    bad = converted.isna() & series.notna()
    position = int(np.argmax(bad.to_numpy()))
    raise CnnCliError(
        f"numeric column holds text {series.iloc[position]!r}",
        where=file_location(path, name, line=int(frame.index[position]) + 2),
        hint="fix or remove that cell, or list only numeric columns in data.features",
    )


def _handle_missing(
    frame: pd.DataFrame, policy: str, path: str | Path, columns: Columns
) -> tuple[pd.DataFrame, int, int]:
    empty = frame.isna()
    if not empty.to_numpy().any():
        return frame, 0, 0
    label_empty = empty[columns.label]
    if policy == "error" or label_empty.any():
        column = columns.label if label_empty.any() else str(empty.any()[empty.any()].index[0])
        lines = (np.flatnonzero(empty[column].to_numpy()) + 2).tolist()
        shown = ", ".join(map(str, lines[:5])) + (f" and {len(lines) - 5} more" if len(lines) > 5 else "")
        hint = (
            "fill in the label, or remove those rows"
            if column == columns.label
            else "fill them in, or set data.missing: drop or mean"
        )
        raise CnnCliError(
            f"{len(lines)} empty cell(s) on line(s) {shown}",
            where=file_location(path, column, line=lines[0]),
            hint=hint,
        )
    if policy == "drop":
        keep = ~empty.any(axis=1)
        kept = frame[keep.to_numpy()].reset_index(drop=True)
        return kept, int((~keep).sum()), 0
    return frame, 0, int(empty.to_numpy().sum())  # "mean": filled by the preprocessing


def infer_task(labels: np.ndarray) -> str:
    """Text or few distinct integers → classification; other numbers → regression."""
    kind = np.asarray(labels).dtype.kind
    if kind in "OUSb":
        return "classification"
    if kind in "iu" or (kind == "f" and np.all(np.mod(labels, 1) == 0)):
        return "classification" if len(np.unique(labels)) <= MAX_INTEGER_CLASSES else "regression"
    return "regression"


def label_values(labels: np.ndarray) -> np.ndarray:
    """Labels normalised for class lookup: whole floats become ints, text stays text."""
    array = np.asarray(labels)
    if array.dtype.kind == "f" and np.all(np.mod(array, 1) == 0):
        return array.astype(np.int64)
    if array.dtype.kind == "O":
        return np.asarray([str(value) for value in array])
    return array


def describe_cleaning(dataset: Dataset) -> str | None:
    """One line on what ``missing: drop`` or ``mean`` did, for the user."""
    if dataset.dropped_rows:
        return f"dropped {dataset.dropped_rows} row(s) with empty cells from {Path(dataset.path).name}"
    if dataset.filled_cells:
        return f"filled {dataset.filled_cells} empty cell(s) in {Path(dataset.path).name} with the column mean"
    return None


