"""Read the CSV a config names, check its columns and cells, split features from the label.

Every problem becomes a one-line ``CnnCliError`` naming the file, the column and the line
number in the file (the header is line 1), so a user can open the file at the right place.
"""

from __future__ import annotations

import csv
import difflib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from cnncli.config.models import Config
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
    source_rows: np.ndarray | None = None  # each row's 0-based position in the file's data rows
    delimiter: str = ","

    def lines(self, positions: list[int]) -> list[int]:
        """File line numbers of rows given by their position in this (cleaned) dataset."""
        rows = [int(self.source_rows[p]) if self.source_rows is not None else p for p in positions]
        return line_numbers(self.path, self.delimiter, rows)


def file_location(path: str | Path, column: str | None = None, line: int | None = None) -> Location:
    return Location(file=str(path), key=f"column '{column}'" if column else None, line=line)


#: Byte signatures of files that are not CSV text, with what to do about them.
_NOT_TEXT = (
    (b"\xff\xfe\x00\x00", "is UTF-32 text", "re-save the CSV as UTF-8"),
    (b"\x00\x00\xfe\xff", "is UTF-32 text", "re-save the CSV as UTF-8"),
    (b"\xff\xfe", "is UTF-16 text", "re-save the CSV as UTF-8"),
    (b"\xfe\xff", "is UTF-16 text", "re-save the CSV as UTF-8"),
    (
        b"PK\x03\x04",
        "is a zip archive (an Excel workbook?)",
        "export the sheet as CSV (File > Save As > CSV UTF-8)",
    ),
    (b"\x1f\x8b", "is gzip-compressed", "decompress it first: gunzip FILE"),
)
_DELIMITERS = {",": ",", ";": ";", "\t": "\\t", "|": "|"}


def _encoding_error(path: Path, exc: UnicodeDecodeError | None = None) -> CnnCliError:
    """Say what the file is (UTF-16, a zip, gzip) or where its first non-UTF-8 byte is."""
    try:
        with path.open("rb") as handle:
            head = handle.read(4)
            raw = head + handle.read() if exc is None or exc.start >= len(head) else head
    except OSError:
        raw = b""
    for signature, what, hint in _NOT_TEXT:
        if raw.startswith(signature):
            return CnnCliError(
                f"data file {what}, not UTF-8 CSV text", where=file_location(path), hint=hint
            )
    try:
        raw.decode("utf-8")
        position = exc.start if exc is not None else 0
    except UnicodeDecodeError as error:
        position = error.start
    line = raw[:position].count(b"\n") + 1
    shown = f" (byte 0x{raw[position]:02x} on line {line})" if position < len(raw) else ""
    return CnnCliError(
        f"data file is not UTF-8 text{shown}",
        where=file_location(path, line=line if shown else None),
        hint="re-save it as UTF-8, e.g. iconv -f latin1 -t utf-8 in.csv > out.csv",
    )


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
        raise _encoding_error(path) from exc
    except (OSError, csv.Error) as exc:
        raise CnnCliError(
            f"cannot read data file: {getattr(exc, 'strerror', None) or exc}",
            where=file_location(path),
        ) from exc
    if header and "\x00" in "".join(header):
        raise _encoding_error(path)
    if not header or all(not cell.strip() for cell in header):
        raise CnnCliError(
            "data file is empty",
            where=file_location(path),
            hint="a CSV needs a header line and rows",
        )
    names = [cell.strip() for cell in header]
    if len(names) == 1:
        for other, shown in _DELIMITERS.items():
            if other != delimiter and other in names[0]:
                return _wrong_delimiter(path, delimiter, shown)
    for index, name in enumerate(names):
        if not name:
            raise CnnCliError(
                f"header column {index + 1} has no name"
                + (" (a delimiter at the end of the line?)" if index == len(names) - 1 else ""),
                where=file_location(path, line=1),
                hint="name every column in the header line, or remove the extra delimiter",
            )
    return names


def _wrong_delimiter(path: Path, delimiter: str, shown: str) -> list[str]:
    current = _DELIMITERS.get(delimiter, delimiter)
    raise CnnCliError(
        f"the header has one column when split on '{current}' but contains '{shown}'",
        where=file_location(path, line=1),
        hint=f"set data.delimiter: '{shown}'",
    )


def choose_columns(
    config: Config, header: list[str], sample: pd.DataFrame | None = None
) -> Columns:
    """Match the config's label and feature names against the header.

    A feature column is categorical when most of its non-empty cells are not numbers; a
    column of numbers with a few text cells stays numeric, and ``load_dataset`` reports the text.

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
        categorical = tuple(name for name in features if not _mostly_numeric(sample[name]))
    return Columns(features=features, categorical=categorical, label=label)


def _require_column(config: Config, header: list[str], name: str, key: str) -> None:
    if name in header:
        return
    match = difflib.get_close_matches(name, header, n=1, cutoff=0.5)
    listed = ", ".join(header[:12]) + (", ..." if len(header) > 12 else "")
    hint = (
        f"did you mean '{match[0]}'? columns are: {listed}" if match else f"columns are: {listed}"
    )
    raise CnnCliError(
        f"column '{name}' is not in {Path(config.data.path).name}",
        where=config.locate(key),
        hint=hint,
    )


def _is_numeric(series: pd.Series) -> bool:
    import pandas as pd

    return bool(pd.api.types.is_numeric_dtype(series)) and not pd.api.types.is_bool_dtype(series)


def _mostly_numeric(series: pd.Series) -> bool:
    """Numbers, or text cells of which at least half parse as numbers (typos, not categories)."""
    import pandas as pd

    if _is_numeric(series):
        return True
    if pd.api.types.is_bool_dtype(series):
        return False
    present = series.dropna()
    if present.empty:
        return True
    parsed = pd.to_numeric(present.astype(str).str.strip(), errors="coerce")
    return bool(parsed.notna().sum() * 2 >= len(present))


def read_sample(path: str | Path, delimiter: str = ",", rows: int = SAMPLE_ROWS) -> pd.DataFrame:
    """Read the first rows only: enough to tell numeric from text columns."""
    return _read_csv(path, delimiter, nrows=rows)


def _read_csv(path: str | Path, delimiter: str, nrows: int | None = None) -> pd.DataFrame:
    import warnings

    import pandas as pd

    header = read_header(
        path, delimiter
    )  # clear messages for missing, empty and mis-delimited files
    try:
        with warnings.catch_warnings():
            # index_col=False: a long first row must not silently become the index (shifting
            # every column); pandas then warns about the long row, which we report as ragged.
            warnings.simplefilter("error", pd.errors.ParserWarning)
            frame = pd.read_csv(
                path,
                sep=delimiter,
                nrows=nrows,
                skipinitialspace=True,
                encoding="utf-8-sig",
                index_col=False,
            )
    except (pd.errors.ParserError, pd.errors.ParserWarning) as exc:
        raise _ragged_error(path, delimiter, len(header), exc) from exc
    except pd.errors.EmptyDataError as exc:
        raise CnnCliError("data file is empty", where=file_location(path)) from exc
    except UnicodeDecodeError as exc:
        raise _encoding_error(Path(path), exc) from exc
    frame.columns = [str(name).strip() for name in frame.columns]
    if frame.empty:
        raise CnnCliError(
            "data file has a header but no rows",
            where=file_location(path),
            hint="add data rows below the header",
        )
    return frame


def _records(path: str | Path, delimiter: str) -> Iterator[tuple[int, list[str]]]:
    """(first line, cells) of every non-blank data record, the way pandas counts rows."""
    with Path(path).open(newline="", encoding="utf-8-sig", errors="replace") as handle:
        reader = csv.reader(handle, delimiter=delimiter)
        next(reader, None)
        previous_end = reader.line_num
        for cells in reader:
            start, previous_end = previous_end + 1, reader.line_num
            if cells and any(cell.strip() for cell in cells) or len(cells) > 1:
                yield start, cells


def line_numbers(path: str | Path, delimiter: str, rows: list[int]) -> list[int]:
    """File line numbers (the header is line 1) of data rows given by their 0-based position.

    Blank lines and quoted cells spanning lines make these differ from ``row + 2``; the file is
    scanned only when an error needs the numbers.
    """
    wanted = set(rows)
    found: dict[int, int] = {}
    try:
        for index, (line, _cells) in enumerate(_records(path, delimiter)):
            if index in wanted:
                found[index] = line
                if len(found) == len(wanted):
                    break
    except (OSError, csv.Error):
        pass
    return [found.get(row, row + 2) for row in rows]


def _find_ragged(path: str | Path, delimiter: str, width: int) -> tuple[int, int] | None:
    """The first data record whose cell count differs from the header's: (line, cells)."""
    try:
        for line, cells in _records(path, delimiter):
            if len(cells) != width:
                return line, len(cells)
    except (OSError, csv.Error):
        return None
    return None


def _ragged_line(path: str | Path, ragged: tuple[int, int], width: int, hint: str) -> CnnCliError:
    line, cells = ragged
    return CnnCliError(
        f"line {line} has {cells} cells but the header has {width}",
        where=file_location(path, line=line),
        hint=f"every row needs one cell per header column; {hint}",
    )


def _ragged_error(path: str | Path, delimiter: str, width: int, exc: Exception) -> CnnCliError:
    ragged = _find_ragged(path, delimiter, width)
    if ragged is not None:
        return _ragged_line(path, ragged, width, "look for extra or missing delimiters")
    detail = str(exc).strip().splitlines()[-1].replace("Error tokenizing data. C error: ", "")
    return CnnCliError(
        f"cannot parse the CSV ({detail})",
        where=file_location(path),
        hint="check quoting: every opening quote needs a closing one",
    )


def load_dataset(
    config: Config, path: str | None = None, columns: Columns | None = None
) -> Dataset:
    """Read a whole CSV and return clean feature arrays and labels.

    Args:
        config: the validated config (column names, delimiter, missing-value policy).
        path: another CSV to read with the same columns (a test file); defaults to data.path.
        columns: the columns fixed at training time; chosen from this file when None.

    Raises:
        CnnCliError: one line naming the file, the column and the line of the first problem.
    """
    path = path or config.data.path
    delimiter = config.data.delimiter
    frame = _read_csv(path, delimiter)
    header = list(frame.columns)
    if columns is None:
        columns = choose_columns(config, header, frame)
    else:
        missing = [name for name in (*columns.features, columns.label) if name not in header]
        if missing:
            raise CnnCliError(
                f"{len(missing)} column(s) of the training data are missing: {', '.join(missing)}"
                f" (the file has {', '.join(header)})",
                where=file_location(path, line=1),
                hint="a test file needs the same columns as the training file",
            )
    frame = frame[list(columns.features) + [columns.label]]
    frame, dropped, filled = _handle_missing(
        frame, config.data.missing, path, delimiter, columns, len(header)
    )
    features: dict[str, np.ndarray] = {}
    for name in columns.features:
        if name in columns.categorical:
            features[name] = frame[name].astype(str).to_numpy()
        else:
            features[name] = _numeric_column(frame, name, path, delimiter)
    return Dataset(
        path=str(path),
        columns=columns,
        features=features,
        labels=frame[columns.label].to_numpy(),
        rows=len(frame),
        dropped_rows=dropped,
        filled_cells=filled,
        source_rows=frame.index.to_numpy(),
        delimiter=delimiter,
    )


def _numeric_column(frame: pd.DataFrame, name: str, path: str | Path, delimiter: str) -> np.ndarray:
    import pandas as pd

    series = frame[name]
    if _is_numeric(series):
        values = series.to_numpy(dtype=np.float64, na_value=np.nan)
        bad = np.isinf(values)
        what = "an infinite value"
    else:
        converted = pd.to_numeric(series.astype(str).str.strip(), errors="coerce")
        bad = (converted.isna() & series.notna()).to_numpy()
        if not bad.any():
            return converted.to_numpy(dtype=np.float64, na_value=np.nan)
        what = f"text {series.to_numpy()[int(np.argmax(bad))]!r}"
    if not bad.any():
        return values
    positions = np.flatnonzero(bad)
    line = line_numbers(path, delimiter, [int(frame.index[positions[0]])])[0]
    more = f" ({len(positions) - 1} more such cell(s) below)" if len(positions) > 1 else ""
    raise CnnCliError(
        f"numeric column holds {what}{more}",
        where=file_location(path, name, line=line),
        hint="fix or empty that cell (see data.missing), or leave the column out of data.features",
    )


def _handle_missing(
    frame: pd.DataFrame, policy: str, path: str | Path, delimiter: str, columns: Columns, width: int
) -> tuple[pd.DataFrame, int, int]:
    empty = frame.isna()
    if not empty.to_numpy().any():
        return frame, 0, 0
    ragged = _find_ragged(path, delimiter, width)  # short rows read as empty cells: say so instead
    if ragged is not None:
        raise _ragged_line(path, ragged, width, "check for missing delimiters")
    label_empty = empty[columns.label].to_numpy()
    if policy == "error" or (policy == "mean" and label_empty.any()):
        column = (
            columns.label if label_empty.any() else str(empty.columns[empty.any().to_numpy()][0])
        )
        rows = [int(frame.index[i]) for i in np.flatnonzero(empty[column].to_numpy())]
        lines = line_numbers(path, delimiter, rows[:5])
        shown = ", ".join(map(str, lines)) + (f" and {len(rows) - 5} more" if len(rows) > 5 else "")
        hint = (
            "fill in the label, or set data.missing: drop to leave those rows out"
            if column == columns.label
            else "fill them in, or set data.missing: drop or mean"
        )
        raise CnnCliError(
            f"{len(rows)} empty cell(s) on line(s) {shown}",
            where=file_location(path, column, line=lines[0]),
            hint=hint,
        )
    if policy == "drop":
        keep = ~empty.any(axis=1).to_numpy()
        kept = frame[keep]
        if kept.empty:
            raise CnnCliError(
                f"all {len(frame)} rows have an empty cell, so data.missing: drop leaves none",
                where=file_location(path),
                hint="fill the empty cells in, or use data.missing: mean",
            )
        return kept, int((~keep).sum()), 0
    numeric = [name for name in columns.features if name not in columns.categorical]
    return (
        frame,
        0,
        int(empty[numeric].to_numpy().sum()) if numeric else 0,
    )  # "mean": preprocessing fills


def check_classes(config: Config, dataset: Dataset, labels: np.ndarray, task: str) -> None:
    """A classification label needs two classes, and two rows per class to stratify a split.

    Raises:
        CnnCliError: naming the file, the label column and the lines of a too-small class.
    """
    if task != "classification" or dataset.rows == 0:
        return
    values, first, counts = np.unique(labels, return_index=True, return_counts=True)
    values = values.tolist()  # plain str/int, so messages read 'a', not np.str_('a')
    label = dataset.columns.label
    if len(values) < 2:
        raise CnnCliError(
            f"the label column has a single class ({values[0]!r}) in all {dataset.rows} rows",
            where=file_location(dataset.path, label),
            hint="classification needs at least two classes; check data.label",
        )
    splits = not config.data.test_path or config.fit.validation_split > 0
    if not (config.split.stratify and splits) or counts.min() >= 2:
        return
    rare = int(counts.argmin())
    line = dataset.lines([int(first[rare])])[0]
    raise CnnCliError(
        f"class {values[rare]!r} has only {counts[rare]} row (line {line}), too few to stratify",
        where=file_location(dataset.path, label, line=line),
        hint="add rows of that class, remove that row, or set split.stratify: false",
    )


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
    name = Path(dataset.path).name
    total = dataset.rows + dataset.dropped_rows
    if dataset.dropped_rows:
        dropped = dataset.dropped_rows
        return f"dropped {dropped} of {total} row(s) with empty cells from {name} (missing: drop)"
    if dataset.filled_cells:
        filled = dataset.filled_cells
        return f"filled {filled} empty cell(s) in {name} with the column mean (missing: mean)"
    return None
