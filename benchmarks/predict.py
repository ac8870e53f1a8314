"""Measure prediction: cnncli (ONNX Runtime + NumPy) against the seed notes' way (Keras + sklearn).

Prints a table and writes ``benchmarks/out/predict.json``. Not a test: run it on a quiet machine.

1. Cold single row: ``cnncli predict RUN --input 3,30,5`` as a whole process, median of N runs,
   and its peak RSS; against a script that does it the seed's way (load ``model.keras`` with
   Keras on TensorFlow, scikit-learn's StandardScaler, ``model.predict``), alternately.
2. A 1,000,000-row CSV: ``cnncli predict RUN --input-file rows.csv --output preds.csv`` end to
   end (read, preprocess, infer, write), rows/s and peak RSS; against the seed's way (pandas
   ``read_csv``, ``scaler.transform``, ``model.predict`` at its default batch size of 32,
   ``to_csv``). The two outputs' labels are compared.

Both sides get a warm-up run first, so Python's bytecode caches exist as in an installed
package (PYTHONDONTWRITEBYTECODE is dropped for the children).

    python benchmarks/predict.py                  # trains configs/seed.yaml for 5 epochs first
    python benchmarks/predict.py --run runs/latest --rows 200000 --repeats 5
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from train import run as measure  # a whole process: wall time, its own peak RSS

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "benchmarks" / "out"
PYTHON = sys.executable
_SCRIPT = Path(PYTHON).with_name("cnncli")
CNNCLI = [str(_SCRIPT)] if _SCRIPT.exists() else [PYTHON, "-m", "cnncli"]
# What both seed-way scripts start with: the model through Keras, the scaler through sklearn.
SEED_LOAD = """
import json, sys
import numpy as np
import keras
from sklearn.preprocessing import StandardScaler
model = keras.saving.load_model(sys.argv[1] + "/model.keras", compile=False)
state = json.load(open(sys.argv[2]))
scaler = StandardScaler()
scaler.mean_, scaler.scale_ = np.array(state["mean"]), np.array(state["scale"])
scaler.var_, scaler.n_features_in_, scaler.n_samples_seen_ = scaler.scale_**2, len(state["mean"]), 1
"""

SEED_ROW = (
    SEED_LOAD
    + """
X_new = scaler.transform(np.array([[3, 30, 5]]))
print(model.predict(X_new.reshape(-1, 3, 1), verbose=0))
"""
)

SEED_FILE = (
    SEED_LOAD
    + """
import pandas as pd
classes = json.load(open(sys.argv[1] + "/preprocess.json"))["label"]["classes"]
data = pd.read_csv(sys.argv[3])
X = scaler.transform(data.values)
Y = model.predict(X.reshape(-1, 3, 1), verbose=0)
out = pd.DataFrame(Y, columns=[f"prob_{c}" for c in classes])
out.insert(0, "predicted", np.asarray(classes)[Y.argmax(axis=1)])
out.to_csv(sys.argv[4], index_label="row")
"""
)


def train_seed(folder: Path) -> Path:
    result = measure(
        [
            *CNNCLI,
            "train",
            "configs/seed.yaml",
            "--set",
            "fit.epochs=5",
            "--output",
            str(folder),
            "--json",
        ]
    )
    return Path(json.loads(result["stdout"])["run_dir"])


def scaler_state(run: Path, folder: Path) -> Path:
    """The run's fitted StandardScaler state as JSON, which the seed-way scripts load into
    scikit-learn's StandardScaler (the notes' user would pickle it; this project uses no pickle).
    """
    features = json.loads((run / "preprocess.json").read_text())["features"]
    path = folder / "scaler.json"
    state = {"mean": [f["center"] for f in features], "scale": [f["scale"] for f in features]}
    path.write_text(json.dumps(state))
    return path


def write_rows(path: Path, rows: int) -> None:
    """Seed-shaped features (x1, x2, x3), written in blocks to keep this script's memory low."""
    rng = np.random.default_rng(0)
    with path.open("w") as handle:
        handle.write("x1,x2,x3\n")
        for start in range(0, rows, 200_000):
            n = min(200_000, rows - start)
            block = np.column_stack(
                [rng.uniform(0, 10, n), rng.uniform(10, 100, n), rng.uniform(0, 10, n)]
            )
            np.savetxt(handle, block, fmt="%.3f", delimiter=",")


def summarize(runs: list[dict[str, Any]]) -> dict[str, Any]:
    walls = [r["wall_s"] for r in runs]
    return {
        "median_s": statistics.median(walls),
        "min_s": min(walls),
        "max_s": max(walls),
        "peak_rss_mb": max(r["peak_rss_mb"] for r in runs),
        "runs": len(runs),
    }


def single_row(run: Path, scaler: Path, folder: Path, repeats: int) -> dict[str, Any]:
    script = folder / "seed_row.py"
    script.write_text(SEED_ROW)
    cnncli = [*CNNCLI, "predict", str(run), "--input", "3,30,5"]
    seed = [PYTHON, str(script), str(run), str(scaler)]
    tf_env = {"KERAS_BACKEND": "tensorflow"}
    measure(cnncli), measure(seed, tf_env)  # warm-up: bytecode caches, page cache
    ours, theirs = [], []
    for _ in range(repeats):  # alternate, so a busy moment hits both sides alike
        ours.append(measure(cnncli))
        theirs.append(measure(seed, tf_env))
    return {
        "cnncli": summarize(ours),
        "seed": summarize(theirs),
        "output": ours[-1]["stdout"].strip(),
    }


def file_rows(
    run: Path, scaler: Path, folder: Path, rows: int, repeats: int, seed_rows: int
) -> dict[str, Any]:
    source = folder / f"rows-{rows}.csv"
    write_rows(source, rows)
    ours = []
    for index in range(repeats + 1):  # the first is a warm-up
        result = measure(
            [
                *CNNCLI,
                "predict",
                str(run),
                "--input-file",
                str(source),
                "--output",
                str(folder / "ours.csv"),
            ]
        )
        if index:
            ours.append(result)
    script = folder / "seed_file.py"
    script.write_text(SEED_FILE)
    seed_source = source
    if seed_rows != rows:
        seed_source = folder / f"rows-{seed_rows}.csv"
        write_rows(seed_source, seed_rows)
    theirs = measure(
        [PYTHON, str(script), str(run), str(scaler), str(seed_source), str(folder / "theirs.csv")],
        {"KERAS_BACKEND": "tensorflow"},
    )
    agreement = labels_agree(folder / "ours.csv", folder / "theirs.csv", seed_rows)
    summary = summarize(ours)
    return {
        "rows": rows,
        "cnncli": {**summary, "rows_per_s": rows / summary["median_s"]},
        "seed": {
            **summarize([theirs]),
            "rows": seed_rows,
            "rows_per_s": seed_rows / theirs["wall_s"],
        },
        "labels_agree": agreement,
    }


def labels_agree(ours: Path, theirs: Path, rows: int) -> float:
    import pandas as pd

    a = pd.read_csv(ours, usecols=["predicted"], nrows=rows)["predicted"].to_numpy()
    b = pd.read_csv(theirs, usecols=["predicted"])["predicted"].to_numpy()
    return float(np.mean(a[: len(b)] == b))


def table(result: dict[str, Any]) -> str:
    one, many = result["single_row"], result["file"]
    row_ratio = one["seed"]["median_s"] / one["cnncli"]["median_s"]
    file_ratio = many["cnncli"]["rows_per_s"] / many["seed"]["rows_per_s"]
    seed_rows = many["seed"]["rows"]
    seed_note = "" if seed_rows == many["rows"] else f" ({seed_rows:,} rows)"
    lines = [
        "| measurement | cnncli (ONNX Runtime) | seed's way (Keras + sklearn) | ratio |",
        "| --- | --- | --- | --- |",
        f"| cold `predict --input 3,30,5`, median of {one['cnncli']['runs']} | "
        f"{one['cnncli']['median_s']:.3f} s | {one['seed']['median_s']:.2f} s |"
        f" {row_ratio:.1f}x faster |",
        f"| its peak RSS | {one['cnncli']['peak_rss_mb']:.0f} MB |"
        f" {one['seed']['peak_rss_mb']:.0f} MB | "
        f"{one['seed']['peak_rss_mb'] / one['cnncli']['peak_rss_mb']:.1f}x less |",
        f"| {many['rows']:,}-row file, end to end | {many['cnncli']['rows_per_s']:,.0f} rows/s "
        f"({many['cnncli']['median_s']:.2f} s) |"
        f" {many['seed']['rows_per_s']:,.0f} rows/s{seed_note} | "
        f"{file_ratio:.1f}x faster |",
        f"| its peak RSS | {many['cnncli']['peak_rss_mb']:.0f} MB |"
        f" {many['seed']['peak_rss_mb']:.0f} MB | "
        f"{many['seed']['peak_rss_mb'] / many['cnncli']['peak_rss_mb']:.1f}x less |",
    ]
    return "\n".join(lines)


def main() -> None:
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)  # children cache bytecode, as installed
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--run", type=Path, help="a seed run folder (default: train one for 5 epochs)"
    )
    parser.add_argument("--rows", type=int, default=1_000_000, help="rows in the generated file")
    parser.add_argument("--repeats", type=int, default=10, help="cold single-row runs per side")
    parser.add_argument("--file-repeats", type=int, default=3, help="cnncli runs on the file")
    parser.add_argument("--seed-rows", type=int, help="rows for the seed's way (default: --rows)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="cnncli-bench-") as temp:
        folder = Path(temp)
        run = args.run.resolve() if args.run else train_seed(folder / "runs")
        scaler = scaler_state(run, folder)
        started = time.time()
        load_before = os.getloadavg()
        result: dict[str, Any] = {
            "when": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
            "machine": {
                "cpus": os.cpu_count(),
                "python": platform.python_version(),
                "platform": platform.platform(),
                "load_average_before": load_before,
            },
            "run": str(run),
            "single_row": single_row(run, scaler, folder, args.repeats),
            "file": file_rows(
                run, scaler, folder, args.rows, args.file_repeats, args.seed_rows or args.rows
            ),
        }
        result["machine"]["load_average_after"] = os.getloadavg()
        result["seconds"] = time.time() - started
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "predict.json").write_text(json.dumps(result, indent=2) + "\n")
    print(table(result))
    print(
        f"\nlabels agree on {result['file']['labels_agree']:.4%} of rows; load average"
        f" {load_before[0]:.2f} before, {result['machine']['load_average_after'][0]:.2f} after;"
        f" {os.cpu_count()} CPUs; written to {OUT / 'predict.json'}"
    )


if __name__ == "__main__":
    main()
