"""Prediction: TensorFlow-free start, bit-for-bit features, ONNX = Keras on every example."""

from __future__ import annotations

import csv
import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from cnncli.cli import cli
from cnncli.data.preprocess import (
    FeatureTransform,
    LabelTransform,
    Preprocessor,
    transform_features,
)
from cnncli.errors import CnnCliError
from cnncli.runs import open_run
from cnncli.serve import batch
from cnncli.serve.predictor import (
    Predictor,
    evaluate_run,
    evaluation_data,
    parse_input,
    rows_to_columns,
)

HEAVY = ("tensorflow", "keras", "jax", "pandas", "sklearn")

PRE = Preprocessor(
    features=(
        FeatureTransform("x1", "numeric", center=1.0, scale=2.0),
        FeatureTransform("x2", "numeric"),
        FeatureTransform("x3", "numeric"),
    ),
    label=LabelTransform("onehot", "label", ("a", "b")),
    input_shape=(3,),
)


# ---------------------------------------------------------------------------------------------
# --input parsing: no model needed


def test_input_in_feature_order_or_by_name():
    assert parse_input(PRE, "3,30,5") == {"x1": 3.0, "x2": 30.0, "x3": 5.0}
    assert parse_input(PRE, "x3=5, x1=3,x2=30") == {"x1": 3.0, "x2": 30.0, "x3": 5.0}


def test_wrong_count_names_the_features():
    with pytest.raises(CnnCliError) as caught:
        parse_input(PRE, "3,30")
    assert caught.value.message == "got 2 value(s), the model expects 3: x1, x2, x3"


def test_unknown_name_suggests_the_closest_or_lists_the_features():
    with pytest.raises(CnnCliError, match="unknown feature 'x1x'") as caught:
        parse_input(PRE, "x1x=1,x2=2,x3=3")
    assert caught.value.hint == "did you mean 'x1'?"
    with pytest.raises(CnnCliError, match="unknown feature 'speed'") as caught:
        parse_input(PRE, "speed=1,x2=2,x3=3")
    assert caught.value.hint == "features are: x1, x2, x3"


@pytest.mark.parametrize(
    ("text", "message"), [("1,abc,3", "expects a number"), ("1,inf,3", "is inf")]
)
def test_values_must_be_finite_numbers(text, message):
    with pytest.raises(CnnCliError, match=message):
        parse_input(PRE, text)


# ---------------------------------------------------------------------------------------------
# A cold `predict` imports no heavy library


def imported_by(args: list[str]) -> list[str]:
    code = (
        "import sys\nfrom cnncli.cli import cli\n"
        f"try:\n    cli({args!r})\n"
        "except SystemExit as exit:\n    assert not exit.code, exit.code\n"
        f"print(sorted(m for m in {HEAVY!r} if m in sys.modules))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1].replace("'", '"'))


@pytest.mark.slow
def test_predict_input_imports_no_tensorflow_keras_pandas_or_sklearn(seed_run):
    assert open_run(seed_run).onnx_ok
    assert imported_by(["predict", str(seed_run), "--input", "3,30,5"]) == []


@pytest.mark.slow
def test_predict_prints_label_and_confidences(runner, seed_run):
    result = runner.invoke(
        cli, ["predict", str(seed_run), "--input", "3,30,5"], catch_exceptions=False
    )
    assert re.fullmatch(
        r"3,30,5 → low  \(high: 0\.\d{3}  low: 0\.\d{3}  medium: 0\.\d{3}\)\n", result.stdout
    )
    data = json.loads(
        runner.invoke(
            cli, ["predict", str(seed_run), "--input", "x1=3,x2=30,x3=5", "--json"]
        ).stdout
    )
    assert data["backend"] == "onnx"
    assert data["predictions"][0]["label"] == "low"
    assert sum(data["predictions"][0]["probabilities"].values()) == pytest.approx(1, abs=1e-5)


@pytest.mark.slow
def test_unseen_category_is_a_warning_not_a_crash(runner, mixed_run):
    result = runner.invoke(
        cli,
        ["predict", str(mixed_run), "--input", "x1=1,color=purple,x2=3"],
        catch_exceptions=False,
    )
    assert result.exit_code == 0
    assert result.stdout.startswith("x1=1,color=purple,x2=3 → ")
    assert (
        "column 'color': 1 value(s) not seen in training (e.g. 'purple') encoded as all zeros"
        in result.stderr
    )


# ---------------------------------------------------------------------------------------------
# Bit for bit: the predict paths build exactly the training path's model inputs


def training_features(run_dir: Path) -> tuple[np.ndarray, np.ndarray]:
    """x_test from the training code itself, and the test rows' numbers in the data file."""
    from cnncli.config.models import config_from_dict
    from cnncli.data.split import stored_test_rows
    from cnncli.train.feed import prepare_data

    run = open_run(run_dir)
    config = config_from_dict(run.config, run_dir, file=str(run_dir / "config.yaml"))
    prepared = prepare_data(config, run.config["seed"])
    split = json.loads((run_dir / "split.json").read_text())
    rows = stored_test_rows(split, split["rows"])
    return prepared.x_test.reshape(len(prepared.x_test), -1), rows


@pytest.mark.slow
@pytest.mark.parametrize("name", ["seed_run", "iris_run", "mixed_run"])
def test_predict_paths_give_the_training_features_bit_for_bit(name, request, tmp_path, monkeypatch):
    run_dir = request.getfixturevalue(name)
    expected, rows = training_features(run_dir)
    run = open_run(run_dir)
    pre = run.preprocessor
    data_path = Path(run.config["data"]["path"])
    if not data_path.is_absolute():
        data_path = run_dir / data_path
    lines = data_path.read_text().splitlines()
    header = next(csv.reader([lines[0]]))
    records = [next(csv.reader([lines[row + 1]])) for row in rows]

    # --input: name=value pairs through parse_input
    texts = [
        ",".join(f"{h}={v}" for h, v in zip(header, r, strict=True) if h in pre.feature_names)
        for r in records
    ]
    parsed = [parse_input(pre, text) for text in texts]
    from_input = transform_features(pre, rows_to_columns(pre, parsed))
    assert np.array_equal(from_input, expected)

    # --input-file: the streaming reader, in small chunks
    monkeypatch.setattr(batch, "CHUNK_BYTES", 256)
    source = tmp_path / "rows.csv"
    source.write_text("\n".join([lines[0]] + [lines[row + 1] for row in rows]) + "\n")
    with source.open("rb") as handle:
        layout = batch.read_layout(handle, source, pre, run.config)
        chunks = list(batch.parse_blocks(handle, source, layout))
    columns = {n: np.concatenate([c.columns[n] for c in chunks]) for n in pre.feature_names}
    assert np.array_equal(transform_features(pre, columns), expected)


# ---------------------------------------------------------------------------------------------
# ONNX and Keras agree on every example config's test split; so does evaluate


@pytest.mark.slow
def test_onnx_and_keras_agree_on_every_example_test_split(example_runs):
    for name, run_dir in sorted(example_runs.items()):
        run = open_run(run_dir)
        assert run.onnx_ok, (name, run.manifest.get("onnx"))
        features, _, _ = evaluation_data(run, None)
        x = transform_features(run.preprocessor, features)
        onnx_out = Predictor(run, "onnx").outputs(x)
        keras_out = Predictor(run, "keras").outputs(x)
        assert np.max(np.abs(onnx_out - keras_out)) <= 1e-5, name
        if run.preprocessor.label.is_classification and onnx_out.shape[1] > 1:
            assert np.array_equal(onnx_out.argmax(1), keras_out.argmax(1)), name
        by_onnx = evaluate_run(run, backend="onnx").metrics
        by_keras = evaluate_run(run, backend="keras").metrics
        if "accuracy" in by_onnx:
            assert by_onnx["accuracy"] == by_keras["accuracy"], name
        for metric, value in by_onnx.items():
            assert value == pytest.approx(by_keras[metric], abs=1e-4), (name, metric)


@pytest.mark.slow
def test_evaluate_gives_the_same_accuracy_through_either_backend(runner, iris_run):
    scores = {}
    for backend in ("onnx", "keras"):
        result = runner.invoke(
            cli, ["evaluate", str(iris_run), "--backend", backend, "--json"], catch_exceptions=False
        )
        data = json.loads(result.stdout)
        assert data["backend"] == backend
        scores[backend] = data["metrics"]["accuracy"]
    assert scores["onnx"] == scores["keras"] >= 0.9
