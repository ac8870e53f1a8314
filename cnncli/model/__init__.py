"""A Keras model from a config: the allow-list of Keras names, layer and compile construction,
and the targets a head must fit (label kinds, loss families, output units, input shapes), and the
memory training a model needs, counted from its shapes (``size``).
Imports ``config``, ``errors``, ``runtime`` and (for the file names a run reserves) ``runs``.
"""
