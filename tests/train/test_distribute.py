"""cnncli/train/distribute.py and launch.py: the distribute: section, workers, shards, the
heartbeat, and real multi-process runs on 127.0.0.1 (data_parallel on JAX, mirrored on TF)."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
import yaml

from cnncli.cli import cli
from cnncli.config.models import load_config
from cnncli.errors import CnnCliError
from cnncli.runs import LATEST_LINK
from cnncli.train import distribute
from cnncli.train.checkpoints import load_checkpoint
from cnncli.train.launch import worker_command
from tests.conftest import ROOT, base_config, error_lines, problems_of, seed_like_rows
from tests.train.conftest import staging_folders, weights_of

# ---------------------------------------------------------------------------------------------
# The config


def dp_config(csv: Path, **distribute_: Any) -> dict[str, Any]:
    config = base_config(csv, backend="jax")
    config["distribute"] = {"strategy": "data_parallel", "num_processes": 2, **distribute_}
    return config


@pytest.mark.parametrize(
    ("change", "key", "words"),
    [
        ({"backend": "tensorflow"}, "distribute.strategy", "strategy data_parallel needs backend jax, not tensorflow"),
        ({"backend": "torch", "distribute": {"strategy": "mirrored"}}, "distribute.strategy", "needs backend tensorflow or jax, not torch"),
        ({"distribute": {"strategy": "mirrored", "num_processes": 2}}, "distribute.num_processes", "num_processes: 2 needs strategy: data_parallel"),
        ({"fit": {"batch_size": 9}}, "fit.batch_size", "batch_size 9 does not split evenly between 2 processes"),
        ({"data": {"streaming": True}}, "data.streaming", "streaming is not supported yet"),
    ],
)  # fmt: skip
def test_distribute_combinations_that_cannot_run_are_config_errors(
    tmp_path, tiny_csv, write_config, change, key, words
):
    config = dp_config(tiny_csv)
    for section, value in change.items():
        if isinstance(value, dict):
            config[section] = {**config.get(section, {}), **value}
            if section == "data":
                config["data"]["path"] = str(tiny_csv)
        else:
            config[section] = value
    with pytest.raises(Exception) as caught:
        load_config(write_config(config))
    [problem] = problems_of(caught)
    assert words in problem.message
    assert problem.where.key == key


def test_coordinator_must_be_host_and_port(write_config, tiny_csv):
    for bad in ("127.0.0.1", "127.0.0.1:0", "host:99999", "a b:1"):
        with pytest.raises(Exception) as caught:
            load_config(write_config(dp_config(tiny_csv, coordinator=bad)))
        [problem] = problems_of(caught)
        assert problem.where.key == "distribute.coordinator"
    ok = load_config(write_config(dp_config(tiny_csv, coordinator="[::1]:7777")))
    assert ok.distribute.coordinator == "[::1]:7777"


def test_an_unset_distribute_section_leaves_the_fingerprint_as_before(write_config, tiny_csv):
    plain = load_config(write_config(base_config(tiny_csv)))
    assert "distribute" not in plain.to_yaml_dict()
    assert "distribute" in load_config(write_config(dp_config(tiny_csv))).to_yaml_dict()


# ---------------------------------------------------------------------------------------------
# A worker's place


def test_process_id_comes_from_the_option_then_the_environment(monkeypatch, write_config, tiny_csv):
    config = load_config(write_config(dp_config(tiny_csv)))
    monkeypatch.delenv(distribute.COORDINATOR_VARIABLE, raising=False)
    monkeypatch.setenv(distribute.PROCESS_ID_VARIABLE, "1")
    worker = distribute.worker_for(config)
    assert (worker.process_id, worker.writes, worker.coordinator) == (1, False, "127.0.0.1:7777")
    assert distribute.worker_for(config, 0).writes
    monkeypatch.setenv(distribute.COORDINATOR_VARIABLE, "10.0.0.1:7000")
    assert distribute.worker_for(config).coordinator == "10.0.0.1:7000"
    single = load_config(write_config(base_config(tiny_csv)))
    assert distribute.worker_for(single).process_id == 0  # the variable is for several processes


@pytest.mark.parametrize(
    ("env", "option", "line"),
    [
        ({"CNNCLI_PROCESS_ID": "one"}, None, "CNNCLI_PROCESS_ID: expected a process number, got 'one'; set it to 0..1, or unset it"),
        ({}, 2, "--process-id: process 2 is out of range for num_processes: 2; use 0..1"),
        ({"CNNCLI_COORDINATOR": "nohost"}, 0, "CNNCLI_COORDINATOR: expected host:port, got 'nohost'; e.g. 10.0.0.1:7777, or unset it for 127.0.0.1:7777"),
    ],
)  # fmt: skip
def test_a_bad_process_id_or_coordinator_is_one_line(
    monkeypatch, write_config, tiny_csv, env, option, line
):
    config = load_config(write_config(dp_config(tiny_csv)))
    for name in (distribute.PROCESS_ID_VARIABLE, distribute.COORDINATOR_VARIABLE):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(CnnCliError) as caught:
        distribute.worker_for(config, option)
    assert caught.value.one_line() == line


def test_a_process_id_without_several_processes_is_refused_before_training(
    runner, write_config, tiny_csv, tmp_path
):
    config = write_config(base_config(tiny_csv))
    result = runner.invoke(
        cli, ["train", str(config), "--output", str(tmp_path / "runs"), "--process-id", "1"]
    )
    assert result.exit_code == 2
    assert error_lines(result) == [
        "error: --process-id: process 1 given, but the config trains in one process; set"
        " distribute.strategy: data_parallel and distribute.num_processes, or drop the process id"
    ]
    assert not (tmp_path / "runs").exists()


def test_launch_starts_each_worker_with_its_process_id_and_the_strategy(tmp_path):
    command = worker_command(tmp_path / "c.yaml", ("fit.epochs=2",), 3, 2, tmp_path, "")
    assert command[1:5] == ["-m", "cnncli", "train", str(tmp_path / "c.yaml")]
    assert command[5:] == [
        "--set", "fit.epochs=2",
        "--set", "distribute.strategy=data_parallel",
        "--set", "distribute.num_processes=3",
        "--output", str(tmp_path),
        "--resume",
        "--process-id", "2",
    ]  # fmt: skip
    with_json = worker_command(tmp_path / "c.yaml", (), 2, 0, as_json=True)
    assert with_json[-3:] == ["--json", "--process-id", "0"]


# ---------------------------------------------------------------------------------------------
# Shards


class _PyDataset:
    def __init__(self, workers: int = 1, use_multiprocessing: bool = False) -> None:
        pass


FAKE_KERAS = SimpleNamespace(utils=SimpleNamespace(PyDataset=_PyDataset))


def _epoch(dataset: Any) -> list[tuple[np.ndarray, np.ndarray]]:
    batches = [dataset[i] for i in range(len(dataset))]
    dataset.on_epoch_end()
    return batches


def test_two_processes_feed_exactly_the_batches_one_process_with_two_devices_feeds():
    x = np.arange(23 * 2, dtype=np.float32).reshape(23, 2)
    y = np.arange(23)
    both = distribute.sharded_batches(FAKE_KERAS, x, y, 8, (2, [0, 1]), True, 7)
    first = distribute.sharded_batches(FAKE_KERAS, x, y, 8, (2, [0]), True, 7)
    second = distribute.sharded_batches(FAKE_KERAS, x, y, 8, (2, [1]), True, 7)
    epochs = []
    for _ in range(2):
        whole, a, b = _epoch(both), _epoch(first), _epoch(second)
        assert len(whole) == len(a) == len(b) == 3  # 11 rows a shard, 4 of them a batch
        for (wx, wy), (ax, ay), (bx, by) in zip(whole, a, b, strict=True):
            assert np.array_equal(wx, np.concatenate([ax, bx]))
            assert np.array_equal(wy, np.concatenate([ay, by]))
            assert set(ay) <= set(range(0, 22, 2)) and set(by) <= set(range(1, 22, 2))
        epochs.append(np.concatenate([by for _, by in whole]))
    assert sorted(epochs[0]) == list(range(22))  # every row once, row 22 left out
    assert distribute.dropped_rows(23, 2) == 1
    assert not np.array_equal(epochs[0], epochs[1])  # shuffled anew each epoch
    resumed = distribute.sharded_batches(FAKE_KERAS, x, y, 8, (2, [0, 1]), True, 7, first_epoch=1)
    assert np.array_equal(np.concatenate([by for _, by in _epoch(resumed)]), epochs[1])


# ---------------------------------------------------------------------------------------------
# Agreeing and the heartbeat, against a stand-in for JAX's key-value store


class FakeStore:
    def __init__(self, values: dict[str, str] | None = None) -> None:
        self.values = dict(values or {})

    def key_value_set(self, key: str, value: str, allow_overwrite: bool = False) -> None:
        self.values[key] = value

    def key_value_try_get(self, key: str) -> str:
        if key not in self.values:
            raise RuntimeError(f"NOT_FOUND: {key}")
        return self.values[key]

    def blocking_key_value_get(self, key: str, timeout_ms: int) -> str:
        return self.values[key]


def _session(store: FakeStore, process_id: int = 0, **worker: Any) -> distribute.Session:
    session = distribute.Session(
        worker=distribute.Worker("data_parallel", process_id, 2, **worker), keras=None
    )
    session._client = store
    return session


def test_workers_agree_on_process_0s_seed_and_refuse_a_different_preprocessing():
    store = FakeStore()
    assert _session(store, 0).agree_on_seed(11) == 11
    assert _session(store, 1).agree_on_seed(99) == 11
    store.values["cnncli/preprocess/1"] = "same"
    _session(store, 0).agree_on_preprocessing("same")
    store.values["cnncli/preprocess/1"] = "other"
    with pytest.raises(CnnCliError) as caught:
        _session(store, 0).agree_on_preprocessing("same")
    assert caught.value.one_line() == (
        "data.path: process 1's preprocessing or split differs from process 0's;"
        " give every worker the same data file (same bytes) and the same config"
    )
    assert distribute.preprocessing_digest("a", "b") != distribute.preprocessing_digest("ab", "")


def test_a_silent_worker_is_named_in_one_line_after_the_heartbeat_timeout(monkeypatch):
    exits: list[int] = []
    lines: list[str] = []
    monkeypatch.setattr(distribute.os, "_exit", exits.append)
    session = _session(FakeStore({"cnncli/beat/1": "3"}), 0, heartbeat_timeout=2)
    session.on_lost = lambda error: (lines.append(error.one_line()), session._stop.set())
    start = time.monotonic()
    session.start_heartbeat()
    session._thread.join(10)
    assert 2 <= time.monotonic() - start < 5
    assert exits == [distribute.LOST_EXIT_CODE]
    assert lines == [
        "distribute: process 1 of 2 stopped answering for 2 s; process 0 of 2 stops, the"
        " run is not complete; start every worker again with --resume to continue from the last"
        " checkpoint"
    ]


# ---------------------------------------------------------------------------------------------
# Real processes on 127.0.0.1

WORKER_ENV = {"CNNCLI_BACKEND": "jax", "TF_CPP_MIN_LOG_LEVEL": "3", "XLA_FLAGS": ""}


def _free_address() -> str:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return f"127.0.0.1:{probe.getsockname()[1]}"


def _cnncli(args: list[str], env: dict[str, str], timeout: int = 240) -> Any:
    return subprocess.run(
        [sys.executable, "-m", "cnncli", *args],
        env={**os.environ, **WORKER_ENV, **env},
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
        check=False,
    )


def _complete_runs(output: Path) -> list[Path]:
    return [p for p in output.iterdir() if not p.name.startswith(".") and p.name != LATEST_LINK]


@pytest.fixture
def dp_yaml(tmp_path: Path) -> Path:
    csv = tmp_path / "rows.csv"
    csv.write_text(seed_like_rows(90))
    config = dp_config(csv, heartbeat_timeout=5)
    config["fit"] = {"epochs": 3, "batch_size": 8, "verbose": False}
    path = tmp_path / "dp.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


@pytest.mark.slow
def test_two_processes_train_the_weights_of_one_process_on_two_devices(runner, tmp_path, dp_yaml):
    env = {"CNNCLI_CACHE_DIR": str(tmp_path / "cache")}
    launched = _cnncli(
        ["launch", str(dp_yaml), "--local", "2", "--output", str(tmp_path / "two")], env
    )
    assert launched.returncode == 0, launched.stderr
    [run] = _complete_runs(tmp_path / "two")  # process 0 alone wrote a run folder
    assert launched.stdout.splitlines()[-1] == str(run)
    assert not staging_folders(tmp_path / "two")
    single = _cnncli(
        ["train", str(dp_yaml), "--output", str(tmp_path / "one"), "--set", "distribute.num_processes=1"],
        {**env, "XLA_FLAGS": "--xla_force_host_platform_device_count=2"},
    )  # fmt: skip
    assert single.returncode == 0, single.stderr
    [reference] = _complete_runs(tmp_path / "one")
    for a, b in zip(weights_of(run), weights_of(reference), strict=True):
        assert np.array_equal(a, b)
    manifest = json.loads((run / "manifest.json").read_text())
    assert (manifest["backend"], manifest["onnx"]["checked"]) == ("jax", True)
    predicted = runner.invoke(
        cli, ["predict", str(run), "--input", "3,30,5"], catch_exceptions=False
    )
    assert predicted.exit_code == 0
    assert re.match(r"3,30,5 → (low|medium|high)  \(high: 0\.\d+ ", predicted.stdout)


@pytest.mark.slow
def test_a_killed_worker_stops_the_other_within_the_timeout_and_the_run_resumes(
    runner, tmp_path, dp_yaml
):
    output = tmp_path / "runs"
    env = {
        **os.environ,
        **WORKER_ENV,
        "CNNCLI_COORDINATOR": _free_address(),
        "CNNCLI_CACHE_DIR": str(tmp_path / "cache"),
    }
    workers = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "cnncli",
                "train",
                str(dp_yaml),
                "--output",
                str(output),
                "--set",
                "fit.epochs=100000",
                "--process-id",
                str(index),
            ],
            env=env,
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )  # fmt: skip
        for index in range(2)
    ]
    try:
        deadline = time.monotonic() + 180
        while not any(output.glob(".tmp-*/checkpoints/state.json")):
            assert all(w.poll() is None for w in workers), workers[0].stderr.read()
            assert time.monotonic() < deadline, "no checkpoint within 180 s"
            time.sleep(0.1)
        time.sleep(0.5)  # mid-epoch
        workers[1].send_signal(signal.SIGKILL)
        killed = time.monotonic()
        workers[0].wait(timeout=5 + 25)
        waited = time.monotonic() - killed
        stderr = workers[0].stderr.read()
    finally:
        for worker in workers:
            worker.kill()
            worker.wait()
            worker.stderr.close()
    assert workers[0].returncode == distribute.LOST_EXIT_CODE, stderr
    assert waited < 5 + 15
    assert stderr.splitlines()[-1].startswith(
        "error: distribute: process 1 of 2 stopped answering for 5 s; process 0 of 2 stops,"
    ), stderr
    assert not (output / LATEST_LINK).exists() and not _complete_runs(output)
    [staging] = staging_folders(output)
    saved = load_checkpoint(staging).epoch
    assert saved >= 1
    resumed = _cnncli(
        ["launch", str(dp_yaml), "--local", "2", "--output", str(output), "--resume",
         "--set", f"fit.epochs={saved + 1}"],
        {"CNNCLI_CACHE_DIR": str(tmp_path / "cache")},
    )  # fmt: skip
    assert resumed.returncode == 0, resumed.stderr
    [run] = _complete_runs(output)
    assert (run / "history.csv").read_text().count("\n") == saved + 2  # header + every epoch


MIRRORED_SCRIPT = textwrap.dedent(
    """
    import json, sys
    import tensorflow as tf
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    from cnncli.config.models import load_config
    from cnncli.train.run import train_run
    runs = {}
    for strategy in ("mirrored", "none"):
        config = load_config(sys.argv[1], [f"distribute.strategy={strategy}",
                                           "distribute.num_processes=1", "backend=tensorflow"])
        runs[strategy] = str(train_run(config, sys.argv[2] + "/" + strategy).run_dir)
    print(json.dumps({"devices": len(tf.config.list_logical_devices("CPU")), **runs}))
    """
)


@pytest.mark.slow
def test_mirrored_over_two_cpu_devices_matches_one_device(tmp_path, dp_yaml):
    done = subprocess.run(
        [sys.executable, "-c", MIRRORED_SCRIPT, str(dp_yaml), str(tmp_path)],
        env={**os.environ, "CNNCLI_BACKEND": "tensorflow", "TF_CPP_MIN_LOG_LEVEL": "3"},
        capture_output=True, text=True, timeout=240, cwd=ROOT, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    runs = json.loads(done.stdout.splitlines()[-1])
    assert runs["devices"] == 2
    mirrored, single = weights_of(Path(runs["mirrored"])), weights_of(Path(runs["none"]))
    for a, b in zip(mirrored, single, strict=True):
        np.testing.assert_allclose(a, b, atol=1e-5)


def test_process_0_says_in_one_line_when_it_cannot_listen_on_the_coordinator_address():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        address = f"127.0.0.1:{taken.getsockname()[1]}"
        with pytest.raises(CnnCliError) as caught:
            distribute.check_can_listen(address)  # JAX's coordinator segfaulted here
    assert caught.value.one_line().startswith(
        f"distribute.coordinator: process 0 cannot listen on {address} (Address already in use);"
    )
    distribute.check_can_listen(_free_address())
