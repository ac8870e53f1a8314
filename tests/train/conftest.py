"""Helpers and shared runs for the checkpoint, resume and signal tests."""

from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from cnncli.cli import cli
from cnncli.config.models import load_config
from cnncli.runs import MODEL_FILENAME, finish_run, start_run
from cnncli.train.checkpoints import keeper, load_checkpoint
from tests.conftest import base_config, seed_like_rows


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
    take_snapshot = keeper.CheckpointKeeper.take_snapshot
    sent = []

    def take_then_signal(self, model, done_epoch, history, **kwargs):
        take_snapshot(self, model, done_epoch, history, **kwargs)
        if done_epoch == epoch and not sent:  # the epoch's end, not the fit's end after it
            sent.append(signum)
            os.kill(os.getpid(), signum)

    monkeypatch.setattr(keeper.CheckpointKeeper, "take_snapshot", take_then_signal)


def interrupt_then_resume(runner, monkeypatch, config_path: Path, output: Path, epoch: int) -> Path:
    """``cnncli train`` stopped by SIGINT after ``epoch``, then resumed in-process: the run."""
    from cnncli.train.run import train_run

    interrupt_after(monkeypatch, epoch=epoch)
    result = runner.invoke(cli, ["train", str(config_path), "--output", str(output)])
    assert result.exit_code == 130, result.output
    monkeypatch.undo()
    [staging] = staging_folders(output)
    assert load_checkpoint(staging).epoch == epoch
    return train_run(load_config(config_path), output, resume=str(staging)).run_dir


def error_lines(result) -> list[str]:
    return [line for line in result.stderr.splitlines() if line.startswith("error:")]


@pytest.fixture(scope="session")
def resume_csv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("resume-data") / "rows.csv"
    path.write_text(seed_like_rows(300, seed=3))
    return path


@pytest.fixture(scope="session")
def reference_runs(tmp_path_factory: pytest.TempPathFactory, resume_csv: Path) -> tuple[Path, Path]:
    """The same 6-epoch config trained twice, uninterrupted."""
    from cnncli.train.run import train_run

    folder = tmp_path_factory.mktemp("reference")
    config_path = folder / "resume.yaml"
    config_path.write_text(yaml.safe_dump(resume_config(resume_csv, epochs=6)))
    first = train_run(load_config(config_path), folder / "first").run_dir
    second = train_run(load_config(config_path), folder / "second").run_dir
    return first, second
