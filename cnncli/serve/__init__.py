"""A trained run at work: the predictor (ONNX Runtime or Keras, one decoder, one surprise count),
``--input`` rows, evaluation, its losses and the scores (label units, baseline) that train
reports too, batch files (read, write, CSV format), and export (formats, the ONNX writer and
rewriter). Imports ``model``, ``data``, ``config`` and ``runs``; never ``train``.
"""
