"""Load a run, then evaluate or predict with exactly the training preprocessing.

Prediction runs on ONNX Runtime and NumPy whenever the run has a checked ``model.onnx``; Keras
(and so TensorFlow) is imported only as a fallback. ``predict_rows`` never imports pandas.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from cnncli.data.preprocess import (
    Preprocessor,
    class_indices,
    decode_outputs,
    encode_labels,
    transform_features,
)
from cnncli.errors import CnnCliError, Location
from cnncli.model.targets import REGRESSION_DEFAULT_LOSS, loss_type
from cnncli.runs import ONNX_FILENAME, RunFolder, load_keras_model

_EPSILON = 1e-7  # Keras' backend epsilon, so losses match model.evaluate
#: Rows per ONNX Runtime call: big enough to amortise the call, small enough for the cache.
BATCH_ROWS = 8192


class Predictor:
    """Model outputs for preprocessed rows, through ONNX Runtime or Keras.

    Args:
        run: an opened run folder.
        backend: ``onnx``, ``keras``, or ``auto`` (ONNX when the run has a checked model.onnx).
        threads: ONNX Runtime's intra-op threads (0: one per core).
    """

    def __init__(self, run: RunFolder, backend: str = "auto", threads: int = 0) -> None:
        self.run = run
        self.preprocessor = run.preprocessor
        if backend == "auto":
            backend = "onnx" if run.onnx_ok else "keras"
        if backend == "onnx" and not run.onnx_ok:
            raise CnnCliError(
                "this run has no checked model.onnx",
                where=Location(file=str(run.path)),
                hint="use --backend keras, or retrain to export ONNX",
            )
        self.backend = backend
        if backend == "onnx":
            from cnncli.serve.onnxrun import OnnxModel

            self._onnx = OnnxModel(run.file(ONNX_FILENAME), threads=threads)
        else:
            self._keras = load_keras_model(run)

    def outputs(self, features: np.ndarray) -> np.ndarray:
        """Model outputs for rows of preprocessed features, in batches of ``BATCH_ROWS``."""
        x = features.reshape((-1, *self.preprocessor.input_shape))
        if self.backend != "onnx":
            return np.asarray(self._keras.predict(x, batch_size=4096, verbose=0))
        if len(x) <= BATCH_ROWS:
            return self._onnx.predict(x)
        # ONNX Runtime keeps its largest intermediate tensors allocated: a few thousand rows at
        # a time hold peak memory down (a conv layer's output is rows x filters x steps).
        parts = [self._onnx.predict(x[i : i + BATCH_ROWS]) for i in range(0, len(x), BATCH_ROWS)]
        return np.concatenate(parts)


@dataclass
class Predictions:
    labels: list[Any]
    probabilities: np.ndarray | None
    classes: tuple[Any, ...]
    warnings: list[str] = field(default_factory=list)


def parse_input(pre: Preprocessor, text: str) -> dict[str, Any]:
    """``3,30,5`` (feature order) or ``x1=3,x2=30,x3=5`` (by name) → one raw row.

    Raises:
        CnnCliError: wrong count, unknown name, or a value that is not a number.
    """
    names = pre.feature_names
    where = Location(file=f"--input {text}")
    cells = [cell.strip() for cell in text.split(",")]
    if all("=" in cell for cell in cells):
        row: dict[str, Any] = {}
        for cell in cells:
            name, _, value = cell.partition("=")
            name = name.strip()
            if name not in names:
                import difflib

                match = difflib.get_close_matches(name, names, n=1)
                hint = (
                    f"did you mean '{match[0]}'?" if match else f"features are: {', '.join(names)}"
                )
                raise CnnCliError(f"unknown feature '{name}'", where=where, hint=hint)
            row[name] = value.strip()
        absent = [name for name in names if name not in row]
        if absent:
            raise CnnCliError(
                f"missing feature(s) {', '.join(absent)}",
                where=where,
                hint=f"give all of: {', '.join(names)}",
            )
    else:
        if len(cells) != len(names):
            raise CnnCliError(
                f"got {len(cells)} value(s), the model expects {len(names)}: {', '.join(names)}",
                where=where,
                hint=f"for example --input {','.join(names)} values in that order,"
                " or name=value pairs",
            )
        row = dict(zip(names, cells, strict=True))
    return {
        feature.name: _parse_cell(feature.name, feature.kind, row[feature.name], where)
        for feature in pre.features
    }


def _parse_cell(name: str, kind: str, value: str, where: Location) -> Any:
    if kind == "categorical":
        return value
    try:
        number = float(value)
    except ValueError:
        raise CnnCliError(
            f"feature '{name}' expects a number, got {value!r}", where=where
        ) from None
    if math.isnan(number) or math.isinf(number):
        raise CnnCliError(f"feature '{name}' is {value}", where=where, hint="give a finite number")
    return number


def rows_to_columns(pre: Preprocessor, rows: list[dict[str, Any]]) -> dict[str, np.ndarray]:
    columns: dict[str, np.ndarray] = {}
    for feature in pre.features:
        values = [row[feature.name] for row in rows]
        columns[feature.name] = np.asarray(
            values, dtype=np.float64 if feature.kind == "numeric" else object
        )
    return columns


def range_warnings(pre: Preprocessor, columns: dict[str, np.ndarray]) -> list[str]:
    """Values outside what training saw: the model may extrapolate badly."""
    notes = []
    for feature in pre.features:
        if feature.kind != "numeric" or feature.minimum is None or feature.maximum is None:
            continue
        values = columns[feature.name]
        outside = (values < feature.minimum) | (values > feature.maximum)
        if outside.any():
            notes.append(
                f"{feature.name}: {int(outside.sum())} value(s) outside the training range"
                f" [{feature.minimum:g}, {feature.maximum:g}]"
            )
    return notes


def predict_columns(predictor: Predictor, columns: dict[str, np.ndarray]) -> Predictions:
    """Preprocess raw columns, run the model, decode labels and probabilities."""
    pre = predictor.preprocessor
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        features = transform_features(pre, columns)
    notes = [str(w.message) for w in caught] + range_warnings(pre, columns)
    labels, probabilities = decode_outputs(pre.label, predictor.outputs(features))
    return Predictions(
        labels=labels, probabilities=probabilities, classes=pre.label.classes, warnings=notes
    )


def predict_rows(predictor: Predictor, texts: list[str]) -> Predictions:
    """Predict ``--input`` rows."""
    rows = [parse_input(predictor.preprocessor, text) for text in texts]
    return predict_columns(predictor, rows_to_columns(predictor.preprocessor, rows))


# ---------------------------------------------------------------------------------------------
# Evaluation


@dataclass
class Evaluation:
    metrics: dict[str, float]
    rows: int
    backend: str
    source: str
    classes: tuple[Any, ...] = ()
    per_class: list[dict[str, Any]] = field(default_factory=list)
    confusion: list[list[int]] = field(default_factory=list)


def evaluation_data(
    run: RunFolder, data: Path | None
) -> tuple[dict[str, np.ndarray], np.ndarray, str]:
    """Raw feature columns and labels of the run's stored test split, or of another CSV."""
    import json

    from cnncli.config.models import config_from_dict
    from cnncli.data.columns import Columns, label_values
    from cnncli.data.table import load_dataset

    config = config_from_dict(run.config, run.path, file=str(run.path / "config.yaml"))
    pre = run.preprocessor
    columns = Columns(
        features=tuple(pre.feature_names),
        categorical=tuple(f.name for f in pre.features if f.kind == "categorical"),
        label=pre.label.name,
    )
    split = json.loads(run.file("split.json").read_text())
    if data is not None:
        dataset = load_dataset(config, str(data), columns)
        rows = np.arange(dataset.rows)
        source = str(data)
    elif split["method"] == "test_file":
        dataset = load_dataset(config, config.data.test_path, columns)
        rows = np.arange(dataset.rows)
        source = str(config.data.test_path)
    elif split["method"] == "hash":  # a streaming run: keep only the test rows of each chunk
        features, labels, rows = _hashed_test_rows(config, columns, split, pre)
        return features, labels, f"{config.data.path} (test split, {rows} rows)"
    else:
        dataset = load_dataset(config, config.data.path, columns)
        if dataset.rows != split["rows"]:
            raise CnnCliError(
                f"the data file now has {dataset.rows} rows, the run was trained on"
                f" {split['rows']}",
                where=Location(file=config.data.path),
                hint="the stored split no longer applies; pass the test data with --data",
            )
        from cnncli.data.split import stored_test_rows

        rows = stored_test_rows(split, dataset.rows)
        source = f"{config.data.path} (test split, {len(rows)} rows)"
    features = {name: values[rows] for name, values in dataset.features.items()}
    return features, label_values(dataset.labels)[rows], source


def _hashed_test_rows(
    config: Any, columns: Any, split: dict[str, Any], pre: Preprocessor
) -> tuple[dict[str, np.ndarray], np.ndarray, int]:
    """The test rows of a hash-split run, read chunk by chunk: memory holds the test rows only."""
    from cnncli.data.chunks import read_chunks
    from cnncli.data.columns import label_values
    from cnncli.data.split import TEST, HashSplit

    rule = HashSplit.from_json(split)
    text = any(isinstance(value, str) for value in pre.label.classes)
    parts: list[Any] = []
    total = 0
    for chunk in read_chunks(config, config.data.path, columns, label_text=text):
        numbers = np.arange(chunk.first_row, chunk.first_row + chunk.rows)
        parts.append(chunk.take(rule.parts(numbers) == TEST))
        total += chunk.rows
    if total != split["rows"]:
        raise CnnCliError(
            f"the data file now has {total} rows, the run was trained on {split['rows']}",
            where=Location(file=config.data.path),
            hint="the stored split no longer applies; pass the test data with --data",
        )
    features = {
        name: np.concatenate([p.features[name] for p in parts]) for name in columns.features
    }
    labels = np.concatenate([p.labels for p in parts])
    labels = labels.astype(str) if text else label_values(labels)
    return features, labels, len(labels)


def evaluate_run(run: RunFolder, data: Path | None = None, backend: str = "auto") -> Evaluation:
    """Loss and metrics of a run on its test split (or ``data``), plus a class report."""
    features, labels, source = evaluation_data(run, data)
    predictor = Predictor(run, backend)
    pre = run.preprocessor
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        outputs = predictor.outputs(transform_features(pre, features))
    if pre.label.is_classification:
        try:
            truth = class_indices(pre.label, labels)
        except KeyError as exc:
            raise CnnCliError(
                f"label {exc.args[0]!r} was not a class in training",
                where=Location(file=source),
                hint=f"classes are: {', '.join(map(str, pre.label.classes))}",
            ) from None
        metrics, per_class, confusion = classification_scores(pre, outputs, truth)
        return Evaluation(
            metrics, len(truth), predictor.backend, source, pre.label.classes, per_class, confusion
        )
    target = encode_labels(pre.label, labels)
    metrics = regression_scores(pre, outputs, target, labels, run.config)
    return Evaluation(metrics, len(labels), predictor.backend, source)


def classification_scores(
    pre: Preprocessor, outputs: np.ndarray, truth: np.ndarray
) -> tuple[dict[str, float], list[dict[str, Any]], list[list[int]]]:
    n_classes = len(pre.label.classes)
    if pre.label.kind == "binary":
        positive = np.clip(outputs.reshape(-1).astype(np.float64), _EPSILON, 1 - _EPSILON)
        loss = -np.mean(truth * np.log(positive) + (1 - truth) * np.log(1 - positive))
        predicted = (outputs.reshape(-1) >= 0.5).astype(np.int64)
    else:
        probabilities = outputs.astype(np.float64)
        probabilities = probabilities / probabilities.sum(axis=1, keepdims=True)
        picked = np.clip(probabilities[np.arange(len(truth)), truth], _EPSILON, 1 - _EPSILON)
        loss = -np.mean(np.log(picked))
        predicted = outputs.argmax(axis=1)
    confusion = np.zeros((n_classes, n_classes), dtype=np.int64)
    np.add.at(confusion, (truth, predicted), 1)
    per_class = []
    for index, name in enumerate(pre.label.classes):
        tp = confusion[index, index]
        precision = tp / confusion[:, index].sum() if confusion[:, index].sum() else 0.0
        recall = tp / confusion[index].sum() if confusion[index].sum() else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        per_class.append(
            {
                "class": name,
                "precision": float(precision),
                "recall": float(recall),
                "f1": float(f1),
                "support": int(confusion[index].sum()),
            }
        )
    metrics = {"loss": float(loss), "accuracy": float(np.mean(predicted == truth))}
    return metrics, per_class, confusion.tolist()


def regression_scores(
    pre: Preprocessor,
    outputs: np.ndarray,
    target: np.ndarray,
    labels: np.ndarray,
    config: dict[str, Any],
) -> dict[str, float]:
    scaled = outputs.reshape(len(target), -1)[:, :1].astype(np.float64)
    error = scaled - target.astype(np.float64)
    loss_name = loss_type(config.get("compile", {}).get("loss")) or REGRESSION_DEFAULT_LOSS
    loss = (
        np.mean(np.abs(error))
        if loss_name in ("mae", "mean_absolute_error", "MeanAbsoluteError")
        else np.mean(error**2)
    )
    values, _ = decode_outputs(pre.label, outputs)
    original_error = np.asarray(values) - labels.astype(np.float64)
    return {
        "loss": float(loss),
        "mae": float(np.mean(np.abs(original_error))),
        "rmse": float(np.sqrt(np.mean(original_error**2))),
    }
