"""Prediction: one decoder, one surprise count, TensorFlow-free start, bit-for-bit features,
ONNX = Keras on every example."""

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
from cnncli.runs import open_run
from cnncli.serve import batch
from cnncli.serve.evaluate import evaluate_run, evaluation_data
from cnncli.serve.predictor import Predictions, Predictor, Surprises, decode, labels_of
from cnncli.serve.rows import parse_input, rows_to_columns

HEAVY = ("tensorflow", "keras", "jax", "pandas", "sklearn")

PRE = Preprocessor(
    features=(
        FeatureTransform("x1", "numeric", minimum=0.0, maximum=10.0),
        FeatureTransform("color", "categorical", categories=("blue", "red")),
    ),
    label=LabelTransform("onehot", "label", ("a", "b")),
    input_shape=(3,),
)


# ---------------------------------------------------------------------------------------------
# Decoding and surprises: no model needed


def test_decode_gives_indices_and_probabilities_or_values_in_label_units():
    onehot = LabelTransform("onehot", "y", ("a", "b"))
    picked, probabilities = decode(onehot, np.array([[0.2, 0.8], [0.9, 0.1]], dtype=np.float32))
    assert labels_of(onehot, picked) == ["b", "a"]
    assert probabilities.dtype == np.float64 and probabilities.shape == (2, 2)
    binary = LabelTransform("binary", "y", ("no", "yes"))
    picked, probabilities = decode(binary, np.array([[0.7], [0.2]]))
    assert labels_of(binary, picked) == ["yes", "no"]
    np.testing.assert_allclose(probabilities, [[0.3, 0.7], [0.8, 0.2]])
    standard = LabelTransform("standard", "y", center=20.0, scale=10.0)
    values, probabilities = decode(standard, np.array([[1.0], [-0.5]]))
    assert labels_of(standard, values) == [30.0, 15.0] and probabilities is None


def test_surprises_count_over_chunks_with_the_smallest_examples():
    surprises = Surprises(PRE)
    surprises.add({"x1": np.array([-1.0, 5.0, np.nan]), "color": np.array(["red", "zz", "pink"])})
    surprises.add({"x1": np.array([11.0]), "color": np.array(["aa"], dtype=object)})
    assert surprises.notes() == [
        "x1: 2 value(s) outside the training range [0, 10]",
        "column 'color': 3 value(s) not seen in training (e.g. 'aa', 'pink', 'zz')"
        " encoded as all zeros",
    ]
    assert Surprises(PRE).notes() == []
    long = Surprises(PRE)  # a 1 MB cell sent to serve came back whole in its warnings
    long.add({"x1": np.array([1.0]), "color": np.array(["q" * 1_000_000], dtype=object)})
    assert long.notes() == [
        f"column 'color': 1 value(s) not seen in training (e.g. '{'q' * 58}… (1000002"
        " characters)) encoded as all zeros"
    ]


def test_predictions_json_has_one_entry_per_input():
    result = Predictions(
        labels=["b"],
        probabilities=np.array([[0.25, 0.75]]),
        classes=("a", "b"),
        backend="onnx",
        inputs=["x1=3,color=red"],
    )
    assert result.to_json() == {
        "predictions": [
            {"input": "x1=3,color=red", "label": "b", "probabilities": {"a": 0.25, "b": 0.75}}
        ],
        "backend": "onnx",
    }
    regression = Predictions(labels=[1.5], probabilities=None, classes=(), inputs=["1"])
    assert regression.to_json()["predictions"] == [{"input": "1", "label": 1.5}]


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


@pytest.mark.slow
def test_a_new_row_with_a_date_predicts_as_the_keras_model_does(runner, cars_run):
    """A date column and dropped ID and name columns: predict (ONNX, no TensorFlow) on a row
    it never saw, with a time after the date, gives the Keras model's value."""
    from cnncli.config.models import config_from_dict
    from cnncli.runs import load_keras_model

    run = open_run(cars_run)
    assert run.onnx_ok and [f.kind for f in run.preprocessor.features] == [
        "date",
        "numeric",
        "categorical",
    ]
    assert run.preprocessor.input_width == 11  # 7 date inputs, km, 3 colours
    text = "sold=2019-07-14T08:30,km=120.5,colour=blue"
    result = runner.invoke(cli, ["predict", str(cars_run), "--input", text, "--json"])
    assert result.exit_code == 0, result.output
    (row,) = json.loads(result.stdout)["predictions"]

    config = config_from_dict(run.config, cars_run)
    assert config.data.columns == {"id": "drop", "name": "drop", "sold": "date"}
    pre = run.preprocessor
    columns = {
        "sold": np.asarray([18091.0]),
        "km": np.asarray([120.5]),
        "colour": np.asarray(["blue"], dtype=object),
    }
    keras_out = load_keras_model(run).predict(transform_features(pre, columns), verbose=0)
    expected = float(keras_out[0, 0]) * pre.label.scale + pre.label.center
    assert row["label"] == pytest.approx(expected, abs=1e-4)
    empty = runner.invoke(cli, ["predict", str(cars_run), "--input", ",5,red"])
    assert empty.exit_code == 0, empty.output  # missing: mean fills an empty date
    bad = runner.invoke(cli, ["predict", str(cars_run), "--input", "14.7.2019,5,red"])
    assert bad.exit_code == 2
    assert (
        bad.stderr.strip()
        .splitlines()[-1]
        .endswith(
            "column 'sold': date column holds '14.7.2019', not a YYYY-MM-DD date;"
            " give a date, YYYY-MM-DD"
        )
    )


@pytest.mark.slow
def test_predict_file_with_a_bad_date_skips_that_row(runner, cars_run, tmp_path):
    source = tmp_path / "new.csv"
    source.write_text(
        "id,sold,km,colour\nA,2019-07-14,10,red\nB,July,10,red\nC,2020-01-01,5,blue\n"
    )
    result = runner.invoke(
        cli, ["predict", str(cars_run), "--input-file", str(source), "--skip-bad-rows"]
    )
    assert result.exit_code == 2, result.output  # rows were skipped
    assert [line.split(",")[0] for line in result.stdout.splitlines()] == ["id", "A", "C"]
    assert f"{source}:3: column 'sold': date column holds 'July', not a YYYY-MM-DD date" in (
        result.stderr
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
@pytest.mark.parametrize("name", ["seed_run", "iris_run", "mixed_run", "cars_run"])
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
    parsed = [parse_input(pre, text, run.config["data"]["missing"]) for text in texts]
    from_input = transform_features(pre, rows_to_columns(pre, parsed))
    assert np.array_equal(from_input, expected)

    # --input-file: the streaming reader, in small chunks
    monkeypatch.setattr(batch, "CHUNK_BYTES", 256)
    source = tmp_path / "rows.csv"
    source.write_text("\n".join([lines[0]] + [lines[row + 1] for row in rows]) + "\n")
    with source.open("rb") as handle:
        layout = batch.read_layout(handle, source, pre, run.config)
        chunks = list(batch.parse_blocks(handle, layout))
    columns = {n: np.concatenate([c.columns[n] for c in chunks]) for n in pre.feature_names}
    assert np.array_equal(transform_features(pre, columns), expected)


# ---------------------------------------------------------------------------------------------
# ONNX and Keras agree on every example config's test split; so does evaluate


@pytest.mark.slow
def test_onnx_and_keras_agree_on_every_example_test_split(example_runs, cars_run):
    for name, run_dir in sorted({**example_runs, "cars (date, drop)": cars_run}.items()):
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


def test_surprises_do_not_count_an_empty_category_as_unseen():
    # an empty cell under missing: mean is encoded as zeros by design, as in training
    surprises = Surprises(PRE)
    surprises.add({"x1": np.array([1.0, 2.0]), "color": np.array(["red", np.nan], dtype=object)})
    assert surprises.notes() == []
