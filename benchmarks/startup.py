"""How long a person waits for the answers that need no model: help, schema and YAML errors.

Each case is a whole `cnncli` process; prints the median and best of N runs. Targets: `--help`
under 0.5 s (issue 5), a schema or YAML error under 1 s without TensorFlow (issue 3).

    python benchmarks/startup.py [--runs 10]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BAD_CONFIG = """data: {path: ../data/seed.csv}
model: {layers: [Dense]}
fit: {epochz: 3}
"""


def timed(args: list[str], runs: int) -> list[float]:
    seconds = []
    for _ in range(runs):
        started = time.perf_counter()
        subprocess.run([sys.executable, "-m", "cnncli", *args], capture_output=True, cwd=ROOT)
        seconds.append(time.perf_counter() - started)
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10)
    runs = parser.parse_args().runs
    with tempfile.NamedTemporaryFile("w", suffix=".yaml", dir=ROOT / "configs") as bad:
        bad.write(BAD_CONFIG)
        bad.flush()
        cases = {
            "cnncli --help": (["--help"], 0.5),
            "cnncli train --help": (["train", "--help"], 0.5),
            "cnncli validate (schema error)": (["validate", bad.name], 1.0),
            "cnncli validate (YAML error in --set)": (
                ["validate", "--set", "fit=[", bad.name],
                1.0,
            ),
        }
        print(f"| command | median of {runs} | best | target |")
        print("| --- | ---: | ---: | ---: |")
        for label, (args, target) in cases.items():
            seconds = timed(args, runs)
            median = statistics.median(seconds)
            print(f"| `{label}` | {median:.3f} s | {min(seconds):.3f} s | < {target} s |")


if __name__ == "__main__":
    main()
