"""The scores a result reports, in the label's units, beside a trivial baseline's on the same rows.

``train`` (its table and ``metrics.json``) and ``evaluate`` (its table and ``--json``) call these
functions, so a run's numbers agree wherever they are shown: a regressor's errors are in the
label's units even when the model learned a standardised label (issue 10), and beside them stands
what predicting the training mean, or the majority class, scores on the same rows. NumPy only.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from cnncli.data.preprocess import LabelTransform, class_indices
from cnncli.errors import CnnCliError, Location
from cnncli.serve.predictor import decode

#: What the baseline predicts, in words, for ``metrics.json`` and the tables.
BASELINE_METHODS = {True: "majority class", False: "training mean"}
#: A regressor's scores that ``label_scores`` computes in the label's units.
_LABEL_UNIT_SCORES = frozenset({"mae", "rmse", "r2"})


def truth_from_targets(label: LabelTransform, targets: np.ndarray) -> np.ndarray:
    """Each row's true class index, or its value in the label's units, from the encoded targets."""
    targets = np.asarray(targets)
    if label.kind == "onehot":
        return targets.argmax(axis=-1)
    if label.is_classification:  # sparse or binary: the class index itself
        return targets.reshape(-1).astype(np.int64)
    return targets.reshape(-1).astype(np.float64) * label.scale + label.center


def label_scores(label: LabelTransform, outputs: np.ndarray, truth: np.ndarray) -> dict[str, float]:
    """Accuracy and balanced accuracy of a classifier; MAE, RMSE and R² of a regressor, in the
    label's units.

    Args:
        label: the run's label encoding (the model may predict a standardised label).
        outputs: the model's outputs for the rows.
        truth: each row's class index, or its label value in the label's units.
    """
    predicted, _ = decode(label, outputs)
    return _scores(label, predicted, truth)


def _scores(label: LabelTransform, predicted: np.ndarray, truth: np.ndarray) -> dict[str, float]:
    if label.is_classification:
        # the mean recall of the classes present: what a majority-class guess cannot fake on
        # unbalanced rows (it scores 1 / classes), and what fit.class_weight trades accuracy for
        truth = np.asarray(truth, dtype=np.int64)
        recalls = [np.mean(predicted[truth == index] == index) for index in np.unique(truth)]
        return {
            "accuracy": float(np.mean(predicted == truth)),
            "balanced_accuracy": float(np.mean(recalls)) if recalls else 0.0,
        }
    truth = np.asarray(truth, dtype=np.float64)
    error = predicted - truth
    spread = float(np.sum((truth - truth.mean()) ** 2))
    # R² as scikit-learn reports it: 1 - residual / total sum of squares; rows that all carry
    # one value have no spread to explain, and scikit-learn's constant-truth answer is used.
    residual = float(np.sum(error**2))
    r2 = 1.0 - residual / spread if spread > 0 else (1.0 if residual == 0 else 0.0)
    return {
        "mae": float(np.mean(np.abs(error))),
        "rmse": float(np.sqrt(np.mean(error**2))),
        "r2": r2,
    }


def scaled_scores(label: LabelTransform, scores: dict[str, float]) -> dict[str, str]:
    """The scale of each score not in the label's units: Keras' loss and metrics of a model that
    learned a standardised label (a regressor's MAE, RMSE and R² are always in label units)."""
    if label.kind != "standard":
        return {}
    return {key: "standardised label" for key in scores if key not in _LABEL_UNIT_SCORES}


def baseline_prediction(label: LabelTransform, train_truth: np.ndarray) -> Any:
    """What a model that ignores its inputs predicts: the training rows' majority class (its
    name) or their mean label (in the label's units)."""
    if label.is_classification:
        counts = np.bincount(np.asarray(train_truth, dtype=np.int64), minlength=len(label.classes))
        return label.classes[int(counts.argmax())]
    return float(np.mean(train_truth))


def baseline_scores(label: LabelTransform, prediction: Any, truth: np.ndarray) -> dict[str, float]:
    """The scores of always predicting ``prediction`` (``baseline_prediction``) on these rows."""
    if label.is_classification:
        index = class_indices(label, np.asarray([prediction]))[0]
        return _scores(label, np.full(len(truth), index), truth)
    return _scores(label, np.full(len(truth), float(prediction)), truth)


def baseline_from_metrics(label: LabelTransform, metrics: Any, file: str) -> Any | None:
    """The baseline prediction a run's ``metrics.json`` recorded, checked; None when it has none.

    Raises:
        CnnCliError: the recorded value is not a class of the run, or not a finite number.
    """
    baseline = metrics.get("baseline") if isinstance(metrics, dict) else None
    if not isinstance(baseline, dict) or "predicts" not in baseline:
        return None  # a run from before baselines
    value = baseline["predicts"]
    if label.is_classification:
        fits = not isinstance(value, (dict, list)) and str(value) in map(str, label.classes)
    else:
        number = isinstance(value, (int, float)) and not isinstance(value, bool)
        fits = number and bool(np.isfinite(value))
    if not fits:
        raise CnnCliError(
            f"baseline.predicts is {str(value)[:40]!r}, not "
            + ("a class of the run" if label.is_classification else "a finite number"),
            where=Location(file=file, key="baseline.predicts"),
            hint="the run folder is damaged; train the config again",
        )
    return value


def beats_baseline(
    label: LabelTransform, scores: dict[str, float], baseline: dict[str, float]
) -> bool:
    """Whether the model scores better than the baseline: higher accuracy or balanced accuracy
    (a model weighted towards rare classes may give up accuracy for it), or lower MAE."""
    if label.is_classification:
        return any(
            scores[name] > baseline[name]
            for name in ("accuracy", "balanced_accuracy")
            if name in scores and name in baseline
        )
    return scores["mae"] < baseline["mae"]


def baseline_warning(label: LabelTransform, scored: str) -> str:
    """The one line said when a model does not beat its baseline on the rows ``scored``."""
    method = BASELINE_METHODS[label.is_classification]
    measure = "accuracy or balanced accuracy" if label.is_classification else "MAE"
    return (
        f"the model does not beat predicting the {method} on the {scored} rows ({measure});"
        " train longer, scale the data, or change the model"
    )


#: Words in a score's name that mean smaller is better (a loss, an error); every other score,
#: accuracy or R² say, is better larger. ``runs --sort`` and ``tune``'s direction both ask here.
SMALLER_IS_BETTER = (
    "loss", "error", "mae", "mse", "rmse", "msle", "mape",
    "crossentropy", "hinge", "divergence",
)  # fmt: skip


def smaller_is_better(metric: str) -> bool:
    """Whether a smaller value of the score named ``metric`` is better."""
    name = metric.lower()
    return any(word in name for word in SMALLER_IS_BETTER)
