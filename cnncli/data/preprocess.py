"""Fit and apply feature scaling, one-hot encoding and label encoding with NumPy only.

The fitted state is plain data (``preprocess.json``): means, scales, category lists, label
classes. Training and prediction call the same ``transform_features``, so both paths produce
bit-for-bit the same model inputs. This module imports neither pandas nor scikit-learn, which
keeps ``cnncli predict`` fast.
"""

from __future__ import annotations

import json
import math
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import numpy as np

from cnncli.data.cells import FLOAT32_MAX
from cnncli.data.untrusted import (
    Field,
    distinct,
    items,
    mapping,
    member,
    number,
    one_line,
    one_of,
    optional,
    parse_json,
    positive_count,
    positive_number,
    string,
    text,
)
from cnncli.errors import CnnCliError, Location, short_repr

#: ``preprocess.json``'s newest layout; ``from_json`` refuses a newer one rather than misread it.
PREPROCESS_FORMAT = 2
#: The layout of a run without date columns: older cnncli versions read it.
PLAIN_FORMAT = 1
#: The first layout with ``kind: date``: an older cnncli refuses such a run in one line instead
#: of encoding its dates as an empty one-hot block.
DATE_FORMAT = 2
#: Integer labels with at most this many distinct values are taken as classes.
MAX_INTEGER_CLASSES = 50
#: A smaller scale would divide training-range values to infinity inside a float32 model.
FLOAT32_TINY = float(np.finfo(np.float32).tiny)


#: The model inputs a date column becomes: the year, scaled like a number, then the sine and
#: cosine of the month, the day of the week and the day of the year (so December sits next to
#: January and Sunday next to Monday).
DATE_INPUTS = (
    "year",
    "month sin",
    "month cos",
    "day of week sin",
    "day of week cos",
    "day of year sin",
    "day of year cos",
)
#: The periods of the cyclical date parts: 12 months, 7 days, a year of 365.25 days.
DATE_PERIODS = (12.0, 7.0, 365.25)


@dataclass(frozen=True)
class FeatureTransform:
    """How one CSV column becomes model inputs: scaled numbers, a one-hot block, or a date.

    A date column's raw values are days since 1970-01-01; ``center`` and ``scale`` scale its
    year, and ``fill`` is a day (the training rows' mean day) under ``missing: mean``.
    """

    name: str
    kind: str  # "numeric" | "categorical" | "date"
    center: float = 0.0
    scale: float = 1.0
    fill: float | None = None  # value used for an empty cell under `missing: mean`
    minimum: float | None = None  # training range, for out-of-range warnings
    maximum: float | None = None
    categories: tuple[str, ...] = ()

    @property
    def width(self) -> int:
        if self.kind == "date":
            return len(DATE_INPUTS)
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
    format: int = field(default=PLAIN_FORMAT)

    @property
    def feature_names(self) -> list[str]:
        return [feature.name for feature in self.features]

    @property
    def input_width(self) -> int:
        return sum(feature.width for feature in self.features)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, allow_nan=False)

    @classmethod
    def from_json(cls, text: str, file: str = "preprocess.json") -> Preprocessor:
        """Read ``preprocess.json`` as untrusted input: every field's shape and range first.

        Raises:
            CnnCliError: a newer format than this cnncli reads (a run from a newer version), or
                a field that is missing, of the wrong type or out of range (one line naming it).
        """
        top = Field(file)
        data = mapping(parse_json(text, file), top)
        version = data.get("format", PLAIN_FORMAT)
        if not isinstance(version, int) or isinstance(version, bool) or version < 1:
            raise top.at("format").refuse("a run format number", version)
        if version > PREPROCESS_FORMAT:
            raise CnnCliError(
                f"preprocess.json has format {version!r}; this cnncli reads format"
                f" {PREPROCESS_FORMAT} and older",
                where=Location(file=file),
                hint="predict with the cnncli version that trained the run, or retrain",
            )
        features = tuple(
            member(data, "features", top, lambda v, at: items(v, at, _feature_from_json))
        )
        if not features:
            raise top.at("features").refuse("at least one feature", [])
        names = [feature.name for feature in features]
        distinct(names, top.at("features"))
        label = member(data, "label", top, _label_from_json)
        if label.name in names:
            raise top.at("label.name").refuse("a column that is not also a feature", label.name)
        shape = tuple(member(data, "input_shape", top, lambda v, at: items(v, at, positive_count)))
        pre = cls(features=features, label=label, input_shape=shape, format=version)
        if not shape or math.prod(shape) != pre.input_width:
            raise top.at("input_shape").refuse(
                f"a shape holding the {pre.input_width} input values of the features", list(shape)
            )
        return pre


def _feature_from_json(value: Any, where: Field) -> FeatureTransform:
    """One entry of ``preprocess.json``'s ``features``, checked by the rules of its kind."""
    item = mapping(value, where)
    name = member(item, "name", where, one_line)
    kind = member(item, "kind", where, one_of(*FEATURE_KINDS))
    return FEATURE_KINDS[kind](item, name, where)


def _numeric_from_json(item: dict[str, Any], name: str, where: Field) -> FeatureTransform:
    minimum = member(item, "minimum", where, optional(model_number))
    maximum = member(item, "maximum", where, optional(model_number))
    if minimum is not None and maximum is not None and minimum > maximum:
        raise where.at("maximum").refuse(f"a number ≥ minimum ({minimum:g})", maximum)
    return FeatureTransform(
        name=name,
        kind="numeric",
        **_scaling_from_json(item, where),
        minimum=minimum,
        maximum=maximum,
        categories=tuple(member(item, "categories", where, lambda v, at: items(v, at, text, 0))),
    )


def _categorical_from_json(item: dict[str, Any], name: str, where: Field) -> FeatureTransform:
    categories = member(item, "categories", where, lambda v, at: items(v, at, string))
    if not categories:
        raise where.at("categories").refuse("at least one category", [])
    distinct(categories, where.at("categories"))
    return FeatureTransform(name=name, kind="categorical", categories=tuple(categories))


def _date_from_json(item: dict[str, Any], name: str, where: Field) -> FeatureTransform:
    """A date: ``center`` and ``scale`` scale its year; ``fill`` is a day number (1970 = 0)."""
    for key in ("minimum", "maximum"):
        if member(item, key, where, optional(model_number)) is not None:
            raise where.at(key).refuse("null for a date", item[key])
    if member(item, "categories", where, lambda v, at: items(v, at, text, 0)):
        raise where.at("categories").refuse("no categories for a date", item["categories"])
    return FeatureTransform(name=name, kind="date", **_scaling_from_json(item, where))


def _scaling_from_json(item: dict[str, Any], where: Field) -> dict[str, Any]:
    """A number's (or a date's year's) ``center`` and ``scale``, and the ``fill`` of its gaps."""
    return {
        "center": member(item, "center", where, model_number),
        "scale": member(item, "scale", where, model_scale),
        "fill": member(item, "fill", where, optional(model_number)),
    }


#: Each feature kind of ``preprocess.json`` and the reader that checks its fields.
FEATURE_KINDS: dict[str, Callable[[dict[str, Any], str, Field], FeatureTransform]] = {
    "numeric": _numeric_from_json,
    "categorical": _categorical_from_json,
    "date": _date_from_json,
}
#: Label kinds that classify, and how many classes each needs at least.
_CLASSIFYING = {"onehot": 2, "sparse": 2, "binary": 2}


def _label_from_json(value: Any, where: Field) -> LabelTransform:
    """``preprocess.json``'s ``label``: its kind, classes and scaling, checked."""
    item = mapping(value, where)
    kind = member(item, "kind", where, one_of("onehot", "sparse", "binary", "none", "standard"))
    classes = member(item, "classes", where, lambda v, at: items(v, at, class_value))
    if kind in _CLASSIFYING:
        wanted = "exactly 2 classes" if kind == "binary" else "at least 2 classes"
        if len(classes) < 2 or (kind == "binary" and len(classes) != 2):
            raise where.at("classes").refuse(wanted, classes)
        distinct(classes, where.at("classes"))
    elif classes:
        raise where.at("classes").refuse(f"no classes for a {kind} label", classes)
    return LabelTransform(
        kind=kind,
        name=member(item, "name", where, one_line),
        classes=tuple(classes),
        center=member(item, "center", where, model_number),
        scale=member(item, "scale", where, model_scale),
    )


def model_number(value: Any, where: Field) -> float:
    """A finite number within float32's range, the range a model's inputs can hold."""
    result = number(value, where)
    if abs(result) > FLOAT32_MAX:
        raise where.refuse("a number within float32's range (±3.4e38)", value)
    return result


def model_scale(value: Any, where: Field) -> float:
    """A divisor that keeps scaled values finite: positive, finite, not below float32's tiniest."""
    result = positive_number(value, where)
    if not FLOAT32_TINY <= result <= FLOAT32_MAX:
        raise where.refuse("a positive number within float32's range", value)
    return result


def class_value(value: Any, where: Field) -> Any:
    """A class: text or a finite number, as training stored it."""
    if isinstance(value, str):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, float) and math.isfinite(value):
        return value
    raise where.refuse("a class name or a finite number", value)


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


def date_transform(
    name: str, years: RunningMoments, days: RunningMoments, method: str, fill_missing: bool
) -> FeatureTransform:
    """A date column's transform: its years scaled like a number, an empty cell filled with the
    mean day."""
    scaled = numeric_transform(name, years, method, fill_missing=False)
    fill = float(np.floor(days.mean)) if fill_missing else None
    return replace(scaled, kind="date", fill=fill, minimum=None, maximum=None)


def date_parts(days: np.ndarray) -> tuple[np.ndarray, ...]:
    """Year, month (0-11), day of week (Monday 0) and day of year (0-365) of days since
    1970-01-01, as float64; NaN where a day is NaN."""
    days = np.asarray(days, dtype=np.float64)
    known = np.isfinite(days)
    whole = np.where(known, np.floor(np.where(known, days, 0.0)), 0.0).astype(np.int64)
    day = whole.astype("datetime64[D]")
    year_start = day.astype("datetime64[Y]")
    parts = (
        year_start.astype(np.int64) + 1970,
        day.astype("datetime64[M]").astype(np.int64) % 12,
        (whole + 3) % 7,  # 1970-01-01 was a Thursday
        (day - year_start.astype("datetime64[D]")).astype(np.int64),
    )
    return tuple(np.where(known, part.astype(np.float64), np.nan) for part in parts)


def categorical_transform(name: str, categories: set[str]) -> FeatureTransform:
    """A column's one-hot block over its sorted categories."""
    return FeatureTransform(name=name, kind="categorical", categories=tuple(sorted(categories)))


class PreprocessingFit:
    """The preprocessing fit as it goes: one ``update`` per chunk of rows, then ``finish``.

    Training in memory is one chunk, streaming is many; both end in the same ``finish``. Only
    the training rows are fitted; the label facts that decide the task see every row.

    Args:
        features: the feature columns, in order.
        categorical: those to one-hot encode.
        classification: the config says so (``task``): keep every class, however many.
        dates: the date columns (raw values in days); ``moments`` holds their years.
    """

    def __init__(
        self,
        features: Sequence[str],
        categorical: Sequence[str],
        classification: bool = False,
        dates: Sequence[str] = (),
    ) -> None:
        self.features = tuple(features)
        self.moments = {name: RunningMoments() for name in features if name not in categorical}
        self.days = {name: RunningMoments() for name in dates}
        self.categories: dict[str, set[str]] = {name: set() for name in categorical}
        self.label = LabelFacts(classification=classification)
        self.rows = 0  # training rows fitted

    def update(
        self,
        features: Mapping[str, np.ndarray],
        labels: np.ndarray,
        train: np.ndarray | None = None,
    ) -> None:
        """Fit one chunk: raw feature columns (float64, or str for categorical) and labels.

        Args:
            features: feature name → the chunk's raw values.
            labels: the chunk's label values, normalised as ``label_values`` does.
            train: which rows are training rows; None: all of them.
        """
        for name, running in self.moments.items():
            values = features[name] if train is None else features[name][train]
            if name in self.days:
                self.days[name].update(values)
                values = date_parts(values)[0]
            running.update(values)
        self.rows += len(labels) if train is None else int(np.count_nonzero(train))
        for name, found in self.categories.items():
            values = features[name] if train is None else features[name][train]
            # an empty cell (NaN, kept under missing: mean) is no category: it encodes as zeros
            found.update(value for value in set(values.tolist()) if isinstance(value, str))
        self.label.update(labels, train)

    def finish(
        self, *, feature_method: str, label_kind: str, fill_missing: bool, label_name: str
    ) -> Preprocessor:
        """The fitted preprocessor; its ``input_shape`` is the caller's to set.

        Args:
            feature_method: ``standard``, ``minmax`` or ``none``.
            label_kind: ``onehot``, ``sparse``, ``binary``, ``none`` or ``standard``.
            fill_missing: whether empty numeric cells become the column mean.
            label_name: the label column's name, kept for messages and decoding.
        """
        features = [
            categorical_transform(name, self.categories[name])
            if name in self.categories
            else date_transform(
                name, self.moments[name], self.days[name], feature_method, fill_missing
            )
            if name in self.days
            else numeric_transform(name, self.moments[name], feature_method, fill_missing)
            for name in self.features
        ]
        return Preprocessor(
            features=tuple(features),
            label=self.label.transform(label_kind, label_name),
            format=DATE_FORMAT if self.days else PLAIN_FORMAT,
        )


def task_of(text: bool, whole: bool, distinct: int) -> str:
    """The task a label implies: text, or at most ``MAX_INTEGER_CLASSES`` distinct whole numbers,
    is classification; other numbers are regression."""
    few = whole and distinct <= MAX_INTEGER_CLASSES
    return "classification" if text or few else "regression"


@dataclass
class LabelFacts:
    """What one pass learns about the label: what ``infer_task`` and the label encoding need."""

    classification: bool = False  # the config says so: classes are collected whatever their count
    text: bool = False
    whole: bool = True
    seen: set[Any] = field(default_factory=set)  # every row's value, until there are too many
    train_classes: list[np.ndarray] = field(default_factory=list)
    moments: RunningMoments = field(default_factory=RunningMoments)

    def update(self, labels: np.ndarray, train: np.ndarray | None = None) -> None:
        """Add one chunk's labels; ``train`` marks the training rows (None: all)."""
        import pandas as pd  # training only: predict never fits

        train_labels = labels if train is None else labels[train]
        if labels.dtype.kind in "OUSb":
            self.text = True
        elif not self.text:
            self.whole = self.whole and bool(np.all(np.mod(labels, 1) == 0))
            self.moments.update(train_labels)
        few = self.text or self.classification or len(self.seen) <= MAX_INTEGER_CLASSES
        if few:  # a continuous label (regression) stops being collected
            self.seen.update(pd.unique(labels).tolist())
            found = np.unique(pd.unique(train_labels))
            self.train_classes = [np.unique(np.concatenate([*self.train_classes, found]))]

    def task(self) -> str:
        """``infer_task``'s answer, from the pass instead of the whole column."""
        return task_of(self.text, self.whole, len(self.seen))

    def classes(self) -> np.ndarray:
        """The training rows' distinct labels, as ``np.unique(label_values(...))`` gives them."""
        values = self.train_classes[0] if self.train_classes else np.zeros(0)
        if values.dtype.kind == "O":  # text read chunk by chunk
            return np.unique(np.asarray([str(value) for value in values]))
        if values.dtype.kind == "f" and self.whole:
            return values.astype(np.int64)
        return values

    def transform(self, kind: str, name: str) -> LabelTransform:
        """The label encoding of this ``kind``, from the facts."""
        if kind in ("onehot", "sparse", "binary"):
            classes = tuple(_python(v) for v in self.classes())
            return LabelTransform(kind=kind, name=name, classes=classes)
        if kind == "standard":
            scale = self.moments.std or 1.0
            return LabelTransform(kind=kind, name=name, center=self.moments.mean, scale=scale)
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

    Numeric columns must already be float64 arrays (NaN for empty cells), date columns days
    since 1970-01-01 (``cells.parse_dates``). The arithmetic is done in float64 and cast once,
    identically for training and prediction.
    """
    blocks = []
    for feature in pre.features:
        values = columns[feature.name]
        if feature.kind == "numeric":
            values = np.asarray(values, dtype=np.float64)
            if feature.fill is not None:
                values = np.where(np.isnan(values), feature.fill, values)
            blocks.append(((values - feature.center) / feature.scale)[:, None])
        elif feature.kind == "date":
            blocks.append(_date_block(feature, values))
        else:
            blocks.append(_one_hot(feature, values))
    return np.concatenate(blocks, axis=1).astype(np.float32)


def _date_block(feature: FeatureTransform, values: np.ndarray) -> np.ndarray:
    """A date column's ``DATE_INPUTS``: the scaled year, then sine and cosine of each cycle."""
    days = np.asarray(values, dtype=np.float64)
    if feature.fill is not None:
        days = np.where(np.isnan(days), feature.fill, days)
    year, *cycles = date_parts(days)
    block = [(year - feature.center) / feature.scale]
    for part, period in zip(cycles, DATE_PERIODS, strict=True):
        angle = 2.0 * np.pi * part / period
        block += [np.sin(angle), np.cos(angle)]
    return np.stack(block, axis=1)


def _one_hot(feature: FeatureTransform, values: np.ndarray) -> np.ndarray:
    # a lookup, not a fixed-width text array: one 1 MB cell made that array rows x 4 MB wide
    text = [str(v) for v in values]
    index = {category: position for position, category in enumerate(feature.categories)}
    positions = np.fromiter((index.get(cell, -1) for cell in text), dtype=np.int64, count=len(text))
    block = np.zeros((len(text), len(feature.categories)), dtype=np.float64)
    found = positions >= 0
    block[np.flatnonzero(found), positions[found]] = 1.0
    empty = np.asarray([not isinstance(v, str) for v in values], dtype=bool)  # NaN: missing: mean
    unseen = ~found & ~empty
    if unseen.any():
        examples = sorted({text[row] for row in np.flatnonzero(unseen)})[:3]
        warnings.warn(
            f"column '{feature.name}': {int(unseen.sum())} value(s) not seen in training "
            f"(e.g. {', '.join(map(short_repr, examples))}) encoded as all zeros",
            UnknownCategoryWarning,
            stacklevel=3,
        )
    return block


def encode_labels(
    label: LabelTransform,
    values: np.ndarray,
    locate: Callable[[int], Location] | None = None,
) -> np.ndarray:
    """Label values → the targets the loss expects.

    Args:
        label: the fitted label encoding.
        values: label values, normalised as ``label_values`` does.
        locate: where the value at a position is (file, column, line), for the message.

    Raises:
        CnnCliError: a class that no training row has.
    """
    if label.is_classification:
        index, unknown = _class_positions(label, values)
        if unknown.any():
            position = int(np.argmax(unknown))
            raise CnnCliError(
                f"label {str(values[position])!r} does not occur in the training rows",
                where=locate(position) if locate is not None else None,
                hint="every class in the test data needs examples in the training data",
            )
        if label.kind == "onehot":
            return np.eye(len(label.classes), dtype=np.float32)[index]
        if label.kind == "binary":
            return index.astype(np.float32)[:, None]
        return index.astype(np.int32)
    values = np.asarray(values, dtype=np.float64)
    return ((values - label.center) / label.scale).astype(np.float32)[:, None]


def class_indices(label: LabelTransform, values: np.ndarray) -> np.ndarray:
    """Position of each raw label value in the stored class list.

    Raises:
        KeyError: the first value that is not a class, as text.
    """
    index, unknown = _class_positions(label, values)
    if unknown.any():
        raise KeyError(str(np.asarray(values)[np.argmax(unknown)]))
    return index


def _class_positions(label: LabelTransform, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each value's class position, matched as text, and where no class matches."""
    keys = np.asarray(values).astype(str)
    classes = np.asarray([str(c) for c in label.classes])
    order = np.argsort(classes)
    position = np.clip(np.searchsorted(classes[order], keys), 0, max(len(classes) - 1, 0))
    unknown = classes[order][position] != keys
    return order[position].astype(np.int64), unknown
