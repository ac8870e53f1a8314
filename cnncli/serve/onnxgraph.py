"""Write a Keras ``Sequential`` or functional graph of common layers as an ONNX graph, straight
from its weights.

Keras' own ONNX exporter goes through tf2onnx (TensorFlow, seconds to import) or jax2onnx (a
large dependency tree), whichever backend trained the model. The stacks cnncli trains are made
of a few layer types whose ONNX form is a handful of standard operators, so this module writes
them directly with the ``onnx`` package: no TensorFlow, in milliseconds. Any layer, activation
or argument it does not know returns None, and the caller falls back to Keras' exporter; the
caller also checks the graph against Keras' outputs before a run keeps it.

Tensors stay channels-last between layers, as in Keras; convolutions and pooling transpose to
ONNX's channels-first around the operator, and ONNX Runtime removes the transpose pairs.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

OPSET = 17
INPUT_NAME = "input"
OUTPUT_NAME = "output"

#: Layers that do nothing at inference.
_IDENTITY_LAYERS = {
    "Dropout",
    "SpatialDropout1D",
    "SpatialDropout2D",
    "SpatialDropout3D",
    "GaussianNoise",
    "GaussianDropout",
    "AlphaDropout",
    "ActivityRegularization",
    "InputLayer",
}


#: Keras merge layers and the ONNX operator that joins their inputs.
_MERGE_OPS = {
    "Add": "Add",
    "Multiply": "Mul",
    "Subtract": "Sub",
    "Average": "Mean",
    "Maximum": "Max",
    "Minimum": "Min",
    "Concatenate": "Concat",
}


class Unsupported(Exception):
    """A layer or argument without a direct ONNX translation here."""


def sequential_onnx(model: Any) -> Any | None:
    """The ONNX ``ModelProto`` of a built Keras Sequential or single-input functional model,
    or None if a layer is unsupported."""
    try:
        return _Graph(model).build()
    except Unsupported:
        return None


class _Graph:
    def __init__(self, model: Any) -> None:
        from onnx import helper

        self.helper = helper
        self.model = model
        self.nodes: list[Any] = []
        self.initializers: list[Any] = []
        self.count = 0

    # -- plumbing ---------------------------------------------------------------------------

    def name(self, hint: str) -> str:
        self.count += 1
        return f"{hint}_{self.count}"

    def const(self, value: np.ndarray, hint: str, dtype: Any = np.float32) -> str:
        from onnx import numpy_helper

        name = self.name(hint)
        self.initializers.append(
            numpy_helper.from_array(np.ascontiguousarray(value, dtype=dtype), name)
        )
        return name

    def op(self, op_type: str, inputs: list[str], **attributes: Any) -> str:
        output = self.name(op_type.lower())
        self.nodes.append(self.helper.make_node(op_type, inputs, [output], **attributes))
        return output

    def build(self) -> Any:
        from onnx import TensorProto, helper

        model = self.model
        if len(model.inputs) != 1 or len(model.outputs) != 1:
            raise Unsupported("not one input and one output")
        if any(
            getattr(layer, "dtype_policy", None) is not None
            and layer.dtype_policy.name != "float32"
            for layer in model.layers
        ):
            raise Unsupported("not float32")
        input_shape = list(model.inputs[0].shape)
        if type(model).__name__ == "Sequential":
            tensor = INPUT_NAME
            for layer in model.layers:
                tensor = self.layer(layer, tensor)
        else:
            tensor = self.functional(model)
        output_shape = list(model.outputs[0].shape)
        self.nodes.append(helper.make_node("Identity", [tensor], [OUTPUT_NAME]))

        def value_info(name: str, shape: list[Any]) -> Any:
            dims = ["batch" if dim is None else int(dim) for dim in shape]
            return helper.make_tensor_value_info(name, TensorProto.FLOAT, dims)

        graph = helper.make_graph(
            self.nodes,
            "cnncli",
            [value_info(INPUT_NAME, input_shape)],
            [value_info(OUTPUT_NAME, output_shape)],
            self.initializers,
        )
        proto = helper.make_model(
            graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="cnncli"
        )
        proto.ir_version = 8  # readable by every ONNX Runtime since 1.10
        return proto

    def functional(self, model: Any) -> str:
        """A functional model's layers in order, each on the ONNX names of its inputs."""
        names: dict[int, str] = {id(model.inputs[0]): INPUT_NAME}
        for layer in model.layers:
            if type(layer).__name__ == "InputLayer":
                continue
            if len(layer._inbound_nodes) != 1:
                raise Unsupported("a layer called more than once")
            node = layer._inbound_nodes[0]
            inputs = [names.get(id(tensor)) for tensor in node.input_tensors]
            if None in inputs or len(node.output_tensors) != 1:
                raise Unsupported("an input from outside the model, or several outputs")
            if type(layer).__name__ in _MERGE_OPS:
                output = self.merge(layer, inputs)
            elif len(inputs) == 1:
                output = self.layer(layer, inputs[0])
            else:
                raise Unsupported("several inputs")
            names[id(node.output_tensors[0])] = output
        if id(model.outputs[0]) not in names:
            raise Unsupported("the output is not a layer's")
        return names[id(model.outputs[0])]

    # -- layers -----------------------------------------------------------------------------

    def merge(self, layer: Any, inputs: list[str]) -> str:
        kind = type(layer).__name__
        if kind == "Concatenate":
            return self.op("Concat", inputs, axis=int(layer.axis))
        op_type = _MERGE_OPS[kind]
        if op_type in ("Add", "Mul", "Sub"):  # binary in ONNX: folded left, as Keras does
            if kind == "Subtract" and len(inputs) != 2:
                raise Unsupported("Subtract of more than two")
            output = inputs[0]
            for other in inputs[1:]:
                output = self.op(op_type, [output, other])
            return output
        return self.op(op_type, inputs)

    def layer(self, layer: Any, x: str) -> str:
        kind = type(layer).__name__
        if kind in _IDENTITY_LAYERS:
            return x
        if kind == "Dense":
            return self.dense(layer, x)
        if kind in ("Conv1D", "Conv2D"):
            return self.conv(layer, x, rank=1 if kind == "Conv1D" else 2)
        if kind in ("MaxPooling1D", "MaxPooling2D", "AveragePooling1D", "AveragePooling2D"):
            return self.pool(
                layer,
                x,
                rank=int(kind[-2]),
                op_type="MaxPool" if kind.startswith("Max") else "AveragePool",
            )
        if kind in (
            "GlobalAveragePooling1D",
            "GlobalAveragePooling2D",
            "GlobalMaxPooling1D",
            "GlobalMaxPooling2D",
        ):
            return self.global_pool(
                layer, x, op_type="ReduceMean" if "Average" in kind else "ReduceMax"
            )
        if kind == "Flatten":
            return self.op("Flatten", [x], axis=1)
        if kind == "Reshape":
            target = [int(dim) for dim in layer.target_shape]
            if any(dim < 0 for dim in target):
                raise Unsupported("Reshape with -1")
            return self.op("Reshape", [x, self.const(np.asarray([-1, *target]), "shape", np.int64)])
        if kind == "BatchNormalization":
            return self.batch_norm(layer, x)
        if kind == "Activation":
            return self.activation(layer.activation, x)
        if (
            kind == "ReLU"
            and layer.max_value is None
            and float(layer.negative_slope) == 0
            and float(layer.threshold) == 0
        ):
            return self.op("Relu", [x])
        if kind == "Softmax" and layer.axis in (-1, len(layer.input.shape) - 1):
            return self.op("Softmax", [x], axis=-1)
        raise Unsupported(kind)

    def dense(self, layer: Any, x: str) -> str:
        kernel, *rest = [np.asarray(w) for w in layer.get_weights()]
        if getattr(layer, "lora_enabled", False) or getattr(layer, "quantization_mode", None):
            raise Unsupported("LoRA or quantized Dense")
        y = self.op("MatMul", [x, self.const(kernel, "kernel")])
        if layer.use_bias:
            y = self.op("Add", [y, self.const(rest[0], "bias")])
        return self.activation(layer.activation, y)

    def conv(self, layer: Any, x: str, rank: int) -> str:
        if (
            layer.data_format != "channels_last"
            or layer.groups != 1
            or layer.padding not in ("valid", "same")
        ):
            raise Unsupported("conv layout, groups or causal padding")
        kernel, *rest = [np.asarray(w) for w in layer.get_weights()]
        spatial = [int(dim) for dim in layer.input.shape[1:-1]]
        strides, dilations = list(layer.strides), list(layer.dilation_rate)
        kernel_shape = list(kernel.shape[:rank])
        # Keras (k..., in, out) → ONNX (out, in, k...)
        weights = np.transpose(kernel, (rank + 1, rank, *range(rank)))
        inputs = [self.to_channels_first(x, rank), self.const(weights, "kernel")]
        if layer.use_bias:
            inputs.append(self.const(rest[0], "bias"))
        pads = _pads(layer.padding, spatial, kernel_shape, strides, dilations)
        y = self.op(
            "Conv",
            inputs,
            kernel_shape=kernel_shape,
            strides=strides,
            dilations=dilations,
            pads=pads,
        )
        return self.activation(layer.activation, self.to_channels_last(y, rank))

    def pool(self, layer: Any, x: str, rank: int, op_type: str) -> str:
        if layer.data_format != "channels_last" or layer.padding not in ("valid", "same"):
            raise Unsupported("pool layout")
        spatial = [int(dim) for dim in layer.input.shape[1:-1]]
        size, strides = list(layer.pool_size), list(layer.strides)
        pads = _pads(layer.padding, spatial, size, strides, [1] * rank)
        y = self.op(
            op_type,
            [self.to_channels_first(x, rank)],
            kernel_shape=size,
            strides=strides,
            pads=pads,
        )
        return self.to_channels_last(y, rank)

    def global_pool(self, layer: Any, x: str, op_type: str) -> str:
        if layer.data_format != "channels_last":
            raise Unsupported("pool layout")
        rank = len(layer.input.shape) - 2
        return self.op(
            op_type, [x], axes=list(range(1, rank + 1)), keepdims=int(bool(layer.keepdims))
        )

    def batch_norm(self, layer: Any, x: str) -> str:
        axis = (
            layer.axis
            if isinstance(layer.axis, int)
            else (layer.axis[0] if len(layer.axis) == 1 else None)
        )
        if axis not in (-1, len(layer.input.shape) - 1):
            raise Unsupported("BatchNormalization on another axis")
        weights = {
            w.path.split("/")[-1]: np.asarray(w.numpy(), dtype=np.float64) for w in layer.weights
        }
        inverse = 1.0 / np.sqrt(weights["moving_variance"] + layer.epsilon)
        scale = inverse * weights.get("gamma", 1.0)
        shift = weights.get("beta", 0.0) - weights["moving_mean"] * scale
        y = self.op(
            "Mul", [x, self.const(np.broadcast_to(scale, weights["moving_mean"].shape), "scale")]
        )
        return self.op(
            "Add", [y, self.const(np.broadcast_to(shift, weights["moving_mean"].shape), "shift")]
        )

    def activation(self, function: Any, x: str) -> str:
        name = getattr(function, "__name__", None)
        simple = {
            "relu": "Relu",
            "sigmoid": "Sigmoid",
            "tanh": "Tanh",
            "elu": "Elu",
            "selu": "Selu",
            "softplus": "Softplus",
            "softsign": "Softsign",
            "exponential": "Exp",
        }
        if function is None or name == "linear":
            return x
        if name in simple:
            return self.op(simple[name], [x])
        if name == "softmax":
            return self.op("Softmax", [x], axis=-1)
        if name in ("swish", "silu"):
            return self.op("Mul", [x, self.op("Sigmoid", [x])])
        if name == "relu6":
            return self.op(
                "Clip", [x, self.const(np.asarray(0.0), "zero"), self.const(np.asarray(6.0), "six")]
            )
        if name == "leaky_relu":
            return self.op("LeakyRelu", [x], alpha=0.2)
        if name == "gelu":  # Keras' default is the exact (erf) form
            half = self.const(np.asarray(0.5), "half")
            erf = self.op(
                "Erf", [self.op("Mul", [x, self.const(np.asarray(1 / math.sqrt(2)), "rsqrt2")])]
            )
            return self.op(
                "Mul",
                [
                    self.op("Mul", [x, half]),
                    self.op("Add", [erf, self.const(np.asarray(1.0), "one")]),
                ],
            )
        raise Unsupported(f"activation {name}")

    def to_channels_first(self, x: str, rank: int) -> str:
        return self.op("Transpose", [x], perm=[0, rank + 1, *range(1, rank + 1)])

    def to_channels_last(self, x: str, rank: int) -> str:
        return self.op("Transpose", [x], perm=[0, *range(2, rank + 2), 1])


def _pads(
    padding: str, spatial: list[int], kernel: list[int], strides: list[int], dilations: list[int]
) -> list[int]:
    """ONNX ``pads`` (all begins, then all ends) that reproduce Keras' ``valid``/``same``."""
    if padding == "valid":
        return [0] * (2 * len(spatial))
    begins, ends = [], []
    for size, k, s, d in zip(spatial, kernel, strides, dilations, strict=True):
        total = max((math.ceil(size / s) - 1) * s + (k - 1) * d + 1 - size, 0)
        begins.append(total // 2)
        ends.append(total - total // 2)
    return begins + ends
