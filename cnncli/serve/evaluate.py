"""``evaluate``: the configured loss, accuracy or errors, per-class scores and confusion matrix.

The loss is the one the run was compiled with (``compile.loss``, or the default for its label
encoding), computed by Keras on the Keras path and by ``losses``' NumPy twins on the ONNX path.
The per-class scores are NumPy's, as scikit-learn defines them (``zero_division=0``), so
``train`` writes them into ``summary.json`` without importing scikit-learn (a second or more).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from cnncli.data.preprocess import Preprocessor, class_indices, encode_labels, transform_features
from cnncli.errors import CnnCliError, Location
from cnncli.model.targets import default_loss, loss_type
from cnncli.runs import CONFIG_FILENAME, METRICS_FILENAME, RunFolder, verify_data
from cnncli.serve.losses import LossUnavailable, configured_loss
from cnncli.serve.predictor import Predictor, decode
from cnncli.serve.scores import (
    BASELINE_METHODS,
    baseline_from_metrics,
    baseline_scores,
    baseline_warning,
    beats_baseline,
    label_scores,
    scaled_scores,
)


@dataclass
class Evaluation:
    """Scores of a run on some labelled rows.

    Attributes:
        metrics: ``loss`` (unless unavailable, see ``notes``) and ``accuracy`` for a classifier,
            ``mae``, ``rmse`` and ``r2`` in the label's units for a regressor.
        rows: how many rows were scored.
        backend: ``onnx`` or ``keras``.
        source: where the rows came from, in words.
        scored: a short name for them: ``test``, or the file given with ``--data``.
        classes: the label's classes (empty for a regressor).
        per_class: precision, recall, F1 and support of each class.
        confusion: counts, rows the true class and columns the predicted one.
        notes: why something is missing, or that the baseline was not beaten, one line each.
        baseline: the run's baseline (``method``, what it ``predicts``) and its ``metrics`` on
            the same rows; empty for a run from before baselines.
        scale: the scale of each score not in the label's units (``loss`` of a standardised
            label).
    """

    metrics: dict[str, float]
    rows: int
    backend: str
    source: str
    classes: tuple[Any, ...] = ()
    per_class: list[dict[str, Any]] = field(default_factory=list)
    confusion: list[list[int]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    scored: str = "test"  # the table's row: the test split, or the --data file's name
    baseline: dict[str, Any] = field(default_factory=dict)
    scale: dict[str, str] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """What ``evaluate --json`` prints."""
        extra = {"baseline": self.baseline} if self.baseline else {}
        return {
            "metrics": self.metrics,
            "rows": self.rows,
            "backend": self.backend,
            "per_class": self.per_class,
            "confusion_matrix": self.confusion,
            "classes": list(self.classes),
            **extra,
            **({"scale": self.scale} if self.scale else {}),
        }


def evaluation_data(
    run: RunFolder, data: Path | None
) -> tuple[dict[str, np.ndarray], np.ndarray, str]:
    """Raw feature columns and labels of the run's stored test split, or of another CSV.

    Returns:
        The feature columns, the raw labels, and where they came from in words.

    Raises:
        CnnCliError: the file cannot be read, or no longer has the rows the run was trained on.
    """
    from cnncli.config.models import config_from_dict
    from cnncli.data.columns import columns_of, label_values
    from cnncli.data.table import load_dataset

    config = config_from_dict(run.config, run.path, file=str(run.path / "config.yaml"))
    pre = run.preprocessor
    columns = columns_of(pre)
    split = run.split
    if data is None and split is None:
        raise CnnCliError(
            "this run has no split.json, so its test rows are unknown",
            where=Location(file=str(run.path)),
            hint="pass the test data with --data",
        )
    if data is not None:
        dataset = load_dataset(config, str(data), columns)
        rows = np.arange(dataset.rows)
        source = str(data)
    elif split["method"] == "test_file":
        verify_data(run, "test_data", str(config.data.test_path))
        dataset = load_dataset(config, config.data.test_path, columns)
        rows = np.arange(dataset.rows)
        source = str(config.data.test_path)
    elif split["method"] == "hash":  # a streaming run: keep only the test rows of each chunk
        verify_data(run, "data", config.data.path)
        features, labels, rows = _hashed_test_rows(config, columns, split, pre)
        if not rows:
            raise CnnCliError(
                "the run's test split has no rows in this file",
                where=Location(file=config.data.path),
                hint="pass the test data with --data",
            )
        return features, labels, f"{config.data.path} (test split, {rows} rows)"
    else:
        verify_data(run, "data", config.data.path)
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
    """Loss and metrics of a run on its test split (or ``data``), plus a class report.

    Args:
        run: an opened run folder.
        data: a labelled CSV to score instead of the run's own test split.
        backend: ``onnx``, ``keras`` or ``auto`` (see ``Predictor``).

    Raises:
        CnnCliError: the data cannot be read, or holds a label that was not a class in training.
    """
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
        result = Evaluation(
            metrics, len(truth), predictor.backend, source, pre.label.classes, per_class, confusion
        )
    else:
        truth = labels.astype(np.float64)
        result = Evaluation(
            label_scores(pre.label, outputs, truth), len(labels), predictor.backend, source
        )
    try:
        loss = run_loss(run, encode_labels(pre.label, labels), outputs, predictor.backend)
        result.metrics = {"loss": loss, **result.metrics}
    except LossUnavailable as exc:
        result.notes.append(str(exc))
    if data is not None:
        result.scored = Path(data).name
    result.scale = scaled_scores(pre.label, result.metrics)
    _add_baseline(run, result, truth)
    return result


def _add_baseline(run: RunFolder, result: Evaluation, truth: np.ndarray) -> None:
    """The run's baseline (``metrics.json``) scored on the same rows; a note if it is not beaten."""
    from cnncli.data.untrusted import read_json

    label = run.preprocessor.label
    file = str(run.path / METRICS_FILENAME)
    stored = read_json(run.file(METRICS_FILENAME))
    predicts = baseline_from_metrics(label, stored, file)
    if predicts is None:
        return
    scores = baseline_scores(label, predicts, truth)
    beaten = beats_baseline(label, result.metrics, scores)
    result.baseline = {
        "method": BASELINE_METHODS[label.is_classification],
        "predicts": predicts,
        "metrics": scores,
        "beaten": beaten,
    }
    if not beaten:
        result.notes.append(baseline_warning(label, result.scored))


def run_loss(run: RunFolder, targets: np.ndarray, outputs: np.ndarray, backend: str) -> float:
    """The run's configured loss of ``outputs`` against the encoded ``targets``.

    Raises:
        LossUnavailable: see ``losses.configured_loss``.
    """
    from cnncli.data.untrusted import Field
    from cnncli.model.arguments import keras_message
    from cnncli.model.registry import LOSSES

    where = Field(str(run.path / CONFIG_FILENAME)).at("compile").at("loss")
    compile_spec = run.config.get("compile") or {}
    spec = compile_spec.get("loss") if isinstance(compile_spec, dict) else None
    name = loss_type(spec) or default_loss(run.preprocessor.label.kind)
    if not isinstance(name, str) or name not in LOSSES.usable():
        raise where.refuse("a loss cnncli allows (see keras.io/api/losses)", name)
    args = {k: v for k, v in spec.items() if k != "type"} if isinstance(spec, dict) else {}
    try:
        return configured_loss(name, args, targets, outputs, use_keras=backend == "keras")
    except (TypeError, ValueError) as exc:  # arguments the loss does not take
        raise where.damaged(f"Keras refuses the loss: {keras_message(exc)}") from exc


def classification_scores(
    pre: Preprocessor, outputs: np.ndarray, truth: np.ndarray
) -> tuple[dict[str, float], list[dict[str, Any]], list[list[int]]]:
    """Accuracy, per-class precision/recall/F1/support and the confusion matrix.

    Args:
        pre: the run's preprocessing (its label's classes).
        outputs: the model's outputs.
        truth: each row's true class index.
    """
    size = len(pre.label.classes)
    predicted, _ = decode(pre.label, outputs)
    truth = np.asarray(truth, dtype=np.int64)
    confusion = np.bincount(truth * size + predicted, minlength=size * size).reshape(size, size)
    hits, support, said = np.diag(confusion), confusion.sum(axis=1), confusion.sum(axis=0)
    # scikit-learn's definitions with zero_division=0: a class never predicted (or never
    # present) scores 0, and F1 is 2·tp / (2·tp + fp + fn)
    precision = _share(hits, said)
    recall = _share(hits, support)
    f1 = _share(2 * hits, said + support)
    per_class = [
        {
            "class": name,
            "precision": float(precision[index]),
            "recall": float(recall[index]),
            "f1": float(f1[index]),
            "support": int(support[index]),
        }
        for index, name in enumerate(pre.label.classes)
    ]
    return label_scores(pre.label, outputs, truth), per_class, confusion.tolist()


def _share(part: np.ndarray, whole: np.ndarray) -> np.ndarray:
    """``part / whole``, 0 where ``whole`` is 0."""
    return np.divide(part, whole, out=np.zeros(len(part)), where=whole > 0)
