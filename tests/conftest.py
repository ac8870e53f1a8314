"""Shared fixtures: small data, config writing, a CLI runner, and trained runs shared by all tests."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from click.testing import CliRunner

from cnncli.data.preprocess import LabelFacts, LabelTransform, PreprocessingFit, Preprocessor

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
# One backend for the whole session, whatever a config asks (Keras fixes it at first import, so
# otherwise the first test to train would choose); test_training.py runs JAX in a subprocess.
os.environ.setdefault("CNNCLI_BACKEND", "tensorflow")

#: Why a torch test skips: the extra installs only where PyTorch's CPU wheel is offered.
TORCH_SKIP = (
    "torch is not installed: `make test` installs cnncli[torch] (torch==2.13.0+cpu) only where"
    " that CPU wheel is offered (PyTorch's CPU index or a mirror carrying it)"
)

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = ROOT / "configs"
DATA = ROOT / "data"
TEST_CONFIGS = Path(__file__).resolve().parent / "configs"


def seed_like_rows(rows: int, seed: int = 0) -> str:
    """CSV text with the seed data's shape: x1, x2, x3 and three string classes."""
    rng = np.random.default_rng(seed)
    centers = {"low": (2.5, 25, 6), "medium": (5, 55, 3), "high": (7.5, 80, 6.5)}
    lines = ["x1,x2,x3,label"]
    names = list(centers)
    for index in range(rows):
        name = names[index % 3]
        x1, x2, x3 = centers[name]
        lines.append(
            f"{x1 + rng.normal():.3f},{x2 + 5 * rng.normal():.3f},{x3 + rng.normal():.3f},{name}"
        )
    return "\n".join(lines) + "\n"


#: A learning-rate schedule as a config gives it (``compile.optimizer.learning_rate``).
EXPONENTIAL_DECAY = {
    "type": "ExponentialDecay",
    "initial_learning_rate": 0.1,
    "decay_steps": 10,
    "decay_rate": 0.5,
}


@pytest.fixture
def tiny_csv(tmp_path: Path) -> Path:
    """20 rows, three numeric features and three classes."""
    path = tmp_path / "tiny.csv"
    path.write_text(seed_like_rows(20))
    return path


def base_config(data_path: Path | str, **sections: Any) -> dict[str, Any]:
    """A small valid config dict (Dense stack) on ``data_path``; sections override keys."""
    config: dict[str, Any] = {
        "name": "t",
        "seed": 0,
        "data": {"path": str(data_path)},
        "model": {
            "layers": [
                {"type": "Dense", "units": 8, "activation": "relu"},
                {"type": "Dense", "units": "auto", "activation": "softmax"},
            ]
        },
        "compile": {
            "optimizer": "adam",
            "loss": "categorical_crossentropy",
            "metrics": ["accuracy"],
        },
        "fit": {"epochs": 1, "batch_size": 8, "verbose": False},
    }
    for key, value in sections.items():
        config[key] = value
    return config


@pytest.fixture
def write_config(tmp_path: Path) -> Callable[..., Path]:
    """dict (or YAML text) → a config file on tmp_path."""
    counter = {"n": 0}

    def write(content: dict[str, Any] | str, name: str | None = None) -> Path:
        counter["n"] += 1
        path = tmp_path / (name or f"config{counter['n']}.yaml")
        text = content if isinstance(content, str) else yaml.safe_dump(content, sort_keys=False)
        path.write_text(text)
        return path

    return write


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


@pytest.fixture(scope="session")
def seed_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """configs/seed.yaml trained for a few epochs once per test session."""
    from cnncli.config.models import load_config
    from cnncli.train.run import train_run

    output = tmp_path_factory.mktemp("seed-runs")
    config = load_config(CONFIGS / "seed.yaml", ["fit.epochs=8"])
    return train_run(config, output).run_dir


@pytest.fixture(scope="session")
def iris_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from cnncli.config.models import load_config
    from cnncli.train.run import train_run

    output = tmp_path_factory.mktemp("iris-runs")
    config = load_config(CONFIGS / "iris.yaml", ["fit.epochs=60"])
    return train_run(config, output).run_dir


#: Epochs per example config in tests: enough for the accuracy checks, small enough for CI.
EXAMPLE_EPOCHS = {
    "seed": 8,
    "seed_deep": 2,
    "iris": 60,
    "digits_conv2d": 6,
    "diabetes": 20,
    "gunpoint_conv1d": 60,
    "gunpoint_fcn": 1,  # 266k-507k parameters on 150 steps: one epoch shows that they train
    "gunpoint_resnet": 1,
    "italypower_fcn": 1,
    "italypower_resnet": 1,
}


@pytest.fixture(scope="session")
def example_runs(
    tmp_path_factory: pytest.TempPathFactory, seed_run: Path, iris_run: Path
) -> dict[str, Path]:
    """Every configs/*.yaml trained once for a few epochs: name (file stem) → run folder."""
    from cnncli.config.models import load_config
    from cnncli.train.run import train_run

    output = tmp_path_factory.mktemp("example-runs")
    runs = {"seed": seed_run, "iris": iris_run}
    for path in sorted(CONFIGS.glob("*.yaml")):
        if path.stem not in runs:
            epochs = EXAMPLE_EPOCHS.get(path.stem, 2)
            runs[path.stem] = train_run(load_config(path, [f"fit.epochs={epochs}"]), output).run_dir
    return runs


def mixed_rows(rows: int, seed: int = 0) -> str:
    """CSV text with a numeric, a categorical and a second numeric feature, two classes."""
    rng = np.random.default_rng(seed)
    lines = ["x1,color,x2,label"]
    for index in range(rows):
        color = ("red", "green", "blue")[index % 3]
        label = "yes" if index % 2 else "no"
        lines.append(f"{rng.normal() + (index % 2):.3f},{color},{10 * rng.normal():.3f},{label}")
    return "\n".join(lines) + "\n"


@pytest.fixture(scope="session")
def mixed_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A Dense model on numeric + one-hot features with `missing: mean`, trained one epoch."""
    from cnncli.config.models import load_config
    from cnncli.train.run import train_run

    folder = tmp_path_factory.mktemp("mixed-run")
    (folder / "mixed.csv").write_text(mixed_rows(120))
    config = base_config(folder / "mixed.csv")
    config["data"]["missing"] = "mean"
    path = folder / "mixed.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return train_run(load_config(path), folder / "runs").run_dir


def cars_rows(rows: int, seed: int = 0, empty_date_at: int | None = None) -> str:
    """A real table's kinds of column: a text ID, a free-text name, a sale date, a number, a
    colour and a price (regression) that follows the date's year and the number."""
    import datetime

    rng = np.random.default_rng(seed)
    lines = ["id,name,sold,km,colour,price"]
    start = datetime.date(2015, 1, 1)
    for index in range(rows):
        day = start + datetime.timedelta(days=int(rng.integers(0, 1460)))
        km = float(rng.uniform(0, 200))
        price = 20 - km / 20 + 1.5 * (day.year - 2015) + rng.normal(0, 0.5)
        sold = "" if index == empty_date_at else day.isoformat()
        colour = ("red", "blue", "green")[index % 3]
        name = f"Car {index} model {rng.integers(0, 1000)}"
        lines.append(f"C-{index:04d},{name},{sold},{km:.2f},{colour},{price:.3f}")
    return "\n".join(lines) + "\n"


#: The column types that make ``cars_rows`` trainable: no ID, no name, the date as a date.
CARS_COLUMNS = {"id": "drop", "name": "drop", "sold": "date"}


def cars_config(path: Path, **data: Any) -> dict[str, Any]:
    """A small regression config on a ``cars_rows`` file."""
    config = base_config(path, data={"path": str(path), **data})
    config["model"]["layers"][-1] = {"type": "Dense", "units": 1}
    config["compile"] = {"optimizer": "adam", "loss": "mean_squared_error", "metrics": ["mae"]}
    return config


@pytest.fixture(scope="session")
def cars_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A regression run on ``cars_rows`` with ``data.columns`` (a date, two dropped columns) and
    ``missing: mean`` over an empty date cell, trained two epochs."""
    from cnncli.config.models import load_config
    from cnncli.train.run import train_run

    folder = tmp_path_factory.mktemp("cars")
    (folder / "cars.csv").write_text(cars_rows(200, empty_date_at=5))
    config = cars_config(folder / "cars.csv", columns=CARS_COLUMNS, missing="mean")
    config["fit"]["epochs"] = 2
    path = folder / "cars.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return train_run(load_config(path), folder / "runs").run_dir


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A one-epoch run of a Dense stack on 30 seed-like rows, trained without a seed."""
    from cnncli.config.models import load_config
    from cnncli.train.run import train_run

    folder = tmp_path_factory.mktemp("tiny")
    csv = folder / "tiny.csv"
    csv.write_text(seed_like_rows(30))
    config = base_config(csv)
    del config["seed"]
    config_path = folder / "tiny.yaml"
    config_path.write_text(yaml.safe_dump(config))
    return train_run(load_config(config_path), folder / "runs").run_dir


#: The smallest regression config: the data, a layer stack and a seed; every other value is
#: cnncli's default (a standardised label, 50 epochs).
MINIMAL_REGRESSION = {
    "seed": 0,
    "data": {"path": str(DATA / "diabetes.csv")},
    "model": {
        "layers": [
            {"type": "Dense", "units": 32, "activation": "relu"},
            {"type": "Dense", "units": 16, "activation": "relu"},
            {"type": "Dense", "units": "auto"},
        ]
    },
}


#: ``fit`` settings under which EarlyStopping always stops after epoch 2 and restores epoch 1:
#: with min_delta 10 the first epoch is the best and the second ends the patience.
STOPS_AT_EPOCH_2 = {
    "epochs": 30,
    "validation_split": 0.25,
    "callbacks": [
        {
            "type": "EarlyStopping",
            "monitor": "val_loss",
            "patience": 1,
            "min_delta": 10,
            "restore_best_weights": True,
        }
    ],
}


@pytest.fixture(scope="session")
def minimal_regression_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``MINIMAL_REGRESSION`` on data/diabetes.csv, trained with the defaults (a few seconds)."""
    from cnncli.config.models import load_config
    from cnncli.train.run import train_run

    folder = tmp_path_factory.mktemp("minimal-regression")
    path = folder / "minimal.yaml"
    path.write_text(yaml.safe_dump(MINIMAL_REGRESSION, sort_keys=False))
    return train_run(load_config(path), folder / "runs").run_dir


def error_lines(result: Any) -> list[str]:
    """The ``error:`` lines a CLI run printed on stderr."""
    return [line for line in result.stderr.splitlines() if line.startswith("error:")]


def problems_of(caught: pytest.ExceptionInfo[Any]) -> list[Any]:
    """Every problem a ``CnnCliError`` carries: a ``ConfigErrors``' list, or the error itself."""
    from cnncli.errors import ConfigErrors

    error = caught.value
    return error.problems if isinstance(error, ConfigErrors) else [error]


def fit_preprocessor(
    columns: Mapping[str, np.ndarray],
    labels: np.ndarray,
    *,
    categorical: Sequence[str],
    feature_method: str,
    label_kind: str,
    fill_missing: bool,
    label_name: str = "",
) -> Preprocessor:
    """The package's fitter (``PreprocessingFit``) on rows in memory, as one chunk.

    Args:
        columns: feature name → raw values (float for numeric, str for categorical), in order.
        labels: label values of the training rows, normalised as ``label_values`` does.
        categorical: names of the columns to one-hot encode.
        feature_method: ``standard``, ``minmax`` or ``none``.
        label_kind: ``onehot``, ``sparse``, ``binary``, ``none`` or ``standard``.
        fill_missing: whether empty numeric cells become the column mean.
        label_name: the label column's name, kept for messages and decoding.

    Returns:
        The fitted preprocessor; its ``input_shape`` is the caller's to set.
    """
    fit = PreprocessingFit(list(columns), categorical)
    fit.update(columns, np.asarray(labels))
    return fit.finish(
        feature_method=feature_method,
        label_kind=label_kind,
        fill_missing=fill_missing,
        label_name=label_name,
    )


def fit_label(labels: np.ndarray, kind: str, name: str) -> LabelTransform:
    """The label encoding of ``kind`` fitted on ``labels`` in memory."""
    facts = LabelFacts()
    facts.update(np.asarray(labels))
    return facts.transform(kind, name)
