"""Run a trained model on raw columns: the training preprocessing, the model, the decoding.

Prediction runs on ONNX Runtime and NumPy whenever the run has a checked ``model.onnx``; Keras
(and so TensorFlow) is imported only as a fallback. Nothing here imports pandas or scikit-learn:
``predict --input`` and ``--input-file`` both come through this module.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from cnncli.data.preprocess import (
    LabelTransform,
    Preprocessor,
    UnknownCategoryWarning,
    transform_features,
)
from cnncli.data.untrusted import DAMAGED_HINT
from cnncli.errors import CnnCliError, Location, short_repr
from cnncli.runs import ONNX_FILENAME, RunFolder, load_keras_model

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
            inputs, outputs = self._onnx.shapes()
        else:
            self._keras = load_keras_model(run)
            inputs, outputs = self._keras.input_shape[1:], self._keras.output_shape[1:]
        self._check_shapes(tuple(inputs), tuple(outputs))

    def _check_shapes(self, inputs: tuple[Any, ...], outputs: tuple[Any, ...]) -> None:
        """The model takes ``preprocess.json``'s input shape and gives one output per class.

        Raises:
            CnnCliError: they disagree: preprocess.json was edited (a feature or class dropped).
        """
        pre = self.preprocessor
        fixed = [dim if isinstance(dim, int) else None for dim in inputs]
        takes = len(fixed) == len(pre.input_shape) and all(
            dim is None or dim == want for dim, want in zip(fixed, pre.input_shape, strict=True)
        )
        gives = bool(outputs) and outputs[-1] in (None, pre.label.width)
        if not (takes and gives):
            model = f"takes {list(inputs)} and gives {list(outputs)} value(s) per row"
            wants = f"preprocess.json describes {list(pre.input_shape)} and {pre.label.width}"
            raise CnnCliError(
                f"the model {model}, but {wants}",
                where=Location(file=str(self.run.path)),
                hint=DAMAGED_HINT,
            )

    def outputs(self, features: np.ndarray) -> np.ndarray:
        """Model outputs for rows of preprocessed features, in batches of ``BATCH_ROWS``."""
        x = features.reshape((-1, *self.preprocessor.input_shape))
        if self.backend != "onnx":
            outputs = np.asarray(self._keras.predict(x, batch_size=4096, verbose=0))
        elif len(x) <= BATCH_ROWS:
            outputs = self._onnx.predict(x)
        else:
            # ONNX Runtime keeps its largest intermediate tensors allocated: a few thousand rows
            # at a time hold peak memory down (a conv layer's output is rows x filters x steps).
            parts = [
                self._onnx.predict(x[i : i + BATCH_ROWS]) for i in range(0, len(x), BATCH_ROWS)
            ]
            outputs = np.concatenate(parts)
        finite = np.isfinite(outputs.reshape(len(outputs), -1)).all(axis=1)
        if not finite.all():  # never print NaN as a prediction (nor as invalid JSON)
            raise CnnCliError(
                f"the model's output is not a finite number for {int((~finite).sum())} of"
                f" {len(outputs)} row(s)",
                where=Location(file=str(self.run.path)),
                hint="check those rows for extreme values; if they look usual, " + DAMAGED_HINT,
            )
        return outputs


def decode(label: LabelTransform, outputs: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    """Model outputs → class indices (or values in the label's units) and class probabilities.

    Args:
        label: the run's label transform.
        outputs: the model's outputs for some rows.

    Returns:
        For a classifier, each row's class index and a ``(rows, classes)`` float64 array of
        probabilities; for a regressor, each row's value in the label's units and None.
    """
    outputs = np.asarray(outputs)
    if label.kind == "binary":
        positive = outputs.reshape(-1).astype(np.float64)
        return (positive >= 0.5).astype(np.int64), np.stack([1.0 - positive, positive], axis=1)
    if label.is_classification:
        return outputs.argmax(axis=1), outputs.astype(np.float64)
    values = outputs.reshape(len(outputs), -1)[:, 0].astype(np.float64)
    return values * label.scale + label.center, None


def labels_of(label: LabelTransform, decoded: np.ndarray) -> list[Any]:
    """``decode``'s first result as labels: class names for a classifier, numbers otherwise."""
    if label.is_classification:
        return [label.classes[i] for i in decoded]
    return decoded.tolist()


def model_inputs(pre: Preprocessor, columns: dict[str, np.ndarray]) -> np.ndarray:
    """The training transform, quiet: ``Surprises`` reports unseen categories instead."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UnknownCategoryWarning)
        return transform_features(pre, columns)


class Surprises:
    """Counts values unlike training, over any number of chunks: numbers outside the training
    range and categories never seen (encoded as all zeros), for one note per column at the end.

    Args:
        pre: the run's preprocessing, which holds each column's range and categories.
    """

    def __init__(self, pre: Preprocessor) -> None:
        self.ranged = [
            f
            for f in pre.features
            if f.kind == "numeric" and f.minimum is not None and f.maximum is not None
        ]
        self.categorical = [f for f in pre.features if f.kind == "categorical"]
        self.counts = dict.fromkeys((f.name for f in pre.features), 0)
        self.examples: dict[str, list[str]] = {f.name: [] for f in self.categorical}

    def add(self, columns: dict[str, np.ndarray]) -> None:
        """Count the surprises of one chunk of raw columns."""
        for feature in self.ranged:
            values = columns[feature.name]
            outside = (values < feature.minimum) | (values > feature.maximum)
            self.counts[feature.name] += int(np.count_nonzero(outside))
        for feature in self.categorical:
            values = columns[feature.name]
            unseen = ~np.isin(values, np.asarray(feature.categories, dtype=object))
            unseen &= np.asarray([isinstance(v, str) for v in values.tolist()], dtype=bool)
            if unseen.any():
                self.counts[feature.name] += int(np.count_nonzero(unseen))
                # the three smallest, as if the whole file were one chunk
                seen = set(self.examples[feature.name]) | set(map(str, values[unseen].tolist()))
                self.examples[feature.name] = sorted(seen)[:3]

    def notes(self) -> list[str]:
        """One line per column with surprises: out-of-range numbers, then unseen categories."""
        notes = [
            f"{f.name}: {self.counts[f.name]:,} value(s) outside the training range"
            f" [{f.minimum:g}, {f.maximum:g}]"
            for f in self.ranged
            if self.counts[f.name]
        ]
        for feature in self.categorical:
            if self.counts[feature.name]:
                examples = ", ".join(map(short_repr, self.examples[feature.name]))
                notes.append(
                    f"column '{feature.name}': {self.counts[feature.name]:,} value(s) not seen in"
                    f" training (e.g. {examples}) encoded as all zeros"
                )
        return notes


@dataclass
class Predictions:
    """Predicted labels (or values) of some rows, with class probabilities and notes.

    Attributes:
        labels: one label (a class, or a value in the label's units) per row.
        probabilities: ``(rows, classes)`` for a classifier, else None.
        classes: the label's classes, in the probabilities' column order.
        backend: ``onnx`` or ``keras``.
        warnings: values unlike training, one line per column.
        inputs: the ``--input`` texts the rows came from, when they did.
        decoded: ``decode``'s first result: each row's class index, or its value.
    """

    labels: list[Any]
    probabilities: np.ndarray | None
    classes: tuple[Any, ...]
    backend: str = ""
    warnings: list[str] = field(default_factory=list)
    inputs: list[str] = field(default_factory=list)
    decoded: np.ndarray | None = None

    def to_json(self) -> dict[str, Any]:
        """What ``predict --input ... --json`` prints: one entry per input row, and the backend."""
        rows = []
        for index, label in enumerate(self.labels):
            row: dict[str, Any] = {"input": self.inputs[index], "label": label}
            if self.probabilities is not None:
                row["probabilities"] = {
                    str(c): float(p)
                    for c, p in zip(self.classes, self.probabilities[index], strict=True)
                }
            rows.append(row)
        return {"predictions": rows, "backend": self.backend}


def predict_columns(predictor: Predictor, columns: dict[str, np.ndarray]) -> Predictions:
    """Preprocess raw columns, run the model, decode labels and probabilities."""
    pre = predictor.preprocessor
    surprises = Surprises(pre)
    surprises.add(columns)
    decoded, probabilities = decode(pre.label, predictor.outputs(model_inputs(pre, columns)))
    return Predictions(
        labels=labels_of(pre.label, decoded),
        probabilities=probabilities,
        classes=pre.label.classes,
        backend=predictor.backend,
        warnings=surprises.notes(),
        decoded=decoded,
    )
