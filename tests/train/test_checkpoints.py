"""Checkpoints on disk: the format check, and resource faults that keep the last good one."""

from __future__ import annotations

import errno
import json
import random

import numpy as np
import pytest

from cnncli.cli import cli
from cnncli.config.models import load_config
from cnncli.errors import CnnCliError
from cnncli.runs import CHECKPOINTS_DIRNAME, LATEST_LINK
from cnncli.train.checkpoints import keeper, load_checkpoint, store
from tests.conftest import STOPS_AT_EPOCH_2, base_config
from tests.train.conftest import error_lines, staging_folders

#: The run's fields of a state.json (``CheckpointKeeper.write_pending`` writes them).
HEADER = {
    "name": "t",
    "final_name": "t-20260101-000000",
    "seed": 7,
    "config": {},
    "data": {"data": {"path": "/d.csv", "bytes": 1, "sha256": "0" * 64}, "test_data": None},
}


def test_checkpoint_from_a_newer_cnncli_is_refused(tmp_path):
    run = tmp_path / ".tmp-t-1"
    (run / CHECKPOINTS_DIRNAME).mkdir(parents=True)
    (run / CHECKPOINTS_DIRNAME / "state.json").write_text(
        json.dumps({"format": 99, "cnncli": "9.0"})
    )
    with pytest.raises(CnnCliError, match=r"written by cnncli 9.0 \(checkpoint format 99\)"):
        load_checkpoint(run)


def test_unwritable_output_folder(runner, tmp_path, tiny_csv, write_config, monkeypatch):
    config = write_config(base_config(tiny_csv))
    blocker = tmp_path / "blocker"
    blocker.write_text("a file where the output folder should be")
    result = runner.invoke(cli, ["train", str(config), "--output", str(blocker / "runs")])
    assert result.exit_code == 2
    assert error_lines(result) == [
        f"error: {blocker / 'runs'}: {blocker} is a file, not a folder; choose a folder with"
        " --output or output.dir"
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
    monkeypatch.setattr(keeper, "MIN_WRITE_INTERVAL_S", 0.0)
    write_atomic = store.write_atomic
    arrays_written = []

    def disk_fills_up(path, data):
        if path.suffix == ".npz":
            arrays_written.append(path.name)
            if len(arrays_written) == 2:
                raise OSError(errno.ENOSPC, "No space left on device", str(path))
        write_atomic(path, data)

    monkeypatch.setattr(store, "write_atomic", disk_fills_up)
    result = runner.invoke(cli, ["train", str(config_path), "--output", str(output)])
    assert result.exit_code == 2, result.output
    [staging] = staging_folders(output)
    [line] = error_lines(result)
    assert line.startswith(
        f"error: {staging}: cannot write the run: No space left on device (epoch-0002.npz);"
    )
    assert line.endswith(f"resume with: cnncli train {config_path} --resume {staging}")
    checkpoint = load_checkpoint(staging)
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
    assert load_checkpoint(staging).done
    assert not (output / LATEST_LINK).exists()


def test_written_checkpoint_reads_back_replaces_the_old_one_and_refuses_damage(tmp_path):
    def snapshot(epoch: int) -> store.Snapshot:
        return store.Snapshot(
            epoch=epoch,
            done=False,
            model=[np.arange(4.0) * epoch],
            optimizer=[np.ones((2, 2))],
            history={"loss": [0.5, 0.4, 0.3][:epoch]},
            python_rng=random.getstate(),
            numpy_rng=np.random.get_state(),
            callbacks=[{"wait": 1}],
            callback_arrays=[[np.zeros(2)]],
        )

    store.write_checkpoint(tmp_path, snapshot(2), HEADER)
    store.write_checkpoint(tmp_path, snapshot(3), HEADER)
    checkpoint = load_checkpoint(tmp_path)
    assert (checkpoint.epoch, checkpoint.seed, checkpoint.history) == (
        3,
        7,
        {"loss": [0.5, 0.4, 0.3]},
    )
    assert sorted(p.name for p in (tmp_path / CHECKPOINTS_DIRNAME).iterdir()) == [
        "epoch-0003.npz",
        "state.json",
    ]
    model, optimizer, best = checkpoint.load_arrays()
    assert np.array_equal(model[0], np.arange(4.0) * 3)
    assert np.array_equal(optimizer[0], np.ones((2, 2)))
    assert np.array_equal(best[0][0], np.zeros(2))
    checkpoint.arrays_path.write_bytes(b"damaged")
    with pytest.raises(CnnCliError, match="do not match their sha256 in state.json"):
        checkpoint.load_arrays()


@pytest.mark.slow
def test_a_finished_fit_resumed_after_a_full_disk_keeps_its_early_stopping_epochs(
    tmp_path, tiny_csv, write_config, monkeypatch
):
    """Resuming a checkpoint of a finished fit trains nothing more: EarlyStopping's epochs must
    come from the checkpoint for metrics.json to name them."""
    from cnncli.train.run import train_run

    raw = base_config(tiny_csv)
    raw["fit"].update(STOPS_AT_EPOCH_2)
    config_path = write_config(raw)
    output = tmp_path / "runs"

    def full(model, path):
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr("cnncli.train.run.save_keras_atomic", full)
    with pytest.raises(CnnCliError, match="No space left"):
        train_run(load_config(config_path), output)
    monkeypatch.undo()
    [staging] = staging_folders(output)
    assert load_checkpoint(staging).done
    run = train_run(load_config(config_path), output, resume=str(staging)).run_dir
    metrics = json.loads((run / "metrics.json").read_text())
    assert (metrics["stopped_epoch"], metrics["best_epoch"]) == (2, 1)


def test_a_history_holding_nan_or_infinity_is_written_and_read_back(tmp_path):
    """state.json refused a NaN in the history (exit 1); JSON keeps it as text now."""
    history = {"loss": [0.5, 0.4], "val_loss": [float("nan"), float("-inf")]}
    snapshot = store.Snapshot(
        epoch=2,
        done=False,
        model=[np.zeros(2)],
        optimizer=[],
        history=history,
        python_rng=random.getstate(),
        numpy_rng=np.random.get_state(),
    )
    store.write_checkpoint(tmp_path, snapshot, HEADER)
    read = load_checkpoint(tmp_path).history
    assert read["loss"] == [0.5, 0.4]
    assert np.isnan(read["val_loss"][0]) and read["val_loss"][1] == float("-inf")


def nan_config(tiny_csv, learning_rate):
    config = base_config(tiny_csv)
    config["compile"]["optimizer"] = {"type": "SGD", "learning_rate": learning_rate}
    config["fit"].update(epochs=4, batch_size=4)
    return config


def test_a_loss_that_turns_nan_in_the_first_epoch_stops_with_one_line(
    runner, tmp_path, tiny_csv, write_config
):
    """SGD with learning_rate 1e30: exit 1 from the checkpoint's JSON before (issue 11.4)."""
    config_path = write_config(nan_config(tiny_csv, 1.0e30))
    output = tmp_path / "runs"
    result = runner.invoke(cli, ["train", str(config_path), "--output", str(output)])
    assert result.exit_code == 2, result.output
    [line] = error_lines(result)
    assert line.startswith(f"error: {config_path}:")
    assert (
        "compile.optimizer.learning_rate: the loss (nan) became NaN or infinite in epoch 1 of 4;"
        in line
    )
    assert line.endswith(
        "training stopped; lower the learning rate, or scale features that have large values,"
        " and train again"
    )
    assert staging_folders(output) == [] and not (output / LATEST_LINK).exists()


def test_a_loss_that_turns_nan_later_keeps_the_last_finite_checkpoint(
    runner, tmp_path, tiny_csv, write_config
):
    """A rate that grows 1e20-fold an epoch: epoch 1 is finite, epoch 2 is not."""
    schedule = {
        "type": "ExponentialDecay",
        "initial_learning_rate": 0.01,
        "decay_steps": 4,  # 16 training rows / batch_size 4: one step of the stair an epoch
        "decay_rate": 1.0e20,
        "staircase": True,
    }
    config_path = write_config(nan_config(tiny_csv, schedule))
    output = tmp_path / "runs"
    result = runner.invoke(cli, ["train", str(config_path), "--output", str(output)])
    assert result.exit_code == 2, result.output
    [staging] = staging_folders(output)
    [line] = error_lines(result)
    assert "became NaN or infinite in epoch 2 of 4; training stopped;" in line
    assert line.endswith(
        f"the last finite epoch (1) is kept: resume with: cnncli train {config_path}"
        f" --resume {staging}"
    )
    checkpoint = load_checkpoint(staging)
    assert checkpoint.epoch == 1 and np.isfinite(checkpoint.history["loss"]).all()
    model, optimizer, _ = checkpoint.load_arrays()
    assert all(np.isfinite(array).all() for array in model + optimizer)
    assert not (output / LATEST_LINK).exists()
