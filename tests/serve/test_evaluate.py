"""``evaluate``: the configured loss (NumPy twins = Keras), scores, JSON, tables on stdout."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml

from cnncli import runtime
from cnncli.cli import cli
from cnncli.data.preprocess import LabelTransform, Preprocessor
from cnncli.errors import CnnCliError
from cnncli.runs import open_run
from cnncli.runtime import import_keras
from cnncli.serve.evaluate import Evaluation, classification_scores, evaluate_run
from cnncli.serve.losses import LossUnavailable, configured_loss, keras_loss, numpy_loss
from tests.conftest import base_config, seed_like_rows

CONFIGS = Path(__file__).parents[2] / "configs"
RNG = np.random.default_rng(0)


def example_losses() -> set[str]:
    """Every loss an example config names."""
    names = set()
    for path in CONFIGS.glob("*.yaml"):
        loss = (yaml.safe_load(path.read_text()).get("compile") or {}).get("loss")
        if loss:
            names.add(loss["type"] if isinstance(loss, dict) else loss)
    return names


def targets_and_outputs(name: str) -> tuple[np.ndarray, np.ndarray]:
    """Encoded targets and float32 model outputs of the shapes training gives that loss."""
    rows, classes = 64, 4
    probabilities = RNG.dirichlet(np.ones(classes), size=rows).astype(np.float32)
    probabilities[0] = [1.0, 0.0, 0.0, 0.0]  # saturated outputs hit the clipping
    index = RNG.integers(0, classes, size=rows)
    index[0] = 1
    name = name.lower()
    if "sparse" in name:
        return index.astype(np.int32), probabilities
    if name.startswith(("categorical", "kl")):
        return np.eye(classes, dtype=np.float32)[index], probabilities
    if name.startswith(("binary", "hinge", "squared_hinge")):
        positive = RNG.random((rows, 1)).astype(np.float32)
        positive[0] = 1.0
        return (index[:, None] % 2).astype(np.float32), positive
    values = RNG.normal(size=(rows, 1)).astype(np.float32)
    return values, (values + RNG.normal(scale=2.0, size=(rows, 1))).astype(np.float32)


LOSSES = sorted(
    {
        "huber",
        "Huber",
        "hinge",
        "squared_hinge",
        "categorical_hinge",
        "mae",
        "mse",
        "mean_absolute_error",
        "mean_squared_error",
        "MeanSquaredError",
        "log_cosh",
        "kl_divergence",
        "mean_absolute_percentage_error",
        "mean_squared_logarithmic_error",
        "binary_crossentropy",
        "BinaryCrossentropy",
        "categorical_crossentropy",
        "CategoricalCrossentropy",
        "sparse_categorical_crossentropy",
        "SparseCategoricalCrossentropy",
    }
)


def test_the_examples_losses_are_among_those_tested():
    assert example_losses() and example_losses() <= set(LOSSES)


@pytest.mark.parametrize("name", LOSSES)
def test_numpy_loss_equals_keras(name):
    keras = import_keras()
    y_true, y_pred = targets_and_outputs(name)
    expected = keras_loss(keras, name, {}, y_true, y_pred)
    assert numpy_loss(name, {}, y_true, y_pred) == pytest.approx(expected, rel=1e-6, abs=1e-6)


@pytest.mark.parametrize(
    ("name", "args"),
    [
        ("Huber", {"delta": 0.3}),
        ("CategoricalCrossentropy", {"label_smoothing": 0.1}),
        ("CategoricalCrossentropy", {"from_logits": True}),
        ("BinaryCrossentropy", {"label_smoothing": 0.2}),
        ("BinaryCrossentropy", {"from_logits": True}),
        ("SparseCategoricalCrossentropy", {"from_logits": True}),
    ],
)
def test_numpy_loss_with_arguments_equals_keras(name, args):
    keras = import_keras()
    y_true, y_pred = targets_and_outputs(name)
    expected = keras_loss(keras, name, args, y_true, y_pred)
    assert numpy_loss(name, args, y_true, y_pred) == pytest.approx(expected, rel=1e-6, abs=1e-6)


def test_a_loss_without_a_numpy_twin_is_left_to_keras():
    y_true, y_pred = targets_and_outputs("binary_focal_crossentropy")
    assert numpy_loss("binary_focal_crossentropy", {}, y_true, y_pred) is None
    assert numpy_loss("mse", {"reduction": "sum"}, y_true, y_pred) is None


def test_without_a_twin_or_keras_the_loss_is_unavailable_with_the_reason(monkeypatch):
    def no_keras():
        raise CnnCliError("no deep-learning backend is installed (keras)")

    monkeypatch.setattr(runtime, "import_keras", no_keras)
    y_true, y_pred = targets_and_outputs("binary_crossentropy")
    with pytest.raises(LossUnavailable, match="no NumPy equivalent.*no deep-learning backend"):
        configured_loss("binary_focal_crossentropy", {}, y_true, y_pred, use_keras=False)
    assert configured_loss("binary_crossentropy", {}, y_true, y_pred, use_keras=False) > 0


def test_classification_scores_match_a_hand_count():
    pre = Preprocessor((), LabelTransform("onehot", "y", ("a", "b", "c")))
    outputs = np.eye(3)[[0, 1, 1, 2, 0]]
    truth = np.array([0, 1, 2, 2, 1])
    metrics, per_class, confusion = classification_scores(pre, outputs, truth)
    # recall 1/1, 1/2 and 1/2 of the three classes
    assert metrics == {"accuracy": pytest.approx(0.6), "balanced_accuracy": pytest.approx(2 / 3)}
    assert confusion == [[1, 0, 0], [1, 1, 0], [0, 1, 1]]
    keys = ("class", "precision", "recall", "f1", "support")
    assert [tuple(row[key] for key in keys) for row in per_class] == [
        ("a", 0.5, 1.0, pytest.approx(2 / 3), 1),
        ("b", 0.5, 0.5, 0.5, 2),
        ("c", 1.0, 0.5, pytest.approx(2 / 3), 2),
    ]


def test_evaluation_json_keeps_the_printed_keys():
    result = Evaluation(
        {"loss": 0.5, "accuracy": 1.0}, 2, "onnx", "t.csv", ("a", "b"), [], [[1, 0], [0, 1]]
    )
    assert result.to_json() == {
        "metrics": {"loss": 0.5, "accuracy": 1.0},
        "rows": 2,
        "backend": "onnx",
        "per_class": [],
        "confusion_matrix": [[1, 0], [0, 1]],
        "classes": ["a", "b"],
    }


@pytest.mark.slow
@pytest.mark.parametrize("loss", ["huber", "hinge"])
def test_evaluate_reports_the_configured_loss(loss, runner, write_config, tmp_path):
    """A run compiled with huber (or hinge) reports that loss, the one Keras' evaluate gives."""
    data = tmp_path / "seed.csv"
    data.write_text(seed_like_rows(90))
    config = base_config(data, fit={"epochs": 2, "batch_size": 16, "verbose": False})
    config["compile"]["loss"] = loss
    output = tmp_path / "runs"
    result = runner.invoke(
        cli, ["train", str(write_config(config)), "--output", str(output), "--json"]
    )
    assert result.exit_code == 0, result.stderr
    run = open_run(Path(json.loads(result.stdout)["run_dir"]))
    stored = json.loads(run.file("metrics.json").read_text())["test"]["loss"]
    by_onnx = evaluate_run(run, backend="onnx").metrics["loss"]
    by_keras = evaluate_run(run, backend="keras").metrics["loss"]
    assert by_onnx == pytest.approx(by_keras, abs=1e-5)
    assert by_keras == pytest.approx(stored, rel=1e-4)


@pytest.mark.slow
def test_evaluate_gives_the_same_accuracy_through_either_backend(runner, iris_run):
    scores = {}
    for backend in ("onnx", "keras"):
        result = runner.invoke(
            cli, ["evaluate", str(iris_run), "--backend", backend, "--json"], catch_exceptions=False
        )
        data = json.loads(result.stdout)
        assert data["backend"] == backend
        scores[backend] = data["metrics"]["accuracy"]
    assert scores["onnx"] == scores["keras"] >= 0.9


@pytest.mark.slow
def test_evaluate_prints_results_on_stdout_and_the_source_on_stderr(runner, iris_run):
    result = runner.invoke(cli, ["evaluate", str(iris_run)], catch_exceptions=False)
    assert result.exit_code == 0
    for title in ("Evaluation", "Per class", "Confusion matrix"):
        assert title in result.stdout and title not in result.stderr
    assert "loss" in result.stdout and "accuracy" in result.stdout
    assert "rows · onnx" in result.stderr


@pytest.mark.slow
def test_evaluate_with_data_names_the_file_it_scored(runner, iris_run):
    """The table's row said 'test' even when another file was scored."""
    from tests.conftest import DATA

    own = runner.invoke(cli, ["evaluate", str(iris_run)], catch_exceptions=False)
    other = runner.invoke(
        cli, ["evaluate", str(iris_run), "--data", str(DATA / "iris.csv")], catch_exceptions=False
    )
    assert other.exit_code == 0
    assert "│ iris.csv " in other.stdout and "│ test " not in other.stdout
    assert "│ test " in own.stdout
    assert other.stderr.startswith(f"{DATA / 'iris.csv'} · 150 rows")


@pytest.mark.parametrize("seed", [0, 1])
def test_per_class_scores_and_confusion_are_scikit_learns(seed):
    """NumPy's per-class scores (train writes them without importing scikit-learn), with a
    class that is never predicted and one never present, which score 0 as zero_division=0."""
    from sklearn.metrics import confusion_matrix, precision_recall_fscore_support

    from tests.conftest import fit_label

    rng = np.random.default_rng(seed)
    label = fit_label(np.array(["a", "b", "c", "d"]), "onehot", "y")
    pre = Preprocessor(features=(), label=label, input_shape=(1,))
    truth = rng.integers(0, 3, 60)  # class d is never present
    outputs = rng.random((60, 4))
    outputs[:, 2] = 0  # class c is never predicted
    _, per_class, confusion = classification_scores(pre, outputs, truth)
    predicted = outputs.argmax(axis=1)
    expected = precision_recall_fscore_support(
        truth, predicted, labels=np.arange(4), zero_division=0
    )
    for index, row in enumerate(per_class):
        assert row["class"] == "abcd"[index]
        got = (row["precision"], row["recall"], row["f1"], row["support"])
        assert got == pytest.approx(tuple(float(values[index]) for values in expected))
    assert confusion == confusion_matrix(truth, predicted, labels=np.arange(4)).tolist()
