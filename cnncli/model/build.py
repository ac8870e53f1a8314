"""Turn LayerSpec + CompileSpec into a compiled ``keras.Sequential``.

Every name a config holds (layer, optimizer, loss, metric, callback, activation, initializer,
regularizer, constraint, schedule) goes through the allow-list in ``registry``, never an import
from a string, and every Keras complaint is re-raised with the YAML location.
"""

from __future__ import annotations

import inspect
import re
from dataclasses import replace
from pathlib import Path
from typing import Any

from cnncli.config.expand import INPUT, Node, expand_model, snake_name
from cnncli.config.models import Config, LayerSpec, NamedObject
from cnncli.errors import CnnCliError, Location, did_you_mean
from cnncli.model.arguments import check_arguments, keras_message, shape_text
from cnncli.model.registry import (
    ACTIVATIONS,
    CALLBACKS,
    CONSTRAINTS,
    INITIALIZERS,
    LAYERS,
    LOSSES,
    METRICS,
    OPTIMIZERS,
    REGULARIZERS,
    SCHEDULES,
    Namespace,
    confine_path,
    lookup,
)
from cnncli.model.targets import default_metrics
from cnncli.runtime import import_keras


def resolve_units(config: Config, n_outputs: int) -> list[Node]:
    """The expanded model's layers, ``units: auto`` replaced by the outputs the task needs."""
    resolved = []
    for node in expand_model(config).nodes:
        if node.spec.args.get("units") == "auto":
            spec = node.spec.model_copy(update={"args": {**node.spec.args, "units": n_outputs}})
            node = replace(node, spec=spec)
        resolved.append(node)
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
    """Build (and compile) the config's model for the given input shape: a ``Sequential`` for
    ``model.layers``, a functional ``Model`` for ``model.graph``.

    Raises:
        CnnCliError: an unknown name, a bad argument or a layer that does not fit its input,
            located at the layer's line in the config.
    """
    keras = import_keras()
    name = config.name.replace("-", "_").replace(".", "_")
    nodes = resolve_units(config, n_outputs)
    if expand_model(config).is_graph:
        model = _functional(keras, nodes, input_shape, name)
    else:
        model = keras.Sequential(name=name)
        model.add(keras.Input(shape=input_shape))
        for node in nodes:
            shape = tuple(model.output_shape) if model.layers else (None, *input_shape)
            layer = make_layer(node.spec, node.where, keras)
            try:
                model.add(layer)
            except (ValueError, TypeError) as exc:
                raise _misfit(exc, shape, node) from exc
    if compile_model:
        model.compile(
            optimizer=make_optimizer(config, keras),
            loss=make_loss(config, keras, default_loss),
            metrics=make_metrics(config, keras, default_metrics),
            steps_per_execution=steps_per_execution,
        )
    return model


def _functional(keras: Any, nodes: list[Node], input_shape: tuple[int, ...], name: str) -> Any:
    """The graph's layers called on each other's outputs (Keras' functional API)."""
    inputs = keras.Input(shape=input_shape, name=INPUT)
    tensors = {INPUT: inputs}
    for node in nodes:
        layer = make_layer(node.spec, node.where, keras)
        taken = [tensors[source] for source in node.inputs]
        try:
            tensors[node.name] = layer(taken if len(taken) > 1 else taken[0])
        except (ValueError, TypeError) as exc:
            raise _misfit(exc, tuple(taken[0].shape), node) from exc
    return keras.Model(inputs=inputs, outputs=tensors[nodes[-1].name], name=name)


def _misfit(exc: Exception, shape: tuple[Any, ...], node: Node) -> CnnCliError:
    return CnnCliError(
        f"does not fit its input of shape {shape_text(shape)}: {keras_message(exc)}",
        where=node.where,
        hint="check this layer's arguments against the shape printed by `cnncli summary`",
    )


_snake = snake_name


# ---------------------------------------------------------------------------------------------
# Layers


def make_layer(spec: LayerSpec, where: Location, keras: Any) -> Any:
    """One layer from its spec; nested layers, activations and initializers resolved too."""
    cls = lookup(LAYERS, spec.type, where, keras)
    args = check_arguments(cls, spec.args, where, extra_bases=(keras.layers.Layer,))
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


_OBJECT_ARGUMENTS = {
    "_initializer": INITIALIZERS,
    "_regularizer": REGULARIZERS,
    "_constraint": CONSTRAINTS,
}
#: Keys of Keras' own serialized form: handed such a mapping, Keras would import the module.
_SERIALIZED_KEYS = ("class_name", "module", "registered_name")


def _resolve_argument(key: str, value: Any, where: Location, keras: Any) -> Any:
    """Turn names and ``{type: ...}`` mappings into Keras objects from the right namespace."""
    if key in ("layer", "backward_layer") and isinstance(value, (dict, str)):
        nested = LayerSpec.model_validate(value)
        return make_layer(nested, where.child(key), keras)
    if key in ("activation", "recurrent_activation") and isinstance(value, str):
        lookup(ACTIVATIONS, value, where.child(key), keras)
        return value
    for suffix, namespace in _OBJECT_ARGUMENTS.items():
        if key.endswith(suffix) and value is not None:
            return make_object(namespace, value, where.child(key), keras)
    if _holds_serialized_object(value):
        raise CnnCliError(
            "a mapping in Keras' serialized form would make Keras import code",
            where=where.child(key),
            hint="give a plain value, or a name where the Keras docs take one",
        )
    return value


def _holds_serialized_object(value: Any) -> bool:
    if isinstance(value, dict):
        return any(key in value for key in _SERIALIZED_KEYS) or any(
            _holds_serialized_object(item) for item in value.values()
        )
    if isinstance(value, list):
        return any(_holds_serialized_object(item) for item in value)
    return False


def make_object(namespace: Namespace, value: Any, where: Location, keras: Any) -> Any:
    """An initializer, regularizer, constraint or schedule given by name (``l2``) or mapping."""
    spec = NamedObject.model_validate(value) if isinstance(value, (dict, str)) else None
    if spec is None:
        raise CnnCliError(f"expected a name or a mapping with type, got {value!r}", where=where)
    cls = lookup(namespace, spec.type, where, keras)
    args = check_arguments(cls, spec.args, where)
    try:
        return cls(**args)
    except (TypeError, ValueError) as exc:
        raise CnnCliError(keras_message(exc), where=where) from exc


# ---------------------------------------------------------------------------------------------
# Compile and fit objects


def make_optimizer(config: Config, keras: Any) -> Any:
    """The optimizer ``compile.optimizer`` names, with a schedule for ``learning_rate``."""
    spec = config.compile.optimizer
    where = config.locate("compile.optimizer")
    cls = lookup(OPTIMIZERS, spec.type, where, keras)
    args = dict(check_arguments(cls, spec.args, where))
    if isinstance(args.get("learning_rate"), dict):
        args["learning_rate"] = make_object(
            SCHEDULES, args["learning_rate"], where.child("learning_rate"), keras
        )
    try:
        return cls(**args)
    except (TypeError, ValueError) as exc:
        raise CnnCliError(keras_message(exc), where=where) from exc


def make_loss(config: Config, keras: Any, default: str) -> Any:
    """The loss ``compile.loss`` names, or ``default`` (a name Keras knows) when it is unset."""
    spec = config.compile.loss or NamedObject(type=default)
    return _loss_or_metric(spec, config.locate("compile.loss"), LOSSES, keras)


def make_metrics(config: Config, keras: Any, defaults: tuple[str, ...]) -> list[Any]:
    """The metrics ``compile.metrics`` names, or ``defaults`` when it is unset."""
    specs = config.compile.metrics
    if specs is None:
        return list(defaults)
    types = [spec.type for spec in specs]
    return [
        _loss_or_metric(_named(spec, types), config.locate(f"compile.metrics[{i}]"), METRICS, keras)
        for i, spec in enumerate(specs)
    ]


def _named(spec: NamedObject, types: list[str]) -> NamedObject:
    """A metric class named as ``log_names`` expects (``AUC`` logs as ``auc``): unnamed, Keras
    numbers a second instance (``auc_1``), and the check pass already made one."""
    if not spec.type[:1].isupper() or "name" in spec.args or types.count(spec.type) > 1:
        return spec
    return spec.model_copy(update={"args": {**spec.args, "name": _snake(spec.type)}})


def _loss_or_metric(spec: NamedObject, where: Location, namespace: Namespace, keras: Any) -> Any:
    """A class becomes an instance; a function name or alias stays a name Keras resolves."""
    found = lookup(namespace, spec.type, where, keras)
    if inspect.isclass(found):
        args = check_arguments(found, spec.args, where)
        try:
            return found(**args)
        except (TypeError, ValueError) as exc:
            raise CnnCliError(keras_message(exc), where=where) from exc
    if spec.args:
        classes = sorted(name for name in namespace.allowed if name[0].isupper())
        raise CnnCliError(
            f"'{spec.type}' with arguments must be a {namespace.noun} class name",
            where=where,
            hint=did_you_mean(spec.type, classes, f"known: {', '.join(classes)}"),
        )
    return spec.type


def log_names(config: Config) -> list[str]:
    """The names ``fit`` logs after each epoch (what a callback's ``{field}`` may name): the
    loss and the metrics (either task's default where none are set), ``val_`` forms too when
    there is a validation split."""
    metrics = config.compile.metrics
    names = ["loss"]
    for spec in metrics if metrics is not None else ():
        names += [spec.type, _snake(spec.type)]  # AUC logs as auc
        if isinstance(spec.args.get("name"), str):
            names.append(spec.args["name"])
    if metrics is None:
        names += [*default_metrics("classification"), *default_metrics("regression")]
    names = list(dict.fromkeys(names))
    if config.fit.validation_split > 0:
        names += [f"val_{name}" for name in names]
    return names


def make_callbacks(config: Config, keras: Any, run_dir: Path | None = None) -> list[Any]:
    """The callbacks ``fit.callbacks`` names; file outputs resolved inside ``run_dir``.

    Args:
        config: the validated config.
        keras: the imported Keras module.
        run_dir: the run's staging folder; None (validate, summary) only checks the paths.

    Raises:
        CnnCliError: a refused or unknown callback, a bad argument, or a path outside the run.
    """
    callbacks = []
    logs = log_names(config)
    for index, spec in enumerate(config.fit.callbacks):
        where = config.locate(f"fit.callbacks[{index}]", label=spec.type)
        cls = lookup(CALLBACKS, spec.type, where, keras)
        args = dict(check_arguments(cls, spec.args, where))
        for name in CALLBACKS.confined.get(spec.type, ()):
            value = args.get(name, inspect.signature(cls).parameters[name].default)
            if value is not inspect.Parameter.empty:  # a missing required path: Keras says so
                args[name] = confine_path(value, where.child(name), run_dir, logs)
        try:
            callbacks.append(cls(**args))
        except (TypeError, ValueError) as exc:
            raise CnnCliError(keras_message(exc), where=where) from exc
    if config.fit.tensorboard:
        callbacks.append(tensorboard_callback(config, keras, run_dir))
    return callbacks


def tensorboard_callback(config: Config, keras: Any, run_dir: Path | None) -> Any:
    """``fit.tensorboard``: Keras' TensorBoard callback writing epoch scalars into the run's
    ``tensorboard/`` folder (no graph, no profiler: the run stays small and quick)."""
    from cnncli.runs import TENSORBOARD_DIRNAME

    where = config.locate("fit.tensorboard")
    cls = lookup(CALLBACKS, "TensorBoard", where, keras)  # says which package is missing
    # cnncli's own folder, which confine_path keeps every configured callback out of
    log_dir = TENSORBOARD_DIRNAME if run_dir is None else str(run_dir / TENSORBOARD_DIRNAME)
    return cls(log_dir=log_dir, write_graph=False, update_freq="epoch", profile_batch=0)


def describe_layers(model: Any, order: list[str] | None = None) -> list[dict[str, Any]]:
    """Rows for the summary table: name, type, output shape, parameter count; a graph's rows
    also name each layer's inputs, in ``order`` (the config's) where given."""
    graph = type(model).__name__ != "Sequential"
    layers = model.layers
    if order is not None:
        layers = [model.get_layer(name) for name in order]
    rows = []
    for layer in layers:
        if type(layer).__name__ == "InputLayer":
            continue  # the table's first row stands for it
        row = {
            "name": layer.name,
            "type": type(layer).__name__,
            "output_shape": shape_text(tuple(layer.output.shape)),
            "params": int(layer.count_params()),
        }
        if graph:
            taken = layer._inbound_nodes[0].input_tensors
            row["inputs"] = [tensor._keras_history.operation.name for tensor in taken]
        rows.append(row)
    return rows
