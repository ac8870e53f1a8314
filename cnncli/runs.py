"""Write and read run folders, atomically and with checksums.

A run is written into a hidden staging folder beside its final place and renamed when every
file is in, so a folder without a leading dot is always complete. ``latest`` is a symlink that
moves only to complete runs. Every file goes through write-to-temp, fsync, rename.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import hashlib
import io
import json
import os
import re
import shutil
import stat
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from cnncli import RUN_FORMAT_VERSION, __version__
from cnncli.data.csvfile import check_path, kind_of, require_regular_file, shown_path
from cnncli.data.preprocess import Preprocessor
from cnncli.data.split import read_split
from cnncli.data.untrusted import (
    Field,
    count,
    flag,
    mapping,
    member,
    number,
    one_of,
    open_run_file,
    optional,
    read_json,
    read_text,
    seed_number,
    sha256,
    text,
)
from cnncli.errors import CnnCliError, ConfigErrors, Location, short_repr

CONFIG_FILENAME = "config.yaml"
PREPROCESS_FILENAME = "preprocess.json"
MODEL_FILENAME = "model.keras"
ONNX_FILENAME = "model.onnx"
METRICS_FILENAME = "metrics.json"
HISTORY_FILENAME = "history.csv"
SPLIT_FILENAME = "split.json"
MANIFEST_FILENAME = "manifest.json"
#: What the run trained on and with: rows per part, features, class balance, missing cells
#: handled, the layer table and the test rows' per-class scores (report/summary.py).
SUMMARY_FILENAME = "summary.json"
#: The plots ``train`` draws (``fit.plots``; report/plots.py): every run has the learning curves,
#: a classifier the next three, a regressor the last two.
LEARNING_CURVES_FILENAME = "learning_curves.png"
CONFUSION_MATRIX_FILENAME = "confusion_matrix.png"
ROC_FILENAME = "roc.png"
PRECISION_RECALL_FILENAME = "precision_recall.png"
PREDICTED_VS_ACTUAL_FILENAME = "predicted_vs_actual.png"
RESIDUALS_FILENAME = "residuals.png"
PLOT_FILENAMES = (
    LEARNING_CURVES_FILENAME,
    CONFUSION_MATRIX_FILENAME,
    ROC_FILENAME,
    PRECISION_RECALL_FILENAME,
    PREDICTED_VS_ACTUAL_FILENAME,
    RESIDUALS_FILENAME,
)
LATEST_LINK = "latest"
STAGING_PREFIX = ".tmp-"
#: Inside a staging folder only: per-epoch checkpoints of a run in progress (train/checkpoints/).
CHECKPOINTS_DIRNAME = "checkpoints"
CHECKPOINT_STATE_FILENAME = "state.json"  # written last: a checkpoint exists once it does
#: Inside a staging folder only: held by the one process training or resuming it.
LOCK_FILENAME = ".lock"
#: ``fit.tensorboard``: the event files, listed in the manifest like every other file.
TENSORBOARD_DIRNAME = "tensorboard"
#: Files every complete run lists in its manifest; a manifest without them is refused.
REQUIRED_FILES = (CONFIG_FILENAME, PREPROCESS_FILENAME, MODEL_FILENAME)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


#: mkstemp/mkdtemp create private files; published runs get the user's usual permissions.
FILE_MODE = 0o666 & ~_umask()
DIR_MODE = 0o777 & ~_umask()


@contextlib.contextmanager
def open_atomic(path: Path, buffering: int = -1) -> Iterator[IO[bytes]]:
    """A binary stream whose content replaces ``path`` only if the block completes.

    The bytes go to a temporary file beside ``path``, are fsynced, and the file is renamed over
    ``path``; the folder is fsynced too so the rename survives a power cut. On any failure
    (a full disk included) the temporary file is removed and ``path`` is untouched.

    Raises:
        OSError: the temporary file cannot be created (callers say where and what to do).
    """
    folder = path.parent if str(path.parent) else Path(".")
    handle, temp = tempfile.mkstemp(dir=folder, prefix=f".{path.name}.", suffix=".part")
    try:
        with os.fdopen(handle, "wb", buffering=buffering) as stream:
            yield stream
            stream.flush()
            os.fsync(stream.fileno())
        os.chmod(temp, FILE_MODE)
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise
    _fsync_dir(folder)


def write_atomic(path: Path, data: bytes | str) -> None:
    """Write a file so that readers see either the old content or the whole new one."""
    with open_atomic(path) as stream:
        stream.write(data.encode() if isinstance(data, str) else data)


def output_target(path: Path, option: str = "--output") -> Path:
    """Where a user's ``--output`` is written: the file a symbolic link points at, so the link
    stays (a temporary file renamed over the link would replace it with a regular file).

    ``option`` is the option that named the path, for the hints.

    Raises:
        CnnCliError: a dangling link (its target does not exist), named with where it points;
            a path no file can have (``check_path``); a place inside a run folder.
    """
    check_path(path, hint=f"choose another {option}")
    target = Path(os.path.realpath(path)) if path.is_symlink() else path
    refuse_inside_runs(target)
    if target is path:
        return path
    if not target.exists():
        raise CnnCliError(
            f"is a symbolic link to {os.readlink(path)}, which does not exist",
            where=Location(file=str(path)),
            hint=f"point the link at an existing file, or choose another {option}",
        )
    return target


def new_file_target(path: Path, *, replace: bool, option: str) -> Path:
    """Where a file a command makes (``init``'s config, ``compare``'s plot) is written: a regular
    file or a new name, never a folder, device or FIFO that a rename would replace.

    Args:
        path: the path the user gave (a symbolic link is followed, as ``output_target`` does).
        replace: an existing regular file may be replaced (``--force``).
        option: the option that names the file, for the hint.

    Raises:
        CnnCliError: the path exists and is not a regular file, or exists and ``replace`` is
            False, or its folder does not exist.
    """
    target = output_target(path, option)
    where = Location(file=shown_path(path))
    mode = check_path(target, hint=f"choose another {option}")
    if mode is not None and not stat.S_ISREG(mode):
        raise CnnCliError(
            f"is {kind_of(mode)}, and cnncli only writes a regular file here",
            where=where,
            hint=f"choose another {option}",
        )
    if mode is not None and not replace:
        raise CnnCliError(
            "already exists",
            where=where,
            hint=f"give --force to replace it, or choose another {option}",
        )
    folder = target.parent if str(target.parent) else Path(".")
    if not folder.is_dir():
        raise CnnCliError(
            "folder does not exist",
            where=Location(file=shown_path(folder)),
            hint=f"create it or choose another {option}",
        )
    return target


def refuse_inside_runs(path: Path) -> None:
    """An ``--output`` is not inside a run folder or a staging folder: a run's files are
    checked against its manifest, so one replaced there breaks the run for good.

    Raises:
        CnnCliError: naming the run folder it would write into.
    """
    for folder in Path(os.path.realpath(path)).parents:
        if folder.name.startswith(STAGING_PREFIX) or os.path.isfile(folder / MANIFEST_FILENAME):
            raise CnnCliError(
                f"is inside the run folder {shown_path(folder)}, whose files cnncli wrote and"
                " checks against its manifest",
                where=Location(file=shown_path(path)),
                hint="write it outside the run, e.g. in the current folder",
            )


def save_keras_atomic(model: Any, path: Path) -> None:
    """``model.save`` through a temporary file, fsync and rename, like ``write_atomic``."""
    temp = path.with_name(f".{path.name}.part{path.suffix}")  # Keras insists on the suffix
    try:
        model.save(temp)
        with temp.open("rb") as stream:
            os.fsync(stream.fileno())
        os.chmod(temp, FILE_MODE)
        os.replace(temp, path)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


def write_json(path: Path, data: Any) -> None:
    write_atomic(path, json.dumps(data, indent=2, sort_keys=False, allow_nan=False) + "\n")


def sha256_file(path: Path) -> str:
    """The sha256 of a regular file; a device or pipe (``/dev/zero``) is refused, not read forever.

    Raises:
        CnnCliError: ``path`` is a folder, device, socket or pipe.
        OSError: it cannot be read.
    """
    require_regular_file(path)
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def fingerprint_file(path: str | Path) -> dict[str, Any]:
    """Size and sha256 of a data file, recorded in the manifest and checked on resume."""
    file = Path(path)
    return {"path": str(file), "bytes": file.stat().st_size, "sha256": sha256_file(file)}


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@dataclass(frozen=True)
class StagedRun:
    staging: Path
    final: Path


def start_run(output_dir: Path, name: str, now: dt.datetime | None = None) -> StagedRun:
    """Create the staging folder for a new run ``<output_dir>/<name>-<timestamp>``."""
    stamp = (now or dt.datetime.now()).strftime("%Y%m%d-%H%M%S")
    check_path(output_dir, folder=True, hint="choose a folder with --output or output.dir")
    check_latest_link(output_dir)
    try:
        output_dir.mkdir(parents=True, exist_ok=True)
        final = _free_name(output_dir / f"{name}-{stamp}")
        staging = Path(tempfile.mkdtemp(dir=output_dir, prefix=f"{STAGING_PREFIX}{final.name}-"))
        lock_staging(staging)  # so that no --resume joins in while it trains
    except OSError as exc:
        hint = "choose a writable folder with --output or output.dir"
        raise unwritable("the output folder", output_dir, exc, hint) from exc
    return StagedRun(staging=staging, final=final)


def unwritable(what: str, folder: Path, exc: OSError, hint: str) -> CnnCliError:
    """The one line for a folder cnncli cannot write: ``cannot write WHAT: <the OS's reason>``."""
    return CnnCliError(
        f"cannot write {what}: {exc.strerror or exc}", where=Location(file=str(folder)), hint=hint
    )


def has_checkpoint(staging: Path) -> bool:
    """Whether a staging folder holds a committed checkpoint (work worth keeping); a
    ``state.json`` that is no regular file counts, so its reader names what it is."""
    return os.path.lexists(staging / CHECKPOINTS_DIRNAME / CHECKPOINT_STATE_FILENAME)


def abandon_run(staged: StagedRun) -> None:
    """Clean up a staging folder after a failure, but never lose a checkpoint.

    A folder without a committed checkpoint is removed; one with a checkpoint stays where it is
    (still hidden, never ``latest``) so ``cnncli train --resume`` can continue it. Either way
    this process's lock on it is released.
    """
    unlock_staging(staged.staging)
    if not has_checkpoint(staged.staging):
        shutil.rmtree(staged.staging, ignore_errors=True)


#: Staging folders this process holds the lock of, and the lock file's descriptor.
_LOCKED: dict[Path, int] = {}


def lock_staging(staging: Path) -> None:
    """Hold the staging folder for this process: one process trains or resumes a run at a time.

    An ``flock`` on ``LOCK_FILENAME`` inside it: the kernel's, so it goes with its process,
    however that ends. Taking it again in the process that holds it is a no-op (a resume
    retried after a refusal).

    Raises:
        CnnCliError: another process holds it (its pid is named), or the folder is not writable.
    """
    key = staging.resolve()
    if key in _LOCKED:
        return
    try:
        fd = os.open(key / LOCK_FILENAME, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, FILE_MODE)
    except OSError as exc:
        raise unwritable("the run folder", staging, exc, "fix its permissions") from exc
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
        os.close(fd)
        raise CnnCliError(
            f"run {staging.name} is being resumed or trained by another process (pid {holder})",
            where=Location(file=str(staging)),
            hint="wait for that process to end, or stop it, then resume",
        ) from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    _LOCKED[key] = fd


def staging_in_use(staging: Path) -> bool:
    """Whether another process holds a staging folder's lock (it is training now), found
    without writing anything: a shared ``flock`` tried on the lock file, and let go."""
    try:
        fd = os.open(staging / LOCK_FILENAME, os.O_RDONLY | os.O_NOFOLLOW)
    except OSError:  # no lock file: nobody ever held it, or not ours to look at
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)  # closing lets go of the lock
    return False


def refuse_links_inside(staging: Path) -> None:
    """Refuse a staging folder holding a link: a resume writes and deletes inside it.

    A symbolic link (``checkpoints -> /elsewhere``, ``.lock -> ~/.bashrc``) or a file with a
    second hard link outside would carry those writes out of the run, so a folder edited that
    way is refused before anything in it is opened.

    Raises:
        CnnCliError: naming the first link found.
    """
    for folder, dirnames, filenames in os.walk(staging):
        for name in sorted(dirnames + filenames):
            path = Path(folder) / name
            info = path.lstat()
            if stat.S_ISLNK(info.st_mode):
                what = "a symbolic link"
            elif stat.S_ISREG(info.st_mode) and info.st_nlink > 1:
                # a hard link: writing the file (CSVLogger appends) writes the other name too
                what = f"a hard link ({info.st_nlink} names for one file)"
            else:
                continue
            raise CnnCliError(
                f"{path.relative_to(staging)} is {what}; an interrupted run holds"
                " only its own files, so resuming would write outside the run",
                where=Location(file=str(staging)),
                hint="remove the link, or train again without --resume",
            )


def unlock_staging(staging: Path) -> None:
    """Release this process's lock on a staging folder, if it holds one."""
    fd = _LOCKED.pop(staging.resolve(), None)
    if fd is not None:
        os.close(fd)


def _is_temporary(path: Path) -> bool:
    return path.name.startswith(".") and ".part" in path.name


def finish_run(staged: StagedRun, manifest: dict[str, Any]) -> Path:
    """Write the manifest with every file's sha256, rename into place, move ``latest``.

    Checkpoints and temporary files left by an interrupted attempt are not part of the run:
    temporary files are removed first, the checkpoint folder right after the rename.
    """
    for path in list(staged.staging.glob(".*")):
        if path.is_file() and _is_temporary(path):
            path.unlink()
    files = {
        path.relative_to(staged.staging).as_posix(): sha256_file(path)
        for path in sorted(staged.staging.rglob("*"))
        if path.is_file()
        and path.name not in (MANIFEST_FILENAME, LOCK_FILENAME)
        and path.relative_to(staged.staging).parts[0] != CHECKPOINTS_DIRNAME
    }
    write_json(
        staged.staging / MANIFEST_FILENAME,
        {
            "format": RUN_FORMAT_VERSION,
            "cnncli": __version__,
            "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
            **manifest,
            "files": files,
        },
    )
    os.chmod(staged.staging, DIR_MODE)
    _fsync_dir(staged.staging)
    final = _free_name(staged.final)
    os.rename(staged.staging, final)
    shutil.rmtree(final / CHECKPOINTS_DIRNAME, ignore_errors=True)
    (final / LOCK_FILENAME).unlink(missing_ok=True)
    unlock_staging(staged.staging)  # the same key: the path it had when locked
    _fsync_dir(final.parent)
    point_latest(final)
    return final


def _free_name(final: Path) -> Path:
    """``final``, or ``final-2``, ``final-3`` ... if a run of that name appeared meanwhile."""
    candidate, suffix = final, 1
    while candidate.exists() or candidate.is_symlink():
        suffix += 1
        candidate = final.with_name(f"{final.name}-{suffix}")
    return candidate


def check_latest_link(output_dir: Path) -> None:
    """``<output>/latest`` is absent or a symbolic link: cnncli never replaces anything else.

    Raises:
        CnnCliError: it is a folder or a file, checked before any training starts.
    """
    link = output_dir / LATEST_LINK
    if link.is_symlink() or not link.exists():
        return
    raise CnnCliError(
        f"{LATEST_LINK} is {kind_of(link.lstat().st_mode)}, not the link cnncli keeps to the"
        " newest run",
        where=Location(file=str(link)),
        hint=f"move or rename {link}, then train again",
    )


def point_latest(run_dir: Path) -> None:
    """Atomically point ``<output>/latest`` at a complete run."""
    check_latest_link(run_dir.parent)
    link = run_dir.parent / LATEST_LINK
    temp = run_dir.parent / f".{LATEST_LINK}.{os.getpid()}"
    temp.unlink(missing_ok=True)
    os.symlink(run_dir.name, temp)
    try:
        os.replace(temp, link)
    finally:
        temp.unlink(missing_ok=True)


# ---------------------------------------------------------------------------------------------
# Reading


@dataclass(frozen=True)
class RunFolder:
    """A verified run folder and the plain-data parts of it."""

    path: Path
    manifest: dict[str, Any]
    preprocessor: Preprocessor
    config: dict[str, Any]
    split: dict[str, Any] | None = None  # split.json, checked; None in a run without one

    def file(self, name: str) -> Path:
        return self.path / name

    def has(self, name: str) -> bool:
        return name in self.manifest.get("files", {})

    @property
    def onnx_ok(self) -> bool:
        return bool(self.manifest.get("onnx", {}).get("checked")) and self.has(ONNX_FILENAME)


def resolve_run_dir(run: Path | None, default_output: Path = Path("runs")) -> Path:
    """RUN as given, or ``runs/latest``; a clear message when there is none."""
    path = run if run is not None else default_output / LATEST_LINK
    check_path(path, hint="pass a folder made by cnncli train")
    if run is None and path.is_symlink() and not path.exists():
        raise CnnCliError(
            f"{LATEST_LINK} points to {os.readlink(path)}, a run that is gone",
            where=Location(file=str(path)),
            hint="train again, or pass a run folder as RUN",
        )
    if run is None and not path.is_dir():
        check_latest_link(default_output)  # a file or FIFO named latest: say what it is
    if not path.exists():
        if run is None:
            raise CnnCliError(
                f"no trained run at {path}",
                hint="train one first: cnncli train configs/seed.yaml, or pass the run folder",
            )
        raise CnnCliError(
            "run folder not found",
            where=Location(file=str(path)),
            hint="pass a folder made by cnncli train",
        )
    return path.resolve()


def open_run(path: Path, verify: bool = True) -> RunFolder:
    """Read a run's manifest, check every file against its sha256, load the plain data.

    Raises:
        CnnCliError: not a run folder, written by a newer cnncli, or a file changed since.
    """
    manifest_path = path / MANIFEST_FILENAME
    if not os.path.lexists(manifest_path):  # one that is no file is named by its reader
        if has_checkpoint(path):
            raise CnnCliError(
                "this is an interrupted run, not a complete one",
                where=Location(file=str(path)),
                hint=f"finish it first: cnncli train CONFIG --resume {path}",
            )
        raise CnnCliError(
            "not a complete run folder (no manifest.json)",
            where=Location(file=str(path)),
            hint="pass a folder made by cnncli train; interrupted runs are never complete",
        )
    manifest = _read_manifest(manifest_path)
    if verify:
        verify_files(path, manifest)
    # Every file is untrusted input (a checksum can be fixed up): each reader checks its fields.
    try:
        preprocessor = Preprocessor.from_json(
            read_text(path / PREPROCESS_FILENAME),
            str(path / PREPROCESS_FILENAME),
        )
        split = None
        if SPLIT_FILENAME in manifest["files"]:
            split = read_split(read_text(path / SPLIT_FILENAME), str(path / SPLIT_FILENAME))
        config = _run_config(
            read_run_yaml(path / CONFIG_FILENAME), Field(str(path / CONFIG_FILENAME))
        )
    except CnnCliError:  # a field out of shape, or a newer format: its own message
        raise
    except Exception as exc:  # checked files that still do not parse: a hand-made manifest
        raise CnnCliError(
            f"run files do not parse ({type(exc).__name__})",
            where=Location(file=str(path)),
            hint="the folder was not written by cnncli train; retrain",
        ) from exc
    return RunFolder(path, manifest, preprocessor, config, split)


def read_run_yaml(path: Path) -> Any:
    """A run's ``config.yaml`` through the safe composer and limits user configs get.

    A run's config is untrusted input too: an alias bomb or a 1 MB file with its sha256 fixed
    up in the manifest is refused in one line (the first problem) instead of eating memory.
    """
    from cnncli.config.source import decode_config_bytes, parse_yaml

    try:
        with open_run_file(path) as stream:
            data = stream.read()
        value, _ = parse_yaml(decode_config_bytes(data, str(path)), str(path))
    except ConfigErrors as exc:
        raise exc.problems[0] from exc
    return value


def _run_config(value: Any, where: Field) -> dict[str, Any]:
    """The resolved config.yaml as far as ``predict`` reads it without pydantic: a mapping,
    its ``data`` a mapping with a one-character delimiter (``evaluate`` validates the rest)."""
    config = mapping(value, where)
    data = mapping(config.get("data", {}), where.at("data"))
    delimiter = data.get("delimiter", ",")
    if not isinstance(delimiter, str) or len(delimiter) != 1:
        raise where.at("data").at("delimiter").refuse("one character", delimiter)
    if "missing" in data:
        text(data["missing"], where.at("data").at("missing"))
    return config


def _read_manifest(manifest_path: Path) -> dict[str, Any]:
    """Parse manifest.json and check its format version and every field before trusting any."""
    where = Location(file=str(manifest_path))
    manifest = read_json(manifest_path)
    files = manifest.get("files") if isinstance(manifest, dict) else None
    if not isinstance(files, dict) or not all(isinstance(v, str) for v in files.values()):
        raise CnnCliError(
            "manifest.json has no list of files and checksums", where=where, hint="retrain"
        )
    version = manifest.get("format")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise CnnCliError(
            f"manifest.json has no valid run format (got {short_repr(version)})",
            where=where,
            hint="retrain",
        )
    if version > RUN_FORMAT_VERSION:
        writer = manifest.get("cnncli")
        writer = writer if isinstance(writer, str) and len(writer) < 40 else short_repr(writer)
        raise CnnCliError(
            f"run was written by cnncli {writer} (run format"
            f" {version}), newer than this cnncli {__version__} (format {RUN_FORMAT_VERSION})",
            where=Location(file=str(manifest_path.parent)),
            hint="upgrade cnncli to read it",
        )
    top = Field(str(manifest_path))
    for name, check in MANIFEST_FIELDS.items():
        if name in manifest:
            check(manifest[name], top.at(name))
    for name, digest in files.items():
        sha256(digest, top.at("files").at(name))
    return manifest


def fingerprint_field(value: Any, where: Field) -> dict[str, Any]:
    """A data file's fingerprint (``fingerprint_file``): path, size and sha256."""
    fingerprint = mapping(value, where)
    member(fingerprint, "path", where, text)
    member(fingerprint, "bytes", where, count)
    member(fingerprint, "sha256", where, sha256)
    return fingerprint


def _onnx_entry(value: Any, where: Field) -> dict[str, Any]:
    """The ONNX export's entry (``export_onnx_checked``): checked, and its numbers."""
    entry = mapping(value, where)
    member(entry, "checked", where, flag)
    for name, check in (
        ("max_abs_diff", number),
        ("same_argmax", flag),
        ("rows", count),
        ("reason", text),
    ):
        if name in entry:
            check(entry[name], where.at(name))
    return entry


#: Every field a manifest may hold besides ``format`` and ``files``, and its check; a field is
#: optional (older runs lack some) but never of the wrong shape.
MANIFEST_FIELDS: dict[str, Callable[[Any, Field], Any]] = {
    "cnncli": text,
    "created": text,
    "keras": text,
    "backend": text,
    "tensorflow": optional(text),
    "jax": optional(text),
    "torch": optional(text),
    "config_sha256": sha256,
    "seed": seed_number,
    "task": one_of("classification", "regression"),
    "data": fingerprint_field,
    "test_data": optional(fingerprint_field),
    "onnx": _onnx_entry,
}


def verify_files(path: Path, manifest: dict[str, Any]) -> None:
    """Every file the manifest lists, and every file cnncli loads, matches its sha256."""
    files = manifest.get("files", {})
    for name in REQUIRED_FILES:
        if name not in files:
            raise CnnCliError(
                f"manifest.json does not list {name}, so it cannot be checked",
                where=Location(file=str(path)),
                hint="refusing to load it; retrain",
            )
    for name, expected in files.items():
        if Path(name).is_absolute() or ".." in Path(name).parts:
            raise CnnCliError(
                f"manifest.json names a file outside the run: {name}",
                where=Location(file=str(path)),
                hint="refusing to load it; retrain",
            )
        file = path / name
        if os.path.exists(file) and not file.is_file():  # a device or FIFO in a file's place
            raise CnnCliError(
                f"{name} is {kind_of(file.stat().st_mode)}, not a file cnncli wrote",
                where=Location(file=str(path)),
                hint="retrain, or restore the folder",
            )
        if not file.is_file():
            raise CnnCliError(
                f"{name} is missing from the run",
                where=Location(file=str(path)),
                hint="retrain, or restore the folder",
            )
        if sha256_file(file) != expected:
            raise CnnCliError(
                f"{name} does not match its sha256 in manifest.json; it was changed after training",
                where=Location(file=str(file)),
                hint="refusing to load it; retrain or restore the original file",
            )


def verify_data(run: RunFolder, key: str, path: str) -> None:
    """The data file the manifest recorded under ``key`` (``data``, ``test_data``) is unchanged.

    Runs older than the fingerprint, and files that are gone, are left to the readers.

    Raises:
        CnnCliError: not a regular file, or its size or sha256 differs from the recorded ones.
    """
    recorded = run.manifest.get(key)
    if not recorded or not os.path.lexists(path):
        return
    file = Path(path)
    require_regular_file(file)  # before its size: a device's is 0
    if file.stat().st_size != recorded["bytes"] or sha256_file(file) != recorded["sha256"]:
        raise CnnCliError(
            "the data file changed since training (its sha256 differs from manifest.json's),"
            " so the run's stored test split no longer picks the rows it was tested on",
            where=Location(file=str(path)),
            hint=f"restore the file, or score every row of it as it is now with --data {path}",
        )


def load_keras_model(run: RunFolder) -> Any:
    """Load ``model.keras`` with Keras safe_mode on (no code from the file ever runs)."""
    from cnncli.runtime import import_keras

    keras = import_keras()
    try:
        return keras.saving.load_model(run.file(MODEL_FILENAME), safe_mode=True, compile=False)
    except Exception as exc:  # Keras raises many types for hostile or broken files
        detail = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        hint = "only models trained by cnncli can be loaded; retrain"
        if _UNSAFE_CODE.search(detail):
            # Keras advises turning safe mode off: an option cnncli does not offer.
            named = re.search(r"`(\w+)`", detail)
            what = f"a {named[1]} layer's function" if named else "a function or custom object"
            detail = f"it holds Python code ({what}) that would run when loaded"
            hint = (
                "cnncli never runs code from a model file; retrain with cnncli, whose runs hold"
                " none, or if the file did not come from cnncli, do not load it"
            )
        raise CnnCliError(
            f"model.keras could not be loaded safely: {detail}",
            where=Location(file=str(run.file(MODEL_FILENAME))),
            hint=hint,
        ) from exc


#: Keras' refusal to deserialize code in safe mode (its message advises turning it off).
_UNSAFE_CODE = re.compile(r"safe_mode|arbitrary code|unsafe_deserialization", re.IGNORECASE)


#: The most epochs a ``history.csv`` is read for (a hand-made file of a billion rows is refused).
MAX_HISTORY_EPOCHS = 1_000_000


def read_history(path: Path) -> dict[str, list[float]]:
    """A run's ``history.csv`` (``epoch`` then one column per logged value) as untrusted input.

    Returns:
        Each logged name's values, one per epoch ("nan" and "inf" as floats).

    Raises:
        CnnCliError: not a table of numbers with an ``epoch`` column counting from 1.
    """
    import csv
    import itertools

    where = Field(str(path))
    try:
        with io.TextIOWrapper(open_run_file(path), encoding="utf-8", newline="") as stream:
            rows = list(csv.reader(itertools.islice(stream, MAX_HISTORY_EPOCHS + 2)))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise where.damaged(f"cannot be read ({type(exc).__name__})") from exc
    if not rows or not rows[0] or rows[0][0] != "epoch":
        raise where.damaged("has no header starting with 'epoch'")
    names = rows[0][1:]
    history: dict[str, list[float]] = {name: [] for name in names}
    for index, row in enumerate(rows[1:], start=1):
        if len(row) != len(names) + 1 or row[0] != str(index):
            raise where.at(index).damaged(f"line {index + 1} is not epoch {index} and its values")
        for name, value in zip(names, row[1:], strict=True):
            try:
                history[name].append(float(value))
            except ValueError:
                raise where.at(index).at(name).refuse("a number", value) from None
    return history


def read_metrics(path: Path) -> dict[str, dict[str, float]]:
    """The scored parts of a run's ``metrics.json`` (``test``, ``validation``): name → number.

    Raises:
        CnnCliError: the file is not JSON, or a part is not a mapping of numbers.
    """
    top = Field(str(path))
    metrics = mapping(read_json(path), top)
    parts: dict[str, dict[str, float]] = {}
    for part in ("test", "validation"):
        if part in metrics:
            scores = mapping(metrics[part], top.at(part))
            parts[part] = {
                str(name): number(value, top.at(part).at(str(name)))
                for name, value in scores.items()
            }
    return parts
