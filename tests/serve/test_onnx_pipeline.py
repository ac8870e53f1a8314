"""`cnncli export --with-preprocessing`: plain ONNX Runtime on raw rows gives what predict gives."""

from __future__ import annotations

import csv
import json
import os
from dataclasses import replace
from pathlib import Path

import numpy as np
import onnx
import onnxruntime
import pytest
import yaml

from cnncli.cli import cli
from cnncli.data.preprocess import Preprocessor
from cnncli.errors import CnnCliError
from cnncli.serve.export import METADATA_PREPROCESS, METADATA_RECIPE
from cnncli.serve.onnx_pipeline import pipeline_onnx
from tests.conftest import DATA, base_config, cars_rows, mixed_rows

pytestmark = pytest.mark.slow
#: The date columns of the runs below (``cars_run``'s sale date).
DATE_COLUMNS = {"sold"}


def run_like_a_server(model: Path, rows: list[dict[str, str]]) -> list[np.ndarray]:
    """What a server in another language does: ONNX Runtime alone on the CSV's raw cells
    (numbers as float64, an empty cell as NaN; text without leading spaces, as a CSV reader that
    skips them gives it)."""
    session = onnxruntime.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    feeds = {}
    for given in session.get_inputs():
        cells = [row[given.name] for row in rows]
        if given.type == "tensor(string)":
            feeds[given.name] = np.asarray([c.lstrip() for c in cells], dtype=object)
        elif given.name in DATE_COLUMNS:  # what a client does: a date as its day number
            epoch = np.datetime64("1970-01-01")
            days = [(np.datetime64(c) - epoch).astype(float) if c else np.nan for c in cells]
            feeds[given.name] = np.asarray(days, dtype=np.float64)
        else:
            feeds[given.name] = np.asarray([float(c) if c else np.nan for c in cells])
    return session.run(None, feeds)


def export_pipeline(runner, run: Path, target: Path) -> None:
    result = runner.invoke(
        cli,
        ["export", str(run), "--with-preprocessing", "--output", str(target)],
        catch_exceptions=False,
    )
    assert (result.exit_code, result.stdout) == (0, f"{target}\n")


def predicted(runner, run: Path, data: Path) -> list[dict]:
    result = runner.invoke(
        cli, ["predict", str(run), "--input-file", str(data), "--json"], catch_exceptions=False
    )
    assert result.exit_code == 0, result.stderr
    return json.loads(result.stdout)["predictions"]


def assert_same_as_predict(runner, run: Path, data: Path, tmp_path: Path) -> list[np.ndarray]:
    """Export, run both ways on the rows of ``data``, compare labels and probabilities."""
    target = tmp_path / "pipeline.onnx"
    export_pipeline(runner, run, target)
    with data.open(newline="") as stream:
        rows = list(csv.DictReader(stream))
    outputs = run_like_a_server(target, rows)
    expected = predicted(runner, run, data)
    assert outputs[0].tolist() == [row["label"] for row in expected]
    if "probabilities" in expected[0]:
        classes = list(expected[0]["probabilities"])
        probabilities = [[row["probabilities"][c] for c in classes] for row in expected]
        np.testing.assert_allclose(outputs[1], probabilities, rtol=0, atol=1e-6)
    return outputs


def test_a_classifier_gives_predicts_labels_and_probabilities(runner, seed_run, tmp_path):
    data = tmp_path / "seed.csv"
    data.write_text("".join((DATA / "seed.csv").read_text().splitlines(True)[:301]))
    labels, probabilities = assert_same_as_predict(runner, seed_run, data, tmp_path)
    assert probabilities.shape == (300, 3) and probabilities.dtype == np.float64
    assert set(labels.tolist()) <= {"low", "medium", "high"}
    session = onnxruntime.InferenceSession(str(tmp_path / "pipeline.onnx"))
    assert [(i.name, i.type) for i in session.get_inputs()] == [
        ("x1", "tensor(double)"),
        ("x2", "tensor(double)"),
        ("x3", "tensor(double)"),
    ]
    model = onnx.load(str(tmp_path / "pipeline.onnx"))
    assert "The graph holds the preprocessing" in metadata(model)[METADATA_RECIPE]
    order = json.loads(metadata(model)[METADATA_PREPROCESS])["label"]["classes"]
    assert model.graph.output[1].doc_string == (
        f"float64: one column per class, in this order: {json.dumps(order)}"
    )


def metadata(model) -> dict[str, str]:
    return {prop.key: prop.value for prop in model.metadata_props}


def test_categories_and_missing_fills_are_inside_the_graph(runner, mixed_run, tmp_path):
    """Empty numeric cells take the training mean; an empty or unseen category is all zeros."""
    lines = mixed_rows(40, seed=3).splitlines()
    lines += [",red,1.5,no", "0.5,,,yes", "0.2,purple,-3,no", ",,,no"]
    data = tmp_path / "mixed.csv"
    data.write_text("\n".join(lines) + "\n")
    pre = Preprocessor.from_json((mixed_run / "preprocess.json").read_text())
    assert [(f.kind, f.fill is not None) for f in pre.features] == [
        ("numeric", True),
        ("categorical", False),
        ("numeric", True),
    ]
    labels, _ = assert_same_as_predict(runner, mixed_run, data, tmp_path)
    session = onnxruntime.InferenceSession(str(tmp_path / "pipeline.onnx"))
    assert [i.type for i in session.get_inputs()] == [
        "tensor(double)",
        "tensor(string)",
        "tensor(double)",
    ]
    assert len(labels) == 44


def test_a_regressor_gives_values_in_the_labels_units(runner, minimal_regression_run, tmp_path):
    data = tmp_path / "diabetes.csv"
    data.write_text("".join((DATA / "diabetes.csv").read_text().splitlines(True)[:101]))
    (values,) = assert_same_as_predict(runner, minimal_regression_run, data, tmp_path)
    # in the label's units (disease progression 25-346), not standardised around 0
    assert values.dtype == np.float64 and 20 < values.mean() < 350


@pytest.fixture(scope="module")
def binary_run(tmp_path_factory) -> Path:
    """A sigmoid classifier of integer classes 0/1, minmax-scaled, with a categorical column."""
    from cnncli.config.models import load_config
    from cnncli.train.run import train_run

    folder = tmp_path_factory.mktemp("binary")
    text = mixed_rows(80).replace(",yes\n", ",1\n").replace(",no\n", ",0\n")
    (folder / "binary.csv").write_text(text)
    config = base_config(
        folder / "binary.csv",
        preprocess={"features": "minmax"},
        compile={"optimizer": "adam", "loss": "binary_crossentropy", "metrics": ["accuracy"]},
    )
    config["model"]["layers"][-1] = {"type": "Dense", "units": 1, "activation": "sigmoid"}
    (folder / "binary.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    return train_run(load_config(folder / "binary.yaml"), folder / "runs").run_dir


def test_a_binary_classifier_gives_integer_classes(runner, binary_run, tmp_path):
    data = tmp_path / "binary.csv"
    data.write_text(mixed_rows(30, seed=5).replace(",yes\n", ",1\n").replace(",no\n", ",0\n"))
    label = Preprocessor.from_json((binary_run / "preprocess.json").read_text()).label
    assert (label.kind, label.classes) == ("binary", (0, 1))
    labels, probabilities = assert_same_as_predict(runner, binary_run, data, tmp_path)
    assert labels.dtype == np.int64 and set(labels.tolist()) <= {0, 1}
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0)
    assert labels.tolist() == (probabilities[:, 1] >= 0.5).astype(int).tolist()


def test_dates_come_in_as_day_numbers_and_are_taken_apart_inside(runner, cars_run, tmp_path):
    """A regression on a date (an empty one filled), a number and a colour; ID and name dropped."""
    data = tmp_path / "cars.csv"
    data.write_text(cars_rows(60, seed=4, empty_date_at=7).replace("2015-", "1969-", 5))
    (prices,) = assert_same_as_predict(runner, cars_run, data, tmp_path)
    assert prices.dtype == np.float64 and len(prices) == 60
    inputs = onnx.load(str(tmp_path / "pipeline.onnx")).graph.input
    assert [(i.name, i.doc_string.split(":")[0]) for i in inputs] == [
        ("sold", "float64"),
        ("km", "float64"),
        ("colour", "string"),
    ]
    assert "days since 1970-01-01" in inputs[0].doc_string


def test_only_onnx_takes_the_preprocessing(runner, tiny_run, tmp_path):
    result = runner.invoke(
        cli,
        ["export", str(tiny_run), "--format", "litert", "--with-preprocessing"],
    )
    assert result.exit_code == 2
    assert result.stderr == (
        "error: --with-preprocessing puts the preprocessing into an ONNX graph, not into litert;"
        " use --format onnx, or leave --with-preprocessing out\n"
    )


def test_it_never_writes_over_a_special_file_or_half_a_file(
    runner, tiny_run, tmp_path, monkeypatch
):
    fifo = tmp_path / "pipe.onnx"
    os.mkfifo(fifo)
    result = runner.invoke(
        cli, ["export", str(tiny_run), "--with-preprocessing", "--output", str(fifo)]
    )
    assert result.exit_code == 2
    assert result.stderr.startswith(f"error: {fifo}: is a pipe (FIFO), and export only writes")
    assert fifo.is_fifo()

    def no_space(*_args):
        raise OSError(28, "No space left on device")

    folder = tmp_path / "out"
    folder.mkdir()
    monkeypatch.setattr(os, "fsync", no_space)
    result = runner.invoke(
        cli, ["export", str(tiny_run), "--with-preprocessing", "--output", str(folder / "m.onnx")]
    )
    assert result.exit_code == 2
    assert result.stderr == (
        f"error: {folder / 'm.onnx'}: cannot write there: No space left on device;"
        " choose another --output\n"
    )
    assert list(folder.iterdir()) == []


@pytest.mark.parametrize("name", ["label", "probabilities", "model/input"])
def test_a_column_named_like_a_tensor_of_the_graph_is_refused(tiny_run, name):
    pre = Preprocessor.from_json((tiny_run / "preprocess.json").read_text())
    renamed = replace(pre, features=(replace(pre.features[0], name=name), *pre.features[1:]))
    with pytest.raises(CnnCliError, match=f"column '{name}' has the name of a tensor"):
        pipeline_onnx(onnx.load(str(tiny_run / "model.onnx")), renamed, str(tiny_run))


def test_the_graphs_calendar_is_numpys_on_every_day_from_year_1_to_9999():
    """Year, month, weekday and day of the year of 3.65 million days, as ``date_parts`` has them."""
    from onnx import TensorProto, helper

    from cnncli.data.preprocess import date_parts
    from cnncli.serve.onnx_pipeline import _Arithmetic, _civil_from_days
    from cnncli.serve.onnxgraph import _Graph

    writer = _Graph(None)
    arithmetic = _Arithmetic(writer)
    year, month, day_of_year = _civil_from_days(arithmetic, "days")
    weekday = arithmetic.mod(arithmetic.add("days", 3), 7)
    names = ["year", "month", "weekday", "day_of_year"]
    for name, tensor in zip(names, (year, month, weekday, day_of_year), strict=True):
        writer.nodes.append(helper.make_node("Identity", [tensor], [name]))
    graph = helper.make_graph(
        writer.nodes,
        "calendar",
        [helper.make_tensor_value_info("days", TensorProto.DOUBLE, ["n"])],
        [helper.make_tensor_value_info(name, TensorProto.DOUBLE, ["n"]) for name in names],
        writer.initializers,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    session = onnxruntime.InferenceSession(model.SerializeToString())
    days = np.arange(-719162, 2932897, dtype=np.float64)  # 0001-01-01 to 9999-12-31
    for got, expected in zip(session.run(None, {"days": days}), date_parts(days), strict=True):
        np.testing.assert_array_equal(got, expected)


def test_a_model_graph_older_than_opset_13_is_refused_in_one_line(tiny_run):
    model = onnx.load(str(tiny_run / "model.onnx"))
    model.opset_import[0].version = 12
    pre = Preprocessor.from_json((tiny_run / "preprocess.json").read_text())
    with pytest.raises(CnnCliError) as caught:
        pipeline_onnx(model, pre, str(tiny_run))
    assert str(caught.value).splitlines() == [
        f"{tiny_run}: model.onnx uses ONNX opset 12; the graph around it needs 13 or newer;"
        " retrain the run with this cnncli, or export without --with-preprocessing"
    ]
