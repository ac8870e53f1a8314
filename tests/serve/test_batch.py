"""Streaming file prediction: chunks, bad rows with line numbers, safe CSV, JSON, flat memory."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from cnncli.cli import cli
from cnncli.errors import CnnCliError
from cnncli.runs import open_run
from cnncli.serve import batch
from cnncli.serve.batch import predict_file
from cnncli.serve.predictor import Predictor
from cnncli.serve.rows import predict_rows
from tests.conftest import error_lines, seed_like_rows

# ---------------------------------------------------------------------------------------------
# predict_file on a trained seed run


def write_rows(path: Path, rows: int, seed: int = 1, extra: str = "") -> Path:
    """Seed-like feature rows (the label column dropped), optionally with a key column."""
    lines = seed_like_rows(rows, seed).splitlines()
    out = []
    for index, line in enumerate(lines):
        cells = line.split(",")[:3]
        if extra:
            cells = [extra if index == 0 else f"id{index}", *cells]
        out.append(",".join(cells))
    path.write_text("\n".join(out) + "\n")
    return path


@pytest.fixture(scope="module")
def seed_predictor(seed_run):
    return Predictor(open_run(seed_run), "onnx", threads=1)


@pytest.mark.slow
def test_file_predictions_equal_row_predictions(seed_predictor, tmp_path, monkeypatch):
    monkeypatch.setattr(batch, "CHUNK_BYTES", 1000)  # many chunks through the background reader
    source = write_rows(tmp_path / "in.csv", 300)
    summary = predict_file(seed_predictor, source, tmp_path / "out.csv")
    assert (summary.rows, summary.failed_rows) == (300, 0)
    rows = list(csv.DictReader(io.StringIO((tmp_path / "out.csv").read_text(), newline="")))
    texts = [line for line in source.read_text().splitlines()[1:]]
    expected = predict_rows(seed_predictor, texts)
    assert [row["row"] for row in rows] == [str(i) for i in range(300)]
    assert [row["predicted"] for row in rows] == expected.labels
    for k, name in enumerate(expected.classes):
        got = np.array([float(row[f"prob_{name}"]) for row in rows])
        assert got == pytest.approx(expected.probabilities[:, k], abs=5e-7)


@pytest.mark.slow
def test_key_columns_are_copied_and_the_label_column_ignored(seed_predictor, tmp_path):
    source = tmp_path / "in.csv"
    source.write_text("id,x1,x2,x3,label\n=cmd,2.5,25,6,low\n007,7.5,80,6.5,high\n")
    predict_file(seed_predictor, source, tmp_path / "out.csv")
    lines = (tmp_path / "out.csv").read_text().splitlines()
    assert lines[0] == "id,predicted,prob_high,prob_low,prob_medium"
    assert lines[1].startswith("'=cmd,low,")
    assert lines[2].startswith("007,high,")


@pytest.mark.slow
def test_bad_row_stops_with_its_line_and_leaves_no_output(seed_predictor, tmp_path):
    source = tmp_path / "in.csv"
    source.write_text("x1,x2,x3\n1,2,3\n4,five,6\n7,8,9\n")
    with pytest.raises(
        CnnCliError, match="column 'x2': numeric column holds text 'five'"
    ) as caught:
        predict_file(seed_predictor, source, tmp_path / "out.csv")
    assert caught.value.where.line == 3
    assert "--skip-bad-rows" in caught.value.hint
    assert list(tmp_path.iterdir()) == [source]


@pytest.mark.slow
def test_skip_bad_rows_reports_lines_across_chunks(seed_predictor, tmp_path, monkeypatch):
    monkeypatch.setattr(batch, "CHUNK_BYTES", 200)
    lines = ["id,x1,x2,x3"] + [f"r{i},{i % 9},{30 + i},{i % 7}" for i in range(60)]
    lines[10] = "r9,1,2"  # short
    lines[25] = "r24,1,2,3,4"  # long
    lines[40] = "r39,1,,3"  # empty cell
    lines[41] = "r40,1,nan,3"  # empty in pandas' eyes too
    lines[50] = 'r49,"1",2,inf'  # not finite
    lines[55] = '"r\n54",1,2,3'  # a quoted key across two lines: fine
    source = tmp_path / "in.csv"
    source.write_text("\n".join(lines) + "\n")
    seen = []
    summary = predict_file(
        seed_predictor, source, tmp_path / "out.csv", skip_bad_rows=True, on_bad_row=seen.append
    )
    assert summary.failed_rows == 5
    assert [(bad.line, bad.message) for bad in summary.bad_rows] == [
        (11, "expected 4 cells, got 3"),
        (26, "expected 4 cells, got 5"),
        (41, "column 'x2' is empty"),
        (42, "column 'x2': 'nan' reads as a missing value"),
        (51, "column 'x3': numeric column holds an infinite value"),
    ]
    assert seen == summary.bad_rows
    assert "5 bad row(s) skipped (line 11, 26, 41, 42, 51)" in summary.describe()
    out = list(csv.DictReader(io.StringIO((tmp_path / "out.csv").read_text(), newline="")))
    assert len(out) == 55
    ids = [row["id"] for row in out]
    assert ids[ids.index("r\n54") - 1 :][:2] == ["r53", "r\n54"]


@pytest.mark.slow
def test_json_output_streams_one_object(seed_predictor, tmp_path):
    source = tmp_path / "in.csv"
    source.write_text("x1,x2,x3\n2.5,25,6\nbad,1,1\n7.5,80,6.5\n")
    summary = predict_file(seed_predictor, source, tmp_path / "out.json", skip_bad_rows=True)
    data = json.loads((tmp_path / "out.json").read_text())
    assert [p["label"] for p in data["predictions"]] == ["low", "high"]
    assert [p["row"] for p in data["predictions"]] == [0, 2]
    assert sum(data["predictions"][0]["probabilities"].values()) == pytest.approx(1, abs=1e-5)
    assert data["failed_rows"] == 1 and data["bad_rows"][0]["line"] == 3
    assert summary.rows == data["rows"] == 2


@pytest.mark.slow
def test_missing_feature_column_names_what_the_model_expects(seed_predictor, tmp_path):
    source = tmp_path / "in.csv"
    source.write_text("x1,x3\n1,2\n")
    with pytest.raises(CnnCliError, match=r"missing feature column\(s\) x2") as caught:
        predict_file(seed_predictor, source, tmp_path / "out.csv")
    assert caught.value.hint == "the model expects 3 feature(s): x1, x2, x3"


@pytest.mark.slow
def test_cli_file_to_stdout_and_exit_code_for_bad_rows(runner, seed_run, tmp_path):
    source = tmp_path / "in.csv"
    source.write_text("x1,x2,x3\n2.5,25,6\n1,2\n")
    result = runner.invoke(
        cli, ["predict", str(seed_run), "--input-file", str(source), "--skip-bad-rows"]
    )
    assert result.exit_code == 2
    assert result.stdout.splitlines()[0] == "row,predicted,prob_high,prob_low,prob_medium"
    assert result.stdout.splitlines()[1].startswith("0,low,")
    assert f"warning: {source}:3: expected 3 cells, got 2" in result.stderr
    assert "1 bad row(s) skipped (line 3)" in result.stderr
    clean = runner.invoke(
        cli, ["predict", str(seed_run), "--input-file", str(source)], catch_exceptions=False
    )
    assert clean.exit_code == 2
    assert clean.stderr.endswith(
        f"error: {source}:3: expected 3 cells, got 2; fix that row, or pass --skip-bad-rows to"
        " predict the other rows\n"
    )


@pytest.mark.slow
def test_categorical_features_unseen_values_and_mean_fill(mixed_run, tmp_path):
    predictor = Predictor(open_run(mixed_run), "onnx", threads=1)
    source = tmp_path / "in.csv"
    source.write_text("x1,color,x2\n0.5,red,3\n,purple,-2\n1,green\n1,,4\n")
    summary = predict_file(predictor, source, tmp_path / "out.csv", skip_bad_rows=True)
    assert summary.rows == 3  # the empty x1 is filled with the training mean
    assert [(bad.line, bad.message) for bad in summary.bad_rows] == [(4, "expected 3 cells, got 2")]
    assert any("'purple'" in note and "encoded as all zeros" in note for note in summary.notes)
    lines = (tmp_path / "out.csv").read_text().splitlines()
    assert lines[0] == "row,predicted,prob_no,prob_yes"
    assert [line.split(",")[0] for line in lines[1:]] == ["0", "1", "3"]


@pytest.mark.slow
def test_file_prediction_never_imports_tensorflow(seed_run, tmp_path):
    source = write_rows(tmp_path / "in.csv", 50)
    code = (
        "import sys\nfrom cnncli.cli import cli\n"
        f"try:\n    cli(['predict', {str(seed_run)!r}, '--input-file', {str(source)!r},"
        f" '--output', {str(tmp_path / 'out.csv')!r}])\nexcept SystemExit as exit:\n"
        "    assert not exit.code, exit.code\n"
        "print(sorted(m for m in ('tensorflow', 'keras') if m in sys.modules))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip().splitlines()[-1] == "[]"
    assert len((tmp_path / "out.csv").read_text().splitlines()) == 51


@pytest.mark.slow
def test_memory_stays_flat_as_the_file_grows(seed_run, tmp_path):
    """Peak RSS for 400,000 rows is within a few MB of that for 40,000: chunks, not the file."""

    def peak_mb(rows: int) -> float:
        source = tmp_path / f"in{rows}.csv"
        rng = np.random.default_rng(0)
        data = np.column_stack(
            [rng.uniform(0, 10, rows), rng.uniform(10, 100, rows), rng.uniform(0, 10, rows)]
        )
        with source.open("w") as handle:
            handle.write("x1,x2,x3\n")
            np.savetxt(handle, data, fmt="%.3f", delimiter=",")
        code = (
            "import resource, sys\nfrom pathlib import Path\n"
            "from cnncli.runs import open_run\n"
            "from cnncli.serve.predictor import Predictor\nfrom cnncli.serve.batch import predict_file\n"
            f"predict_file(Predictor(open_run(Path({str(seed_run)!r})), threads=1),"
            f" Path({str(source)!r}), Path({str(tmp_path / 'out.csv')!r}))\n"
            "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)"
        )
        out = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, check=True
        )
        return float(out.stdout.split()[-1])

    small, large = peak_mb(40_000), peak_mb(400_000)
    assert large - small < 40, (small, large)


@pytest.mark.slow
def test_a_closed_pipe_ends_predict_quietly(seed_run, tmp_path):
    """`cnncli predict --input-file big.csv | head -1`: no traceback, no bug line, 128 + SIGPIPE."""
    source = write_rows(tmp_path / "in.csv", 20_000)
    process = subprocess.Popen(
        [sys.executable, "-m", "cnncli", "predict", str(seed_run), "--input-file", str(source)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert process.stdout.readline() == b"row,predicted,prob_high,prob_low,prob_medium\n"
    process.stdout.close()  # what head does after its line
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 141, stderr.decode()
    assert b"Traceback" not in stderr and b"bug" not in stderr and b"Exception" not in stderr


# ---------------------------------------------------------------------------------------------
# Endless and special inputs (issue 11.14)


def test_a_file_whose_lines_end_in_a_lone_carriage_return_is_one_line_not_a_crash(
    runner, seed_run, tmp_path
):
    source = tmp_path / "old-mac.csv"
    source.write_bytes(b"x1,x2,x3\r2.5,25,6\r")
    result = runner.invoke(cli, ["predict", str(seed_run), "--input-file", str(source)])
    assert result.exit_code == 2  # was 1: csv.Error from the header reader
    assert error_lines(result) == [
        f"error: {source}:1: the header line holds a carriage return (\\r) that ends no line:"
        " lines must end in \\n or \\r\\n; convert the line endings, e.g."
        " tr '\\r' '\\n' < old.csv > new.csv"
    ]


def test_dev_zero_as_input_file_is_refused_at_once(runner, tiny_run):
    result = runner.invoke(cli, ["predict", str(tiny_run), "--input-file", "/dev/zero"])
    assert result.exit_code == 2
    assert result.stderr.splitlines() == [
        "error: /dev/zero: data path is a character device, not a CSV file; pass a CSV file"
    ]


def test_standard_input_streams_and_an_endless_line_stops_at_the_bound(
    runner, tiny_run, monkeypatch
):
    from cnncli.data import csvfile

    rows = "x1,x2,x3\n3,30,5\n7,80,6\n"
    result = runner.invoke(cli, ["predict", str(tiny_run), "--input-file", "-"], input=rows)
    assert result.exit_code == 0, result.output
    assert len(result.stdout.splitlines()) == 3  # header and two rows
    monkeypatch.setattr(csvfile, "MAX_LINE_CHARS", 10_000)
    monkeypatch.setattr(batch, "CHUNK_BYTES", 1000)  # a block ends mid-line, as in a long stream
    for endless, line in ((b"\0" * 50_000, 1), (b"x1,x2,x3\n3,30,5\n" + b"\0" * 50_000, 3)):
        result = runner.invoke(cli, ["predict", str(tiny_run), "--input-file", "-"], input=endless)
        assert result.exit_code == 2
        assert result.stderr.splitlines()[-1] == (
            f"error: -:{line}: line {line} is longer than 10,000 characters without a line break;"
            " pass a CSV file with one row per line"
        )


def test_evaluate_data_that_is_a_device_or_a_pipe_is_refused_without_reading(
    runner, tiny_run, tmp_path
):
    import os

    fifo = tmp_path / "pipe.csv"
    os.mkfifo(fifo)  # opening it would block forever: it must be refused before
    for path, what in (("/dev/zero", "a character device"), (str(fifo), "a pipe (FIFO)")):
        result = runner.invoke(cli, ["evaluate", str(tiny_run), "--data", path])
        assert result.exit_code == 2
        assert error_lines(result)[0].startswith(f"error: {path}: data path is {what}")


@pytest.mark.slow
def test_a_run_with_numbers_as_feature_names_predicts_a_file_of_those_columns(
    runner, tmp_path, write_config
):
    """A header of numbers only is data, unless it names the run's features."""
    from tests.conftest import base_config

    lines = seed_like_rows(30).splitlines()
    csv = tmp_path / "numbered.csv"
    csv.write_text("\n".join(["0,1,2,label", *lines[1:]]) + "\n")
    trained = runner.invoke(
        cli,
        [
            "train",
            str(write_config(base_config(csv))),
            "--json",
            "--output",
            str(tmp_path / "runs"),
        ],
    )
    assert trained.exit_code == 0, trained.output
    run = json.loads(trained.stdout)["run_dir"]
    rows = tmp_path / "rows.csv"
    rows.write_text("2,1,0\n5,55,3\n")  # the columns in another order: a header by its names
    result = runner.invoke(cli, ["predict", run, "--input-file", str(rows)])
    assert result.exit_code == 0, result.output
    assert len(result.stdout.splitlines()) == 2
    rows.write_text("5,55,3\n7,80,6\n")  # numbers that are not the run's columns: no header
    result = runner.invoke(cli, ["predict", run, "--input-file", str(rows)])
    assert result.exit_code == 2
    assert "holds numbers, not column names" in result.stderr
