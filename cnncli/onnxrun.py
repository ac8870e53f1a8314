"""Run an exported model with ONNX Runtime: no TensorFlow, no pandas."""

from __future__ import annotations

from pathlib import Path

import numpy as np


class OnnxModel:
    """A loaded ONNX model that maps float32 inputs to outputs."""

    def __init__(self, path: Path | str) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.log_severity_level = 3
        self.session = ort.InferenceSession(str(path), sess_options=options, providers=["CPUExecutionProvider"])
        self.input_name = self.session.get_inputs()[0].name

    def predict(self, x: np.ndarray) -> np.ndarray:
        return self.session.run(None, {self.input_name: np.ascontiguousarray(x, dtype=np.float32)})[0]
