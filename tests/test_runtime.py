"""cnncli/runtime.py: which backend runs, CNNCLI_BACKEND forcing, and the missing-Keras hint.

Cheap tests: Keras itself is replaced by a stand-in, so nothing here imports a backend.
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from cnncli import runtime
from cnncli.errors import CnnCliError


def fake_keras(backend: str) -> SimpleNamespace:
    return SimpleNamespace(backend=SimpleNamespace(backend=lambda: backend))


@pytest.fixture
def no_keras_yet(monkeypatch):
    """As in a fresh process: Keras not imported, no backend asked for or forced."""
    monkeypatch.setattr(runtime, "loaded_backend", lambda: None)
    monkeypatch.delenv(runtime.FORCE_BACKEND_VARIABLE, raising=False)
    monkeypatch.delenv("KERAS_BACKEND", raising=False)
    return monkeypatch


def test_config_backend_is_asked_for_before_keras_loads(no_keras_yet):
    assert runtime.select_backend("jax") == "jax"
    assert os.environ["KERAS_BACKEND"] == "jax"


def test_without_a_choice_the_default_or_keras_backend_variable_wins(no_keras_yet):
    assert runtime.select_backend(None) == runtime.DEFAULT_BACKEND == "tensorflow"
    no_keras_yet.setenv("KERAS_BACKEND", "jax")
    assert runtime.select_backend(None) == "jax"
    assert runtime.select_backend("tensorflow") == "tensorflow"  # a config's choice comes first


def test_cnncli_backend_overrides_every_config(no_keras_yet):
    no_keras_yet.setenv(runtime.FORCE_BACKEND_VARIABLE, "tensorflow")
    assert runtime.forced_backend() == "tensorflow"
    assert runtime.select_backend("jax") == "tensorflow"
    assert os.environ["KERAS_BACKEND"] == "tensorflow"
    no_keras_yet.setenv(runtime.FORCE_BACKEND_VARIABLE, "")  # empty: not forced
    assert runtime.forced_backend() is None
    assert runtime.select_backend("jax") == "jax"


def test_a_loaded_keras_keeps_its_backend(monkeypatch):
    monkeypatch.setitem(sys.modules, "keras", fake_keras("jax"))
    monkeypatch.setenv("KERAS_BACKEND", "jax")
    assert runtime.loaded_backend() == "jax"
    assert runtime.select_backend("tensorflow") == "jax"
    assert os.environ["KERAS_BACKEND"] == "jax"


@pytest.mark.parametrize(
    ("backend", "hint"),
    [
        ("tensorflow", f"install one: {runtime.INSTALL_HINT}"),
        ("jax", "pip install jax, or set backend: tensorflow"),
    ],
)
def test_missing_keras_says_what_to_install(monkeypatch, backend, hint):
    def missing() -> None:
        raise ModuleNotFoundError("No module named 'keras'", name="keras")

    monkeypatch.setattr(runtime, "_import_keras_without_unused_modules", missing)
    monkeypatch.setenv("KERAS_BACKEND", backend)
    for key in runtime.QUIET_ENVIRONMENT:  # restored afterwards: import_keras sets them
        monkeypatch.delenv(key, raising=False)
    with pytest.raises(CnnCliError) as caught:
        runtime.import_keras()
    assert caught.value.message == "no deep-learning backend is installed (keras)"
    assert caught.value.hint == hint
    assert "make install" in runtime.INSTALL_HINT


@pytest.mark.parametrize("debug", [False, True])
def test_backend_log_noise_is_quiet_unless_debugging(monkeypatch, debug):
    monkeypatch.setattr(
        runtime, "_import_keras_without_unused_modules", lambda: fake_keras("tensorflow")
    )
    monkeypatch.setattr(runtime, "_debug", False)
    for key in runtime.QUIET_ENVIRONMENT:
        monkeypatch.delenv(key, raising=False)
    for name in runtime.QUIET_LOGGERS:
        monkeypatch.setattr(logging.getLogger(name), "level", logging.NOTSET)
    runtime.set_debug(debug)
    assert runtime.import_keras().backend.backend() == "tensorflow"
    quiet_env = {key: os.environ.get(key) for key in runtime.QUIET_ENVIRONMENT}
    levels = {logging.getLogger(name).level for name in runtime.QUIET_LOGGERS}
    if debug:
        assert set(quiet_env.values()) == {None}
        assert levels == {logging.NOTSET}
    else:
        assert quiet_env == runtime.QUIET_ENVIRONMENT
        assert levels == {logging.ERROR}


def test_empty_cache_dir_turns_the_jax_cache_off(monkeypatch):
    monkeypatch.setattr(runtime, "_cache_enabled", False)
    monkeypatch.setenv("CNNCLI_CACHE_DIR", "")
    runtime.enable_compilation_cache()
    assert runtime._cache_enabled is False


@pytest.mark.slow
def test_tensorflow_backend_loads_neither_jax_nor_sklearn_yet_both_stay_importable():
    """TensorFlow's LiteRT module imports JAX (0.4 s) and Keras imports scikit-learn: hidden."""
    import subprocess

    code = (
        "import sys\n"
        "from cnncli.runtime import import_keras, select_backend\n"
        "select_backend('tensorflow'); import_keras()\n"
        "print(sorted(m for m in ('jax', 'sklearn') if m in sys.modules))\n"
        "import jax, sklearn\n"
        "print('importable')\n"
    )
    env = {**os.environ, "KERAS_BACKEND": "tensorflow", "TF_CPP_MIN_LOG_LEVEL": "3"}
    env.pop(runtime.FORCE_BACKEND_VARIABLE, None)
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120
    )
    assert result.stdout.splitlines() == ["[]", "importable"], result.stderr[-2000:]


def test_an_unknown_forced_backend_is_a_one_line_error(monkeypatch):
    monkeypatch.setenv(runtime.FORCE_BACKEND_VARIABLE, "foo")
    with pytest.raises(CnnCliError) as caught:
        runtime.forced_backend()
    assert caught.value.one_line() == (
        "CNNCLI_BACKEND: 'foo' is not a backend cnncli runs;"
        " set it to one of tensorflow, jax, torch, or unset it"
    )


@pytest.mark.slow
def test_train_with_an_unknown_forced_backend_exits_2(runner, write_config, tiny_csv, monkeypatch):
    from cnncli.cli import cli
    from tests.conftest import base_config

    monkeypatch.setenv(runtime.FORCE_BACKEND_VARIABLE, "foo")
    result = runner.invoke(cli, ["train", str(write_config(base_config(tiny_csv)))])
    assert result.exit_code == 2
    assert result.stderr.startswith("error: CNNCLI_BACKEND: 'foo' is not a backend cnncli runs")


class _InterruptedFinalizer:
    """Raises KeyboardInterrupt where Python cannot pass it on: in ``__del__``."""

    def __del__(self) -> None:
        raise KeyboardInterrupt


@pytest.mark.parametrize("debug", [False, True], ids=["quiet", "debug"])
def test_an_interrupt_in_a_finalizer_is_quiet_and_still_stops(monkeypatch, debug):
    """Ctrl-C during the ONNX export printed "Exception ignored in ... Traceback" (issue 11.16)."""
    printed = []  # what Python's own hook would have printed
    monkeypatch.setattr(sys, "unraisablehook", lambda unraisable: printed.append(unraisable))
    monkeypatch.setattr(runtime, "_debug", debug)
    with pytest.raises(KeyboardInterrupt), runtime.interrupts_kept_quiet():
        _InterruptedFinalizer()  # dropped at once: __del__ runs here
    assert len(printed) == (1 if debug else 0)
    with runtime.interrupts_kept_quiet(reraise=False):
        _InterruptedFinalizer()
    assert len(printed) == (2 if debug else 0)


def test_keep_home_untouched_sends_keras_nowhere_and_turns_ort_telemetry_off(monkeypatch, tmp_path):
    monkeypatch.setenv("HOME", str(tmp_path))
    for name in ("KERAS_HOME", "ORT_DISABLE_TELEMETRY"):
        monkeypatch.delenv(name, raising=False)
    runtime.keep_home_untouched()
    assert os.environ["ORT_DISABLE_TELEMETRY"] == "1"
    assert os.environ["KERAS_HOME"] == os.path.join(os.devnull, "keras")
    # a keras.json the user keeps is still read by Keras; a KERAS_HOME the user set is kept
    monkeypatch.delenv("KERAS_HOME")
    (tmp_path / ".keras").mkdir()
    (tmp_path / ".keras" / "keras.json").write_text("{}")
    runtime.keep_home_untouched()
    assert "KERAS_HOME" not in os.environ
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "mine"))
    runtime.keep_home_untouched()
    assert os.environ["KERAS_HOME"] == str(tmp_path / "mine")


@pytest.mark.slow
def test_train_predict_and_export_write_nothing_into_home(tmp_path, tiny_csv, write_config):
    """ONNX Runtime wrote ~/.cache/Microsoft/... (telemetry) and Keras ~/.keras/keras.json."""
    import subprocess

    from tests.conftest import base_config

    home = tmp_path / "home"
    home.mkdir()
    env = {**os.environ, "HOME": str(home), "TF_CPP_MIN_LOG_LEVEL": "3"}
    for name in ("KERAS_HOME", "ORT_DISABLE_TELEMETRY", "XDG_CACHE_HOME"):
        env.pop(name, None)
    env["CNNCLI_CACHE_DIR"] = ""  # JAX's compilation cache is documented, and off here
    output = tmp_path / "runs"

    def cnncli(*args: str) -> None:
        command = [sys.executable, "-m", "cnncli", *args]
        result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)
        assert result.returncode == 0, result.stderr[-2000:]

    cnncli("train", str(write_config(base_config(tiny_csv))), "--output", str(output))
    run = str(output / "latest")
    cnncli("predict", run, "--input", "3,30,5")
    cnncli("export", run, "--output", str(tmp_path / "model.onnx"))
    assert list(home.iterdir()) == []


@pytest.mark.parametrize("cache", ["on", "off"])
def test_matplotlibs_files_go_into_cnnclis_cache_or_a_temporary_folder(
    monkeypatch, tmp_path, cache
):
    """Keras imports matplotlib, which wrote ~/.config/matplotlib and ~/.cache/matplotlib."""
    monkeypatch.delenv("MPLCONFIGDIR", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("CNNCLI_CACHE_DIR", str(tmp_path / "cache") if cache == "on" else "")
    runtime.keep_matplotlib_out_of_home()
    folder = Path(os.environ["MPLCONFIGDIR"])
    assert folder.is_dir()
    if cache == "on":
        assert folder == tmp_path / "cache" / "matplotlib"
    else:
        assert folder.name.startswith("cnncli-matplotlib-") and tmp_path not in folder.parents
    assert not (tmp_path / "home").exists()
