"""One checkpoint on disk: ``epoch-NNNN.npz`` and ``state.json`` in ``checkpoints/``.

``epoch-NNNN.npz`` holds the model variables (Dropout seed states included), the optimizer
variables and callbacks' best weights as plain arrays (``np.load`` with pickling off).
``state.json`` holds the epoch, seed, history, Python and NumPy RNG state, config and data
fingerprints and the arrays file's sha256. It is written last, atomically, so it is the commit
point: a reader sees the previous checkpoint or the new one, never half of one.
"""

from __future__ import annotations

import datetime as dt
import io
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from cnncli.errors import CnnCliError, Location
from cnncli.runs import (
    CHECKPOINT_STATE_FILENAME,
    CHECKPOINTS_DIRNAME,
    MANIFEST_FILENAME,
    has_checkpoint,
    refuse_links_inside,
    sha256_file,
    write_atomic,
    write_json,
)

CHECKPOINT_FORMAT = 1


@dataclass(frozen=True)
class Checkpoint:
    """A committed checkpoint of an interrupted run, read from its ``state.json``."""

    run: Path  # the staging folder
    state: dict[str, Any]

    @property
    def epoch(self) -> int:
        """Epochs completed."""
        return int(self.state["epoch"])

    @property
    def seed(self) -> int:
        return int(self.state["seed"])

    @property
    def done(self) -> bool:
        """Fit had finished (all epochs, or a callback such as EarlyStopping stopped it)."""
        return bool(self.state.get("done"))

    @property
    def history(self) -> dict[str, list[float]]:
        return {name: [float(v) for v in values] for name, values in self.state["history"].items()}

    @property
    def arrays_path(self) -> Path:
        return self.run / CHECKPOINTS_DIRNAME / self.state["arrays"]

    def load_arrays(
        self,
    ) -> tuple[list[np.ndarray], list[np.ndarray], list[list[np.ndarray] | None]]:
        """Model and optimizer variables and each callback's best weights (None where absent),
        after checking the file against its sha256."""
        where = Location(file=str(self.arrays_path))
        if (
            not self.arrays_path.is_file()
            or sha256_file(self.arrays_path) != self.state["arrays_sha256"]
        ):
            raise CnnCliError(
                "checkpoint arrays are missing or do not match their sha256 in state.json",
                where=where,
                hint="the checkpoint was damaged; train again without --resume",
            )
        with np.load(self.arrays_path, allow_pickle=False) as arrays:
            model = [arrays[f"model_{i}"] for i in range(int(self.state["model_variables"]))]
            optimizer = [
                arrays[f"optimizer_{i}"] for i in range(int(self.state["optimizer_variables"]))
            ]
            best = [
                None if count is None else [arrays[f"callback_{i}_{j}"] for j in range(count)]
                for i, count in enumerate(self.state.get("callback_arrays", []))
            ]
        return model, optimizer, best


def state_path(run: Path) -> Path:
    """Where a staging folder's ``state.json`` is."""
    return run / CHECKPOINTS_DIRNAME / CHECKPOINT_STATE_FILENAME


def load_checkpoint(run: Path) -> Checkpoint:
    """Read an interrupted run's checkpoint.

    Raises:
        CnnCliError: the run is complete, holds no checkpoint, or one from a newer cnncli.
    """
    where = Location(file=str(run))
    if (run / MANIFEST_FILENAME).is_file():
        raise CnnCliError(
            "this run is complete; there is nothing to resume",
            where=where,
            hint="use it with cnncli evaluate/predict, or train again without --resume",
        )
    if not run.is_dir() or not has_checkpoint(run):
        raise CnnCliError(
            "no checkpoint here to resume from",
            where=where,
            hint="pass the folder named in the 'interrupted' message, or train without --resume",
        )
    refuse_links_inside(run)
    try:
        state = json.loads(state_path(run).read_text(encoding="utf-8"))
        version = state["format"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise CnnCliError(
            "checkpoint state.json is unreadable", where=where, hint="train again without --resume"
        ) from exc
    if not isinstance(version, int) or version > CHECKPOINT_FORMAT:
        raise CnnCliError(
            f"checkpoint was written by cnncli {state.get('cnncli')} (checkpoint format {version}),"
            f" newer than this cnncli's format {CHECKPOINT_FORMAT}",
            where=where,
            hint="resume it with that cnncli version, or train again without --resume",
        )
    return Checkpoint(run=run, state=state)


def _json_floats(values: list[float]) -> list[float | str]:
    """JSON has no NaN or infinity: those are kept as the text ``float()`` reads back."""
    return [value if np.isfinite(value) else repr(float(value)) for value in values]


@dataclass
class Snapshot:
    """The state after ``epoch`` completed epochs, copied to memory, waiting to be written."""

    epoch: int
    done: bool
    model: list[np.ndarray]
    optimizer: list[np.ndarray]
    history: dict[str, list[float]]
    python_rng: Any
    numpy_rng: Any
    callbacks: list[dict[str, Any]] = field(default_factory=list)
    callback_arrays: list[list[np.ndarray] | None] = field(default_factory=list)
    written: bool = False


def write_checkpoint(run: Path, snapshot: Snapshot, header: dict[str, Any]) -> None:
    """Write ``snapshot`` into ``run``'s ``checkpoints/`` (atomic; the old one stays valid).

    Args:
        run: the staging folder.
        snapshot: what to write.
        header: the run's fields of ``state.json`` (name, final name, seed, config and data
            fingerprints), written as given.
    """
    folder = run / CHECKPOINTS_DIRNAME
    folder.mkdir(exist_ok=True)
    arrays_name = f"epoch-{snapshot.epoch:04d}.npz"
    buffer = io.BytesIO()
    np.savez(
        buffer,
        **{f"model_{i}": value for i, value in enumerate(snapshot.model)},
        **{f"optimizer_{i}": value for i, value in enumerate(snapshot.optimizer)},
        **{
            f"callback_{i}_{j}": value
            for i, best in enumerate(snapshot.callback_arrays)
            for j, value in enumerate(best or [])
        },
    )
    write_atomic(folder / arrays_name, buffer.getvalue())
    version, internal, gauss = snapshot.python_rng
    name, keys, position, has_gauss, cached = snapshot.numpy_rng
    from cnncli import __version__

    write_json(
        folder / CHECKPOINT_STATE_FILENAME,
        {
            "format": CHECKPOINT_FORMAT,
            "cnncli": __version__,
            "written": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
            **header,
            "epoch": snapshot.epoch,
            "done": snapshot.done,
            "history": {name: _json_floats(values) for name, values in snapshot.history.items()},
            "arrays": arrays_name,
            "arrays_sha256": sha256_file(folder / arrays_name),
            "model_variables": len(snapshot.model),
            "optimizer_variables": len(snapshot.optimizer),
            "callbacks": snapshot.callbacks,
            "callback_arrays": [
                None if best is None else len(best) for best in snapshot.callback_arrays
            ],
            "rng": {
                "python": [version, list(internal), gauss],
                "numpy": [
                    name,
                    np.asarray(keys).tolist(),
                    int(position),
                    int(has_gauss),
                    float(cached),
                ],
            },
        },
    )
    for old in folder.glob("epoch-*.npz"):  # only after state.json points at the new file
        if old.name != arrays_name:
            old.unlink(missing_ok=True)
    snapshot.written = True
