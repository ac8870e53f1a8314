"""The Keras callback that snapshots every epoch, and what a checkpoint keeps of other callbacks."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from cnncli.train.checkpoints.keeper import CheckpointKeeper


class LossNotFinite(Exception):
    """Raised from a callback when an epoch ends with a NaN or infinite loss or weights."""

    def __init__(self, epoch: int, value: float | None) -> None:
        super().__init__(f"epoch {epoch}: loss {value}")
        self.epoch = epoch
        self.value = value


def make_callback(keras: Any, keeper: CheckpointKeeper) -> Any:
    """A callback that reports each epoch to ``keeper`` and stops between steps on a signal.

    Built here rather than at import time so that Keras is imported only when a model trains.
    """

    class KeepCheckpoints(keras.callbacks.Callback):
        """Snapshot after every epoch; stop between steps once a signal arrived."""

        def __init__(self) -> None:
            super().__init__()
            self.history: dict[str, list[float]] = keeper.resumed_history()

        def on_train_begin(self, logs: dict[str, Any] | None = None) -> None:
            keeper.restore_state()

        def on_epoch_begin(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
            keeper.epoch_begins(epoch + 1)
            keeper.check_signal()

        # on_train_batch_begin, not _end: defining a batch-end hook would turn off Keras'
        # asynchronous callback dispatch and slow every step down.
        def on_train_batch_begin(self, batch: int, logs: dict[str, Any] | None = None) -> None:
            keeper.check_signal()

        def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
            loss = float((logs or {}).get("loss", 0.0))
            if not np.isfinite(loss):  # before the snapshot: a checkpoint never holds NaN
                raise LossNotFinite(epoch + 1, loss)
            for name, value in (logs or {}).items():
                self.history.setdefault(name, []).append(float(value))
            # A callback that stopped the fit (EarlyStopping) ran before us: the checkpoint says
            # the fit is over, so a signal now is resumed as a finished fit, not trained on.
            stopped = bool(getattr(self.model, "stop_training", False))
            keeper.take_snapshot(self.model, epoch + 1, self.history, done=stopped)
            keeper.check_signal()

        def on_train_end(self, logs: dict[str, Any] | None = None) -> None:
            # After EarlyStopping(restore_best_weights) put the best weights back.
            keeper.take_snapshot(self.model, keeper.snapshot_epoch, self.history, done=True)

    return KeepCheckpoints()


#: CSVLogger's way of opening its file: set by this fit (``continue_logs``), never restored.
FILE_STATE = frozenset({"append", "append_header"})


def callback_scalars(callback: Any) -> dict[str, Any]:
    """A callback's counters and thresholds (``wait``, ``best``, ...): its plain, finite numbers.

    Settings from the config come back identical; skipped values (functions, the model,
    infinities a callback starts from) are re-created by the callback itself.
    """
    scalars: dict[str, Any] = {}
    for name, value in vars(callback).items():
        if name.startswith("_") or name == "best_weights":
            continue
        if isinstance(value, np.generic):
            value = value.item()
        if isinstance(value, float) and not np.isfinite(value):
            continue
        if value is None or isinstance(value, (bool, int, float, str)):
            scalars[name] = value
    return scalars


def callback_best_weights(callback: Any) -> list[np.ndarray] | None:
    """EarlyStopping(restore_best_weights=True) keeps a copy of the best epoch's weights."""
    best = getattr(callback, "best_weights", None)
    if not isinstance(best, (list, tuple)):
        return None
    return [np.array(value, copy=True) for value in best]
