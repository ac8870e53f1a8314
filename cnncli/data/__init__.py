"""A CSV becomes model inputs, the same way for training in memory, training from chunks and
predict: the file's text (``csvfile``), one set of cell rules (``cells``), the column choice
(``columns``), the whole-file reader (``table``), the chunked reader and one-pass fit
(``chunks``), the read-ahead thread (``prefetch``), the split (``split``), and the preprocessing
fitter and transforms (``preprocess``, NumPy only), and the checks of a run's JSON read back as
untrusted input (``untrusted``). Imports ``config`` and ``errors``; never
Keras, and never ``model`` or ``train``.
"""
