"""A functional graph with shortcuts and blocks, end to end: it trains, its ONNX file matches
Keras, predict (without TensorFlow) and evaluate agree, a resume is bit-identical, and a straight
graph is the same model as the equivalent stack."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from cnncli.cli import cli
from cnncli.config.models import load_config
from cnncli.runs import MANIFEST_FILENAME, METRICS_FILENAME, open_run
from cnncli.serve.evaluate import evaluate_run, evaluation_data
from cnncli.serve.predictor import Predictor, predict_columns
from tests.conftest import base_config
from tests.serve.test_predictor import imported_by
from tests.train.conftest import assert_same_run, interrupt_then_resume

pytestmark = pytest.mark.slow

#: Conv → batch norm → ReLU, used twice by one entry (repeat: 2).
CONV_BN = {
    "params": ["filters"],
    "layers": [
        {"type": "Conv1D", "filters": "$filters", "kernel_size": 2, "padding": "same"},
        {"type": "BatchNormalization"},
        {"type": "Activation", "activation": "relu"},
    ],
}
#: A shortcut around two convolutions (Add), then the block's input joined on (Concatenate).
RESIDUAL_GRAPH = [
    {"name": "conv", "type": "Conv1D", "filters": 4, "kernel_size": 2, "padding": "same"},
    {"name": "body", "block": "conv_bn", "filters": 4, "repeat": 2},
    {"name": "join", "type": "Add", "inputs": ["body", "conv"]},
    {"name": "both", "type": "Concatenate", "inputs": ["join", "conv"]},
    {"type": "GlobalAveragePooling1D"},
    {"type": "Dense", "units": "auto", "activation": "softmax"},
]


def residual_config(csv: Path, epochs: int) -> dict[str, Any]:
    config = base_config(csv)
    config["model"] = {
        "input_shape": [3, 1],
        "blocks": {"conv_bn": CONV_BN},
        "graph": RESIDUAL_GRAPH,
    }
    config["fit"] = {"epochs": epochs, "batch_size": 8, "verbose": False}
    return config


def write(config: dict[str, Any], path: Path) -> Path:
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


@pytest.fixture(scope="module")
def residual_run(tmp_path_factory: pytest.TempPathFactory, resume_csv: Path) -> Path:
    from cnncli.train.run import train_run

    folder = tmp_path_factory.mktemp("residual")
    path = write(residual_config(resume_csv, epochs=3), folder / "residual.yaml")
    return train_run(load_config(path), folder / "runs").run_dir


def test_a_residual_graph_trains_a_functional_model_with_its_shortcuts(residual_run):
    from cnncli.runtime import import_keras

    keras = import_keras()
    model = keras.saving.load_model(residual_run / "model.keras", safe_mode=True)
    assert type(model).__name__ == "Functional"
    join = model.get_layer("join")
    taken = [
        tensor._keras_history.operation.name for tensor in join._inbound_nodes[0].input_tensors
    ]
    assert taken == ["body", "conv"]
    assert [type(layer).__name__ for layer in model.layers].count("BatchNormalization") == 2
    metrics = json.loads((residual_run / METRICS_FILENAME).read_text())
    assert metrics["test"]["accuracy"] > 0.6  # three well-apart clusters


def test_its_onnx_export_is_written_directly_and_matches_keras(residual_run):
    import onnx

    manifest = json.loads((residual_run / MANIFEST_FILENAME).read_text())
    assert manifest["onnx"]["checked"] is True
    assert manifest["onnx"]["max_abs_diff"] < 1e-5
    ops = {node.op_type for node in onnx.load(str(residual_run / "model.onnx")).graph.node}
    assert {"Add", "Concat", "ReduceMean"} <= ops  # the shortcut, the join, the global pooling
    run = open_run(residual_run)
    features, _, _ = evaluation_data(run, None)
    by_onnx = predict_columns(Predictor(run, backend="onnx"), features).probabilities
    by_keras = predict_columns(Predictor(run, backend="keras"), features).probabilities
    np.testing.assert_allclose(by_onnx, by_keras, atol=1e-5)


def test_predict_and_evaluate_agree_and_predict_needs_no_tensorflow(residual_run):
    run = open_run(residual_run)
    features, labels, _ = evaluation_data(run, None)
    predicted = predict_columns(Predictor(run), features).labels
    accuracy = float(np.mean([str(p) == str(t) for p, t in zip(predicted, labels, strict=True)]))
    assert accuracy == pytest.approx(evaluate_run(run).metrics["accuracy"])
    assert imported_by(["predict", str(residual_run), "--input", "3,30,5"]) == []


def test_an_interrupted_graph_run_resumes_bit_identical(
    residual_run, runner, monkeypatch, tmp_path, resume_csv
):
    path = write(residual_config(resume_csv, epochs=3), tmp_path / "residual.yaml")
    resumed = interrupt_then_resume(runner, monkeypatch, path, tmp_path / "resumed", epoch=1)
    assert_same_run(residual_run, resumed)  # the uninterrupted run of the same config


def test_a_straight_graph_is_the_same_model_as_the_stack(write_config, resume_csv):
    """Same layers, same names, same seed: the same weights."""
    from cnncli.model.build import build_model
    from cnncli.runtime import seed_everything

    stack = base_config(resume_csv)
    stack["model"] = {
        "input_shape": [3, 1],
        "layers": [
            {"type": "Conv1D", "filters": 4, "kernel_size": 2, "padding": "same"},
            {"type": "Dropout", "rate": 0.2},
            "Flatten",
            {"type": "Dense", "units": "auto", "activation": "softmax"},
        ],
    }
    graph = {**stack, "model": {"input_shape": [3, 1], "graph": stack["model"]["layers"]}}
    models = []
    for config in (stack, graph):
        seed_everything(0)
        models.append(build_model(load_config(write_config(config)), (3, 1), 3))
    as_stack, as_graph = models
    assert (type(as_stack).__name__, type(as_graph).__name__) == ("Sequential", "Functional")
    assert [layer.name for layer in as_stack.layers] == [
        layer.name for layer in as_graph.layers if type(layer).__name__ != "InputLayer"
    ]
    first, second = as_stack.get_weights(), as_graph.get_weights()
    assert len(first) == len(second) == 4
    assert all(np.array_equal(a, b) for a, b in zip(first, second, strict=True))
    seed_everything(1)
    other = build_model(load_config(write_config(stack)), (3, 1), 3).get_weights()
    assert not np.array_equal(other[0], first[0])  # the seed, not chance, made them equal


def test_summary_shows_the_graph_with_each_layers_inputs(runner, tmp_path, resume_csv):
    path = write(residual_config(resume_csv, epochs=1), tmp_path / "residual.yaml")
    result = runner.invoke(cli, ["summary", str(path)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    rows = {line.split("│")[2].strip(): line for line in result.stdout.splitlines() if "│" in line}
    assert "inputs" in result.stdout
    assert "body, conv" in rows["join"] and "(batch, 3, 4)" in rows["join"]
    assert "join, conv" in rows["both"] and "(batch, 3, 8)" in rows["both"]
    assert "input" in rows["conv"]


def test_a_graph_of_1000_nodes_builds_past_pythons_recursion_limit(tiny_csv, write_config, runner):
    # Keras walks a functional graph recursively: 1,000 nodes ended in a RecursionError (exit 1)
    raw = base_config(tiny_csv)
    head = raw["model"].pop("layers")[-1]
    raw["model"]["graph"] = [{"type": "Dense", "units": 2}] * 1000 + [head]
    result = runner.invoke(cli, ["validate", str(write_config(raw))])
    assert result.exit_code == 0, result.output
    assert "RecursionError" not in result.output
