"""The fault suite (issue 6): never lose work, never run foreign code, say what is wrong with data.

Each test injects one fault (a signal, SIGKILL, a full disk, a tampered or hostile file, a dirty
CSV, a hostile YAML document) and checks the promise the README's "What cnncli promises" section
makes about it: the exit code, the one-line message, and what is left on disk.
"""

from __future__ import annotations

import ast
import errno
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

import cnncli
from cnncli.cli import cli
from cnncli.config.models import load_config
from cnncli.errors import CnnCliError
from cnncli.runs import (
    CHECKPOINTS_DIRNAME,
    LATEST_LINK,
    MANIFEST_FILENAME,
    MODEL_FILENAME,
    finish_run,
    load_keras_model,
    open_run,
    sha256_file,
    start_run,
)
from cnncli.train import checkpoints
from tests.conftest import base_config, seed_like_rows

PACKAGE = Path(cnncli.__file__).parent


def resume_config(csv: Path, epochs: int) -> dict[str, Any]:
    """A small stack with Dropout, so a resume must restore RNG state as well as weights."""
    config = base_config(csv)
    config["model"]["layers"] = [
        {"type": "Dense", "units": 16, "activation": "relu"},
        {"type": "Dropout", "rate": 0.3},
        {"type": "Dense", "units": "auto", "activation": "softmax"},
    ]
    config["fit"] = {"epochs": epochs, "batch_size": 8, "verbose": False}
    return config


def weights_of(run: Path) -> list[np.ndarray]:
    from cnncli.runtime import import_keras

    model = import_keras().saving.load_model(run / MODEL_FILENAME, safe_mode=True, compile=False)
    return [np.asarray(w) for w in model.get_weights()]


def assert_same_run(first: Path, second: Path, context: str = "") -> None:
    """Bit-identical weights, metrics.json and history.csv."""
    a, b = weights_of(first), weights_of(second)
    assert len(a) == len(b), context
    assert all(np.array_equal(x, y) for x, y in zip(a, b, strict=True)), context
    assert (first / "metrics.json").read_bytes() == (second / "metrics.json").read_bytes(), context
    assert (first / "history.csv").read_bytes() == (second / "history.csv").read_bytes(), context


def staging_folders(output: Path) -> list[Path]:
    return sorted(output.glob(".tmp-*"))


def fake_complete_run(output: Path) -> Path:
    """A complete run already in ``output`` so we can see that ``latest`` stays on it."""
    staged = start_run(output, "earlier")
    for name in ("config.yaml", "preprocess.json", "model.keras"):
        (staged.staging / name).write_text("{}")
    return finish_run(staged, {})


def interrupt_after(
    monkeypatch: pytest.MonkeyPatch, epoch: int, signum: int = signal.SIGINT
) -> None:
    """Send ``signum`` to this process right after the snapshot of ``epoch`` is taken."""
    take_snapshot = checkpoints.CheckpointKeeper.take_snapshot

    def take_then_signal(self, model, done_epoch, history, **kwargs):
        take_snapshot(self, model, done_epoch, history, **kwargs)
        if done_epoch == epoch and not kwargs.get("done"):
            os.kill(os.getpid(), signum)

    monkeypatch.setattr(checkpoints.CheckpointKeeper, "take_snapshot", take_then_signal)


def interrupt_then_resume(runner, monkeypatch, config_path: Path, output: Path, epoch: int) -> Path:
    """``cnncli train`` stopped by SIGINT after ``epoch``, then resumed in-process: the run."""
    from cnncli.train.run import train_run

    interrupt_after(monkeypatch, epoch=epoch)
    result = runner.invoke(cli, ["train", str(config_path), "--output", str(output)])
    assert result.exit_code == 130, result.output
    monkeypatch.undo()
    [staging] = staging_folders(output)
    assert checkpoints.load_checkpoint(staging).epoch == epoch
    return train_run(load_config(config_path), output, resume=str(staging)).run_dir


def error_lines(result) -> list[str]:
    return [line for line in result.stderr.splitlines() if line.startswith("error:")]


@pytest.fixture(scope="module")
def resume_csv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("resume-data") / "rows.csv"
    path.write_text(seed_like_rows(300, seed=3))
    return path


@pytest.fixture(scope="module")
def reference_runs(tmp_path_factory: pytest.TempPathFactory, resume_csv: Path) -> tuple[Path, Path]:
    """The same 6-epoch config trained twice, uninterrupted."""
    from cnncli.train.run import train_run

    folder = tmp_path_factory.mktemp("reference")
    config_path = folder / "resume.yaml"
    config_path.write_text(yaml.safe_dump(resume_config(resume_csv, epochs=6)))
    first = train_run(load_config(config_path), folder / "first").run_dir
    second = train_run(load_config(config_path), folder / "second").run_dir
    return first, second


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A one-epoch run trained without a seed."""
    from cnncli.train.run import train_run

    folder = tmp_path_factory.mktemp("tiny")
    csv = folder / "tiny.csv"
    csv.write_text(seed_like_rows(30))
    config = base_config(csv)
    del config["seed"]
    config_path = folder / "tiny.yaml"
    config_path.write_text(yaml.safe_dump(config))
    return train_run(load_config(config_path), folder / "runs").run_dir


@pytest.fixture
def run_copy(tiny_run: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "run"
    shutil.copytree(tiny_run, copy)
    return copy


def rewrite_manifest(run: Path, **changes: Any) -> None:
    """What an attacker who swaps a file would do: recompute its sha256 in the manifest too."""
    manifest = json.loads((run / MANIFEST_FILENAME).read_text())
    manifest["files"] = {name: sha256_file(run / name) for name in manifest["files"]}
    manifest.update(changes)
    (run / MANIFEST_FILENAME).write_text(json.dumps(manifest))


# ---------------------------------------------------------------------------------------------
# Reproducibility and resume


@pytest.mark.slow
def test_same_seed_gives_identical_metrics_and_weights(reference_runs):
    first, second = reference_runs
    assert_same_run(first, second)
    manifest = json.loads((first / MANIFEST_FILENAME).read_text())
    assert manifest["seed"] == 0


@pytest.mark.slow
def test_run_without_seed_records_the_one_it_picked(tiny_run):
    manifest = json.loads((tiny_run / MANIFEST_FILENAME).read_text())
    recorded = yaml.safe_load((tiny_run / "config.yaml").read_text())["seed"]
    assert isinstance(manifest["seed"], int) and manifest["seed"] == recorded


@pytest.mark.slow
def test_manifest_names_versions_config_data_seed_and_every_file(tiny_run):
    import keras
    import tensorflow as tf

    manifest = json.loads((tiny_run / MANIFEST_FILENAME).read_text())
    assert (manifest["cnncli"], manifest["keras"], manifest["tensorflow"]) == (
        cnncli.__version__,
        keras.__version__,
        tf.__version__,
    )
    assert len(manifest["config_sha256"]) == 64
    data = Path(manifest["data"]["path"])
    assert manifest["data"] == {
        "path": str(data),
        "bytes": data.stat().st_size,
        "sha256": sha256_file(data),
    }
    on_disk = {p.name for p in tiny_run.iterdir()} - {MANIFEST_FILENAME}
    assert set(manifest["files"]) == on_disk


@pytest.mark.slow
@pytest.mark.parametrize(
    ("signum", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)], ids=["SIGINT", "SIGTERM"]
)
def test_signal_saves_checkpoint_says_how_to_resume_and_resume_matches(
    runner, tmp_path, monkeypatch, resume_csv, reference_runs, signum, code
):
    config_path = tmp_path / "resume.yaml"
    config_path.write_text(yaml.safe_dump(resume_config(resume_csv, epochs=6)))
    output = tmp_path / "runs"
    earlier = fake_complete_run(output)
    interrupt_after(monkeypatch, epoch=2, signum=signum)
    result = runner.invoke(cli, ["train", str(config_path), "--output", str(output)])
    assert result.exit_code == code, result.output
    [staging] = staging_folders(output)
    name = signal.Signals(signum).name
    assert error_lines(result) == [
        f"error: {staging}: interrupted by {name} during epoch 3 of 6; 2 complete epoch(s) are saved"
        f" here; resume with: cnncli train {config_path} --resume {staging}"
    ]
    assert checkpoints.load_checkpoint(staging).epoch == 2
    assert os.readlink(output / LATEST_LINK) == earlier.name  # the interrupted run is not latest
    assert sorted(p.name for p in output.iterdir() if not p.name.startswith(".")) == [
        earlier.name,
        LATEST_LINK,
    ]
    monkeypatch.undo()
    if signum == signal.SIGTERM:
        return  # the resume itself is the same for both signals; check it once

    changed = runner.invoke(
        cli,
        [
            "train",
            str(config_path),
            "--output",
            str(output),
            "--resume",
            "--set",
            "model.layers[0].units=9",
        ],
    )
    assert changed.exit_code == 2
    assert "model.layers[0].units is 9 but the interrupted run used 16" in changed.stderr

    resumed = runner.invoke(cli, ["train", str(config_path), "--output", str(output), "--resume"])
    assert resumed.exit_code == 0, resumed.output
    run = Path(resumed.stdout.strip().splitlines()[-1])
    assert os.readlink(output / LATEST_LINK) == run.name
    assert staging_folders(output) == [] and not (run / CHECKPOINTS_DIRNAME).exists()
    assert_same_run(run, reference_runs[0])


def cli_train(args: list[str], backend: str) -> Path:
    """``cnncli train ... --json`` in a fresh process on ``backend``; returns the run folder."""
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "CNNCLI_BACKEND": backend}
    command = [sys.executable, "-m", "cnncli", "train", *args, "--json"]
    done = subprocess.run(
        command, env=env, capture_output=True, text=True, timeout=300, check=False
    )
    assert done.returncode == 0, done.stderr
    return Path(json.loads(done.stdout)["run_dir"])


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["tensorflow", "jax"])
def test_sigkill_at_a_random_point_then_resume_matches_an_uninterrupted_run(
    tmp_path, resume_csv, backend
):
    """SIGKILL the CLI at a random moment of training, resume, compare with a clean run.

    The killed run asks for many epochs so that the kill always lands mid-training on any machine;
    the resume then finishes at N = (epochs saved) + 3, and the clean run trains N epochs. Weights
    after N epochs do not depend on how many were asked for, so the two must match bit for bit.
    On the session's backend (tensorflow) the resume and the clean run are in-process; on the
    other backend every step is a fresh ``cnncli`` process.
    """
    if backend == "jax":
        pytest.importorskip("jax")
    from cnncli.train.run import train_run

    config_path = tmp_path / "long.yaml"
    config_path.write_text(yaml.safe_dump(resume_config(resume_csv, epochs=10_000)))
    output = tmp_path / "runs"
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "CNNCLI_BACKEND": backend}
    process = subprocess.Popen(
        [sys.executable, "-m", "cnncli", "train", str(config_path), "--output", str(output)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    delay = random.Random().uniform(0.0, 2.5)
    try:
        deadline = time.monotonic() + 120
        while not any(output.glob(".tmp-*/checkpoints/state.json")):
            assert process.poll() is None, process.stderr.read().decode()
            assert time.monotonic() < deadline, "no checkpoint within 120 s"
            time.sleep(0.05)
        time.sleep(delay)
        assert process.poll() is None, "training ended before the kill"
        process.kill()
    finally:
        process.kill()
        process.wait()
        process.stderr.close()
    assert process.returncode == -signal.SIGKILL
    assert not (output / LATEST_LINK).exists()
    [staging] = staging_folders(output)
    saved = checkpoints.load_checkpoint(staging).epoch
    epochs = saved + 3
    context = f"{backend}: killed {delay:.2f} s after the first checkpoint, {saved} epochs saved"
    if backend == os.environ["CNNCLI_BACKEND"]:
        config = load_config(config_path, [f"fit.epochs={epochs}"])
        resumed = train_run(config, output, resume=str(staging)).run_dir
        clean = train_run(config, tmp_path / "clean").run_dir
    else:
        common = [str(config_path), "--set", f"fit.epochs={epochs}", "--output"]
        resumed = cli_train([*common, str(output), "--resume", str(staging)], backend)
        clean = cli_train([*common, str(tmp_path / "clean")], backend)
    assert json.loads((resumed / MANIFEST_FILENAME).read_text())["backend"] == backend
    assert_same_run(resumed, clean, context)


def test_resume_without_an_interrupted_run_or_of_a_complete_run(
    runner, tmp_path, tiny_csv, write_config
):
    config = write_config(base_config(tiny_csv))
    output = tmp_path / "runs"
    result = runner.invoke(cli, ["train", str(config), "--output", str(output), "--resume"])
    assert result.exit_code == 2
    assert error_lines(result) == [
        f"error: {output}: no interrupted run named 't' to resume; train without --resume, or pass the"
        " interrupted run's folder to --resume"
    ]
    complete = fake_complete_run(output)
    result = runner.invoke(
        cli, ["train", str(config), "--output", str(output), "--resume", str(complete)]
    )
    assert result.exit_code == 2
    assert "this run is complete; there is nothing to resume" in result.stderr


def test_checkpoint_from_a_newer_cnncli_is_refused(tmp_path):
    run = tmp_path / ".tmp-t-1"
    (run / CHECKPOINTS_DIRNAME).mkdir(parents=True)
    (run / CHECKPOINTS_DIRNAME / "state.json").write_text(
        json.dumps({"format": 99, "cnncli": "9.0"})
    )
    with pytest.raises(CnnCliError, match=r"written by cnncli 9.0 \(checkpoint format 99\)"):
        checkpoints.load_checkpoint(run)


# ---------------------------------------------------------------------------------------------
# Resource faults


def test_unwritable_output_folder(runner, tmp_path, tiny_csv, write_config, monkeypatch):
    config = write_config(base_config(tiny_csv))
    blocker = tmp_path / "blocker"
    blocker.write_text("a file where the output folder should be")
    result = runner.invoke(cli, ["train", str(config), "--output", str(blocker / "runs")])
    assert result.exit_code == 2
    assert error_lines(result) == [
        f"error: {blocker / 'runs'}: cannot write the output folder: Not a directory; choose a writable"
        " folder with --output or output.dir"
    ]

    def denied(*args, **kwargs):
        raise PermissionError(errno.EACCES, "Permission denied")

    monkeypatch.setattr("tempfile.mkdtemp", denied)
    result = runner.invoke(cli, ["train", str(config), "--output", str(tmp_path / "ro")])
    assert result.exit_code == 2
    assert "cannot write the output folder: Permission denied" in result.stderr


@pytest.mark.slow
def test_full_disk_while_checkpointing_keeps_the_last_checkpoint(
    runner, tmp_path, tiny_csv, write_config, monkeypatch
):
    config = base_config(tiny_csv)
    config["fit"]["epochs"] = 3
    config_path = write_config(config)
    output = tmp_path / "runs"
    monkeypatch.setattr(checkpoints, "MIN_WRITE_INTERVAL_S", 0.0)
    write_atomic = checkpoints.write_atomic
    arrays_written = []

    def disk_fills_up(path, data):
        if path.suffix == ".npz":
            arrays_written.append(path.name)
            if len(arrays_written) == 2:
                raise OSError(errno.ENOSPC, "No space left on device", str(path))
        write_atomic(path, data)

    monkeypatch.setattr(checkpoints, "write_atomic", disk_fills_up)
    result = runner.invoke(cli, ["train", str(config_path), "--output", str(output)])
    assert result.exit_code == 2, result.output
    [staging] = staging_folders(output)
    [line] = error_lines(result)
    assert line.startswith(
        f"error: {staging}: cannot write the run: No space left on device (epoch-0002.npz);"
    )
    assert line.endswith(f"resume with: cnncli train {config_path} --resume {staging}")
    checkpoint = checkpoints.load_checkpoint(staging)
    assert checkpoint.epoch == 1
    checkpoint.load_arrays()  # intact: sha256 matches
    assert sorted(p.name for p in (staging / CHECKPOINTS_DIRNAME).iterdir()) == [
        "epoch-0001.npz",
        "state.json",
    ]
    assert not (output / LATEST_LINK).exists()
    monkeypatch.undo()
    result = runner.invoke(
        cli, ["train", str(config_path), "--output", str(output), "--resume", str(staging)]
    )
    assert result.exit_code == 0, result.output
    assert (output / LATEST_LINK / "history.csv").read_text().count("\n") == 4  # header + 3 epochs


@pytest.mark.slow
def test_full_disk_while_saving_the_model_keeps_the_run_resumable(
    runner, tmp_path, tiny_csv, write_config, monkeypatch
):
    config_path = write_config(base_config(tiny_csv))
    output = tmp_path / "runs"

    def full(model, path):
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr("cnncli.train.run.save_keras_atomic", full)
    result = runner.invoke(cli, ["train", str(config_path), "--output", str(output)])
    assert result.exit_code == 2
    [staging] = staging_folders(output)
    assert "cannot write the run: No space left on device (model.keras)" in result.stderr
    assert checkpoints.load_checkpoint(staging).done
    assert not (output / LATEST_LINK).exists()


@pytest.mark.slow
def test_data_file_disappearing_mid_run(tmp_path, tiny_csv, write_config):
    from cnncli.train.run import train_run

    original = sha256_file(tiny_csv)
    config = base_config(tiny_csv)
    config["fit"]["epochs"] = 2
    config_path = write_config(config)

    def delete_data(epoch, epochs, logs):
        tiny_csv.unlink(missing_ok=True)

    result = train_run(load_config(config_path), tmp_path / "runs", on_epoch_end=delete_data)
    manifest = json.loads((result.run_dir / MANIFEST_FILENAME).read_text())
    assert manifest["data"]["sha256"] == original  # what was trained on, fingerprinted at the start


# ---------------------------------------------------------------------------------------------
# Safe loading


def make_hostile_lambda_model(path: Path, marker: Path) -> None:
    from cnncli.runtime import import_keras

    keras = import_keras()
    touch = f"lambda x: (open({str(marker)!r}, 'w').close(), x)[1]"
    model = keras.Sequential(
        [keras.Input((3,)), keras.layers.Lambda(eval(touch)), keras.layers.Dense(3)]
    )  # noqa: S307
    model.save(path)
    marker.unlink(missing_ok=True)  # saving traced the lambda once; start clean


def make_hostile_config_model(original: Path, path: Path, marker: Path) -> None:
    """A real model whose config.json asks Keras for ``subprocess.Popen(["touch", marker])``."""
    with zipfile.ZipFile(original) as source:
        config = json.loads(source.read("config.json"))
        config["config"]["layers"].insert(
            1,
            {
                "module": "subprocess",
                "class_name": "Popen",
                "config": {"args": ["touch", str(marker)]},
            },
        )
        with zipfile.ZipFile(path, "w") as target:
            for item in source.infolist():
                data = (
                    json.dumps(config)
                    if item.filename == "config.json"
                    else source.read(item.filename)
                )
                target.writestr(item, data)


@pytest.mark.slow
@pytest.mark.parametrize("attack", ["lambda", "config"])
def test_hostile_keras_file_is_refused_without_running_anything(runner, run_copy, tmp_path, attack):
    marker = tmp_path / "PWNED"
    hostile = tmp_path / "hostile.keras"
    if attack == "lambda":
        make_hostile_lambda_model(hostile, marker)
    else:
        make_hostile_config_model(run_copy / MODEL_FILENAME, hostile, marker)
    shutil.copy(hostile, run_copy / MODEL_FILENAME)
    rewrite_manifest(run_copy)  # even with a matching checksum
    with pytest.raises(CnnCliError, match="model.keras could not be loaded safely"):
        load_keras_model(open_run(run_copy))
    result = runner.invoke(
        cli, ["predict", str(run_copy), "--backend", "keras", "--input", "3,30,5"]
    )
    assert result.exit_code == 2
    assert "model.keras could not be loaded safely" in result.stderr
    assert not marker.exists()


@pytest.mark.slow
@pytest.mark.parametrize("name", [MODEL_FILENAME, "preprocess.json", "model.onnx"])
def test_tampered_file_is_refused(runner, run_copy, name):
    data = bytearray((run_copy / name).read_bytes())
    data[len(data) // 2] ^= 0xFF
    (run_copy / name).write_bytes(bytes(data))
    result = runner.invoke(cli, ["predict", str(run_copy), "--input", "3,30,5"])
    assert result.exit_code == 2
    assert error_lines(result) == [
        f"error: {run_copy / name}: {name} does not match its sha256 in manifest.json; it was changed after"
        " training; refusing to load it; retrain or restore the original file"
    ]


@pytest.mark.slow
def test_run_from_a_newer_cnncli_is_refused(runner, run_copy):
    rewrite_manifest(run_copy, format=cnncli.RUN_FORMAT_VERSION + 1, cnncli="9.0.0")
    result = runner.invoke(cli, ["evaluate", str(run_copy)])
    assert result.exit_code == 2
    assert error_lines(result) == [
        f"error: {run_copy}: run was written by cnncli 9.0.0 (run format {cnncli.RUN_FORMAT_VERSION + 1}),"
        f" newer than this cnncli {cnncli.__version__} (format {cnncli.RUN_FORMAT_VERSION}); upgrade cnncli to read it"
    ]


UNSAFE_MODULES = {
    "pickle",
    "cPickle",
    "_pickle",
    "dill",
    "cloudpickle",
    "joblib",
    "marshal",
    "shelve",
}
UNSAFE_BUILTINS = {"eval", "exec", "compile", "__import__"}
UNSAFE_ATTRIBUTES = {
    "yaml": {
        "load",
        "load_all",
        "unsafe_load",
        "unsafe_load_all",
        "full_load",
        "full_load_all",
        "Loader",
        "UnsafeLoader",
    },
    "importlib": {"import_module"},
}


def unsafe_uses(tree: ast.AST) -> list[tuple[int, str]]:
    """(line, what) for every pickle-like import, eval/exec, unsafe YAML load and allow_pickle."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [
                (node.lineno, f"imports {a.name}")
                for a in node.names
                if a.name.split(".")[0] in UNSAFE_MODULES
            ]
        elif isinstance(node, ast.ImportFrom):
            module = node.module or ""
            if module.split(".")[0] in UNSAFE_MODULES:
                found.append((node.lineno, f"imports {module}"))
            found += [
                (node.lineno, f"imports {module}.{a.name}")
                for a in node.names
                if a.name in UNSAFE_ATTRIBUTES.get(module, ())
            ]
        elif isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
            if node.attr in UNSAFE_ATTRIBUTES.get(node.value.id, ()):
                found.append((node.lineno, f"uses {node.value.id}.{node.attr}"))
        elif isinstance(node, ast.Call):
            if isinstance(node.func, ast.Name) and node.func.id in UNSAFE_BUILTINS:
                found.append((node.lineno, f"calls {node.func.id}"))
            for keyword in node.keywords:
                if keyword.arg == "allow_pickle" and not (
                    isinstance(keyword.value, ast.Constant) and keyword.value.value is False
                ):
                    found.append((node.lineno, "passes allow_pickle"))
    return sorted(found)


def test_the_scan_finds_what_it_looks_for():
    sample = (
        "import pickle\nfrom joblib import dump\nimport yaml\nyaml.load(s)\neval('1')\n"
        "np.load(f, allow_pickle=True)\n"
    )
    assert [what for _, what in unsafe_uses(ast.parse(sample))] == [
        "imports pickle",
        "imports joblib",
        "uses yaml.load",
        "calls eval",
        "passes allow_pickle",
    ]


def test_package_uses_no_pickle_joblib_or_code_loading():
    """No module imports a pickle-like library, evals code, loads YAML unsafely or lets NumPy unpickle."""
    found = [
        f"{path.relative_to(PACKAGE.parent)}:{line} {what}"
        for path in sorted(PACKAGE.rglob("*.py"))
        for line, what in unsafe_uses(ast.parse(path.read_text(), filename=str(path)))
    ]
    assert found == []


# ---------------------------------------------------------------------------------------------
# YAML safety


def test_billion_laughs_is_refused_within_a_second(write_config, tiny_csv):
    lines = ['a0: &a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    lines += [f"a{i}: &a{i} [{','.join(['*a' + str(i - 1)] * 9)}]" for i in range(1, 10)]
    path = write_config("\n".join(lines) + f"\ndata: {{path: {tiny_csv}}}\n")
    started = time.perf_counter()
    with pytest.raises(CnnCliError, match="aliases included") as caught:
        load_config(path)
    assert time.perf_counter() - started < 1.0
    assert caught.value.hint.startswith("remove the repeated aliases")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("a: &a [*a]\n", "an alias (*) refers to a node that contains it"),
        ("a: " + "[" * 5000 + "]" * 5000 + "\n", "config nests more than 64 levels deep"),
        ("a: " + "[" * 70 + "]" * 70 + "\n", "config nests more than 64 levels deep"),
    ],
    ids=["self-alias", "deep-5000", "deep-70"],
)
def test_recursive_or_deeply_nested_yaml_is_refused_quickly(write_config, text, message):
    started = time.perf_counter()
    with pytest.raises(CnnCliError) as caught:
        load_config(write_config(text))
    assert time.perf_counter() - started < 1.0
    assert caught.value.message.startswith(message)


def test_oversized_config_is_refused_before_parsing(write_config):
    path = write_config("# " + "x" * 1_100_000 + "\n")
    with pytest.raises(
        CnnCliError, match="config is 1,100,003 bytes, more than the 1,000,000 allowed"
    ):
        load_config(path)


def test_non_utf8_config_says_where(tmp_path):
    path = tmp_path / "latin.yaml"
    path.write_bytes("name: caf\u00e9\n".encode("latin-1"))
    with pytest.raises(CnnCliError) as caught:
        load_config(path)
    assert caught.value.message == "config is not UTF-8 text (byte 0xe9 on line 1)"
    assert caught.value.hint == "save the file as UTF-8"


@pytest.mark.parametrize(
    "tag",
    [
        "!!python/object/apply:os.system ['touch {marker}']",
        "!!python/name:os.system",
        "!!python/object/new:subprocess.Popen [['touch', '{marker}']]",
    ],
)
def test_python_tags_are_refused_and_never_run(runner, tmp_path, tiny_csv, tag):
    marker = tmp_path / "PWNED"
    path = tmp_path / "evil.yaml"
    path.write_text(
        f"name: {tag.format(marker=marker)}\ndata: {{path: {tiny_csv}}}\nmodel: {{layers: [Dense]}}\n"
    )
    result = runner.invoke(cli, ["validate", str(path)])
    assert result.exit_code == 2
    assert "is not allowed; configs hold plain values only; remove the tag" in result.stderr
    assert "Traceback" not in result.output and not marker.exists()


# ---------------------------------------------------------------------------------------------
# Data errors through `cnncli train`: one line naming file, column and line; exit code 2

GOOD = seed_like_rows(24).splitlines()


def with_line(number: int, text: str) -> str:
    """GOOD with file line ``number`` (1 = header) replaced."""
    lines = list(GOOD)
    lines[number - 1] = text
    return "\n".join(lines) + "\n"


def cell_changed(number: int, column: int, value: str) -> str:
    cells = GOOD[number - 1].split(",")
    cells[column] = value
    return with_line(number, ",".join(cells))


DATA_ERRORS = {
    "empty-file": ("", {}, "{csv}: data file is empty; a CSV needs a header line and rows"),
    "header-only": (
        GOOD[0] + "\n",
        {},
        "{csv}: data file has a header but no rows; add data rows below the header",
    ),
    "text-in-numeric": (
        cell_changed(7, 1, "n/a?"),
        {},
        "{csv}:7: column 'x2': numeric column holds text 'n/a?'; fix or empty that cell (see data.missing),"
        " or leave the column out of data.features",
    ),
    "empty-cells": (
        cell_changed(5, 0, ""),
        {},
        "{csv}:5: column 'x1': 1 empty cell(s) on line(s) 5; fill them in, or set data.missing: drop or mean",
    ),
    "single-class": (  # caught by the validation that train runs first, before any full read
        "x1,label\n" + "".join(f"{i},same\n" for i in range(10)),
        {},
        "{csv}: column 'label': the label column has a single class ('same');"
        " classification needs at least two classes; check data.label",
    ),
    "class-too-small": (
        "\n".join(GOOD) + "\n1,2,3,rare\n",
        {},
        "{csv}:26: column 'label': class 'rare' has only 1 row (line 26), too few to stratify;"
        " add rows of that class, remove that row, or set split.stratify: false",
    ),
    "ragged-long": (
        with_line(4, GOOD[3] + ",9"),
        {},
        "{csv}:4: line 4 has 5 cells but the header has 4; every row needs one cell per header column;"
        " look for extra or missing delimiters",
    ),
    "ragged-short": (
        with_line(9, GOOD[8].rsplit(",", 1)[0]),
        {"missing": "mean"},
        "{csv}:9: line 9 has 3 cells but the header has 4; every row needs one cell per header column;"
        " check for missing delimiters",
    ),
    "semicolons": (
        "\n".join(GOOD).replace(",", ";") + "\n",
        {},
        "{csv}:1: the header has one column when split on ',' but contains ';'; set data.delimiter: ';'",
    ),
    "latin-1": (
        cell_changed(3, 3, "caf\u00e9").encode("latin-1"),
        {},
        "{csv}:3: data file is not UTF-8 text (byte 0xe9 on line 3); re-save it as UTF-8,"
        " e.g. iconv -f latin1 -t utf-8 in.csv > out.csv",
    ),
}


@pytest.mark.parametrize("case", list(DATA_ERRORS))
def test_data_error_is_one_line_with_file_column_and_line(runner, tmp_path, write_config, case):
    content, data, expected = DATA_ERRORS[case]
    csv = tmp_path / "data.csv"
    csv.write_bytes(content if isinstance(content, bytes) else content.encode())
    config = base_config(csv, data={"path": str(csv), **data})
    config = write_config(config)
    result = runner.invoke(cli, ["train", str(config), "--output", str(tmp_path / "runs")])
    assert result.exit_code == 2
    assert error_lines(result) == ["error: " + expected.format(csv=csv)]
    assert "Traceback" not in result.output
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


def test_test_file_with_other_columns(runner, tmp_path, tiny_csv, write_config):
    test_csv = tmp_path / "test.csv"
    test_csv.write_text("x1,x2,label\n1,2,low\n")
    config = write_config(
        base_config(tiny_csv, data={"path": str(tiny_csv), "test_path": str(test_csv)})
    )
    result = runner.invoke(cli, ["train", str(config), "--output", str(tmp_path / "runs")])
    assert result.exit_code == 2
    assert error_lines(result) == [
        f"error: {test_csv}:1: 1 column(s) of the training data are missing: x3 (the file has x1, x2, label);"
        " a test file needs the same columns as the training file"
    ]


@pytest.mark.slow
@pytest.mark.parametrize(
    ("policy", "note"),
    [
        ("drop", "dropped 2 of 24 row(s) with empty cells from data.csv (missing: drop)"),
        ("mean", "filled 2 empty cell(s) in data.csv with the column mean (missing: mean)"),
    ],
)
def test_missing_drop_and_mean_say_how_many(runner, tmp_path, write_config, policy, note):
    csv = tmp_path / "data.csv"
    lines = cell_changed(5, 0, "").splitlines()
    cells = lines[10].split(",")
    cells[2] = ""
    lines[10] = ",".join(cells)
    csv.write_text("\n".join(lines) + "\n")
    config = write_config(base_config(csv, data={"path": str(csv), "missing": policy}))
    result = runner.invoke(
        cli, ["train", str(config), "--output", str(tmp_path / "runs")], catch_exceptions=False
    )
    assert result.exit_code == 0
    assert f"warning: {note}" in result.stderr


@pytest.mark.slow
def test_streaming_run_interrupted_then_resumed_matches_an_uninterrupted_run(
    runner, tmp_path, monkeypatch, resume_csv
):
    """Streaming shuffles each chunk with a generator seeded by the epoch, so a resume that starts
    at epoch 3 draws epoch 3's order, not epoch 1's."""
    from cnncli.train.run import train_run

    config = resume_config(resume_csv, epochs=5)
    config["data"].update(streaming=True, chunk_rows=64)
    config_path = tmp_path / "stream.yaml"
    config_path.write_text(yaml.safe_dump(config))
    resumed = interrupt_then_resume(runner, monkeypatch, config_path, tmp_path / "runs", epoch=2)
    clean = train_run(load_config(config_path), tmp_path / "clean").run_dir
    assert_same_run(resumed, clean, "streaming resume")


@pytest.mark.slow
def test_resume_keeps_early_stopping_state(runner, tmp_path, monkeypatch, resume_csv):
    """EarlyStopping's patience count, best value and best weights survive the interruption."""
    from cnncli.train.run import train_run

    config = resume_config(resume_csv, epochs=12)
    config["compile"]["optimizer"] = {"type": "Adam", "learning_rate": 0.05}
    config["fit"].update(
        validation_split=0.3,
        callbacks=[
            {
                "type": "EarlyStopping",
                "monitor": "val_loss",
                "patience": 2,
                "restore_best_weights": True,
            }
        ],
    )
    config_path = tmp_path / "early.yaml"
    config_path.write_text(yaml.safe_dump(config))
    clean = train_run(load_config(config_path), tmp_path / "clean").run_dir
    clean_epochs = len((clean / "history.csv").read_text().splitlines()) - 1
    # val_loss is best at epoch 7 and worse at 8, so the interruption falls mid-patience
    assert 8 < clean_epochs < 12, "the config must stop early after the interruption point"
    resumed = interrupt_then_resume(runner, monkeypatch, config_path, tmp_path / "runs", epoch=8)
    assert_same_run(resumed, clean, "EarlyStopping resume")
