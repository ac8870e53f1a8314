"""A CSV becomes model inputs: cell rules, the table and chunked readers, the split, and the
preprocessing fitter and transforms (``preprocess``, NumPy only, shared by training and predict).
Imports ``config`` and ``errors``; never Keras.
"""
