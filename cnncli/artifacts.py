"""Write and read run folders, atomically and with checksums.

A run is written into a hidden staging folder beside its final place and renamed when every
file is in, so a folder without a leading dot is always complete. ``latest`` is a symlink that
moves only to complete runs. Every file goes through write-to-temp, fsync, rename.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cnncli import RUN_FORMAT_VERSION, __version__
from cnncli.errors import CnnCliError, Location
from cnncli.preprocessing import Preprocessor

CONFIG_FILENAME = "config.yaml"
PREPROCESS_FILENAME = "preprocess.json"
MODEL_FILENAME = "model.keras"
ONNX_FILENAME = "model.onnx"
METRICS_FILENAME = "metrics.json"
HISTORY_FILENAME = "history.csv"
SPLIT_FILENAME = "split.json"
MANIFEST_FILENAME = "manifest.json"
LATEST_LINK = "latest"
STAGING_PREFIX = ".tmp-"


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


#: mkstemp/mkdtemp create private files; published runs get the user's usual permissions.
FILE_MODE = 0o666 & ~_umask()
DIR_MODE = 0o777 & ~_umask()


def write_atomic(path: Path, data: bytes | str) -> None:
    """Write a file so that readers see either the old content or the whole new one."""
    payload = data.encode() if isinstance(data, str) else data
    handle, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
    try:
        with os.fdopen(handle, "wb") as stream:
            stream.write(payload)
            stream.flush()
            os.fsync(stream.fileno())
        os.chmod(temp, FILE_MODE)
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise


def write_json(path: Path, data: Any) -> None:
    write_atomic(path, json.dumps(data, indent=2, sort_keys=False, allow_nan=False) + "\n")


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


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
    try:
        output_dir.mkdir(parents=True, exist_ok=True)
        final = output_dir / f"{name}-{stamp}"
        suffix = 1
        while final.exists():
            suffix += 1
            final = output_dir / f"{name}-{stamp}-{suffix}"
        staging = Path(tempfile.mkdtemp(dir=output_dir, prefix=f"{STAGING_PREFIX}{final.name}-"))
    except OSError as exc:
        raise CnnCliError(
            f"cannot write the output folder: {exc.strerror or exc}",
            where=Location(file=str(output_dir)),
            hint="choose a writable folder with --output or output.dir",
        ) from exc
    return StagedRun(staging=staging, final=final)


def abandon_run(staged: StagedRun) -> None:
    """Remove a staging folder after a failure: nothing half-written stays behind."""
    shutil.rmtree(staged.staging, ignore_errors=True)


def finish_run(staged: StagedRun, manifest: dict[str, Any]) -> Path:
    """Write the manifest with every file's sha256, rename into place, move ``latest``."""
    files = {
        path.relative_to(staged.staging).as_posix(): sha256_file(path)
        for path in sorted(staged.staging.rglob("*"))
        if path.is_file() and path.name != MANIFEST_FILENAME and not path.name.endswith(".part")
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
    os.rename(staged.staging, staged.final)
    _fsync_dir(staged.final.parent)
    point_latest(staged.final)
    return staged.final


def point_latest(run_dir: Path) -> None:
    """Atomically point ``<output>/latest`` at a complete run."""
    link = run_dir.parent / LATEST_LINK
    temp = run_dir.parent / f".{LATEST_LINK}.{os.getpid()}"
    temp.unlink(missing_ok=True)
    os.symlink(run_dir.name, temp)
    os.replace(temp, link)


# ---------------------------------------------------------------------------------------------
# Reading


@dataclass(frozen=True)
class RunFolder:
    """A verified run folder and the plain-data parts of it."""

    path: Path
    manifest: dict[str, Any]
    preprocessor: Preprocessor
    config: dict[str, Any]

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
    if not path.exists():
        if run is None:
            raise CnnCliError(
                f"no trained run at {path}",
                hint="train one first: cnncli train configs/seed.yaml, or pass the run folder",
            )
        raise CnnCliError("run folder not found", where=Location(file=str(path)), hint="pass a folder made by cnncli train")
    return path.resolve()


def open_run(path: Path, verify: bool = True) -> RunFolder:
    """Read a run's manifest, check every file against its sha256, load the plain data.

    Raises:
        CnnCliError: not a run folder, written by a newer cnncli, or a file changed since.
    """
    manifest_path = path / MANIFEST_FILENAME
    if not manifest_path.is_file():
        raise CnnCliError(
            "not a complete run folder (no manifest.json)",
            where=Location(file=str(path)),
            hint="pass a folder made by cnncli train; interrupted runs are never complete",
        )
    try:
        manifest = json.loads(manifest_path.read_text())
    except (OSError, ValueError) as exc:
        raise CnnCliError("manifest.json is unreadable", where=Location(file=str(manifest_path))) from exc
    if int(manifest.get("format", 0)) > RUN_FORMAT_VERSION:
        raise CnnCliError(
            f"run was written by cnncli {manifest.get('cnncli')} (run format {manifest.get('format')}),"
            f" newer than this cnncli {__version__} (format {RUN_FORMAT_VERSION})",
            where=Location(file=str(path)),
            hint="upgrade cnncli to read it",
        )
    if verify:
        verify_files(path, manifest)
    preprocessor = Preprocessor.from_json((path / PREPROCESS_FILENAME).read_text())
    import yaml

    config = yaml.safe_load((path / CONFIG_FILENAME).read_text())
    return RunFolder(path=path, manifest=manifest, preprocessor=preprocessor, config=config)


def verify_files(path: Path, manifest: dict[str, Any]) -> None:
    for name, expected in manifest.get("files", {}).items():
        file = path / name
        if not file.is_file():
            raise CnnCliError(
                f"{name} is missing from the run", where=Location(file=str(path)), hint="retrain, or restore the folder"
            )
        if sha256_file(file) != expected:
            raise CnnCliError(
                f"{name} does not match its sha256 in manifest.json; it was changed after training",
                where=Location(file=str(file)),
                hint="refusing to load it; retrain or restore the original file",
            )


def load_keras_model(run: RunFolder) -> Any:
    """Load ``model.keras`` with Keras safe_mode on (no code from the file ever runs)."""
    from cnncli.runtime import import_keras

    keras = import_keras()
    try:
        return keras.saving.load_model(run.file(MODEL_FILENAME), safe_mode=True, compile=False)
    except Exception as exc:  # Keras raises many types for hostile or broken files
        raise CnnCliError(
            f"model.keras could not be loaded safely: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}",
            where=Location(file=str(run.file(MODEL_FILENAME))),
            hint="only models trained by cnncli can be loaded; retrain",
        ) from exc
