"""Fit and apply feature scaling, one-hot encoding and label encoding with NumPy only.

The fitted state is plain data (``preprocess.json``): means, scales, category lists, label
classes. Training and prediction call the same ``transform_features``, so both paths produce
bit-for-bit the same model inputs. This module imports neither pandas nor scikit-learn, which
keeps ``cnncli predict`` fast.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

PREPROCESS_FORMAT = 1


@dataclass(frozen=True)
class FeatureTransform:
    """How one CSV column becomes model inputs: scaled numbers or a one-hot block."""

    name: str
    kind: str  # "numeric" | "categorical"
    center: float = 0.0
    scale: float = 1.0
    fill: float | None = None  # value used for an empty cell under `missing: mean`
    minimum: float | None = None  # training range, for out-of-range warnings
    maximum: float | None = None
    categories: tuple[str, ...] = ()

    @property
    def width(self) -> int:
        return len(self.categories) if self.kind == "categorical" else 1


@dataclass(frozen=True)
class LabelTransform:
    """How the label column maps to model targets and back."""

    kind: str  # "onehot" | "sparse" | "binary" | "none" | "standard"
    name: str
    classes: tuple[Any, ...] = ()
    center: float = 0.0
    scale: float = 1.0

    @property
    def is_classification(self) -> bool:
        return self.kind in ("onehot", "sparse", "binary")

    @property
    def width(self) -> int:
        """Units of the model's last layer for this label."""
        return label_width(self.kind, len(self.classes))


def label_width(kind: str, n_classes: int) -> int:
    """One output per class for one-hot and sparse labels; one value for binary and regression."""
    return n_classes if kind in ("onehot", "sparse") else 1


@dataclass(frozen=True)
class Preprocessor:
    features: tuple[FeatureTransform, ...]
    label: LabelTransform
    input_shape: tuple[int, ...] = ()
    format: int = field(default=PREPROCESS_FORMAT)

    @property
    def feature_names(self) -> list[str]:
        return [feature.name for feature in self.features]

    @property
    def input_width(self) -> int:
        return sum(feature.width for feature in self.features)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, allow_nan=False)

    @classmethod
    def from_json(cls, text: str) -> Preprocessor:
        data = json.loads(text)
        features = tuple(
            FeatureTransform(**{**item, "categories": tuple(item["categories"])})
            for item in data["features"]
        )
        label = LabelTransform(**{**data["label"], "classes": tuple(data["label"]["classes"])})
        return cls(
            features=features,
            label=label,
            input_shape=tuple(data["input_shape"]),
            format=data.get("format", PREPROCESS_FORMAT),
        )


# ---------------------------------------------------------------------------------------------
# Fitting


@dataclass
class RunningMoments:
    """Mean, variance, min and max over chunks (Chan et al.'s parallel update), NaN-aware."""

    count: int = 0
    mean: float = 0.0
    m2: float = 0.0
    minimum: float = float("inf")
    maximum: float = float("-inf")

    def update(self, values: np.ndarray) -> None:
        values = np.asarray(values, dtype=np.float64)
        values = values[~np.isnan(values)]
        if values.size == 0:
            return
        n_b = values.size
        mean_b = float(values.mean())
        m2_b = float(((values - mean_b) ** 2).sum())
        total = self.count + n_b
        delta = mean_b - self.mean
        self.mean += delta * n_b / total
        self.m2 += m2_b + delta * delta * self.count * n_b / total
        self.count = total
        self.minimum = min(self.minimum, float(values.min()))
        self.maximum = max(self.maximum, float(values.max()))

    @property
    def std(self) -> float:
        return float(np.sqrt(self.m2 / self.count)) if self.count else 0.0


def numeric_transform(
    name: str, moments: RunningMoments, method: str, fill_missing: bool
) -> FeatureTransform:
    """Turn a column's moments into its scaling: standard, minmax or none."""
    if method == "standard":
        center, scale = moments.mean, moments.std
    elif method == "minmax":
        center, scale = moments.minimum, moments.maximum - moments.minimum
    else:
        center, scale = 0.0, 1.0
    # A constant column has zero spread; scaling it by 1 keeps it at 0 instead of NaN.
    if not np.isfinite(scale) or scale == 0.0:
        scale = 1.0
    return FeatureTransform(
        name=name,
        kind="numeric",
        center=float(center),
        scale=float(scale),
        fill=float(moments.mean) if fill_missing else None,
        minimum=moments.minimum if moments.count else None,
        maximum=moments.maximum if moments.count else None,
    )


def categorical_transform(name: str, categories: set[str]) -> FeatureTransform:
    return FeatureTransform(name=name, kind="categorical", categories=tuple(sorted(categories)))


def fit_preprocessor(
    columns: Mapping[str, np.ndarray],
    labels: np.ndarray,
    *,
    categorical: Sequence[str],
    feature_method: str,
    label_kind: str,
    fill_missing: bool,
    label_name: str = "",
) -> Preprocessor:
    """Fit every feature's transform and the label encoding on the training rows.

    Args:
        columns: feature name → raw values (float for numeric, str for categorical), in order.
        labels: raw label values of the training rows.
        categorical: names of the columns to one-hot encode.
        feature_method: ``standard``, ``minmax`` or ``none``.
        label_kind: ``onehot``, ``sparse``, ``binary``, ``none`` or ``standard``.
        fill_missing: whether empty numeric cells become the column mean.
        label_name: the label column's name, kept for messages and decoding.

    Returns:
        The fitted preprocessor; its ``input_shape`` is set once the width is known.
    """
    features = []
    for name, values in columns.items():
        if name in categorical:
            features.append(categorical_transform(name, {str(v) for v in values if v is not None}))
        else:
            moments = RunningMoments()
            moments.update(values)
            features.append(numeric_transform(name, moments, feature_method, fill_missing))
    return Preprocessor(
        features=tuple(features),
        label=fit_label(labels, label_kind, name=label_name),
    )


def fit_label(labels: np.ndarray, kind: str, name: str) -> LabelTransform:
    if kind in ("onehot", "sparse", "binary"):
        return LabelTransform(
            kind=kind, name=name, classes=tuple(_python(v) for v in np.unique(labels))
        )
    if kind == "standard":
        values = np.asarray(labels, dtype=np.float64)
        scale = float(values.std()) or 1.0
        return LabelTransform(kind=kind, name=name, center=float(values.mean()), scale=scale)
    return LabelTransform(kind="none", name=name)


def _python(value: Any) -> Any:
    """NumPy scalar → plain Python value for JSON."""
    return value.item() if isinstance(value, np.generic) else value


# ---------------------------------------------------------------------------------------------
# Applying


class UnknownCategoryWarning(UserWarning):
    """A categorical value never seen in training; it is encoded as all zeros."""


def transform_features(pre: Preprocessor, columns: Mapping[str, np.ndarray]) -> np.ndarray:
    """Raw columns → float32 model inputs of shape ``(rows, input_width)``.

    Numeric columns must already be float64 arrays (NaN for empty cells). The arithmetic is
    done in float64 and cast once, identically for training and prediction.
    """
    blocks = []
    for feature in pre.features:
        values = columns[feature.name]
        if feature.kind == "numeric":
            values = np.asarray(values, dtype=np.float64)
            if feature.fill is not None:
                values = np.where(np.isnan(values), feature.fill, values)
            blocks.append(((values - feature.center) / feature.scale)[:, None])
        else:
            blocks.append(_one_hot(feature, values))
    return np.concatenate(blocks, axis=1).astype(np.float32)


def _one_hot(feature: FeatureTransform, values: np.ndarray) -> np.ndarray:
    text = np.asarray([str(v) for v in values])
    categories = np.asarray(feature.categories)
    block = (text[:, None] == categories[None, :]).astype(np.float64)
    unseen = ~block.any(axis=1)
    if unseen.any():
        examples = sorted(set(text[unseen].tolist()))[:3]
        warnings.warn(
            f"column '{feature.name}': {int(unseen.sum())} value(s) not seen in training "
            f"(e.g. {', '.join(map(repr, examples))}) encoded as all zeros",
            UnknownCategoryWarning,
            stacklevel=3,
        )
    return block


def encode_labels(label: LabelTransform, values: np.ndarray) -> np.ndarray:
    """Raw label values → the targets the loss expects."""
    if label.is_classification:
        index = class_indices(label, values)
        if label.kind == "onehot":
            return np.eye(len(label.classes), dtype=np.float32)[index]
        if label.kind == "binary":
            return index.astype(np.float32)[:, None]
        return index.astype(np.int32)
    values = np.asarray(values, dtype=np.float64)
    return ((values - label.center) / label.scale).astype(np.float32)[:, None]


def class_indices(label: LabelTransform, values: np.ndarray) -> np.ndarray:
    """Position of each raw label value in the stored class list."""
    lookup = {str(c): i for i, c in enumerate(label.classes)}
    return np.fromiter((lookup[str(v)] for v in values), dtype=np.int64, count=len(values))
