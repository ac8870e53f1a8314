"""Export a trained Keras model to ONNX (checked against Keras) and other serving formats."""

from __future__ import annotations

import contextlib
import io
import logging
import warnings
from pathlib import Path
from typing import Any

import numpy as np

#: ONNX and Keras outputs on the test split must agree this closely for predict to use ONNX.
ONNX_TOLERANCE = 1e-5
_CHECK_ROWS = 10_000


def export_onnx_checked(model: Any, path: Path, x_check: np.ndarray) -> dict[str, Any]:
    """Export ``model`` to ONNX at ``path`` and compare it with Keras on ``x_check``.

    Returns:
        A manifest entry: ``checked`` (bool), ``max_abs_diff``, ``rows`` and ``reason`` when the
        export or the check failed. A failed export leaves no file behind.
    """
    sample = np.asarray(x_check[:_CHECK_ROWS], dtype=np.float32)
    try:
        export_onnx(model, path)
        from cnncli.onnxrun import OnnxModel

        onnx_out = OnnxModel(path).predict(sample)
    except Exception as exc:  # noqa: BLE001 - any exporter failure means "use Keras"
        path.unlink(missing_ok=True)
        return {"checked": False, "reason": f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"}
    keras_out = np.asarray(model.predict(sample, batch_size=1024, verbose=0))
    diff = float(np.max(np.abs(onnx_out - keras_out))) if len(sample) else 0.0
    same_argmax = bool(len(sample) == 0 or keras_out.shape[1] == 1 or np.array_equal(onnx_out.argmax(1), keras_out.argmax(1)))
    checked = diff <= ONNX_TOLERANCE and same_argmax
    entry: dict[str, Any] = {"checked": checked, "max_abs_diff": diff, "same_argmax": same_argmax, "rows": len(sample)}
    if not checked:
        path.unlink(missing_ok=True)
        entry["reason"] = f"ONNX differs from Keras by {diff:.2e} (limit {ONNX_TOLERANCE:.0e})"
    return entry


def export_onnx(model: Any, path: Path) -> None:
    """Write ``model`` as ONNX through Keras' exporter, keeping its chatter off stdout."""
    quiet = io.StringIO()
    previous = logging.getLogger("tf2onnx").level
    logging.getLogger("tf2onnx").setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(quiet), contextlib.redirect_stderr(quiet):
            warnings.simplefilter("ignore")
            model.export(str(path), format="onnx", verbose=False)
    finally:
        logging.getLogger("tf2onnx").setLevel(previous)
