"""Read a CSV larger than memory in chunks: the chunked reader, distinct values, and the
one-pass preprocessing fit of a streaming run.

``prepare_stream`` reads the file once in chunks of ``data.chunk_rows`` rows, deciding each
row's part (train, test, validation) with the ``hash`` rule from its row number, and fits the
preprocessing on the training rows as it goes (``PreprocessingFit``, the fitter training in
memory uses as one chunk). ``StreamedData`` then re-reads one part's rows chunk by chunk as
model inputs; ``cnncli.train.feed`` turns that into a Keras input. Memory holds a few chunks,
whatever the file's size.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from cnncli.config.models import Config
from cnncli.data.cells import CellRules, Cleaning, describe_cleaning
from cnncli.data.columns import Columns, RowIds, choose_columns, column_warnings, row_ids
from cnncli.data.csvfile import (
    encoding_error,
    file_location,
    line_numbers,
    ragged_error,
    read_header,
    read_sample,
)
from cnncli.data.preprocess import (
    MAX_INTEGER_CLASSES,
    PreprocessingFit,
    Preprocessor,
    encode_labels,
    transform_features,
)
from cnncli.data.split import (
    TEST,
    TRAIN,
    VALIDATION,
    HashSplit,
    TrainTestSplit,
    hash_rule,
    split_method,
)
from cnncli.errors import CnnCliError, Location

#: With ``data.streaming: auto``, files larger than this are streamed.
STREAMING_THRESHOLD_BYTES = 256 * 2**20
#: Test rows kept in memory to check the ONNX export against Keras.
CHECK_ROWS = 10_000


def wants_streaming(config: Config) -> bool:
    """Whether this run streams its data: ``data.streaming``, or auto by file size."""
    if config.data.streaming != "auto":
        return bool(config.data.streaming)
    try:
        return Path(config.data.path).stat().st_size > STREAMING_THRESHOLD_BYTES
    except OSError:
        return False  # the in-memory reader reports the missing file


# ---------------------------------------------------------------------------------------------
# Reading


@dataclass
class LabelledChunk:
    """Clean rows of one chunk of a training file, with their labels.

    ``first_row`` is the row number (after cleaning) of the first; ``source_rows`` are the
    rows' 0-based positions among the data rows of the file ``path``, for line numbers.
    """

    path: str
    first_row: int
    features: dict[str, np.ndarray]
    labels: np.ndarray
    source_rows: np.ndarray

    @property
    def rows(self) -> int:
        return len(self.labels)

    def take(self, mask: np.ndarray) -> LabelledChunk:
        return LabelledChunk(
            self.path,
            self.first_row,
            {name: values[mask] for name, values in self.features.items()},
            self.labels[mask],
            self.source_rows[mask],
        )


def read_columns(config: Config, path: str) -> tuple[Columns, bool]:
    """Feature and label columns from the header and first rows; whether the label is text."""
    header = read_header(path, config.data.delimiter)
    sample = read_sample(path, config.data.delimiter)
    columns = choose_columns(config, header, sample)
    return columns, sample[columns.label].dtype.kind in "OSUb"


def csv_frames(
    config: Config, path: str, wanted: list[str], text: tuple[str, ...]
) -> Iterator[Any]:
    """pandas DataFrames of ``data.chunk_rows`` rows of the ``wanted`` columns (``text`` as str).

    The reader's index counts data rows from 0 across chunks. A ragged row or a file that is not
    UTF-8 gets the same one-line message as the in-memory reader (``csvfile``).
    """
    import pandas as pd

    width = len(read_header(path, config.data.delimiter))
    try:
        with pd.read_csv(
            path,
            sep=config.data.delimiter,
            chunksize=config.data.chunk_rows,
            skipinitialspace=True,
            encoding="utf-8-sig",
            index_col=False,
            usecols=lambda name: name.strip() in wanted,
            dtype=dict.fromkeys(text, str),
        ) as reader:
            for frame in reader:
                frame.columns = [str(name).strip() for name in frame.columns]
                yield frame
    except pd.errors.ParserError as exc:
        raise ragged_error(path, config.data.delimiter, width, exc) from exc
    except UnicodeDecodeError as exc:
        raise encoding_error(Path(path), exc) from exc


def read_chunks(
    config: Config,
    path: str,
    columns: Columns,
    label_text: bool = False,
    cleaning: list[Cleaning] | None = None,
) -> Iterator[LabelledChunk]:
    """The file's clean rows, ``data.chunk_rows`` at a time, by the cell rules (``cells``).

    Args:
        config: the validated config.
        path: the file to read.
        columns: the feature and label columns.
        label_text: read the label as text.
        cleaning: gets what ``data.missing`` did to the file once it is read to the end.

    Raises:
        CnnCliError: an empty cell ``data.missing`` does not allow, text or an infinite value in
            a numeric column, or a row with the wrong number of cells, each with its line.
    """
    text = (*columns.categorical, *columns.dates, *([columns.label] if label_text else []))
    width = len(read_header(path, config.data.delimiter))
    rules = CellRules(config.data.missing, path, config.data.delimiter, columns, width)
    wanted = [*columns.features, columns.label]
    clean_row = 0
    for frame in csv_frames(config, path, wanted, text):
        features, labels, source_rows = rules.read(frame[wanted])  # the in-memory column order
        chunk = LabelledChunk(path, clean_row, features, labels, source_rows)
        clean_row += chunk.rows
        yield chunk
    rules.check_rows_left()
    if clean_row == 0:
        raise CnnCliError(
            "data file has no rows to train on",
            where=file_location(path),
            hint="add data rows below the header",
        )
    if cleaning is not None:
        cleaning.append(rules.cleaning)


@dataclass
class Survey:
    """What one chunked read of a file says about its columns, for ``validate``."""

    labels: np.ndarray  # the label's distinct values
    categories: dict[str, set[str]]  # each categorical column's distinct values
    rows: int  # rows after data.missing
    ids: RowIds | None = None  # which numeric columns number the rows


def survey_columns(config: Config, path: str, columns: Columns, label_text: bool = False) -> Survey:
    """Read a file in chunks through the cell rules: the label's distinct values, each
    categorical column's categories, and the row count.

    Memory holds the distinct values only. Numeric labels stop being collected once there are
    more than ``MAX_INTEGER_CLASSES`` (a regression label) unless the config says classification:
    ``infer_task`` gives the same answer on what is kept as on the whole column.

    Raises:
        CnnCliError: what training would refuse in a cell (an empty cell under
            ``missing: error``, text in a numeric column, a date that is not one), with its line.
    """
    import pandas as pd

    categories: dict[str, set[str]] = {name: set() for name in columns.categorical}
    labels: list[np.ndarray] = []
    rows = seen = 0
    collect_labels = True
    ids = row_ids(columns)
    for chunk in read_chunks(config, path, columns, label_text):
        rows += chunk.rows
        ids.update(chunk.features)
        for name, found in categories.items():
            values = chunk.features[name]
            found.update(value for value in pd.unique(values).tolist() if isinstance(value, str))
        if collect_labels:
            values = pd.unique(chunk.labels)
            labels.append(np.asarray(values))
            seen += len(values)
            if (
                values.dtype.kind in "iuf"
                and seen > 4 * MAX_INTEGER_CLASSES
                and config.task != "classification"
            ):
                labels = [pd.unique(np.concatenate(labels))]
                collect_labels = len(labels[0]) <= MAX_INTEGER_CLASSES
                seen = len(labels[0])
    merged = np.concatenate(labels) if labels else np.zeros(0)
    return Survey(np.asarray(pd.unique(merged)), categories, rows, ids)


# ---------------------------------------------------------------------------------------------
# The one-pass fit


@dataclass
class StreamFit:
    """What one chunked pass learned: each part's row count and the preprocessing fit so far.

    The caller decides the task and the label encoding from ``fit.label`` (the model's side
    of the rules), finishes the fit and gets the ``StreamedData`` with ``data``.
    """

    config: Config
    columns: Columns
    rule: HashSplit
    rows: int
    counts: dict[int, int]
    test_rows: int
    label_text: bool
    fit: PreprocessingFit
    notes: list[str]
    seed: int

    def data(self, task: str, preprocessor: Preprocessor) -> StreamedData:
        """The re-readable rows, once the fit is finished into ``preprocessor``."""
        return StreamedData(
            self.config,
            self.columns,
            task,
            preprocessor,
            self.rule,
            self.rows,
            self.counts,
            self.test_rows,
            self.label_text or self.fit.label.text,
            self.fit.label.whole,
            self.notes,
            self.seed,
        )


def prepare_stream(config: Config, seed: int) -> StreamFit:
    """One chunked pass: count each part's rows and fit the preprocessing on the training rows.

    Args:
        config: the validated config.
        seed: the run's seed (draws the validation rows).

    Raises:
        CnnCliError: a cell the rules refuse, or a split that leaves the train or test part
            empty.
    """
    split_method(config, streaming=True)  # refuses split.method: shuffle
    path = config.data.path
    columns, label_text = read_columns(config, path)
    rule = hash_rule(config, seed, has_test_file=config.data.test_path is not None)
    classification = config.task == "classification"
    fit = PreprocessingFit(columns.features, columns.categorical, classification, columns.dates)
    counts = {TRAIN: 0, TEST: 0, VALIDATION: 0}
    rows = 0
    cleaning: list[Cleaning] = []
    ids = row_ids(columns)
    for chunk in read_chunks(config, path, columns, label_text, cleaning):
        ids.update(chunk.features)
        parts = rule.parts(np.arange(chunk.first_row, chunk.first_row + chunk.rows))
        for part, count in zip(*np.unique(parts, return_counts=True), strict=True):
            counts[int(part)] += int(count)
        fit.update(chunk.features, chunk.labels, parts == TRAIN)
        rows += chunk.rows
    if counts[TRAIN] == 0 or (config.data.test_path is None and counts[TEST] == 0):
        raise CnnCliError(
            f"the hash split of {rows} rows left the train or test part empty",
            where=config.locate("split.test_size"),
            hint="use a larger data set or a different test_size",
        )
    test_rows = 0
    if config.data.test_path is not None:
        test_chunks = read_chunks(config, config.data.test_path, columns, label_text, cleaning)
        test_rows = sum(chunk.rows for chunk in test_chunks)
    notes = [note for note in map(describe_cleaning, cleaning) if note]
    notes += column_warnings(config, columns, fit.categories, fit.rows, ids)
    return StreamFit(config, columns, rule, rows, counts, test_rows, label_text, fit, notes, seed)


def _normalise(labels: np.ndarray, text: bool, whole: bool) -> np.ndarray:
    """``label_values`` for one chunk, with the whole-column facts from the first pass."""
    if text:
        return np.asarray([str(value) for value in labels]) if labels.dtype.kind == "O" else labels
    return labels.astype(np.int64) if whole else labels


@dataclass
class StreamedData:
    """A streaming run's data: the fitted preprocessing and re-readable row streams."""

    config: Config
    columns: Columns
    task: str
    preprocessor: Preprocessor
    rule: HashSplit
    rows: int
    counts: dict[int, int]
    test_rows: int
    label_text: bool
    label_whole: bool
    notes: list[str]
    seed: int

    @property
    def split(self) -> TrainTestSplit:
        empty = np.arange(0)
        return TrainTestSplit(
            self.rows, empty, empty, None, self.rule.to_json()["method"], self.rule
        )

    @property
    def n_outputs(self) -> int:
        return self.preprocessor.label.width

    @property
    def n_train(self) -> int:
        return self.counts.get(TRAIN, 0)

    def part_rows(self, part: int) -> int:
        """Rows of one part (TEST: the test file's when there is one)."""
        if part == TEST and self.config.data.test_path is not None:
            return self.test_rows
        return self.counts.get(part, 0)

    def arrays(self, chunk: LabelledChunk) -> tuple[np.ndarray, np.ndarray]:
        """Model inputs and targets of a chunk's rows."""
        pre = self.preprocessor
        x = transform_features(pre, chunk.features).reshape((-1, *pre.input_shape))
        labels = _normalise(chunk.labels, self.label_text, self.label_whole)

        def locate(position: int) -> Location:
            row = int(chunk.source_rows[position])
            line = line_numbers(chunk.path, self.config.data.delimiter, [row])[0]
            return file_location(chunk.path, pre.label.name, line=line)

        return x, encode_labels(pre.label, labels, locate)

    def part_chunks(self, part: int) -> Iterator[LabelledChunk]:
        """The rows of one part, chunk by chunk, in file order."""
        if part == TEST and self.config.data.test_path is not None:
            yield from read_chunks(
                self.config, self.config.data.test_path, self.columns, self.label_text
            )
            return
        for chunk in read_chunks(self.config, self.config.data.path, self.columns, self.label_text):
            parts = self.rule.parts(np.arange(chunk.first_row, chunk.first_row + chunk.rows))
            yield chunk.take(parts == part)

    def check_rows(self) -> np.ndarray:
        """Up to ``CHECK_ROWS`` test inputs, for the ONNX check."""
        blocks, total = [], 0
        for chunk in self.part_chunks(TEST):
            x, _ = self.arrays(chunk)
            blocks.append(x[: CHECK_ROWS - total])
            total += len(blocks[-1])
            if total >= CHECK_ROWS:
                break
        return (
            np.concatenate(blocks)
            if blocks
            else np.zeros((0, *self.preprocessor.input_shape), np.float32)
        )
