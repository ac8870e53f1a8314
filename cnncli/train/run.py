"""Run one training: data → preprocessing → builder → fit → evaluate → artifacts.

``train_run`` returns a ``TrainResult`` and reports progress through callbacks; it never
prints, prompts or exits, so the CLI and the tests drive it the same way.
"""

from __future__ import annotations

import csv
import io
import random
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from cnncli.config.models import Config
from cnncli.data.preprocess import (
    Preprocessor,
    encode_labels,
    fit_preprocessor,
    transform_features,
)
from cnncli.data.split import TEST, TRAIN, VALIDATION, TrainTestSplit, split_rows
from cnncli.data.stream import StreamedData, prepare_stream, wants_streaming
from cnncli.data.table import (
    Dataset,
    check_classes,
    describe_cleaning,
    infer_task,
    label_values,
    load_dataset,
)
from cnncli.errors import CnnCliError, Location
from cnncli.model.build import build_model, make_callbacks
from cnncli.model.targets import default_loss, default_metrics, label_kind, model_input_shape
from cnncli.runs import (
    CONFIG_FILENAME,
    HISTORY_FILENAME,
    METRICS_FILENAME,
    MODEL_FILENAME,
    ONNX_FILENAME,
    PREPROCESS_FILENAME,
    SPLIT_FILENAME,
    finish_run,
    save_keras_atomic,
    write_atomic,
    write_json,
)
from cnncli.runtime import forced_backend, import_keras, seed_everything, select_backend
from cnncli.train.check import check_model, facts_from_preprocessor
from cnncli.train.checkpoints import CheckpointKeeper, resume_point

EpochCallback = Callable[[int, int, dict[str, float]], None]
MessageCallback = Callable[[str], None]

#: Evaluation has no gradient to average: large batches only cut per-step overhead.
EVALUATE_BATCH = 1024
#: Steps per call into Keras under ``steps_per_execution: auto``. Each call on TensorFlow costs a
#: few ms of dispatch: a whole 75-step seed epoch per call made the 50-epoch run 0.6 s (7 %)
#: faster than 32 steps did, with the same weights. A signal is noticed between calls, so
#: this also bounds how long Ctrl-C waits.
AUTO_STEPS_PER_EXECUTION = 128


@dataclass
class TrainResult:
    run_dir: Path
    metrics: dict[str, dict[str, float]]
    history: dict[str, list[float]]
    seed: int
    onnx: dict[str, Any] = field(default_factory=dict)


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

    def check_rows(self) -> np.ndarray:
        """Test inputs to check the ONNX export against Keras."""
        return self.x_test


def fit_inputs(
    config: Config, prepared: PreparedData | StreamedData, first_epoch: int = 0
) -> dict[str, Any]:
    """``model.fit``'s data arguments: arrays in memory, or streaming ``PyDataset``s.

    ``first_epoch`` is the epoch a resumed run starts from (streaming shuffles by epoch).
    """
    batch_size = config.fit.batch_size
    if isinstance(prepared, StreamedData):
        validation = (
            prepared.batches(VALIDATION, EVALUATE_BATCH)
            if prepared.counts.get(VALIDATION)
            else None
        )
        # shuffle=False: a PyDataset shuffled by Keras would be read out of order; the
        # stream shuffles within each chunk instead.
        return {
            "x": prepared.batches(TRAIN, batch_size, config.fit.shuffle, first_epoch),
            "shuffle": False,
            "validation_data": validation,
        }
    validation = (prepared.x_val, prepared.y_val) if prepared.x_val is not None else None
    return {
        "x": prepared.x_train,
        "y": prepared.y_train,
        "batch_size": batch_size,
        "shuffle": config.fit.shuffle,
        "validation_data": validation,
    }


def evaluate_inputs(config: Config, prepared: PreparedData | StreamedData) -> dict[str, Any]:
    """``model.evaluate``'s data arguments for the test part."""
    batch_size = max(EVALUATE_BATCH, config.fit.batch_size)
    if isinstance(prepared, StreamedData):
        return {"x": prepared.batches(TEST, batch_size)}
    return {"x": prepared.x_test, "y": prepared.y_test, "batch_size": batch_size}


def prepare_data(config: Config, seed: int) -> PreparedData:
    """Read, clean, split and preprocess the data a config names."""
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
    n_classes = len(np.unique(labels[train_rows])) if task == "classification" else 0
    if task == "classification" and n_classes < 2:
        raise CnnCliError(
            f"the label column has a single class ({labels[0]!r})",
            where=config.locate("data.label"),
            hint="classification needs at least two classes; check data.label",
        )
    kind = label_kind(config, task, n_classes)
    pre = fit_preprocessor(
        {name: values[train_rows] for name, values in dataset.features.items()},
        labels[train_rows],
        categorical=dataset.columns.categorical,
        feature_method=config.preprocess.features,
        label_kind=kind,
        fill_missing=config.data.missing == "mean",
        label_name=dataset.columns.label,
    )
    input_shape = model_input_shape(config, pre.input_width)
    pre = replace(pre, input_shape=input_shape)

    def arrays(
        source: Dataset, source_labels: np.ndarray, rows: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        x = transform_features(
            pre, {name: values[rows] for name, values in source.features.items()}
        )
        return x.reshape((-1, *input_shape)), _encode(
            config, pre, source_labels[rows], source.path, rows
        )

    x_train, y_train = arrays(dataset, labels, train_rows)
    x_val = y_val = None
    if split.validation_rows is not None:
        x_val, y_val = arrays(dataset, labels, split.validation_rows)
    if test_dataset is not None:
        test_labels = label_values(test_dataset.labels)
        x_test, y_test = arrays(test_dataset, test_labels, np.arange(test_dataset.rows))
    else:
        x_test, y_test = arrays(dataset, labels, split.test_rows)
    return PreparedData(task, pre, split, x_train, y_train, x_test, y_test, x_val, y_val, notes)


def _encode(
    config: Config, pre: Preprocessor, values: np.ndarray, path: str, rows: np.ndarray
) -> np.ndarray:
    try:
        return encode_labels(pre.label, values)
    except KeyError as exc:
        position = next(i for i, v in enumerate(values) if str(v) == str(exc.args[0]))
        raise CnnCliError(
            f"label {exc.args[0]!r} does not occur in the training rows",
            where=Location(
                file=path, key=f"column '{pre.label.name}'", line=int(rows[position]) + 2
            ),
            hint="every class in the test data needs examples in the training data",
        ) from None


def train_run(
    config: Config,
    output_dir: Path | None = None,
    *,
    on_epoch_end: EpochCallback | None = None,
    on_message: MessageCallback | None = None,
    resume: str | Path | None = None,
) -> TrainResult:
    """Train the config's model and save it as a complete run folder.

    Args:
        config: a validated config.
        output_dir: where run folders go; defaults to ``output.dir``.
        on_epoch_end: called with (epoch, epochs, logs) after every epoch.
        on_message: called with one-line notes (rows dropped, ONNX fallback, ...).
        resume: an interrupted run's folder to continue, or "" for the newest one of this name.

    Returns:
        The run folder, test metrics, history and the seed used.
    """
    say = on_message or (lambda _text: None)
    output = Path(output_dir or config.output.dir)
    resumed = resume_point(config, output, resume) if resume is not None else None
    seed = config.seed if config.seed is not None else random.SystemRandom().randrange(2**31)
    seed = resumed.seed if resumed is not None else seed
    backend = select_backend(config.backend)
    if backend not in (config.backend, forced_backend()):
        say(
            f"Keras already runs on {backend} in this process;"
            f" training there instead of on {config.backend}"
        )
    keras = import_keras()
    streaming = wants_streaming(config)
    prepared = (
        prepare_stream(config, seed, model_input_shape, label_kind)
        if streaming
        else prepare_data(config, seed)
    )
    # The data is read once, here: the model is checked against the preprocessing fitted on
    # the training rows, not against a second, cheaper read as `validate` does.
    check_model(config, facts_from_preprocessor(prepared.task, prepared.preprocessor))
    for note in prepared.notes:
        say(note)
    # Seeded after the checks, whose throwaway layers draw from the global RNGs, and before the
    # model is built: weights, Dropout and shuffling follow the seed alone. Reading and
    # splitting the data use their own generators.
    seed_everything(seed)
    steps_per_epoch = max(1, int(np.ceil(prepared.n_train / config.fit.batch_size)))
    steps_per_execution = (
        min(AUTO_STEPS_PER_EXECUTION, steps_per_epoch)
        if config.fit.steps_per_execution == "auto"
        else config.fit.steps_per_execution
    )
    model = build_model(
        config,
        prepared.preprocessor.input_shape,
        prepared.n_outputs,
        default_loss=default_loss(prepared.preprocessor.label.kind),
        default_metrics=default_metrics(prepared.task),
        steps_per_execution=steps_per_execution,
    )
    callbacks = make_callbacks(config, keras)
    if on_epoch_end is not None:
        callbacks.append(_EpochReporter(keras, config.fit.epochs, on_epoch_end))
    inputs = fit_inputs(config, prepared, resumed.epoch if resumed is not None else 0)
    if not streaming:
        # Told the epoch's length, Keras keeps the data iterator it opens at the end of an
        # epoch for the next one instead of opening another: on TensorFlow that is ~10 ms an
        # epoch, and the shuffled order is the same either way.
        inputs["steps_per_epoch"] = steps_per_epoch
    keeper = CheckpointKeeper.open(config, output, seed, resumed)  # staging folder + checkpoints
    history = keeper.fit(model, **inputs, epochs=config.fit.epochs, callbacks=callbacks, verbose=0)
    scores = model.evaluate(**evaluate_inputs(config, prepared), verbose=0, return_dict=True)
    metrics = {"test": {name: float(value) for name, value in scores.items()}}
    histories = {name: [float(v) for v in values] for name, values in history.history.items()}
    run_dir, onnx = save_run(config, model, prepared, metrics, histories, seed, say, keeper)
    return TrainResult(run_dir=run_dir, metrics=metrics, history=histories, seed=seed, onnx=onnx)


class _EpochReporter:
    """Keras callback that forwards epoch ends; built lazily so Keras is imported late."""

    def __new__(cls, keras: Any, epochs: int, report: EpochCallback) -> Any:
        class Reporter(keras.callbacks.Callback):
            def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
                report(epoch + 1, epochs, {k: float(v) for k, v in (logs or {}).items()})

        return Reporter()


def save_run(
    config: Config,
    model: Any,
    prepared: PreparedData | StreamedData,
    metrics: dict[str, Any],
    history: dict[str, list[float]],
    seed: int,
    say: MessageCallback,
    keeper: CheckpointKeeper,
) -> tuple[Path, dict[str, Any]]:
    """Write every artifact into the keeper's staging folder, then publish it atomically.

    The staging folder already holds the run's checkpoints; a failure keeps the last one so
    the run can be resumed.
    """
    from cnncli.serve.export import export_onnx_checked

    staged = keeper.staged
    try:
        resolved = config.to_yaml_dict()
        resolved["seed"] = seed
        resolved["task"] = prepared.task
        write_atomic(staged.staging / CONFIG_FILENAME, yaml.safe_dump(resolved, sort_keys=False))
        write_atomic(staged.staging / PREPROCESS_FILENAME, prepared.preprocessor.to_json() + "\n")
        write_json(staged.staging / METRICS_FILENAME, metrics)
        write_json(staged.staging / SPLIT_FILENAME, prepared.split.to_json())
        write_atomic(staged.staging / HISTORY_FILENAME, history_csv(history))
        save_keras_atomic(model, staged.staging / MODEL_FILENAME)
        onnx = export_onnx_checked(model, staged.staging / ONNX_FILENAME, prepared.check_rows())
        if not onnx["checked"]:
            say(f"ONNX export unavailable ({onnx['reason']}); predict will use Keras")
        keras = import_keras()
        manifest = {
            "keras": keras.__version__,
            "backend": keras.backend.backend(),
            # read from the package metadata: importing TensorFlow for its version costs seconds
            "tensorflow": _installed_version("tensorflow", "tensorflow-cpu"),
            **({"jax": _installed_version("jax")} if keras.backend.backend() == "jax" else {}),
            "config_sha256": config.fingerprint(),
            "seed": seed,
            "task": prepared.task,
            # fingerprinted when training started: the files may have changed or gone since
            **keeper.data,
            "onnx": onnx,
        }
        return finish_run(staged, manifest), onnx
    except BaseException as exc:
        error = keeper.failed(exc)
        if error is None:
            raise
        raise error from exc


def _installed_version(*distributions: str) -> str | None:
    from importlib import metadata

    for name in distributions:
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return None


def history_csv(history: dict[str, list[float]]) -> str:
    names = list(history)
    stream = io.StringIO()
    writer = csv.writer(stream, lineterminator="\n")
    writer.writerow(["epoch", *names])
    epochs = len(next(iter(history.values()), []))
    for epoch in range(epochs):
        writer.writerow([epoch + 1, *(repr(history[name][epoch]) for name in names)])
    return stream.getvalue()
