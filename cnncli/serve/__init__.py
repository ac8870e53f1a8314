"""A trained run at work: the predictor (ONNX Runtime or Keras), rows in and out, evaluation,
batch files, and export (formats, the ONNX writer and rewriter). Imports ``model``, ``data``,
``config`` and ``runs``; never ``train``.
"""
