"""What a model's head must fit: the label's encoding, the loss families, the input shape.

One place answers "which loss goes with which labels" for ``validate``, ``train`` and
``evaluate``. Nothing here imports Keras; ``default_input_shape`` reads only the config.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from cnncli.config.expand import plan_or_none
from cnncli.errors import CnnCliError

if TYPE_CHECKING:  # predict imports this module and must not pay for pydantic
    from cnncli.config.models import Config

# Keras accepts a loss by its function name or its class name; both spellings are listed.
BINARY_LOSSES = frozenset(
    {
        "binary_crossentropy",
        "BinaryCrossentropy",
        "binary_focal_crossentropy",
        "BinaryFocalCrossentropy",
    }
)
SPARSE_LOSSES = frozenset({"sparse_categorical_crossentropy", "SparseCategoricalCrossentropy"})
ONEHOT_LOSSES = frozenset(
    {
        "categorical_crossentropy",
        "CategoricalCrossentropy",
        "categorical_focal_crossentropy",
        "CategoricalFocalCrossentropy",
    }
)
CLASSIFICATION_LOSSES = (
    BINARY_LOSSES
    | SPARSE_LOSSES
    | ONEHOT_LOSSES
    | frozenset(
        {
            "categorical_hinge",
            "CategoricalHinge",
            "hinge",
            "Hinge",
            "squared_hinge",
            "SquaredHinge",
            "kl_divergence",
            "KLDivergence",
        }
    )
)
DEFAULT_LOSSES = {
    "onehot": "categorical_crossentropy",
    "sparse": "sparse_categorical_crossentropy",
    "binary": "binary_crossentropy",
}
REGRESSION_DEFAULT_LOSS = "mean_squared_error"
#: Regression losses that mean something only on the label's own scale (a percentage, a
#: logarithm, a count): a regressor trained with one keeps its label unscaled by default.
UNSCALED_LOSSES = frozenset(
    {
        "mean_absolute_percentage_error",
        "MeanAbsolutePercentageError",
        "mape",
        "mean_squared_logarithmic_error",
        "MeanSquaredLogarithmicError",
        "msle",
        "poisson",
        "Poisson",
    }
)

_ONE_D_FIRST_LAYERS = ("1D", "LSTM", "GRU", "SimpleRNN", "Bidirectional", "ConvLSTM1D")


def configured_loss(config: Config) -> str | None:
    """The loss the config names (``mse`` or the ``type`` of ``{type: Huber, ...}``), if any."""
    return config.compile.loss.type if config.compile.loss else None


def label_kind(config: Config, task: str, n_classes: int) -> str:
    """How the label is encoded: from preprocess.label, else from the loss and class count."""
    loss = configured_loss(config)
    if task == "regression":  # standardised unless the loss needs the label's own scale
        return config.preprocess.label or ("none" if loss in UNSCALED_LOSSES else "standard")
    if loss in BINARY_LOSSES and n_classes <= 2:
        return "binary"
    if loss in SPARSE_LOSSES:
        return "sparse"
    return config.preprocess.label or "onehot"


def default_loss(kind: str) -> str:
    """The loss that fits a label encoding when the config names none."""
    return DEFAULT_LOSSES.get(kind, REGRESSION_DEFAULT_LOSS)


def default_metrics(task: str) -> tuple[str, ...]:
    return ("accuracy",) if task == "classification" else ("mae",)


def default_input_shape(config: Config, input_width: int) -> tuple[int, ...]:
    """``model.input_shape``, else ``[n]`` for Dense stacks and ``[n, 1]`` before a 1-D layer."""
    if config.model.input_shape:
        return tuple(config.model.input_shape)
    plan = plan_or_none(config)
    first = plan.nodes[0].spec.type if plan else ""
    if any(first.endswith(suffix) or first == suffix for suffix in _ONE_D_FIRST_LAYERS):
        return (input_width, 1)
    return (input_width,)


def model_input_shape(config: Config, width: int) -> tuple[int, ...]:
    """The model's input shape for rows of ``width`` values, checked against model.input_shape.

    Raises:
        CnnCliError: the shape's product is not ``width``.
    """
    shape = default_input_shape(config, width)
    if int(np.prod(shape)) != width:
        raise CnnCliError(
            f"input_shape {list(shape)} holds {int(np.prod(shape))} values but each row has {width}"
            " features after one-hot encoding",
            where=config.locate("model.input_shape"),
            hint=f"use a shape whose product is {width}, e.g. [{width}, 1]",
        )
    return shape


def loss_type(loss: Any) -> str | None:
    """The loss a saved config dict names: ``mse`` or ``{type: MeanSquaredError, ...}``."""
    return loss.get("type") if isinstance(loss, dict) else loss
