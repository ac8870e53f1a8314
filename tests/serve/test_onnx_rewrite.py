"""ONNX graph rewriting: exact, and the op patterns ONNX Runtime runs fast."""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from cnncli.serve.onnx_rewrite import simplify_onnx
from cnncli.serve.onnxrun import OnnxModel

RNG = np.random.default_rng(0)


def make_model(nodes, inputs, output, shape, initializers, opset=15):
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, inputs)],
        [helper.make_tensor_value_info(output, TensorProto.FLOAT, shape)],
        [numpy_helper.from_array(np.asarray(v), k) for k, v in initializers.items()],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def outputs(model, x, tmp_path, name):
    path = tmp_path / name
    onnx.save(model, str(path))
    return OnnxModel(path).predict(x)


def simplified(model, x, tmp_path):
    """Run before and after simplify_onnx; return the new op types, checking equal outputs."""
    before = outputs(model, x, tmp_path, "before.onnx")
    after_model = simplify_onnx(onnx.ModelProto.FromString(model.SerializeToString()))
    onnx.checker.check_model(after_model)
    after = outputs(after_model, x, tmp_path, "after.onnx")
    np.testing.assert_allclose(after, before, atol=1e-5)  # other kernels, other rounding
    assert [o.name for o in after_model.graph.output] == [o.name for o in model.graph.output]
    return [node.op_type for node in after_model.graph.node]


def test_tf2onnx_conv1d_pattern_becomes_fusable(tmp_path):
    """Conv → Squeeze → Add(bias) → Relu → Unsqueeze → MaxPool → Squeeze, as tf2onnx writes it."""
    nodes = [
        helper.make_node("Conv", ["x", "w"], ["c"], kernel_shape=[1, 3], pads=[0, 1, 0, 1]),
        helper.make_node("Squeeze", ["c", "axis"], ["s"]),
        helper.make_node("Add", ["s", "b"], ["a"]),
        helper.make_node("Relu", ["a"], ["r"]),
        helper.make_node("Unsqueeze", ["r", "axis"], ["u"]),
        helper.make_node("MaxPool", ["u"], ["m"], kernel_shape=[1, 2], strides=[1, 2]),
        helper.make_node("Squeeze", ["m", "axis"], ["y"]),
    ]
    weights = {
        "w": RNG.normal(size=(4, 1, 1, 3)).astype(np.float32),
        "b": RNG.normal(size=(1, 4, 1)).astype(np.float32),
        "axis": np.array([2], dtype=np.int64),
    }
    model = make_model(nodes, ["N", 1, 1, 3], "y", ["N", 4, 1], weights)
    x = RNG.normal(size=(50, 1, 1, 3)).astype(np.float32)
    assert simplified(model, x, tmp_path) == ["Conv", "Relu", "MaxPool", "Squeeze"]


def test_1d_conv_and_pooling_run_as_2d_with_transposes_cancelled(tmp_path):
    """A channels-last 1-D stack: Transpose → Conv1D → Transpose → Relu → Transpose → MaxPool."""
    nodes = [
        helper.make_node("Transpose", ["x"], ["t1"], perm=[0, 2, 1]),
        helper.make_node("Conv", ["t1", "w", "b"], ["c"], kernel_shape=[3], pads=[1, 1]),
        helper.make_node("Transpose", ["c"], ["t2"], perm=[0, 2, 1]),
        helper.make_node("Relu", ["t2"], ["r"]),
        helper.make_node("Transpose", ["r"], ["t3"], perm=[0, 2, 1]),
        helper.make_node("MaxPool", ["t3"], ["m"], kernel_shape=[2], strides=[2]),
        helper.make_node("Transpose", ["m"], ["y"], perm=[0, 2, 1]),
    ]
    weights = {
        "w": RNG.normal(size=(5, 2, 3)).astype(np.float32),
        "b": RNG.normal(size=(5,)).astype(np.float32),
    }
    model = make_model(nodes, ["N", 6, 2], "y", ["N", 3, 5], weights)
    x = RNG.normal(size=(40, 6, 2)).astype(np.float32)
    ops = simplified(model, x, tmp_path)
    assert ops == ["Transpose", "Unsqueeze", "Conv", "Relu", "MaxPool", "Squeeze", "Transpose"]


def test_rewrites_leave_unrelated_graphs_alone(tmp_path):
    nodes = [
        helper.make_node("MatMul", ["x", "w"], ["h"]),
        helper.make_node("Add", ["h", "b"], ["a"]),
        helper.make_node("Softmax", ["a"], ["y"]),
    ]
    weights = {"w": RNG.normal(size=(3, 4)).astype(np.float32), "b": np.zeros(4, np.float32)}
    model = make_model(nodes, ["N", 3], "y", ["N", 4], weights)
    x = RNG.normal(size=(10, 3)).astype(np.float32)
    assert simplified(model, x, tmp_path) == ["MatMul", "Add", "Softmax"]
