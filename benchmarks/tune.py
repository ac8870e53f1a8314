"""Measure ``cnncli tune`` against KerasTuner's ``RandomSearch`` on the seed search.

Both search the space of ``configs/seed_tune.yaml`` (Conv1D and Dense layers repeated 1-2
times, filters, units, activation, optimizer, learning rate, batch size) with the same trial
count and epochs on ``data/seed.csv``, each as a whole process, one after the other in one run:
wall time, the best validation accuracy, the winner's test accuracy, and the epochs trained
(cnncli's pruner stops hopeless trials; without it every valid trial runs every epoch).
KerasTuner is written as its docs show, on the default TensorFlow backend, with the same split
(20 % test, stratified, random_state 0; 20 % of the rest for validation) and preprocessing.

    python benchmarks/tune.py                 # 20 trials of 30 epochs (about 10 minutes)
    python benchmarks/tune.py --trials 5      # a quick look
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "configs" / "seed_tune.yaml"
PYTHON = sys.executable

KERAS_TUNER = r"""
import json, sys, time
import numpy as np, pandas as pd
import keras, keras_tuner
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler, OneHotEncoder

trials, epochs, folder = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
frame = pd.read_csv(sys.argv[4])
x, y = frame[["x1", "x2", "x3"]].to_numpy("float32"), frame[["label"]].to_numpy()
x_train, x_test, y_train, y_test = train_test_split(
    x, y, test_size=0.2, stratify=y, random_state=0)
x_train, x_val, y_train, y_val = train_test_split(
    x_train, y_train, test_size=0.2, stratify=y_train, random_state=0)
scaler = StandardScaler().fit(x_train)
encoder = OneHotEncoder(sparse_output=False).fit(y_train)
prep = lambda a: scaler.transform(a).reshape(-1, 3, 1)
x_train, x_val, x_test = prep(x_train), prep(x_val), prep(x_test)
y_train, y_val, y_test = (encoder.transform(a) for a in (y_train, y_val, y_test))


class SeedModel(keras_tuner.HyperModel):
    def build(self, hp):
        model = keras.Sequential([keras.Input((3, 1))])
        filters = hp.Choice("filters", [32, 64, 128])
        for _ in range(hp.Int("conv_layers", 1, 2)):
            model.add(keras.layers.Conv1D(filters, 3, activation="relu", padding="same"))
        model.add(keras.layers.MaxPooling1D(2))
        model.add(keras.layers.Flatten())
        units = hp.Int("units", 16, 256, sampling="log")
        activation = hp.Choice("activation", ["relu", "tanh", "elu"])
        for _ in range(hp.Int("dense_layers", 1, 2)):
            model.add(keras.layers.Dense(units, activation=activation))
        model.add(keras.layers.Dense(3, activation="softmax"))
        rate = hp.Float("learning_rate", 1e-4, 1e-2, sampling="log")
        name = hp.Choice("optimizer", ["Adam", "RMSprop", "SGD"])
        optimizer = getattr(keras.optimizers, name)
        model.compile(
            optimizer(learning_rate=rate), "categorical_crossentropy", metrics=["accuracy"]
        )
        return model

    def fit(self, hp, model, *args, **kwargs):
        return model.fit(*args, batch_size=hp.Choice("batch_size", [32, 64, 128]), **kwargs)


tuner = keras_tuner.RandomSearch(SeedModel(), objective="val_accuracy", max_trials=trials,
                                 seed=0, directory=folder, project_name="seed", overwrite=True)
tuner.search(x_train, y_train, epochs=epochs, validation_data=(x_val, y_val), verbose=0)
best = tuner.oracle.get_best_trials(1)[0]
# retrained with the best values, as the KerasTuner docs show (and as cnncli trains its best run)
keras.utils.set_random_seed(0)
hypermodel = SeedModel()
model = hypermodel.build(best.hyperparameters)
hypermodel.fit(best.hyperparameters, model, x_train, y_train, epochs=epochs, verbose=0)
test = model.evaluate(x_test, y_test, verbose=0, return_dict=True)["accuracy"]
print(json.dumps({"best_val": best.score, "test": test, "epochs": trials * epochs}))
"""


def run_cnncli(trials: int, epochs: int, folder: Path) -> dict:
    command = [
        PYTHON, "-m", "cnncli", "tune", str(CONFIG), "--trials", str(trials), "--json",
        "--set", f"fit.epochs={epochs}", "--set", f"output.dir={folder}",
    ]  # fmt: skip
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, cwd=ROOT, check=True)
    wall = time.perf_counter() - started
    summary = json.loads(done.stdout)
    metrics = json.loads((Path(summary["run_dir"]) / "metrics.json").read_text())
    with open(Path(summary["folder"]) / "trials.csv", newline="") as stream:
        rows = list(csv.DictReader(stream))
    trained = sum(int(row["epochs"] or 0) for row in rows)
    valid = sum(1 for row in rows if not row["reason"].startswith("invalid point"))
    return {
        "wall": wall,
        "best_val": summary["best"]["value"],
        "test": metrics["test"]["accuracy"],
        "epochs": trained,
        "unpruned_epochs": valid * epochs,
        "pruned": sum(row["state"] == "PRUNED" for row in rows),
    }


def run_keras_tuner(trials: int, epochs: int, folder: Path) -> dict:
    script = folder / "keras_tuner_seed.py"
    script.write_text(KERAS_TUNER)
    env = {**os.environ, "KERAS_BACKEND": "tensorflow", "TF_CPP_MIN_LOG_LEVEL": "3"}
    command = [PYTHON, str(script), str(trials), str(epochs), str(folder / "kt"),
               str(ROOT / "data" / "seed.csv")]  # fmt: skip
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, env=env)
    wall = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"KerasTuner failed:\n{done.stderr[-3000:]}")
    return {"wall": wall, **json.loads(done.stdout.strip().splitlines()[-1])}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--epochs", type=int, default=30)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="cnncli-bench-tune-") as tmp:
        ours = run_cnncli(args.trials, args.epochs, Path(tmp) / "cnncli")
        theirs = run_keras_tuner(args.trials, args.epochs, Path(tmp))
    print(f"{args.trials} trials of {args.epochs} epochs on data/seed.csv, each a whole process")
    print("| | wall time | best val accuracy | winner's test accuracy | epochs trained |")
    print("| --- | ---: | ---: | ---: | ---: |")
    print(
        f"| cnncli tune (TPE, median pruner, JAX) | {ours['wall']:.0f} s | {ours['best_val']:.4f}"
        f" | {ours['test']:.4f} | {ours['epochs']} ({ours['pruned']} pruned;"
        f" {ours['unpruned_epochs']} without the pruner) |"
    )
    print(
        f"| KerasTuner RandomSearch (TensorFlow) | {theirs['wall']:.0f} s"
        f" | {theirs['best_val']:.4f} | {theirs['test']:.4f} | {theirs['epochs']} |"
    )
    print(
        f"ratio: {ours['wall'] / theirs['wall']:.2f}x the wall time;"
        f" best val accuracy {100 * (ours['best_val'] - theirs['best_val']):+.2f} points"
    )


if __name__ == "__main__":
    main()
