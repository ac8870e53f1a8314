"""The configured loss of a run, computed as Keras computes it.

``evaluate`` on ONNX must not import Keras, so the losses a config can name have NumPy twins here,
written from Keras' own definitions (same clipping at Keras' epsilon, same label conversions) and
tested against ``keras.losses`` to 1e-6. A loss without a twin here (the focal losses,
``cosine_similarity``, a non-default ``reduction``) is computed by Keras when Keras is installed;
without Keras it is reported as unavailable, with the reason, rather than replaced by another.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from cnncli.errors import CnnCliError

_EPSILON = 1e-7  # Keras' backend epsilon
# Keras clips in float32: 1 - 1e-7 rounds to 0.99999988 there, which a saturated output shows.
_LOW = float(np.float32(_EPSILON))
_HIGH = float(np.float32(1.0) - np.float32(_EPSILON))


class LossUnavailable(Exception):
    """The configured loss has no NumPy twin and Keras cannot be imported to compute it."""


def _align(y_true: np.ndarray, y_pred: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Keras' ``squeeze_or_expand_to_same_rank``: ranks that differ by a trailing 1 are matched."""
    if y_true.ndim == y_pred.ndim + 1 and y_true.shape[-1] == 1:
        y_true = y_true[..., None] if y_pred.ndim == 1 else y_true[..., 0]
    if y_pred.ndim == y_true.ndim + 1 and y_pred.shape[-1] == 1:
        y_pred = y_pred[..., None] if y_true.ndim == 1 else y_pred[..., 0]
    return y_true, y_pred


def _hinge_labels(y_true: np.ndarray) -> np.ndarray:
    """0/1 labels become -1/1, as Keras' hinge losses do; -1/1 labels stay."""
    return 2.0 * y_true - 1.0 if np.isin(y_true, (0.0, 1.0)).all() else y_true


def _categorical(
    y_true: np.ndarray, y_pred: np.ndarray, from_logits: bool = False, label_smoothing: float = 0.0
) -> np.ndarray:
    if label_smoothing:
        y_true = y_true * (1.0 - label_smoothing) + label_smoothing / y_true.shape[-1]
    if from_logits:
        shifted = y_pred - y_pred.max(axis=-1, keepdims=True)
        log_prob = shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))
    else:
        probabilities = y_pred / y_pred.sum(axis=-1, keepdims=True)  # as Keras rescales
        log_prob = np.log(np.clip(probabilities, _LOW, _HIGH))
    return -(y_true * log_prob).sum(axis=-1)


def _sparse(y_true: np.ndarray, y_pred: np.ndarray, from_logits: bool = False) -> np.ndarray:
    index = y_true.reshape(-1).astype(np.int64)
    return _categorical(np.eye(y_pred.shape[-1])[index], y_pred, from_logits)


def _binary(
    y_true: np.ndarray, y_pred: np.ndarray, from_logits: bool = False, label_smoothing: float = 0.0
) -> np.ndarray:
    if label_smoothing:
        y_true = y_true * (1.0 - label_smoothing) + 0.5 * label_smoothing
    if from_logits:  # the stable form Keras' backends use, unclipped
        x = y_pred
        return (np.maximum(x, 0.0) - x * y_true + np.log1p(np.exp(-np.abs(x)))).mean(axis=-1)
    y_pred = np.clip(y_pred, _LOW, _HIGH)
    return -(y_true * np.log(y_pred) + (1.0 - y_true) * np.log(1.0 - y_pred)).mean(axis=-1)


def _huber(y_true: np.ndarray, y_pred: np.ndarray, delta: float = 1.0) -> np.ndarray:
    error = np.abs(y_pred - y_true)
    return np.where(error <= delta, 0.5 * error**2, delta * error - 0.5 * delta**2).mean(axis=-1)


def _log_cosh(y_true: np.ndarray, y_pred: np.ndarray) -> np.ndarray:
    x = y_pred - y_true
    return (x + np.logaddexp(0.0, -2.0 * x) - np.log(2.0)).mean(axis=-1)


def _kl_divergence(y_true: np.ndarray, y_pred: np.ndarray) -> np.ndarray:
    y_true = np.clip(y_true, _LOW, 1.0)
    return (y_true * np.log(y_true / np.clip(y_pred, _LOW, 1.0))).sum(axis=-1)


def _categorical_hinge(y_true: np.ndarray, y_pred: np.ndarray) -> np.ndarray:
    positive = (y_true * y_pred).sum(axis=-1)
    negative = ((1.0 - y_true) * y_pred).max(axis=-1)
    return np.maximum(negative - positive + 1.0, 0.0)


def _mape(y_true: np.ndarray, y_pred: np.ndarray) -> np.ndarray:
    return 100.0 * np.abs((y_true - y_pred) / np.maximum(np.abs(y_true), _LOW)).mean(axis=-1)


def _msle(y_true: np.ndarray, y_pred: np.ndarray) -> np.ndarray:
    first = np.log(np.maximum(y_pred, _LOW) + 1.0)
    return ((first - np.log(np.maximum(y_true, _LOW) + 1.0)) ** 2).mean(axis=-1)


_Function = Callable[..., np.ndarray]
#: Keras' function name and class name (and its short aliases) → the NumPy twin, and the
#: arguments the twin takes besides ``name`` and the default ``reduction``.
NUMPY_LOSSES: dict[str, tuple[_Function, frozenset[str]]] = {}
for _names, _function, _args in (
    (("mean_squared_error", "MeanSquaredError", "mse"), lambda t, p: ((t - p) ** 2).mean(-1), ()),
    (("mean_absolute_error", "MeanAbsoluteError", "mae"), lambda t, p: np.abs(t - p).mean(-1), ()),
    (("mean_absolute_percentage_error", "MeanAbsolutePercentageError", "mape"), _mape, ()),
    (("mean_squared_logarithmic_error", "MeanSquaredLogarithmicError", "msle"), _msle, ()),
    (("huber", "Huber"), _huber, ("delta",)),
    (("log_cosh", "LogCosh", "logcosh"), _log_cosh, ()),
    (("kl_divergence", "KLDivergence", "kld"), _kl_divergence, ()),
    (
        ("hinge", "Hinge"),
        lambda t, p: np.maximum(1.0 - _hinge_labels(t) * p, 0.0).mean(-1),
        (),
    ),
    (
        ("squared_hinge", "SquaredHinge"),
        lambda t, p: (np.maximum(1.0 - _hinge_labels(t) * p, 0.0) ** 2).mean(-1),
        (),
    ),
    (("categorical_hinge", "CategoricalHinge"), _categorical_hinge, ()),
    (
        ("binary_crossentropy", "BinaryCrossentropy"),
        _binary,
        ("from_logits", "label_smoothing"),
    ),
    (
        ("categorical_crossentropy", "CategoricalCrossentropy"),
        _categorical,
        ("from_logits", "label_smoothing"),
    ),
    (
        ("sparse_categorical_crossentropy", "SparseCategoricalCrossentropy"),
        _sparse,
        ("from_logits",),
    ),
):
    for _name in _names:
        NUMPY_LOSSES[_name] = (_function, frozenset(_args))


def numpy_loss(name: str, args: dict[str, Any], y_true: Any, y_pred: Any) -> float | None:
    """The loss ``name`` (with ``args``) of ``y_pred`` against ``y_true``, or None without a twin.

    Args:
        name: a Keras loss name, function or class spelling (``mse``, ``Huber``).
        args: the loss's arguments from the config (``delta``, ``from_logits``, ...).
        y_true: the encoded targets, as the model was trained on.
        y_pred: the model's outputs.
    """
    entry = NUMPY_LOSSES.get(name)
    extra = {k: v for k, v in args.items() if k not in ("name", "reduction")}
    if entry is None or not set(extra) <= entry[1]:
        return None
    if args.get("reduction", "sum_over_batch_size") != "sum_over_batch_size":
        return None
    function, _ = entry
    y_true, y_pred = _align(np.asarray(y_true, np.float64), np.asarray(y_pred, np.float64))
    return float(np.mean(function(y_true, y_pred, **extra)))


def keras_loss(keras: Any, name: str, args: dict[str, Any], y_true: Any, y_pred: Any) -> float:
    """The same loss computed by Keras' loss object (a class name) or function (a function name)."""
    cls = getattr(keras.losses, name, None)
    if isinstance(cls, type) and issubclass(cls, keras.losses.Loss):
        value = cls(**args)(y_true, y_pred)
    else:
        y_true, y_pred = _align(np.asarray(y_true), np.asarray(y_pred))
        value = keras.ops.mean(keras.losses.get(name)(y_true, y_pred))
    return float(keras.ops.convert_to_numpy(value))


def configured_loss(
    name: str, args: dict[str, Any], y_true: Any, y_pred: Any, *, use_keras: bool
) -> float:
    """The configured loss: by Keras on the Keras path, else by NumPy, else by Keras if installed.

    Raises:
        LossUnavailable: no NumPy twin and Keras cannot be imported.
    """
    if not use_keras:
        value = numpy_loss(name, args, y_true, y_pred)
        if value is not None:
            return value
    from cnncli.runtime import import_keras

    try:
        keras = import_keras()
    except (ImportError, CnnCliError) as exc:
        raise LossUnavailable(
            f"loss '{name}' has no NumPy equivalent in cnncli and Keras cannot be imported ({exc})"
        ) from None
    return keras_loss(keras, name, args, y_true, y_pred)
