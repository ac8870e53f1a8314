"""Which columns of a CSV are features (numeric, categorical or date) and which is the label,
what kind of label it is, and what each column will become (``describe_columns``).

A column's type is ``data.columns``' when the config gives one; otherwise a column of numbers
is numeric and a column of text categorical. Text with nearly as many distinct values as rows
(an ID, free text) or that reads as dates is still categorical, but ``describe_columns`` warns:
one-hot encoding it makes one input per distinct value. A numeric column that numbers the rows
(``RowIds``) gets the same advice: drop it.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from cnncli.config.checks import label_given_a_type, label_listed_as_feature
from cnncli.config.models import Config
from cnncli.data.cells import is_numeric, parse_date
from cnncli.data.csvfile import file_location
from cnncli.data.preprocess import DATE_INPUTS, Preprocessor, task_of
from cnncli.errors import CnnCliError, Location, did_you_mean

if TYPE_CHECKING:
    import pandas as pd


#: The ``data.columns`` types read as text: one-hot categories and dates.
TEXT_TYPES = ("categorical", "date")


@dataclass(frozen=True)
class Columns:
    """Which columns of a CSV are features (numeric, categorical or date) and which is the
    label."""

    features: tuple[str, ...]
    categorical: tuple[str, ...]
    label: str
    dates: tuple[str, ...] = ()


def columns_of(pre: Preprocessor) -> Columns:
    """The columns a trained run reads, from its preprocessing."""
    return Columns(
        features=tuple(pre.feature_names),
        categorical=tuple(f.name for f in pre.features if f.kind == "categorical"),
        label=pre.label.name,
        dates=tuple(f.name for f in pre.features if f.kind == "date"),
    )


def choose_columns(
    config: Config, header: list[str], sample: pd.DataFrame | None = None
) -> Columns:
    """Match the config's label and feature names against the header.

    A column's type is its ``data.columns`` entry when there is one. Otherwise a feature column
    is categorical when most of its non-empty cells are not numbers; a column of numbers with a
    few text cells stays numeric, and ``load_dataset`` reports the text.

    Raises:
        CnnCliError: a named column is missing (with a did-you-mean and the columns there are).
    """
    label = config.data.label or header[-1]
    _require_column(config, header, label, "data.label")
    typed = config.data.columns
    for name in typed:
        where = config.source.locate(("data", "columns", name), on_key=True)
        _require_column(config, header, name, "data.columns", where)
    problem = label_listed_as_feature(config, label) or label_given_a_type(config, label)
    if problem is not None:
        raise problem
    if config.data.features:
        for index, name in enumerate(config.data.features):
            _require_column(config, header, name, f"data.features[{index}]")
        features = tuple(config.data.features)
    else:
        features = tuple(name for name in header if name != label and typed.get(name) != "drop")
    if not features:
        raise CnnCliError(
            "no feature columns left besides the label",
            where=config.locate("data"),
            hint="a CSV needs at least one feature column next to the label",
        )

    def inferred_text(name: str) -> bool:
        return sample is not None and not mostly_numeric(sample[name])

    categorical = tuple(
        name
        for name in features
        if typed.get(name) == "categorical" or (name not in typed and inferred_text(name))
    )
    dates = tuple(name for name in features if typed.get(name) == "date")
    return Columns(features=features, categorical=categorical, label=label, dates=dates)


def _require_column(
    config: Config, header: list[str], name: str, key: str, where: Location | None = None
) -> None:
    if name in header:
        return
    listed = ", ".join(header[:12]) + (", ..." if len(header) > 12 else "")
    hint = " ".join(filter(None, [did_you_mean(name, header), f"columns are: {listed}"]))
    raise CnnCliError(
        f"column '{name}' is not in {Path(config.data.path).name}",
        where=where or config.locate(key),
        hint=hint,
    )


def require_columns(path: str | Path, header: list[str], columns: Columns) -> None:
    """Another file (a test file) must have the columns chosen from the training file.

    Raises:
        CnnCliError: naming the columns it lacks and the ones it has.
    """
    missing = [name for name in (*columns.features, columns.label) if name not in header]
    if missing:
        raise CnnCliError(
            f"{len(missing)} column(s) of the training data are missing: {', '.join(missing)}"
            f" (the file has {', '.join(header)})",
            where=file_location(path, line=1),
            hint="a test file needs the same columns as the training file",
        )


def mostly_numeric(series: pd.Series) -> bool:
    """Numbers, or text cells of which at least half parse as numbers (typos, not categories)."""
    import pandas as pd

    if is_numeric(series):
        return True
    if pd.api.types.is_bool_dtype(series):
        return False
    present = series.dropna()
    if present.empty:
        return True
    parsed = pd.to_numeric(present.astype(str).str.strip(), errors="coerce")
    return bool(parsed.notna().sum() * 2 >= len(present))


def infer_task(labels: np.ndarray) -> str:
    """Text or few distinct integers → classification; other numbers → regression."""
    labels = np.asarray(labels)
    kind = labels.dtype.kind
    text = kind in "OUSb"
    whole = kind in "iu" or (kind == "f" and bool(np.all(np.mod(labels, 1) == 0)))
    return task_of(text, whole, 0 if text or not whole else len(np.unique(labels)))


def label_values(labels: np.ndarray) -> np.ndarray:
    """Labels normalised for class lookup: whole floats become ints, text stays text."""
    array = np.asarray(labels)
    if array.dtype.kind == "f" and np.all(np.mod(array, 1) == 0):
        return array.astype(np.int64)
    if array.dtype.kind == "O":
        return np.asarray([str(value) for value in array])
    return array


def require_two_classes(classes: Any, where: Location, counted: str = "") -> None:
    """A classification label needs at least two classes.

    Args:
        classes: the distinct label values found.
        where: what the message points at (the label column, or ``data.label``).
        counted: where they were counted, e.g. ``in all 10 rows``, ``in the training rows``.

    Raises:
        CnnCliError: one class or none.
    """
    if len(classes) >= 2:
        return
    found = np.asarray(classes).tolist()  # plain str/int, so messages read 'a', not np.str_('a')
    what = f"a single class ({found[0]!r})" if found else "no class"
    raise CnnCliError(
        f"the label column has {what}" + (f" {counted}" if counted else ""),
        where=where,
        hint="classification needs at least two classes; check data.label",
    )


# ---------------------------------------------------------------------------------------------
# What each column becomes

#: Text with at least this share of distinct values per row looks like an ID or free text.
ID_SHARE = 0.9
#: ... once it has more distinct values than this (a handful of rows proves nothing).
ID_MIN_DISTINCT = 10
#: Text whose distinct values are dates at least this often looks like a date column.
DATE_SHARE = 0.9
#: Distinct values tried as dates: enough to tell, cheap on a million IDs.
DATE_PROBES = 1000
#: What a date column's inputs hold, in words.
DATE_PARTS = "year, month, day of week, day of year"


def input_width(columns: Columns, categories: Mapping[str, set[str]]) -> int:
    """The model inputs the feature columns make: one per number, one per category (one-hot),
    ``DATE_INPUTS`` per date."""
    return sum(
        len(categories.get(name, ()))
        if name in columns.categorical
        else len(DATE_INPUTS)
        if name in columns.dates
        else 1
        for name in columns.features
    )


@dataclass(frozen=True)
class ColumnReport:
    """What each column of a file becomes, one line each, and the warnings among them."""

    lines: tuple[str, ...]
    warnings: tuple[str, ...]


#: Dates written another way (02/11/2017, 2.11.17, 2017/11/02): their day and month order is a
#: guess, so cnncli reads only ISO dates but still recognises these for its advice.
OTHER_DATE = re.compile(r"(\d{1,2}[/.-]\d{1,2}[/.-]\d{2,4}|\d{4}[/.]\d{1,2}[/.]\d{1,2})([ T].*)?")


def looks_like_dates(values: set[str], *, iso: bool = True) -> bool:
    """Whether most of a text column's distinct values are ISO dates (or, with ``iso=False``,
    dates written another way)."""
    probes = sorted(values)[:DATE_PROBES]
    if iso:
        dated = sum(parse_date(value) is not None for value in probes)
    else:
        dated = sum(OTHER_DATE.fullmatch(value.strip()) is not None for value in probes)
    return bool(probes) and dated >= DATE_SHARE * len(probes)


@dataclass(frozen=True)
class TextAdvice:
    """Why an inferred text column should not be one-hot encoded, and the fix."""

    name: str
    distinct: int
    rows: int
    dates: bool
    #: Dates, but not written YYYY-MM-DD (02/11/2017): they must be rewritten to be read.
    other_dates: bool = False

    @property
    def looks_like(self) -> str:
        if self.other_dates:
            return "dates not written YYYY-MM-DD"
        return "dates" if self.dates else "an ID or free text"

    @property
    def fix(self) -> str:
        if self.other_dates:
            return (
                f"rewrite them as YYYY-MM-DD (e.g. 2017-11-02), then set data.columns:"
                f" {{{self.name}: date}} ({len(DATE_INPUTS)} inputs: {DATE_PARTS})"
            )
        if self.dates:
            return (
                f"set data.columns: {{{self.name}: date}} ({len(DATE_INPUTS)} inputs: {DATE_PARTS})"
            )
        return f"set data.columns: {{{self.name}: drop}}"

    def warning(self) -> str:
        """The one-line warning ``validate``, ``summary`` and ``train`` print."""
        return (
            f"column '{self.name}' looks like {self.looks_like} ({self.distinct} distinct"
            f" value(s) in {self.rows} row(s)): one-hot encoding makes {self.distinct}"
            f" input(s); {self.fix}"
        )


def text_advice(name: str, values: set[str], rows: int) -> TextAdvice | None:
    """Advice for an inferred text column that one-hot encoding would blow up, or None.

    Args:
        name: the column.
        values: its distinct values (one one-hot input each).
        rows: the rows they were counted in.
    """
    distinct = len(values)
    if looks_like_dates(values):
        return TextAdvice(name, distinct, rows, dates=True)
    if looks_like_dates(values, iso=False):
        return TextAdvice(name, distinct, rows, dates=True, other_dates=True)
    if distinct > ID_MIN_DISTINCT and distinct >= ID_SHARE * rows:
        return TextAdvice(name, distinct, rows, dates=False)
    return None


#: Names that say a column numbers the rows: ``id``, ``customer_id``, ``customerId``, ``index``.
ID_NAME = re.compile(r"(?i:id|index|row|.*_id)|.*[a-z0-9](?:Id|ID)")
#: Values of an ID-like name kept to tell whether all are distinct (when not increasing).
MAX_ID_VALUES = 1_000_000


@dataclass
class _RowNumbers:
    """What one numeric column's values say so far about numbering the rows."""

    named: bool
    rows: int = 0
    whole: bool = True
    increasing: bool = True
    step_one: bool = True
    last: float = math.nan
    kept: list[np.ndarray] | None = None


class RowIds:
    """Which numeric feature columns are row IDs, read chunk by chunk in the file's order.

    A column is an ID when it holds whole numbers only, no empty cell, more than
    ``ID_MIN_DISTINCT`` rows, and either counts up by exactly 1 from row to row, or has an ID's
    name (``ID_NAME``) and no value twice. As a feature an ID teaches the model the row's
    position, not anything about the row; text IDs get the same advice from ``text_advice``.
    """

    def __init__(self, names: Iterable[str]) -> None:
        self._facts: dict[str, _RowNumbers] = {}
        for name in names:
            named = bool(ID_NAME.fullmatch(name))  # its values are kept, to find one twice
            self._facts[name] = _RowNumbers(named, kept=[] if named else None)

    def update(self, features: Mapping[str, np.ndarray]) -> None:
        """One chunk's raw numeric columns (float64, NaN for an empty cell), in file order."""
        for name, facts in self._facts.items():
            values = np.asarray(features[name], dtype=np.float64)
            if not facts.whole or not len(values):
                continue
            if np.isnan(values).any() or np.any(np.mod(values, 1) != 0):
                facts.whole, facts.kept = False, None
                continue
            steps = np.diff(values, prepend=values[0] - 1 if facts.rows == 0 else facts.last)
            facts.increasing = facts.increasing and bool(np.all(steps > 0))
            facts.step_one = facts.step_one and bool(np.all(steps == 1))
            facts.rows += len(values)
            facts.last = float(values[-1])
            if facts.kept is not None:
                facts.kept.append(values)
                if facts.rows > MAX_ID_VALUES:
                    facts.kept = None

    def advice(self, name: str) -> str | None:
        """The fix for a column that is a row ID, or None."""
        facts = self._facts.get(name)
        if facts is None or not facts.whole or facts.rows <= ID_MIN_DISTINCT:
            return None
        if facts.named and not facts.increasing:
            if facts.kept is None:
                return None  # too many rows to tell cheaply: say nothing
            values = np.concatenate(facts.kept)
            if len(np.unique(values)) != len(values):
                return None
        elif not (facts.named or facts.step_one):
            return None
        return f"set data.columns: {{{name}: drop}}"

    def warning(self, name: str) -> str | None:
        """The one-line warning ``validate``, ``summary`` and ``train`` print for an ID."""
        fix = self.advice(name)
        if fix is None:
            return None
        rows = self._facts[name].rows
        return (
            f"column '{name}' looks like a row ID ({rows} distinct whole numbers in {rows}"
            f" row(s)): as a feature it teaches the model each row's position; {fix}"
        )


def describe_columns(
    config: Config,
    header: list[str],
    columns: Columns,
    categories: Mapping[str, set[str]],
    rows: int,
    ids: RowIds | None = None,
) -> ColumnReport:
    """Every column's type (declared or inferred) and what it becomes, with the warnings.

    Args:
        config: the config (``data.columns``, ``preprocess.features``).
        header: the file's columns, in order.
        columns: the columns chosen (``choose_columns``).
        categories: each categorical column's distinct values.
        rows: the rows they were counted in.
        ids: the numeric columns' ID facts (``RowIds``), for their advice.
    """
    typed = config.data.columns
    lines: list[str] = []
    warnings: list[str] = []
    for name in header:
        declared = " (data.columns)" if name in typed else ""
        if name == columns.label:
            lines.append(f"{name}: label")
        elif name not in columns.features:
            why = "data.columns: drop" if typed.get(name) == "drop" else "not in data.features"
            lines.append(f"{name}: not used ({why})")
        elif name in columns.dates:
            lines.append(f"{name}: date{declared} → {len(DATE_INPUTS)} inputs ({DATE_PARTS})")
        elif name in columns.categorical:
            values = categories.get(name, set())
            counted = f"{len(values)} distinct in {rows} row(s)"
            advice = None if declared else text_advice(name, values, rows)
            if advice is None:
                lines.append(f"{name}: text{declared}, {counted} → {len(values)} one-hot input(s)")
                continue
            warnings.append(advice.warning())
            lines.append(
                f"{name}: text, {counted} → looks like {advice.looks_like};"
                f" {len(values)} inputs if one-hot encoded; {advice.fix}"
            )
        else:
            warning = None if declared or ids is None else ids.warning(name)
            if warning is None:
                lines.append(f"{name}: numeric{declared} → 1 input ({config.preprocess.features})")
                continue
            warnings.append(warning)
            lines.append(f"{name}: numeric → looks like a row ID; {ids.advice(name)}")
    return ColumnReport(tuple(lines), tuple(warnings))


def column_warnings(
    config: Config,
    columns: Columns,
    categories: Mapping[str, set[str]],
    rows: int,
    ids: RowIds | None = None,
) -> list[str]:
    """``describe_columns``' warnings alone: what ``train`` prints."""
    header = [*columns.features, columns.label]
    return list(describe_columns(config, header, columns, categories, rows, ids).warnings)


def row_ids(columns: Columns) -> RowIds:
    """A ``RowIds`` for the numeric feature columns chosen."""
    return RowIds(
        name
        for name in columns.features
        if name not in columns.categorical and name not in columns.dates
    )
