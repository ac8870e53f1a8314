"""Training on several devices or processes: the ``distribute:`` section at work.

``mirrored`` trains on every local device of one process: TensorFlow's ``MirroredStrategy``, or
Keras' JAX ``DataParallel``. ``data_parallel`` trains on several processes, on one machine or
many, through Keras 3's JAX distribution API: ``jax.distributed`` joins the processes (Keras'
own ``keras.distribution.initialize`` has no way to pass the heartbeat timeout or the bind
address), and ``DataParallel`` replicates the model and splits each batch between the devices.

How the workers agree:

- Every worker reads the same file and fits the preprocessing with the same code on the same
  bytes, so the statistics are computed identically; each worker then sends a SHA-256 of its
  preprocessing and split to the others, and a worker whose digest differs stops with one line
  (``agree_on_preprocessing``).
- The training rows are cut into one shard per device (row ``i`` belongs to shard
  ``i % shards``); a worker keeps and feeds only the shards of its own devices. Each shard is
  shuffled by (seed, epoch, shard), so one process with two devices feeds exactly the batches
  two processes with one device each feed: the weights are the same.
- Process 0 chooses the seed when the config has none; only process 0 writes the run folder
  and its checkpoints; the others read the checkpoint on ``--resume``.
- A heartbeat thread in every worker notes the others' signs of life in the coordination
  service's key-value store; a worker silent for ``heartbeat_timeout`` seconds makes the others
  print one line naming it and exit (``LOST_EXIT_CODE``): a worker waiting inside a collective
  operation cannot be interrupted by any Python exception, so the thread ends the process.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from cnncli.config.models import COORDINATOR_PATTERN, Config
from cnncli.errors import CnnCliError, Location
from cnncli.runtime import backend_module

PROCESS_ID_VARIABLE = "CNNCLI_PROCESS_ID"
COORDINATOR_VARIABLE = "CNNCLI_COORDINATOR"
#: Loopback: nothing listens beyond this machine unless a config or CNNCLI_COORDINATOR says so.
DEFAULT_COORDINATOR = "127.0.0.1:7777"
#: Seconds the workers wait for each other to join before giving up.
JOIN_TIMEOUT_S = 120
#: JAX's own heartbeat gives up this much later than ours, so our one line comes first.
JAX_HEARTBEAT_MARGIN_S = 10
#: Validation batches: no gradient, so large (as ``train.feed.EVALUATE_BATCH``).
EVALUATE_BATCH = 1024
#: A lost worker is a failure the user acts on (restart with --resume): exit 2, as every error.
LOST_EXIT_CODE = 2
_KEY = "cnncli"

LostCallback = Callable[[CnnCliError], None]


@dataclass(frozen=True)
class Worker:
    """One process's place in a distributed run (``strategy: none`` is a single worker)."""

    strategy: str = "none"
    process_id: int = 0
    num_processes: int = 1
    coordinator: str = DEFAULT_COORDINATOR
    heartbeat_timeout: int = 100

    @property
    def writes(self) -> bool:
        """Whether this process writes the run folder (process 0 only)."""
        return self.process_id == 0

    @property
    def joins(self) -> bool:
        """Whether this process joins others through a coordinator."""
        return self.strategy == "data_parallel" and self.num_processes > 1

    @property
    def name(self) -> str:
        return f"process {self.process_id} of {self.num_processes}"


def worker_for(config: Config, process_id: int | None = None) -> Worker:
    """This process's place: ``--process-id`` (or ``CNNCLI_PROCESS_ID``) and the coordinator.

    Raises:
        CnnCliError: a process id out of range or not a number, a process id without
            ``data_parallel``, or a ``CNNCLI_COORDINATOR`` that is not ``host:port``.
    """
    spec = config.distribute
    where = Location(key="--process-id")
    # the variable matters only to a config of several processes: one left set elsewhere
    # does not stop every other training
    text = os.environ.get(PROCESS_ID_VARIABLE, "").strip() if spec.num_processes > 1 else ""
    if process_id is None and text:
        where = Location(key=PROCESS_ID_VARIABLE)
        if not re.fullmatch(r"[0-9]{1,6}", text):
            raise CnnCliError(
                f"expected a process number, got {text!r}",
                where=where,
                hint=f"set it to 0..{spec.num_processes - 1}, or unset it",
            )
        process_id = int(text)
    process_id = process_id or 0
    if process_id and not spec.num_processes > 1:
        raise CnnCliError(
            f"process {process_id} given, but the config trains in one process",
            where=where,
            hint="set distribute.strategy: data_parallel and distribute.num_processes,"
            " or drop the process id",
        )
    if not 0 <= process_id < spec.num_processes:
        raise CnnCliError(
            f"process {process_id} is out of range for num_processes: {spec.num_processes}",
            where=where,
            hint=f"use 0..{spec.num_processes - 1}",
        )
    coordinator = spec.coordinator or os.environ.get(COORDINATOR_VARIABLE) or DEFAULT_COORDINATOR
    if not re.fullmatch(COORDINATOR_PATTERN, coordinator):
        raise CnnCliError(
            f"expected host:port, got {coordinator!r}",
            where=Location(key=COORDINATOR_VARIABLE),
            hint="e.g. 10.0.0.1:7777, or unset it for 127.0.0.1:7777",
        )
    return Worker(
        strategy=spec.strategy,
        process_id=process_id,
        num_processes=spec.num_processes,
        coordinator=coordinator,
        heartbeat_timeout=spec.heartbeat_timeout,
    )


@dataclass
class Session:
    """A started worker: the strategy's devices, the other workers, and the heartbeat."""

    worker: Worker
    keras: Any
    on_lost: LostCallback | None = None
    tf_strategy: Any = None
    _client: Any = field(default=None, repr=False)
    _stdout: int | None = field(default=None, repr=False)
    _stop: threading.Event = field(default_factory=threading.Event, repr=False)
    _lost_named: threading.Event = field(default_factory=threading.Event, repr=False)
    _lost_error: CnnCliError | None = field(default=None, repr=False)
    _waiting: bool = field(default=False, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _thread: threading.Thread | None = field(default=None, repr=False)

    @property
    def backend(self) -> str:
        return str(self.keras.backend.backend())

    @property
    def on_jax(self) -> bool:
        """Whether Keras' JAX distribution feeds the batches."""
        return self.worker.strategy != "none" and self.backend == "jax"

    @property
    def feeds_shards(self) -> bool:
        """Whether ``sharded_batches`` feed ``fit`` (under a JAX strategy)."""
        return self.on_jax

    # -- devices -------------------------------------------------------------------------------

    def shards(self) -> tuple[int, list[int]]:
        """(all data shards, this process's shards): one shard per device, in mesh order."""
        if not self.on_jax:
            return 1, [0]
        jax = backend_module("jax")
        devices = jax.devices()
        mine = [i for i, d in enumerate(devices) if d.process_index == jax.process_index()]
        return len(devices), mine

    @contextlib.contextmanager
    def building(self) -> Iterator[None]:
        """Around building the model: its variables are made replicated on every device."""
        if self.worker.strategy == "none":
            yield
            return
        if self.backend == "jax":
            distribution = self.keras.distribution
            # each process feeds its own shards already (sharded_batches)
            distribution.set_distribution(distribution.DataParallel(auto_shard_dataset=False))
            yield
            return
        tf = backend_module("tensorflow")
        gpus = tf.config.list_logical_devices("GPU")
        devices = [d.name for d in gpus or tf.config.list_logical_devices("CPU")]
        self.tf_strategy = tf.distribute.MirroredStrategy(devices=devices)
        with self.tf_strategy.scope():
            yield

    def undistributed(self, model: Any, rebuild: Callable[[], Any]) -> Any:
        """The trained model as one undistributed copy (predict fails in multi-process JAX);
        ``rebuild`` builds and compiles the same model afresh."""
        if not self.on_jax:
            return model
        weights = [local_value(v) for v in model.variables]
        optimizer = [local_value(v) for v in model.optimizer.variables]
        self.keras.distribution.set_distribution(None)
        copy = rebuild()
        for variable, value in zip(copy.variables, weights, strict=True):
            variable.assign(value)
        copy.optimizer.build(copy.trainable_variables)
        for variable, value in zip(copy.optimizer.variables, optimizer, strict=True):
            variable.assign(value)
        return copy

    def fit_inputs(
        self, inputs: dict[str, Any], config: Config, seed: int, first_epoch: int
    ) -> dict[str, Any]:
        """``fit_inputs``' arrays as this process's shards of each batch (``feeds_shards``);
        the validation rows too, unshuffled. Otherwise Keras gets the arrays as they are.
        """
        if not self.feeds_shards or "y" not in inputs:  # streaming feeds its own batches
            return inputs
        shards = self.shards()
        batches = sharded_batches(
            self.keras,
            inputs.pop("x"),
            inputs.pop("y"),
            config.fit.batch_size,
            shards,
            bool(inputs.pop("shuffle")),
            seed,
            first_epoch,
        )
        inputs.pop("batch_size")
        validation = inputs.pop("validation_data")
        if validation is not None:
            size = -(-EVALUATE_BATCH // shards[0]) * shards[0]
            validation = sharded_batches(self.keras, *validation, size, shards, False, seed)
        # No steps_per_epoch: told it, Keras keeps one data iterator across epochs, and on torch
        # a fresh one per epoch (as a resumed fit opens) draws from the generator the same way
        return {**inputs, "x": batches, "validation_data": validation}

    @contextlib.contextmanager
    def fitting(self) -> Iterator[None]:
        """Around ``fit``: a collective operation that failed because a worker went away
        waits for the heartbeat to name the lost worker (which ends this process).

        Raises:
            CnnCliError: the heartbeat named no one within the timeout.
        """
        try:
            yield
        except Exception as exc:
            if self._client is None or not _collective_failed(exc):
                raise
            with self._lock:
                if self._lost_error is not None:  # the heartbeat thread is ending the process
                    threading.Event().wait()
                self._waiting = True
            if self._lost_named.wait(self.worker.heartbeat_timeout + JAX_HEARTBEAT_MARGIN_S / 2):
                raise self._lost_error from None  # type: ignore[misc]  # set with the event
            raise CnnCliError(
                f"a collective operation between the workers failed ({_first_line(exc)});"
                f" {self.worker.name} stops, the run is not complete",
                where=Location(key="distribute"),
                hint="start every worker again with --resume to continue from the last checkpoint",
            ) from exc

    # -- agreeing --------------------------------------------------------------------------------

    def agree_on_seed(self, seed: int) -> int:
        """Process 0's seed, on every worker (each drew its own when the config has none)."""
        if self._client is None:
            return seed
        key = f"{_KEY}/seed"
        if self.worker.writes:
            self._client.key_value_set(key, str(seed))
            return seed
        return int(self._client.blocking_key_value_get(key, JOIN_TIMEOUT_S * 1000))

    def agree_on_preprocessing(self, digest: str) -> None:
        """Stop unless every worker fitted the same preprocessing and split (``digest``).

        Raises:
            CnnCliError: a worker's digest differs (its data file differs, say).
        """
        if self._client is None:
            return
        self._client.key_value_set(f"{_KEY}/preprocess/{self.worker.process_id}", digest)
        for other in range(self.worker.num_processes):
            theirs = self._client.blocking_key_value_get(
                f"{_KEY}/preprocess/{other}", JOIN_TIMEOUT_S * 1000
            )
            if theirs != digest:
                raise preprocessing_differs(self.worker, other)

    # -- the heartbeat ---------------------------------------------------------------------------

    def start_heartbeat(self) -> None:
        """Beat every second or so, and end this process when another worker stops beating."""
        if self._client is None:
            return
        self._thread = threading.Thread(target=self._beat, name="cnncli-heartbeat", daemon=True)
        self._thread.start()

    def _beat(self) -> None:
        worker, client = self.worker, self._client
        interval = min(1.0, worker.heartbeat_timeout / 10)
        others = [p for p in range(worker.num_processes) if p != worker.process_id]
        seen: dict[int, tuple[str, float]] = {p: ("", time.monotonic()) for p in others}
        count = 0
        coordinator_lost_since: float | None = None
        while not self._stop.wait(interval):
            now = time.monotonic()
            count += 1
            try:
                client.key_value_set(
                    f"{_KEY}/beat/{worker.process_id}", str(count), allow_overwrite=True
                )
                values = {p: _try_get(client, f"{_KEY}/beat/{p}") for p in others}
                coordinator_lost_since = None
            except Exception:  # noqa: BLE001 - the coordination service (process 0) is gone
                coordinator_lost_since = coordinator_lost_since or now
                if now - coordinator_lost_since >= min(worker.heartbeat_timeout, 5):
                    self._lost(0)
                    return
                continue
            for other, value in values.items():
                if value != seen[other][0]:
                    seen[other] = (value, now)
                elif now - seen[other][1] >= worker.heartbeat_timeout:
                    self._lost(other)
                    return

    def _lost(self, other: int) -> None:
        """Say which worker is lost once: raised by ``fitting`` when the main thread waits
        there, else printed here, and the process ends (the main thread may be stuck inside
        a collective operation)."""
        if self._stop.is_set():  # finished meanwhile
            return
        error = lost_worker(self.worker, other)
        with self._lock:
            self._lost_error = error
            waiting = self._waiting
            self._lost_named.set()
        self._stop.set()
        if waiting:
            return
        if self.on_lost is not None:
            self.on_lost(error)
        os._exit(LOST_EXIT_CODE)

    def finish(self) -> None:
        """Stop the heartbeat and leave the other workers (waits for them at a barrier)."""
        self._stop.set()
        if self._client is not None:
            backend_module("jax").distributed.shutdown()
            self._client = None
        if self._stdout is not None:
            os.dup2(self._stdout, 1)
            os.close(self._stdout)
            self._stdout = None


def start(worker: Worker, keras: Any, on_lost: LostCallback | None = None) -> Session:
    """Join the other workers (``data_parallel`` with several processes) before any JAX
    computation, and check the strategy runs on the backend Keras loaded.

    Raises:
        CnnCliError: the backend does not run the strategy (``CNNCLI_BACKEND`` forced another),
            or the workers did not all join within ``JOIN_TIMEOUT_S``.
    """
    session = Session(worker=worker, keras=keras, on_lost=on_lost)
    from cnncli.config.checks import STRATEGY_BACKENDS

    backends = STRATEGY_BACKENDS.get(worker.strategy, (session.backend,))
    if session.backend not in backends:
        raise CnnCliError(
            f"strategy {worker.strategy} needs backend {' or '.join(backends)};"
            f" this process runs {session.backend}",
            where=Location(key="distribute.strategy"),
            hint="unset CNNCLI_BACKEND, or set distribute.strategy: none",
        )
    if not worker.joins:
        return session
    if worker.writes:
        check_can_listen(worker.coordinator)
    jax = backend_module("jax")
    # Gloo prints "[Gloo] Rank 0 is connected ..." on file descriptor 1, where the results go
    session._stdout = os.dup(1)
    os.dup2(2, 1)
    try:
        jax.distributed.initialize(
            coordinator_address=worker.coordinator,
            num_processes=worker.num_processes,
            process_id=worker.process_id,
            initialization_timeout=JOIN_TIMEOUT_S,
            heartbeat_timeout_seconds=worker.heartbeat_timeout + JAX_HEARTBEAT_MARGIN_S,
            # the coordinator listens on the address given (JAX's default is every interface)
            coordinator_bind_address=worker.coordinator,
        )
    except Exception as exc:  # noqa: BLE001 - JAX raises bare RuntimeErrors (XlaRuntimeError)
        raise CnnCliError(
            f"{worker.name} could not join the others at {worker.coordinator} ({_first_line(exc)})",
            where=Location(key="distribute.coordinator"),
            hint=f"start all {worker.num_processes} processes within {JOIN_TIMEOUT_S} s"
            " (cnncli launch CONFIG --local N), with the same coordinator",
        ) from exc
    session._client = backend_module("jax._src.distributed").global_state.client
    session.start_heartbeat()
    return session


def check_can_listen(address: str) -> None:
    """Stop with one line unless process 0 can listen on ``address`` (JAX's coordinator crashed
    the process with a segmentation fault on a port in use or an address of another machine).

    Raises:
        CnnCliError: the port is taken, or the host is not an address of this machine.
    """
    host, port = address.rsplit(":", 1)
    host = host.strip("[]")
    try:
        family, kind, proto, _, where = socket.getaddrinfo(
            host, int(port), type=socket.SOCK_STREAM
        )[0]
        with socket.socket(family, kind, proto) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as gRPC binds
            probe.bind(where)
            probe.listen()
    except OSError as exc:
        raise CnnCliError(
            f"process 0 cannot listen on {address} ({exc.strerror or exc})",
            where=Location(key="distribute.coordinator"),
            hint="name a free port of this machine's address in distribute.coordinator or"
            " CNNCLI_COORDINATOR (cnncli launch picks a free one when neither is set)",
        ) from exc


def leave_after_failure(code: int) -> None:
    """End a worker that failed while joined to others at once, with ``code``.

    Leaving normally waits at JAX's shutdown barrier for workers that will never arrive, then
    aborts with pages of C++ log; the run's state is already saved (or cleaned up) by now.
    """
    if "jax" not in sys.modules:
        return
    if backend_module("jax._src.distributed").global_state.client is None:
        return
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def _collective_failed(exc: BaseException) -> bool:
    """Whether ``exc`` is JAX's error for a collective whose peer went away."""
    return "Gloo" in str(exc) or type(exc).__name__ == "XlaRuntimeError"


def _first_line(exc: BaseException) -> str:
    return str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__


def _try_get(client: Any, key: str) -> str:
    try:
        return str(client.key_value_try_get(key))
    except Exception as exc:  # noqa: BLE001 - NOT_FOUND before the other's first beat
        if "NOT_FOUND" in str(exc) or "not found" in str(exc).lower():
            return ""
        raise


def local_value(variable: Any) -> np.ndarray:
    """A replicated variable's value from this process's own copy (a multi-process array
    cannot be fetched whole)."""
    value = getattr(variable, "value", variable)
    if hasattr(value, "is_fully_addressable") and not value.is_fully_addressable:
        value = value.addressable_data(0)
    return np.array(value, copy=True)


def preprocessing_digest(*texts: str) -> str:
    """SHA-256 of a worker's fitted preprocessing and split, as JSON texts."""
    digest = hashlib.sha256()
    for text in texts:
        digest.update(text.encode())
        digest.update(b"\0")
    return digest.hexdigest()


def preprocessing_differs(worker: Worker, other: int) -> CnnCliError:
    return CnnCliError(
        f"process {other}'s preprocessing or split differs from process {worker.process_id}'s",
        where=Location(key="data.path"),
        hint="give every worker the same data file (same bytes) and the same config",
    )


def lost_worker(worker: Worker, other: int) -> CnnCliError:
    """The one line a worker prints when another stopped answering."""
    return CnnCliError(
        f"process {other} of {worker.num_processes} stopped answering for"
        f" {worker.heartbeat_timeout} s; {worker.name} stops, the run is not complete",
        where=Location(key="distribute"),
        hint="start every worker again with --resume to continue from the last checkpoint",
    )


def sharded_batches(
    keras: Any,
    x: np.ndarray,
    y: np.ndarray,
    batch_size: int,
    shards: tuple[int, list[int]],
    shuffle: bool,
    seed: int,
    first_epoch: int = 0,
) -> Any:
    """A ``PyDataset`` of this process's part of each global batch.

    Row ``i`` belongs to shard ``i % n``; each shard keeps ``len(x) // n`` rows (so every shard
    is the same size) and gives ``batch_size // n`` rows to each batch, shuffled by (seed,
    epoch, shard). This process's batch is its shards' parts in mesh order.
    """
    count, mine = shards
    rows = len(x) // count
    per_shard = max(1, batch_size // count)
    parts = [(x[s : rows * count : count], y[s : rows * count : count]) for s in mine]

    class ShardedBatches(keras.utils.PyDataset):  # type: ignore[misc, name-defined]
        def __init__(self) -> None:
            super().__init__(workers=1, use_multiprocessing=False)
            self.epoch = first_epoch
            self.orders = self._orders()

        def _orders(self) -> list[np.ndarray]:
            if not shuffle:
                return [np.arange(rows)] * len(mine)
            return [np.random.default_rng([seed, self.epoch, s]).permutation(rows) for s in mine]

        def __len__(self) -> int:
            return -(-rows // per_shard)

        def __getitem__(self, index: int) -> tuple[np.ndarray, np.ndarray]:
            take = [order[index * per_shard : (index + 1) * per_shard] for order in self.orders]
            xs = [px[t] for (px, _), t in zip(parts, take, strict=True)]
            ys = [py[t] for (_, py), t in zip(parts, take, strict=True)]
            return np.concatenate(xs), np.concatenate(ys)

        def on_epoch_end(self) -> None:
            self.epoch += 1
            self.orders = self._orders()

    return ShardedBatches()


def dropped_rows(n: int, shards: int) -> int:
    """Rows left out so that every shard holds the same number."""
    return n % shards
