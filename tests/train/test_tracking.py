"""Trackers: TensorBoard event files in the run, MLflow params and metrics read back through
MLflow's own client, and a tracker that fails never costing the run."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from cnncli.cli import cli
from cnncli.config.models import load_config
from tests.conftest import base_config, error_lines


def train(runner, write_config, tiny_csv, tmp_path, **sections) -> tuple[object, Path | None]:
    config = base_config(tiny_csv, **sections)
    config["fit"].update(epochs=3, validation_split=0.25)
    path = write_config(config)
    result = runner.invoke(cli, ["train", str(path), "--output", str(tmp_path / "runs"), "--json"])
    run = Path(json.loads(result.stdout)["run_dir"]) if result.exit_code == 0 else None
    return result, run


@pytest.mark.slow
def test_tensorboard_and_mlflow_record_every_epoch_read_back_by_their_own_readers(
    runner, write_config, tiny_csv, tmp_path
):
    from mlflow.tracking import MlflowClient
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    tracking = {"mlflow": {"uri": uri, "experiment": "tiny"}}
    fit = {"tensorboard": True}
    result, run = train(runner, write_config, tiny_csv, tmp_path, tracking=tracking, fit=fit)
    assert result.exit_code == 0, result.output
    # TensorBoard: event files in the run, one scalar per epoch, listed in the manifest
    for part in ("train", "validation"):
        events = EventAccumulator(str(run / "tensorboard" / part))
        events.Reload()
        assert [event.step for event in events.Tensors("epoch_loss")] == [0, 1, 2]
    manifest = json.loads((run / "manifest.json").read_text())
    logged = [name for name in manifest["files"] if name.startswith("tensorboard/")]
    assert {name.split("/")[1] for name in logged} == {"train", "validation"}
    # MLflow: params, per-epoch and test metrics, the run folder as artifacts
    client = MlflowClient(tracking_uri=uri)
    experiment = client.get_experiment_by_name("tiny")
    [logged_run] = client.search_runs([experiment.experiment_id])
    assert logged_run.info.status == "FINISHED"
    assert logged_run.data.params["fit.epochs"] == "3"
    assert logged_run.data.params["model.layers.0.units"] == "8"
    history = client.get_metric_history(logged_run.info.run_id, "val_loss")
    assert [point.step for point in history] == [1, 2, 3]
    scores = json.loads((run / "metrics.json").read_text())["test"]
    assert logged_run.data.metrics["test_accuracy"] == pytest.approx(scores["accuracy"])
    artifacts = {item.path for item in client.list_artifacts(logged_run.info.run_id)}
    assert {"manifest.json", "model.keras", "metrics.json", "tensorboard"} <= artifacts
    assert (tmp_path / "mlartifacts").is_dir()  # beside the database, not in the working folder
    evaluated = runner.invoke(cli, ["evaluate", str(run), "--json"])  # every sha256 checked
    assert evaluated.exit_code == 0, evaluated.output


@pytest.mark.slow
def test_an_mlflow_failure_mid_run_warns_once_and_the_run_is_complete(
    runner, write_config, tiny_csv, tmp_path, monkeypatch
):
    from mlflow.tracking import MlflowClient

    log_batch = MlflowClient.log_batch

    def server_gone_after_the_params(self, run_id, metrics=(), params=(), **kwargs):
        if metrics:
            raise ConnectionError("server gone")
        return log_batch(self, run_id, metrics=metrics, params=params, **kwargs)

    monkeypatch.setattr(MlflowClient, "log_batch", server_gone_after_the_params)
    tracking = {"mlflow": {"uri": f"sqlite:///{tmp_path / 'm.db'}"}}
    result, run = train(runner, write_config, tiny_csv, tmp_path, tracking=tracking)
    assert result.exit_code == 0, result.output
    warnings = [line for line in result.stderr.splitlines() if "MLflow" in line]
    assert warnings == [
        "warning: MLflow stopped logging while logging an epoch (server gone); training goes on"
        " and the run folder is complete as always"
    ]
    assert (run / "manifest.json").is_file()


def test_a_missing_mlflow_is_one_line_with_the_install_command(
    runner, write_config, tiny_csv, monkeypatch
):
    find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: None if name == "mlflow" else find_spec(name, *a),
    )
    path = write_config(base_config(tiny_csv, tracking={"mlflow": {"experiment": "x"}}))
    result = runner.invoke(cli, ["validate", str(path)])
    assert result.exit_code == 2
    [line] = error_lines(result)
    assert line.startswith(f"error: {path}:")
    assert line.endswith(
        ": tracking.mlflow: needs the mlflow package, which is not installed;"
        " pip install 'cnncli[mlflow]', or remove tracking.mlflow"
    )


def test_a_relative_sqlite_store_sits_beside_the_config(write_config, tiny_csv, tmp_path):
    path = write_config(base_config(tiny_csv, tracking={"mlflow": {}}))
    config = load_config(path)
    assert config.tracking.mlflow.uri == f"sqlite:///{tmp_path / 'mlruns.db'}"
    assert config.tracking.mlflow.experiment == "cnncli"
