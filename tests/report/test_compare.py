"""``cnncli compare``: exactly the config keys that differ, metrics side by side, one PNG."""

from __future__ import annotations

import json
import os
import struct

import pytest

from cnncli.cli import cli
from tests.conftest import error_lines

pytestmark = pytest.mark.slow


def complete_runs(runs_folder):
    return sorted(str(path) for path in runs_folder.iterdir() if path.name[:2] in ("a-", "b-"))


def png_size(path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", data[16:24])


def test_compare_names_exactly_the_keys_that_differ_and_writes_one_png(
    runner, runs_folder, tmp_path
):
    plot = tmp_path / "curves.png"
    args = ["compare", *complete_runs(runs_folder), "--plot", str(plot), "--json"]
    result = runner.invoke(cli, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["differences"] == {
        "name": ["a", "b"],
        "model.layers[0].units": [8, 16],
        "fit.epochs": [2, 3],
    }
    assert set(report["metrics"]) >= {"accuracy", "loss"}
    assert all(len(values) == 2 for values in report["metrics"].values())
    assert report["plot"] == str(plot)
    width, height = png_size(plot)
    assert width >= 600 and height >= 400


def test_compare_table_and_the_default_plot_name(runner, runs_folder, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(cli, ["compare", *complete_runs(runs_folder)], catch_exceptions=False)
    assert result.exit_code == 0
    assert "model.layers[0].units" in result.stdout and "fit.epochs" in result.stdout
    assert "batch_size" not in result.stdout  # the same in both
    assert (tmp_path / "compare.png").is_file()


def test_compare_refuses_one_run_an_interrupted_run_and_a_fifo_as_plot(
    runner, runs_folder, tmp_path
):
    [first, _] = complete_runs(runs_folder)
    result = runner.invoke(cli, ["compare", first])
    assert result.exit_code == 2
    assert "compare needs two runs or more" in error_lines(result)[0]
    staging = next(str(path) for path in runs_folder.iterdir() if path.name.startswith(".tmp-"))
    result = runner.invoke(cli, ["compare", first, staging, "--no-plot"])
    assert result.exit_code == 2
    assert "this is an interrupted run, not a complete one" in error_lines(result)[0]
    fifo = tmp_path / "plot.png"
    os.mkfifo(fifo)
    result = runner.invoke(cli, ["compare", *complete_runs(runs_folder), "--plot", str(fifo)])
    assert result.exit_code == 2
    assert error_lines(result) == [
        f"error: {fifo}: is a pipe (FIFO), and cnncli only writes a regular file here;"
        " choose another --plot"
    ]
    assert fifo.is_fifo()
