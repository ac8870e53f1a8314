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
import re
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from cnncli.config.models import RUN_NAME_PATTERN
from cnncli.data.untrusted import (
    Field,
    count,
    flag,
    integer,
    items,
    mapping,
    member,
    nested,
    number,
    one_line,
    one_of,
    optional,
    read_json,
    seed_number,
    sha256,
)
from cnncli.errors import CnnCliError, Location
from cnncli.runs import (
    CHECKPOINT_STATE_FILENAME,
    CHECKPOINTS_DIRNAME,
    MANIFEST_FILENAME,
    fingerprint_field,
    has_checkpoint,
    refuse_links_inside,
    sha256_file,
    write_atomic,
    write_json,
)

CHECKPOINT_FORMAT = 1
_ARRAYS_NAME = re.compile(r"epoch-[0-9]{4,9}\.npz")
_NOT_FINITE = ("nan", "inf", "-inf")  # how ``_json_floats`` writes them
_UINT32 = 2**32 - 1


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
        try:
            with np.load(self.arrays_path, allow_pickle=False) as arrays:
                model = _numeric(arrays, "model", int(self.state["model_variables"]))
                optimizer = _numeric(arrays, "optimizer", int(self.state["optimizer_variables"]))
                best = [
                    None if size is None else _numeric(arrays, f"callback_{i}", size)
                    for i, size in enumerate(self.state.get("callback_arrays", []))
                ]
        except (OSError, ValueError, KeyError, zipfile.BadZipFile) as exc:
            raise CnnCliError(
                f"checkpoint arrays do not hold the variables state.json lists ({exc})",
                where=where,
                hint="the checkpoint was damaged; train again without --resume",
            ) from exc
        return model, optimizer, best


def _numeric(arrays: Any, prefix: str, size: int) -> list[np.ndarray]:
    """``prefix_0`` … ``prefix_{size-1}`` from an ``.npz``, each an array of numbers."""
    values = [arrays[f"{prefix}_{i}"] for i in range(size)]
    for i, value in enumerate(values):
        if value.dtype.kind not in "biuf":
            raise ValueError(f"{prefix}_{i} holds {value.dtype}, not numbers")
    return values


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
    top = Field(str(state_path(run)))
    state = mapping(read_json(state_path(run)), top)
    version = member(state, "format", top, lambda value, at: integer(value, at, minimum=1))
    if version > CHECKPOINT_FORMAT:
        writer = state.get("cnncli")
        raise CnnCliError(
            f"checkpoint was written by cnncli"
            f" {writer if isinstance(writer, str) and len(writer) < 40 else '?'}"
            f" (checkpoint format {version}), newer than this cnncli's format {CHECKPOINT_FORMAT}",
            where=where,
            hint="resume it with that cnncli version, or train again without --resume",
        )
    check_state(state, top)
    return Checkpoint(run=run, state=state)


def check_state(state: dict[str, Any], top: Field) -> None:
    """Every field of ``state.json`` a resume uses, as untrusted input (issue 11.10).

    A hand-edited checkpoint must not publish the run outside its output folder, train a
    negative number of epochs or crash the restore: each field's type and range is checked
    and a bad one is one line naming the file and the field.

    Raises:
        CnnCliError: the first field out of shape.
    """
    name = member(state, "name", top, _run_name)
    final = member(state, "final_name", top, _run_name)
    if not final.startswith(f"{name}-"):
        raise top.at("final_name").refuse(f"the run's folder name, '{name}-<timestamp>'", final)
    member(state, "seed", top, seed_number)
    nested(member(state, "config", top, mapping), top.at("config"))
    data = member(state, "data", top, mapping)
    member(data, "data", top.at("data"), fingerprint_field)
    member(data, "test_data", top.at("data"), optional(fingerprint_field))
    for key in data.keys() - {"data", "test_data"}:
        raise top.at("data").at(key).damaged("not a field of a checkpoint")
    epoch = member(state, "epoch", top, count)
    if "done" in state:
        flag(state["done"], top.at("done"))
    history = member(state, "history", top, mapping)
    for metric, values in history.items():
        one_line(metric, top.at("history"))
        items(values, top.at("history").at(metric), _history_value, length=epoch)
    arrays = member(state, "arrays", top, one_line)
    if not _ARRAYS_NAME.fullmatch(arrays):
        raise top.at("arrays").refuse("a file name epoch-NNNN.npz in checkpoints/", arrays)
    member(state, "arrays_sha256", top, sha256)
    member(state, "model_variables", top, count)
    member(state, "optimizer_variables", top, count)
    for index, scalars in enumerate(
        items(state.get("callbacks", []), top.at("callbacks"), mapping)
    ):
        for key, value in scalars.items():
            where = top.at("callbacks").at(index).at(str(key))
            if not key.isidentifier() or key.startswith("_"):
                raise where.damaged("not a callback setting")
            if value is not None and not isinstance(value, bool | int | float | str):
                raise where.refuse("a number, a string, true, false or null", value)
    items(state.get("callback_arrays", []), top.at("callback_arrays"), optional(count))
    rng = member(state, "rng", top, mapping)
    python = member(rng, "python", top.at("rng"), lambda v, at: items(v, at, _any, length=3))
    integer(python[0], top.at("rng").at("python").at(0), minimum=3, maximum=3)  # its version
    internal = items(python[1], top.at("rng").at("python").at(1), _uint32, length=625)
    integer(internal[-1], top.at("rng").at("python").at(1).at(624), maximum=624)
    optional(number)(python[2], top.at("rng").at("python").at(2))
    numpy = member(rng, "numpy", top.at("rng"), lambda v, at: items(v, at, _any, length=5))
    where = top.at("rng").at("numpy")
    one_of("MT19937")(numpy[0], where.at(0))
    items(numpy[1], where.at(1), _uint32, length=624)
    integer(numpy[2], where.at(2), maximum=624)
    integer(numpy[3], where.at(3), maximum=1)
    number(numpy[4], where.at(4))


def _run_name(value: Any, where: Field) -> str:
    """A run's name or folder name: a plain name (no separators), as the config's name rule."""
    if not isinstance(value, str) or len(value) > 200 or not re.fullmatch(RUN_NAME_PATTERN, value):
        raise where.refuse("a run name (letters, digits, '_', '.', '-'; no separators)", value)
    return value


def _history_value(value: Any, where: Field) -> float:
    """A metric's value: a number, or ``"nan"``/``"inf"``/``"-inf"`` as they are written."""
    if isinstance(value, str) and value in _NOT_FINITE:
        return float(value)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise where.refuse("a number", value)
    return float(value)


def _uint32(value: Any, where: Field) -> int:
    return integer(value, where, maximum=_UINT32)


def _any(value: Any, where: Field) -> Any:
    return value


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
