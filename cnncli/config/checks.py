"""Pass two of validation: small cross-field checks, each returning a problem or None.

Each check is a named function with a one-line docstring; ``load_config`` runs every one in
``CROSS_CHECKS`` on the validated config and reports all the problems found together.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from cnncli.config.expand import expand_model, plan_or_none
from cnncli.errors import CnnCliError, ConfigErrors

if TYPE_CHECKING:
    from cnncli.config.models import Config


def check_label_not_feature(config: Config) -> CnnCliError | None:
    """The label column is not also a feature."""
    return label_listed_as_feature(config, config.data.label)


def label_listed_as_feature(config: Config, label: str | None) -> CnnCliError | None:
    """The problem when ``label`` is among ``data.features``; the data reader asks again once the
    header has named the default label (the last column)."""
    if not label:
        return None
    return _listed_feature(
        config,
        lambda name: name == label,
        "the label '{name}' is also listed as a feature",
        "remove it from data.features, or name another column in data.label",
    )


def check_dropped_not_feature(config: Config) -> CnnCliError | None:
    """A column typed ``drop`` in ``data.columns`` is not also listed in ``data.features``."""
    return _listed_feature(
        config,
        lambda name: config.data.columns.get(name) == "drop",
        "column '{name}' is listed in data.features and as drop in data.columns",
        "remove it from data.features, or give it another type in data.columns",
    )


def _listed_feature(
    config: Config, conflicts: Callable[[str], bool], message: str, hint: str
) -> CnnCliError | None:
    """The problem at the first entry of ``data.features`` that ``conflicts`` with the config;
    ``message`` names it as ``{name}``."""
    for index, name in enumerate(config.data.features or []):
        if conflicts(name):
            return CnnCliError(
                message.format(name=name),
                where=config.locate(f"data.features[{index}]"),
                hint=hint,
            )
    return None


def check_label_not_typed(config: Config) -> CnnCliError | None:
    """The label column has no type in ``data.columns``."""
    return label_given_a_type(config, config.data.label)


def label_given_a_type(config: Config, label: str | None) -> CnnCliError | None:
    """The problem when ``label`` is in ``data.columns``; asked again once the header has named
    the default label (the last column)."""
    if label is None or label not in config.data.columns:
        return None
    return CnnCliError(
        f"the label '{label}' has a type in data.columns ({config.data.columns[label]})",
        where=config.source.locate(("data", "columns", label), on_key=True),
        hint="remove it there: the task (classification or regression) decides the label's kind",
    )


def check_label_preprocessing_fits_task(config: Config) -> CnnCliError | None:
    """Label preprocessing matches the task (onehot/sparse classify, none/standard regress)."""
    label, task = config.preprocess.label, config.task
    if label is None or task is None:
        return None
    fits = (
        label in ("onehot", "sparse") if task == "classification" else label in ("none", "standard")
    )
    if fits:
        return None
    options = "onehot or sparse" if task == "classification" else "none or standard"
    return CnnCliError(
        f"preprocess.label '{label}' does not fit task {task}",
        where=config.locate("preprocess.label"),
        hint=f"use {options}",
    )


def check_duplicate_features(config: Config) -> CnnCliError | None:
    """No feature column is listed twice."""
    features = config.data.features or []
    seen: set[str] = set()
    for index, name in enumerate(features):
        if name in seen:
            return CnnCliError(
                f"feature '{name}' is listed twice",
                where=config.locate(f"data.features[{index}]"),
                hint="list each column once",
            )
        seen.add(name)
    return None


def check_model_expands(config: Config) -> CnnCliError | None:
    """Blocks, repeats and graph nodes expand into layers (``config.expand``)."""
    try:
        expand_model(config)
    except ConfigErrors as exc:
        return exc
    return None


def check_conv_strides_with_dilation(config: Config) -> CnnCliError | None:
    """Conv1D strides and dilation are not both set (Keras refuses the pair)."""
    plan = plan_or_none(config)
    for node in plan.nodes if plan else ():
        layer = node.spec
        strides, dilation = layer.args.get("strides", 1), layer.args.get("dilation_rate", 1)
        if layer.type in ("Conv1D", "SeparableConv1D") and _not_one(strides) and _not_one(dilation):
            return CnnCliError(
                f"strides={strides} together with dilation_rate={dilation}",
                where=node.where,
                hint="Keras allows strides or dilation_rate other than 1, not both; set one to 1",
            )
    return None


def check_causal_padding(config: Config) -> CnnCliError | None:
    """``padding: causal`` exists only for 1-D convolutions."""
    plan = plan_or_none(config)
    for node in plan.nodes if plan else ():
        layer = node.spec
        if layer.args.get("padding") == "causal" and not layer.type.endswith("1D"):
            return CnnCliError(
                f"padding 'causal' is only defined for 1-D convolutions, not {layer.type}",
                where=node.locate("padding"),
                hint="use padding: same or valid",
            )
    return None


def check_finite_arguments(config: Config) -> CnnCliError | None:
    """No Keras argument is NaN or infinite (``learning_rate: .nan`` trained into a NaN loss)."""
    model = config.model
    part = "layers" if model.layers is not None else "graph"
    objects = [(f"model.{part}[{i}]", entry) for i, entry in enumerate(model.layers or model.graph)]
    objects += [
        (f"model.blocks.{name}.layers[{i}]", entry)
        for name, block in model.blocks.items()
        for i, entry in enumerate(block.layers)
    ]
    objects += [("compile.optimizer", config.compile.optimizer)]
    objects += [("compile.loss", config.compile.loss)] if config.compile.loss else []
    objects += [(f"fit.callbacks[{i}]", c) for i, c in enumerate(config.fit.callbacks)]
    for key, named in objects:
        for path, value in _leaves(named.args, key):
            if isinstance(value, float) and not math.isfinite(value):
                return CnnCliError(
                    f"{value} is not a finite number",
                    where=config.locate(path),
                    hint="give a finite number, or leave the argument out for Keras' default",
                )
    return None


#: Callbacks that set the optimizer's learning rate, which Keras refuses when it is a schedule.
LEARNING_RATE_SETTERS = ("ReduceLROnPlateau", "LearningRateScheduler")


def check_schedule_with_rate_callback(config: Config) -> CnnCliError | None:
    """A learning-rate schedule is not also set by a callback (Keras fails mid-training)."""
    if not isinstance(config.compile.optimizer.args.get("learning_rate"), dict):
        return None
    for index, callback in enumerate(config.fit.callbacks):
        if callback.type in LEARNING_RATE_SETTERS:
            return CnnCliError(
                f"{callback.type} sets the learning rate, which"
                " compile.optimizer.learning_rate already schedules",
                where=config.locate(f"fit.callbacks[{index}]", label=callback.type),
                hint="keep either the schedule (give learning_rate a number) or the callback",
            )
    return None


def check_positive_learning_rate(config: Config) -> CnnCliError | None:
    """The learning rate (or a schedule's initial one) is above 0: at or below, nothing learns."""
    rate = config.compile.optimizer.args.get("learning_rate")
    key = "compile.optimizer.learning_rate"
    if isinstance(rate, dict):
        rate, key = rate.get("initial_learning_rate"), f"{key}.initial_learning_rate"
    if isinstance(rate, bool) or not isinstance(rate, int | float):
        return None
    if rate > 0 or not math.isfinite(rate):  # NaN and infinities: check_finite_arguments
        return None
    return CnnCliError(
        f"expected a learning rate above 0, got {rate}"
        + (" (training would climb the loss instead of lowering it)" if rate < 0 else ""),
        where=config.locate(key),
        hint="use a small positive number, e.g. learning_rate: 0.001",
    )


#: Callbacks that watch a metric (``monitor``, Keras' default ``val_loss``), and whether they
#: need it only when an argument is set (ModelCheckpoint reads it for save_best_only).
MONITORING = {"EarlyStopping": None, "ReduceLROnPlateau": None, "ModelCheckpoint": "save_best_only"}


def check_validation_metric_has_validation(config: Config) -> CnnCliError | None:
    """A callback monitoring a ``val_`` metric has a validation part (fit.validation_split)."""
    if config.fit.validation_split > 0:
        return None
    for index, callback in enumerate(config.fit.callbacks):
        if callback.type not in MONITORING:
            continue
        needs = MONITORING[callback.type]
        monitor = callback.args.get("monitor", "val_loss")
        if needs is not None and not callback.args.get(needs):
            continue
        if isinstance(monitor, str) and monitor.startswith("val_"):
            key = f"fit.callbacks[{index}]" + (".monitor" if "monitor" in callback.args else "")
            return CnnCliError(
                f"{callback.type} monitors {monitor}, but there is no validation part to"
                " compute it on (Keras would warn and never act)",
                where=config.locate(key, label=callback.type),
                hint="set fit.validation_split (e.g. 0.2), or monitor a training metric"
                f" such as {monitor.removeprefix('val_')}",
            )
    return None


#: The backends each ``distribute.strategy`` runs on.
STRATEGY_BACKENDS = {"mirrored": ("tensorflow", "jax"), "data_parallel": ("jax",)}


def check_distribute(config: Config) -> CnnCliError | None:
    """The strategy runs on the config's backend, several processes only with data_parallel,
    and the batch splits evenly between the processes."""
    spec = config.distribute
    backends = STRATEGY_BACKENDS.get(spec.strategy)
    if backends is not None and config.backend not in backends:
        return CnnCliError(
            f"strategy {spec.strategy} needs backend {' or '.join(backends)}, not {config.backend}",
            where=config.locate("distribute.strategy"),
            hint=f"set backend: {backends[-1]}, or strategy: none",
        )
    if spec.num_processes > 1 and spec.strategy != "data_parallel":
        return CnnCliError(
            f"num_processes: {spec.num_processes} needs strategy: data_parallel",
            where=config.locate("distribute.num_processes"),
            hint="set distribute.strategy: data_parallel, or num_processes: 1",
        )
    if config.fit.batch_size % spec.num_processes:
        return CnnCliError(
            f"batch_size {config.fit.batch_size} does not split evenly between"
            f" {spec.num_processes} processes",
            where=config.locate("fit.batch_size"),
            hint=f"use a multiple of {spec.num_processes}",
        )
    if spec.strategy == "data_parallel" and config.data.streaming is True:
        return CnnCliError(
            "data_parallel reads the training rows into memory; streaming is not supported yet",
            where=config.locate("data.streaming"),
            hint="set data.streaming: false, or distribute.strategy: none",
        )
    return None


def _leaves(value: Any, key: str) -> list[tuple[str, Any]]:
    """(dotted key, value) of every scalar inside nested mappings and lists."""
    if isinstance(value, dict):
        return [leaf for name, item in value.items() for leaf in _leaves(item, f"{key}.{name}")]
    if isinstance(value, list):
        return [leaf for i, item in enumerate(value) for leaf in _leaves(item, f"{key}[{i}]")]
    return [(key, value)]


def _not_one(value: Any) -> bool:
    values = value if isinstance(value, (list, tuple)) else [value]
    return any(item != 1 for item in values)


CROSS_CHECKS = (
    check_label_not_feature,
    check_duplicate_features,
    check_dropped_not_feature,
    check_label_not_typed,
    check_label_preprocessing_fits_task,
    check_model_expands,
    check_conv_strides_with_dilation,
    check_causal_padding,
    check_finite_arguments,
    check_schedule_with_rate_callback,
    check_positive_learning_rate,
    check_validation_metric_has_validation,
    check_distribute,
)
