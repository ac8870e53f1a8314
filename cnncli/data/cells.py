"""How a CSV cell becomes a value: one set of rules for training in memory, training from
chunks and predicting a file.

- A numeric cell is a number. Text there is an error naming its line, and so is ``inf`` or
  ``-inf``: one such cell makes a column's mean and scale infinite.
- The strings pandas reads as missing (``""``, ``NA``, ``nan``, ...) are empty cells. An empty
  cell follows ``data.missing``: ``error``, ``drop`` (its row), or ``mean`` (filled with the
  training mean when transformed). An empty label is an error unless its row is dropped.
- A categorical cell is its text.
- A date cell (``data.columns: {name: date}``) is an ISO date, ``YYYY-MM-DD``, optionally with
  a time (``2021-03-04T10:30``, ``2021-03-04 10:30:00``, a zone suffix): the date part counts,
  the time does not. Anything else there is an error naming its line.

Messages name the file, the column and the line, the same on every path.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import numpy as np

from cnncli.data.csvfile import file_location, find_ragged, line_numbers, ragged_line
from cnncli.errors import CnnCliError

if TYPE_CHECKING:
    import pandas as pd

    from cnncli.data.columns import Columns
    from cnncli.data.preprocess import Preprocessor


#: The strings pandas' CSV reader takes for an empty cell (its ``STR_NA_VALUES``), written out so
#: readers that check cells one by one (``predict --input``) need not import pandas; a test keeps
#: the two equal.
NA_STRINGS = frozenset(
    {"", "#N/A", "#N/A N/A", "#NA", "-1.#IND", "-1.#QNAN", "-NaN", "-nan", "1.#IND", "1.#QNAN"}
    | {"<NA>", "N/A", "NA", "NULL", "NaN", "None", "n/a", "nan", "null"}
)


def empty_allowed(pre: Preprocessor, missing: str) -> frozenset[str]:
    """Features whose empty cells a trained run can take: numeric ones it fills with the training
    mean, and categorical ones under ``missing: mean`` (an empty category, encoded as all zeros).
    """
    return frozenset(
        feature.name
        for feature in pre.features
        if feature.fill is not None or (feature.kind == "categorical" and missing == "mean")
    )


#: What pandas' C parser reads as a float (``inf`` and ``nan`` included; the rules refuse them).
#: ASCII digits only: pandas reads '١٢' or '１２' as text, though Python's float() takes them.
NUMBER = re.compile(
    r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?|[+-]?(inf|infinity|nan)", re.IGNORECASE | re.ASCII
)

INFINITE_VALUE = "numeric column holds an infinite value"
#: Models take float32: a larger number is finite here but infinite (then NaN) inside the model.
FLOAT32_MAX = float(np.finfo(np.float32).max)
TOO_LARGE = "numeric column holds a number beyond float32's range (±3.4e38)"


def out_of_range(values: np.ndarray) -> np.ndarray:
    """Which numbers a model cannot take: infinite, or beyond float32 (NaN is not among them)."""
    return np.abs(values) > FLOAT32_MAX


def out_of_range_message(value: float) -> str:
    return INFINITE_VALUE if np.isinf(value) else TOO_LARGE


NUMBER_HINT = "fix or empty that cell (see data.missing), or leave the column out of data.features"

#: An ISO date, optionally with a time and zone; only the date part is used.
DATE = re.compile(
    r"\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|[+-]\d{2}:?\d{2})?)?",
    re.ASCII,
)
DATE_HINT = (
    "write dates as YYYY-MM-DD (a time may follow), empty that cell (see data.missing),"
    " or give the column another type in data.columns"
)


def text_in_numbers(text: object) -> str:
    """The message for text in a numeric column."""
    return f"numeric column holds text {text!r}"


def not_a_date(text: object) -> str:
    """The message for a cell of a date column that is not a date."""
    return f"date column holds {text!r}, not a YYYY-MM-DD date"


def parse_date(text: str) -> float | None:
    """Days since 1970-01-01 of a date cell's date part, or None when it is not a date."""
    value = text.strip()
    if DATE.fullmatch(value) is None:
        return None
    try:
        return float(np.datetime64(value[:10], "D").astype(np.int64))
    except ValueError:  # 2021-02-30: the right shape, but no such day
        return None


def parse_dates(values: np.ndarray) -> np.ndarray:
    """Days since 1970-01-01 of each cell (float64), NaN where it is empty or not a date.

    Each distinct text is parsed once: a date column repeats its values.
    """
    values = np.asarray(values, dtype=object)
    present = np.asarray([isinstance(value, str) for value in values.tolist()], dtype=bool)
    days = np.full(len(values), np.nan)
    if present.any():
        found, inverse = np.unique(values[present].astype(str), return_inverse=True)
        parsed = np.asarray([parse_date(text) for text in found.tolist()], dtype=float)
        days[present] = parsed[inverse.reshape(-1)]
    return days


def date_column(series: pd.Series, path: str | Path, delimiter: str) -> np.ndarray:
    """A date column's cells as days since 1970-01-01 (float64), NaN where empty.

    Raises:
        CnnCliError: a cell that is not a date, naming the first one's line.
    """
    cells = series.to_numpy(dtype=object)
    present = series.notna().to_numpy()
    text = np.asarray([str(c) if p else c for c, p in zip(cells, present, strict=True)], object)
    days = parse_dates(text)
    bad = present & np.isnan(days)
    if bad.any():
        what = not_a_date(str(cells[int(np.argmax(bad))]))
        _raise_at(series, bad, what, path, delimiter, DATE_HINT)
    return days


def is_numeric(series: pd.Series) -> bool:
    """Whether pandas read a column as numbers (booleans are not numbers here)."""
    import pandas as pd

    return bool(pd.api.types.is_numeric_dtype(series)) and not pd.api.types.is_bool_dtype(series)


def numeric_column(series: pd.Series, path: str | Path, delimiter: str) -> np.ndarray:
    """A numeric column's cells as float64, NaN where empty.

    Args:
        series: the column as pandas read it; its index counts the file's data rows from 0.
        path: the file, for the message.
        delimiter: the file's delimiter, to find line numbers.

    Raises:
        CnnCliError: a text or infinite cell, naming the first one's line and how many follow.
    """
    import pandas as pd

    if is_numeric(series):
        values = series.to_numpy(dtype=np.float64, na_value=np.nan)
    else:
        converted = pd.to_numeric(series.astype(str).str.strip(), errors="coerce")
        text = (converted.isna() & series.notna()).to_numpy()
        if text.any():
            _raise_at(
                series,
                text,
                text_in_numbers(series.to_numpy()[int(np.argmax(text))]),
                path,
                delimiter,
            )
        values = converted.to_numpy(dtype=np.float64, na_value=np.nan)
    bad = out_of_range(values)
    if bad.any():
        message = out_of_range_message(values[int(np.argmax(bad))])
        _raise_at(series, bad, message, path, delimiter)
    return values


def _raise_at(
    series: pd.Series,
    bad: np.ndarray,
    what: str,
    path: str | Path,
    delimiter: str,
    hint: str = NUMBER_HINT,
) -> None:
    positions = np.flatnonzero(bad)
    line = line_numbers(path, delimiter, [int(series.index[positions[0]])])[0]
    more = f" ({len(positions) - 1} more such cell(s) below)" if len(positions) > 1 else ""
    raise CnnCliError(
        f"{what}{more}", where=file_location(path, str(series.name), line=line), hint=hint
    )


def text_column(series: pd.Series) -> np.ndarray:
    """A categorical column's cells as text."""
    return series.astype(str).to_numpy()


def usable_numbers(values: np.ndarray, fillable: bool) -> np.ndarray:
    """Which parsed numbers a model can take: within float32's range, or empty where
    ``missing: mean`` fills."""
    return (np.abs(values) <= FLOAT32_MAX) | (np.isnan(values) & fillable)


def cell_problem(
    name: str, text: str, *, numeric: bool, may_be_empty: bool, date: bool = False
) -> str | None:
    """Why one cell of column ``name``, as text, cannot be read, or None.

    The row-by-row form of the rules, worded like the column-wise errors above.
    """
    value = text.strip()
    number = numeric and NUMBER.fullmatch(value) is not None
    # pandas skips leading spaces only, and takes just these spellings as empty: 'NAN', '+nan'
    # or 'NA ' is text to it, which training refuses
    if text.lstrip() in NA_STRINGS:
        if may_be_empty:
            return None
        if value:  # text such as 'NA' or 'nan' is no blank: say how it was read
            return f"column '{name}': {value!r} reads as a missing value"
        return f"column '{name}' is empty"
    if date:
        return None if parse_date(value) is not None else f"column '{name}': {not_a_date(value)}"
    if not numeric:
        return None
    if not number or np.isnan(float(value)):
        return f"column '{name}': {text_in_numbers(value)}"
    if out_of_range(np.float64(value)):
        return f"column '{name}': {out_of_range_message(float(value))}"
    return None


# ---------------------------------------------------------------------------------------------
# Empty cells


class Cleaned(Protocol):
    """What ``describe_cleaning`` reads: a file and what ``data.missing`` did to its rows."""

    path: str
    rows: int
    dropped_rows: int
    filled_cells: int


@dataclass
class Cleaning:
    """What ``data.missing`` did to one file, added up over its chunks."""

    path: str
    rows: int = 0
    dropped_rows: int = 0
    filled_cells: int = 0


def describe_cleaning(cleaned: Cleaned) -> str | None:
    """One line on what ``missing: drop`` or ``mean`` did, for the user."""
    name = Path(cleaned.path).name
    total = cleaned.rows + cleaned.dropped_rows
    if cleaned.dropped_rows:
        dropped = cleaned.dropped_rows
        return f"dropped {dropped} of {total} row(s) with empty cells from {name} (missing: drop)"
    if cleaned.filled_cells:
        filled = cleaned.filled_cells
        return f"filled {filled} empty cell(s) in {name} with the column mean (missing: mean)"
    return None


class CellRules:
    """The rules applied to the frames of one file (one frame, or one per chunk).

    Args:
        policy: ``data.missing``.
        path: the file.
        delimiter: its delimiter.
        columns: the feature and label columns chosen for training.
        width: the header's cell count (short rows read as empty cells: they are reported).
    """

    def __init__(
        self, policy: str, path: str, delimiter: str, columns: Columns, width: int
    ) -> None:
        self.policy = policy
        self.path = path
        self.delimiter = delimiter
        self.columns = columns
        self.label = columns.label
        self.numeric = [name for name in columns.features if name not in columns.categorical]
        # dates are among ``numeric``: their empty cells are filled (a mean day) like numbers
        self.width = width
        self.cleaning = Cleaning(path)
        self._ragged_checked = False

    def read(self, frame: pd.DataFrame) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray]:
        """A frame's kept rows: feature arrays, raw labels, and each row's data-row number.

        Raises:
            CnnCliError: a short row, an empty cell ``data.missing`` does not allow, text or an
                infinite value in a numeric column; each with its line.
        """
        frame = self.apply(frame)
        features: dict[str, np.ndarray] = {}
        for name in self.columns.features:
            if name in self.columns.categorical:
                features[name] = text_column(frame[name])
            elif name in self.columns.dates:
                features[name] = date_column(frame[name], self.path, self.delimiter)
            else:
                features[name] = numeric_column(frame[name], self.path, self.delimiter)
        return features, frame[self.label].to_numpy(), frame.index.to_numpy()

    def apply(self, frame: pd.DataFrame) -> pd.DataFrame:
        """The frame's rows that ``data.missing`` keeps; adds to ``cleaning``.

        Raises:
            CnnCliError: a short row, or empty cells that ``data.missing`` does not allow,
                with their lines.
        """
        empty = frame.isna()
        if not empty.to_numpy().any():
            self.cleaning.rows += len(frame)
            return frame
        self._check_ragged()
        label_empty = empty[self.label].to_numpy()
        if self.policy == "error" or (self.policy == "mean" and label_empty.any()):
            column = (
                self.label if label_empty.any() else str(empty.columns[empty.any().to_numpy()][0])
            )
            rows = [int(frame.index[i]) for i in np.flatnonzero(empty[column].to_numpy())]
            lines = line_numbers(self.path, self.delimiter, rows[:5])
            shown = ", ".join(map(str, lines))
            shown += f" and {len(rows) - 5} more" if len(rows) > 5 else ""
            hint = (
                "fill in the label, or set data.missing: drop to leave those rows out"
                if column == self.label
                else "fill them in, or set data.missing: drop or mean"
            )
            raise CnnCliError(
                f"{len(rows)} empty cell(s) on line(s) {shown}",
                where=file_location(self.path, column, line=lines[0]),
                hint=hint,
            )
        if self.policy == "drop":
            keep = ~empty.any(axis=1).to_numpy()
            self.cleaning.dropped_rows += int((~keep).sum())
            self.cleaning.rows += int(keep.sum())
            return frame[keep]
        self.cleaning.filled_cells += (
            int(empty[self.numeric].to_numpy().sum()) if self.numeric else 0
        )
        self.cleaning.rows += len(frame)
        return frame  # "mean": the preprocessing fills them

    def check_rows_left(self) -> None:
        """After the last frame: ``missing: drop`` must leave rows to train on.

        Raises:
            CnnCliError: every row had an empty cell.
        """
        if self.cleaning.rows == 0 and self.cleaning.dropped_rows:
            raise CnnCliError(
                f"all {self.cleaning.dropped_rows} rows have an empty cell,"
                " so data.missing: drop leaves none",
                where=file_location(self.path),
                hint="fill the empty cells in, or use data.missing: mean",
            )

    def _check_ragged(self) -> None:
        if self._ragged_checked:
            return
        self._ragged_checked = True  # the scan reads the whole file: once per file is enough
        ragged = find_ragged(self.path, self.delimiter, self.width)
        if ragged is not None:
            raise ragged_line(self.path, ragged, self.width, "check for missing delimiters")
