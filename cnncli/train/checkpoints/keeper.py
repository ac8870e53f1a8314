"""The keeper of a run in progress: its staging folder, ``fit`` with checkpoints, and failures."""

from __future__ import annotations

import random
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from cnncli.config.models import Config
from cnncli.errors import CnnCliError, Location
from cnncli.runs import StagedRun, abandon_run, fingerprint_file, has_checkpoint, start_run
from cnncli.train.checkpoints.callback import (
    LossNotFinite,
    callback_best_weights,
    callback_scalars,
    make_callback,
)
from cnncli.train.checkpoints.resume import (
    close_logs,
    comparable_config,
    continue_logs,
    end_restored_fit,
    restore_callbacks,
    restore_rng,
    restore_variables,
)
from cnncli.train.checkpoints.signals import (
    SignalCatcher,
    StopTraining,
    TrainingInterrupted,
    interrupted,
    resume_command,
)
from cnncli.train.checkpoints.store import Checkpoint, Snapshot, load_checkpoint, write_checkpoint

#: Epoch ends closer together than this share one write (a write with fsync costs ~25 ms on a
#: 2-core machine, ~10 % of a 50-epoch seed run if done every epoch). The first epoch, the last
#: one and a signal always write; SIGKILL loses at most this much work.
MIN_WRITE_INTERVAL_S = 2.0


@dataclass
class CheckpointKeeper:
    """Owns a run's staging folder while it trains: checkpoints, resume, signals, failures.

    ``train_run`` creates one before fitting, calls ``keeper.fit(model, ...)`` where it would
    call ``model.fit(...)``, and passes the keeper to ``save_run``, which publishes the keeper's
    staging folder and calls ``keeper.failed`` if saving fails.
    """

    config: Config
    staged: StagedRun
    seed: int
    data: dict[str, Any]
    resumed: Checkpoint | None = None
    _snapshot: Snapshot | None = field(default=None, repr=False)
    _last_write: float = field(default=float("-inf"), repr=False)
    _signals: SignalCatcher = field(default_factory=SignalCatcher, repr=False)
    _epoch_running: int = field(default=0, repr=False)
    _callbacks: list[Any] = field(default_factory=list, repr=False)
    _resumed_best: list[list[np.ndarray] | None] = field(default_factory=list, repr=False)
    _reported: BaseException | None = field(default=None, repr=False)

    @classmethod
    def open(
        cls,
        config: Config,
        output_dir: Path,
        seed: int,
        resumed: Checkpoint | None = None,
        signals: SignalCatcher | None = None,
    ) -> CheckpointKeeper:
        """Create the run's staging folder (or reopen the interrupted one); fingerprint the data.

        ``signals`` is the run's catcher when it catches signals from before the keeper opened.
        """
        data = {
            "data": fingerprint_file(config.data.path),
            "test_data": fingerprint_file(config.data.test_path) if config.data.test_path else None,
        }
        if resumed is None:
            staged = start_run(output_dir, config.name)
        else:  # finish beside the staging folder: the rename stays on one file system
            final = resumed.run.parent / str(resumed.state["final_name"])
            staged = StagedRun(staging=resumed.run, final=final)
        return cls(
            config=config,
            staged=staged,
            seed=seed,
            data=data,
            resumed=resumed,
            _signals=signals or SignalCatcher(),
        )

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
            self._resumed_best = restore_variables(model, self.resumed)
            initial_epoch = self.resumed.epoch
            previous = self.resumed.history
            if self.resumed.done or initial_epoch >= epochs:
                # nothing left to train; the callbacks still report how the fit ended
                # (EarlyStopping's stopped and best epochs, for metrics.json)
                callbacks = kwargs.get("callbacks") or []
                restore_callbacks(callbacks, self.resumed, self._resumed_best)
                end_restored_fit(model, callbacks)
                return _History(previous)
        self._callbacks = list(kwargs.pop("callbacks", None) or [])
        if self.resumed is not None:
            continue_logs(keras, self._callbacks, initial_epoch)
        callbacks = [*self._callbacks, make_callback(keras, self)]
        try:
            self._signals.phase = "training"
            with self._signals.installed(), self._signals.deferred():
                history = model.fit(
                    *args, callbacks=callbacks, initial_epoch=initial_epoch, **kwargs
                )
        except BaseException as exc:
            close_logs(self._callbacks)  # a stopped fit never reaches their on_train_end
            error = self.failed(exc)
            if error is None:
                raise
            raise error from (None if isinstance(error, TrainingInterrupted) else exc)
        history.history = {
            name: [*previous.get(name, []), *values] for name, values in history.history.items()
        }
        return history

    # -- what the callback calls ---------------------------------------------------------------

    def resumed_history(self) -> dict[str, list[float]]:
        """The history of the epochs a resumed run already completed (empty for a new run)."""
        return self.resumed.history if self.resumed is not None else {}

    def restore_state(self) -> None:
        """Give callbacks and Python's and NumPy's RNG back their state after the saved epoch.

        Called from ``on_train_begin``, not before ``fit``: while setting up, Keras may draw from
        the RNGs (on JAX it peeks a shuffled batch to build the step), which the uninterrupted
        run did once at its own start, not between epochs; and callbacks reset themselves in
        their own ``on_train_begin``, which runs before ours (ours comes last).
        """
        if self.resumed is None:
            return
        restore_callbacks(self._callbacks, self.resumed, self._resumed_best)
        restore_rng(self.resumed)

    def epoch_begins(self, epoch: int) -> None:
        """Note the (1-based) epoch that is running, for the interruption message."""
        self._epoch_running = epoch

    def check_signal(self) -> None:
        """Called between steps and phases: stop if a signal arrived."""
        self._signals.check()

    def entering(self, phase: str) -> None:
        """Note what the run does next (``evaluating``), for an interruption's message, after
        stopping if a signal arrived (an interrupt a library swallowed is acted on here)."""
        self._signals.check()
        self._signals.phase = phase

    def signals_deferred(self) -> Any:
        """A block that a first signal does not interrupt (publishing the run)."""
        return self._signals.deferred()

    @property
    def snapshot_epoch(self) -> int:
        """Epochs completed in the newest snapshot (0 before the first)."""
        return self._snapshot.epoch if self._snapshot is not None else 0

    def take_snapshot(
        self, model: Any, epoch: int, history: dict[str, list[float]], *, done: bool = False
    ) -> None:
        """Copy the state after ``epoch`` completed epochs to memory, then write it if due."""
        from keras import ops

        optimizer = model.optimizer
        weights = [np.array(ops.convert_to_numpy(v), copy=True) for v in model.variables]
        if not all(np.isfinite(w).all() for w in weights if np.issubdtype(w.dtype, np.floating)):
            raise LossNotFinite(max(epoch, self._epoch_running), None)
        self._snapshot = Snapshot(
            epoch=epoch,
            done=done,
            model=weights,
            optimizer=[np.array(ops.convert_to_numpy(v), copy=True) for v in optimizer.variables],
            history={name: list(values) for name, values in history.items()},
            python_rng=random.getstate(),
            numpy_rng=np.random.get_state(),
            callbacks=[callback_scalars(callback) for callback in self._callbacks],
            callback_arrays=[callback_best_weights(callback) for callback in self._callbacks],
        )
        due = (
            done
            or self._signals.received is not None
            or time.monotonic() - self._last_write >= MIN_WRITE_INTERVAL_S
        )
        if due:
            self.write_pending()

    def write_pending(self) -> None:
        """Write the newest snapshot if it is not on disk yet (atomic; the old one stays valid)."""
        snapshot = self._snapshot
        if snapshot is None or snapshot.written:
            return
        header = {
            "name": self.config.name,
            "final_name": self.staged.final.name,
            "seed": self.seed,
            "config": comparable_config(self.config),
            "config_sha256": self.config.fingerprint(),
            "data": self.data,
        }
        write_checkpoint(self.staged.staging, snapshot, header)
        self._last_write = time.monotonic()

    # -- failures ------------------------------------------------------------------------------

    def failed(self, exc: BaseException) -> BaseException | None:
        """What to raise instead of ``exc``; keeps the last checkpoint, drops an empty staging.

        Returns None when ``exc`` should propagate unchanged (a bug: exit 1). An error this
        returned comes back unchanged when an outer step asks again.
        """
        if exc is self._reported:
            return exc
        self._reported = self._failed(exc)
        return self._reported

    def _failed(self, exc: BaseException) -> BaseException | None:
        # A signal counts even when a library turned it into another error (or swallowed it).
        if isinstance(exc, (StopTraining, KeyboardInterrupt)) or self._signals.received is not None:
            signum = self._signals.received or signal.SIGINT
            self._write_quietly()
            abandon_run(self.staged)
            saved = self._saved_epoch()
            done = saved is not None and load_checkpoint(self.staged.staging).done
            return interrupted(
                self.config,
                self.staged.staging,
                signum,
                saved,
                self._epoch_running,
                done=done,
                phase=self._signals.phase,
            )
        if isinstance(exc, LossNotFinite):
            self._write_quietly()  # the newest snapshot is finite: NaN never reaches it
            abandon_run(self.staged)
            return self._not_finite(exc)
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

    def _not_finite(self, exc: LossNotFinite) -> CnnCliError:
        what = "the weights" if exc.value is None else f"the loss ({exc.value})"
        rate = self.config.compile.optimizer.args.get("learning_rate")
        key = "compile.optimizer" + (".learning_rate" if rate is not None else "")
        kept = self._saved_epoch()
        return CnnCliError(
            f"{what} became NaN or infinite in epoch {exc.epoch} of {self.config.fit.epochs};"
            " training stopped",
            where=self.config.locate(key),
            hint="lower the learning rate, or scale features that have large values"
            + (
                f"; the last finite epoch ({kept}) is kept: {self._next_step()}"
                if kept is not None
                else ", and train again"
            ),
        )

    def _write_quietly(self) -> None:
        try:
            self.write_pending()
        except OSError:
            pass  # the previous checkpoint is still intact; the error that matters is the caller's

    def _saved_epoch(self) -> int | None:
        if not has_checkpoint(self.staged.staging):
            return None
        return load_checkpoint(self.staged.staging).epoch

    def _next_step(self) -> str:
        if has_checkpoint(self.staged.staging):
            return f"resume with: {resume_command(self.config, self.staged.staging)}"
        return "train again"


class _History:
    """What ``model.fit`` returns when a resumed run had nothing left to fit."""

    def __init__(self, history: dict[str, list[float]]) -> None:
        self.history = history
