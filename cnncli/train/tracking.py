"""Experiment tracking (``tracking.mlflow``): a run's params, per-epoch metrics, test metrics
and folder logged to MLflow.

The run folder is the record; a tracker is a copy. So a tracker that fails (a server gone, a
locked database) says so once and stops, and training goes on to publish the run as usual. A
missing package is found before training, in one line with the command that installs it.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from cnncli.config.models import Config
from cnncli.config.overrides import flatten_config
from cnncli.errors import CnnCliError

INSTALL_MLFLOW = "pip install 'cnncli[mlflow]'"
#: MLflow's limits: a param's value (characters) and the entries of one ``log_batch`` call.
MAX_PARAM_VALUE = 6000
MAX_BATCH = 100
#: Folder beside a SQLite store that holds the artifacts of the experiments cnncli creates
#: (MLflow's default is ``./mlruns`` in whatever folder the command runs from).
ARTIFACTS_DIRNAME = "mlartifacts"
_INDEX = re.compile(r"\[(\d+)\]")
_NOT_IN_A_NAME = re.compile(r"[^A-Za-z0-9_\-. :/]")


def require_trackers(config: Config) -> None:
    """The packages the configured trackers need are installed (``validate`` and ``train``).

    Raises:
        CnnCliError: naming the package and the command that installs it.
    """
    if config.tracking.mlflow is not None and importlib.util.find_spec("mlflow") is None:
        raise CnnCliError(
            "needs the mlflow package, which is not installed",
            where=config.locate("tracking.mlflow"),
            hint=f"{INSTALL_MLFLOW}, or remove tracking.mlflow",
        )


class MlflowTracker:
    """One MLflow run beside one cnncli run; every call is safe (``_safely``)."""

    def __init__(self, config: Config, say: Callable[[str], None]) -> None:
        assert config.tracking.mlflow is not None
        self.spec = config.tracking.mlflow
        self.config = config
        self.say = say
        self.client: Any = None
        self.run_id: str | None = None
        self.broken = False

    def start(self, params: dict[str, Any]) -> None:
        """Open the experiment and a run, and log the flattened config as params."""
        self._safely("starting the run", self._start, params)

    def _start(self, params: dict[str, Any]) -> None:
        # A server that is gone: a few quick retries, not MLflow's minutes of backoff.
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "1")
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "10")
        from mlflow.entities import Param
        from mlflow.tracking import MlflowClient

        for name in ("mlflow", "alembic"):  # their INFO lines (tables created) are not ours
            logging.getLogger(name).setLevel(logging.WARNING)
        self.client = MlflowClient(tracking_uri=self.spec.uri)
        experiment = self.client.get_experiment_by_name(self.spec.experiment)
        if experiment is None:
            experiment_id = self.client.create_experiment(
                self.spec.experiment, artifact_location=artifact_location(self.spec.uri)
            )
        else:
            experiment_id = experiment.experiment_id
        run = self.client.create_run(experiment_id, run_name=self.config.name)
        self.run_id = run.info.run_id
        entries = [
            Param(param_key(key), str(value)[:MAX_PARAM_VALUE])
            for key, value in flatten_config(params).items()
        ]
        for start in range(0, len(entries), MAX_BATCH):
            self.client.log_batch(self.run_id, params=entries[start : start + MAX_BATCH])

    def log_epoch(self, epoch: int, _epochs: int, logs: dict[str, float]) -> None:
        """One epoch's logged values, at step ``epoch`` (1-based, as the progress shows it)."""
        self._safely("logging an epoch", self._log_metrics, logs, epoch)

    def _log_metrics(self, values: dict[str, float], step: int) -> None:
        from mlflow.entities import Metric

        if self.run_id is None:
            return
        now = int(time.time() * 1000)
        metrics = [Metric(name, float(value), now, step) for name, value in values.items()]
        for start in range(0, len(metrics), MAX_BATCH):
            self.client.log_batch(self.run_id, metrics=metrics[start : start + MAX_BATCH])

    def finish(self, run_dir: Path, metrics: dict[str, Any]) -> None:
        """The test (and validation) metrics, the run folder as artifacts, the run finished."""
        scores = {
            f"{part}_{name}": value
            for part in ("test", "validation")
            for name, value in (metrics.get(part) or {}).items()
        }
        self._safely("logging the test metrics", self._log_metrics, scores, 0)
        self._safely("copying the run folder", self._artifacts, run_dir)
        self.end("FINISHED")

    def _artifacts(self, run_dir: Path) -> None:
        if self.run_id is None:
            return
        self.client.log_artifacts(self.run_id, str(run_dir))
        self.client.set_tag(self.run_id, "cnncli.run_dir", str(run_dir))

    def end(self, status: str) -> None:
        """Close the MLflow run: FINISHED, FAILED or KILLED (an interrupt)."""
        if self.run_id is not None:
            self._safely("ending the run", self.client.set_terminated, self.run_id, status)
            self.run_id = None

    def _safely(self, doing: str, action: Callable[..., Any], *args: Any) -> None:
        if self.broken:
            return
        try:
            action(*args)
        except Exception as exc:  # any failure of the tracker: the run goes on without it
            self.broken = True
            detail = " ".join(str(exc).split())[:300] or type(exc).__name__
            self.say(
                f"MLflow stopped logging while {doing} ({detail}); training goes on and the"
                " run folder is complete as always"
            )


def param_key(key: str) -> str:
    """A ``--set`` path as an MLflow param name, which allows no brackets: ``layers.0.units``."""
    return _NOT_IN_A_NAME.sub("_", _INDEX.sub(r".\1", key))[:250]


def artifact_location(uri: str) -> str | None:
    """For a SQLite store, a folder beside its file; otherwise the server's default."""
    if not uri.startswith("sqlite:///"):
        return None
    return (Path(uri.removeprefix("sqlite:///")).parent / ARTIFACTS_DIRNAME).resolve().as_uri()


def open_tracker(config: Config, say: Callable[[str], None]) -> MlflowTracker | None:
    """The configured tracker, started with the config as params; None when there is none."""
    if config.tracking.mlflow is None:
        return None
    require_trackers(config)
    tracker = MlflowTracker(config, say)
    tracker.start(config.to_yaml_dict())
    return tracker
