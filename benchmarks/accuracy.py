"""Train every example config with its full epochs and print test metrics (the README's figures).

Not a test: the suite trains each config for a few epochs only. Writes
``benchmarks/out/accuracy.json``.

    python benchmarks/accuracy.py                 # every configs/*.yaml
    python benchmarks/accuracy.py seed iris       # some of them
    python benchmarks/accuracy.py --published     # FCN and ResNet, 3 seeds, beside the papers

``--published`` trains the four time-series configs with seeds 0, 1 and 2 at their own epoch
budget (``fit.epochs``) and prints the test accuracy's mean and minimum beside the figures the
papers report for the same data set and model (Wang et al. 2017, test error in their Table 1,
as 1 - error; Fawaz et al. 2019, mean accuracy over their runs); writes
``benchmarks/out/accuracy_published.json``.
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


def train(config: Path, output: Path, overrides: tuple[str, ...] = ()) -> dict:
    """One whole `cnncli train --json` process (timed), then `cnncli evaluate` on its run."""
    started = time.perf_counter()
    sets = [part for override in overrides for part in ("--set", override)]
    arguments = ["train", str(config), *sets, "--output", str(output), "--json"]
    result = subprocess.run(
        [sys.executable, "-m", "cnncli", *arguments],
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


#: Test accuracy published for the same model on the same official split:
#: (Wang et al. 2017, Fawaz et al. 2019), as read from their tables.
PUBLISHED = {
    "gunpoint_fcn": (1.000, 1.000),
    "gunpoint_resnet": (0.993, 0.991),
    "italypower_fcn": (0.970, 0.961),
    "italypower_resnet": (0.960, 0.963),
}
SEEDS = (0, 1, 2)


def published_table(output: Path) -> None:
    """Each PUBLISHED config over SEEDS: accuracy mean and min, epochs, seconds per training."""
    import yaml

    results = {}
    for name in PUBLISHED:
        config = ROOT / "configs" / f"{name}.yaml"
        epochs = yaml.safe_load(config.read_text())["fit"]["epochs"]
        runs = [train(config, output, (f"seed={seed}",)) for seed in SEEDS]
        accuracies = [run["metrics"]["accuracy"] for run in runs]
        results[name] = {
            "epochs": epochs,
            "accuracy": accuracies,
            "seconds": [run["seconds"] for run in runs],
        }
        print(f"{name}: {accuracies}", file=sys.stderr, flush=True)
    print(
        "| config | epochs | test accuracy, mean (min) of seeds 0-2 | Wang et al. 2017"
        " | Fawaz et al. 2019 | train wall time (mean) |"
    )
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    for name, result in results.items():
        wang, fawaz = PUBLISHED[name]
        accuracy = result["accuracy"]
        seconds = sum(result["seconds"]) / len(result["seconds"])
        print(
            f"| `configs/{name}.yaml` | {result['epochs']} | {sum(accuracy) / len(accuracy):.3f}"
            f" ({min(accuracy):.3f}) | {wang:.3f} | {fawaz:.3f} | {seconds:.0f} s |"
        )
    (OUT / "accuracy_published.json").write_text(json.dumps(results, indent=2) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", help="config names (file stems); default: all")
    parser.add_argument(
        "--published", action="store_true", help="FCN and ResNet over 3 seeds beside the papers"
    )
    args = parser.parse_args()
    if args.published:
        OUT.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory() as output:
            published_table(Path(output))
        return
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
