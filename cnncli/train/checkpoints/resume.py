"""Resuming: find an interrupted run, check it against the config and data, restore its state."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import numpy as np

from cnncli.config.models import Config
from cnncli.config.overrides import flatten_config
from cnncli.data.untrusted import read_json
from cnncli.errors import CnnCliError, Location
from cnncli.runs import STAGING_PREFIX, has_checkpoint, lock_staging, sha256_file, write_atomic
from cnncli.train.checkpoints.callback import FILE_STATE
from cnncli.train.checkpoints.store import Checkpoint, load_checkpoint, state_path

#: Config keys that may change between an interrupted run and its resume.
RESUMABLE_CHANGES = (
    "fit.epochs",
    "fit.verbose",
    "fit.plots",
    "output.dir",
    "data.path",
    "data.test_path",
    "seed",
    # where a run is logged, not how it trains (and absent from checkpoints before them)
    "fit.tensorboard",
    "tracking",
    # where the workers meet and how patient they are: a restart may choose again
    "distribute.coordinator",
    "distribute.heartbeat_timeout",
)


def interrupted_runs(output_dir: Path, name: str) -> list[Path]:
    """Staging folders of ``name`` in ``output_dir`` that hold a checkpoint, newest first."""
    if not output_dir.is_dir():
        return []
    found = [
        path
        for path in output_dir.glob(f"{STAGING_PREFIX}{name}-*")
        if path.is_dir() and has_checkpoint(path) and _run_name(path) == name
    ]
    return sorted(found, key=lambda path: state_path(path).stat().st_mtime, reverse=True)


def _run_name(staging: Path) -> str | None:
    try:
        state = read_json(state_path(staging))
    except CnnCliError:  # damaged: ``load_checkpoint`` says how when it is asked for by path
        return None
    name = state.get("name") if isinstance(state, dict) else None
    return name if isinstance(name, str) else None


def resume_point(
    config: Config, output_dir: Path, resume: str | Path | None, lock: bool = True
) -> Checkpoint:
    """The checkpoint ``--resume [RUN]`` asks for, checked against the config and the data.

    Args:
        config: the config being trained now.
        output_dir: where run folders go; searched when ``resume`` is empty.
        resume: a staging folder, or ``""``/``None`` for the newest interrupted run of this name.
        lock: take the staging folder's lock (False: a distributed worker that only reads the
            checkpoint while process 0 holds the lock).

    Raises:
        CnnCliError: nothing to resume, or the config or data changed since the run started.
    """
    if resume in (None, ""):
        candidates = interrupted_runs(output_dir, config.name)
        if not candidates:
            raise CnnCliError(
                f"no interrupted run named '{config.name}' to resume",
                where=Location(file=str(output_dir)),
                hint="train without --resume, or pass the interrupted run's folder to --resume",
            )
        checkpoint = load_checkpoint(candidates[0])
    else:
        checkpoint = load_checkpoint(Path(resume))
    if lock:
        lock_staging(checkpoint.run)  # one process per run: a second --resume stops here
    _check_same_config(config, checkpoint)
    _check_same_data(config, checkpoint)
    return checkpoint


def _check_same_config(config: Config, checkpoint: Checkpoint) -> None:
    if config.seed is not None and config.seed != checkpoint.seed:
        raise CnnCliError(
            f"seed is {config.seed} but the interrupted run used {checkpoint.seed}",
            where=config.locate("seed"),
            hint="resume with the config the run was started with",
        )
    now = flatten_config(comparable_config(config))
    then = flatten_config(checkpoint.state["config"])
    changed = sorted(key for key in now.keys() | then.keys() if now.get(key) != then.get(key))
    if changed:
        key = changed[0]
        raise CnnCliError(
            f"{key} is {now.get(key)!r} but the interrupted run used {then.get(key)!r}",
            where=config.locate(key) if key in now else Location(file=config.source.file, key=key),
            hint="resume with the config (and --set options) the run was started with",
        )
    if config.fit.epochs < checkpoint.epoch:
        raise CnnCliError(
            f"fit.epochs is {config.fit.epochs} but the interrupted run completed"
            f" {checkpoint.epoch} epochs",
            where=config.locate("fit.epochs"),
            hint=f"set fit.epochs to {checkpoint.epoch} or more",
        )


def _check_same_data(config: Config, checkpoint: Checkpoint) -> None:
    for key, recorded in checkpoint.state["data"].items():
        path = config.data.path if key == "data" else config.data.test_path
        if recorded is None:
            continue
        current = _sha256_or_none(path)
        if current != recorded["sha256"]:
            what = "is missing" if current is None else "changed since the interrupted run started"
            raise CnnCliError(
                f"the data file {what} (sha256 differs from the checkpoint's)",
                where=Location(file=str(path or recorded["path"])),
                hint="resume with the same data, or train again without --resume",
            )


def _sha256_or_none(path: str | None) -> str | None:
    try:
        return sha256_file(Path(path)) if path else None
    except OSError:
        return None


def comparable_config(config: Config) -> dict[str, Any]:
    """The resolved config without the keys a resume may change."""
    data = config.to_yaml_dict()
    for key in RESUMABLE_CHANGES:
        parts = key.split(".")
        container = data
        for part in parts[:-1]:
            container = container.get(part, {})
        container.pop(parts[-1], None)
    return data


# ---------------------------------------------------------------------------------------------
# Restoring


def restore_variables(model: Any, checkpoint: Checkpoint) -> list[list[np.ndarray] | None]:
    """Put the checkpoint's model and optimizer variables into ``model``.

    Returns:
        Each callback's saved best weights (None where it kept none), for ``restore_callbacks``.

    Raises:
        CnnCliError: the arrays are damaged or do not fit the model this config builds.
    """
    weights, optimizer_values, best = checkpoint.load_arrays()
    variables = list(model.variables)
    optimizer = model.optimizer
    if not optimizer.built:
        optimizer.build(model.trainable_variables)
    optimizer_variables = list(optimizer.variables)
    shapes_now = [tuple(v.shape) for v in (*variables, *optimizer_variables)]
    shapes_then = [tuple(a.shape) for a in (*weights, *optimizer_values)]
    if shapes_now != shapes_then:
        raise CnnCliError(
            "the checkpoint's variables do not fit the model this config builds",
            where=Location(file=str(checkpoint.run)),
            hint="resume with the config the run was started with, or train without --resume",
        )
    pairs = zip((*variables, *optimizer_variables), (*weights, *optimizer_values), strict=True)
    for variable, value in pairs:
        variable.assign(value)
    return best


def restore_callbacks(
    callbacks: list[Any], checkpoint: Checkpoint, best: list[list[np.ndarray] | None]
) -> None:
    """Give EarlyStopping, ReduceLROnPlateau & co. back their counters and best weights.

    Call it after their own ``on_train_begin``, which resets them.
    """
    saved = checkpoint.state.get("callbacks", [])
    for callback, scalars, weights in zip(
        callbacks, saved, best or [None] * len(saved), strict=False
    ):
        for name, value in scalars.items():
            if _settable(callback, name, value):
                setattr(callback, name, value)
        if weights is not None:
            callback.best_weights = weights


def continue_logs(keras: Any, callbacks: list[Any], epochs_done: int) -> None:
    """Make each CSVLogger of a resumed fit append to its log after the checkpoint's epochs.

    A CSVLogger opens its file for writing at the start of a fit, so a resume used to keep only
    the epochs trained after it. The log is cut back to the rows of the ``epochs_done`` epochs the
    checkpoint holds (a row written after the last checkpoint is trained and logged again), then
    appended to (Keras' own ``append``): the log equals an uninterrupted run's.
    """
    for callback in callbacks:
        if not isinstance(callback, keras.callbacks.CSVLogger):
            continue
        path = Path(callback.filename)
        if path.is_file():
            write_atomic(path, _log_rows_before(path, callback.sep, epochs_done))
        callback.append = True


def close_logs(callbacks: list[Any]) -> None:
    """Close the files CSVLogger & co. hold open, when a fit stops before ``on_train_end``."""
    for callback in callbacks:
        stream = getattr(callback, "csv_file", None)
        if stream is not None and not getattr(stream, "closed", True):
            stream.close()


def _log_rows_before(path: Path, sep: str, epochs_done: int) -> str:
    """A CSVLogger file's header and its rows of epochs (0-based) before ``epochs_done``."""
    with path.open(encoding="utf-8", newline="") as stream:  # keep the csv module's \r\n
        lines = stream.read().splitlines(keepends=True)
    kept = lines[:1]
    for line in lines[1:]:
        epoch = line.split(sep, 1)[0]
        if epoch.isdigit() and int(epoch) < epochs_done and line.endswith("\n"):
            kept.append(line)
    return "".join(kept)


def _settable(callback: Any, name: str, value: Any) -> bool:
    """Whether a checkpoint may set ``name`` to ``value``: a plain value of the kind the callback
    holds there (a number where it counts, a number where it has nothing yet), never a method,
    the model or CSVLogger's file handling."""
    if name.startswith("_") or name in FILE_STATE or hasattr(type(callback), name):
        return False
    if name not in vars(callback):
        return _kind(value) is float
    current = vars(callback)[name]
    return current is None or _kind(current) is _kind(value)


def _kind(value: Any) -> type | None:
    if isinstance(value, bool | np.bool_):
        return bool
    if isinstance(value, int | float | np.number):
        return float
    return str if isinstance(value, str) else None


def end_restored_fit(model: Any, callbacks: list[Any]) -> None:
    """Finish a resumed fit that had nothing left to train as its ``on_train_end`` would have.

    EarlyStopping(restore_best_weights) puts its best epoch's weights back when the fit ends;
    a checkpoint taken at the end of the last or the stopping epoch holds the weights before
    that. (Only the weights: other callbacks' end hooks close files that never opened here.)
    """
    for callback in callbacks:
        best = getattr(callback, "best_weights", None)
        if getattr(callback, "restore_best_weights", False) and best is not None:
            model.set_weights(best)


def restore_rng(checkpoint: Checkpoint) -> None:
    """Put Python's and NumPy's global RNG back as they were after the saved epoch."""
    rng = checkpoint.state["rng"]
    version, internal, gauss = rng["python"]
    random.setstate((version, tuple(internal), gauss))
    name, keys, position, has_gauss, cached = rng["numpy"]
    np.random.set_state((name, np.asarray(keys, dtype=np.uint32), position, has_gauss, cached))
