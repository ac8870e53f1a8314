"""What a tune leaves in its folder: ``trials.csv``, ``best.yaml``, ``importance.json``."""

from __future__ import annotations

import csv
import io
import os
import stat
from pathlib import Path
from typing import Any

import yaml

from cnncli.data.untrusted import read_json, read_text
from cnncli.errors import CnnCliError, Location
from cnncli.runs import unwritable, write_atomic, write_json

TRIALS_FILENAME = "trials.csv"
BEST_FILENAME = "best.yaml"
IMPORTANCE_FILENAME = "importance.json"
#: Columns of ``trials.csv`` before and after the parameters.
LEADING = ("number", "state")
TRAILING = ("value", "epochs", "seconds", "reason")
#: Reasons of trials that never ran (a point drawn twice, one trial too many): not rows.
SKIPPED = ("surplus:", "duplicate:")
#: Optuna needs this many finished trials to weigh parameters.
IMPORTANCE_MIN_TRIALS = 4


def prepare_folder(folder: Path, names: tuple[str, ...]) -> None:
    """Create the tune folder; refuse one whose result files are not regular files (a link,
    a FIFO, a folder): a tune writes its files whole and never through or over such a thing.

    Raises:
        CnnCliError: the folder cannot be made, or holds such a file.
    """
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise unwritable("the tune folder", folder, exc, "choose another output.dir") from None
    for name in names:
        try:
            mode = os.lstat(folder / name).st_mode
        except FileNotFoundError:
            continue
        if not stat.S_ISREG(mode):
            raise CnnCliError(
                "is not a regular file (a link, a FIFO or a folder); a tune writes only its own",
                where=Location(file=str(folder / name)),
                hint="move it away, or choose another output.dir",
            )


def trial_rows(trials: list[Any], keys: list[str]) -> list[dict[str, Any]]:
    """One row per trial, in number order: state, each parameter, metric, epochs, seconds,
    and why it was pruned or failed."""
    rows = []
    for trial in sorted(trials, key=lambda t: t.number):
        if trial.user_attrs.get("reason", "").startswith(SKIPPED):
            continue
        # a trial queued again (WAITING) holds its values as Optuna's fixed parameters
        params = trial.params or trial.system_attrs.get("fixed_params") or {}
        seconds = (
            (trial.datetime_complete - trial.datetime_start).total_seconds()
            if trial.datetime_complete and trial.datetime_start
            else None
        )
        rows.append(
            {
                "number": trial.number,
                "state": trial.state.name,
                **{key: params.get(key) for key in keys},
                "value": trial.value if trial.state.name == "COMPLETE" else None,
                "epochs": trial.user_attrs.get("epochs"),
                "seconds": round(seconds, 2) if seconds is not None else None,
                "reason": trial.user_attrs.get("reason", ""),
            }
        )
    return rows


def write_trials(folder: Path, rows: list[dict[str, Any]], keys: list[str]) -> None:
    """``trials.csv``, written whole (a crash leaves the previous one)."""
    stream = io.StringIO()
    writer = csv.DictWriter(stream, [*LEADING, *keys, *TRAILING], lineterminator="\n")
    writer.writeheader()
    writer.writerows({k: ("" if v is None else v) for k, v in row.items()} for row in rows)
    write_atomic(folder / TRIALS_FILENAME, stream.getvalue())


def write_best(folder: Path, raw: dict[str, Any], header: str) -> Path:
    """``best.yaml``: a complete ordinary config, ``header`` as its leading comment."""
    comment = "".join(f"# {line}\n" for line in header.splitlines())
    text = comment + yaml.safe_dump(raw, sort_keys=False)
    write_atomic(folder / BEST_FILENAME, text)
    return folder / BEST_FILENAME


def write_importance(folder: Path, importance: dict[str, float]) -> None:
    write_json(folder / IMPORTANCE_FILENAME, importance)


def read_trials(folder: Path) -> tuple[list[str], list[dict[str, str]]]:
    """A tune folder's ``trials.csv`` as (parameter names, rows), for ``tune --report``.

    Raises:
        CnnCliError: no tune folder, no ``trials.csv`` there, or not one this command wrote.
    """
    path = folder / TRIALS_FILENAME
    if not os.path.lexists(path):
        raise CnnCliError(
            f"no {TRIALS_FILENAME} in this folder",
            where=Location(file=str(folder)),
            hint="give a tune folder, e.g. runs/seed-tune (cnncli tune CONFIG makes one)",
        )
    text = read_text(path)  # a FIFO in its place is refused, not waited on for ever
    reader = csv.DictReader(io.StringIO(text))
    names = list(reader.fieldnames or [])
    if names[: len(LEADING)] != list(LEADING) or names[-len(TRAILING) :] != list(TRAILING):
        raise CnnCliError(
            "not a trials table written by cnncli tune (its columns differ)",
            where=Location(file=str(path), line=1),
            hint="rerun the tune to write it again",
        )
    rows = [dict(row) for row in reader]
    return names[len(LEADING) : -len(TRAILING)], rows


def read_importance(folder: Path) -> dict[str, float]:
    """``importance.json`` if there is one (a short tune has none); nothing when unreadable."""
    path = folder / IMPORTANCE_FILENAME
    try:
        data = read_json(path) if os.path.lexists(path) else {}
    except CnnCliError:
        return {}
    if not isinstance(data, dict):
        return {}
    # a hand-edited 1e400 is no importance; float() of a huge integer would overflow
    return {
        str(k): float(v)
        for k, v in data.items()
        if isinstance(v, (int, float)) and not isinstance(v, bool) and -1e300 < v < 1e300
    }
