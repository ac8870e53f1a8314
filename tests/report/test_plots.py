"""The plots ``train`` draws into a run folder (cnncli/report/plots.py)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import yaml

from cnncli.runs import (
    CONFUSION_MATRIX_FILENAME,
    LEARNING_CURVES_FILENAME,
    MANIFEST_FILENAME,
    PLOT_FILENAMES,
    PRECISION_RECALL_FILENAME,
    PREDICTED_VS_ACTUAL_FILENAME,
    RESIDUALS_FILENAME,
    ROC_FILENAME,
    SUMMARY_FILENAME,
    open_run,
)
from tests.conftest import STOPS_AT_EPOCH_2, base_config, problems_of
from tests.report.conftest import png_size

CLASSIFIER_PLOTS = {
    LEARNING_CURVES_FILENAME,
    CONFUSION_MATRIX_FILENAME,
    ROC_FILENAME,
    PRECISION_RECALL_FILENAME,
}
REGRESSOR_PLOTS = {LEARNING_CURVES_FILENAME, PREDICTED_VS_ACTUAL_FILENAME, RESIDUALS_FILENAME}


def plots_in(run) -> set[str]:
    return {path.name for path in run.iterdir() if path.name in PLOT_FILENAMES}


def assert_sensible_pngs(run, names: set[str]) -> None:
    """Each plot a whole PNG of a size readable at 100 % (not a stamp, not a poster), listed in
    the manifest; ``open_run`` checks every sha256."""
    manifest = json.loads((run / MANIFEST_FILENAME).read_text())
    for name in names:
        width, height = png_size(run / name)
        assert 380 <= width <= 2000 and 380 <= height <= 1400, (name, width, height)
        assert (run / name).stat().st_size > 10_000, name  # drawn, not an empty canvas
        assert name in manifest["files"], name
    open_run(run)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("fixture", "expected"),
    [
        ("tiny_run", CLASSIFIER_PLOTS),
        ("binary_run", CLASSIFIER_PLOTS),
        ("cars_run", REGRESSOR_PLOTS),
    ],
    ids=["classification", "binary", "regression"],
)
def test_a_run_holds_its_plots_as_valid_pngs_listed_in_the_manifest(request, fixture, expected):
    run = request.getfixturevalue(fixture)
    assert plots_in(run) == expected
    assert_sensible_pngs(run, expected)


@pytest.mark.slow
def test_fit_plots_false_writes_no_plot(tmp_path, tiny_csv, write_config):
    from cnncli.config.models import load_config
    from cnncli.train.run import train_run

    config = base_config(tiny_csv)
    config["fit"]["plots"] = False
    run = train_run(load_config(write_config(config)), tmp_path / "runs").run_dir
    assert plots_in(run) == set()
    assert (run / SUMMARY_FILENAME).is_file()  # the report's facts are written all the same
    manifest = json.loads((run / MANIFEST_FILENAME).read_text())
    assert not set(manifest["files"]) & set(PLOT_FILENAMES)


def test_fit_plots_must_be_true_or_false(write_config, tiny_csv):
    from cnncli.config.models import load_config
    from cnncli.errors import CnnCliError

    config = base_config(tiny_csv)
    config["fit"]["plots"] = "sometimes"
    with pytest.raises(CnnCliError) as caught:
        load_config(write_config(config))
    [problem] = problems_of(caught)
    assert problem.where.key == "fit.plots"
    assert "sometimes" in problem.one_line()


@pytest.mark.slow
def test_the_learning_curves_mark_the_epoch_early_stopping_restored(tmp_path, tiny_csv):
    """STOPS_AT_EPOCH_2 restores epoch 1: the plot names it and draws a line at x = 1."""
    from cnncli.config.models import load_config
    from cnncli.report.plots import learning_curves_figure
    from cnncli.train.run import train_run

    (tmp_path / "c.yaml").write_text(
        yaml.safe_dump(base_config(tiny_csv, fit={**STOPS_AT_EPOCH_2, "batch_size": 8}))
    )
    result = train_run(load_config(tmp_path / "c.yaml"), tmp_path / "runs")
    assert result.metrics["best_epoch"] == 1
    figure = learning_curves_figure(result.history, result.metrics["best_epoch"])
    for axis in figure.axes:
        legend = [text.get_text() for text in axis.get_legend().get_texts()]
        assert legend == ["training", "validation", "restored: epoch 1"]
        assert [list(line.get_xdata()) for line in axis.lines][-1] == [1, 1]
    assert [axis.get_title() for axis in figure.axes] == ["loss", "accuracy"]  # the loss first
    assert_sensible_pngs(result.run_dir, {LEARNING_CURVES_FILENAME})


def test_without_a_restored_epoch_no_epoch_is_marked():
    from cnncli.report.plots import learning_curves_figure

    history = {"loss": [1.0, 0.5, 0.4], "mae": [2.0, 1.0, 0.9]}
    figure = learning_curves_figure(history, scaled=True)
    assert [axis.get_title() for axis in figure.axes] == [
        "loss (scaled label)",
        "mae (scaled label)",
    ]
    for axis in figure.axes:
        assert [text.get_text() for text in axis.get_legend().get_texts()] == ["training"]
        assert list(axis.lines[0].get_ydata()) in ([1.0, 0.5, 0.4], [2.0, 1.0, 0.9])


@pytest.mark.parametrize("epochs", [1, 2, 7])
def test_the_epoch_axis_shows_whole_epochs_only(epochs):
    # one epoch was drawn on an axis of 0.96, 0.98, 1.00, 1.02, 1.04
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    from cnncli.report.plots import learning_curves_figure

    figure = learning_curves_figure({"loss": [1.0] * epochs, "val_loss": [0.5] * epochs})
    FigureCanvasAgg(figure).draw()
    axis = figure.axes[0]
    low, high = axis.get_xlim()
    shown = [tick for tick in axis.get_xticks() if low <= tick <= high]
    assert shown and all(tick == int(tick) for tick in shown)
    assert 1 in shown and epochs in shown


def test_each_class_keeps_its_colour_and_the_legends_give_sklearns_auc():
    from sklearn.metrics import average_precision_score, roc_auc_score

    from cnncli.report.plots import confusion_matrix_figure, precision_recall_figure, roc_figure

    rng = np.random.default_rng(0)
    classes = ["a", "b", "c", "d"]
    truth = np.repeat(np.arange(4), 10)
    probabilities = rng.dirichlet(np.ones(4), size=40)
    probabilities[np.arange(40), truth] += 0.3 * rng.random(40)
    roc = roc_figure(classes, truth, probabilities).axes[0]
    pr = precision_recall_figure(classes, truth, probabilities).axes[0]
    matrix = confusion_matrix_figure(classes, truth, probabilities.argmax(axis=1)).axes[0]
    for index, name in enumerate(classes):
        auc = roc_auc_score(truth == index, probabilities[:, index])
        precision = average_precision_score(truth == index, probabilities[:, index])
        assert roc.lines[index].get_label() == f"{name} (AUC {auc:.3f})"
        assert pr.lines[index].get_label() == f"{name} (AUC {precision:.3f}; 25% of rows)"
        colour = roc.lines[index].get_color()
        assert pr.lines[index].get_color() == colour
        assert matrix.get_xticklabels()[index].get_color() == colour
        assert matrix.get_yticklabels()[index].get_text() == name


def test_the_confusion_matrix_shows_counts_and_each_true_class_as_fractions():
    from cnncli.report.plots import confusion_matrix_figure

    truth = np.array([0, 0, 0, 1, 1, 2])
    predicted = np.array([0, 0, 1, 1, 1, 0])
    counts, fractions = confusion_matrix_figure(["x", "y", "z"], truth, predicted).axes[:2]
    assert [text.get_text() for text in counts.texts] == [
        "2",
        "1",
        "0",
        "0",
        "2",
        "0",
        "1",
        "0",
        "0",
    ]
    assert [text.get_text() for text in fractions.texts][:3] == ["0.67", "0.33", "0.00"]
    assert counts.get_title() == "counts" and fractions.get_title() == "share of each true class"


def test_a_binary_classifier_draws_one_curve_for_its_positive_class():
    from cnncli.report.plots import roc_figure

    truth = np.array([0, 1, 0, 1, 1, 0])
    positive = np.array([0.1, 0.8, 0.3, 0.6, 0.9, 0.4])
    axis = roc_figure(["no", "yes"], truth, np.stack([1 - positive, positive], axis=1)).axes[0]
    assert [line.get_label() for line in axis.lines] == ["yes (AUC 1.000)", "chance (AUC 0.500)"]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_the_curves_and_their_areas_are_scikit_learns(seed):
    """NumPy's ROC and precision-recall (train imports no scikit-learn), ties in scores included."""
    from sklearn import metrics

    from cnncli.report.plots import precision_recall_curve, roc_curve

    rng = np.random.default_rng(seed)
    actual = rng.random(200) < 0.3
    scores = np.round(rng.random(200) * 0.7 + 0.3 * actual, 1)  # one decimal: many ties
    false_rate, true_rate, area = roc_curve(actual, scores)
    expected = metrics.roc_curve(actual, scores, drop_intermediate=False)
    assert np.allclose(false_rate, expected[0]) and np.allclose(true_rate, expected[1])
    assert area == pytest.approx(metrics.roc_auc_score(actual, scores), abs=1e-12)
    recall, precision, average = precision_recall_curve(actual, scores)
    sk_precision, sk_recall, _ = metrics.precision_recall_curve(actual, scores)
    assert np.allclose(recall, sk_recall[::-1]) and np.allclose(precision, sk_precision[::-1])
    assert average == pytest.approx(metrics.average_precision_score(actual, scores), abs=1e-12)


def test_values_that_are_not_finite_are_gaps_in_the_learning_curves():
    """A hand-edited or diverged history (inf, nan) draws with gaps, without warnings."""
    from cnncli.report.plots import learning_curves_figure, png_bytes

    figure = learning_curves_figure({"loss": [1.0, float("inf"), float("nan"), 0.5]})
    drawn = figure.axes[0].lines[0].get_ydata()
    assert drawn[0] == 1.0 and drawn[3] == 0.5 and np.isnan(drawn[1:3]).all()
    assert png_bytes(figure)[:8] == b"\x89PNG\r\n\x1a\n"
