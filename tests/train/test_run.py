"""Training speed and start-up: the NumPy split equals scikit-learn's, help imports nothing heavy,
the JAX path never loads TensorFlow, and backends' log noise stays off the terminal; what a run
records: its seed, the versions and the data's fingerprint taken when training starts."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

import cnncli
from cnncli.cli import cli
from cnncli.config.models import load_config
from cnncli.data.split import train_test_split
from cnncli.runs import MANIFEST_FILENAME, sha256_file
from tests.conftest import ROOT, STOPS_AT_EPOCH_2, base_config, seed_like_rows

HEAVY = ("tensorflow", "keras", "jax", "pandas", "sklearn", "scipy", "onnx", "onnxruntime")


@pytest.mark.parametrize("rows", [20, 37, 150, 1001])
@pytest.mark.parametrize("test_size", [0.2, 0.25, 0.33])
@pytest.mark.parametrize("stratified", [False, True])
def test_split_is_scikit_learns_train_test_split(rows, test_size, stratified):
    from sklearn.model_selection import train_test_split as sklearn_split

    rng = np.random.default_rng(rows)
    labels = rng.choice(np.array(["a", "b", "c"]), rows, p=[0.5, 0.3, 0.2])
    labels[:6] = ["a", "a", "b", "b", "c", "c"]  # every class can be stratified
    for random_state in (0, 1, 42):
        stratify = labels if stratified else None
        expected = sklearn_split(
            np.arange(rows), test_size=test_size, random_state=random_state, stratify=stratify
        )
        ours = train_test_split(np.arange(rows), test_size, random_state, stratify)
        assert all(np.array_equal(a, b) for a, b in zip(expected, ours, strict=True))


def test_split_refuses_what_scikit_learn_refuses():
    with pytest.raises(ValueError):
        train_test_split(np.arange(3), 0.2, 0, np.array(["a", "b", "c"]))  # one row per class
    with pytest.raises(ValueError):
        train_test_split(np.arange(1), 0.5, 0)


def _python(code: str, **kwargs) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True, **kwargs
    )


def test_help_imports_no_heavy_library():
    code = f"""
import json, sys
from click.testing import CliRunner
from cnncli.cli import cli
names = [[]] + [[command] for command in cli.commands]
codes = [CliRunner().invoke(cli, [*name, "--help"]).exit_code for name in names]
print(json.dumps({{"codes": codes, "loaded": [m for m in {HEAVY!r} if m in sys.modules]}}))
"""
    report = json.loads(_python(code).stdout)
    assert set(report["codes"]) == {0}
    assert report["loaded"] == []  # the start-up time itself: benchmarks/startup.py


def write_tiny_config(tmp_path: Path, backend: str) -> Path:
    data = tmp_path / "tiny.csv"
    data.write_text(seed_like_rows(60))
    config = base_config(data, backend=backend)
    path = tmp_path / f"{backend}.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


#: No TF_CPP_MIN_LOG_LEVEL from conftest: cnncli itself must keep TensorFlow quiet.
QUIET_FREE_ENV = {"PATH": "/usr/bin:/bin"}

#: C++ and start-up lines from TensorFlow, absl, oneDNN, XLA and JAX that a user should not see.
NOISE = re.compile(
    r"^[WIEF]\d{4} |oneDNN|TF_ENABLE|absl|cuda|CUDA|TensorFlow binary|xla_bridge",
    re.M,
)


@pytest.mark.slow
def test_jax_backend_trains_streams_exports_onnx_and_never_imports_tensorflow(tmp_path):
    config = write_tiny_config(tmp_path, "jax")
    code = f"""
import json, sys
from cnncli.cli import cli
for streaming in ("false", "true"):
    try:
        cli(["train", {str(config)!r}, "--output", {str(tmp_path / "runs")!r}, "--json",
             "--set", f"data.streaming={{streaming}}"])
    except SystemExit as exc:
        assert not exc.code, exc.code
print(json.dumps({{name: name in sys.modules for name in ("tensorflow", "sklearn")}}))
"""
    result = _python(
        code, env={"PATH": "/usr/bin:/bin", "CNNCLI_CACHE_DIR": str(tmp_path / "cache")}
    )
    *runs, loaded = [json.loads(line) for line in result.stdout.splitlines()]
    assert loaded == {"tensorflow": False, "sklearn": False}
    for run, method in zip(runs, ("shuffle", "hash"), strict=True):  # in memory, streaming
        manifest = json.loads((Path(run["run_dir"]) / "manifest.json").read_text())
        assert manifest["backend"] == "jax"
        assert manifest["onnx"]["checked"] is True
        assert json.loads((Path(run["run_dir"]) / "split.json").read_text())["method"] == method
    assert not NOISE.search(result.stderr), result.stderr
    assert list((tmp_path / "cache" / "xla").glob("jit_train_step-*"))  # kept for next time


@pytest.mark.slow
def test_tensorflow_log_noise_is_silenced_unless_debug(tmp_path):
    config = write_tiny_config(tmp_path, "tensorflow")
    command = [
        sys.executable,
        "-m",
        "cnncli",
        "train",
        str(config),
        "--output",
        str(tmp_path / "runs"),
        "--json",
    ]
    quiet = subprocess.run(command, capture_output=True, text=True, cwd=ROOT, env=QUIET_FREE_ENV)
    assert quiet.returncode == 0, quiet.stderr
    assert not NOISE.search(quiet.stderr), quiet.stderr
    assert json.loads(quiet.stdout)["metrics"]["test"]["accuracy"] >= 0
    command[3:3] = ["--debug"]
    debug = subprocess.run(command, capture_output=True, text=True, cwd=ROOT, env=QUIET_FREE_ENV)
    assert NOISE.search(debug.stderr)  # the silencing, not a quiet TensorFlow, kept them away


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


def test_train_reads_the_data_once_and_reports_every_model_problem(
    runner, tmp_path, tiny_csv, write_config, monkeypatch
):
    from cnncli.cli import cli
    from cnncli.train.run import prepare_data

    config = base_config(tiny_csv)
    config["model"]["layers"][-1]["units"] = 5  # the tiny CSV's label has 3 classes
    config["compile"]["optimizer"] = "adamw2"
    reads = []
    feed = sys.modules[prepare_data.__module__]  # wherever train's data preparation lives
    load_dataset = feed.load_dataset

    def counted(*args, **kwargs):
        reads.append(args)
        return load_dataset(*args, **kwargs)

    def cheap_read(config):
        raise AssertionError("train must not read the data a second time to validate it")

    monkeypatch.setattr(feed, "load_dataset", counted)
    monkeypatch.setattr("cnncli.train.check.inspect_data", cheap_read)
    output = tmp_path / "runs"
    result = runner.invoke(cli, ["train", str(write_config(config)), "--output", str(output)])
    assert result.exit_code == 2, result.output
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 2, result.stderr
    assert "unknown optimizer 'adamw2'" in errors[0]
    assert "last layer has 5 unit(s) but the label has 3 classes" in errors[1]
    assert len(reads) == 1
    assert not output.exists()  # stopped before a staging folder was made


@pytest.mark.slow
def test_resolved_config_holds_every_value_training_decided(minimal_regression_run, tiny_run):
    """config.yaml held task, loss and label as null; it now holds what training used, and it
    loads back as a config (evaluate and predict read it)."""
    from cnncli.config.models import config_from_dict

    for run, expected in (
        (minimal_regression_run, ("regression", "mean_squared_error", "standard", [10], ["mae"])),
        (tiny_run, ("classification", "categorical_crossentropy", "onehot", [3], ["accuracy"])),
    ):
        resolved = yaml.safe_load((run / "config.yaml").read_text())
        assert (
            resolved["task"],
            resolved["compile"]["loss"],
            resolved["preprocess"]["label"],
            resolved["model"]["input_shape"],
            resolved["compile"]["metrics"],
        ) == expected
        config = config_from_dict(resolved, run)
        assert config.task == expected[0] and config.preprocess.label == expected[2]
    tiny = yaml.safe_load((tiny_run / "config.yaml").read_text())["data"]
    assert (tiny["features"], tiny["label"]) == (["x1", "x2", "x3"], "label")


def test_a_binary_label_resolves_to_the_configs_words(tmp_path, write_config):
    """preprocess.label has no 'binary': a binary loss on two classes keeps the label a class
    index, which the config calls sparse; reloaded with the same loss it is binary again."""
    from cnncli.data.split import TEST
    from cnncli.model.targets import label_kind
    from cnncli.train.feed import prepare_data
    from cnncli.train.run import resolved_config

    data = tmp_path / "two.csv"
    data.write_text("x,y\n" + "".join(f"{i},{'ab'[i % 2]}\n" for i in range(20)))
    raw = base_config(data)
    raw["compile"]["loss"] = "binary_crossentropy"
    raw["model"]["layers"][-1]["activation"] = "sigmoid"
    config = load_config(write_config(raw))
    prepared = prepare_data(config, 0)
    assert prepared.preprocessor.label.kind == "binary" and len(prepared.part(TEST)[0]) == 4
    resolved = resolved_config(config, prepared, 0)
    assert resolved["preprocess"]["label"] == "sparse"
    reloaded = load_config(write_config(resolved))  # passes every cross-check too
    assert label_kind(reloaded, "classification", 2) == "binary"


@pytest.mark.slow
def test_metrics_json_has_validation_and_early_stopping_epochs(runner, tmp_path, write_config):
    """Only test scores were kept, so tuning by hand picked on the test set; the epoch where
    EarlyStopping stopped was never reported."""
    from cnncli.cli import cli

    data = tmp_path / "seed.csv"
    data.write_text(seed_like_rows(60))
    raw = base_config(data)
    raw["fit"].update(STOPS_AT_EPOCH_2)
    result = runner.invoke(
        cli, ["train", str(write_config(raw)), "--output", str(tmp_path / "runs")]
    )
    assert result.exit_code == 0, result.stderr
    metrics = json.loads((Path(result.stdout.split()[-1]) / "metrics.json").read_text())
    assert (metrics["stopped_epoch"], metrics["best_epoch"]) == (2, 1)
    assert set(metrics["validation"]) == {"loss", "accuracy", "balanced_accuracy"}
    assert set(metrics["baseline"]) == {"method", "predicts", "test", "validation", "beaten"}
    assert "EarlyStopping: stopped early after epoch 2; weights of epoch 1" in result.stderr
    assert "│ validation " in result.stderr and "│ baseline (validation) " in result.stderr


def test_the_progress_line_says_its_values_are_on_the_standardised_label(
    runner, tmp_path, tiny_csv, write_config
):
    """Issue 10: the progress line showed `mae 0.49` while the table said `mae 46`."""
    config = base_config(tiny_csv, task="regression")
    config["data"]["label"] = "x3"
    config["model"]["layers"][-1] = {"type": "Dense", "units": 1}
    config["compile"] = {"loss": "mse", "metrics": ["mae"]}
    config["fit"].update(epochs=2, verbose=True)
    path = write_config(config)
    result = runner.invoke(cli, ["train", str(path), "--output", str(tmp_path / "runs")])
    assert result.exit_code == 0, result.output
    [line] = [text for text in result.stderr.splitlines() if text.startswith("epoch 2/2")]
    assert "loss (scaled) " in line and "mae (scaled) " in line
    assert "mae (scaled)" not in result.stdout  # the table's MAE is in the label's units


def test_a_category_only_the_test_rows_hold_is_one_note_naming_those_rows(tmp_path, write_config):
    """Review of issue 10: train printed 'value(s) not seen in training' without saying that
    these were test rows (and in Python's warning format before that)."""
    from cnncli.train.run import train_run

    rows = [f"{i % 7},{'red' if i % 2 else 'blue'},{'ab'[i % 2]}" for i in range(40)]
    (tmp_path / "train.csv").write_text("x,colour,y\n" + "\n".join(rows) + "\n")
    (tmp_path / "test.csv").write_text("x,colour,y\n1,pink,a\n2,red,b\n3,pink,a\n")
    config = base_config(tmp_path / "train.csv")
    config["data"].update(test_path=str(tmp_path / "test.csv"), label="y")
    config["fit"]["epochs"] = 1
    said: list[str] = []
    train_run(load_config(write_config(config)), tmp_path / "runs", on_message=said.append)
    assert (
        "column 'colour': 2 value(s) not seen in training (e.g. 'pink') encoded as all zeros"
        " (in the test rows)"
    ) in said
