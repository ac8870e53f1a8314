"""Turn LayerSpec + CompileSpec into a compiled ``keras.Sequential``.

Every name a config can hold (layer, optimizer, loss, metric, callback, activation,
initializer, regularizer, constraint) is looked up in the Keras namespace it belongs to, never
imported from a string, and every Keras complaint is re-raised with the YAML location.
"""

from __future__ import annotations

import difflib
import inspect
import re
from typing import Any

from cnncli.config.models import (
    FORBIDDEN_CALLBACKS,
    FORBIDDEN_LAYERS,
    Config,
    LayerSpec,
    NamedObject,
)
from cnncli.errors import CnnCliError, Location
from cnncli.runtime import import_keras

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


def resolve_units(config: Config, n_outputs: int) -> list[LayerSpec]:
    """Replace ``units: auto`` with the number of outputs the task needs."""
    resolved = []
    for layer in config.model.layers:
        if layer.args.get("units") == "auto":
            layer = layer.model_copy(update={"args": {**layer.args, "units": n_outputs}})
        resolved.append(layer)
    return resolved


def build_model(
    config: Config,
    input_shape: tuple[int, ...],
    n_outputs: int,
    *,
    compile_model: bool = True,
    default_loss: str = "categorical_crossentropy",
    default_metrics: tuple[str, ...] = ("accuracy",),
    steps_per_execution: int = 1,
) -> Any:
    """Build (and compile) the config's stack for the given input shape.

    Raises:
        CnnCliError: an unknown name, a bad argument or a layer that does not fit its input,
            located at the layer's line in the config.
    """
    keras = import_keras()
    model = keras.Sequential(name=config.name.replace("-", "_").replace(".", "_"))
    model.add(keras.Input(shape=input_shape))
    shape: tuple[Any, ...] = (None, *input_shape)
    for index, spec in enumerate(resolve_units(config, n_outputs)):
        key = f"model.layers[{index}]"
        if "name" not in spec.args:  # stable names: the same config gives the same weight names
            spec = spec.model_copy(
                update={"args": {**spec.args, "name": f"{_snake(spec.type)}_{index}"}}
            )
        layer = make_layer(spec, config.locate(key, label=spec.type), keras)
        try:
            model.add(layer)
        except (ValueError, TypeError) as exc:
            raise CnnCliError(
                f"does not fit its input of shape {shape_text(shape)}: {keras_message(exc)}",
                where=config.locate(key, label=spec.type),
                hint="check this layer's arguments against the shape printed by `cnncli summary`",
            ) from exc
        shape = tuple(model.output_shape)
    if compile_model:
        model.compile(
            optimizer=make_optimizer(config, keras),
            loss=make_loss(config, keras, default_loss),
            metrics=make_metrics(config, keras, default_metrics),
            steps_per_execution=steps_per_execution,
        )
    return model


def _snake(name: str) -> str:
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", name).lower()


def shape_text(shape: tuple[Any, ...]) -> str:
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


# ---------------------------------------------------------------------------------------------
# Layers


def layer_classes(keras: Any) -> dict[str, type]:
    """Every layer class ``keras.layers`` exports that a config may name."""
    classes = {}
    for name in dir(keras.layers):
        obj = getattr(keras.layers, name)
        if (
            inspect.isclass(obj)
            and issubclass(obj, keras.layers.Layer)
            and name not in FORBIDDEN_LAYERS
        ):
            classes[name] = obj
    return classes


def make_layer(spec: LayerSpec, where: Location, keras: Any) -> Any:
    classes = layer_classes(keras)
    cls = classes.get(spec.type)
    if cls is None:
        raise CnnCliError(
            f"'{spec.type}' is not a Keras layer",
            where=where,
            hint=did_you_mean(spec.type, classes, "see keras.io/api/layers for the names"),
        )
    args = _check_arguments(cls, spec.args, where, extra_bases=(keras.layers.Layer,))
    args = {key: _resolve_argument(key, value, where, keras) for key, value in args.items()}
    try:
        return cls(**args)
    except (TypeError, ValueError, AttributeError) as exc:  # `padding: 1` → int has no .lower()
        message = keras_message(exc)
        named = [name for name in re.findall(r"`(\w+)`", message) if name in spec.args]
        hint = (
            f"see the Keras docs for {spec.type}({named[0]}=...)"
            if named
            else "check this layer's arguments"
        )
        raise CnnCliError(
            message, where=where.child(named[0]) if named else where, hint=hint
        ) from exc


#: Sizes beyond this are typos (a million units is 10^6 weights per input); Keras would try
#: to allocate them and the process would die of memory exhaustion instead of saying why.
MAX_LAYER_SIZE = 1 << 20
_SIZE_ARGUMENTS = ("units", "filters", "output_dim", "input_dim", "num_heads", "key_dim")


def _check_arguments(
    cls: type, args: dict[str, Any], where: Location, extra_bases: tuple[type, ...] = ()
) -> dict[str, Any]:
    accepted = _accepted_arguments(cls, extra_bases)
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


def _accepted_arguments(cls: type, extra_bases: tuple[type, ...]) -> set[str]:
    names: set[str] = set()
    for klass in (cls, *extra_bases):
        for param in inspect.signature(klass.__init__).parameters.values():
            if param.kind not in (param.VAR_KEYWORD, param.VAR_POSITIONAL) and param.name != "self":
                names.add(param.name)
    return names


_NAMESPACES = {
    "_initializer": "initializers",
    "_regularizer": "regularizers",
    "_constraint": "constraints",
}


def _resolve_argument(key: str, value: Any, where: Location, keras: Any) -> Any:
    """Turn names and ``{type: ...}`` mappings into Keras objects from the right namespace."""
    if key in ("layer", "backward_layer") and isinstance(value, (dict, str)):
        nested = LayerSpec.model_validate(value)
        return make_layer(nested, where.child(key), keras)
    if key in ("activation", "recurrent_activation") and isinstance(value, str):
        return _check_activation(value, where.child(key), keras)
    for suffix, namespace in _NAMESPACES.items():
        if key.endswith(suffix) and value is not None:
            return _named_object(getattr(keras, namespace), namespace, value, where.child(key))
    return value


def _check_activation(name: str, where: Location, keras: Any) -> str:
    try:
        keras.activations.get(name)
    except (ValueError, TypeError):
        known = [
            n
            for n in dir(keras.activations)
            if not n.startswith("_") and n not in ("get", "serialize", "deserialize")
        ]
        raise CnnCliError(
            f"unknown activation '{name}'",
            where=where,
            hint=did_you_mean(name, known, f"known: {', '.join(known)}"),
        ) from None
    return name


def _named_object(module: Any, namespace: str, value: Any, where: Location) -> Any:
    """An initializer/regularizer/constraint given by name (``l2``) or mapping."""
    spec = NamedObject.model_validate(value) if isinstance(value, (dict, str)) else None
    if spec is None:
        raise CnnCliError(f"expected a name or a mapping with type, got {value!r}", where=where)
    classes = {n: getattr(module, n) for n in dir(module) if inspect.isclass(getattr(module, n))}
    cls = classes.get(spec.type)
    if cls is None and not spec.args:
        try:
            return module.get(spec.type)
        except (ValueError, TypeError):
            pass
    if cls is None:
        aliases = [
            n
            for n in dir(module)
            if not n.startswith("_") and n not in ("get", "serialize", "deserialize")
        ]
        raise CnnCliError(
            f"unknown {namespace[:-1]} '{spec.type}'",
            where=where,
            hint=did_you_mean(spec.type, aliases, f"known: {', '.join(aliases)}"),
        )
    args = _check_arguments(cls, spec.args, where)
    try:
        return cls(**args)
    except (TypeError, ValueError) as exc:
        raise CnnCliError(keras_message(exc), where=where) from exc


def did_you_mean(name: str, options: Any, fallback: str) -> str:
    """A close match, compared without case; the same-case spelling wins a tie."""
    lowered: dict[str, str] = {}
    for option in sorted(
        options, key=lambda o: o != o.lower() if name == name.lower() else o == o.lower()
    ):
        lowered.setdefault(option.lower(), option)
    if name.lower() in lowered and lowered[name.lower()] != name:
        return f"did you mean '{lowered[name.lower()]}'? names are case-sensitive"
    match = difflib.get_close_matches(name.lower(), list(lowered), n=1, cutoff=0.5)
    return f"did you mean '{lowered[match[0]]}'?" if match else fallback


# ---------------------------------------------------------------------------------------------
# Compile and fit objects


def _class_table(module: Any, base: type) -> dict[str, type]:
    return {
        name: obj
        for name in dir(module)
        if inspect.isclass(obj := getattr(module, name))
        and issubclass(obj, base)
        and obj is not base
    }


def make_optimizer(config: Config, keras: Any) -> Any:
    spec = config.compile.optimizer
    where = config.locate("compile.optimizer")
    classes = _class_table(keras.optimizers, keras.optimizers.Optimizer)
    by_lower = {name.lower(): cls for name, cls in classes.items()}
    cls = classes.get(spec.type) or by_lower.get(spec.type.lower())
    if cls is None:
        raise CnnCliError(
            f"unknown optimizer '{spec.type}'",
            where=where,
            hint=did_you_mean(spec.type, sorted(classes), f"known: {', '.join(sorted(classes))}"),
        )
    args = _check_arguments(cls, spec.args, where)
    if isinstance(args.get("learning_rate"), dict):
        schedules = keras.optimizers.schedules
        args["learning_rate"] = _named_object(
            schedules, "schedules", args["learning_rate"], where.child("learning_rate")
        )
    try:
        return cls(**args)
    except (TypeError, ValueError) as exc:
        raise CnnCliError(keras_message(exc), where=where) from exc


def make_loss(config: Config, keras: Any, default: str) -> Any:
    spec = config.compile.loss or NamedObject(type=default)
    return _loss_or_metric(
        spec, config.locate("compile.loss"), keras.losses, keras.losses.Loss, "loss"
    )


def make_metrics(config: Config, keras: Any, defaults: tuple[str, ...]) -> list[Any]:
    specs = config.compile.metrics
    if specs is None:
        return list(defaults)
    return [
        _loss_or_metric(
            spec,
            config.locate(f"compile.metrics[{i}]"),
            keras.metrics,
            keras.metrics.Metric,
            "metric",
        )
        for i, spec in enumerate(specs)
    ]


_COMPILE_ALIASES = {"accuracy", "acc", "crossentropy", "ce"}


def _loss_or_metric(spec: NamedObject, where: Location, module: Any, base: type, kind: str) -> Any:
    classes = _class_table(module, base)
    if not spec.args:
        if spec.type in _COMPILE_ALIASES and kind == "metric":
            return spec.type
        if spec.type in classes:
            return classes[spec.type]()
        try:
            module.get(spec.type)
            return spec.type
        except (ValueError, TypeError):
            names = set(classes) | {n for n in dir(module) if n.islower() and not n.startswith("_")}
            names = (names | (_COMPILE_ALIASES if kind == "metric" else set())) - {
                "get",
                "serialize",
                "deserialize",
            }
            raise CnnCliError(
                f"unknown {kind} '{spec.type}'",
                where=where,
                hint=did_you_mean(
                    spec.type,
                    names,
                    f"see keras.io/api/{kind}es" if kind == "loss" else "see keras.io/api/metrics",
                ),
            ) from None
    cls = classes.get(spec.type)
    if cls is None:
        raise CnnCliError(
            f"'{spec.type}' with arguments must be a {kind} class name",
            where=where,
            hint=did_you_mean(spec.type, sorted(classes), f"known: {', '.join(sorted(classes))}"),
        )
    args = _check_arguments(cls, spec.args, where)
    try:
        return cls(**args)
    except (TypeError, ValueError) as exc:
        raise CnnCliError(keras_message(exc), where=where) from exc


def make_callbacks(config: Config, keras: Any) -> list[Any]:
    classes = {
        name: cls
        for name, cls in _class_table(keras.callbacks, keras.callbacks.Callback).items()
        if name not in FORBIDDEN_CALLBACKS
    }
    callbacks = []
    for index, spec in enumerate(config.fit.callbacks):
        where = config.locate(f"fit.callbacks[{index}]", label=spec.type)
        cls = classes.get(spec.type)
        if cls is None:
            raise CnnCliError(
                f"unknown callback '{spec.type}'",
                where=where,
                hint=did_you_mean(
                    spec.type, sorted(classes), f"known: {', '.join(sorted(classes))}"
                ),
            )
        args = _check_arguments(cls, spec.args, where)
        try:
            callbacks.append(cls(**args))
        except (TypeError, ValueError) as exc:
            raise CnnCliError(keras_message(exc), where=where) from exc
    return callbacks


def describe_layers(model: Any) -> list[dict[str, Any]]:
    """Rows for the summary table: name, type, output shape, parameter count."""
    rows = []
    for layer in model.layers:
        rows.append(
            {
                "name": layer.name,
                "type": type(layer).__name__,
                "output_shape": shape_text(tuple(layer.output.shape)),
                "params": int(layer.count_params()),
            }
        )
    return rows
