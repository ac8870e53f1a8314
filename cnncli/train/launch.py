"""``cnncli launch CONFIG --local N``: N workers of one ``data_parallel`` run on this machine.

Each worker is a whole ``cnncli train CONFIG --process-id I`` process (JAX joins processes,
not threads). Without a coordinator in the config or ``CNNCLI_COORDINATOR``, the workers meet
on a free port of 127.0.0.1, so two launches on one machine do not collide.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from cnncli.config.models import Config
from cnncli.train.distribute import COORDINATOR_VARIABLE


def free_local_address() -> str:
    """``127.0.0.1:PORT`` with a port nothing listens on now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return f"127.0.0.1:{probe.getsockname()[1]}"


def worker_command(
    config_path: Path,
    overrides: tuple[str, ...],
    local: int,
    process_id: int,
    output: Path | None = None,
    resume: str | None = None,
    as_json: bool = False,
) -> list[str]:
    """The command line of worker ``process_id`` of ``local`` (``--json``: process 0 prints the
    results as ``train --json`` does)."""
    command = [sys.executable, "-m", "cnncli", "train", str(config_path)]
    for override in (
        *overrides,
        "distribute.strategy=data_parallel",
        f"distribute.num_processes={local}",
    ):
        command += ["--set", override]
    if output is not None:
        command += ["--output", str(output)]
    if resume is not None:
        command += [f"--resume={resume}"] if resume else ["--resume"]
    if as_json:
        command.append("--json")
    return [*command, "--process-id", str(process_id)]


def launch_local(
    config: Config,
    config_path: Path,
    overrides: tuple[str, ...],
    local: int,
    output: Path | None = None,
    resume: str | None = None,
    on_failure: Callable[[int, int], None] | None = None,
    as_json: bool = False,
) -> int:
    """Start ``local`` workers, wait for every one, and return the first failure's exit code.

    SIGTERM is passed on to the workers; Ctrl-C reaches them from the terminal already, so this
    process only waits for them to stop (each keeps its last complete epoch).

    Args:
        config: the loaded config (its coordinator, if any, is used as is).
        config_path, overrides: what each worker loads.
        local: how many workers.
        output, resume: ``train``'s ``--output`` and ``--resume``.
        on_failure: called with (process id, exit code) for each worker that failed.
        as_json: the results as one JSON object on stdout (process 0's).
    """
    env = dict(os.environ)
    env.pop("CNNCLI_PROCESS_ID", None)  # each worker gets --process-id
    if config.distribute.coordinator is None and not env.get(COORDINATOR_VARIABLE):
        env[COORDINATOR_VARIABLE] = free_local_address()
    workers = [
        subprocess.Popen(
            worker_command(config_path, overrides, local, index, output, resume, as_json),
            env=env,
            # process 0 prints the results; the others' stdout holds nothing of use
            stdout=None if index == 0 else subprocess.DEVNULL,
        )
        for index in range(local)
    ]

    def forward(signum: int, _frame: object) -> None:
        if signum == signal.SIGTERM:
            for worker in workers:
                if worker.poll() is None:
                    worker.send_signal(signum)

    previous = {sig: signal.signal(sig, forward) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        first_failure = 0
        pending = dict(enumerate(workers))
        while pending:
            for index, worker in list(pending.items()):
                code = worker.poll()
                if code is None:
                    continue
                del pending[index]
                if code != 0:
                    code = code if code > 0 else 128 - code  # killed by a signal
                    first_failure = first_failure or code
                    if on_failure is not None:
                        on_failure(index, code)
            time.sleep(0.1)
        return first_failure
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
