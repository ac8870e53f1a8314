"""SIGINT/SIGTERM: stop after the current step, and say in one line how to resume."""

from __future__ import annotations

import shlex
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from cnncli.config.models import Config
from cnncli.errors import CnnCliError, Location


class TrainingInterrupted(CnnCliError):
    """Training stopped on SIGINT/SIGTERM; exit code 128 + signal number (130, 143)."""

    def __init__(
        self, message: str, *, signum: int, where: Location | None, hint: str | None
    ) -> None:
        super().__init__(message, where=where, hint=hint)
        self.signum = signum
        self.exit_code = 128 + signum


class StopTraining(Exception):
    """Raised from a callback to leave ``model.fit`` after the current step."""


class SignalCatcher:
    """Turns SIGINT/SIGTERM into a clean stop at every phase of a run.

    Inside ``deferred()`` (fitting, publishing the run) a signal is only noted: fit stops after
    the current step and a run being published is finished. Elsewhere (reading the data,
    evaluating, saving) it also raises ``KeyboardInterrupt`` at once. Either way ``received``
    keeps it, so an interrupt that a library swallows or turns into another error (a CSV or XLA
    error) still ends the run as interrupted; a second signal always stops at once.
    """

    def __init__(self) -> None:
        self.received: int | None = None
        self.phase = "starting"
        self._deferring = 0
        self._installed = False

    @contextmanager
    def installed(self) -> Iterator[None]:
        """Catch the signals inside the block (only the main thread can install handlers).

        Nested use keeps the outer handlers.
        """
        if self._installed or threading.current_thread() is not threading.main_thread():
            yield
            return

        def handle(signum: int, _frame: Any) -> None:
            first = self.received is None
            if first:
                self.received = signum
            if not (first and self._deferring):
                raise KeyboardInterrupt

        previous = {sig: signal.signal(sig, handle) for sig in (signal.SIGINT, signal.SIGTERM)}
        self._installed = True
        try:
            yield
        finally:
            self._installed = False
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    @contextmanager
    def deferred(self) -> Iterator[None]:
        """Inside, a first signal is noted but does not interrupt; ``check`` acts on it."""
        self._deferring += 1
        try:
            yield
        finally:
            self._deferring -= 1

    def check(self) -> None:
        """Called between steps and phases: raise ``StopTraining`` if a signal arrived."""
        if self.received is not None:
            raise StopTraining


def interrupted(
    config: Config,
    staging: Path | None,
    signum: int,
    saved: int | None,
    running: int,
    *,
    done: bool = False,
    phase: str = "training",
) -> TrainingInterrupted:
    """The error that reports an interruption and how to resume.

    Args:
        config: the config being trained.
        staging: the run's staging folder (None before it was created).
        signum: the signal that stopped it.
        saved: epochs in the last checkpoint on disk, or None when there is none.
        running: the epoch that was running (1-based).
        done: the checkpoint holds the finished fit (the signal came while saving).
        phase: what the run was doing, for a signal outside training (``reading the data``).
    """
    name = signal.Signals(signum).name
    epochs = config.fit.epochs
    if saved is None or staging is None:
        when = f"during epoch {running or 1} of {epochs}" if running else f"while {phase}"
        return TrainingInterrupted(
            f"interrupted by {name} {when}, before any epoch completed; nothing to resume",
            signum=signum,
            where=None,
            hint="train again",
        )
    if done or saved >= epochs:
        when = (
            "as training ended" if phase == "training" else f"while {phase}, after training ended"
        )
        return TrainingInterrupted(
            f"interrupted by {name} {when}; the finished training ({saved} epoch(s)) is saved here",
            signum=signum,
            where=Location(file=str(staging)),
            hint=f"resume with: {resume_command(config, staging)}",
        )
    return TrainingInterrupted(
        f"interrupted by {name} during epoch {min(saved + 1, epochs)} of {epochs};"
        f" {saved} complete epoch(s) are saved here",
        signum=signum,
        where=Location(file=str(staging)),
        hint=f"resume with: {resume_command(config, staging)}",
    )


def interrupted_after_saving(run_dir: Path, signum: int) -> TrainingInterrupted:
    """The error for a signal that came after the run was published (while it was shown): the
    run is complete, so the line names it instead of a resume command."""
    return TrainingInterrupted(
        f"interrupted by {signal.Signals(signum).name} after the run was saved; it is complete",
        signum=signum,
        where=Location(file=str(run_dir)),
        hint=f"see its results with: cnncli evaluate {shlex.quote(str(run_dir))}",
    )


def resume_command(config: Config, staging: Path) -> str:
    """The command that continues this run, with the ``--set`` options it was started with
    (several processes: ``launch`` on this machine, which starts them all)."""
    processes = config.distribute.num_processes
    parts = ["cnncli", "train", config.source.file]
    if processes > 1:
        parts = ["cnncli", "launch", config.source.file, "--local", str(processes)]
    for text in config.source.overrides.values():
        parts += ["--set", text]
    parts += ["--resume", str(staging)]
    return " ".join(shlex.quote(part) for part in parts)
