"""Every example config trains, and the trained runs give real, consistent results."""

from __future__ import annotations

import json

import numpy as np
import pytest

from cnncli.config.models import load_config
from cnncli.data.preprocess import Preprocessor
from cnncli.runs import METRICS_FILENAME, PREPROCESS_FILENAME, open_run
from cnncli.serve.evaluate import evaluate_run, evaluation_data
from cnncli.serve.predictor import Predictor, predict_columns
from tests.conftest import CONFIGS, DATA, EXAMPLE_EPOCHS

pytestmark = pytest.mark.slow


def test_every_example_config_has_a_trained_run(example_runs):
    """Each file in configs/ has a complete run, trained from that very config."""
    for path in sorted(CONFIGS.glob("*.yaml")):
        run = open_run(example_runs[path.stem])  # every file listed and matching its sha256
        trained_from = load_config(path, [f"fit.epochs={EXAMPLE_EPOCHS.get(path.stem, 2)}"])
        assert run.manifest["config_sha256"] == trained_from.fingerprint(), path.name
        metrics = json.loads((run.path / METRICS_FILENAME).read_text())
        assert np.isfinite(metrics["test"]["loss"]), path.name


@pytest.mark.parametrize(
    ("name", "threshold"),
    [("iris", 0.9), ("digits_conv2d", 0.9), ("seed", 0.9), ("gunpoint_conv1d", 0.85)],
)
def test_accuracy_after_a_short_fit(example_runs, name, threshold):
    metrics = json.loads((example_runs[name] / METRICS_FILENAME).read_text())
    assert metrics["test"]["accuracy"] >= threshold


def test_regression_beats_predicting_the_mean(example_runs):
    run = open_run(example_runs["diabetes"])
    result = evaluate_run(run)
    _, labels, _ = evaluation_data(run, None)
    baseline_mae = float(np.mean(np.abs(labels - labels.mean())))
    assert result.metrics["mae"] < 0.85 * baseline_mae


@pytest.mark.parametrize("name", ["seed", "iris", "digits_conv2d", "gunpoint_conv1d"])
def test_predict_on_the_test_split_agrees_with_evaluate(example_runs, name):
    run = open_run(example_runs[name])
    features, labels, _ = evaluation_data(run, None)
    predicted = predict_columns(Predictor(run), features).labels
    accuracy = float(np.mean([str(p) == str(t) for p, t in zip(predicted, labels, strict=True)]))
    assert accuracy == pytest.approx(evaluate_run(run).metrics["accuracy"])
    stored = json.loads((run.path / METRICS_FILENAME).read_text())["test"]["accuracy"]
    assert accuracy == pytest.approx(stored, abs=1e-6)


def test_evaluate_loss_matches_keras_evaluate(example_runs):
    run = open_run(example_runs["seed"])
    stored = json.loads((run.path / METRICS_FILENAME).read_text())["test"]
    assert evaluate_run(run).metrics["loss"] == pytest.approx(stored["loss"], rel=1e-4)


def test_preprocess_json_round_trips(seed_run):
    text = (seed_run / PREPROCESS_FILENAME).read_text()
    pre = Preprocessor.from_json(text)
    assert Preprocessor.from_json(pre.to_json()) == pre
    assert pre.feature_names == ["x1", "x2", "x3"]
    assert pre.label.classes == ("high", "low", "medium")
    assert pre.input_shape == (3, 1)


def test_scaler_equals_scikit_learn_on_the_training_rows(seed_run):
    import pandas as pd
    from sklearn.preprocessing import StandardScaler

    pre = open_run(seed_run).preprocessor
    split = json.loads((seed_run / "split.json").read_text())
    frame = pd.read_csv(DATA / "seed.csv")
    train = frame.drop(index=split["test_rows"])[["x1", "x2", "x3"]].to_numpy()
    scaler = StandardScaler().fit(train)
    np.testing.assert_allclose([f.center for f in pre.features], scaler.mean_, rtol=1e-12)
    np.testing.assert_allclose([f.scale for f in pre.features], scaler.scale_, rtol=1e-12)


def test_official_test_file_is_used_as_is(example_runs):
    run = open_run(example_runs["gunpoint_conv1d"])
    _, labels, source = evaluation_data(run, None)
    assert len(labels) == 150
    assert source.endswith("gunpoint_test.csv")
