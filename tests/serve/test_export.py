"""`cnncli export` to ONNX (preprocessing in its metadata), SavedModel and LiteRT."""

from __future__ import annotations

import errno
import json
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import onnx
import pytest

from cnncli.cli import cli
from cnncli.serve.export import METADATA_PREPROCESS, METADATA_RECIPE
from cnncli.serve.onnxrun import OnnxModel

# ---------------------------------------------------------------------------------------------
# cnncli export


def preprocess_like_a_client(meta: dict, row: list[float]) -> np.ndarray:
    """What the recipe in the metadata tells a client in any language to do."""
    values = [(v - f["center"]) / f["scale"] for v, f in zip(row, meta["features"], strict=True)]
    return np.asarray(values, dtype=np.float64).astype(np.float32).reshape(1, *meta["input_shape"])


@pytest.mark.slow
def test_export_onnx_carries_the_preprocessing(runner, seed_run, tmp_path):
    target = tmp_path / "seed.onnx"
    result = runner.invoke(
        cli, ["export", str(seed_run), "--output", str(target)], catch_exceptions=False
    )
    assert (result.exit_code, result.stdout) == (0, f"{target}\n")
    model = onnx.load(str(target))
    meta = {prop.key: prop.value for prop in model.metadata_props}
    preprocess = json.loads(meta[METADATA_PREPROCESS])
    assert preprocess == json.loads((seed_run / "preprocess.json").read_text())
    assert "(value - center) / scale" in meta[METADATA_RECIPE]
    probabilities = OnnxModel(target).predict(preprocess_like_a_client(preprocess, [3, 30, 5]))
    shown = runner.invoke(cli, ["predict", str(seed_run), "--input", "3,30,5", "--json"])
    expected = json.loads(shown.stdout)["predictions"][0]["probabilities"]
    assert probabilities[0].tolist() == pytest.approx(
        [expected[c] for c in preprocess["label"]["classes"]]
    )


@pytest.mark.slow
def test_export_refuses_to_overwrite(runner, seed_run, tmp_path):
    target = tmp_path / "seed.onnx"
    target.write_text("mine")
    result = runner.invoke(cli, ["export", str(seed_run), "--output", str(target)])
    assert result.exit_code == 2
    assert (
        result.stderr == f"error: {target}: already exists; remove it or choose another --output\n"
    )
    assert target.read_text() == "mine"


@pytest.mark.slow
def test_export_onnx_of_a_run_without_checked_onnx_says_what_to_do(runner, seed_run, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(seed_run, run)
    manifest = json.loads((run / "manifest.json").read_text())
    manifest["onnx"] = {"checked": False, "reason": "Unsupported: a layer"}
    (run / "manifest.json").write_text(json.dumps(manifest))
    result = runner.invoke(cli, ["export", str(run), "--output", str(tmp_path / "m.onnx")])
    assert result.exit_code == 2
    assert result.stderr == (
        f"error: {run}: this run has no checked model.onnx (Unsupported: a layer);"
        " export --format saved_model or litert instead\n"
    )


@pytest.fixture(scope="module")
def tensorflow_exports(seed_run, tmp_path_factory):
    """`cnncli export` to LiteRT and SavedModel in a process of its own (Keras on TensorFlow;
    this test process may run Keras on JAX, which both converters refuse)."""
    folder = tmp_path_factory.mktemp("exports")
    code = (
        "import json\nfrom cnncli.cli import cli\nfor fmt, name in"
        " (('litert', 'seed.tflite'), ('saved_model', 'seed.saved_model')):\n"
        f"    cli(['export', {str(seed_run)!r}, '--format', fmt, '--output', {str(folder)!r} + '/'"
        " + name], standalone_mode=False)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    return folder, result.stdout.splitlines()


@pytest.mark.slow
def test_export_litert_agrees_with_onnx(seed_run, tensorflow_exports):
    import tensorflow as tf

    folder, printed = tensorflow_exports
    target, sidecar = folder / "seed.tflite", folder / "seed.tflite.preprocess.json"
    assert printed[:2] == [str(target), str(sidecar)]
    assert sidecar.read_text() == (seed_run / "preprocess.json").read_text()
    x = np.random.default_rng(1).normal(size=(1, 3, 1)).astype(np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tf.lite.Interpreter: "deprecated, use ai_edge_litert"
        interpreter = tf.lite.Interpreter(model_path=str(target))
    interpreter.allocate_tensors()
    interpreter.set_tensor(interpreter.get_input_details()[0]["index"], x)
    interpreter.invoke()
    got = interpreter.get_tensor(interpreter.get_output_details()[0]["index"])
    np.testing.assert_allclose(got, OnnxModel(seed_run / "model.onnx").predict(x), atol=1e-5)


@pytest.mark.slow
def test_export_saved_model_folder_with_preprocessing(seed_run, tensorflow_exports):
    folder, printed = tensorflow_exports
    target = folder / "seed.saved_model"
    assert printed[2:] == [str(target), str(target / "preprocess.json")]
    assert (target / "saved_model.pb").is_file()
    assert (target / "preprocess.json").read_text() == (seed_run / "preprocess.json").read_text()


@pytest.mark.slow
def test_export_litert_without_a_converter_says_what_to_install(
    runner, seed_run, tmp_path, monkeypatch
):
    import tensorflow as tf

    monkeypatch.delattr(tf, "lite")
    monkeypatch.setattr("cnncli.runtime.select_backend", lambda name: "tensorflow")
    result = runner.invoke(
        cli, ["export", str(seed_run), "--format", "litert", "--output", str(tmp_path / "m.tflite")]
    )
    assert result.exit_code == 2
    assert result.stderr == (
        "error: LiteRT export needs TensorFlow's TFLite converter, which this installation lacks;"
        " install it: pip install 'tensorflow-cpu>=2.18' (or 'cnncli[cpu]')\n"
    )
    assert not (tmp_path / "m.tflite").exists()


# ---------------------------------------------------------------------------------------------
# Write errors (issue 11.9): one line, exit 2, nothing half-written


def no_space(*_args, **_kwargs):
    raise OSError(errno.ENOSPC, "No space left on device")


def read_only(*_args, **_kwargs):
    raise PermissionError(errno.EROFS, "Read-only file system")


@pytest.mark.parametrize(
    ("patch", "problem"),
    [("fsync", "No space left on device"), ("mkstemp", "Read-only file system")],
    ids=["full-disk", "read-only"],
)
def test_export_onnx_write_error_is_one_line_and_leaves_nothing(
    runner, tiny_run, tmp_path, monkeypatch, patch, problem
):
    import os
    import tempfile

    target = tmp_path / "out" / "m.onnx"
    target.parent.mkdir()
    if patch == "fsync":
        monkeypatch.setattr(os, "fsync", no_space)
    else:
        monkeypatch.setattr(tempfile, "mkstemp", read_only)
    result = runner.invoke(cli, ["export", str(tiny_run), "--output", str(target)])
    assert result.exit_code == 2
    assert result.stderr == (
        f"error: {target}: cannot write there: {problem}; choose another --output\n"
    )
    assert list(target.parent.iterdir()) == []


@pytest.mark.parametrize("fmt", ["saved_model", "litert"])
def test_export_saved_model_or_litert_on_a_full_disk_leaves_nothing(
    runner, tiny_run, tmp_path, monkeypatch, fmt
):
    """The exporter writes part of its files, then the disk is full (no TensorFlow needed)."""
    from cnncli.serve import export

    class HalfWritten:
        def export(self, path, **_kwargs):
            path = Path(path)
            if fmt == "saved_model":
                path.mkdir()
                (path / "saved_model.pb").write_bytes(b"part")
            else:
                path.write_bytes(b"part")
            no_space()

    monkeypatch.setattr(export, "_select_tensorflow", lambda: None)
    monkeypatch.setattr(export, "_require_litert_converter", lambda: None)
    monkeypatch.setattr(export, "load_keras_model", lambda _run: HalfWritten())
    target = tmp_path / "out" / ("m.saved_model" if fmt == "saved_model" else "m.tflite")
    target.parent.mkdir()
    result = runner.invoke(cli, ["export", str(tiny_run), "--format", fmt, "--output", str(target)])
    assert result.exit_code == 2, result.output
    assert result.stderr == (
        f"error: {target}: cannot write there: No space left on device; choose another --output\n"
    )
    assert list(target.parent.iterdir()) == []


def test_export_onto_a_device_says_what_it_is_and_to_pick_a_file(runner, tiny_run):
    """--output /dev/null said "already exists; remove it": wrong advice for a device."""
    result = runner.invoke(cli, ["export", str(tiny_run), "--output", "/dev/null"])
    assert result.exit_code == 2
    assert result.stderr == (
        "error: /dev/null: is a character device, and export only writes a new file or folder;"
        f" pick a regular file path that does not exist yet, e.g. --output {tiny_run.name}.onnx\n"
    )
    assert Path("/dev/null").is_char_device()


def test_export_onto_a_fifo_or_links_is_one_line_and_leaves_them(runner, tiny_run, tmp_path):
    import os

    fifo = tmp_path / "pipe.onnx"
    os.mkfifo(fifo)
    dangling = tmp_path / "dangling.onnx"
    dangling.symlink_to("gone.onnx")
    (tmp_path / "mine.onnx").write_text("mine")
    link = tmp_path / "link.onnx"
    link.symlink_to("mine.onnx")
    lines = {
        path.name: runner.invoke(cli, ["export", str(tiny_run), "--output", str(path)]).stderr
        for path in (fifo, dangling, link)
    }
    assert lines == {
        "pipe.onnx": f"error: {fifo}: is a pipe (FIFO), and export only writes a new file or"
        f" folder; pick a regular file path that does not exist yet, e.g. --output"
        f" {tiny_run.name}.onnx\n",
        "dangling.onnx": f"error: {dangling}: is a symbolic link to gone.onnx, which does not"
        " exist; point the link at an existing file, or choose another --output\n",
        "link.onnx": f"error: {tmp_path / 'mine.onnx'}: already exists; remove it or choose"
        " another --output\n",
    }
    assert fifo.is_fifo() and dangling.is_symlink() and link.is_symlink()
    assert (tmp_path / "mine.onnx").read_text() == "mine"
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "dangling.onnx",
        "link.onnx",
        "mine.onnx",
        "pipe.onnx",
    ]
