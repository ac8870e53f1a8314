"""The plots of a run, drawn as PNG bytes with matplotlib's Agg renderer (no display needed).

``train`` draws them from what it already computed (the history, the test rows' outputs), and
``report`` draws the learning curves of an interrupted run the same way. matplotlib is imported
here only, inside the functions, so no other command pays for it. Each class keeps one colour
in every plot (its position in ``tab10``), so a class is found at a glance across them.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from typing import Any

import numpy as np

from cnncli.data.preprocess import LabelTransform
from cnncli.runs import (
    CONFUSION_MATRIX_FILENAME,
    LEARNING_CURVES_FILENAME,
    PRECISION_RECALL_FILENAME,
    PREDICTED_VS_ACTUAL_FILENAME,
    RESIDUALS_FILENAME,
    ROC_FILENAME,
)
from cnncli.runtime import keep_matplotlib_out_of_home
from cnncli.serve.predictor import decode

#: Inches at ``DPI`` dots per inch: 800 × 450 pixels per panel row, readable at 100 % zoom.
PANEL_SIZE = (4.0, 4.5)
DPI = 100
MARGIN_RIGHT = 0.25  # inches
CHARACTER_WIDTH = 0.085  # inches of a tick label's character, at matplotlib's default 10 pt
#: Colours by class position; after ten classes they repeat (a matplotlib qualitative map).
CLASS_COLOURS = "tab10"
TRAINING_COLOUR, VALIDATION_COLOUR = "#1f77b4", "#ff7f0e"
#: Most points drawn in a scatter plot: more hide each other and only slow the PNG down.
MAX_POINTS = 5000


def run_plots(
    history: dict[str, list[float]],
    label: LabelTransform,
    outputs: np.ndarray,
    truth: np.ndarray,
    best_epoch: int | None = None,
) -> dict[str, bytes]:
    """Every plot of a finished run: file name → PNG bytes.

    Args:
        history: Keras' per-epoch values (``loss``, ``val_loss``, each metric).
        label: the run's label encoding (classes, or the label's name and scale).
        outputs: the model's outputs for the test rows.
        truth: each test row's class index, or its value in the label's units.
        best_epoch: the 1-based epoch whose weights a callback restored, if one did.
    """
    scaled = label.kind == "standard"
    figures = {LEARNING_CURVES_FILENAME: learning_curves_figure(history, best_epoch, scaled=scaled)}
    predicted, probabilities = decode(label, outputs)
    if label.is_classification:
        classes = [str(name) for name in label.classes]
        truth = np.asarray(truth, dtype=np.int64)
        assert probabilities is not None
        figures[CONFUSION_MATRIX_FILENAME] = confusion_matrix_figure(classes, truth, predicted)
        figures[ROC_FILENAME] = roc_figure(classes, truth, probabilities)
        figures[PRECISION_RECALL_FILENAME] = precision_recall_figure(classes, truth, probabilities)
    else:
        name = label.name or "label"
        truth = np.asarray(truth, dtype=np.float64)
        figures[PREDICTED_VS_ACTUAL_FILENAME] = predicted_vs_actual_figure(name, truth, predicted)
        figures[RESIDUALS_FILENAME] = residuals_figure(name, truth, predicted)
    return {name: png_bytes(figure) for name, figure in figures.items()}


def learning_curves_figure(
    history: dict[str, list[float]], best_epoch: int | None = None, *, scaled: bool = False
) -> Any:
    """Loss and each metric per epoch, training beside validation, one panel each.

    Args:
        history: Keras' per-epoch values; ``val_<name>`` is drawn in ``<name>``'s panel.
        best_epoch: marked with a dashed line and named in the legend.
        scaled: the values are on the standardised label the model learned (a regressor).
    """
    names = [name for name in history if not name.startswith("val_")] or list(history)
    names.sort(key=lambda name: name != "loss")  # the loss first, the metrics in Keras' order
    figure = _figure(len(names))
    axes = figure.subplots(1, len(names), squeeze=False)[0]
    for axis, name in zip(axes, names, strict=True):
        for key, words, colour in (
            (name, "training", TRAINING_COLOUR),
            (f"val_{name}", "validation", VALIDATION_COLOUR),
        ):
            values = history.get(key)
            if values:
                epochs = np.arange(1, len(values) + 1)
                shown = np.asarray(values, dtype=np.float64)
                shown[~np.isfinite(shown)] = np.nan  # a gap, not an axis stretched to infinity
                axis.plot(epochs, shown, color=colour, marker="." if len(values) < 30 else None)
                axis.lines[-1].set_label(words)
        if best_epoch is not None:
            axis.axvline(
                best_epoch, color="0.4", linestyle="--", label=f"restored: epoch {best_epoch}"
            )
        title = name.replace("_", " ")
        axis.set_title(f"{title} (scaled label)" if scaled else title)
        epoch_axis(axis)
        axis.set_ylabel(f"{title}, standardised label" if scaled else title)
        axis.grid(alpha=0.3)
        labelled_legend(axis)
    figure.suptitle("Learning curves")
    return figure


def epoch_axis(axis: Any) -> None:
    """Label the x axis "epoch" with whole epochs only (one epoch: a tick "1", not 0.96-1.04)."""
    axis.set_xlabel("epoch")
    axis.xaxis.get_major_locator().set_params(integer=True, min_n_ticks=1)


def confusion_matrix_figure(
    classes: Sequence[str], truth: np.ndarray, predicted: np.ndarray
) -> Any:
    """Counts, and the same matrix with each true class's row as fractions, side by side."""
    size = len(classes)
    counts = np.zeros((size, size), dtype=np.int64)
    np.add.at(counts, (truth, predicted), 1)
    totals = counts.sum(axis=1, keepdims=True)
    fractions = np.divide(counts, totals, out=np.zeros(counts.shape), where=totals > 0)
    longest = max(map(len, classes), default=1)
    cells = max(2.8, 0.5 * size)  # inches of matrix, square cells
    label_room = min(2.5, CHARACTER_WIDTH * longest)  # inches of tick label
    rotated = label_room > 0.9 * cells / size  # names wider than a cell go aslant
    figure = _figure(
        2,
        panel=(cells / 0.9, cells),  # the colour bar takes a tenth of each panel
        left=0.55 + label_room,
        bottom=0.6 + (label_room * 0.75 if rotated else 0.2),
        top=0.75,
        between=1.0 + label_room,  # the colour bar's numbers and the next tick labels
    )
    for axis, values, title, text in zip(
        figure.subplots(1, 2),
        (counts, fractions),
        ("counts", "share of each true class"),
        ("{:d}", "{:.2f}"),
        strict=True,
    ):
        image = axis.imshow(values, cmap="Blues", vmin=0, vmax=max(values.max(), 1e-9))
        figure.colorbar(image, ax=axis, fraction=0.07, pad=0.03)
        if size <= 20:  # more cells than that leave no room for a readable number
            cut = values.max() / 2
            for (row, column), value in np.ndenumerate(values):
                axis.text(
                    column,
                    row,
                    text.format(value),
                    ha="center",
                    va="center",
                    fontsize="small",
                    color="white" if value > cut else "black",
                )
        ticks = np.arange(size)
        axis.set_xticks(
            ticks, classes, rotation=45 if rotated else 0, ha="right" if rotated else "center"
        )
        axis.set_yticks(ticks, classes)
        for ticks_of in (axis.get_xticklabels, axis.get_yticklabels):
            for index, tick in enumerate(ticks_of()):
                tick.set_color(_class_colour(index))
        axis.set_xlabel("predicted class")
        axis.set_ylabel("true class")
        axis.set_title(title)
    figure.suptitle(f"Confusion matrix, test rows ({int(counts.sum())})")
    return figure


def roc_figure(classes: Sequence[str], truth: np.ndarray, probabilities: np.ndarray) -> Any:
    """One ROC curve per class (that class against the rest), its AUC in the legend."""
    figure = _figure(1, scale=1.3, top=0.45)
    axis = figure.subplots()
    for index in _plotted_classes(classes, truth):
        false_rate, true_rate, area = roc_curve(truth == index, probabilities[:, index])
        axis.plot(
            false_rate,
            true_rate,
            color=_class_colour(index),
            label=f"{classes[index]} (AUC {area:.3f})",
        )
    axis.plot([0, 1], [0, 1], color="0.6", linestyle=":", label="chance (AUC 0.500)")
    axis.set_xlabel("false positive rate")
    axis.set_ylabel("true positive rate")
    axis.set_title("ROC curves, test rows (one class against the rest)")
    _unit_square(axis)
    return figure


def precision_recall_figure(
    classes: Sequence[str], truth: np.ndarray, probabilities: np.ndarray
) -> Any:
    """One precision-recall curve per class, its area (average precision) in the legend."""
    figure = _figure(1, scale=1.3, top=0.7)
    axis = figure.subplots()
    for index in _plotted_classes(classes, truth):
        actual = truth == index
        recall, precision, area = precision_recall_curve(actual, probabilities[:, index])
        axis.step(
            recall,
            precision,
            where="pre",  # each precision holds up to its recall: the area is the average precision
            color=_class_colour(index),
            label=f"{classes[index]} (AUC {area:.3f}; {actual.mean():.0%} of rows)",
        )
    axis.set_xlabel("recall")
    axis.set_ylabel("precision")
    axis.set_title("Precision-recall curves, test rows\n(AUC: average precision)")
    _unit_square(axis)
    return figure


def predicted_vs_actual_figure(name: str, truth: np.ndarray, predicted: np.ndarray) -> Any:
    """Each test row's prediction against its true value; a perfect model lies on the diagonal."""
    figure = _figure(1, scale=1.3, top=0.45)
    axis = figure.subplots()
    truth, predicted = _sample(truth, predicted)
    axis.scatter(truth, predicted, s=12, alpha=0.6, color=TRAINING_COLOUR, label="test rows")
    low = float(min(truth.min(), predicted.min()))
    high = float(max(truth.max(), predicted.max()))
    axis.plot([low, high], [low, high], color="0.3", linestyle="--", label="predicted = actual")
    axis.set_xlabel(f"actual {name} (label units)")
    axis.set_ylabel(f"predicted {name} (label units)")
    axis.set_title(f"Predicted against actual {name}, test rows")
    axis.grid(alpha=0.3)
    labelled_legend(axis)
    return figure


def residuals_figure(name: str, truth: np.ndarray, predicted: np.ndarray) -> Any:
    """Residuals (actual − predicted) against the prediction, and their histogram."""
    figure = _figure(2)
    scatter, histogram = figure.subplots(1, 2)
    residuals = truth - predicted
    shown_truth, shown_predicted = _sample(truth, predicted)
    scatter.scatter(
        shown_predicted, shown_truth - shown_predicted, s=12, alpha=0.6, color=TRAINING_COLOUR
    )
    scatter.axhline(0, color="0.3", linestyle="--")
    scatter.set_xlabel(f"predicted {name} (label units)")
    scatter.set_ylabel(f"actual − predicted {name}")
    scatter.set_title("residual against prediction")
    scatter.grid(alpha=0.3)
    histogram.hist(residuals, bins=min(40, max(5, len(residuals) // 5)), color=TRAINING_COLOUR)
    histogram.axvline(0, color="0.3", linestyle="--")
    histogram.set_xlabel(f"actual − predicted {name}")
    histogram.set_ylabel("test rows")
    histogram.yaxis.get_major_locator().set_params(integer=True)
    histogram.set_title(f"residuals (mean {residuals.mean():.3g}, sd {residuals.std():.3g})")
    figure.suptitle(f"Residuals of {name}, test rows ({len(residuals)})")
    return figure


def roc_curve(actual: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    """False and true positive rates at each distinct score as threshold, and the area under
    them: scikit-learn's ``roc_curve`` and ``roc_auc_score`` in NumPy (no scikit-learn import,
    a second or more of a run, for two curves)."""
    hits, misses = _ranked(actual, scores)
    true_rate = np.r_[0, hits] / hits[-1]
    false_rate = np.r_[0, misses] / misses[-1]
    area = float(np.sum(np.diff(false_rate) * (true_rate[1:] + true_rate[:-1]) / 2))
    return false_rate, true_rate, area


def precision_recall_curve(
    actual: np.ndarray, scores: np.ndarray
) -> tuple[np.ndarray, np.ndarray, float]:
    """Recall and precision at each distinct score as threshold, from (0, 1) down to the lowest
    score, and the average precision: scikit-learn's ``precision_recall_curve`` and
    ``average_precision_score`` in NumPy."""
    hits, misses = _ranked(actual, scores)
    recall = np.r_[0, hits / hits[-1]]
    precision = np.r_[1, hits / (hits + misses)]
    return recall, precision, float(np.sum(np.diff(recall) * precision[1:]))


def _ranked(actual: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Positives and negatives scored at or above each distinct score, highest score first."""
    order = np.argsort(-np.asarray(scores, dtype=np.float64), kind="mergesort")
    ranked, actual = np.asarray(scores)[order], np.asarray(actual, dtype=bool)[order]
    last = np.r_[np.flatnonzero(np.diff(ranked)), len(ranked) - 1]  # each score's last row
    hits = np.cumsum(actual)[last].astype(np.float64)
    return hits, (last + 1) - hits


def _plotted_classes(classes: Sequence[str], truth: np.ndarray) -> list[int]:
    """The classes a curve is drawn for: each one present among the test rows (a curve needs
    both positives and negatives); of two classes only the second, the other is its mirror."""
    present = [index for index in range(len(classes)) if 0 < np.sum(truth == index) < len(truth)]
    return present[1:] if len(classes) == 2 and len(present) == 2 else present


def _unit_square(axis: Any) -> None:
    axis.set_xlim(-0.02, 1.02)
    axis.set_ylim(-0.02, 1.02)
    axis.set_aspect("equal")
    axis.grid(alpha=0.3)
    labelled_legend(axis, loc="lower right" if axis.get_xlabel() != "recall" else "best")


def _sample(truth: np.ndarray, predicted: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """At most ``MAX_POINTS`` rows, the same ones every time (evenly spaced)."""
    if len(truth) <= MAX_POINTS:
        return truth, predicted
    rows = np.linspace(0, len(truth) - 1, MAX_POINTS).astype(np.int64)
    return truth[rows], predicted[rows]


def _class_colour(index: int) -> Any:
    from matplotlib import colormaps

    return colormaps[CLASS_COLOURS](index % 10)


def _figure(
    panels: int,
    scale: float = 1.0,
    *,
    panel: tuple[float, float] | None = None,
    left: float = 0.8,
    bottom: float = 0.65,
    top: float = 0.85,
    between: float = 0.85,
) -> Any:
    """A figure of ``panels`` side by side, drawn by Agg alone (no pyplot, no window).

    Margins are fixed, in inches, rather than fitted by a layout engine, which took half of
    each plot's drawing time; ``left`` and ``bottom`` make room for long tick labels.
    """
    keep_matplotlib_out_of_home()
    from matplotlib.figure import Figure

    if panel is None:  # the whole panel, margins included
        width, height = PANEL_SIZE[0] * panels * scale, PANEL_SIZE[1] * scale
        inner = (width - left - MARGIN_RIGHT - between * (panels - 1)) / panels
    else:  # the plotting area of each panel; the margins come on top
        inner = panel[0]
        width = left + inner * panels + between * (panels - 1) + MARGIN_RIGHT
        height = top + panel[1] + bottom
    figure = Figure(figsize=(width, height), dpi=DPI)
    figure.subplots_adjust(
        left=left / width,
        right=1 - MARGIN_RIGHT / width,
        bottom=bottom / height,
        top=1 - top / height,
        wspace=between / inner,
    )
    return figure


def png_bytes(figure: Any) -> bytes:
    """A figure as a PNG file's bytes (without a timestamp, so the same plot is the same file)."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", metadata={"Software": None})
    return buffer.getvalue()


def labelled_legend(axis: Any, **where: Any) -> None:
    """A legend of the labelled lines; none where nothing was drawn (no class of the test rows
    had both positives and negatives, say), which matplotlib would warn about."""
    if axis.get_legend_handles_labels()[0]:
        axis.legend(fontsize="small", **where)
