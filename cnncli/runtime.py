"""Importing TensorFlow/Keras quietly, on demand, and seeding everything.

TensorFlow costs seconds to import, so nothing imports it at module level except through
``import_keras``, which commands call only when they need a model.
"""

from __future__ import annotations

import logging
import os
import random
from typing import Any

from cnncli.errors import CnnCliError

INSTALL_HINT = "pip install 'cnncli[cpu]' (or 'cnncli[gpu]' for CUDA), or run `make install`"

_debug = False


def set_debug(enabled: bool) -> None:
    """Let TensorFlow's own log lines through (``--debug``)."""
    global _debug
    _debug = enabled


def import_keras() -> Any:
    """Import Keras on the TensorFlow backend with TensorFlow's C++ log noise silenced."""
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    if not _debug:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
        os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")
        os.environ.setdefault("ABSL_MIN_LOG_LEVEL", "3")
    try:
        import keras
    except ImportError as exc:
        raise CnnCliError(
            f"no deep-learning backend is installed ({exc.name or exc})",
            hint=f"install one: {INSTALL_HINT}",
        ) from exc
    if not _debug:
        logging.getLogger("tensorflow").setLevel(logging.ERROR)
        logging.getLogger("absl").setLevel(logging.ERROR)
    return keras


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and Keras, and make TensorFlow ops deterministic."""
    import numpy as np

    keras = import_keras()
    random.seed(seed)
    np.random.seed(seed)
    keras.utils.set_random_seed(seed)
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        tf.config.experimental.enable_op_determinism()
