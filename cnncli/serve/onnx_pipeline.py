"""The whole prediction as one ONNX graph: raw column values in, the label and probabilities out.

``cnncli export --with-preprocessing`` wraps a run's checked ``model.onnx`` between two pieces
built from the fitted ``preprocess.json``: before it, the feature scaling, the fill of empty
numeric cells and the one-hot encoding of text columns; after it, the decoding to class names
(or to the label's units). A server in any language then needs nothing but ONNX Runtime.

The arithmetic is ``data.preprocess.transform_features``' and ``serve.predictor.decode``'s:
numbers are scaled in float64 and cast to float32 once, so the model sees the same bits as in
``cnncli predict``. ONNX has no operator that reads a date, so a date column comes in as its
day number (days since 1970-01-01, as ``cells.parse_dates`` gives it) and the graph takes the
year, month, weekday and day of the year apart with whole-number arithmetic.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper

from cnncli.data.preprocess import DATE_PERIODS, FeatureTransform, LabelTransform, Preprocessor
from cnncli.errors import CnnCliError, Location
from cnncli.serve.onnxgraph import _Graph

#: The graph's outputs: each row's label, and each class's probability (classifiers only).
LABEL_OUTPUT = "label"
PROBABILITIES_OUTPUT = "probabilities"
#: Prefix of the run's model graph inside the pipeline, so its names meet none of ours.
MODEL_PREFIX = "model/"
#: ``ai.onnx.ml``'s version with ``LabelEncoder``'s ``keys_strings``/``values_int64s`` (ONNX
#: Runtime has run it since 1.2).
ML_OPSET = 2
#: Reshape, Flatten, ArgMax and friends as written here need this default-domain opset at least.
MIN_OPSET = 13

#: Each feature kind's input: its ONNX type and what it holds.
INPUTS = {
    "numeric": (TensorProto.DOUBLE, "float64: the number; NaN for an empty cell"),
    "date": (
        TensorProto.DOUBLE,
        "float64: days since 1970-01-01 (2015-03-04 is 16498); NaN for an empty cell",
    ),
    "categorical": (
        TensorProto.STRING,
        "string: the cell as read (no leading spaces); '' for an empty cell",
    ),
}

PIPELINE_RECIPE = (
    "The graph holds the preprocessing. Inputs: one per feature column, named by the column, of"
    " shape [rows]: numeric columns as float64 (NaN for an empty cell, filled with the training"
    " mean when the run has missing: mean), date columns as float64 days since 1970-01-01,"
    " categorical columns as strings (a value never seen in training, or an empty string, encodes"
    " as all zeros). Outputs: label [rows] (the class as training stored it: string, int64 or"
    " float64; regression: float64 in the label's units) and, for a classifier, probabilities"
    " [rows, classes] as float64 in the order of preprocess.label.classes."
)


def pipeline_onnx(model: Any, pre: Preprocessor, run: str) -> Any:
    """The ``ModelProto`` that takes raw columns and gives labels and probabilities.

    Args:
        model: the run's checked ``model.onnx`` (one float32 input of the preprocessed values).
        pre: the run's fitted preprocessing, the one source of every constant in the graph.
        run: the run folder, for messages.

    Returns:
        A new ``ModelProto``; ``model``'s metadata is kept.

    Raises:
        CnnCliError: a column named like a tensor of the graph, or a model graph too old.
    """
    opset = max([0, *_versions(model, ""), *_versions(model, "ai.onnx")])
    if opset < MIN_OPSET:
        raise CnnCliError(
            f"model.onnx uses ONNX opset {opset}; the graph around it needs {MIN_OPSET} or newer",
            where=Location(file=run),
            hint="retrain the run with this cnncli, or export without --with-preprocessing",
        )
    core = onnx.compose.add_prefix(model, MODEL_PREFIX)
    writer = _Graph(None)
    inputs = [_input(feature) for feature in pre.features]
    blocks = [_feature_block(writer, feature) for feature in pre.features]
    features = writer.op(
        "Cast", [writer.op("Concat", blocks, axis=1)], to=TensorProto.FLOAT
    )  # float64 arithmetic, one cast: transform_features' bits
    shape = writer.const(np.asarray([-1, *pre.input_shape]), "shape", np.int64)
    writer.nodes.append(helper.make_node("Reshape", [features, shape], [core.graph.input[0].name]))
    before = list(writer.nodes)
    writer.nodes.clear()
    outputs = _decode(writer, pre.label, core.graph.output[0].name)
    nodes = before + list(core.graph.node) + writer.nodes
    initializers = writer.initializers + list(core.graph.initializer)
    _refuse_clashes(pre, _names(nodes, initializers), run)
    graph = helper.make_graph(nodes, "cnncli-pipeline", inputs, outputs, initializers)
    pipeline = helper.make_model(
        graph,
        opset_imports=[
            *(o for o in model.opset_import if o.domain != "ai.onnx.ml"),
            helper.make_opsetid("ai.onnx.ml", max([ML_OPSET, *_versions(model, "ai.onnx.ml")])),
        ],
        producer_name="cnncli",
    )
    pipeline.ir_version = model.ir_version
    pipeline.metadata_props.extend(model.metadata_props)
    onnx.checker.check_model(pipeline)
    return pipeline


def _versions(model: Any, domain: str) -> list[int]:
    """The opset versions ``model`` imports for ``domain``."""
    return [o.version for o in model.opset_import if o.domain == domain]


def _input(feature: FeatureTransform) -> Any:
    """A column's graph input, one value per row, with what it holds in its ``doc_string``."""
    kind, holds = INPUTS[feature.kind]
    return helper.make_tensor_value_info(feature.name, kind, ["rows"], doc_string=holds)


def _feature_block(writer: _Graph, feature: FeatureTransform) -> str:
    """A column's ``(rows, width)`` float64 block, as ``transform_features`` computes it."""
    column = writer.op(
        "Reshape", [feature.name, writer.const(np.asarray([-1, 1]), "shape", np.int64)]
    )
    if feature.kind == "categorical":
        # a category's position, -1 for any other text; equal to no position is all zeros
        index = writer.op(
            "LabelEncoder",
            [column],
            domain="ai.onnx.ml",
            keys_strings=list(feature.categories),
            values_int64s=list(range(len(feature.categories))),
            default_int64=-1,
        )
        positions = writer.const(np.arange(len(feature.categories)), "positions", np.int64)
        return writer.op("Cast", [writer.op("Equal", [index, positions])], to=TensorProto.DOUBLE)
    if feature.fill is not None:
        fill = writer.const(np.asarray(feature.fill), "fill", np.float64)
        column = writer.op("Where", [writer.op("IsNaN", [column]), fill, column])
    if feature.kind == "date":
        return _date_block(writer, feature, column)
    return _scaled(writer, feature, column)


def _scaled(writer: _Graph, feature: FeatureTransform, column: str) -> str:
    """``(column - center) / scale``."""
    center = writer.const(np.asarray(feature.center), "center", np.float64)
    scale = writer.const(np.asarray(feature.scale), "scale", np.float64)
    return writer.op("Div", [writer.op("Sub", [column, center]), scale])


def _date_block(writer: _Graph, feature: FeatureTransform, days: str) -> str:
    """A date's ``DATE_INPUTS`` from its day number, as ``preprocess._date_block`` computes them.

    The calendar is Howard Hinnant's ``civil_from_days`` (proleptic Gregorian, as NumPy's
    ``datetime64``), in float64 whole numbers: exact for any day a date cell can hold.
    """
    arithmetic = _Arithmetic(writer)
    whole = writer.op("Floor", [days])
    year, month, day_of_year = _civil_from_days(arithmetic, whole)
    weekday = arithmetic.mod(arithmetic.add(whole, 3), 7)  # 1970-01-01 was a Thursday
    block = [_scaled(writer, feature, year)]
    for part, period in zip((month, weekday, day_of_year), DATE_PERIODS, strict=True):
        angle = arithmetic.div(arithmetic.mul(part, 2.0 * np.pi), period)
        block += [writer.op("Sin", [angle]), writer.op("Cos", [angle])]
    return writer.op("Concat", block, axis=1)


def _civil_from_days(arithmetic: _Arithmetic, days: str) -> tuple[str, str, str]:
    """Year, month (0-11) and day of the year (0-365) of whole day numbers."""
    a = arithmetic
    shifted = a.add(days, 719468)  # days since 0000-03-01, the start of a 400-year era
    era = a.floor_div(shifted, 146097)
    day_of_era = a.sub(shifted, a.mul(era, 146097))
    year_of_era = a.floor_div(
        a.sub(
            a.add(a.sub(day_of_era, a.floor_div(day_of_era, 1460)), a.floor_div(day_of_era, 36524)),
            a.floor_div(day_of_era, 146096),
        ),
        365,
    )
    day_of_march_year = a.sub(day_of_era, _days_before(a, year_of_era))
    month_from_march = a.floor_div(a.add(a.mul(day_of_march_year, 5), 2), 153)  # March 0
    month = a.sub(a.add(month_from_march, 2), a.mul(a.ge(month_from_march, 10), 12))  # January 0
    year = a.add(a.add(year_of_era, a.mul(era, 400)), a.ge(month_from_march, 10))
    # 1 January of that year is day 306 of the March year that began in the year before
    before = a.sub(year, 1)
    january_era = a.floor_div(before, 400)
    january_year_of_era = a.sub(before, a.mul(january_era, 400))
    january = a.add(
        a.add(a.mul(january_era, 146097), _days_before(a, january_year_of_era)), 306 - 719468
    )
    return year, month, a.sub(days, january)


def _days_before(a: _Arithmetic, year_of_era: str) -> str:
    """Days of an era before its year ``year_of_era`` (365 a year, plus the leap days)."""
    leap = a.sub(a.floor_div(year_of_era, 4), a.floor_div(year_of_era, 100))
    return a.add(a.mul(year_of_era, 365), leap)


class _Arithmetic:
    """float64 arithmetic on a tensor and a number, one node each."""

    def __init__(self, writer: _Graph) -> None:
        self.writer = writer

    def _with(self, op_type: str, x: str, y: float) -> str:
        number = self.writer.const(np.asarray(float(y)), "number", np.float64)
        return self.writer.op(op_type, [x, number])

    def add(self, x: str, y: float | str) -> str:
        return self.writer.op("Add", [x, y]) if isinstance(y, str) else self._with("Add", x, y)

    def sub(self, x: str, y: float | str) -> str:
        return self.writer.op("Sub", [x, y]) if isinstance(y, str) else self._with("Sub", x, y)

    def mul(self, x: str, y: float | str) -> str:
        return self.writer.op("Mul", [x, y]) if isinstance(y, str) else self._with("Mul", x, y)

    def div(self, x: str, y: float) -> str:
        return self._with("Div", x, y)

    def floor_div(self, x: str, y: float) -> str:
        return self.writer.op("Floor", [self.div(x, y)])

    def mod(self, x: str, y: float) -> str:
        return self.sub(x, self.mul(self.floor_div(x, y), y))

    def ge(self, x: str, y: float) -> str:
        """1.0 where ``x >= y``, else 0.0."""

        return self.writer.op("Cast", [self._with("GreaterOrEqual", x, y)], to=TensorProto.DOUBLE)


def _decode(writer: _Graph, label: LabelTransform, output: str) -> list[Any]:
    """Nodes from the model's output to ``label`` (and ``probabilities``), as ``decode`` does;
    returns the graph's output descriptions."""

    rows = writer.op("Flatten", [output], axis=1)
    if not label.is_classification:
        first = writer.op(
            "Gather", [rows, writer.const(np.asarray([0]), "first", np.int64)], axis=1
        )
        value = writer.op("Cast", [_flat(writer, first)], to=TensorProto.DOUBLE)
        scaled = writer.op(
            "Mul", [value, writer.const(np.asarray(label.scale), "scale", np.float64)]
        )
        center = writer.const(np.asarray(label.center), "center", np.float64)
        writer.nodes.append(helper.make_node("Add", [scaled, center], [LABEL_OUTPUT]))
        return [helper.make_tensor_value_info(LABEL_OUTPUT, TensorProto.DOUBLE, ["rows"])]
    probabilities = writer.op("Cast", [rows], to=TensorProto.DOUBLE)
    if label.kind == "binary":
        positive = _flat(writer, probabilities)
        negative = writer.op(
            "Sub", [writer.const(np.asarray(1.0), "one", np.float64), probabilities]
        )
        index = writer.op(
            "Cast",
            [
                writer.op(
                    "GreaterOrEqual", [positive, writer.const(np.asarray(0.5), "half", np.float64)]
                )
            ],
            to=TensorProto.INT64,
        )
        probabilities = writer.op("Concat", [negative, probabilities], axis=1)
    else:
        index = writer.op("ArgMax", [rows], axis=1, keepdims=0)
    classes, kind = _classes(label.classes)
    writer.nodes.append(
        helper.make_node(
            "Gather",
            [writer.const(classes, "classes", classes.dtype), index],
            [LABEL_OUTPUT],
            axis=0,
        )
    )
    writer.nodes.append(helper.make_node("Identity", [probabilities], [PROBABILITIES_OUTPUT]))
    return [
        helper.make_tensor_value_info(LABEL_OUTPUT, kind, ["rows"]),
        helper.make_tensor_value_info(
            PROBABILITIES_OUTPUT,
            TensorProto.DOUBLE,
            ["rows", len(label.classes)],
            doc_string="float64: one column per class, in this order: "
            + json.dumps(list(label.classes), ensure_ascii=False),
        ),
    ]


def _flat(writer: _Graph, tensor: str) -> str:
    """``tensor`` as one value per row (``[rows, 1]`` → ``[rows]``)."""
    return writer.op("Reshape", [tensor, writer.const(np.asarray([-1]), "shape", np.int64)])


def _classes(classes: tuple[Any, ...]) -> tuple[np.ndarray, int]:
    """The classes as training stored them: whole numbers as int64, other numbers as float64,
    else text."""

    if all(isinstance(c, int) for c in classes):
        return np.asarray(classes, dtype=np.int64), TensorProto.INT64
    if all(isinstance(c, int | float) for c in classes):
        return np.asarray(classes, dtype=np.float64), TensorProto.DOUBLE
    return np.asarray([str(c) for c in classes], dtype=object), TensorProto.STRING


def _names(nodes: list[Any], initializers: list[Any]) -> set[str]:
    """Every tensor name the graph makes or holds."""
    return {name for node in nodes for name in node.output} | {i.name for i in initializers}


def _refuse_clashes(pre: Preprocessor, internal: set[str], run: str) -> None:
    """A column named like a tensor inside the graph would feed or read the wrong values."""
    taken = internal | {LABEL_OUTPUT, PROBABILITIES_OUTPUT}
    clash = next((name for name in pre.feature_names if name in taken), None)
    if clash is not None:
        raise CnnCliError(
            f"column '{clash}' has the name of a tensor inside the exported graph",
            where=Location(file=run),
            hint="rename the column and retrain, or export without --with-preprocessing",
        )
