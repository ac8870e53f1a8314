"""Run one training: data → preprocessing → builder → fit → evaluate → artifacts.

``train_run`` returns a ``TrainResult`` and reports progress through callbacks; it never
prints, prompts or exits, so the CLI, tests and tuning all drive it the same way.
"""

from __future__ import annotations

import csv
import io
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from cnncli.artifacts import (
    CONFIG_FILENAME,
    HISTORY_FILENAME,
    METRICS_FILENAME,
    MODEL_FILENAME,
    ONNX_FILENAME,
    PREPROCESS_FILENAME,
    SPLIT_FILENAME,
    abandon_run,
    finish_run,
    sha256_file,
    start_run,
    write_atomic,
    write_json,
)
from cnncli.builder import build_model, default_input_shape, make_callbacks
from cnncli.config import Config
from cnncli.data import Dataset, describe_cleaning, infer_task, label_values, load_dataset
from cnncli.errors import CnnCliError, Location
from cnncli.preprocessing import (
    Preprocessor,
    encode_labels,
    fit_label,
    fit_preprocessor,
    transform_features,
)
from cnncli.runtime import import_keras, seed_everything
from cnncli.splitting import TrainTestSplit, split_rows

EpochCallback = Callable[[int, int, dict[str, float]], None]
MessageCallback = Callable[[str], None]

_BINARY_LOSSES = {"binary_crossentropy", "BinaryCrossentropy", "binary_focal_crossentropy", "BinaryFocalCrossentropy"}
_SPARSE_LOSSES = {"sparse_categorical_crossentropy", "SparseCategoricalCrossentropy"}


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
        label = self.preprocessor.label
        return len(label.classes) if label.kind in ("onehot", "sparse") else 1


def label_kind(config: Config, task: str, n_classes: int) -> str:
    """How the label is encoded: from preprocess.label, else from the loss and class count."""
    loss = config.compile.loss.type if config.compile.loss else None
    if task == "regression":
        return config.preprocess.label or "none"
    if loss in _BINARY_LOSSES and n_classes <= 2:
        return "binary"
    if loss in _SPARSE_LOSSES:
        return "sparse"
    return config.preprocess.label or "onehot"


def default_loss(kind: str) -> str:
    return {
        "onehot": "categorical_crossentropy",
        "sparse": "sparse_categorical_crossentropy",
        "binary": "binary_crossentropy",
    }.get(kind, "mean_squared_error")


def default_metrics(task: str) -> tuple[str, ...]:
    return ("accuracy",) if task == "classification" else ("mae",)


def prepare_data(config: Config, seed: int) -> PreparedData:
    """Read, clean, split and preprocess the data a config names."""
    dataset = load_dataset(config)
    labels = label_values(dataset.labels)
    task = config.task or infer_task(labels)
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
    )
    label = fit_label(labels[train_rows], kind, name=dataset.columns.label)
    input_shape = default_input_shape(config, pre.input_width)
    _check_input_shape(config, input_shape, pre.input_width)
    pre = Preprocessor(features=pre.features, label=label, input_shape=input_shape)

    def arrays(source: Dataset, source_labels: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        x = transform_features(pre, {name: values[rows] for name, values in source.features.items()})
        return x.reshape((-1, *input_shape)), _encode(config, pre, source_labels[rows], source.path, rows)

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


def _check_input_shape(config: Config, shape: tuple[int, ...], width: int) -> None:
    if int(np.prod(shape)) != width:
        raise CnnCliError(
            f"input_shape {list(shape)} holds {int(np.prod(shape))} values but each row has {width}"
            " features after one-hot encoding",
            where=config.locate("model.input_shape"),
            hint=f"use a shape whose product is {width}, e.g. [{width}, 1]",
        )


def _encode(config: Config, pre: Preprocessor, values: np.ndarray, path: str, rows: np.ndarray) -> np.ndarray:
    try:
        return encode_labels(pre.label, values)
    except KeyError as exc:
        position = next(i for i, v in enumerate(values) if str(v) == str(exc.args[0]))
        raise CnnCliError(
            f"label {exc.args[0]!r} does not occur in the training rows",
            where=Location(file=path, key=f"column '{pre.label.name}'", line=int(rows[position]) + 2),
            hint="every class in the test data needs examples in the training data",
        ) from None


def train_run(
    config: Config,
    output_dir: Path | None = None,
    *,
    on_epoch_end: EpochCallback | None = None,
    on_message: MessageCallback | None = None,
) -> TrainResult:
    """Train the config's model and save it as a complete run folder.

    Args:
        config: a validated config.
        output_dir: where run folders go; defaults to ``output.dir``.
        on_epoch_end: called with (epoch, epochs, logs) after every epoch.
        on_message: called with one-line notes (rows dropped, ONNX fallback, ...).

    Returns:
        The run folder, test metrics, history and the seed used.
    """
    say = on_message or (lambda _text: None)
    seed = config.seed if config.seed is not None else random.SystemRandom().randrange(2**31)
    keras = import_keras()
    seed_everything(seed)
    prepared = prepare_data(config, seed)
    for note in prepared.notes:
        say(note)
    steps_per_epoch = max(1, int(np.ceil(len(prepared.x_train) / config.fit.batch_size)))
    steps_per_execution = (
        min(32, steps_per_epoch) if config.fit.steps_per_execution == "auto" else config.fit.steps_per_execution
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
    validation = (prepared.x_val, prepared.y_val) if prepared.x_val is not None else None
    history = model.fit(
        prepared.x_train,
        prepared.y_train,
        batch_size=config.fit.batch_size,
        epochs=config.fit.epochs,
        shuffle=config.fit.shuffle,
        validation_data=validation,
        callbacks=callbacks,
        verbose=0,
    )
    scores = model.evaluate(prepared.x_test, prepared.y_test, batch_size=max(256, config.fit.batch_size), verbose=0, return_dict=True)
    metrics = {"test": {name: float(value) for name, value in scores.items()}}
    histories = {name: [float(v) for v in values] for name, values in history.history.items()}
    run_dir, onnx = save_run(config, output_dir, model, prepared, metrics, histories, seed, say)
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
    output_dir: Path | None,
    model: Any,
    prepared: PreparedData,
    metrics: dict[str, Any],
    history: dict[str, list[float]],
    seed: int,
    say: MessageCallback,
) -> tuple[Path, dict[str, Any]]:
    """Write every artifact into a staging folder, then publish it atomically."""
    from cnncli.export import export_onnx_checked

    staged = start_run(Path(output_dir or config.output.dir), config.name)
    try:
        resolved = config.to_yaml_dict()
        resolved["seed"] = seed
        resolved["task"] = prepared.task
        write_atomic(staged.staging / CONFIG_FILENAME, yaml.safe_dump(resolved, sort_keys=False))
        write_atomic(staged.staging / PREPROCESS_FILENAME, prepared.preprocessor.to_json() + "\n")
        write_json(staged.staging / METRICS_FILENAME, metrics)
        write_json(staged.staging / SPLIT_FILENAME, prepared.split.to_json())
        write_atomic(staged.staging / HISTORY_FILENAME, history_csv(history))
        model_path = staged.staging / MODEL_FILENAME
        temp_model = staged.staging / f".{MODEL_FILENAME}.part.keras"
        model.save(temp_model)
        temp_model.replace(model_path)
        onnx = export_onnx_checked(model, staged.staging / ONNX_FILENAME, prepared.x_test)
        if not onnx["checked"]:
            say(f"ONNX export unavailable ({onnx['reason']}); predict will use Keras")
        keras = import_keras()
        import tensorflow as tf

        manifest = {
            "keras": keras.__version__,
            "tensorflow": tf.__version__,
            "config_sha256": config.fingerprint(),
            "seed": seed,
            "task": prepared.task,
            "data": _fingerprint(config.data.path),
            "test_data": _fingerprint(config.data.test_path) if config.data.test_path else None,
            "onnx": onnx,
        }
        return finish_run(staged, manifest), onnx
    except BaseException:
        abandon_run(staged)
        raise


def _fingerprint(path: str) -> dict[str, Any]:
    file = Path(path)
    return {"path": str(file), "bytes": file.stat().st_size, "sha256": sha256_file(file)}


def history_csv(history: dict[str, list[float]]) -> str:
    names = list(history)
    stream = io.StringIO()
    writer = csv.writer(stream, lineterminator="\n")
    writer.writerow(["epoch", *names])
    epochs = len(next(iter(history.values()), []))
    for epoch in range(epochs):
        writer.writerow([epoch + 1, *(repr(history[name][epoch]) for name in names)])
    return stream.getvalue()
