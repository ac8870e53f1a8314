"""SIGINT and SIGTERM: a clean stop after the current step, one line with the resume command."""

from __future__ import annotations

import os
import signal
from pathlib import Path

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
