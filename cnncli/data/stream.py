"""Train on CSV files larger than memory: chunked reading, a one-pass preprocessing fit, a
streaming Keras input and the hash split.

``prepare_stream`` reads the file once in chunks of ``data.chunk_rows`` rows, deciding each
row's part (train, test, validation) with the ``hash`` rule from its row number, and fits the
preprocessing on the training rows as it goes: running mean and variance (``RunningMoments``),
category sets, label classes. Training then reads the file again each epoch through
``RowBatches``, a Keras ``PyDataset`` fed by a background thread that parses, splits and
transforms the next chunk while the model trains on the current one. Memory holds a few
chunks, whatever the file's size. ``fit.shuffle`` shuffles rows within each chunk.
"""

from __future__ import annotations

import math
import queue
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from cnncli.config.models import Config
from cnncli.data.preprocess import (
    LabelTransform,
    Preprocessor,
    RunningMoments,
    categorical_transform,
    encode_labels,
    fit_label,
    numeric_transform,
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

# the private two: a streamed file's errors read like a loaded one's
from cnncli.data.table import (
    MAX_INTEGER_CLASSES,
    Columns,
    _encoding_error,
    _ragged_error,
    choose_columns,
    file_location,
    line_numbers,
    read_header,
    read_sample,
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
class Chunk:
    """Clean rows of one chunk; ``first_row`` is the row number (after cleaning) of the first."""

    first_row: int
    features: dict[str, np.ndarray]
    labels: np.ndarray

    @property
    def rows(self) -> int:
        return len(self.labels)

    def take(self, mask: np.ndarray) -> Chunk:
        return Chunk(
            self.first_row,
            {name: values[mask] for name, values in self.features.items()},
            self.labels[mask],
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
    UTF-8 gets the same one-line message as the in-memory reader (data.py).
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
        raise _ragged_error(path, config.data.delimiter, width, exc) from exc
    except UnicodeDecodeError as exc:
        raise _encoding_error(Path(path), exc) from exc


def read_chunks(
    config: Config, path: str, columns: Columns, label_text: bool = False
) -> Iterator[Chunk]:
    """The file's clean rows, ``data.chunk_rows`` at a time, with ``data.missing`` applied.

    Raises:
        CnnCliError: an empty cell (under ``missing: error``, or in the label), text in a numeric
            column, or a row with the wrong number of cells, each with its line number.
    """
    text = (*columns.categorical, *([columns.label] if label_text else []))
    clean_row = 0
    for frame in csv_frames(config, path, [*columns.features, columns.label], text):
        keep = _missing_rows(frame, config, path, columns)
        if keep is not None:
            frame = frame[keep]
        features = {}
        for name in columns.features:
            if name in columns.categorical:
                features[name] = frame[name].astype(str).to_numpy()
            else:
                features[name] = _numeric(frame, name, path, config.data.delimiter)
        chunk = Chunk(clean_row, features, frame[columns.label].to_numpy())
        clean_row += chunk.rows
        yield chunk
    if clean_row == 0:
        raise CnnCliError(
            "data file has no rows to train on",
            where=file_location(path),
            hint="add data rows below the header",
        )


def _missing_rows(frame: Any, config: Config, path: str, columns: Columns) -> np.ndarray | None:
    """Rows to keep under ``missing: drop`` (None: keep all); raises for ``error`` and labels."""
    empty = frame.isna().to_numpy()
    if not empty.any():
        return None
    names = list(frame.columns)
    label_empty = empty[:, names.index(columns.label)]
    if config.data.missing == "error" or label_empty.any():
        first_column = names[int(np.flatnonzero(empty.any(axis=0))[0])]
        column = columns.label if label_empty.any() else first_column
        rows = frame.index[np.flatnonzero(empty[:, names.index(column)])]
        line = line_numbers(path, config.data.delimiter, [int(rows[0])])[0]
        hint = (
            "fill in the label, or remove those rows"
            if column == columns.label
            else "fill them in, or set data.missing: drop or mean"
        )
        raise CnnCliError(
            f"empty cell on line {line} ({len(rows)} in this chunk of {len(frame)} rows)",
            where=file_location(path, column, line=line),
            hint=hint,
        )
    return ~empty.any(axis=1) if config.data.missing == "drop" else None


def _numeric(frame: Any, name: str, path: str, delimiter: str) -> np.ndarray:
    import pandas as pd

    series = frame[name]
    if pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series):
        return series.to_numpy(dtype=np.float64, na_value=np.nan)
    bad = (pd.to_numeric(series, errors="coerce").isna() & series.notna()).to_numpy()
    position = int(np.argmax(bad))
    line = line_numbers(path, delimiter, [int(frame.index[position])])[0]
    raise CnnCliError(
        f"numeric column holds text {series.iloc[position]!r}",
        where=file_location(path, name, line=line),
        hint="fix or remove that cell, or list only numeric columns in data.features",
    )


def distinct_values(
    config: Config, path: str, columns: Columns
) -> tuple[np.ndarray, dict[str, set[str]]]:
    """The label's distinct values and each categorical column's categories, read in chunks.

    Memory holds the distinct values only. Numeric labels stop being collected once there are
    more than ``MAX_INTEGER_CLASSES`` (a regression label) unless the config says classification:
    ``infer_task`` gives the same answer on what is kept as on the whole column.
    """
    import pandas as pd

    wanted = [*columns.categorical, columns.label]
    categories: dict[str, set[str]] = {name: set() for name in columns.categorical}
    labels: list[np.ndarray] = []
    seen = 0
    collect_labels = True
    for frame in csv_frames(config, path, wanted, columns.categorical):
        for name, found in categories.items():
            found.update(pd.unique(frame[name].dropna()).tolist())
        if collect_labels:
            values = pd.unique(frame[columns.label].dropna())
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
    return np.asarray(pd.unique(merged)), categories


# ---------------------------------------------------------------------------------------------
# The one-pass fit


@dataclass
class _LabelFacts:
    """What one pass learns about the label column: what ``infer_task`` and ``fit_label`` need."""

    text: bool = False
    whole: bool = True
    seen: set[Any] = field(default_factory=set)  # every row's value, until there are too many
    train_values: set[Any] = field(default_factory=set)
    moments: RunningMoments = field(default_factory=RunningMoments)

    def update(self, labels: np.ndarray, train: np.ndarray) -> None:
        if labels.dtype.kind in "OUSb":
            self.text = True
        elif not self.text:
            self.whole = self.whole and bool(np.all(np.mod(labels, 1) == 0))
            self.moments.update(labels[train])
        if self.text or len(self.seen) <= MAX_INTEGER_CLASSES:  # continuous labels: stop collecting
            import pandas as pd

            self.seen.update(pd.unique(labels).tolist())
            self.train_values.update(pd.unique(labels[train]).tolist())

    def task(self) -> str:
        """``infer_task``'s answer, from the pass instead of the whole column."""
        if self.text:
            return "classification"
        return (
            "classification"
            if self.whole and len(self.seen) <= MAX_INTEGER_CLASSES
            else "regression"
        )

    def classes(self) -> np.ndarray:
        """The training rows' distinct labels, as ``np.unique(label_values(...))`` gives them."""
        values = np.asarray(
            [str(v) for v in self.train_values] if self.text else sorted(self.train_values)
        )
        return np.unique(_normalise(values, self.text, self.whole))


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

    def batches(
        self, part: int, batch_size: int, shuffle: bool = False, first_epoch: int = 0
    ) -> Any:
        """A Keras ``PyDataset`` over one part's rows (TEST: the test file when there is one).

        ``first_epoch`` is where a resumed fit starts, so epoch N shuffles as epoch N did.
        """
        test_file = part == TEST and self.config.data.test_path is not None
        rows = self.test_rows if test_file else self.counts.get(part, 0)
        return make_row_batches(self, part, rows, batch_size, shuffle, first_epoch)

    def arrays(self, chunk: Chunk) -> tuple[np.ndarray, np.ndarray]:
        """Model inputs and targets of a chunk's rows."""
        x = transform_features(self.preprocessor, chunk.features).reshape(
            (-1, *self.preprocessor.input_shape)
        )
        labels = _normalise(chunk.labels, self.label_text, self.label_whole)
        return x, _encode(self.preprocessor.label, labels, self.config, chunk)

    def part_chunks(self, part: int) -> Iterator[Chunk]:
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


def _encode(label: LabelTransform, values: np.ndarray, config: Config, chunk: Chunk) -> np.ndarray:
    if not label.is_classification:
        return encode_labels(label, values)
    keys = np.asarray(values).astype(str)
    classes = np.asarray([str(c) for c in label.classes])
    order = np.argsort(classes)
    position = np.clip(np.searchsorted(classes[order], keys), 0, len(classes) - 1)
    unknown = classes[order][position] != keys
    if unknown.any():
        raise CnnCliError(
            f"label {keys[np.argmax(unknown)]!r} does not occur in the training rows",
            where=Location(
                file=config.data.test_path or config.data.path, key=f"column '{label.name}'"
            ),
            hint="every class in the test data needs examples in the training data",
        )
    index = order[position]
    if label.kind == "onehot":
        return np.eye(len(classes), dtype=np.float32)[index]
    if label.kind == "binary":
        return index.astype(np.float32)[:, None]
    return index.astype(np.int32)


def prepare_stream(
    config: Config, seed: int, input_shape_for: Any, label_kind_for: Any
) -> StreamedData:
    """One chunked pass: count each part's rows and fit the preprocessing on the training rows.

    Args:
        config: the validated config.
        seed: the run's seed (draws the validation rows).
        input_shape_for: ``(config, input_width) -> shape`` (the model's input shape).
        label_kind_for: ``(config, task, n_classes) -> kind`` (how the label is encoded).
    """
    split_method(config, streaming=True)  # refuses split.method: shuffle
    path = config.data.path
    columns, label_text = read_columns(config, path)
    rule = hash_rule(config, seed, has_test_file=config.data.test_path is not None)
    moments = {
        name: RunningMoments() for name in columns.features if name not in columns.categorical
    }
    categories: dict[str, set[str]] = {name: set() for name in columns.categorical}
    label = _LabelFacts()
    counts = {TRAIN: 0, TEST: 0, VALIDATION: 0}
    rows = 0
    for chunk in read_chunks(config, path, columns, label_text):
        parts = rule.parts(np.arange(chunk.first_row, chunk.first_row + chunk.rows))
        train = parts == TRAIN
        for part, count in zip(*np.unique(parts, return_counts=True), strict=True):
            counts[int(part)] += int(count)
        for name, running in moments.items():
            running.update(chunk.features[name][train])
        for name, found in categories.items():
            found.update(np.unique(chunk.features[name][train]).tolist())
        label.update(chunk.labels, train)
        rows += chunk.rows
    task = config.task or label.task()
    if counts[TRAIN] == 0 or (config.data.test_path is None and counts[TEST] == 0):
        raise CnnCliError(
            f"the hash split of {rows} rows left the train or test part empty",
            where=config.locate("split.test_size"),
            hint="use a larger data set or a different test_size",
        )
    classes = label.classes() if task == "classification" else np.zeros(0)
    if task == "classification" and len(classes) < 2:
        raise CnnCliError(
            "the label column has a single class in the training rows",
            where=config.locate("data.label"),
            hint="classification needs at least two classes; check data.label",
        )
    kind = label_kind_for(config, task, len(classes))
    features = []
    for name in columns.features:
        if name in categories:
            features.append(categorical_transform(name, categories[name]))
        else:
            features.append(
                numeric_transform(
                    name, moments[name], config.preprocess.features, config.data.missing == "mean"
                )
            )
    if kind in ("onehot", "sparse", "binary"):
        label_transform = fit_label(classes, kind, name=columns.label)
    elif kind == "standard":
        scale = label.moments.std or 1.0
        label_transform = LabelTransform(
            kind="standard", name=columns.label, center=label.moments.mean, scale=scale
        )
    else:
        label_transform = LabelTransform(kind="none", name=columns.label)
    width = sum(feature.width for feature in features)
    pre = Preprocessor(
        features=tuple(features), label=label_transform, input_shape=input_shape_for(config, width)
    )
    test_rows = 0
    if config.data.test_path is not None:
        test_rows = sum(
            chunk.rows for chunk in read_chunks(config, config.data.test_path, columns, label_text)
        )
    notes: list[str] = []
    return StreamedData(
        config,
        columns,
        task,
        pre,
        rule,
        rows,
        counts,
        test_rows,
        label_text or label.text,
        label.whole,
        notes,
        seed,
    )


# ---------------------------------------------------------------------------------------------
# Feeding Keras


def make_row_batches(
    data: StreamedData, part: int, rows: int, batch_size: int, shuffle: bool, first_epoch: int = 0
) -> Any:
    """A Keras ``PyDataset`` of (inputs, targets) batches of one part, read chunk by chunk."""
    from cnncli.runtime import import_keras

    keras = import_keras()

    class RowBatches(keras.utils.PyDataset):  # type: ignore[misc, name-defined]
        """Batches in file order; Keras asks for them in order, and index 0 starts a new pass."""

        def __init__(self) -> None:
            super().__init__(workers=1, use_multiprocessing=False)
            self.passes = first_epoch  # seeds each pass's shuffle: a resume continues the sequence
            self.next_index = 0
            self.reader: _ChunkPrefetcher | None = None
            self.pending: tuple[np.ndarray, np.ndarray] | None = None

        def __len__(self) -> int:
            return math.ceil(rows / batch_size)

        def __getitem__(self, index: int) -> tuple[np.ndarray, np.ndarray]:
            if index == 0 or self.reader is None or index != self.next_index:
                self._restart()
                for _ in range(index):
                    self._next_batch()
            self.next_index = index + 1
            return self._next_batch()

        def _restart(self) -> None:
            if self.reader is not None:
                self.reader.close()
            rng = np.random.default_rng([data.seed, part, self.passes]) if shuffle else None
            self.passes += 1
            self.reader = _ChunkPrefetcher(data, part, rng)
            self.pending = None

        def _next_batch(self) -> tuple[np.ndarray, np.ndarray]:
            xs, ys, have = [], [], 0
            while have < batch_size:
                if self.pending is None or len(self.pending[0]) == 0:
                    assert self.reader is not None
                    self.pending = self.reader.next()
                    if self.pending is None:
                        break
                take = batch_size - have
                x, y = self.pending
                xs.append(x[:take])
                ys.append(y[:take])
                have += len(xs[-1])
                self.pending = (x[take:], y[take:])
            if have == 0:
                raise CnnCliError(
                    "the data file changed while training (fewer rows than when the run started)",
                    where=file_location(data.config.data.path),
                    hint="keep the file unchanged during training, then retrain",
                )
            if len(xs) == 1:
                return xs[0], ys[0]
            return np.concatenate(xs), np.concatenate(ys)

    return RowBatches()


class _ChunkPrefetcher:
    """Reads, splits and transforms chunks in a background thread, two chunks ahead."""

    def __init__(self, data: StreamedData, part: int, rng: np.random.Generator | None) -> None:
        self.queue: queue.Queue[Any] = queue.Queue(maxsize=2)
        self.stop = threading.Event()
        self.done = False
        self.thread = threading.Thread(target=self._run, args=(data, part, rng), daemon=True)
        self.thread.start()

    def _run(self, data: StreamedData, part: int, rng: np.random.Generator | None) -> None:
        try:
            for chunk in data.part_chunks(part):
                if chunk.rows == 0:
                    continue
                x, y = data.arrays(chunk)
                if rng is not None:
                    order = rng.permutation(len(x))
                    x, y = x[order], y[order]
                if not self._put((x, y)):
                    return
            self._put(None)
        except BaseException as exc:  # handed to the training thread, which raises it
            self._put(exc)

    def _put(self, item: Any) -> bool:
        while not self.stop.is_set():
            try:
                self.queue.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def next(self) -> tuple[np.ndarray, np.ndarray] | None:
        if self.done:
            return None
        item = self.queue.get()
        if isinstance(item, BaseException):
            self.done = True
            raise item
        self.done = item is None
        return item

    def close(self) -> None:
        self.stop.set()
        self.thread.join(timeout=5)
