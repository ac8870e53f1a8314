"""SIGINT and SIGTERM: a clean stop after the current step, one line with the resume command."""

from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import Any

import pytest
import yaml

from cnncli.cli import cli
from cnncli.config.models import load_config
from cnncli.runs import CHECKPOINTS_DIRNAME, LATEST_LINK
from cnncli.train.checkpoints import load_checkpoint
from cnncli.train.checkpoints.signals import resume_command
from tests.conftest import base_config
from tests.train.conftest import (
    assert_same_run,
    error_lines,
    fake_complete_run,
    interrupt_after,
    resume_config,
    staging_folders,
)


def train_interrupted(runner, config_path: Path, output: Path, code: int) -> tuple[Any, Path]:
    """``cnncli train`` that a signal stops with exit ``code``: the result and its staging folder."""
    result = runner.invoke(cli, ["train", str(config_path), "--output", str(output)])
    assert result.exit_code == code, result.output
    [staging] = staging_folders(output)
    return result, staging


@pytest.mark.slow
@pytest.mark.parametrize(
    ("signum", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)], ids=["SIGINT", "SIGTERM"]
)
def test_signal_saves_checkpoint_says_how_to_resume_and_resume_matches(
    runner, tmp_path, monkeypatch, resume_csv, reference_runs, signum, code
):
    config_path = tmp_path / "resume.yaml"
    config_path.write_text(yaml.safe_dump(resume_config(resume_csv, epochs=6)))
    output = tmp_path / "runs"
    earlier = fake_complete_run(output)
    interrupt_after(monkeypatch, epoch=2, signum=signum)
    result, staging = train_interrupted(runner, config_path, output, code)
    name = signal.Signals(signum).name
    assert error_lines(result) == [
        f"error: {staging}: interrupted by {name} during epoch 3 of 6; 2 complete epoch(s) are saved"
        f" here; resume with: cnncli train {config_path} --resume {staging}"
    ]
    assert load_checkpoint(staging).epoch == 2
    assert os.readlink(output / LATEST_LINK) == earlier.name  # the interrupted run is not latest
    assert sorted(p.name for p in output.iterdir() if not p.name.startswith(".")) == [
        earlier.name,
        LATEST_LINK,
    ]
    monkeypatch.undo()
    if signum == signal.SIGTERM:
        return  # the resume itself is the same for both signals; check it once

    changed = runner.invoke(
        cli,
        [
            "train",
            str(config_path),
            "--output",
            str(output),
            "--resume",
            "--set",
            "model.layers[0].units=9",
        ],
    )
    assert changed.exit_code == 2
    assert "model.layers[0].units is 9 but the interrupted run used 16" in changed.stderr

    resumed = runner.invoke(cli, ["train", str(config_path), "--output", str(output), "--resume"])
    assert resumed.exit_code == 0, resumed.output
    run = Path(resumed.stdout.strip().splitlines()[-1])
    assert os.readlink(output / LATEST_LINK) == run.name
    assert staging_folders(output) == [] and not (run / CHECKPOINTS_DIRNAME).exists()
    assert_same_run(run, reference_runs[0])


def test_resume_command_quotes_paths_and_repeats_the_set_options(tmp_path, tiny_csv):
    path = tmp_path / "my config.yaml"
    path.write_text(yaml.safe_dump(base_config(tiny_csv)))
    config = load_config(path, ["fit.epochs=3"])
    staging = tmp_path / ".tmp-t 1"
    assert resume_command(config, staging) == (
        f"cnncli train '{path}' --set fit.epochs=3 --resume '{staging}'"
    )


def kill_self(signum: int = signal.SIGINT) -> None:
    os.kill(os.getpid(), signum)


@pytest.mark.parametrize("library", ["lets-it-through", "turns-it-into-a-csv-error", "swallows-it"])
def test_a_signal_while_reading_the_data_exits_130(
    runner, tmp_path, monkeypatch, tiny_csv, write_config, library
):
    """Ctrl-C while the CSV loads was a CSV quoting error, or swallowed so that training went on
    to exit 0 (issue 11.15)."""
    from cnncli.errors import CnnCliError
    from cnncli.train import run

    prepare_data = run.prepare_data

    def interrupted_read(config, seed):
        try:
            kill_self()
        except KeyboardInterrupt:
            if library == "lets-it-through":
                raise
            if library == "turns-it-into-a-csv-error":
                raise CnnCliError("unexpected end of data in a quoted field") from None
        return prepare_data(config, seed)

    monkeypatch.setattr(run, "prepare_data", interrupted_read)
    output = tmp_path / "runs"
    result = runner.invoke(
        cli, ["train", str(write_config(base_config(tiny_csv))), "--output", str(output)]
    )
    assert result.exit_code == 130, result.output
    assert error_lines(result) == [
        "error: interrupted by SIGINT while reading the data, before any epoch completed;"
        " nothing to resume; train again"
    ]
    assert not output.exists() or list(output.iterdir()) == []


@pytest.mark.parametrize(
    ("signum", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)], ids=["SIGINT", "SIGTERM"]
)
def test_a_signal_after_the_last_epoch_keeps_the_finished_training_to_resume(
    runner, tmp_path, monkeypatch, tiny_csv, write_config, signum, code
):
    """Ctrl-C while evaluating said "error: interrupted" with no resume line (issue 11.17)."""
    from cnncli.train import run

    evaluate_inputs = run.evaluate_inputs

    def interrupted_evaluate(config, prepared, *part):
        kill_self(signum)
        return evaluate_inputs(config, prepared, *part)

    config_path = write_config(base_config(tiny_csv))
    output = tmp_path / "runs"
    monkeypatch.setattr(run, "evaluate_inputs", interrupted_evaluate)
    result, staging = train_interrupted(runner, config_path, output, code)
    name = signal.Signals(signum).name
    assert error_lines(result) == [
        f"error: {staging}: interrupted by {name} while evaluating on the test rows, after training"
        " ended; the finished training (1 epoch(s)) is saved here; resume with:"
        f" cnncli train {config_path} --resume {staging}"
    ]
    assert load_checkpoint(staging).done and not (output / LATEST_LINK).exists()
    monkeypatch.undo()
    resumed = runner.invoke(cli, ["train", str(config_path), "--output", str(output), "--resume"])
    assert resumed.exit_code == 0, resumed.output
    assert staging_folders(output) == [] and (output / LATEST_LINK).is_symlink()


def test_a_signal_inside_the_onnx_exporter_prints_no_traceback_and_exits_130(
    runner, tmp_path, monkeypatch, tiny_csv, write_config
):
    """An interrupt in an exporter's finalizer printed "Exception ignored in" (issue 11.16)."""
    from cnncli.serve import export

    class ConverterState:
        def __del__(self) -> None:
            kill_self()  # the handler's KeyboardInterrupt is raised inside __del__

    def interrupted_export(model, path):
        with export._quiet("tf2onnx"):
            ConverterState()
        raise AssertionError("the interrupt should have stopped the export")

    monkeypatch.setattr(export, "export_onnx", interrupted_export)
    config_path = write_config(base_config(tiny_csv))
    output = tmp_path / "runs"
    result, staging = train_interrupted(runner, config_path, output, 130)
    assert "Exception ignored" not in result.stderr and "Traceback" not in result.stderr
    [line] = error_lines(result)
    assert "interrupted by SIGINT while saving the run, after training ended" in line
    assert line.endswith(f"resume with: cnncli train {config_path} --resume {staging}")


def run_folders_are_whole(output: Path) -> None:
    """Every visible run is complete, `latest` points at one, and a hidden staging folder is
    only kept when it holds a checkpoint to resume."""
    from cnncli.runs import MANIFEST_FILENAME, has_checkpoint

    for path in output.iterdir() if output.exists() else []:
        if path.name == LATEST_LINK:
            assert (output / os.readlink(path) / MANIFEST_FILENAME).is_file()
        elif path.name.startswith("."):
            assert has_checkpoint(path), f"{path.name} holds no checkpoint"
        else:
            assert (path / MANIFEST_FILENAME).is_file(), f"{path.name} is incomplete"


@pytest.mark.slow
def test_signals_at_random_moments_end_in_success_or_a_resumable_stop(tmp_path, resume_csv):
    """Issue 11: a signal at any phase (loading Keras, reading, fitting, evaluating, exporting,
    publishing) ends in exit 0 with a complete run, or 130/143 with one line that names the
    resume command whenever a checkpoint exists; nothing half-written is left."""
    import random
    import subprocess
    import sys
    import time

    config_path = tmp_path / "short.yaml"
    config_path.write_text(yaml.safe_dump(resume_config(resume_csv, epochs=3)))
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}

    def train(output: Path, signum: int | None = None, delay: float = 0.0):
        command = [
            sys.executable,
            "-m",
            "cnncli",
            "train",
            str(config_path),
            "--output",
            str(output),
        ]
        process = subprocess.Popen(
            command,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        if signum is not None:
            time.sleep(delay)
            process.send_signal(signum)
        stdout, stderr = process.communicate(timeout=300)
        return process.returncode, stderr

    started = time.monotonic()
    assert train(tmp_path / "clean")[0] == 0
    duration = time.monotonic() - started
    rng = random.Random(11)
    for attempt in range(6):
        signum = (signal.SIGINT, signal.SIGTERM)[attempt % 2]
        delay = rng.uniform(0.0, 1.1 * duration)
        output = tmp_path / f"runs-{attempt}"
        code, stderr = train(output, signum, delay)
        context = f"{signal.Signals(signum).name} after {delay:.2f} s: exit {code}, {stderr!r}"
        run_folders_are_whole(output)
        staging = list(output.glob(".tmp-*"))
        errors = [line for line in stderr.splitlines() if line.startswith("error:")]
        if code == 0 or code == -signum:  # finished; or the signal came as Python shut down
            assert errors == [] and staging == [], context
            assert (output / LATEST_LINK).is_symlink(), context
            continue
        assert code == 128 + signum, context
        assert len(errors) == 1 and "Traceback" not in stderr, context
        assert f"interrupted by {signal.Signals(signum).name}" in errors[0], context
        if staging:
            assert errors[0].endswith(f" --resume {staging[0]}"), context
        assert not (output / LATEST_LINK).exists() or staging == [], context


@pytest.mark.parametrize(
    ("signum", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)], ids=["SIGINT", "SIGTERM"]
)
def test_a_signal_while_the_saved_run_is_shown_names_the_complete_run(
    runner, tmp_path, monkeypatch, tiny_csv, write_config, signum, code
):
    """Hostile review of issue 11: a signal after the run was published (while its table was
    printed) exited 130 without saying the run was saved."""
    from cnncli import render

    metrics_table = render.metrics_table

    def interrupted_table(*args, **kwargs):
        kill_self(signum)
        return metrics_table(*args, **kwargs)

    monkeypatch.setattr(render, "metrics_table", interrupted_table)
    output = tmp_path / "runs"
    config_path = write_config(base_config(tiny_csv))
    result = runner.invoke(cli, ["train", str(config_path), "--output", str(output)])
    assert result.exit_code == code, result.output
    run = output / os.readlink(output / LATEST_LINK)
    assert error_lines(result) == [
        f"error: {run}: interrupted by {signal.Signals(signum).name} after the run was saved;"
        f" it is complete; see its results with: cnncli evaluate {run}"
    ]
    assert staging_folders(output) == [] and (run / "manifest.json").is_file()


@pytest.mark.slow
def test_a_signal_as_the_program_exits_after_a_saved_run_changes_nothing(tmp_path, tiny_csv):
    """A signal in the half second the interpreter takes to exit after `train` printed its
    results killed it silently (a shell showed 130): the run is complete, so it exits 0."""
    import subprocess
    import sys

    config_path = tmp_path / "tiny.yaml"
    config_path.write_text(yaml.safe_dump(base_config(tiny_csv)))
    code = (
        "import os, signal, time\n"
        "from cnncli.cli import main\n"
        "try:\n"
        "    main()\n"
        "finally:\n"  # after the command returned: the interpreter's exit is all that is left
        "    os.kill(os.getpid(), signal.SIGINT)\n"
        "    time.sleep(0.3)\n"
    )
    output = tmp_path / "runs"
    command = [sys.executable, "-c", code, "train", str(config_path), "--output", str(output)]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "Traceback" not in result.stderr and "error:" not in result.stderr
    assert result.stdout.strip() == str(output / os.readlink(output / LATEST_LINK))
