"""Measure training: cnncli against the seed notes' plain script, and cnncli at scale.

Prints tables and writes ``benchmarks/out/train.json``. Not a test: run it on a quiet machine.

1. ``cnncli train configs/seed.yaml`` against ``benchmarks/seed_script.py`` (the notes' pipeline)
   on the same CSV, epochs and batch size, alternately, each a whole process: median wall time
   and test accuracy. cnncli splits without stratifying, as the notes do, so both score the same
   test rows. cnncli runs with its JAX compilation cache warm (a config trained again) and cold
   (a fresh cache folder: the first run of a config), and on TensorFlow, in the same alternation.
2. Where cnncli's time goes: one run under cProfile, by phase.
3. Scale: seed-shaped CSVs of 10^5, 10^6 and 10^7 rows (generated once into benchmarks/out/),
   1 epoch with batch 256: rows/s and peak RSS of cnncli streaming, cnncli in memory and the
   seed's way (the plain script).

    python benchmarks/train.py                   # everything (about 10 minutes on 2 cores)
    python benchmarks/train.py --sizes 100000    # a quick look at scale
    python benchmarks/train.py --quick           # only the seed rows: the ratios in a few minutes
    python benchmarks/train.py --plots           # only what the run's plots cost (a minute)

4. Plots (``--plots``): each example config trained in a fresh process with its usual epochs;
   the time ``train`` spends drawing and writing the plots (matplotlib's first import included,
   as every run pays it), against the whole run's wall time.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import pstats
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "benchmarks" / "out"
PYTHON = sys.executable
CNNCLI = [PYTHON, "-m", "cnncli"]
SCRIPT = [PYTHON, str(ROOT / "benchmarks" / "seed_script.py")]
SEED_CONFIG = ROOT / "configs" / "seed.yaml"
QUIET = {"TF_CPP_MIN_LOG_LEVEL": "3"}  # the plain script gets the same quiet TensorFlow as cnncli
#: The notes split without stratifying; so does cnncli here, making the test rows the same rows.
SAME_SPLIT = ["split.stratify=false"]


def run(command: list[str], env: dict[str, str] | None = None) -> dict[str, Any]:
    """Run a whole process; wall time, peak RSS (its own, from wait4) and its stdout."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        start = time.perf_counter()
        process = subprocess.Popen(
            command, stdout=out, stderr=err, cwd=ROOT, env={**os.environ, **QUIET, **(env or {})}
        )
        _, status, usage = os.wait4(process.pid, 0)
        wall = time.perf_counter() - start
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read().decode(), err.read().decode()
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"failed: {' '.join(command)}\n{stderr[-3000:]}")
    return {"wall_s": wall, "peak_rss_mb": usage.ru_maxrss / 1024, "stdout": stdout}


def script_accuracy(stdout: str) -> float:
    return float(re.findall(r"Test accuracy: ([0-9.]+)", stdout)[-1])


def cnncli_accuracy(stdout: str) -> float:
    return float(json.loads(stdout)["metrics"]["test"]["accuracy"])


def cnncli_train(overrides: list[str], env: dict[str, str] | None = None) -> dict[str, Any]:
    sets = [part for item in overrides for part in ("--set", item)]
    result = run(
        [*CNNCLI, "train", str(SEED_CONFIG), *sets, "--output", str(OUT / "runs"), "--json"], env
    )
    result["accuracy"] = cnncli_accuracy(result["stdout"])
    return result


# ---------------------------------------------------------------------------------------------
# 1. the seed pipeline


def compare_seed(repeats: int, quick: bool = False) -> dict[str, Any]:
    """Alternate the plain script and cnncli (JAX, TensorFlow and, unless quick, a cold cache)."""
    data = str(ROOT / "data" / "seed.csv")
    names = ["script", "cnncli", "cnncli_tensorflow"]
    if importlib.util.find_spec("torch") is not None:  # the cnncli[torch] extra
        names.append("cnncli_torch")
    if not quick:
        names.insert(2, "cnncli_cold_cache")
    results: dict[str, list[dict[str, Any]]] = {name: [] for name in names}

    def one(name: str) -> dict[str, Any]:
        if name == "script":
            result = run([*SCRIPT, data, "50", "32"])
            result["accuracy"] = script_accuracy(result["stdout"])
            return result
        if name == "cnncli":
            return cnncli_train(SAME_SPLIT)
        if name in ("cnncli_tensorflow", "cnncli_torch"):
            return cnncli_train([*SAME_SPLIT, f"backend={name.removeprefix('cnncli_')}"])
        return cnncli_train(
            SAME_SPLIT, {"CNNCLI_CACHE_DIR": tempfile.mkdtemp(prefix="cnncli-cold-")}
        )

    cnncli_train(SAME_SPLIT)  # fills the compilation cache the warm runs use
    for index in range(repeats):
        order = list(results) if index % 2 == 0 else list(reversed(results))
        for name in order:
            results[name].append(one(name))
            print(f"  {name:18s} {results[name][-1]['wall_s']:6.2f} s", flush=True)

    def summary(runs: list[dict[str, Any]]) -> dict[str, Any]:
        return {
            "wall_s": [round(r["wall_s"], 2) for r in runs],
            "median_wall_s": round(statistics.median(r["wall_s"] for r in runs), 2),
            "accuracy": [round(r["accuracy"], 4) for r in runs],
            "median_accuracy": round(statistics.median(r["accuracy"] for r in runs), 4),
            "peak_rss_mb": round(max(r["peak_rss_mb"] for r in runs)),
        }

    table: dict[str, Any] = {name: summary(runs) for name, runs in results.items()}
    script_wall = table["script"]["median_wall_s"]
    for name in names[1:]:
        suffix = name.removeprefix("cnncli")
        table[f"ratio{suffix}"] = round(table[name]["median_wall_s"] / script_wall, 3)
    table["accuracy_points"] = round(
        100 * (table["cnncli"]["median_accuracy"] - table["script"]["median_accuracy"]), 2
    )
    return table


# ---------------------------------------------------------------------------------------------
# 1b. one process against two (distribute: data_parallel on JAX, 127.0.0.1)


def compare_processes(repeats: int) -> list[dict[str, Any]]:
    """configs/seed.yaml in one process, then as `cnncli launch --local 2`, alternately:
    whole-process wall time, training rows per second (rows × epochs / wall) and accuracy."""
    sides = {
        "1 process (`cnncli train`)": ["train", str(SEED_CONFIG)],
        "2 processes (`cnncli launch --local 2`)": ["launch", str(SEED_CONFIG), "--local", "2"],
    }
    results: dict[str, list[dict[str, Any]]] = {name: [] for name in sides}
    for index in range(repeats + 1):  # the first round fills the compilation cache
        order = list(sides) if index % 2 == 0 else list(reversed(sides))
        for name in order:
            output = Path(tempfile.mkdtemp(prefix="cnncli-procs-"))
            result = run([*CNNCLI, *sides[name], "--output", str(output)])
            metrics = json.loads((output / "latest" / "metrics.json").read_text())
            result["accuracy"] = metrics["test"]["accuracy"]
            if index:
                results[name].append(result)
                print(f"  {name:42s} {result['wall_s']:6.2f} s", flush=True)
    rows = 2400 * 50  # seed.csv's training rows × epochs
    table = []
    for name, runs in results.items():
        wall = statistics.median(r["wall_s"] for r in runs)
        table.append(
            {
                "way": name,
                "median_wall_s": round(wall, 2),
                "wall_s": [round(r["wall_s"], 2) for r in runs],
                "rows_per_s": round(rows / wall),
                "accuracy": round(statistics.median(r["accuracy"] for r in runs), 4),
            }
        )
    return table


# ---------------------------------------------------------------------------------------------
# 2. where the time goes

#: (label, the file's name, the function): a phase is the function's cumulative time.
PHASES = [
    ("import Keras (JAX)", "runtime.py", "import_keras"),
    ("read, split, preprocess", ".py", "prepare_data"),
    ("check the model", "check.py", "check_model"),
    ("build model", "build.py", "build_model"),
    ("fit (50 epochs)", "keeper.py", "fit"),
    ("evaluate", "trainer.py", "evaluate"),
    ("save model.keras", "runs.py", "save_keras_atomic"),
    ("export + check ONNX", "export.py", "export_onnx_checked"),
    ("whole process", "__main__.py", "<module>"),
]


def profile_seed() -> list[dict[str, Any]]:
    """cumtime of each phase in one profiled ``cnncli train configs/seed.yaml``."""
    path = OUT / "train.prof"
    run(
        [
            PYTHON,
            "-m",
            "cProfile",
            "-o",
            str(path),
            "-m",
            "cnncli",
            "train",
            str(SEED_CONFIG),
            "--output",
            str(OUT / "runs"),
            "--json",
        ]
    )
    stats = pstats.Stats(str(path)).stats  # type: ignore[attr-defined]
    rows = []
    for label, file, function in PHASES:
        times = [
            entry[3]
            for (name, _line, func), entry in stats.items()
            if name.endswith(file) and func == function
        ]
        rows.append({"phase": label, "seconds": round(max(times), 2) if times else None})
    return rows


# ---------------------------------------------------------------------------------------------
# 3. scale


def write_seed_like(path: Path, rows: int, seed: int = 0, block: int = 1_000_000) -> None:
    """A CSV shaped like data/seed.csv (x1, x2, x3, three string classes) with ``rows`` rows."""
    rng = np.random.default_rng(seed)
    names = np.array(["low", "medium", "high"])
    centers = np.array([(2.5, 25.0, 6.0), (5.0, 55.0, 3.0), (7.5, 80.0, 6.5)])
    spread = np.array([1.0, 5.0, 1.0])
    partial = path.with_suffix(".part")
    with partial.open("w") as out:
        out.write("x1,x2,x3,label\n")
        for start in range(0, rows, block):
            classes = np.arange(start, min(rows, start + block)) % 3
            x = centers[classes] + spread * rng.normal(size=(len(classes), 3))
            cells = [np.char.mod("%.3f,", x[:, column]) for column in range(3)]
            lines = np.char.add(
                np.char.add(np.char.add(cells[0], cells[1]), cells[2]), names[classes]
            )
            out.write("\n".join(lines.tolist()) + "\n")
    partial.replace(path)


def data_file(rows: int) -> Path:
    path = OUT / f"seed_{rows}.csv"
    if not path.exists():
        print(f"  writing {path.name} ...", flush=True)
        write_seed_like(path, rows)
    return path


def measure_way(way: str, path: Path) -> dict[str, Any]:
    """One epoch with batch 256 on ``path``, one way."""
    if way == "seed's way (script)":
        result = run([*SCRIPT, str(path), "1", "256"])
        result["accuracy"] = script_accuracy(result["stdout"])
        return result
    streaming = "true" if way == "cnncli streaming" else "false"
    overrides = [f"data.path={path}", "fit.epochs=1", "fit.batch_size=256"]
    return cnncli_train([*overrides, f"data.streaming={streaming}"])


def scale(sizes: list[int], seed_way_max: int) -> list[dict[str, Any]]:
    rows = []
    for size in sizes:
        path = data_file(size)
        ways = ["cnncli streaming"]
        if size <= seed_way_max:
            ways += ["cnncli in memory", "seed's way (script)"]
        for way in ways:
            result = measure_way(way, path)
            rows.append(
                {
                    "rows": size,
                    "way": way,
                    "wall_s": round(result["wall_s"], 1),
                    "rows_per_s": round(size / result["wall_s"]),
                    "peak_rss_mb": round(result["peak_rss_mb"]),
                    "accuracy": round(result["accuracy"], 4),
                }
            )
            print(
                f"  {size:>10,} {way:20s} {rows[-1]['wall_s']:7.1f} s"
                f" {rows[-1]['rows_per_s']:>9,} rows/s {rows[-1]['peak_rss_mb']:>6,} MB",
                flush=True,
            )
    return rows


# ---------------------------------------------------------------------------------------------


#: The configs whose plots are timed, with the epochs the tests train them for.
PLOT_CONFIGS = {"seed": 50, "iris": 60, "diabetes": 20, "digits_conv2d": 6}


def plots_child(name: str, epochs: int) -> None:
    """In this process: train configs/NAME.yaml, timing ``run_plots`` (drawing and encoding) and
    the atomic writes of the PNG files; print one JSON line."""
    sys.path.insert(0, str(ROOT))
    from cnncli.config.models import load_config
    from cnncli.report import plots
    from cnncli.train import run as training

    spent = {"draw": 0.0, "write": 0.0, "cpu": 0.0}

    def timed(key: str, function: Any) -> Any:
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            start, cpu = time.perf_counter(), time.process_time()
            try:
                return function(*args, **kwargs)
            finally:
                spent[key] += time.perf_counter() - start
                spent["cpu"] += time.process_time() - cpu

        return wrapper

    plots.run_plots = timed("draw", plots.run_plots)
    write_atomic = training.write_atomic
    timed_write = timed("write", write_atomic)
    training.write_atomic = lambda path, data: (
        timed_write(path, data) if path.suffix == ".png" else write_atomic(path, data)
    )
    with tempfile.TemporaryDirectory() as output:
        config = load_config(ROOT / "configs" / f"{name}.yaml", [f"fit.epochs={epochs}"])
        start = time.perf_counter()
        run = training.train_run(config, Path(output)).run_dir
        wall = time.perf_counter() - start
        sizes = sum(path.stat().st_size for path in run.glob("*.png"))
    print(
        json.dumps({"config": name, "epochs": epochs, "run_s": wall, **spent, "png_bytes": sizes})
    )


def measure_plots() -> list[dict[str, Any]]:
    """Each of ``PLOT_CONFIGS`` in a fresh process (matplotlib imported cold)."""
    rows = []
    for name, epochs in PLOT_CONFIGS.items():
        child = [*CNNCLI[:1], str(Path(__file__)), "--plots-child", f"{name}:{epochs}"]
        result = run(child, {"CNNCLI_BACKEND": "tensorflow"})
        rows.append(json.loads(result["stdout"].splitlines()[-1]))
        print(f"  {name}: done", flush=True)
    return rows


def plots_markdown(rows: list[dict[str, Any]], when: str, machine: str) -> str:
    lines = [
        f"Measured {when} on {machine} (`python benchmarks/train.py --plots`).",
        "",
        "| config (epochs) | whole run | plots drawn | plots written | plots' CPU time"
        " | plots' share | PNG size |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for row in rows:
        plots = row["draw"] + row["write"]
        lines.append(
            f"| {row['config']} ({row['epochs']}) | {row['run_s']:.2f} s | {row['draw']:.2f} s"
            f" | {row['write'] * 1000:.0f} ms | {row['cpu']:.2f} s | {plots / row['run_s']:.0%}"
            f" | {row['png_bytes'] / 1024:.0f} KB |"
        )
    return "\n".join(lines)


def markdown(report: dict[str, Any]) -> str:
    lines = [f"Measured {report['when']} on {report['machine']} (`python benchmarks/train.py`)."]
    if report["seed"] is not None:
        lines += seed_markdown(report["seed"])
    if report.get("processes"):
        lines += [
            "",
            "| configs/seed.yaml (JAX, 50 epochs) | median wall | runs | rows/s | test accuracy |",
            "| --- | ---: | --- | ---: | ---: |",
        ]
        lines += [
            f"| {r['way']} | {r['median_wall_s']:.2f} s | {', '.join(map(str, r['wall_s']))} |"
            f" {r['rows_per_s']:,} | {r['accuracy']:.4f} |"
            for r in report["processes"]
        ]
    if report["profile"]:
        lines += [
            "",
            "| where cnncli's time goes (one run under cProfile) | seconds |",
            "| --- | ---: |",
        ]
        lines += [f"| {row['phase']} | {row['seconds']} |" for row in report["profile"]]
    if report["scale"]:
        lines += [
            "",
            "| rows | way (1 epoch, batch 256) | wall | rows/s | peak RSS | test accuracy |",
            "| ---: | --- | ---: | ---: | ---: | ---: |",
        ]
        lines += [
            f"| {r['rows']:,} | {r['way']} | {r['wall_s']} s | {r['rows_per_s']:,} |"
            f" {r['peak_rss_mb']:,} MB | {r['accuracy']:.4f} |"
            for r in report["scale"]
        ]
    return "\n".join(lines)


def seed_markdown(seed: dict[str, Any]) -> list[str]:
    lines = [
        "",
        "| seed pipeline: data/seed.csv, 50 epochs, batch 32, the notes' split |"
        " median wall | runs | test accuracy | peak RSS |",
        "| --- | ---: | --- | ---: | ---: |",
    ]
    for key, label in (
        ("script", "plain script (the notes)"),
        ("cnncli", "`cnncli train configs/seed.yaml`"),
        ("cnncli_cold_cache", "cnncli, cold compile cache"),
        ("cnncli_tensorflow", "cnncli with `--set backend=tensorflow`"),
        ("cnncli_torch", "cnncli with `--set backend=torch`"),
    ):
        if key not in seed:
            continue
        row = seed[key]
        lines.append(
            f"| {label} | {row['median_wall_s']:.2f} s |"
            f" {', '.join(f'{w:.1f}' for w in row['wall_s'])} |"
            f" {row['median_accuracy']:.4f} | {row['peak_rss_mb']} MB |"
        )
    cold = f", cold cache {seed['ratio_cold_cache']:.2f}" if "ratio_cold_cache" in seed else ""
    torch = f", torch backend **{seed['ratio_torch']:.2f}**" if "ratio_torch" in seed else ""
    lines += [
        "",
        f"cnncli / script wall time: **{seed['ratio']:.2f}**{cold},"
        f" TensorFlow backend **{seed['ratio_tensorflow']:.2f}**{torch};"
        f" accuracy difference {seed['accuracy_points']:+.2f} points.",
    ]
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3, help="alternating runs of each side")
    parser.add_argument(
        "--sizes", default="100000,1000000,10000000", help="comma-separated row counts"
    )
    parser.add_argument(
        "--seed-way-max", type=int, default=1_000_000, help="largest size for the in-memory ways"
    )
    parser.add_argument("--skip-seed", action="store_true", help="only the scale part")
    parser.add_argument(
        "--quick",
        action="store_true",
        help="only the 50-epoch seed rows (script, cnncli, cnncli on TensorFlow), 3 alternations",
    )
    parser.add_argument("--plots", action="store_true", help="only what the plots cost")
    parser.add_argument("--plots-child", help=argparse.SUPPRESS)
    parser.add_argument(
        "--processes",
        action="store_true",
        help="only one process against two (cnncli launch --local 2) on configs/seed.yaml",
    )
    args = parser.parse_args()
    if args.plots_child:
        name, epochs = args.plots_child.split(":")
        plots_child(name, int(epochs))
        return
    if args.processes:
        args.skip_seed, args.sizes = True, ""
    if args.quick:
        args.repeats, args.sizes = 3, ""
    OUT.mkdir(parents=True, exist_ok=True)
    load = os.getloadavg()[0]
    report: dict[str, Any] = {
        "when": time.strftime("%Y-%m-%d"),
        "machine": f"{os.cpu_count()} cores, {platform.machine()},"
        f" Python {platform.python_version()}, load {load:.1f} at start",
        "seed": None,
        "profile": [],
        "scale": [],
        "processes": [],
    }
    if args.plots:
        print("plots (each config in a fresh process):", flush=True)
        report["plots"] = measure_plots()
        (OUT / "train-plots.json").write_text(json.dumps(report, indent=2) + "\n")
        print()
        print(plots_markdown(report["plots"], report["when"], report["machine"]))
        return
    if args.processes or not (args.skip_seed or args.quick):
        print("one process against two (alternating):", flush=True)
        report["processes"] = compare_processes(args.repeats)
    if not args.skip_seed:
        print("seed pipeline (alternating):", flush=True)
        report["seed"] = compare_seed(args.repeats, quick=args.quick)
        if not args.quick:
            report["profile"] = profile_seed()
    sizes = [int(float(size)) for size in args.sizes.split(",") if size]
    if sizes:
        print("scale:", flush=True)
        report["scale"] = scale(sizes, args.seed_way_max)
    (OUT / "train.json").write_text(json.dumps(report, indent=2) + "\n")
    if report["seed"] is not None or report["processes"]:
        print()
        print(markdown(report))
    else:
        print(json.dumps(report["scale"], indent=2))


if __name__ == "__main__":
    main()
