"""Resume: same seed same run, an interrupted run (SIGINT or SIGKILL, in memory or streaming,
with EarlyStopping) resumed to bit-identical weights, and resumes that must be refused."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from cnncli.cli import cli
from cnncli.config.models import load_config
from cnncli.runs import LATEST_LINK, MANIFEST_FILENAME
from cnncli.train.checkpoints import comparable_config, load_checkpoint
from tests.conftest import EXPONENTIAL_DECAY, TORCH_SKIP, base_config
from tests.train.conftest import (
    assert_same_run,
    error_lines,
    fake_complete_run,
    interrupt_then_resume,
    resume_config,
    staging_folders,
)


@pytest.mark.slow
def test_same_seed_gives_identical_metrics_and_weights(reference_runs):
    first, second = reference_runs
    assert_same_run(first, second)
    manifest = json.loads((first / MANIFEST_FILENAME).read_text())
    assert manifest["seed"] == 0


def cli_train(args: list[str], backend: str) -> Path:
    """``cnncli train ... --json`` in a fresh process on ``backend``; returns the run folder."""
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "CNNCLI_BACKEND": backend}
    command = [sys.executable, "-m", "cnncli", "train", *args, "--json"]
    done = subprocess.run(
        command, env=env, capture_output=True, text=True, timeout=300, check=False
    )
    assert done.returncode == 0, done.stderr
    return Path(json.loads(done.stdout)["run_dir"])


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["tensorflow", "jax", "torch"])
def test_sigkill_at_a_random_point_then_resume_matches_an_uninterrupted_run(
    tmp_path, resume_csv, backend
):
    """SIGKILL the CLI at a random moment of training, resume, compare with a clean run.

    The killed run asks for many epochs so that the kill always lands mid-training on any machine;
    the resume then finishes at N = (epochs saved) + 3, and the clean run trains N epochs. Weights
    after N epochs do not depend on how many were asked for, so the two must match bit for bit.
    On the session's backend (tensorflow) the resume and the clean run are in-process; on the
    other backend every step is a fresh ``cnncli`` process.
    """
    if backend != "tensorflow":
        pytest.importorskip(backend, reason=TORCH_SKIP if backend == "torch" else None)
    from cnncli.train.run import train_run

    config_path = tmp_path / "long.yaml"
    config_path.write_text(yaml.safe_dump(resume_config(resume_csv, epochs=10_000)))
    output = tmp_path / "runs"
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "CNNCLI_BACKEND": backend}
    process = subprocess.Popen(
        [sys.executable, "-m", "cnncli", "train", str(config_path), "--output", str(output)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    delay = random.Random().uniform(0.0, 2.5)
    try:
        deadline = time.monotonic() + 120
        while not any(output.glob(".tmp-*/checkpoints/state.json")):
            assert process.poll() is None, process.stderr.read().decode()
            assert time.monotonic() < deadline, "no checkpoint within 120 s"
            time.sleep(0.05)
        time.sleep(delay)
        assert process.poll() is None, "training ended before the kill"
        process.kill()
    finally:
        process.kill()
        process.wait()
        process.stderr.close()
    assert process.returncode == -signal.SIGKILL
    assert not (output / LATEST_LINK).exists()
    [staging] = staging_folders(output)
    saved = load_checkpoint(staging).epoch
    epochs = saved + 3
    context = f"{backend}: killed {delay:.2f} s after the first checkpoint, {saved} epochs saved"
    if backend == os.environ["CNNCLI_BACKEND"]:
        config = load_config(config_path, [f"fit.epochs={epochs}"])
        resumed = train_run(config, output, resume=str(staging)).run_dir
        clean = train_run(config, tmp_path / "clean").run_dir
    else:
        common = [str(config_path), "--set", f"fit.epochs={epochs}", "--output"]
        resumed = cli_train([*common, str(output), "--resume", str(staging)], backend)
        clean = cli_train([*common, str(tmp_path / "clean")], backend)
    assert json.loads((resumed / MANIFEST_FILENAME).read_text())["backend"] == backend
    assert_same_run(resumed, clean, context)


def test_resume_without_an_interrupted_run_or_of_a_complete_run(
    runner, tmp_path, tiny_csv, write_config
):
    config = write_config(base_config(tiny_csv))
    output = tmp_path / "runs"
    result = runner.invoke(cli, ["train", str(config), "--output", str(output), "--resume"])
    assert result.exit_code == 2
    assert error_lines(result) == [
        f"error: {output}: no interrupted run named 't' to resume; train without --resume, or pass the"
        " interrupted run's folder to --resume"
    ]
    complete = fake_complete_run(output)
    result = runner.invoke(
        cli, ["train", str(config), "--output", str(output), "--resume", str(complete)]
    )
    assert result.exit_code == 2
    assert "this run is complete; there is nothing to resume" in result.stderr


@pytest.mark.slow
def test_streaming_run_interrupted_then_resumed_matches_an_uninterrupted_run(
    runner, tmp_path, monkeypatch, resume_csv
):
    """Streaming shuffles each chunk with a generator seeded by the epoch, so a resume that starts
    at epoch 3 draws epoch 3's order, not epoch 1's."""
    from cnncli.train.run import train_run

    config = resume_config(resume_csv, epochs=5)
    config["data"].update(streaming=True, chunk_rows=64)
    config_path = tmp_path / "stream.yaml"
    config_path.write_text(yaml.safe_dump(config))
    resumed = interrupt_then_resume(runner, monkeypatch, config_path, tmp_path / "runs", epoch=2)
    clean = train_run(load_config(config_path), tmp_path / "clean").run_dir
    assert_same_run(resumed, clean, "streaming resume")


@pytest.mark.slow
def test_resume_keeps_early_stopping_state(runner, tmp_path, monkeypatch, resume_csv):
    """EarlyStopping's patience count, best value and best weights survive the interruption."""
    from cnncli.train.run import train_run

    config = resume_config(resume_csv, epochs=12)
    config["compile"]["optimizer"] = {"type": "Adam", "learning_rate": 0.05}
    config["fit"].update(
        validation_split=0.3,
        callbacks=[
            {
                "type": "EarlyStopping",
                "monitor": "val_loss",
                "patience": 2,
                "restore_best_weights": True,
            }
        ],
    )
    config_path = tmp_path / "early.yaml"
    config_path.write_text(yaml.safe_dump(config))
    clean = train_run(load_config(config_path), tmp_path / "clean").run_dir
    clean_epochs = len((clean / "history.csv").read_text().splitlines()) - 1
    # val_loss is best at epoch 7 and worse at 8, so the interruption falls mid-patience
    assert 8 < clean_epochs < 12, "the config must stop early after the interruption point"
    metrics = json.loads((clean / "metrics.json").read_text())  # the resumed run's must match
    assert metrics["stopped_epoch"] == clean_epochs and metrics["best_epoch"] < clean_epochs
    resumed = interrupt_then_resume(runner, monkeypatch, config_path, tmp_path / "runs", epoch=8)
    assert_same_run(resumed, clean, "EarlyStopping resume")
    # interrupted at the very epoch EarlyStopping stopped: the resume trained on to fit.epochs
    stopped = interrupt_then_resume(
        runner, monkeypatch, config_path, tmp_path / "stopped", epoch=clean_epochs
    )
    assert_same_run(stopped, clean, "EarlyStopping resume at its stopping epoch")


def test_comparable_config_leaves_out_only_what_a_resume_may_change(write_config, tiny_csv):
    config = load_config(write_config(base_config(tiny_csv)))
    full, comparable = config.to_yaml_dict(), comparable_config(config)
    assert "seed" in full and "seed" not in comparable
    assert "epochs" not in comparable["fit"] and "path" not in comparable["data"]
    assert comparable["fit"]["batch_size"] == full["fit"]["batch_size"]
    assert comparable["model"] == full["model"]


@pytest.mark.slow
def test_learning_rate_schedule_trains_checkpoints_and_resumes_bit_identically(
    runner, tmp_path, monkeypatch, resume_csv
):
    """A schedule as learning_rate (issue 11.6): its step count lives in the optimizer state."""
    from cnncli.train.run import train_run

    config = resume_config(resume_csv, epochs=4)
    config["compile"]["optimizer"] = {"type": "SGD", "learning_rate": EXPONENTIAL_DECAY}
    config_path = tmp_path / "schedule.yaml"
    config_path.write_text(yaml.safe_dump(config))
    clean = train_run(load_config(config_path), tmp_path / "clean").run_dir
    resumed = interrupt_then_resume(runner, monkeypatch, config_path, tmp_path / "runs", epoch=2)
    assert_same_run(resumed, clean, "schedule resume")


#: Another process that holds a staging folder's lock, as a running resume does, until stdin ends.
HOLD_LOCK = """
import fcntl, os, sys
fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT)
fcntl.flock(fd, fcntl.LOCK_EX)
os.pwrite(fd, f"{os.getpid()}\\n".encode(), 0)
print("locked", flush=True)
sys.stdin.read()
"""


@pytest.mark.slow
def test_a_second_resume_of_one_run_is_refused_while_the_first_holds_it(
    runner, tmp_path, tiny_csv, write_config, monkeypatch
):
    """Two concurrent --resume of one run used to write one checkpoint and race to publish."""
    from cnncli.runs import LOCK_FILENAME
    from tests.train.conftest import interrupt_after

    config = write_config(resume_config(tiny_csv, epochs=3))
    output = tmp_path / "runs"
    interrupt_after(monkeypatch, epoch=1)
    result = runner.invoke(cli, ["train", str(config), "--output", str(output)])
    assert result.exit_code == 130, result.output
    monkeypatch.undo()
    (staging,) = staging_folders(output)
    args = ["train", str(config), "--output", str(output), "--resume", str(staging)]
    with subprocess.Popen(
        [sys.executable, "-c", HOLD_LOCK, str(staging / LOCK_FILENAME)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    ) as holder:
        assert holder.stdout.readline() == "locked\n"
        result = runner.invoke(cli, args)
        holder.stdin.close()
        holder.wait(timeout=30)
    assert result.exit_code == 2
    assert error_lines(result) == [
        f"error: {staging}: run {staging.name} is being resumed or trained by another process"
        f" (pid {holder.pid}); wait for that process to end, or stop it, then resume"
    ]
    assert staging_folders(output) == [staging]  # untouched, still resumable
    result = runner.invoke(cli, [*args, "--json"])  # the holder is gone: the resume goes on
    assert result.exit_code == 0, result.output
    run = Path(json.loads(result.stdout)["run_dir"])
    assert not (run / LOCK_FILENAME).exists()
    assert LOCK_FILENAME not in json.loads((run / MANIFEST_FILENAME).read_text())["files"]


@pytest.mark.parametrize("link", ["checkpoints", ".lock"])
def test_a_link_inside_an_interrupted_run_is_refused_before_anything_is_written(
    runner, tmp_path, tiny_csv, write_config, monkeypatch, link
):
    """A hand-made link in a staging folder carried the resume's writes and deletes outside it."""
    from tests.train.conftest import interrupt_after

    config = write_config(resume_config(tiny_csv, epochs=3))
    output = tmp_path / "runs"
    interrupt_after(monkeypatch, epoch=1)
    assert runner.invoke(cli, ["train", str(config), "--output", str(output)]).exit_code == 130
    monkeypatch.undo()
    (staging,) = staging_folders(output)
    outside = tmp_path / "outside"
    if link == "checkpoints":
        (staging / "checkpoints").rename(outside)
    else:
        (staging / link).unlink(missing_ok=True)
        outside.write_text("keep me\n")
    (staging / link).symlink_to(outside)
    before = sorted(p.name for p in outside.iterdir()) if outside.is_dir() else outside.read_text()

    result = runner.invoke(cli, ["train", str(config), "--output", str(output), "--resume"])

    assert result.exit_code == 2
    assert error_lines(result) == [
        f"error: {staging}: {link} is a symbolic link; an interrupted run holds only its own"
        " files, so resuming would write outside the run; remove the link, or train again"
        " without --resume"
    ]
    after = sorted(p.name for p in outside.iterdir()) if outside.is_dir() else outside.read_text()
    assert after == before
