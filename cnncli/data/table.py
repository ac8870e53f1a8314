"""Read a whole CSV into memory: clean feature arrays and raw labels (``Dataset``).

The file's text rules are in ``csvfile``, the cell rules in ``cells`` (the same ones the
chunked reader and predict use), the column choice in ``columns``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from cnncli.config.models import Config
from cnncli.data.cells import CellRules
from cnncli.data.columns import (
    TEXT_TYPES,
    Columns,
    choose_columns,
    require_columns,
    require_two_classes,
)
from cnncli.data.csvfile import file_location, line_numbers, read_csv
from cnncli.errors import CnnCliError


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
    if columns is None:  # only the types the config gives are known before reading
        text = [name for name, kind in config.data.columns.items() if kind in TEXT_TYPES]
    else:
        text = [*columns.categorical, *columns.dates]
    known = (*columns.features, columns.label) if columns else ()
    frame = read_csv(path, delimiter, text=text, known=known)
    header = list(frame.columns)
    if columns is None:
        columns = choose_columns(config, header, frame)
    else:
        require_columns(path, header, columns)
    rules = CellRules(config.data.missing, str(path), delimiter, columns, len(header))
    features, labels, source_rows = rules.read(frame[[*columns.features, columns.label]])
    rules.check_rows_left()
    return Dataset(
        path=str(path),
        columns=columns,
        features=features,
        labels=labels,
        rows=rules.cleaning.rows,
        dropped_rows=rules.cleaning.dropped_rows,
        filled_cells=rules.cleaning.filled_cells,
        source_rows=source_rows,
        delimiter=delimiter,
    )


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
    require_two_classes(values, file_location(dataset.path, label), f"in all {dataset.rows} rows")
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
