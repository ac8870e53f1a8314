"""Keyword arguments against a Keras class's signature, and Keras' complaints in cnncli's words.

A config's arguments are checked before the class is called, so a Keras 2 spelling, a typo or
a size that would exhaust memory is one line with its location instead of a Keras traceback.
"""

from __future__ import annotations

import inspect
import re
from typing import Any

from cnncli.config.messages import describe_value, is_number, type_hint
from cnncli.config.models import INT32_MAX
from cnncli.errors import CnnCliError, Location, did_you_mean

#: Keras 2 argument names that Keras 3 renamed or dropped, with what to write instead.
KERAS2_ARGUMENTS = {
    "lr": "learning_rate",
    "nb_filter": "filters",
    "filter_length": "kernel_size",
    "nb_row": "kernel_size",
    "nb_col": "kernel_size",
    "init": "kernel_initializer",
    "border_mode": "padding",
    "subsample_length": "strides",
    "subsample": "strides",
    "pool_length": "pool_size",
    "output_dim": "units",
    "W_regularizer": "kernel_regularizer",
    "b_regularizer": "bias_regularizer",
    "W_constraint": "kernel_constraint",
    "b_constraint": "bias_constraint",
    "dim_ordering": "data_format",
    "atrous_rate": "dilation_rate",
    "bias": "use_bias",
    "dropout_W": "dropout",
    "dropout_U": "recurrent_dropout",
    "input_dim": "model.input_shape (not a layer argument)",
    "input_shape": "model.input_shape (not a layer argument)",
    "batch_input_shape": "model.input_shape (not a layer argument)",
    "decay": "a learning-rate schedule, e.g. `learning_rate: {type: ExponentialDecay, ...}`",
}

#: Sizes beyond this are typos (a million units is 10^6 weights per input); Keras would try
#: to allocate them and the process would die of memory exhaustion instead of saying why.
MAX_LAYER_SIZE = 1 << 20
_SIZE_ARGUMENTS = ("units", "filters", "output_dim", "input_dim", "num_heads", "key_dim")


def check_arguments(
    cls: type, args: dict[str, Any], where: Location, extra_bases: tuple[type, ...] = ()
) -> dict[str, Any]:
    """Refuse arguments ``cls`` does not take, Keras 2 spellings and absurd sizes.

    Args:
        cls: the Keras class the arguments are for.
        args: the config's keyword arguments.
        where: the location of the object in the config; each argument is its child key.
        extra_bases: classes whose ``__init__`` takes the ``**kwargs`` (``keras.layers.Layer``).

    Returns:
        ``args`` unchanged.

    Raises:
        CnnCliError: the first argument that is wrong, located at its key.
    """
    accepted = _accepted_arguments(cls, extra_bases)
    for name in sorted(_numeric_arguments(cls, extra_bases) & args.keys()):
        value = args[name]
        if isinstance(value, bool) or (isinstance(value, str) and is_number(value)):
            # Keras would take `true` as 1 and fail on "3" deep inside; the config's own fields
            # refuse both the same way (issue 11)
            raise CnnCliError(
                f"expected a number, got {describe_value(value)}",
                where=where.child(name),
                hint=type_hint(value, (name,)),
            )
    _check_seeds(args, where)
    for name in _SIZE_ARGUMENTS:
        value = args.get(name)
        if isinstance(value, int) and not isinstance(value, bool) and value > MAX_LAYER_SIZE:
            raise CnnCliError(
                f"{name}: {value:,} is too large (at most {MAX_LAYER_SIZE:,})",
                where=where.child(name),
                hint=f"check for a typo; {cls.__name__} layers rarely need over a few thousand",
            )
    for name in args:
        if name in accepted and name not in ("input_shape", "input_dim", "batch_input_shape"):
            continue
        if name in KERAS2_ARGUMENTS:
            raise CnnCliError(
                f"argument '{name}' is Keras 2 spelling",
                where=where.child(name),
                hint=f"Keras 3 calls it {KERAS2_ARGUMENTS[name]}",
            )
        raise CnnCliError(
            f"{cls.__name__} has no argument '{name}'",
            where=where.child(name),
            hint=did_you_mean(
                name, sorted(accepted), f"its arguments are: {', '.join(sorted(accepted))}"
            ),
        )
    return args


def _numeric_arguments(cls: type, extra_bases: tuple[type, ...]) -> set[str]:
    """The arguments Keras takes as numbers: the sizes, and those whose default is a number."""
    names = set(_SIZE_ARGUMENTS)
    for klass in (cls, *extra_bases):
        for param in inspect.signature(klass.__init__).parameters.values():
            default = param.default
            if isinstance(default, (int, float)) and not isinstance(default, bool):
                names.add(param.name)
    return names


def _check_seeds(args: dict[str, Any], where: Location) -> None:
    """A ``seed`` anywhere in the arguments (an initializer's too) must fit Keras' int32 seed.

    Outside 0..2**31-1 the layer fails while it is built, blaming its input shape.
    """
    for name, value in args.items():
        if isinstance(value, dict):
            _check_seeds(value, where.child(name))
        elif name == "seed" and value is not None:
            if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= INT32_MAX:
                raise CnnCliError(
                    f"expected a seed from 0 to {INT32_MAX}, got {describe_value(value)}",
                    where=where.child(name),
                    hint="pick a seed in that range",
                )


def _accepted_arguments(cls: type, extra_bases: tuple[type, ...]) -> set[str]:
    names: set[str] = set()
    for klass in (cls, *extra_bases):
        for param in inspect.signature(klass.__init__).parameters.values():
            if param.kind not in (param.VAR_KEYWORD, param.VAR_POSITIONAL) and param.name != "self":
                names.add(param.name)
    return names


def shape_text(shape: tuple[Any, ...]) -> str:
    """``(batch, 3, 1)``: a Keras shape as messages print it."""
    return "(" + ", ".join("batch" if dim is None else str(dim) for dim in shape) + ")"


_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def keras_message(exc: BaseException) -> str:
    """The sentence that matters in a Keras exception, without colour codes or call context."""
    lines = [_ANSI.sub("", line).strip() for line in str(exc).splitlines()]
    for line in lines:
        if line and not line.startswith(("Exception encountered", "Arguments received", "•")):
            return _SET_LITERAL.sub(_sorted_set, line)
    return type(exc).__name__


_SET_LITERAL = re.compile(r"\{('[^{}]*')\}")


def _sorted_set(match: re.Match[str]) -> str:
    """Keras prints Python sets, whose order changes from run to run; sort them."""
    return "{" + ", ".join(sorted(item.strip() for item in match.group(1).split(","))) + "}"
