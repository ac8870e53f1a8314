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
    """Turns SIGINT/SIGTERM into "stop after this step"; a second one stops at once."""

    def __init__(self) -> None:
        self.received: int | None = None

    @contextmanager
    def installed(self) -> Iterator[None]:
        """Catch the signals inside the block (only the main thread can install handlers)."""
        if threading.current_thread() is not threading.main_thread():
            yield
            return

        def handle(signum: int, _frame: Any) -> None:
            if self.received is not None:  # asked twice: do not wait for the step
                raise KeyboardInterrupt
            self.received = signum

        previous = {sig: signal.signal(sig, handle) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    def check(self) -> None:
        """Called between steps: raise ``StopTraining`` if a signal arrived."""
        if self.received is not None:
            raise StopTraining


def interrupted(
    config: Config, staging: Path, signum: int, saved: int | None, running: int
) -> TrainingInterrupted:
    """The error that reports an interruption and how to resume.

    Args:
        config: the config being trained.
        staging: the run's staging folder.
        signum: the signal that stopped it.
        saved: epochs in the last checkpoint on disk, or None when there is none.
        running: the epoch that was running (1-based).
    """
    name = signal.Signals(signum).name
    epochs = config.fit.epochs
    if saved is None:
        return TrainingInterrupted(
            f"interrupted by {name} during epoch {running or 1} of {epochs},"
            " before any epoch completed; nothing to resume",
            signum=signum,
            where=None,
            hint="train again",
        )
    return TrainingInterrupted(
        f"interrupted by {name} during epoch {min(saved + 1, epochs)} of {epochs};"
        f" {saved} complete epoch(s) are saved here",
        signum=signum,
        where=Location(file=str(staging)),
        hint=f"resume with: {resume_command(config, staging)}",
    )


def resume_command(config: Config, staging: Path) -> str:
    """The command that continues this run, with the ``--set`` options it was started with."""
    parts = ["cnncli", "train", config.source.file]
    for text in config.source.overrides.values():
        parts += ["--set", text]
    parts += ["--resume", str(staging)]
    return " ".join(shlex.quote(part) for part in parts)
