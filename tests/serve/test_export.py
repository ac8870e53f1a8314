"""ONNX graph simplification (exact, faster) and `cnncli export` to ONNX, SavedModel and LiteRT."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import warnings

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from cnncli.cli import cli
from cnncli.serve.export import METADATA_PREPROCESS, METADATA_RECIPE, simplify_onnx
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


# ---------------------------------------------------------------------------------------------
# cnncli export


def preprocess_like_a_client(meta: dict, row: list[float]) -> np.ndarray:
    """What the recipe in the metadata tells a client in any language to do."""
    values = [(v - f["center"]) / f["scale"] for v, f in zip(row, meta["features"], strict=True)]
    return np.asarray(values, dtype=np.float64).astype(np.float32).reshape(1, *meta["input_shape"])


@pytest.mark.slow
def test_export_onnx_carries_the_preprocessing(runner, seed_run, tmp_path):
    target = tmp_path / "seed.onnx"
    result = runner.invoke(
        cli, ["export", str(seed_run), "--output", str(target)], catch_exceptions=False
    )
    assert (result.exit_code, result.stdout) == (0, f"{target}\n")
    model = onnx.load(str(target))
    meta = {prop.key: prop.value for prop in model.metadata_props}
    preprocess = json.loads(meta[METADATA_PREPROCESS])
    assert preprocess == json.loads((seed_run / "preprocess.json").read_text())
    assert "(value - center) / scale" in meta[METADATA_RECIPE]
    probabilities = OnnxModel(target).predict(preprocess_like_a_client(preprocess, [3, 30, 5]))
    shown = runner.invoke(cli, ["predict", str(seed_run), "--input", "3,30,5", "--json"])
    expected = json.loads(shown.stdout)["predictions"][0]["probabilities"]
    assert probabilities[0].tolist() == pytest.approx(
        [expected[c] for c in preprocess["label"]["classes"]]
    )


@pytest.mark.slow
def test_export_refuses_to_overwrite(runner, seed_run, tmp_path):
    target = tmp_path / "seed.onnx"
    target.write_text("mine")
    result = runner.invoke(cli, ["export", str(seed_run), "--output", str(target)])
    assert result.exit_code == 2
    assert (
        result.stderr == f"error: {target}: already exists; remove it or choose another --output\n"
    )
    assert target.read_text() == "mine"


@pytest.mark.slow
def test_export_onnx_of_a_run_without_checked_onnx_says_what_to_do(runner, seed_run, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(seed_run, run)
    manifest = json.loads((run / "manifest.json").read_text())
    manifest["onnx"] = {"checked": False, "reason": "Unsupported: a layer"}
    (run / "manifest.json").write_text(json.dumps(manifest))
    result = runner.invoke(cli, ["export", str(run), "--output", str(tmp_path / "m.onnx")])
    assert result.exit_code == 2
    assert result.stderr == (
        f"error: {run}: this run has no checked model.onnx (Unsupported: a layer);"
        " export --format saved_model or litert instead\n"
    )


@pytest.fixture(scope="module")
def tensorflow_exports(seed_run, tmp_path_factory):
    """`cnncli export` to LiteRT and SavedModel in a process of its own (Keras on TensorFlow;
    this test process may run Keras on JAX, which both converters refuse)."""
    folder = tmp_path_factory.mktemp("exports")
    code = (
        "import json\nfrom cnncli.cli import cli\nfor fmt, name in"
        " (('litert', 'seed.tflite'), ('saved_model', 'seed.saved_model')):\n"
        f"    cli(['export', {str(seed_run)!r}, '--format', fmt, '--output', {str(folder)!r} + '/'"
        " + name], standalone_mode=False)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    return folder, result.stdout.splitlines()


@pytest.mark.slow
def test_export_litert_agrees_with_onnx(seed_run, tensorflow_exports):
    import tensorflow as tf

    folder, printed = tensorflow_exports
    target, sidecar = folder / "seed.tflite", folder / "seed.tflite.preprocess.json"
    assert printed[:2] == [str(target), str(sidecar)]
    assert sidecar.read_text() == (seed_run / "preprocess.json").read_text()
    x = np.random.default_rng(1).normal(size=(1, 3, 1)).astype(np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tf.lite.Interpreter: "deprecated, use ai_edge_litert"
        interpreter = tf.lite.Interpreter(model_path=str(target))
    interpreter.allocate_tensors()
    interpreter.set_tensor(interpreter.get_input_details()[0]["index"], x)
    interpreter.invoke()
    got = interpreter.get_tensor(interpreter.get_output_details()[0]["index"])
    np.testing.assert_allclose(got, OnnxModel(seed_run / "model.onnx").predict(x), atol=1e-5)


@pytest.mark.slow
def test_export_saved_model_folder_with_preprocessing(seed_run, tensorflow_exports):
    folder, printed = tensorflow_exports
    target = folder / "seed.saved_model"
    assert printed[2:] == [str(target), str(target / "preprocess.json")]
    assert (target / "saved_model.pb").is_file()
    assert (target / "preprocess.json").read_text() == (seed_run / "preprocess.json").read_text()


@pytest.mark.slow
def test_export_litert_without_a_converter_says_what_to_install(
    runner, seed_run, tmp_path, monkeypatch
):
    import tensorflow as tf

    monkeypatch.delattr(tf, "lite")
    monkeypatch.setattr("cnncli.runtime.select_backend", lambda name: "tensorflow")
    result = runner.invoke(
        cli, ["export", str(seed_run), "--format", "litert", "--output", str(tmp_path / "m.tflite")]
    )
    assert result.exit_code == 2
    assert result.stderr == (
        "error: LiteRT export needs TensorFlow's TFLite converter, which this installation lacks;"
        " install it: pip install 'tensorflow-cpu>=2.18' (or 'cnncli[cpu]')\n"
    )
    assert not (tmp_path / "m.tflite").exists()
