"""One process at a time per run in progress: an ``flock`` on a file in its staging folder.

Two ``train --resume`` of one interrupted run (or a resume of a run still training) would write
the same checkpoint and race to publish the folder; the second is refused in one line instead.
The lock is the kernel's, so it goes away with its process, however that ends.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from pathlib import Path

from cnncli.errors import CnnCliError, Location
from cnncli.runs import LOCK_FILENAME


class RunLock:
    """An exclusive lock on a staging folder, held until ``release`` (or the process ends).

    Args:
        staging: the run's staging folder.

    Raises:
        CnnCliError: another process holds it (its pid is named).
    """

    def __init__(self, staging: Path) -> None:
        self.staging = staging
        self._fd: int | None = os.open(staging / LOCK_FILENAME, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(self._fd, 32, 0).decode(errors="replace").strip() or "unknown"
            self.release()
            raise CnnCliError(
                f"run {staging.name} is being resumed or trained by another process (pid {holder})",
                where=Location(file=str(staging)),
                hint="wait for that process to end, or stop it, then resume",
            ) from None
        os.ftruncate(self._fd, 0)
        os.pwrite(self._fd, f"{os.getpid()}\n".encode(), 0)

    def release(self) -> None:
        """Give the lock up (idempotent)."""
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.close(self._fd)
            self._fd = None

    def __del__(self) -> None:  # a run that ends by an exception still frees its folder
        self.release()
