"""``cnncli runs``: every run of a folder, newest first, complete and interrupted."""

from __future__ import annotations

import datetime as dt
import json
import shutil
from pathlib import Path

import pytest

from cnncli.cli import cli
from cnncli.report.history import list_runs, smaller_is_better
from tests.conftest import error_lines

pytestmark = pytest.mark.slow


def runs_json(runner, *args: str) -> list[dict]:
    result = runner.invoke(cli, ["runs", *args, "--json"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_runs_json_lists_complete_and_interrupted_runs_with_their_status(runner, runs_folder):
    listed = runs_json(runner, str(runs_folder))
    by_name = {run["name"].split("-")[0]: run for run in listed}
    assert sorted(by_name) == ["a", "b", "c"]
    assert [by_name[n]["status"] for n in "abc"] == ["complete", "complete", "interrupted"]
    assert [by_name[n]["resumable"] for n in "abc"] == [False, False, True]
    assert by_name["a"]["epochs"] == 2 and by_name["b"]["epochs"] == 3
    assert (by_name["a"]["epochs_planned"], by_name["c"]["epochs"]) == (2, 1)
    assert Path(by_name["c"]["path"]).name.startswith(".tmp-c-")
    for name in "ab":
        assert by_name[name]["task"] == "classification"
        assert by_name[name]["rows"] == 60
        assert by_name[name]["backend"] == "tensorflow"
        assert set(by_name[name]["test"]) >= {"accuracy", "loss"}
    assert by_name["c"]["test"] == {}
    started = [run["started"] for run in listed]
    assert started == sorted(started, reverse=True)  # newest first


def test_runs_sorts_by_a_metric_limits_and_names_an_unknown_metric(runner, runs_folder):
    by_loss = runs_json(runner, str(runs_folder), "--sort", "loss")
    losses = [run["test"]["loss"] for run in by_loss if run["test"]]
    assert losses == sorted(losses) and by_loss[-1]["status"] == "interrupted"
    assert len(runs_json(runner, str(runs_folder), "--limit", "1")) == 1
    result = runner.invoke(cli, ["runs", str(runs_folder), "--sort", "acuracy"])
    assert result.exit_code == 2
    assert error_lines(result) == [
        "error: cnncli runs: --sort: no run has a test metric 'acuracy'; did you mean 'accuracy'?"
    ]
    assert smaller_is_better("val_loss") and not smaller_is_better("accuracy")


def test_runs_table_shows_one_line_per_run_and_the_resume_status(runner, runs_folder):
    result = runner.invoke(cli, ["runs", str(runs_folder)], catch_exceptions=False)
    assert result.exit_code == 0
    lines = [line for line in result.stdout.splitlines() if line.startswith("│")]
    assert len(lines) == 3  # one per run (the header is drawn with ┃)
    assert "interrupted (resumable)" in result.stdout


def test_a_damaged_run_is_listed_as_damaged_and_the_others_still_are(runs_folder, tmp_path):
    copy = tmp_path / "runs"
    shutil.copytree(runs_folder, copy, symlinks=True)
    damaged = next(path for path in copy.iterdir() if path.name.startswith("a-"))
    (damaged / "metrics.json").write_text('{"test": {"loss": "high"}}')
    (copy / "notes").mkdir()  # not a run: left out
    runs = {run.path.name: run for run in list_runs(copy)}
    assert len(runs) == 3
    assert runs[damaged.name].status == "damaged"
    assert "metrics.json: test.loss: expected a finite number" in runs[damaged.name].problem


def test_a_fifo_in_place_of_a_run_file_is_named_and_never_blocks_the_listing(runs_folder, tmp_path):
    import os
    import threading

    copy = tmp_path / "runs"
    shutil.copytree(runs_folder, copy, symlinks=True)
    by_prefix = {path.name[:2]: path for path in copy.iterdir()}
    swapped = {
        by_prefix["a-"] / "history.csv": "a-",
        by_prefix["b-"] / "manifest.json": "b-",
        by_prefix[".t"] / "checkpoints" / "state.json": ".t",
    }
    for path in swapped:
        path.unlink()
        os.mkfifo(path)  # no writer ever opens it: a plain read would wait for ever
    listed: list = []
    reader = threading.Thread(target=lambda: listed.extend(list_runs(copy)), daemon=True)
    reader.start()
    reader.join(60)
    assert not reader.is_alive(), "runs blocked on a FIFO"
    problems = {run.path.name[:2]: run.problem for run in listed}
    for path, prefix in swapped.items():
        assert problems[prefix] == (
            f"{path}: is a pipe (FIFO), not a file cnncli wrote; the run's files were edited"
            " or damaged: retrain"
        )
    assert all(path.is_fifo() for path in swapped)


def test_runs_of_a_missing_folder_is_one_line(runner, tmp_path):
    result = runner.invoke(cli, ["runs", str(tmp_path / "nowhere")])
    assert result.exit_code == 2
    assert error_lines(result) == [
        f"error: {tmp_path / 'nowhere'}: no such folder of runs; pass the folder cnncli train"
        " wrote into (output.dir, default runs)"
    ]


def test_an_interrupted_run_another_process_trains_is_listed_as_training(runs_folder):
    import subprocess
    import sys

    staging = next(path for path in runs_folder.iterdir() if path.name.startswith(".tmp-"))
    holder = subprocess.Popen(  # holds the run's lock as a resuming `cnncli train` does
        [
            sys.executable,
            "-c",
            "import fcntl, os, sys, time\n"
            f"fd = os.open({str(staging / '.lock')!r}, os.O_RDWR | os.O_CREAT)\n"
            "fcntl.flock(fd, fcntl.LOCK_EX)\nprint('held', flush=True)\ntime.sleep(30)\n",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline() == "held\n"
        [listed] = [run for run in list_runs(runs_folder) if run.path == staging]
        assert listed.status == "training"
    finally:
        holder.kill()
        holder.communicate()
    [listed] = [run for run in list_runs(runs_folder) if run.path == staging]
    assert listed.status == "interrupted"  # the lock is the kernel's: gone with its holder


def test_sorting_a_folder_without_a_complete_run_lists_nothing_and_succeeds(runner, tmp_path):
    (tmp_path / "runs").mkdir()
    assert runs_json(runner, str(tmp_path / "runs"), "--sort", "loss") == []


def test_a_renamed_run_is_listed_at_its_time_not_last(runs_folder, tmp_path):
    copy = tmp_path / "runs"
    shutil.copytree(runs_folder, copy, symlinks=True)
    newest = max(path for path in copy.iterdir() if path.name[:2] in ("a-", "b-"))
    newest.rename(copy / "best")
    listed = list_runs(copy)
    [best] = [run for run in listed if run.path.name == "best"]
    created = json.loads((copy / "best" / "manifest.json").read_text())["created"]
    local = dt.datetime.fromisoformat(created).astimezone().replace(tzinfo=None)
    assert best.started == local.isoformat(sep=" ", timespec="seconds")
    complete = [run.path.name for run in listed if run.status == "complete"]
    assert complete[0] == "best"  # published after the other complete run
