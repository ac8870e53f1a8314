"""Importing Keras quietly, on demand, on the backend a config asks for, and seeding everything.

Keras' backends cost seconds to import (TensorFlow about 6 s of CPU, JAX about 2 s), so nothing
imports one at module level except through ``import_keras``, which commands call only when they
need a model. ``select_backend`` must run before that first import: Keras fixes its backend once
per process.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import random
import shutil
import sys
import tempfile
from collections.abc import Iterator
from typing import Any

from cnncli.errors import CnnCliError, Location

INSTALL_HINT = "pip install 'cnncli[cpu]' (or 'cnncli[gpu]' for CUDA), or run `make install`"
DEFAULT_BACKEND = "tensorflow"
#: The backends a config may name (``backend:``) and ``CNNCLI_BACKEND`` may force.
BACKENDS = ("tensorflow", "jax", "torch")
#: What to run when a backend's package is missing (``jax`` comes with cnncli itself).
BACKEND_INSTALL = {
    "tensorflow": INSTALL_HINT,
    "jax": "pip install jax",
    # the CPU wheel: a plain `torch` pulls the multi-GB CUDA build
    "torch": "pip install 'cnncli[torch]' --extra-index-url https://download.pytorch.org/whl/cpu",
}
FORCE_BACKEND_VARIABLE = "CNNCLI_BACKEND"

#: Environment that keeps TensorFlow's and XLA's C++ logging (absl, oneDNN, CUDA probes) quiet.
QUIET_ENVIRONMENT = {
    "TF_CPP_MIN_LOG_LEVEL": "3",
    "TF_ENABLE_ONEDNN_OPTS": "0",
    "ABSL_MIN_LOG_LEVEL": "3",
    "GRPC_VERBOSITY": "ERROR",
}
#: Python loggers that print start-up notes (the JAX "no GPU/TPU found" line among them).
QUIET_LOGGERS = ("tensorflow", "absl", "jax._src.xla_bridge", "jax")

#: Keras builds, saves and loads a functional model by walking its graph recursively (about 4
#: frames a layer): Python's default 1,000 ended a 1,000-node graph in a RecursionError, while
#: a model may have 10,000 layers (``config.expand.MAX_LAYERS``).
KERAS_RECURSION_LIMIT = 60_000

_debug = False
_cache_enabled = False


def set_debug(enabled: bool) -> None:
    """Let TensorFlow's and JAX's own log lines through (``--debug``), or keep them quiet.

    Quiet means the environment is set now, at start-up: TensorFlow reads it once, when it is
    first imported, and not every import goes through ``import_keras`` (``export --format
    litert`` imports TensorFlow's converter directly and printed about 15 C++ log lines).
    """
    global _debug
    _debug = enabled
    keep_home_untouched()
    if not enabled:
        quiet_backend_logs()


def keep_home_untouched() -> None:
    """Keep Keras, ONNX Runtime and matplotlib from writing into the user's home folder.

    cnncli writes only the run and the user's ``--output``. Importing Keras creates
    ``~/.keras/keras.json`` (or ``/tmp/.keras``) when it is missing, and importing ONNX Runtime
    creates a device id and a telemetry database under ``~/.cache/Microsoft``. Both read their
    environment once, at import, so this runs before either is imported. A ``keras.json`` the
    user keeps, and a ``KERAS_HOME`` or ``ORT_DISABLE_TELEMETRY`` the user set, are kept.
    """
    os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")
    keep_matplotlib_out_of_home()  # Keras imports matplotlib (keras.visualization) when present
    if "KERAS_HOME" in os.environ:
        return
    home = os.path.expanduser("~")
    default = os.path.join(home if os.access(home, os.W_OK) else "/tmp", ".keras")  # as Keras
    if not os.path.exists(os.path.join(default, "keras.json")):
        # a folder nothing can be created in: Keras skips its config file and writes nothing
        os.environ["KERAS_HOME"] = os.path.join(os.devnull, "keras")


def quiet_backend_logs() -> None:
    """Set the environment that keeps TensorFlow's and XLA's C++ logs off stderr; a variable
    the user set is kept."""
    for key, value in QUIET_ENVIRONMENT.items():
        os.environ.setdefault(key, value)


@contextlib.contextmanager
def interrupts_kept_quiet(reraise: bool = True) -> Iterator[None]:
    """An interrupt raised where Python cannot pass it on (a finalizer, a converter's callback)
    is kept off the terminal, where it printed "Exception ignored in ... Traceback" (unless
    ``--debug``), and raised again on leaving (``reraise``), so the command still stops.
    """
    previous = sys.unraisablehook
    caught: list[BaseException | None] = []

    def hook(unraisable: Any) -> None:
        if issubclass(unraisable.exc_type, KeyboardInterrupt):
            caught.append(unraisable.exc_value)
            if not _debug:
                return
        previous(unraisable)

    sys.unraisablehook = hook
    try:
        yield
    finally:
        sys.unraisablehook = previous
    if caught and reraise:
        raise KeyboardInterrupt


def select_backend(name: str | None) -> str:
    """Ask for a Keras backend before Keras is imported; returns the backend that will run.

    Once Keras is imported its backend cannot change in the same process (a test session that
    trains configs with different backends, say); the loaded one is kept and returned.
    ``CNNCLI_BACKEND`` in the environment overrides every config (a CI that pins one backend).
    """
    loaded = loaded_backend()
    if loaded is not None:
        return loaded
    chosen = forced_backend() or name or os.environ.get("KERAS_BACKEND", DEFAULT_BACKEND)
    os.environ["KERAS_BACKEND"] = chosen
    return os.environ["KERAS_BACKEND"]


def forced_backend() -> str | None:
    """The backend ``CNNCLI_BACKEND`` pins for every config, if any.

    Raises:
        CnnCliError: the variable names a backend cnncli does not run.
    """
    forced = os.environ.get(FORCE_BACKEND_VARIABLE) or None
    if forced is not None and forced not in BACKENDS:
        raise CnnCliError(
            f"{forced!r} is not a backend cnncli runs",
            where=Location(key=FORCE_BACKEND_VARIABLE),
            hint=f"set it to one of {', '.join(BACKENDS)}, or unset it",
        )
    return forced


def loaded_backend() -> str | None:
    """The backend of the Keras already imported in this process, or None."""
    keras = sys.modules.get("keras")
    return keras.backend.backend() if keras is not None and hasattr(keras, "backend") else None


def import_keras() -> Any:
    """Import Keras on the selected backend with the backends' log noise silenced."""
    os.environ.setdefault("KERAS_BACKEND", DEFAULT_BACKEND)
    keep_home_untouched()
    if not _debug:
        quiet_backend_logs()
    try:
        keras = _import_keras_without_unused_modules()
    except ImportError as exc:
        raise missing_backend(os.environ["KERAS_BACKEND"], exc) from exc
    if not _debug:
        for name in QUIET_LOGGERS:
            logging.getLogger(name).setLevel(logging.ERROR)
    sys.setrecursionlimit(max(sys.getrecursionlimit(), KERAS_RECURSION_LIMIT))
    if keras.backend.backend() == "jax":
        _keep_tensorflow_unloaded()
        enable_compilation_cache()
    return keras


def missing_backend(backend: str, exc: ImportError) -> CnnCliError:
    """The one line for a backend whose package is not installed, with the command to install it."""
    if backend == "tensorflow":
        hint = f"install one: {INSTALL_HINT}"
    else:
        install = BACKEND_INSTALL.get(backend, INSTALL_HINT)
        hint = f"{install}, or set backend: tensorflow"
    return CnnCliError(f"no deep-learning backend is installed ({exc.name or exc})", hint=hint)


def _import_keras_without_unused_modules() -> Any:
    """``import keras``, hiding optional modules that its import would load for nothing.

    ``import keras`` imports scikit-learn (1.5 s with SciPy) for ``keras.wrappers`` whenever it
    is installed, and on the TensorFlow backend TensorFlow's LiteRT module imports JAX (0.4 s)
    for a JAX-to-LiteRT converter; cnncli uses neither. Hiding them for the import only leaves
    them importable afterwards for anyone who needs them.
    """
    hidden = ["sklearn"]
    if os.environ.get("KERAS_BACKEND") == "tensorflow":
        hidden.append("jax")
    if "keras" in sys.modules or any(name in sys.modules for name in hidden):
        import keras

        return keras
    for name in hidden:
        sys.modules[name] = None  # type: ignore[assignment]  # makes `import NAME` fail
    try:
        import keras
    finally:
        for name in hidden:
            del sys.modules[name]
    return keras


def backend_module(name: str) -> Any:
    """A backend's own module (``jax``, ``jax._src.distributed``, ``tensorflow``) for code that
    drives it directly, such as the distribution strategies; imported here, the one door."""
    if name == "jax":
        import jax

        return jax
    if name == "jax._src.distributed":  # the joined processes' client (a key-value store)
        from jax._src import distributed

        return distributed
    if name == "tensorflow":
        import tensorflow

        return tensorflow
    raise ValueError(f"not a backend module cnncli drives: {name}")


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


def _keep_tensorflow_unloaded() -> None:
    """On JAX, stop Keras from importing TensorFlow (5 s) just to ask whether it is there.

    Keras asks "is TensorFlow available?" to seed it (``set_random_seed``) and to recognise
    TensorFlow objects (saving, data adapters); when TensorFlow is installed, asking imports it.
    No TensorFlow object can exist before TensorFlow is imported, so the answer "no" is right
    until something imports it for real, which still works: only the question is answered.
    """
    from keras.src.utils import module_utils

    if "tensorflow" not in sys.modules:
        module_utils.tensorflow._available = False


def cache_folder(name: str) -> str | None:
    """``name`` in cnncli's cache (``CNNCLI_CACHE_DIR``, default ``~/.cache/cnncli``), created;
    None when the cache is turned off (an empty ``CNNCLI_CACHE_DIR``) or cannot be written.

    It holds JAX's compiled programs (``xla``) and matplotlib's font list (``matplotlib``);
    anything in it can be deleted at any time.
    """
    root = os.environ.get(
        "CNNCLI_CACHE_DIR", os.path.join(os.path.expanduser("~"), ".cache", "cnncli")
    )
    if not root:
        return None
    folder = os.path.join(root, name)
    try:
        os.makedirs(folder, exist_ok=True)
    except OSError:
        return None
    return folder if os.access(folder, os.W_OK) else None


def keep_matplotlib_out_of_home() -> None:
    """matplotlib creates ``~/.config/matplotlib`` and its font list in ``~/.cache/matplotlib``
    when first imported (by Keras, or by the plots). Unless ``MPLCONFIGDIR`` is set, both go
    into cnncli's cache (``cache_folder``: reading the list is 0.15 s quicker than building it),
    or into a private temporary folder, removed at exit, when the cache is off. matplotlib reads
    the variable once, at import, so this runs before anything imports it.
    """
    if "MPLCONFIGDIR" in os.environ:
        return
    folder = cache_folder("matplotlib")
    if folder is None:
        folder = tempfile.mkdtemp(prefix="cnncli-matplotlib-")
        atexit.register(shutil.rmtree, folder, ignore_errors=True)
    os.environ["MPLCONFIGDIR"] = folder


def enable_compilation_cache() -> None:
    """Keep JAX's compiled XLA programs on disk, so a config trained again skips compilation.

    Compiling the train, test and predict steps is most of a small run's time on JAX; the
    cached programs are the same programs, so results do not change. ``CNNCLI_CACHE_DIR`` moves
    the cache (default ``~/.cache/cnncli``); an empty value turns it off. A small stack's programs
    take about 1 MB; the folder can be deleted at any time.
    """
    global _cache_enabled
    if _cache_enabled:
        return
    folder = cache_folder("xla")
    if folder is None:
        return  # turned off, or a read-only home: compile every time
    _cache_enabled = True
    import jax

    jax.config.update("jax_compilation_cache_dir", folder)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
