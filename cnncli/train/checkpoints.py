"""Per-epoch checkpoints, resume, and a graceful stop on Ctrl-C (SIGINT) or SIGTERM.

A run in progress lives in its hidden staging folder ``<output>/.tmp-<name>-<stamp>-<random>/``
(see ``artifacts.start_run``); it becomes ``<output>/<name>-<stamp>/`` only when complete. Its
``checkpoints/`` folder holds one checkpoint: ``epoch-NNNN.npz`` (model variables, Dropout seed
states included, and optimizer variables, as plain arrays: ``np.load`` with pickling off) and
``state.json`` (epoch, seed, history, Python and NumPy RNG state, config and data fingerprints,
the arrays file's sha256). ``state.json`` is written last, atomically, so it is the commit
point: a reader sees the previous checkpoint or the new one, never half of one.

With a fixed seed, resuming gives bit-identical weights to an uninterrupted run: the model is
rebuilt from the same seed, every variable and RNG state is restored, and Keras' shuffling on
the TensorFlow backend draws the same order for an epoch whatever the epoch number.
"""

from __future__ import annotations

import datetime as dt
import io
import json
import random
import shlex
import signal
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from cnncli.config.models import Config
from cnncli.errors import CnnCliError, Location
from cnncli.runs import (
    CHECKPOINT_STATE_FILENAME,
    CHECKPOINTS_DIRNAME,
    MANIFEST_FILENAME,
    STAGING_PREFIX,
    StagedRun,
    abandon_run,
    fingerprint_file,
    has_checkpoint,
    sha256_file,
    start_run,
    write_atomic,
    write_json,
)

CHECKPOINT_FORMAT = 1
#: Epoch ends closer together than this share one write (a write with fsync costs ~25 ms on a
#: 2-core machine, ~10 % of a 50-epoch seed run if done every epoch). The first epoch, the last
#: one and a signal always write; SIGKILL loses at most this much work.
MIN_WRITE_INTERVAL_S = 2.0
#: Config keys that may change between an interrupted run and its resume.
RESUMABLE_CHANGES = (
    "fit.epochs",
    "fit.verbose",
    "output.dir",
    "data.path",
    "data.test_path",
    "seed",
)


class TrainingInterrupted(CnnCliError):
    """Training stopped on SIGINT/SIGTERM; exit code 128 + signal number (130, 143)."""

    def __init__(
        self, message: str, *, signum: int, where: Location | None, hint: str | None
    ) -> None:
        super().__init__(message, where=where, hint=hint)
        self.signum = signum
        self.exit_code = 128 + signum


@dataclass(frozen=True)
class Checkpoint:
    """A committed checkpoint of an interrupted run, read from its ``state.json``."""

    run: Path  # the staging folder
    state: dict[str, Any]

    @property
    def epoch(self) -> int:
        """Epochs completed."""
        return int(self.state["epoch"])

    @property
    def seed(self) -> int:
        return int(self.state["seed"])

    @property
    def done(self) -> bool:
        """Fit had finished (all epochs, or a callback such as EarlyStopping stopped it)."""
        return bool(self.state.get("done"))

    @property
    def history(self) -> dict[str, list[float]]:
        return {name: [float(v) for v in values] for name, values in self.state["history"].items()}

    @property
    def arrays_path(self) -> Path:
        return self.run / CHECKPOINTS_DIRNAME / self.state["arrays"]

    def load_arrays(
        self,
    ) -> tuple[list[np.ndarray], list[np.ndarray], list[list[np.ndarray] | None]]:
        """Model and optimizer variables and each callback's best weights (None where absent),
        after checking the file against its sha256."""
        where = Location(file=str(self.arrays_path))
        if (
            not self.arrays_path.is_file()
            or sha256_file(self.arrays_path) != self.state["arrays_sha256"]
        ):
            raise CnnCliError(
                "checkpoint arrays are missing or do not match their sha256 in state.json",
                where=where,
                hint="the checkpoint was damaged; train again without --resume",
            )
        with np.load(self.arrays_path, allow_pickle=False) as arrays:
            model = [arrays[f"model_{i}"] for i in range(int(self.state["model_variables"]))]
            optimizer = [
                arrays[f"optimizer_{i}"] for i in range(int(self.state["optimizer_variables"]))
            ]
            best = [
                None if count is None else [arrays[f"callback_{i}_{j}"] for j in range(count)]
                for i, count in enumerate(self.state.get("callback_arrays", []))
            ]
        return model, optimizer, best


# ---------------------------------------------------------------------------------------------
# Finding and checking an interrupted run


def interrupted_runs(output_dir: Path, name: str) -> list[Path]:
    """Staging folders of ``name`` in ``output_dir`` that hold a checkpoint, newest first."""
    if not output_dir.is_dir():
        return []
    found = [
        path
        for path in output_dir.glob(f"{STAGING_PREFIX}{name}-*")
        if path.is_dir() and has_checkpoint(path) and _run_name(path) == name
    ]
    return sorted(found, key=lambda path: _state_path(path).stat().st_mtime, reverse=True)


def _run_name(staging: Path) -> str | None:
    try:
        return str(json.loads(_state_path(staging).read_text())["name"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _state_path(run: Path) -> Path:
    return run / CHECKPOINTS_DIRNAME / CHECKPOINT_STATE_FILENAME


def load_checkpoint(run: Path) -> Checkpoint:
    """Read an interrupted run's checkpoint.

    Raises:
        CnnCliError: the run is complete, holds no checkpoint, or one from a newer cnncli.
    """
    where = Location(file=str(run))
    if (run / MANIFEST_FILENAME).is_file():
        raise CnnCliError(
            "this run is complete; there is nothing to resume",
            where=where,
            hint="use it with cnncli evaluate/predict, or train again without --resume",
        )
    if not run.is_dir() or not has_checkpoint(run):
        raise CnnCliError(
            "no checkpoint here to resume from",
            where=where,
            hint="pass the folder named in the 'interrupted' message, or train without --resume",
        )
    try:
        state = json.loads(_state_path(run).read_text(encoding="utf-8"))
        version = state["format"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise CnnCliError(
            "checkpoint state.json is unreadable", where=where, hint="train again without --resume"
        ) from exc
    if not isinstance(version, int) or version > CHECKPOINT_FORMAT:
        raise CnnCliError(
            f"checkpoint was written by cnncli {state.get('cnncli')} (checkpoint format {version}),"
            f" newer than this cnncli's format {CHECKPOINT_FORMAT}",
            where=where,
            hint="resume it with that cnncli version, or train again without --resume",
        )
    return Checkpoint(run=run, state=state)


def resume_point(config: Config, output_dir: Path, resume: str | Path | None) -> Checkpoint:
    """The checkpoint ``--resume [RUN]`` asks for, checked against the config and the data.

    Args:
        config: the config being trained now.
        output_dir: where run folders go; searched when ``resume`` is empty.
        resume: a staging folder, or ``""``/``None`` for the newest interrupted run of this name.

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
    now, then = _flatten(comparable_config(config)), _flatten(checkpoint.state["config"])
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


def _flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(value, dict):
        items: dict[str, Any] = {}
        for key, item in value.items():
            items.update(_flatten(item, f"{prefix}.{key}" if prefix else str(key)))
        return items
    if isinstance(value, list):
        items = {}
        for index, item in enumerate(value):
            items.update(_flatten(item, f"{prefix}[{index}]"))
        return items or {prefix: []}
    return {prefix: value}


# ---------------------------------------------------------------------------------------------
# Writing checkpoints while training


@dataclass
class _Snapshot:
    epoch: int
    done: bool
    model: list[np.ndarray]
    optimizer: list[np.ndarray]
    history: dict[str, list[float]]
    python_rng: Any
    numpy_rng: Any
    callbacks: list[dict[str, Any]] = field(default_factory=list)
    callback_arrays: list[list[np.ndarray] | None] = field(default_factory=list)
    written: bool = False


@dataclass
class CheckpointKeeper:
    """Owns a run's staging folder while it trains: checkpoints, resume, signals, failures.

    ``training.train_run`` creates one before fitting, calls ``keeper.fit(model, ...)`` where it
    would call ``model.fit(...)``, and passes the keeper to ``save_run``, which publishes the
    keeper's staging folder and calls ``keeper.failed`` if saving fails.
    """

    config: Config
    staged: StagedRun
    seed: int
    data: dict[str, Any]
    resumed: Checkpoint | None = None
    _snapshot: _Snapshot | None = field(default=None, repr=False)
    _last_write: float = field(default=float("-inf"), repr=False)
    _signal: int | None = field(default=None, repr=False)
    _epoch_running: int = field(default=0, repr=False)
    _callbacks: list[Any] = field(default_factory=list, repr=False)
    _resumed_best: list[list[np.ndarray] | None] = field(default_factory=list, repr=False)

    @classmethod
    def open(
        cls, config: Config, output_dir: Path, seed: int, resumed: Checkpoint | None = None
    ) -> CheckpointKeeper:
        """Create the run's staging folder (or reopen the interrupted one); fingerprint the data."""
        data = {
            "data": fingerprint_file(config.data.path),
            "test_data": fingerprint_file(config.data.test_path) if config.data.test_path else None,
        }
        if resumed is None:
            staged = start_run(output_dir, config.name)
        else:  # finish beside the staging folder: the rename stays on one file system
            final = resumed.run.parent / str(resumed.state["final_name"])
            staged = StagedRun(staging=resumed.run, final=final)
        return cls(config=config, staged=staged, seed=seed, data=data, resumed=resumed)

    # -- fitting -----------------------------------------------------------------------------

    def fit(self, model: Any, *args: Any, **kwargs: Any) -> Any:
        """``model.fit`` that resumes, checkpoints every epoch and stops cleanly on a signal.

        Returns:
            Keras' History, its ``history`` holding the resumed epochs' values too.

        Raises:
            TrainingInterrupted: SIGINT or SIGTERM arrived (exit code 130 / 143).
            CnnCliError: a checkpoint could not be written (a full disk, say).
        """
        from cnncli.runtime import import_keras

        keras = import_keras()
        epochs = int(kwargs.get("epochs", 1))
        initial_epoch = 0
        previous: dict[str, list[float]] = {}
        if self.resumed is not None:
            initial_epoch = self._restore(model, self.resumed)
            previous = self.resumed.history
            if self.resumed.done or initial_epoch >= epochs:
                return _History(previous)
        self._callbacks = list(kwargs.pop("callbacks", None) or [])
        callbacks = [*self._callbacks, _make_callback(keras, self, model, epochs)]
        try:
            with self._signals():
                history = model.fit(
                    *args, callbacks=callbacks, initial_epoch=initial_epoch, **kwargs
                )
        except BaseException as exc:
            error = self.failed(exc)
            if error is None:
                raise
            raise error from (None if isinstance(error, TrainingInterrupted) else exc)
        history.history = {
            name: [*previous.get(name, []), *values] for name, values in history.history.items()
        }
        return history

    def _restore(self, model: Any, checkpoint: Checkpoint) -> int:
        weights, optimizer_values, self._resumed_best = checkpoint.load_arrays()
        where = Location(file=str(checkpoint.run))
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
                where=where,
                hint="resume with the config the run was started with, or train without --resume",
            )
        pairs = zip((*variables, *optimizer_variables), (*weights, *optimizer_values), strict=True)
        for variable, value in pairs:
            variable.assign(value)
        return checkpoint.epoch

    def restore_rng(self) -> None:
        """Put Python's and NumPy's global RNG back as they were after the saved epoch.

        Called from ``on_train_begin``, not before ``fit``: while setting up, Keras may draw from
        them (on JAX it peeks a shuffled batch to build the step), which the uninterrupted run
        did once at its own start, not between epochs.
        """
        if self.resumed is None:
            return
        self._restore_callbacks(self.resumed)
        rng = self.resumed.state["rng"]
        version, internal, gauss = rng["python"]
        random.setstate((version, tuple(internal), gauss))
        name, keys, position, has_gauss, cached = rng["numpy"]
        np.random.set_state((name, np.asarray(keys, dtype=np.uint32), position, has_gauss, cached))

    def _restore_callbacks(self, checkpoint: Checkpoint) -> None:
        """Give EarlyStopping, ReduceLROnPlateau & co. back their counters and best weights.

        Runs after their own ``on_train_begin``, which resets them (our callback comes last).
        """
        saved = checkpoint.state.get("callbacks", [])
        for callback, scalars, best in zip(
            self._callbacks, saved, self._resumed_best or [None] * len(saved), strict=False
        ):
            for name, value in scalars.items():
                setattr(callback, name, value)
            if best is not None:
                callback.best_weights = best

    # -- snapshots and writes -------------------------------------------------------------------

    def take_snapshot(
        self, model: Any, epoch: int, history: dict[str, list[float]], *, done: bool = False
    ) -> None:
        """Copy the state after ``epoch`` completed epochs to memory, then write it if due."""
        from keras import ops

        optimizer = model.optimizer
        self._snapshot = _Snapshot(
            epoch=epoch,
            done=done,
            model=[np.array(ops.convert_to_numpy(v), copy=True) for v in model.variables],
            optimizer=[np.array(ops.convert_to_numpy(v), copy=True) for v in optimizer.variables],
            history={name: list(values) for name, values in history.items()},
            python_rng=random.getstate(),
            numpy_rng=np.random.get_state(),
            callbacks=[_callback_scalars(callback) for callback in self._callbacks],
            callback_arrays=[_callback_best_weights(callback) for callback in self._callbacks],
        )
        due = (
            done
            or self._signal is not None
            or time.monotonic() - self._last_write >= MIN_WRITE_INTERVAL_S
        )
        if due:
            self.write_pending()

    def write_pending(self) -> None:
        """Write the newest snapshot if it is not on disk yet (atomic; the old one stays valid)."""
        snapshot = self._snapshot
        if snapshot is None or snapshot.written:
            return
        folder = self.staged.staging / CHECKPOINTS_DIRNAME
        folder.mkdir(exist_ok=True)
        arrays_name = f"epoch-{snapshot.epoch:04d}.npz"
        buffer = io.BytesIO()
        np.savez(
            buffer,
            **{f"model_{i}": value for i, value in enumerate(snapshot.model)},
            **{f"optimizer_{i}": value for i, value in enumerate(snapshot.optimizer)},
            **{
                f"callback_{i}_{j}": value
                for i, best in enumerate(snapshot.callback_arrays)
                for j, value in enumerate(best or [])
            },
        )
        write_atomic(folder / arrays_name, buffer.getvalue())
        version, internal, gauss = snapshot.python_rng
        name, keys, position, has_gauss, cached = snapshot.numpy_rng
        from cnncli import __version__

        write_json(
            folder / CHECKPOINT_STATE_FILENAME,
            {
                "format": CHECKPOINT_FORMAT,
                "cnncli": __version__,
                "written": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
                "name": self.config.name,
                "final_name": self.staged.final.name,
                "epoch": snapshot.epoch,
                "done": snapshot.done,
                "seed": self.seed,
                "config": comparable_config(self.config),
                "config_sha256": self.config.fingerprint(),
                "data": self.data,
                "history": snapshot.history,
                "arrays": arrays_name,
                "arrays_sha256": sha256_file(folder / arrays_name),
                "model_variables": len(snapshot.model),
                "optimizer_variables": len(snapshot.optimizer),
                "callbacks": snapshot.callbacks,
                "callback_arrays": [
                    None if best is None else len(best) for best in snapshot.callback_arrays
                ],
                "rng": {
                    "python": [version, list(internal), gauss],
                    "numpy": [
                        name,
                        np.asarray(keys).tolist(),
                        int(position),
                        int(has_gauss),
                        float(cached),
                    ],
                },
            },
        )
        for old in folder.glob("epoch-*.npz"):  # only after state.json points at the new file
            if old.name != arrays_name:
                old.unlink(missing_ok=True)
        snapshot.written = True
        self._last_write = time.monotonic()

    # -- signals and failures ------------------------------------------------------------------

    @contextmanager
    def _signals(self) -> Iterator[None]:
        """Turn SIGINT/SIGTERM into "stop after this step"; a second one stops at once."""
        if threading.current_thread() is not threading.main_thread():
            yield
            return

        def handle(signum: int, _frame: Any) -> None:
            if self._signal is not None:  # asked twice: do not wait for the step
                raise KeyboardInterrupt
            self._signal = signum

        previous = {sig: signal.signal(sig, handle) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    def check_signal(self) -> None:
        """Called between steps: stop if a signal arrived."""
        if self._signal is not None:
            raise _Stop

    def failed(self, exc: BaseException) -> BaseException | None:
        """What to raise instead of ``exc``; keeps the last checkpoint, drops an empty staging.

        Returns None when ``exc`` should propagate unchanged (a bug: exit 1).
        """
        if isinstance(exc, (_Stop, KeyboardInterrupt)):
            signum = self._signal or signal.SIGINT
            self._write_quietly()
            abandon_run(self.staged)
            return self._interrupted(signum)
        if isinstance(exc, OSError):
            abandon_run(self.staged)
            return CnnCliError(
                f"cannot write the run: {exc.strerror or exc}"
                + (f" ({Path(exc.filename).name})" if exc.filename else ""),
                where=Location(file=str(self.staged.staging)),
                hint=f"free disk space or fix permissions, then {self._next_step()}",
            )
        self._write_quietly()
        abandon_run(self.staged)
        return None

    def _write_quietly(self) -> None:
        try:
            self.write_pending()
        except OSError:
            pass  # the previous checkpoint is still intact; the error that matters is the caller's

    def _interrupted(self, signum: int) -> TrainingInterrupted:
        name = signal.Signals(signum).name
        epochs = self.config.fit.epochs
        saved = self._saved_epoch()
        if saved is None:
            return TrainingInterrupted(
                f"interrupted by {name} during epoch {self._epoch_running or 1} of {epochs},"
                " before any epoch completed; nothing to resume",
                signum=signum,
                where=None,
                hint="train again",
            )
        return TrainingInterrupted(
            f"interrupted by {name} during epoch {min(saved + 1, epochs)} of {epochs};"
            f" {saved} complete epoch(s) are saved here",
            signum=signum,
            where=Location(file=str(self.staged.staging)),
            hint=f"resume with: {self.resume_command()}",
        )

    def _saved_epoch(self) -> int | None:
        if not has_checkpoint(self.staged.staging):
            return None
        return load_checkpoint(self.staged.staging).epoch

    def _next_step(self) -> str:
        if has_checkpoint(self.staged.staging):
            return f"resume with: {self.resume_command()}"
        return "train again"

    def resume_command(self) -> str:
        """The command that continues this run, with the ``--set`` options it was started with."""
        parts = ["cnncli", "train", self.config.source.file]
        for text in self.config.source.overrides.values():
            parts += ["--set", text]
        parts += ["--resume", str(self.staged.staging)]
        return " ".join(shlex.quote(part) for part in parts)


def _callback_scalars(callback: Any) -> dict[str, Any]:
    """A callback's counters and thresholds (``wait``, ``best``, ...): its plain, finite numbers.

    Settings from the config come back identical; skipped values (functions, the model,
    infinities a callback starts from) are re-created by the callback itself.
    """
    scalars: dict[str, Any] = {}
    for name, value in vars(callback).items():
        if name.startswith("_") or name == "best_weights":
            continue
        if isinstance(value, np.generic):
            value = value.item()
        if isinstance(value, float) and not np.isfinite(value):
            continue
        if value is None or isinstance(value, (bool, int, float, str)):
            scalars[name] = value
    return scalars


def _callback_best_weights(callback: Any) -> list[np.ndarray] | None:
    """EarlyStopping(restore_best_weights=True) keeps a copy of the best epoch's weights."""
    best = getattr(callback, "best_weights", None)
    if not isinstance(best, (list, tuple)):
        return None
    return [np.array(value, copy=True) for value in best]


class _Stop(Exception):
    """Raised from a callback to leave ``model.fit`` after the current step."""


class _History:
    """What ``model.fit`` returns when a resumed run had nothing left to fit."""

    def __init__(self, history: dict[str, list[float]]) -> None:
        self.history = history


def _make_callback(keras: Any, keeper: CheckpointKeeper, model: Any, epochs: int) -> Any:
    class KeepCheckpoints(keras.callbacks.Callback):
        """Snapshot after every epoch; stop between steps once a signal arrived."""

        def __init__(self) -> None:
            super().__init__()
            self.history: dict[str, list[float]] = (
                keeper.resumed.history if keeper.resumed is not None else {}
            )

        def on_train_begin(self, logs: dict[str, Any] | None = None) -> None:
            keeper.restore_rng()

        def on_epoch_begin(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
            keeper._epoch_running = epoch + 1
            keeper.check_signal()

        # on_train_batch_begin, not _end: defining a batch-end hook would turn off Keras'
        # asynchronous callback dispatch and slow every step down.
        def on_train_batch_begin(self, batch: int, logs: dict[str, Any] | None = None) -> None:
            keeper.check_signal()

        def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
            for name, value in (logs or {}).items():
                self.history.setdefault(name, []).append(float(value))
            keeper.take_snapshot(model, epoch + 1, self.history)
            keeper.check_signal()

        def on_train_end(self, logs: dict[str, Any] | None = None) -> None:
            # After EarlyStopping(restore_best_weights) put the best weights back.
            epoch = keeper._snapshot.epoch if keeper._snapshot is not None else 0
            keeper.take_snapshot(model, epoch, self.history, done=True)

    return KeepCheckpoints()
