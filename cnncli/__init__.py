"""cnncli: train Keras networks on CSV data from a YAML model spec.

Importing this package is cheap: no TensorFlow, pandas or scikit-learn.
"""

__version__ = "0.1.0"

#: Version of the run-folder layout; a reader refuses folders from a newer layout.
RUN_FORMAT_VERSION = 1

__all__ = ["__version__", "RUN_FORMAT_VERSION"]
