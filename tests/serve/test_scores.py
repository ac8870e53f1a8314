"""The scores a result reports: label units for a regressor, a baseline beside every result, the
same numbers from ``train`` (metrics.json, its table) and ``evaluate`` (its table, ``--json``)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml

from cnncli.cli import cli
from cnncli.data.preprocess import LabelTransform, encode_labels
from cnncli.errors import CnnCliError
from cnncli.runs import METRICS_FILENAME, open_run
from cnncli.serve.evaluate import evaluate_run
from cnncli.serve.scores import (
    baseline_from_metrics,
    baseline_prediction,
    baseline_scores,
    beats_baseline,
    label_scores,
    scaled_scores,
    truth_from_targets,
)
from tests.conftest import base_config

STANDARD = LabelTransform("standard", "y", center=150.0, scale=80.0)


def test_regression_scores_are_scikit_learns_in_the_labels_units():
    from sklearn.metrics import mean_absolute_error, mean_squared_error, r2_score

    rng = np.random.default_rng(0)
    truth = rng.normal(150, 80, 50)
    predicted = truth + rng.normal(0, 30, 50)
    outputs = ((predicted - 150.0) / 80.0)[:, None]  # what a model of a standardised label gives
    scores = label_scores(STANDARD, outputs, truth)
    assert scores == pytest.approx(
        {
            "mae": mean_absolute_error(truth, predicted),
            "rmse": mean_squared_error(truth, predicted) ** 0.5,
            "r2": r2_score(truth, predicted),
        },
        rel=1e-9,
    )


@pytest.mark.parametrize(
    ("label", "values"),
    [
        (LabelTransform("onehot", "y", ("a", "b", "c")), np.array(["b", "c", "a", "b"])),
        (LabelTransform("sparse", "y", (3, 5, 7)), np.array([7, 3, 5, 5])),
        (LabelTransform("binary", "y", ("no", "yes")), np.array(["yes", "no", "no"])),
        (STANDARD, np.array([100.0, 151.5, 300.25])),
        (LabelTransform("none", "y"), np.array([1.5, -2.0, 8.0])),
    ],
)
def test_truth_from_targets_undoes_the_label_encoding(label, values):
    truth = truth_from_targets(label, encode_labels(label, values))
    if label.is_classification:
        assert [label.classes[index] for index in truth] == values.tolist()
    else:
        assert truth == pytest.approx(values, rel=1e-6)


def test_baseline_is_the_majority_class_or_the_training_mean():
    classes = LabelTransform("onehot", "y", ("a", "b", "c"))
    assert baseline_prediction(classes, np.array([0, 2, 2, 1])) == "c"
    scores = baseline_scores(classes, "c", np.array([2, 2, 0, 1]))
    assert scores == {"accuracy": 0.5, "balanced_accuracy": pytest.approx(1 / 3)}
    # a model weighted towards rare classes: less accurate, better balanced, so it beats it
    assert beats_baseline(classes, {"accuracy": 0.25, "balanced_accuracy": 0.5}, scores)
    assert not beats_baseline(classes, {"accuracy": 0.5, "balanced_accuracy": 1 / 3}, scores)
    assert baseline_prediction(STANDARD, np.array([1.0, 2.0, 6.0])) == 3.0
    scores = baseline_scores(STANDARD, 3.0, np.array([1.0, 5.0]))
    assert scores["mae"] == 2.0 and scores["rmse"] == 2.0 and scores["r2"] == pytest.approx(0.0)
    assert beats_baseline(STANDARD, {"mae": 1.9}, scores)
    assert not beats_baseline(STANDARD, {"mae": 2.0}, scores)


def test_only_scores_of_a_standardised_label_are_scaled():
    scores = {"loss": 0.4, "mse": 0.4, "mae": 30.0, "rmse": 40.0, "r2": 0.5}
    assert scaled_scores(STANDARD, scores) == {
        "loss": "standardised label",
        "mse": "standardised label",
    }
    assert scaled_scores(LabelTransform("none", "y"), scores) == {}


@pytest.mark.parametrize("value", ["x", None, float("nan"), True, [1.0]])
def test_a_damaged_baseline_in_metrics_json_is_refused(value):
    with pytest.raises(CnnCliError, match="baseline.predicts is .*not a finite number") as caught:
        baseline_from_metrics(STANDARD, {"baseline": {"predicts": value}}, "metrics.json")
    assert caught.value.where.key == "baseline.predicts"
    assert baseline_from_metrics(STANDARD, {"test": {}}, "metrics.json") is None  # an older run


@pytest.mark.slow
def test_metrics_json_and_evaluate_agree_in_the_labels_units(minimal_regression_run, runner):
    """With a standardised label, metrics.json showed Keras' scaled MAE (0.35) while evaluate
    showed label units (0.065): a run looked 5x better than it was."""
    run = open_run(minimal_regression_run)
    assert run.preprocessor.label.kind == "standard"
    stored = json.loads(run.file(METRICS_FILENAME).read_text())
    result = runner.invoke(cli, ["evaluate", str(run.path), "--json"], catch_exceptions=False)
    shown = json.loads(result.stdout)
    for name in ("mae", "rmse", "r2", "loss"):
        assert shown["metrics"][name] == pytest.approx(stored["test"][name], rel=1e-5), name
    assert stored["test"]["mae"] > 20  # diabetes progression units (25..346), not z-scores
    assert stored["scale"] == shown["scale"] == {"loss": "standardised label"}
    baseline = stored["baseline"]
    assert baseline["method"] == "training mean" and shown["baseline"]["predicts"] == pytest.approx(
        baseline["predicts"]
    )
    for name in ("mae", "rmse", "r2"):
        assert shown["baseline"]["metrics"][name] == pytest.approx(baseline["test"][name])
    table = runner.invoke(cli, ["evaluate", str(run.path)], catch_exceptions=False).stdout
    assert "loss (scaled)" in table and "│ baseline " in table
    assert "always predict the training mean" in table


@pytest.mark.slow
def test_minimal_regression_config_reaches_a_sensible_r2(minimal_regression_run):
    """Only the data and a layer stack: 10 epochs on an unscaled label gave R² = -27.8. Now the
    label is standardised and trained 50 epochs: R² 0.27 on the test split (a least-squares
    line gets 0.33 there), well above the training mean's 0."""
    metrics = json.loads((minimal_regression_run / METRICS_FILENAME).read_text())
    assert metrics["test"]["r2"] > 0.2
    assert metrics["baseline"]["test"]["r2"] < 0.01 and metrics["baseline"]["beaten"] is True
    assert evaluate_run(open_run(minimal_regression_run)).metrics["r2"] == pytest.approx(
        metrics["test"]["r2"], rel=1e-5
    )


@pytest.mark.slow
def test_a_model_that_does_not_beat_the_baseline_is_warned_once(runner, tmp_path):
    """A model that learns nothing (learning rate 1e-12, an unscaled label near 1000) scores worse
    than predicting the training mean: train and evaluate say so in one line each."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(60, 2))
    lines = ["x1,x2,y", *(f"{a:.3f},{b:.3f},{1000 + 10 * a:.3f}" for a, b in x)]
    data = tmp_path / "flat.csv"
    data.write_text("\n".join(lines) + "\n")
    config = base_config(data, preprocess={"label": "none"})
    config["model"]["layers"][-1] = {"type": "Dense", "units": "auto"}
    config["compile"] = {"optimizer": {"type": "SGD", "learning_rate": 1e-12}}  # 0 is refused
    path = tmp_path / "flat.yaml"
    path.write_text(yaml.safe_dump(config))
    trained = runner.invoke(cli, ["train", str(path), "--output", str(tmp_path / "runs")])
    assert trained.exit_code == 0, trained.stderr
    warning = (
        "warning: the model does not beat predicting the training mean on the test rows (MAE);"
        " train longer, scale the data, or change the model"
    )
    assert trained.stderr.count(warning) == 1
    run = Path(trained.stdout.strip().splitlines()[-1])
    assert json.loads((run / METRICS_FILENAME).read_text())["baseline"]["beaten"] is False
    evaluated = runner.invoke(cli, ["evaluate", str(run)])
    assert evaluated.exit_code == 0
    assert evaluated.stderr.count(warning) == 1


@pytest.mark.slow
def test_a_classifier_has_the_majority_class_beside_it(iris_run, runner):
    stored = json.loads((iris_run / METRICS_FILENAME).read_text())
    assert stored["baseline"]["method"] == "majority class"
    assert stored["baseline"]["predicts"] in ("setosa", "versicolor", "virginica")
    assert stored["baseline"]["test"]["accuracy"] == pytest.approx(1 / 3, abs=0.05)
    assert "scale" not in stored  # a classifier's loss has no label units to differ from
    shown = json.loads(runner.invoke(cli, ["evaluate", str(iris_run), "--json"]).stdout)
    assert shown["baseline"]["metrics"] == stored["baseline"]["test"]
    assert shown["baseline"]["beaten"] == stored["baseline"]["beaten"]
    assert shown["metrics"]["accuracy"] == pytest.approx(stored["test"]["accuracy"])
