"""Export a trained Keras model to ONNX (checked against Keras) and other serving formats.

Training calls ``export_onnx_checked`` to write the run's ``model.onnx``; ``cnncli export`` calls
``export_run`` to hand a model to a server written in anything: ONNX with the preprocessing in
its metadata, a TensorFlow SavedModel, or a LiteRT (``.tflite``) flat buffer, the last two with a
``preprocess.json`` beside them.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import shutil
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from cnncli import __version__
from cnncli.data.csvfile import kind_of
from cnncli.errors import CnnCliError, Location
from cnncli.runs import (
    ONNX_FILENAME,
    PREPROCESS_FILENAME,
    RunFolder,
    load_keras_model,
    open_atomic,
    output_target,
    write_atomic,
)
from cnncli.serve.batch_write import cannot_write

#: ONNX and Keras outputs on the test split must agree this closely for predict to use ONNX.
ONNX_TOLERANCE = 1e-5
_CHECK_ROWS = 10_000

EXPORT_FORMATS = ("onnx", "saved_model", "litert")
#: Keys of the ONNX ``metadata_props`` that carry the preprocessing.
METADATA_PREPROCESS = "cnncli.preprocess"
METADATA_RECIPE = "cnncli.recipe"
METADATA_VERSION = "cnncli.version"
PREPROCESS_RECIPE = (
    "Build the model input from one CSV row, in the order of preprocess.features: a numeric feature"
    " becomes (value - center) / scale, an empty cell first replaced by fill when fill is not null;"
    " a categorical feature becomes one 0/1 entry per category (all zeros for an unseen value);"
    " a date feature (YYYY-MM-DD, as days since 1970-01-01, an empty cell first replaced by fill)"
    " becomes 7 entries: (year - center) / scale, then sin and cos of 2*pi*month/12 (January 0),"
    " of 2*pi*weekday/7 (Monday 0) and of 2*pi*day_of_year/365.25 (1 January 0)."
    " Compute in float64, cast to float32, reshape to input_shape with a leading batch axis."
    " Outputs: label.kind onehot or sparse gives one probability per label.classes entry (argmax"
    " is the label); binary gives P(label.classes[1]); none gives the value; standard gives"
    " value * label.scale + label.center."
)


def export_onnx_checked(model: Any, path: Path, x_check: np.ndarray) -> dict[str, Any]:
    """Export ``model`` to ONNX at ``path`` and compare it with Keras on ``x_check``.

    Returns:
        A manifest entry: ``checked`` (bool), ``max_abs_diff``, ``rows`` and ``reason`` when the
        export or the check failed. A failed export leaves no file behind.
    """
    sample = np.asarray(x_check[:_CHECK_ROWS], dtype=np.float32)
    try:
        export_onnx(model, path)
        from cnncli.serve.onnxrun import OnnxModel

        onnx_out = OnnxModel(path).predict(sample)
    except Exception as exc:  # noqa: BLE001 - any exporter failure means "use Keras"
        path.unlink(missing_ok=True)
        return {
            "checked": False,
            "reason": f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}",
        }
    # Called directly rather than through model.predict, which traces a predict function first
    # (0.1-0.2 s on TensorFlow) for rows that are compared once.
    from cnncli.runtime import import_keras

    # convert_to_numpy: a torch tensor that carries a gradient refuses np.asarray
    to_numpy = import_keras().ops.convert_to_numpy
    keras_out = np.concatenate(
        [
            to_numpy(model(sample[start : start + 1024], training=False))
            for start in range(0, len(sample), 1024)
        ]
        or [np.zeros((0, *model.output_shape[1:]), np.float32)]
    )
    diff = float(np.max(np.abs(onnx_out - keras_out))) if len(sample) else 0.0
    same_argmax = bool(
        len(sample) == 0
        or keras_out.shape[1] == 1
        or np.array_equal(onnx_out.argmax(1), keras_out.argmax(1))
    )
    checked = diff <= ONNX_TOLERANCE and same_argmax
    entry: dict[str, Any] = {
        "checked": checked,
        "max_abs_diff": diff,
        "same_argmax": same_argmax,
        "rows": len(sample),
    }
    if not checked:
        path.unlink(missing_ok=True)
        entry["reason"] = f"ONNX differs from Keras by {diff:.2e} (limit {ONNX_TOLERANCE:.0e})"
    return entry


def export_onnx(model: Any, path: Path) -> None:
    """Write ``model`` as ONNX, then simplify the graph for speed.

    Common layers are written directly (``onnxgraph``: no TensorFlow import, any backend); other
    stacks go through Keras' exporter.
    """
    import onnx

    from cnncli.serve.onnx_rewrite import simplify_onnx
    from cnncli.serve.onnxgraph import sequential_onnx

    proto = sequential_onnx(model)
    if proto is None:
        with _quiet("tf2onnx"):
            model.export(str(path), format="onnx", verbose=False)
        proto = onnx.load(str(path))
    onnx.save(simplify_onnx(proto), str(path))


@contextlib.contextmanager
def _quiet(logger: str) -> Iterator[None]:
    """Keep an exporter's prints, warnings and log lines off the user's terminal, and a Ctrl-C
    that lands in its finalizers too (it still stops the export)."""
    from cnncli.runtime import interrupts_kept_quiet

    sink = io.StringIO()
    previous = logging.getLogger(logger).level
    logging.getLogger(logger).setLevel(logging.ERROR)
    try:
        with (
            interrupts_kept_quiet(),
            warnings.catch_warnings(),
            contextlib.redirect_stdout(sink),
            contextlib.redirect_stderr(sink),
        ):
            warnings.simplefilter("ignore")
            yield
    finally:
        logging.getLogger(logger).setLevel(previous)


# ---------------------------------------------------------------------------------------------
# cnncli export


def default_export_path(run: RunFolder, fmt: str) -> Path:
    """``<run name>.onnx``, ``<run name>.saved_model`` or ``<run name>.tflite`` here."""
    suffix = {"onnx": ".onnx", "saved_model": ".saved_model", "litert": ".tflite"}[fmt]
    return Path(run.path.name + suffix)


def export_run(
    run: RunFolder, fmt: str, output: Path | None = None, with_preprocessing: bool = False
) -> list[Path]:
    """Write a run's model in ``fmt`` for serving elsewhere, with its preprocessing.

    Args:
        run: an opened run folder.
        fmt: ``onnx``, ``saved_model`` or ``litert``.
        output: where to write; defaults to ``default_export_path``. It must not exist yet.
        with_preprocessing: ONNX only: the graph takes raw columns and gives labels
            (``serve.onnx_pipeline``) instead of taking preprocessed values.

    Returns:
        The paths written: the model, then the ``preprocess.json`` sidecar where there is one.

    Raises:
        CnnCliError: unknown format, ``output`` exists, no checked ONNX model, or no converter.
    """
    if fmt not in EXPORT_FORMATS:
        raise CnnCliError(
            f"unknown export format {fmt!r}", hint=f"use one of: {', '.join(EXPORT_FORMATS)}"
        )
    if with_preprocessing and fmt != "onnx":
        raise CnnCliError(
            f"--with-preprocessing puts the preprocessing into an ONNX graph, not into {fmt}",
            hint="use --format onnx, or leave --with-preprocessing out",
        )
    path = output_target(output or default_export_path(run, fmt))
    if fmt == "litert" and path.suffix != ".tflite":
        raise CnnCliError(
            "a LiteRT model file must end in .tflite",
            where=Location(file=str(path)),
            hint="pass --output model.tflite",
        )
    sidecar = (
        path.with_name(path.name + ".preprocess.json")
        if fmt == "litert"
        else path / PREPROCESS_FILENAME
    )
    for target in [path] + ([sidecar] if fmt == "litert" else []):
        if not target.exists():
            continue
        kind = kind_of(target.stat().st_mode)
        if kind not in ("a file", "a folder"):  # /dev/null, a FIFO: export writes a new file
            raise CnnCliError(
                f"is {kind}, and export only writes a new file or folder",
                where=Location(file=str(target)),
                hint="pick a regular file path that does not exist yet,"
                f" e.g. --output {default_export_path(run, fmt)}",
            )
        raise CnnCliError(
            "already exists",
            where=Location(file=str(target)),
            hint="remove it or choose another --output",
        )
    if not path.parent.is_dir():
        raise CnnCliError(
            "folder does not exist",
            where=Location(file=str(path.parent)),
            hint="create it or choose another --output",
        )
    if fmt == "onnx":
        try:
            write_onnx_with_metadata(run, path, with_preprocessing)
        except OSError as exc:  # open_atomic left nothing behind
            raise cannot_write(path, exc) from None
        return [path]
    _select_tensorflow()  # before TensorFlow is imported: it imports Keras
    if fmt == "litert":
        _require_litert_converter()
    model = load_keras_model(run)
    preprocess = run.preprocessor.to_json() + "\n"
    with _whole_or_nothing(path) as temp:
        if fmt == "saved_model":
            with _quiet("tensorflow"):
                model.export(str(temp), format="tf_saved_model", verbose=False)
            write_atomic(temp / PREPROCESS_FILENAME, preprocess)
        else:
            export_litert(model, temp, shown=path)
            write_atomic(sidecar, preprocess)
    return [path, sidecar]


@contextlib.contextmanager
def _whole_or_nothing(path: Path) -> Iterator[Path]:
    """A temporary name beside ``path`` to write to, renamed to ``path`` when the block ends.

    On any failure the temporary file or folder is removed, and so is a LiteRT sidecar written
    for it: an export is complete or absent. A write error (read-only folder, full disk) is one
    line.

    Raises:
        CnnCliError: an ``OSError`` while writing or renaming.
    """
    temp = path.with_name(f".{path.stem}.part-{os.getpid()}{path.suffix}")
    sidecar = path.with_name(path.name + ".preprocess.json")
    try:
        yield temp
        os.rename(temp, path)
    except BaseException as exc:
        if temp.is_dir():
            shutil.rmtree(temp, ignore_errors=True)
        else:
            temp.unlink(missing_ok=True)
        if path.suffix == ".tflite":
            sidecar.unlink(missing_ok=True)
        if isinstance(exc, OSError):
            raise cannot_write(path, exc) from None
        raise


def _select_tensorflow() -> None:
    """Keras on the TensorFlow backend, which both converters need (a run may train on JAX)."""
    from cnncli.runtime import select_backend

    backend = select_backend("tensorflow")
    if backend != "tensorflow":  # Keras was already imported on another backend here
        raise CnnCliError(
            f"SavedModel and LiteRT export need Keras on TensorFlow; this process runs {backend}",
            hint="run `cnncli export` on its own",
        )


def write_onnx_with_metadata(run: RunFolder, path: Path, with_preprocessing: bool = False) -> None:
    """Copy the run's checked ``model.onnx`` with the preprocessing in ``metadata_props``, and
    with ``with_preprocessing`` in the graph too (``serve.onnx_pipeline``)."""
    if not run.onnx_ok:
        reason = run.manifest.get("onnx", {}).get("reason", "it was not exported")
        raise CnnCliError(
            f"this run has no checked model.onnx ({reason})",
            where=Location(file=str(run.path)),
            hint="export --format saved_model or litert instead",
        )
    import onnx

    model = onnx.load(str(run.file(ONNX_FILENAME)))
    recipe = PREPROCESS_RECIPE
    if with_preprocessing:
        from cnncli.serve.onnx_pipeline import PIPELINE_RECIPE, pipeline_onnx

        model, recipe = pipeline_onnx(model, run.preprocessor, str(run.path)), PIPELINE_RECIPE
    entries = {
        METADATA_PREPROCESS: json.dumps(
            json.loads(run.preprocessor.to_json()), separators=(",", ":")
        ),
        METADATA_RECIPE: recipe,
        METADATA_VERSION: __version__,
    }
    kept = [prop for prop in model.metadata_props if prop.key not in entries]
    del model.metadata_props[:]
    model.metadata_props.extend(kept)
    for key, value in entries.items():
        model.metadata_props.add(key=key, value=value)
    model.doc_string = f"Exported by cnncli {__version__} from {run.path.name}. {recipe}"
    with open_atomic(path) as stream:
        stream.write(model.SerializeToString())


def _require_litert_converter() -> None:
    """Fail early, in one line, where TensorFlow's TFLite converter is missing."""
    try:
        import tensorflow as tf

        tf.lite.TFLiteConverter  # noqa: B018 - newer TensorFlow builds may ship without it
    except (ImportError, AttributeError) as exc:
        raise CnnCliError(
            "LiteRT export needs TensorFlow's TFLite converter, which this installation lacks",
            hint="install it: pip install 'tensorflow-cpu>=2.18' (or 'cnncli[cpu]')",
        ) from exc


def export_litert(model: Any, path: Path, shown: Path | None = None) -> None:
    """Convert to LiteRT through TensorFlow's converter (Keras' ``format="litert"``).

    ``shown`` is the name a message gives (``path`` may be a temporary name); a write error
    (``OSError``) is the caller's to report.
    """
    _require_litert_converter()
    try:
        with _quiet("tensorflow"):
            model.export(str(path), format="litert", verbose=False)
    except OSError:
        path.unlink(missing_ok=True)
        raise
    except Exception as exc:  # the converter raises many types for ops it cannot handle
        path.unlink(missing_ok=True)
        detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CnnCliError(
            f"LiteRT conversion failed: {detail}",
            where=Location(file=str(shown or path)),
            hint="export --format onnx or saved_model instead",
        ) from exc
