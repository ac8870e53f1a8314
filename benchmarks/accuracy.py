"""Train every example config with its full epochs and print test metrics (the README's figures).

Not a test: the suite trains each config for a few epochs only. Writes
``benchmarks/out/accuracy.json``.

    python benchmarks/accuracy.py                 # every configs/*.yaml
    python benchmarks/accuracy.py seed iris       # some of them
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "benchmarks" / "out"


def train(config: Path, output: Path) -> dict:
    """One whole `cnncli train --json` process (timed), then `cnncli evaluate` on its run."""
    started = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-m", "cnncli", "train", str(config), "--output", str(output), "--json"],
        capture_output=True,
        text=True,
        check=True,
    )
    seconds = time.perf_counter() - started
    payload = json.loads(result.stdout)
    evaluation = subprocess.run(
        [sys.executable, "-m", "cnncli", "evaluate", payload["run_dir"], "--json"],
        capture_output=True,
        text=True,
        check=True,
    )
    # evaluate reports regression errors in the label's own units (train's are standardised).
    return {"metrics": json.loads(evaluation.stdout)["metrics"], "seconds": seconds}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", help="config names (file stems); default: all")
    args = parser.parse_args()
    configs = sorted((ROOT / "configs").glob("*.yaml"))
    if args.names:
        configs = [path for path in configs if path.stem in args.names]
    OUT.mkdir(parents=True, exist_ok=True)
    results = {}
    with tempfile.TemporaryDirectory() as output:
        for config in configs:
            results[config.stem] = train(config, Path(output))
    print("| config | test metrics (full epochs, `cnncli evaluate`) | train wall time |")
    print("| --- | --- | ---: |")
    for name, result in results.items():
        metrics = ", ".join(f"{key} {value:.4f}" for key, value in result["metrics"].items())
        print(f"| `configs/{name}.yaml` | {metrics} | {result['seconds']:.1f} s |")
    (OUT / "accuracy.json").write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
