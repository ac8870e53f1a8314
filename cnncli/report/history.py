"""The runs of an output folder, newest first (``cnncli runs``): complete runs and interrupted
ones that ``train --resume`` can finish.

Every file is read as untrusted input through the readers of ``runs`` and ``data.untrusted``; a
run whose files are damaged is listed as damaged, with the one-line reason, and never stops the
listing. Checksums are not verified here (``evaluate`` and ``predict`` verify them).
"""

from __future__ import annotations

import datetime as dt
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cnncli.data.csvfile import check_path
from cnncli.data.untrusted import Field, count, mapping, member, one_line, read_json
from cnncli.errors import CnnCliError, Location, did_you_mean
from cnncli.runs import (
    CHECKPOINT_STATE_FILENAME,
    CHECKPOINTS_DIRNAME,
    HISTORY_FILENAME,
    MANIFEST_FILENAME,
    METRICS_FILENAME,
    STAGING_PREFIX,
    has_checkpoint,
    open_run,
    read_history,
    read_metrics,
    staging_in_use,
)
from cnncli.serve.scores import smaller_is_better

COMPLETE = "complete"
INTERRUPTED = "interrupted"
TRAINING = "training"  # a staging folder another process holds: training or resuming now
DAMAGED = "damaged"
#: ``<name>-YYYYmmdd-HHMMSS`` (``runs.start_run``), maybe with ``-N`` when the second was taken.
_STAMP = re.compile(r"-(\d{8}-\d{6})(?:-\d+)?$")


@dataclass
class RunInfo:
    """One line of ``cnncli runs``."""

    name: str
    path: Path
    status: str
    started: str | None = None
    task: str | None = None
    rows: int | None = None
    epochs: int | None = None  # run so far: a checkpoint's epoch when interrupted
    epochs_planned: int | None = None  # fit.epochs of a complete run (more when stopped early)
    backend: str | None = None
    test: dict[str, float] = field(default_factory=dict)
    problem: str | None = None

    def to_json(self) -> dict[str, Any]:
        data = {
            "name": self.name,
            "path": str(self.path),
            "status": self.status,
            "resumable": self.status == INTERRUPTED,
            "started": self.started,
            "task": self.task,
            "rows": self.rows,
            "epochs": self.epochs,
            "epochs_planned": self.epochs_planned,
            "backend": self.backend,
            "test": self.test,
        }
        if self.problem is not None:
            data["problem"] = self.problem
        return data


def list_runs(folder: Path, sort: str | None = None, limit: int | None = None) -> list[RunInfo]:
    """The runs in ``folder``: complete ones and interrupted ones holding a checkpoint.

    Args:
        folder: an output folder (``runs``).
        sort: a test metric to sort by, best first (smallest first for losses and errors);
            newest first when None.
        limit: at most this many runs.

    Raises:
        CnnCliError: ``folder`` is not a folder, or no run has the metric ``sort``.
    """
    hint = "pass the folder cnncli train wrote into (output.dir, default runs)"
    check_path(folder, folder=True, hint=hint)  # a file, a link loop: said as what it is
    if not folder.is_dir():
        raise CnnCliError(
            "no such folder of runs",
            where=Location(file=str(folder)),
            hint=hint,
        )
    found = []
    for entry in sorted(os.scandir(folder), key=lambda item: item.name):
        if entry.is_symlink() or not entry.is_dir(follow_symlinks=False):
            continue  # `latest`, and anything a link points at, is listed under its own name
        path = Path(entry.path)
        if entry.name.startswith(STAGING_PREFIX):
            if has_checkpoint(path):
                found.append(_read(path, _interrupted))
        elif os.path.lexists(path / MANIFEST_FILENAME):
            found.append(_read(path, _complete))
    found.sort(key=lambda run: (run.started or "", run.path.name), reverse=True)
    if sort is not None:
        found = _sorted_by(found, sort)
    return found[:limit] if limit is not None else found


def _read(path: Path, reader: Any) -> RunInfo:
    try:
        return reader(path)
    except CnnCliError as exc:
        started = _started(path.name)
        return RunInfo(path.name, path, DAMAGED, started=started, problem=exc.one_line())


def _complete(path: Path) -> RunInfo:
    run = open_run(path, verify=False)  # every field checked; checksums are evaluate's job
    history = read_history(path / HISTORY_FILENAME) if run.has(HISTORY_FILENAME) else {}
    metrics = read_metrics(path / METRICS_FILENAME) if run.has(METRICS_FILENAME) else {}
    fit = run.config.get("fit")
    planned = fit.get("epochs") if isinstance(fit, dict) else None
    return RunInfo(
        name=path.name,
        path=path,
        status=COMPLETE,
        started=_started(path.name) or _published(run.manifest.get("created")),
        task=run.manifest.get("task"),
        rows=run.split.get("rows") if run.split else None,
        epochs=len(next(iter(history.values()), [])) if history else None,
        epochs_planned=planned if isinstance(planned, int) else None,
        backend=run.manifest.get("backend"),
        test=metrics.get("test", {}),
    )


def _interrupted(path: Path) -> RunInfo:
    """A staging folder with a checkpoint: the fields of its ``state.json`` a listing shows."""
    state_file = path / CHECKPOINTS_DIRNAME / CHECKPOINT_STATE_FILENAME
    top = Field(str(state_file))
    state = mapping(read_json(state_file), top)
    final = member(state, "final_name", top, one_line)
    epoch = member(state, "epoch", top, count)
    config = mapping(state.get("config", {}), top.at("config"))  # fit.epochs is left out
    task, backend = config.get("task"), config.get("backend")
    return RunInfo(
        name=final,
        path=path,
        status=TRAINING if staging_in_use(path) else INTERRUPTED,
        started=_started(final),
        task=task if task in ("classification", "regression") else None,
        epochs=epoch,
        backend=backend if isinstance(backend, str) else None,
    )


def _started(name: str) -> str | None:
    """When a run started, from the stamp in its folder's name (local time, as written)."""
    match = _STAMP.search(name)
    if match is None:
        return None
    try:
        return dt.datetime.strptime(match[1], "%Y%m%d-%H%M%S").isoformat(sep=" ")
    except ValueError:
        return None


def _published(created: object) -> str | None:
    """A renamed run's time, which its name no longer holds: when it was published (the
    manifest's UTC ``created``), in local time as a stamp is."""
    try:
        when = dt.datetime.fromisoformat(str(created))
    except ValueError:
        return None
    if when.tzinfo is not None:
        when = when.astimezone().replace(tzinfo=None)
    return when.isoformat(sep=" ", timespec="seconds")


def _sorted_by(runs: list[RunInfo], metric: str) -> list[RunInfo]:
    known = sorted({name for run in runs for name in run.test})
    if metric not in known and known:  # none yet (no complete run): nothing to sort, no error
        raise CnnCliError(
            f"no run has a test metric '{metric}'",
            where=Location(file="cnncli runs", key="--sort"),
            hint=did_you_mean(metric, known, f"metrics are: {', '.join(known)}"),
        )
    sign = 1.0 if smaller_is_better(metric) else -1.0
    scored = [run for run in runs if metric in run.test]
    scored.sort(key=lambda run: sign * run.test[metric])  # stable: newest first among ties
    return scored + [run for run in runs if metric not in run.test]
