"""Feed Keras: the data a config names, read, split, preprocessed and handed to ``fit``.

``prepare_data`` reads the file into memory; ``prepare_streamed`` reads it in chunks
(``data.streaming``). Both fit the preprocessing with the same ``PreprocessingFit`` (in memory
is one chunk) and finish it the same way: this module decides the label encoding and the input
shape (``cnncli.model.targets``), which the data package does not know about. ``fit_inputs``
and ``evaluate_inputs`` give ``model.fit`` and ``model.evaluate`` arrays, or a Keras
``PyDataset`` that reads a streaming run's chunks in a background thread.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from cnncli.config.models import Config
from cnncli.data.cells import describe_cleaning
from cnncli.data.chunks import StreamedData, prepare_stream
from cnncli.data.columns import (
    column_warnings,
    infer_task,
    label_values,
    require_two_classes,
    row_ids,
)
from cnncli.data.csvfile import file_location
from cnncli.data.prefetch import Prefetch
from cnncli.data.preprocess import (
    PreprocessingFit,
    Preprocessor,
    UnknownCategoryWarning,
    encode_labels,
    transform_features,
)
from cnncli.data.split import TEST, TRAIN, VALIDATION, TrainTestSplit, split_rows
from cnncli.data.table import Dataset, check_classes, load_dataset
from cnncli.errors import CnnCliError, Location
from cnncli.model.targets import label_kind, model_input_shape
from cnncli.runtime import import_keras

#: Evaluation has no gradient to average: large batches only cut per-step overhead.
EVALUATE_BATCH = 1024


@dataclass
class PreparedData:
    """Everything the model needs, computed once from the config and the CSV."""

    task: str
    preprocessor: Preprocessor
    split: TrainTestSplit
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    x_val: np.ndarray | None
    y_val: np.ndarray | None
    notes: list[str]

    @property
    def n_outputs(self) -> int:
        return self.preprocessor.label.width

    @property
    def n_train(self) -> int:
        return len(self.x_train)

    def part(self, part: int) -> tuple[np.ndarray | None, np.ndarray | None]:
        """(inputs, targets) of the train, validation or test part."""
        if part == TRAIN:
            return self.x_train, self.y_train
        return (self.x_val, self.y_val) if part == VALIDATION else (self.x_test, self.y_test)

    def check_rows(self) -> np.ndarray:
        """Test inputs to check the ONNX export against Keras."""
        return self.x_test


def finish_fit(config: Config, fit: PreprocessingFit, task: str, label: str) -> Preprocessor:
    """The fitted preprocessing: the label encoding the task needs, and the model's input shape.

    Raises:
        CnnCliError: a classification whose training rows hold a single class.
    """
    classes = fit.label.classes() if task == "classification" else np.zeros(0)
    if task == "classification":
        require_two_classes(classes, config.locate("data.label"), "in the training rows")
    pre = fit.finish(
        feature_method=config.preprocess.features,
        label_kind=label_kind(config, task, len(classes)),
        fill_missing=config.data.missing == "mean",
        label_name=label,
    )
    return replace(pre, input_shape=model_input_shape(config, pre.input_width))


def prepare_data(config: Config, seed: int) -> PreparedData:
    """Read, clean, split and preprocess the data a config names, in memory."""
    dataset = load_dataset(config)
    labels = label_values(dataset.labels)
    task = config.task or infer_task(labels)
    check_classes(config, dataset, labels, task)  # single class, class too small to stratify
    notes = [note for note in [describe_cleaning(dataset)] if note]
    test_dataset: Dataset | None = None
    if config.data.test_path:
        test_dataset = load_dataset(config, config.data.test_path, dataset.columns)
        notes += [note for note in [describe_cleaning(test_dataset)] if note]
    split = split_rows(config, labels, task, seed, has_test_file=test_dataset is not None)
    train_rows = split.train_rows
    columns = dataset.columns
    fit = PreprocessingFit(columns.features, columns.categorical, dates=columns.dates)
    fit.update(
        {name: values[train_rows] for name, values in dataset.features.items()}, labels[train_rows]
    )
    ids = row_ids(columns)
    ids.update(dataset.features)  # every row, in the file's order
    notes += column_warnings(config, columns, fit.categories, fit.rows, ids)
    pre = finish_fit(config, fit, task, dataset.columns.label)

    def arrays(
        source: Dataset, source_labels: np.ndarray, rows: np.ndarray, part: str
    ) -> tuple[np.ndarray, np.ndarray]:
        with warnings.catch_warnings(record=True) as unseen:
            warnings.simplefilter("always", UnknownCategoryWarning)
            x = transform_features(
                pre, {name: values[rows] for name, values in source.features.items()}
            )
        # categories only the validation or test rows hold: said once, naming those rows
        for warning in unseen:
            if issubclass(warning.category, UnknownCategoryWarning):
                notes.append(f"{warning.message} (in the {part} rows)")
            else:  # not ours to word: on to the one warning line render gives every library's
                warnings.warn_explicit(
                    warning.message, warning.category, warning.filename, warning.lineno
                )

        def locate(position: int) -> Location:
            line = source.lines([int(rows[position])])[0]
            return file_location(source.path, pre.label.name, line=line)

        return x.reshape((-1, *pre.input_shape)), encode_labels(
            pre.label, source_labels[rows], locate
        )

    x_train, y_train = arrays(dataset, labels, train_rows, "training")
    x_val = y_val = None
    if split.validation_rows is not None:
        x_val, y_val = arrays(dataset, labels, split.validation_rows, "validation")
    if test_dataset is not None:
        test_labels = label_values(test_dataset.labels)
        x_test, y_test = arrays(test_dataset, test_labels, np.arange(test_dataset.rows), "test")
    else:
        x_test, y_test = arrays(dataset, labels, split.test_rows, "test")
    return PreparedData(task, pre, split, x_train, y_train, x_test, y_test, x_val, y_val, notes)


def prepare_streamed(config: Config, seed: int) -> StreamedData:
    """Read the data a config names in chunks: one pass fits the preprocessing (``chunks``)."""
    state = prepare_stream(config, seed)
    task = config.task or state.fit.label.task()
    return state.data(task, finish_fit(config, state.fit, task, state.columns.label))


def class_weights(config: Config, prepared: PreparedData | StreamedData) -> dict[str, float] | None:
    """``fit.class_weight`` as a weight for every class (by name), or None when not set.

    ``balanced`` is scikit-learn's n / (classes × count), counted on the training rows (one
    pass over them when streaming); a mapping leaves the classes it does not name at 1.
    """
    wanted = config.fit.class_weight
    label = prepared.preprocessor.label
    if wanted is None or not label.is_classification:
        return None
    names = [str(name) for name in label.classes]
    if wanted != "balanced":
        return {name: float(wanted.get(name, 1.0)) for name in names}
    if isinstance(prepared, StreamedData):
        targets: Any = (y for _x, y in _part_arrays(prepared, TRAIN, None))
    else:
        targets = [prepared.y_train]
    counts = np.zeros(len(names), dtype=np.int64)
    for y in targets:
        counts += np.bincount(_class_positions(y), minlength=len(names))[: len(names)]
    total = int(counts.sum())
    return {
        name: total / (len(names) * int(count)) if count else 1.0
        for name, count in zip(names, counts, strict=True)
    }


def _class_positions(targets: np.ndarray) -> np.ndarray:
    """Each target's class position: one-hot rows, a binary column or sparse integers."""
    if targets.ndim > 1 and targets.shape[-1] > 1:
        return np.argmax(targets, axis=-1)
    return np.rint(targets.reshape(-1)).astype(np.int64)


def fit_inputs(
    config: Config,
    prepared: PreparedData | StreamedData,
    first_epoch: int = 0,
    weights: dict[str, float] | None = None,
) -> dict[str, Any]:
    """``model.fit``'s data arguments: arrays in memory, or streaming ``PyDataset``s.

    ``first_epoch`` is the epoch a resumed run starts from (streaming shuffles by epoch);
    ``weights`` are ``class_weights``' result, handed to Keras by class position.
    """
    extra = {"class_weight": dict(enumerate(weights.values()))} if weights else {}
    batch_size = config.fit.batch_size
    if isinstance(prepared, StreamedData):
        validation = (
            make_row_batches(prepared, VALIDATION, EVALUATE_BATCH)
            if prepared.counts.get(VALIDATION)
            else None
        )
        # shuffle=False: a PyDataset shuffled by Keras would be read out of order; the
        # stream shuffles within each chunk instead.
        return {
            "x": make_row_batches(prepared, TRAIN, batch_size, config.fit.shuffle, first_epoch),
            "shuffle": False,
            "validation_data": validation,
            **extra,
        }
    validation = (prepared.x_val, prepared.y_val) if prepared.x_val is not None else None
    return {
        "x": prepared.x_train,
        "y": prepared.y_train,
        "batch_size": batch_size,
        "shuffle": config.fit.shuffle,
        "validation_data": validation,
        **extra,
    }


def evaluate_inputs(
    config: Config, prepared: PreparedData | StreamedData, part: int = TEST
) -> dict[str, Any]:
    """``model.evaluate``'s data arguments for the test part (or the validation part)."""
    batch_size = max(EVALUATE_BATCH, config.fit.batch_size)
    if isinstance(prepared, StreamedData):
        return {"x": make_row_batches(prepared, part, batch_size)}
    x, y = prepared.part(part)
    return {"x": x, "y": y, "batch_size": batch_size}


def part_arrays(
    prepared: PreparedData | StreamedData, part: int
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """(inputs, targets) of the train, validation or test part: one pair in memory, one per
    chunk when streaming."""
    if isinstance(prepared, StreamedData):
        yield from _part_arrays(prepared, part, None)
        return
    x, y = prepared.part(part)
    if x is not None and len(x):
        yield x, y


def _part_arrays(
    data: StreamedData, part: int, rng: np.random.Generator | None
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """(inputs, targets) of one part, chunk by chunk; shuffled within each chunk by ``rng``."""
    for chunk in data.part_chunks(part):
        if chunk.rows == 0:
            continue
        x, y = data.arrays(chunk)
        if rng is not None:
            order = rng.permutation(len(x))
            x, y = x[order], y[order]
        yield x, y


def make_row_batches(
    data: StreamedData, part: int, batch_size: int, shuffle: bool = False, first_epoch: int = 0
) -> Any:
    """A Keras ``PyDataset`` of (inputs, targets) batches of one part, read chunk by chunk.

    ``first_epoch`` is where a resumed fit starts, so epoch N shuffles as epoch N did.
    """
    keras = import_keras()
    rows = data.part_rows(part)

    class RowBatches(keras.utils.PyDataset):  # type: ignore[misc, name-defined]
        """Batches in file order; Keras asks for them in order, and index 0 starts a new pass."""

        def __init__(self) -> None:
            super().__init__(workers=1, use_multiprocessing=False)
            self.passes = first_epoch  # seeds each pass's shuffle: a resume continues the sequence
            self.next_index = 0
            self.reader: Prefetch[tuple[np.ndarray, np.ndarray]] | None = None
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
                self.reader.close(timeout=5)
            rng = np.random.default_rng([data.seed, part, self.passes]) if shuffle else None
            self.passes += 1
            self.reader = Prefetch(_part_arrays(data, part, rng))
            self.pending = None

        def _next_batch(self) -> tuple[np.ndarray, np.ndarray]:
            xs, ys, have = [], [], 0
            while have < batch_size:
                if self.pending is None or len(self.pending[0]) == 0:
                    assert self.reader is not None
                    self.pending = next(self.reader, None)
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
