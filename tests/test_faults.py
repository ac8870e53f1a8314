"""The fault suite (issue 6): never lose work, never run foreign code, say what is wrong with data.

Each test injects one fault (a signal, SIGKILL, a full disk, a tampered or hostile file, a dirty
CSV, a hostile YAML document) and checks the promise the README's "What cnncli promises" section
makes about it: the exit code, the one-line message, and what is left on disk.
"""

from __future__ import annotations

import errno
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

import cnncli
from cnncli.cli import cli
from cnncli.config.models import load_config
from cnncli.errors import CnnCliError
from cnncli.runs import (
    CHECKPOINTS_DIRNAME,
    LATEST_LINK,
    MANIFEST_FILENAME,
    MODEL_FILENAME,
    finish_run,
    sha256_file,
    start_run,
)
from cnncli.train import checkpoints
from tests.conftest import base_config, error_lines, seed_like_rows


def resume_config(csv: Path, epochs: int) -> dict[str, Any]:
    """A small stack with Dropout, so a resume must restore RNG state as well as weights."""
    config = base_config(csv)
    config["model"]["layers"] = [
        {"type": "Dense", "units": 16, "activation": "relu"},
        {"type": "Dropout", "rate": 0.3},
        {"type": "Dense", "units": "auto", "activation": "softmax"},
    ]
    config["fit"] = {"epochs": epochs, "batch_size": 8, "verbose": False}
    return config


def weights_of(run: Path) -> list[np.ndarray]:
    from cnncli.runtime import import_keras

    model = import_keras().saving.load_model(run / MODEL_FILENAME, safe_mode=True, compile=False)
    return [np.asarray(w) for w in model.get_weights()]


def assert_same_run(first: Path, second: Path, context: str = "") -> None:
    """Bit-identical weights, metrics.json and history.csv."""
    a, b = weights_of(first), weights_of(second)
    assert len(a) == len(b), context
    assert all(np.array_equal(x, y) for x, y in zip(a, b, strict=True)), context
    assert (first / "metrics.json").read_bytes() == (second / "metrics.json").read_bytes(), context
    assert (first / "history.csv").read_bytes() == (second / "history.csv").read_bytes(), context


def staging_folders(output: Path) -> list[Path]:
    return sorted(output.glob(".tmp-*"))


def fake_complete_run(output: Path) -> Path:
    """A complete run already in ``output`` so we can see that ``latest`` stays on it."""
    staged = start_run(output, "earlier")
    for name in ("config.yaml", "preprocess.json", "model.keras"):
        (staged.staging / name).write_text("{}")
    return finish_run(staged, {})


def interrupt_after(
    monkeypatch: pytest.MonkeyPatch, epoch: int, signum: int = signal.SIGINT
) -> None:
    """Send ``signum`` to this process right after the snapshot of ``epoch`` is taken."""
    take_snapshot = checkpoints.CheckpointKeeper.take_snapshot

    def take_then_signal(self, model, done_epoch, history, **kwargs):
        take_snapshot(self, model, done_epoch, history, **kwargs)
        if done_epoch == epoch and not kwargs.get("done"):
            os.kill(os.getpid(), signum)

    monkeypatch.setattr(checkpoints.CheckpointKeeper, "take_snapshot", take_then_signal)


def interrupt_then_resume(runner, monkeypatch, config_path: Path, output: Path, epoch: int) -> Path:
    """``cnncli train`` stopped by SIGINT after ``epoch``, then resumed in-process: the run."""
    from cnncli.train.run import train_run

    interrupt_after(monkeypatch, epoch=epoch)
    result = runner.invoke(cli, ["train", str(config_path), "--output", str(output)])
    assert result.exit_code == 130, result.output
    monkeypatch.undo()
    [staging] = staging_folders(output)
    assert checkpoints.load_checkpoint(staging).epoch == epoch
    return train_run(load_config(config_path), output, resume=str(staging)).run_dir


@pytest.fixture(scope="module")
def resume_csv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("resume-data") / "rows.csv"
    path.write_text(seed_like_rows(300, seed=3))
    return path


@pytest.fixture(scope="module")
def reference_runs(tmp_path_factory: pytest.TempPathFactory, resume_csv: Path) -> tuple[Path, Path]:
    """The same 6-epoch config trained twice, uninterrupted."""
    from cnncli.train.run import train_run

    folder = tmp_path_factory.mktemp("reference")
    config_path = folder / "resume.yaml"
    config_path.write_text(yaml.safe_dump(resume_config(resume_csv, epochs=6)))
    first = train_run(load_config(config_path), folder / "first").run_dir
    second = train_run(load_config(config_path), folder / "second").run_dir
    return first, second


# ---------------------------------------------------------------------------------------------
# Reproducibility and resume


@pytest.mark.slow
def test_same_seed_gives_identical_metrics_and_weights(reference_runs):
    first, second = reference_runs
    assert_same_run(first, second)
    manifest = json.loads((first / MANIFEST_FILENAME).read_text())
    assert manifest["seed"] == 0


@pytest.mark.slow
def test_run_without_seed_records_the_one_it_picked(tiny_run):
    manifest = json.loads((tiny_run / MANIFEST_FILENAME).read_text())
    recorded = yaml.safe_load((tiny_run / "config.yaml").read_text())["seed"]
    assert isinstance(manifest["seed"], int) and manifest["seed"] == recorded


@pytest.mark.slow
def test_manifest_names_versions_config_data_seed_and_every_file(tiny_run):
    import keras
    import tensorflow as tf

    manifest = json.loads((tiny_run / MANIFEST_FILENAME).read_text())
    assert (manifest["cnncli"], manifest["keras"], manifest["tensorflow"]) == (
        cnncli.__version__,
        keras.__version__,
        tf.__version__,
    )
    assert len(manifest["config_sha256"]) == 64
    data = Path(manifest["data"]["path"])
    assert manifest["data"] == {
        "path": str(data),
        "bytes": data.stat().st_size,
        "sha256": sha256_file(data),
    }
    on_disk = {p.name for p in tiny_run.iterdir()} - {MANIFEST_FILENAME}
    assert set(manifest["files"]) == on_disk


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
    result = runner.invoke(cli, ["train", str(config_path), "--output", str(output)])
    assert result.exit_code == code, result.output
    [staging] = staging_folders(output)
    name = signal.Signals(signum).name
    assert error_lines(result) == [
        f"error: {staging}: interrupted by {name} during epoch 3 of 6; 2 complete epoch(s) are saved"
        f" here; resume with: cnncli train {config_path} --resume {staging}"
    ]
    assert checkpoints.load_checkpoint(staging).epoch == 2
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
@pytest.mark.parametrize("backend", ["tensorflow", "jax"])
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
    if backend == "jax":
        pytest.importorskip("jax")
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
    saved = checkpoints.load_checkpoint(staging).epoch
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


def test_checkpoint_from_a_newer_cnncli_is_refused(tmp_path):
    run = tmp_path / ".tmp-t-1"
    (run / CHECKPOINTS_DIRNAME).mkdir(parents=True)
    (run / CHECKPOINTS_DIRNAME / "state.json").write_text(
        json.dumps({"format": 99, "cnncli": "9.0"})
    )
    with pytest.raises(CnnCliError, match=r"written by cnncli 9.0 \(checkpoint format 99\)"):
        checkpoints.load_checkpoint(run)


# ---------------------------------------------------------------------------------------------
# Resource faults


def test_unwritable_output_folder(runner, tmp_path, tiny_csv, write_config, monkeypatch):
    config = write_config(base_config(tiny_csv))
    blocker = tmp_path / "blocker"
    blocker.write_text("a file where the output folder should be")
    result = runner.invoke(cli, ["train", str(config), "--output", str(blocker / "runs")])
    assert result.exit_code == 2
    assert error_lines(result) == [
        f"error: {blocker / 'runs'}: cannot write the output folder: Not a directory; choose a writable"
        " folder with --output or output.dir"
    ]

    def denied(*args, **kwargs):
        raise PermissionError(errno.EACCES, "Permission denied")

    monkeypatch.setattr("tempfile.mkdtemp", denied)
    result = runner.invoke(cli, ["train", str(config), "--output", str(tmp_path / "ro")])
    assert result.exit_code == 2
    assert "cannot write the output folder: Permission denied" in result.stderr


@pytest.mark.slow
def test_full_disk_while_checkpointing_keeps_the_last_checkpoint(
    runner, tmp_path, tiny_csv, write_config, monkeypatch
):
    config = base_config(tiny_csv)
    config["fit"]["epochs"] = 3
    config_path = write_config(config)
    output = tmp_path / "runs"
    monkeypatch.setattr(checkpoints, "MIN_WRITE_INTERVAL_S", 0.0)
    write_atomic = checkpoints.write_atomic
    arrays_written = []

    def disk_fills_up(path, data):
        if path.suffix == ".npz":
            arrays_written.append(path.name)
            if len(arrays_written) == 2:
                raise OSError(errno.ENOSPC, "No space left on device", str(path))
        write_atomic(path, data)

    monkeypatch.setattr(checkpoints, "write_atomic", disk_fills_up)
    result = runner.invoke(cli, ["train", str(config_path), "--output", str(output)])
    assert result.exit_code == 2, result.output
    [staging] = staging_folders(output)
    [line] = error_lines(result)
    assert line.startswith(
        f"error: {staging}: cannot write the run: No space left on device (epoch-0002.npz);"
    )
    assert line.endswith(f"resume with: cnncli train {config_path} --resume {staging}")
    checkpoint = checkpoints.load_checkpoint(staging)
    assert checkpoint.epoch == 1
    checkpoint.load_arrays()  # intact: sha256 matches
    assert sorted(p.name for p in (staging / CHECKPOINTS_DIRNAME).iterdir()) == [
        "epoch-0001.npz",
        "state.json",
    ]
    assert not (output / LATEST_LINK).exists()
    monkeypatch.undo()
    result = runner.invoke(
        cli, ["train", str(config_path), "--output", str(output), "--resume", str(staging)]
    )
    assert result.exit_code == 0, result.output
    assert (output / LATEST_LINK / "history.csv").read_text().count("\n") == 4  # header + 3 epochs


@pytest.mark.slow
def test_full_disk_while_saving_the_model_keeps_the_run_resumable(
    runner, tmp_path, tiny_csv, write_config, monkeypatch
):
    config_path = write_config(base_config(tiny_csv))
    output = tmp_path / "runs"

    def full(model, path):
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr("cnncli.train.run.save_keras_atomic", full)
    result = runner.invoke(cli, ["train", str(config_path), "--output", str(output)])
    assert result.exit_code == 2
    [staging] = staging_folders(output)
    assert "cannot write the run: No space left on device (model.keras)" in result.stderr
    assert checkpoints.load_checkpoint(staging).done
    assert not (output / LATEST_LINK).exists()


@pytest.mark.slow
def test_data_file_disappearing_mid_run(tmp_path, tiny_csv, write_config):
    from cnncli.train.run import train_run

    original = sha256_file(tiny_csv)
    config = base_config(tiny_csv)
    config["fit"]["epochs"] = 2
    config_path = write_config(config)

    def delete_data(epoch, epochs, logs):
        tiny_csv.unlink(missing_ok=True)

    result = train_run(load_config(config_path), tmp_path / "runs", on_epoch_end=delete_data)
    manifest = json.loads((result.run_dir / MANIFEST_FILENAME).read_text())
    assert manifest["data"]["sha256"] == original  # what was trained on, fingerprinted at the start


# ---------------------------------------------------------------------------------------------
# Resume of streaming runs and of callbacks' state


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
    resumed = interrupt_then_resume(runner, monkeypatch, config_path, tmp_path / "runs", epoch=8)
    assert_same_run(resumed, clean, "EarlyStopping resume")
