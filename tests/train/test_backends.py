"""The seed config on every installed Keras backend: the same accuracy band, and a run that
predict and evaluate read whichever backend trained it; a missing backend is one line."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys

import pytest

from cnncli import runtime
from cnncli.cli import cli
from tests.conftest import CONFIGS, ROOT, TORCH_SKIP

#: Test accuracy of configs/seed.yaml after 20 epochs: every backend lands in this band.
BAND = (0.93, 1.0)


def installed_backends() -> list[str]:
    return [name for name in runtime.BACKENDS if importlib.util.find_spec(name) is not None]


@pytest.mark.slow
def test_the_seed_config_trains_on_every_installed_backend_in_one_band(runner, tmp_path):
    backends = installed_backends()
    assert {"tensorflow", "jax"} <= set(backends)
    if "torch" not in backends:
        print(f"torch skipped: {TORCH_SKIP}")
    accuracies = {}
    for backend in backends:
        env = {**os.environ, "CNNCLI_BACKEND": backend, "TF_CPP_MIN_LOG_LEVEL": "3"}
        env["CNNCLI_CACHE_DIR"] = str(tmp_path / "cache")
        output = tmp_path / backend
        done = subprocess.run(
            [sys.executable, "-m", "cnncli", "train", str(CONFIGS / "seed.yaml"),
             "--set", "fit.epochs=20", "--output", str(output), "--json"],
            env=env, capture_output=True, text=True, timeout=300, cwd=ROOT, check=False,
        )  # fmt: skip
        assert done.returncode == 0, f"{backend}: {done.stderr}"
        result = json.loads(done.stdout)
        run = result["run_dir"]
        manifest = json.loads((output / os.path.basename(run) / "manifest.json").read_text())
        assert manifest["backend"] == backend
        assert manifest["onnx"]["checked"] is True
        accuracies[backend] = result["metrics"]["test"]["accuracy"]
        evaluated = runner.invoke(cli, ["evaluate", run, "--json"], catch_exceptions=False)
        assert json.loads(evaluated.stdout)["metrics"]["accuracy"] == pytest.approx(
            accuracies[backend]
        )
        predicted = runner.invoke(
            cli, ["predict", run, "--input", "3,30,5", "--json"], catch_exceptions=False
        )
        assert json.loads(predicted.stdout)["predictions"][0]["label"] in {"low", "medium", "high"}
    assert all(BAND[0] <= value <= BAND[1] for value in accuracies.values()), accuracies
    assert max(accuracies.values()) - min(accuracies.values()) <= 0.05, accuracies


def test_a_missing_backend_names_the_command_that_installs_it():
    error = runtime.missing_backend("torch", ImportError("No module named 'torch'", name="torch"))
    assert error.one_line() == (
        "no deep-learning backend is installed (torch); pip install 'cnncli[torch]'"
        " --extra-index-url https://download.pytorch.org/whl/cpu, or set backend: tensorflow"
    )
    jax = runtime.missing_backend("jax", ImportError(name="jax")).one_line()
    assert jax.endswith("(jax); pip install jax, or set backend: tensorflow")


def test_torch_is_a_backend_a_config_and_cnncli_backend_may_name(monkeypatch):
    assert "torch" in runtime.BACKENDS
    monkeypatch.setenv(runtime.FORCE_BACKEND_VARIABLE, "torch")
    assert runtime.forced_backend() == "torch"
