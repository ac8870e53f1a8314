"""Run an exported model with ONNX Runtime: no TensorFlow, no pandas."""

from __future__ import annotations

from pathlib import Path

import numpy as np


class OnnxModel:
    """A loaded ONNX model that maps float32 inputs to outputs.

    Args:
        path: the ``.onnx`` file.
        threads: ONNX Runtime's intra-op threads; 0 lets it pick (one per core). A single row
            gains nothing from a thread pool, and streaming prediction already keeps a second
            core busy reading the next chunk, so both ask for 1.
    """

    def __init__(self, path: Path | str, threads: int = 0) -> None:
        from cnncli.runtime import keep_home_untouched

        keep_home_untouched()  # before the import: it wrote telemetry files into ~/.cache
        import onnxruntime as ort

        ort.disable_telemetry_events()
        # errors only, from the process-wide logger too: its warnings are colour-coded lines
        # with C++ source paths (telemetry, device discovery), not cnncli's one-line warnings
        ort.set_default_logger_severity(3)
        options = ort.SessionOptions()
        options.log_severity_level = 3
        options.intra_op_num_threads = threads
        if threads == 1:
            options.inter_op_num_threads = 1
            options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self.session = ort.InferenceSession(
            str(path), sess_options=options, providers=["CPUExecutionProvider"]
        )
        self.input_name = self.session.get_inputs()[0].name

    def shapes(self) -> tuple[list[int | str | None], list[int | str | None]]:
        """The input's and the first output's shapes without the batch axis (names if symbolic)."""
        inputs = self.session.get_inputs()[0].shape
        outputs = self.session.get_outputs()[0].shape
        return list(inputs[1:]), list(outputs[1:])

    def predict(self, x: np.ndarray) -> np.ndarray:
        return self.session.run(None, {self.input_name: np.ascontiguousarray(x, dtype=np.float32)})[
            0
        ]
