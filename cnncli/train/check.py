"""Everything that can be checked without training, with every problem reported at once.

Schema and YAML checks happen in ``load_config`` (no TensorFlow). This module adds the checks
that need the data and Keras: column names, Keras names and arguments, shapes through the
stack, and whether the head and loss fit the task. ``validate`` and ``summary`` get the data's
facts cheaply from ``inspect_data`` (the header, a sample and the label and categorical columns,
never the whole table); ``train`` reads the data once to train on it and checks the model
against the fitted preprocessing (``facts_from_preprocessor`` and ``check_model``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import numpy as np

from cnncli.config.expand import INPUT, MERGE_LAYERS, Node, expand_model, plan_or_none
from cnncli.config.models import Config, LayerSpec
from cnncli.data.columns import (
    ColumnReport,
    choose_columns,
    describe_columns,
    infer_task,
    input_width,
    label_values,
    require_columns,
    require_two_classes,
)
from cnncli.data.csvfile import read_header, read_sample, require_data_files
from cnncli.data.preprocess import Preprocessor, label_width
from cnncli.errors import CnnCliError, ConfigErrors, Location, did_you_mean
from cnncli.model.arguments import keras_message, shape_text
from cnncli.model.build import (
    build_model,
    describe_layers,
    make_callbacks,
    make_layer,
    make_loss,
    make_metrics,
    make_optimizer,
    resolve_units,
)
from cnncli.model.size import MemoryEstimate, available_memory, estimate_memory, human_bytes
from cnncli.model.targets import (
    CLASSIFICATION_LOSSES,
    ONEHOT_LOSSES,
    SPARSE_LOSSES,
    configured_loss,
    label_kind,
    model_input_shape,
)
from cnncli.runtime import import_keras
from cnncli.train.tracking import require_trackers


@dataclass(frozen=True)
class DataFacts:
    """What the data says about the model's input and output."""

    input_width: int
    task: str
    classes: tuple[Any, ...]
    label_kind: str
    columns: ColumnReport = ColumnReport((), ())

    @property
    def n_outputs(self) -> int:
        return label_width(self.label_kind, len(self.classes))


@dataclass(frozen=True)
class ConfigReport:
    input_shape: tuple[int, ...]
    layers: list[dict[str, Any]]
    description: str
    columns: ColumnReport = ColumnReport((), ())


def inspect_data(config: Config) -> DataFacts:
    """Header, a sample, then the whole file in chunks through the cell rules (what training
    would refuse), keeping only the label's and the categorical columns' distinct values."""
    require_data_files(config)
    delimiter = config.data.delimiter
    header = read_header(config.data.path, delimiter)
    sample = read_sample(config.data.path, delimiter)
    columns = choose_columns(config, header, sample)
    from cnncli.data.chunks import survey_columns, wants_streaming  # a large file: in chunks
    from cnncli.data.split import check_split_sizes

    label_text = sample[columns.label].dtype.kind in "OSUb"
    survey = survey_columns(config, config.data.path, columns, label_text)
    if config.data.test_path is not None:  # its cells, as training will read them
        require_columns(
            config.data.test_path, read_header(config.data.test_path, delimiter), columns
        )
        survey_columns(config, config.data.test_path, columns, label_text)
    width = input_width(columns, survey.categories)
    report = describe_columns(config, header, columns, survey.categories, survey.rows, survey.ids)
    labels = label_values(survey.labels)
    task = config.task or infer_task(labels)
    classes = tuple(np.unique(labels).tolist()) if task == "classification" else ()
    if task == "classification":
        label_column = Location(file=config.data.path, key=f"column '{columns.label}'")
        require_two_classes(classes, label_column)
    check_split_sizes(  # what train's split would refuse (fit.validation_split: 0.99)
        config,
        survey.rows,
        len(classes),
        has_test_file=config.data.test_path is not None,
        streaming=wants_streaming(config),
    )
    kind = label_kind(config, task, len(classes))
    return DataFacts(width, task, classes, kind, report)


def facts_from_preprocessor(task: str, preprocessor: Preprocessor) -> DataFacts:
    """The facts of preprocessing fitted on the training rows: what ``train`` checks against."""
    label = preprocessor.label
    return DataFacts(preprocessor.input_width, task, label.classes, label.kind)


def summarize_config(config: Config) -> ConfigReport:
    """Run every check; return the layer table, or raise ConfigErrors listing all problems."""
    problems: list[CnnCliError] = []
    _collect(problems, require_trackers, config)
    facts = _collect(problems, inspect_data, config)
    input_shape = _check_model(problems, config, facts)
    report = None
    if facts is not None and input_shape is not None:
        report = _collect(problems, _describe_model, config, facts, input_shape)
    if problems:
        raise ConfigErrors(problems)
    assert report is not None
    return report


def check_model(config: Config, facts: DataFacts) -> None:
    """The model checks of ``summarize_config`` against facts already known; builds no model.

    Raises:
        ConfigErrors: every problem found: names, arguments, shapes, head and loss.
    """
    problems: list[CnnCliError] = []
    _check_model(problems, config, facts)
    if problems:
        raise ConfigErrors(problems)


def _check_model(
    problems: list[CnnCliError], config: Config, facts: DataFacts | None
) -> tuple[int, ...] | None:
    """Collect the model's problems; the input shape once the shapes fit, else None."""
    keras = import_keras()
    n_outputs = facts.n_outputs if facts else 1
    nodes = _collect(problems, resolve_units, config, n_outputs)
    if nodes is None:
        return None
    layers = [_collect(problems, make_layer, node.spec, node.where, keras) for node in nodes]
    _collect(problems, make_optimizer, config, keras)
    _collect(problems, make_metrics, config, keras, ())
    _collect(problems, make_callbacks, config, keras)
    if config.compile.loss is not None:
        _collect(problems, make_loss, config, keras, "")
    if facts is None:
        return None
    problems += head_and_loss_problems(config, facts)
    problems += class_weight_problems(config, facts)
    if any(layer is None for layer in layers):
        return None
    shapes = _collect(problems, propagate_shapes, config, facts, nodes, layers)
    input_shape = model_input_shape(config, facts.input_width) if shapes else None
    fits = shapes is not None and _collect(
        problems, check_memory, config, nodes, layers, input_shape, shapes
    )
    if not fits:
        return None  # a model too large to train is never built, not even for the summary
    return input_shape


def _collect(problems: list[CnnCliError], function: Any, *args: Any) -> Any:
    try:
        return function(*args)
    except ConfigErrors as exc:
        problems.extend(exc.problems)
    except CnnCliError as exc:
        problems.append(exc)
    return None


# ---------------------------------------------------------------------------------------------
# Shapes


def propagate_shapes(
    config: Config, facts: DataFacts, nodes: list[Node], layers: list[Any]
) -> list[list[tuple[Any, ...]]]:
    """Each layer's output shape in turn, through every path of a graph.

    Returns:
        Each layer's input shapes (one, or one per input of a merge), when every layer fits.

    Raises:
        CnnCliError: at the first layer that does not fit, with the shapes on the way to it.
    """
    input_shape = model_input_shape(config, facts.input_width)
    shapes: dict[str, tuple[Any, ...]] = {INPUT: (None, *input_shape)}
    trails = {INPUT: [f"input {shape_text(shapes[INPUT])}"]}
    specs = {node.name: node.spec for node in nodes}
    taken: list[list[tuple[Any, ...]]] = []
    for node, layer in zip(nodes, layers, strict=True):
        spec = node.spec
        given = [shapes[source] for source in node.inputs]
        trail = trails[node.inputs[0]]
        if len(given) > 1 or spec.type in MERGE_LAYERS:
            problem = merge_problem(node, given)
            shape = given[0]
        else:
            shape = given[0]
            previous = specs.get(node.inputs[0])
            problem = expected_rank_problem(spec, shape, previous) or window_problem(
                spec, shape, previous
            )
        if problem is None:
            try:
                shape = tuple(layer.compute_output_shape(given if len(given) > 1 else shape))
            except Exception as exc:  # noqa: BLE001 - Keras raises several types here
                problem = rank_problem_from_keras_error(spec, shape, exc, specs.get(node.inputs[0]))
            else:
                if any(dim is not None and dim <= 0 for dim in shape[1:]):
                    problem = (
                        f"output would be empty: {shape_text(shape)}",
                        "make the layers above keep more steps",
                    )
        if problem is not None:
            message, hint = problem
            raise CnnCliError(
                f"{message} (shapes: {' → '.join(trail)})", where=node.where, hint=hint
            )
        taken.append(given)
        shapes[node.name] = shape
        trails[node.name] = [*trail, f"{spec.type} {shape_text(shape)}"]
    _check_output(nodes[-1], shapes[nodes[-1].name], facts, trails[nodes[-1].name])
    return taken


def _check_output(last: Node, shape: tuple[Any, ...], facts: DataFacts, trail: list[str]) -> None:
    """The model's output against the label's width: a graph may end in any layer, and a wrong
    width or an extra axis failed mid-training (or broadcast silently against the label).
    A Dense head's wrong units are ``head_and_loss_problems``' to name."""
    wanted = (None, facts.n_outputs)
    if len(shape) == 2 and (shape[1] == facts.n_outputs or last.spec.type == "Dense"):
        return
    raise CnnCliError(
        f"the model's output is {shape_text(shape)} but the label needs {shape_text(wanted)}"
        f" (shapes: {' → '.join(trail)})",
        where=last.where,
        hint="end with a Dense with units: auto (after a Flatten or a global pooling)",
    )


def merge_problem(node: Node, shapes: list[tuple[Any, ...]]) -> tuple[str, str] | None:
    """Shapes a merge layer cannot join, named with where each comes from and the fix."""
    kind = node.spec.type
    named = [
        f"{shape_text(shape)} from '{source}'"
        for shape, source in zip(shapes, node.inputs, strict=True)
    ]
    ranks = {len(shape) for shape in shapes}
    if kind == "Concatenate":
        axis = node.spec.args.get("axis", -1)
        rank = len(shapes[0])
        if not isinstance(axis, int) or not -rank < axis < rank or axis % rank == 0:
            # axis 0 joined the batches: a batch twice as long as its labels, a crash mid-fit
            return (
                f"Concatenate cannot join along axis {axis} of {' and '.join(named)}",
                "use axis: -1 (the features); axis 0 is the batch"
                if rank <= 2
                else f"use an axis from 1 to {rank - 1} (or -1, the channels); axis 0 is the batch",
            )
        if len(ranks) == 1:
            rest = {tuple(d for i, d in enumerate(s) if i != axis % len(s)) for s in shapes}
            if len(rest) == 1:
                return None
        return (
            f"Concatenate needs equal shapes except on axis {axis}: {' and '.join(named)}",
            "make the steps match (padding: same on the convolutions and pooling of each path),"
            " or put a Flatten or global pooling on each path first",
        )
    if kind not in MERGE_LAYERS or len(set(shapes)) == 1:
        return None
    message = f"{kind} needs equal shapes: {' and '.join(named)}"
    first = shapes[0]
    if len(ranks) == 1 and all(shape[:-1] == first[:-1] for shape in shapes):
        widest = max(shape[-1] or 0 for shape in shapes)
        narrow = next(
            source for shape, source in zip(shapes, node.inputs, strict=True) if shape[-1] != widest
        )
        layer = (
            f"a Dense with units: {widest}"
            if len(first) == 2
            else f"a Conv{len(first) - 2}D with filters: {widest}, kernel_size: 1"
        )
        return message, f"put {layer} on the path from '{narrow}'"
    return message, (
        "make every path keep the same steps (padding: same) and channels, or use Concatenate"
    )


def check_memory(
    config: Config,
    nodes: list[Node],
    layers: list[Any],
    input_shape: tuple[int, ...],
    inputs: list[list[tuple[Any, ...]]] | None = None,
) -> MemoryEstimate:
    """Training must fit in the memory available now (``model.size`` says what it counts).

    Returns:
        The estimate, when it fits (or when the available memory is unknown).

    Raises:
        CnnCliError: at the layer with the most parameters, with the count and the bytes.
    """
    estimate = estimate_memory(import_keras(), layers, input_shape, inputs)
    needed = estimate.training_bytes(config.fit.batch_size)
    available = available_memory()
    if available is None or needed <= available:
        return estimate
    batch = estimate.batch_bytes(config.fit.batch_size)
    if estimate.weight_bytes < available and batch > estimate.weight_bytes:  # the batch's fault
        fitting = max(1, (available - estimate.weight_bytes) // estimate.batch_bytes(1))
        raise CnnCliError(
            f"one batch of {config.fit.batch_size:,} rows needs about"
            f" {human_bytes(batch)} for the layers' outputs"
            f" but {human_bytes(available - estimate.weight_bytes)} is left beside the model's"
            f" {human_bytes(estimate.weight_bytes)}",
            where=config.locate("fit.batch_size"),
            hint=f"lower fit.batch_size (at most about {fitting:,})",
        )
    index = estimate.largest
    largest = estimate.trainable[index] + estimate.frozen[index]
    raise CnnCliError(
        f"the model has {estimate.parameters:,} parameters ({largest:,} in this layer); training"
        f" needs about {human_bytes(needed)} of memory (weights, gradients, optimizer state,"
        f" one batch's activations) but {human_bytes(available)} is available",
        where=nodes[index].where,
        hint="make this layer smaller (fewer units or filters, or pooling before it)",
    )


def _describe_model(config: Config, facts: DataFacts, input_shape: tuple[int, ...]) -> ConfigReport:
    """Build the model uncompiled for its layer table, and say what goes in and out."""
    model = build_model(config, input_shape, facts.n_outputs, compile_model=False)
    description = f"{facts.input_width} input value(s) shaped {list(input_shape)}"
    if facts.task == "classification":
        description += f" → {len(facts.classes)} classes ({facts.label_kind} labels)"
    else:
        description += " → 1 value (regression)"
    order = [node.name for node in expand_model(config).nodes]
    return ConfigReport(input_shape, describe_layers(model, order), description, facts.columns)


def window_problem(
    spec: LayerSpec, shape: tuple[Any, ...], previous: LayerSpec | None
) -> tuple[str, str] | None:
    """A conv or pooling window larger than its input, in the user's words."""
    match = re.fullmatch(
        r"(Conv|SeparableConv|DepthwiseConv|MaxPooling|AveragePooling)([123])D", spec.type
    )
    if match is None or spec.args.get("padding", "valid") in ("same", "causal"):
        return None
    rank = int(match.group(2))
    if len(shape) != rank + 2:
        return None  # the rank check reports this one
    if spec.args.get("data_format") == "channels_first":
        return None
    family = match.group(1)
    argument = "pool_size" if "Pooling" in family else "kernel_size"
    default = 2 if "Pooling" in family else None
    window = _as_tuple(spec.args.get(argument, default), rank)
    dilation = (
        _as_tuple(spec.args.get("dilation_rate", 1), rank)
        if "Pooling" not in family
        else (1,) * rank
    )
    if window is None or dilation is None:
        return None
    sizes = shape[1:-1]
    effective = tuple((w - 1) * d + 1 for w, d in zip(window, dilation, strict=True))
    if all(size is None or size >= eff for size, eff in zip(sizes, effective, strict=True)):
        return None
    if rank == 1:
        steps = sizes[0]
        got = f"input has {steps} step{'s' if steps != 1 else ''} but {argument} is {window[0]}"
    else:
        got = f"input is {'×'.join(map(str, sizes))} but {argument} is {'×'.join(map(str, window))}"
    if dilation != (1,) * rank:
        got += f" with dilation_rate {list(dilation)} (window {'×'.join(map(str, effective))})"
    above = (
        previous is not None
        and previous.type.startswith(("Conv", "SeparableConv", "DepthwiseConv"))
        and previous.args.get("padding", "valid") == "valid"
    )
    if above:
        hint = f"use padding: same on the {previous.type} above, or a smaller {argument}"
    else:
        hint = f"use padding: same, or a smaller {argument}"
    return got, hint


def _as_tuple(value: Any, rank: int) -> tuple[int, ...] | None:
    if isinstance(value, int):
        return (value,) * rank
    if (
        isinstance(value, (list, tuple))
        and len(value) == rank
        and all(isinstance(v, int) for v in value)
    ):
        return tuple(value)
    return None


_SPATIAL = re.compile(
    r"(?:Conv|SeparableConv|DepthwiseConv|MaxPooling|AveragePooling|GlobalMaxPooling|GlobalAveragePooling"
    r"|UpSampling|ZeroPadding|Cropping)([123])D(?:Transpose)?"
)
_SEQUENCE_LAYERS = {"LSTM", "GRU", "SimpleRNN", "Bidirectional", "Attention"}
_AXES = {
    3: "(batch, steps, channels)",
    4: "(batch, height, width, channels)",
    5: "(batch, depth, height, width, channels)",
}


def expected_rank_problem(
    spec: LayerSpec, shape: tuple[Any, ...], previous: LayerSpec | None
) -> tuple[str, str] | None:
    """A layer that needs a sequence or image input gets another rank, known before Keras runs."""
    match = _SPATIAL.fullmatch(spec.type)
    if match:
        expected = int(match.group(1)) + 2
    elif spec.type in _SEQUENCE_LAYERS:
        expected = 3
    else:
        return None
    if len(shape) == expected:
        return None
    message = f"expects input of rank {expected} {_AXES[expected]} but gets {shape_text(shape)}"
    if previous is not None and previous.type == "Flatten" and len(shape) < expected:
        hint = "remove the Flatten above, or move this layer before it"
    elif previous is None:
        example = ", ".join(["n"] * (expected - 2))
        hint = f"set model.input_shape to rank {expected - 1}, e.g. [{example}, 1]"
    elif len(shape) > expected:
        hint = "add a Flatten, Reshape or global pooling layer above it"
    else:
        hint = "add a Reshape above it, or change model.input_shape"
    return message, hint


def rank_problem_from_keras_error(
    spec: LayerSpec, shape: tuple[Any, ...], exc: Exception, previous: LayerSpec | None
) -> tuple[str, str]:
    """The message and hint for Keras' own complaint about a layer's input shape."""
    text = keras_message(exc)
    found = re.search(r"expected (min_)?ndim=(\d+), found ndim=(\d+)", text)
    if found:
        expected, got = int(found.group(2)), int(found.group(3))
        at_least = "+" if found.group(1) else ""
        message = f"expects input of rank {expected}{at_least} but gets {shape_text(shape)}"
        if previous is not None and previous.type == "Flatten" and got < expected:
            hint = "remove the Flatten above, or move this layer before it"
        elif got < expected and previous is None:
            example = ", ".join(["n"] * (expected - 2))
            hint = f"set model.input_shape to rank {expected - 1}, e.g. [{example}, 1]"
        elif got > expected:
            hint = "add a Flatten (or a global pooling layer) above it"
        else:
            hint = "add a Reshape above it, or change model.input_shape"
        return message, hint
    return (
        f"does not fit its input {shape_text(shape)}: {text}",
        "check this layer's arguments against the shapes shown",
    )


# ---------------------------------------------------------------------------------------------
# Head and loss


def class_weight_problems(config: Config, facts: DataFacts) -> list[CnnCliError]:
    """``fit.class_weight`` needs classes, and names only classes the label has."""
    weights = config.fit.class_weight
    if weights is None:
        return []
    if facts.task != "classification":
        return [
            CnnCliError(
                "class_weight weighs classes, but the task is regression",
                where=config.locate("fit.class_weight"),
                hint="remove fit.class_weight",
            )
        ]
    if weights == "balanced":
        return []
    classes = [str(name) for name in facts.classes]
    listed = ", ".join(classes)
    return [
        CnnCliError(
            f"'{name}' is not a class of the label (classes: {listed})",
            where=config.source.locate(("fit", "class_weight", name), on_key=True),
            hint=did_you_mean(name, classes, f"name one of: {listed}"),
        )
        for name in weights
        if name not in classes
    ]


def head_and_loss_problems(config: Config, facts: DataFacts) -> list[CnnCliError]:
    """The last layer and the loss must fit the task and the label encoding."""
    problems: list[CnnCliError] = []
    plan = plan_or_none(config)
    if plan is None:
        return problems  # load_config reports the model's expansion problems
    node = plan.last
    last = node.spec
    units = last.args.get("units")
    activation = last.args.get("activation")
    loss = configured_loss(config)
    n_classes = len(facts.classes)

    def problem(message: str, hint: str, argument: str | None = None) -> None:
        """One problem at the last layer (or one of its arguments), or at compile.loss."""
        if argument == "loss":
            where = config.locate("compile.loss")
        elif argument:
            where = node.locate(argument)
        else:
            where = node.where
        problems.append(CnnCliError(message, where=where, hint=hint))

    if facts.task == "classification":
        expected = 1 if facts.label_kind == "binary" else n_classes
        wrong_units = isinstance(units, int) and units != expected and last.type == "Dense"
        if wrong_units:
            problem(
                f"last layer has {units} unit(s) but the label has {n_classes} classes",
                f"use units: auto (= {expected})",
                "units",
            )
        if last.type == "Dense" and activation not in ("softmax", "sigmoid"):
            # A linear head trains (the loss takes any numbers) but learns nothing useful and
            # its "confidences" are not probabilities: a run went to 0.174 accuracy this way.
            head = "sigmoid" if facts.label_kind == "binary" else "softmax"
            problem(
                f"the last layer has activation {activation or 'linear'}, so its outputs are not"
                " class probabilities",
                f"use activation: {head} on the last layer",
                "activation" if activation else None,
            )
        if activation == "softmax" and not wrong_units and (units == 1 or expected == 1):
            problem(
                "softmax over a single unit always outputs 1.0",
                "use activation: sigmoid with loss: binary_crossentropy,"
                " or units: auto with categorical_crossentropy",
            )
        if activation == "sigmoid" and loss in ONEHOT_LOSSES and n_classes > 2:
            problem(
                f"sigmoid with {loss} on {n_classes} classes: the outputs do not sum to 1",
                "use activation: softmax",
                "activation",
            )
        if loss in SPARSE_LOSSES and config.preprocess.label == "onehot":
            problem(
                f"{loss} expects integer labels but preprocess.label is onehot",
                "use loss: categorical_crossentropy, or preprocess.label: sparse",
                "loss",
            )
        if loss in ONEHOT_LOSSES and config.preprocess.label == "sparse":
            problem(
                f"{loss} expects one-hot labels but preprocess.label is sparse",
                "use loss: sparse_categorical_crossentropy, or preprocess.label: onehot",
                "loss",
            )
        if loss in ("binary_crossentropy", "BinaryCrossentropy") and n_classes > 2:
            problem(
                f"{loss} is for two classes, the label has {n_classes}",
                "use categorical_crossentropy with a softmax head",
                "loss",
            )
    else:
        if loss in CLASSIFICATION_LOSSES:
            problem(
                f"{loss} is a classification loss but the task is regression",
                "use mean_squared_error or mean_absolute_error, or set task: classification",
                "loss",
            )
        if activation in ("softmax", "sigmoid"):
            problem(
                f"a {activation} head squashes a regression output into 0..1",
                "leave activation out (linear) on the last layer",
                "activation",
            )
    return problems
