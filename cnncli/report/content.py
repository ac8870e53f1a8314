"""What ``cnncli report`` shows of a run, gathered once for the terminal and the HTML file.

A complete run is read through ``runs.open_run`` (every file checked against its sha256) and
its own files: ``metrics.json``, ``summary.json``, ``history.csv`` and the plots. An
interrupted run has only its checkpoint's ``state.json`` (read and checked by the caller, which
may import ``train``): its history, drawn into learning curves now, and its config.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cnncli.data.untrusted import Field, count, mapping, number, read_json
from cnncli.runs import (
    CONFIG_FILENAME,
    CONFUSION_MATRIX_FILENAME,
    HISTORY_FILENAME,
    LEARNING_CURVES_FILENAME,
    MANIFEST_FILENAME,
    METRICS_FILENAME,
    MODEL_FILENAME,
    ONNX_FILENAME,
    PLOT_FILENAMES,
    PRECISION_RECALL_FILENAME,
    PREDICTED_VS_ACTUAL_FILENAME,
    PREPROCESS_FILENAME,
    RESIDUALS_FILENAME,
    ROC_FILENAME,
    SPLIT_FILENAME,
    SUMMARY_FILENAME,
    RunFolder,
)

#: What each file of a run holds, for the report's list of files.
FILE_ROLES = {
    CONFIG_FILENAME: "the resolved config (every default filled in)",
    PREPROCESS_FILENAME: "means, scales, categories and classes",
    MODEL_FILENAME: "the Keras model",
    ONNX_FILENAME: "the model for ONNX Runtime (predict's default engine)",
    METRICS_FILENAME: "test and validation scores, the baseline's",
    HISTORY_FILENAME: "loss and metrics per epoch",
    SPLIT_FILENAME: "which rows were test and validation rows",
    SUMMARY_FILENAME: "data, layers and per-class scores",
    MANIFEST_FILENAME: "versions, seed, data fingerprint and every file's sha256",
}
#: What each plot shows, in the report's list of files and under each plot of the HTML page.
PLOT_CAPTIONS = {
    LEARNING_CURVES_FILENAME: "learning curves: loss and metrics per epoch",
    CONFUSION_MATRIX_FILENAME: "confusion matrix of the test rows",
    ROC_FILENAME: "ROC curve of each class, test rows",
    PRECISION_RECALL_FILENAME: "precision-recall curve of each class, test rows",
    PREDICTED_VS_ACTUAL_FILENAME: "predicted against actual values, test rows",
    RESIDUALS_FILENAME: "residuals of the test rows",
}
#: The parts of ``metrics.json`` that are rows of scores, in the order a table shows them.
SCORED_PARTS = ("test", "validation")
#: An interrupted run's only row of scores: Keras' values at its last completed epoch.
LAST_EPOCH = "last epoch"


@dataclass
class RunReport:
    """A run as the report shows it.

    Attributes:
        path: the run folder.
        name: the config's name.
        complete: False for an interrupted run (a staging folder with a checkpoint).
        status: one line: complete, or interrupted after which epoch and how to resume.
        facts: (what, value) lines about the run: created, task, backend, versions, seed.
        config_lines: the config in a few (what, value) lines.
        data_lines: the data in (what, value) lines: rows, features, classes, missing cells.
        classes: (class, training rows) of a classifier: the class balance.
        layers: the layer table rows (name, type, output_shape, params); empty when unknown.
        input_shape: the model's input shape, for the layer table.
        metrics: ``metrics.json`` (empty for an interrupted run).
        per_class: precision, recall, F1 and support of each class on the test rows.
        confusion: the test rows' confusion matrix (rows true, columns predicted).
        plots: file name → PNG bytes, in ``PLOT_FILENAMES`` order.
        files: (file, what it holds, size in bytes) of every file of the run.
        config: the resolved config, as plain data.
        notes: what the report could not show, and why.
    """

    path: Path
    name: str
    complete: bool
    status: str
    facts: list[tuple[str, str]] = field(default_factory=list)
    config_lines: list[tuple[str, str]] = field(default_factory=list)
    data_lines: list[tuple[str, str]] = field(default_factory=list)
    classes: list[tuple[str, int]] = field(default_factory=list)
    layers: list[dict[str, Any]] = field(default_factory=list)
    input_shape: tuple[int, ...] = ()
    metrics: dict[str, Any] = field(default_factory=dict)
    per_class: list[dict[str, Any]] = field(default_factory=list)
    confusion: list[list[int]] = field(default_factory=list)
    plots: dict[str, bytes] = field(default_factory=dict)
    files: list[tuple[str, str, int]] = field(default_factory=list)
    config: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        """The report as plain data for ``report --json``: plots by file name, not their bytes."""
        return {
            "run": str(self.path),
            "name": self.name,
            "complete": self.complete,
            "status": self.status,
            "facts": dict(self.facts),
            "config_summary": dict(self.config_lines),
            "data": dict(self.data_lines),
            "class_balance": dict(self.classes),
            "layers": self.layers,
            "input_shape": list(self.input_shape),
            "metrics": self.metrics,
            "per_class": self.per_class,
            "confusion_matrix": self.confusion,
            "plots": sorted(self.plots),
            "files": [{"file": f, "holds": what, "bytes": size} for f, what, size in self.files],
            "config": self.config,
            "notes": self.notes,
        }


def report_run(run: RunFolder) -> RunReport:
    """The report of a complete run (opened, and so checked, by ``runs.open_run``)."""
    from cnncli.report.summary import read_summary

    manifest = run.manifest
    report = RunReport(
        path=run.path,
        name=str(run.config.get("name", run.path.name)),
        complete=True,
        status="complete",
        config=run.config,
    )
    split = run.split or {}
    streamed = split.get("method") == "hash"
    report.facts = _present(
        ("created", manifest.get("created")),
        ("task", manifest.get("task")),
        ("backend", _backend_words(manifest)),
        ("training", "streamed in chunks (hash split)" if streamed else "in memory"),
        ("seed", manifest.get("seed")),
        ("cnncli", manifest.get("cnncli")),
        ("predict engine", "ONNX Runtime" if run.onnx_ok else "Keras (no checked model.onnx)"),
    )
    report.config_lines = config_lines(run.config)
    report.metrics = _read_metrics(run.file(METRICS_FILENAME))
    if run.has(SUMMARY_FILENAME):
        summary = read_summary(run.file(SUMMARY_FILENAME))
        data = summary["data"]
        report.data_lines = _data_lines(data, split)
        report.classes = [(str(row["class"]), row["train_rows"]) for row in data["classes"] or []]
        report.layers = summary["layers"]
        report.input_shape = tuple(data["input_shape"])
        report.per_class = summary["per_class"]
        report.confusion = summary["confusion"]
    else:
        report.notes.append(
            f"this run has no {SUMMARY_FILENAME} (an older cnncli wrote none): no data summary,"
            " layer table or per-class scores; evaluate gives the scores"
        )
        report.data_lines = _present(("rows", split.get("rows")))
    report.plots = {name: run.file(name).read_bytes() for name in PLOT_FILENAMES if run.has(name)}
    if not report.plots:
        report.notes.append("no plots: the run was trained with fit.plots: false")
    report.files = [
        (
            name,
            FILE_ROLES.get(name) or PLOT_CAPTIONS.get(name, "written by a callback"),
            run.file(name).stat().st_size,
        )
        for name in [*sorted(manifest["files"]), MANIFEST_FILENAME]
    ]
    return report


def report_interrupted(path: Path, state: dict[str, Any]) -> RunReport:
    """The report of an interrupted run from its checkpoint's ``state.json`` (already checked).

    Args:
        path: the staging folder.
        state: the checkpoint's state: name, epoch, history, config, seed.
    """
    from cnncli.report.plots import learning_curves_figure, png_bytes

    epoch = int(state["epoch"])
    resume = f"cnncli train CONFIG --resume {shlex.quote(str(path))}"
    ended = "fit had ended; only saving was left" if state.get("done") else "not finished"
    report = RunReport(
        path=path,
        name=str(state["name"]),
        complete=False,
        status=f"interrupted after epoch {epoch} ({ended}); resume with: {resume}",
        config=dict(state["config"]),
    )
    report.facts = _present(
        ("checkpoint written", state.get("written")),
        ("task", state["config"].get("task")),
        ("backend", state["config"].get("backend")),
        ("seed", state.get("seed")),
        ("epochs done", epoch),
        ("publishes as", state.get("final_name")),
    )
    report.config_lines = config_lines(report.config)
    history = {
        name: [float(value) for value in values] for name, values in state["history"].items()
    }
    report.metrics = {LAST_EPOCH: {name: values[-1] for name, values in history.items() if values}}
    data = state.get("data", {}).get("data") or {}
    report.data_lines = _present(("data file", data.get("path")), ("bytes", data.get("bytes")))
    if epoch:
        report.plots = {LEARNING_CURVES_FILENAME: png_bytes(learning_curves_figure(history))}
    report.notes.append(
        "an interrupted run has no test scores, layer table or per-class scores yet;"
        " they are written when it completes"
    )
    return report


def config_lines(config: dict[str, Any]) -> list[tuple[str, str]]:
    """The config in a few lines: layers, compile, fit, preprocessing, split."""
    model = _section(config, "model")
    compile_ = _section(config, "compile")
    fit = _section(config, "fit")
    layers = model.get("layers") if isinstance(model.get("layers"), list) else []
    # a layer is a name (``Flatten``) or ``{type: Dense, ...}``
    types = [str(layer.get("type") if isinstance(layer, dict) else layer) for layer in layers]
    callbacks = fit.get("callbacks") if isinstance(fit.get("callbacks"), list) else []
    return _present(
        ("name", config.get("name")),
        ("layers", f"{len(types)}: " + " → ".join(types) if types else None),
        ("input shape", model.get("input_shape")),
        ("optimizer", _named(compile_.get("optimizer"))),
        ("loss", _named(compile_.get("loss"))),
        ("metrics", ", ".join(map(str, map(_named, compile_.get("metrics") or []))) or None),
        ("epochs", fit.get("epochs")),
        ("batch size", fit.get("batch_size")),
        ("validation split", fit.get("validation_split")),
        ("callbacks", ", ".join(str(_named(item)) for item in callbacks) or None),
        ("preprocess", _flat(_section(config, "preprocess"))),
        ("split", _flat(_section(config, "split"))),
    )


def metric_rows(metrics: dict[str, Any]) -> dict[str, dict[str, float]]:
    """The rows of a metrics table: each scored part, then the baseline's on the same parts."""
    rows = {part: metrics[part] for part in (*SCORED_PARTS, LAST_EPOCH) if part in metrics}
    baseline = metrics.get("baseline") or {}
    rows.update({f"baseline ({part})": baseline[part] for part in list(rows) if part in baseline})
    return rows


def metrics_caption(baseline: dict[str, Any] | None, scale: dict[str, str] | None) -> str:
    """What a metrics table's caption says: what the baseline predicts, and which scores are
    on the standardised label rather than in the label's units."""
    words = []
    if baseline and "method" in baseline and "predicts" in baseline:
        predicts = baseline["predicts"]
        shown = format_score(predicts) if isinstance(predicts, float) else str(predicts)
        words.append(f"baseline: always predict the {baseline['method']} ({shown})")
    if scale:  # the model learned a standardised label: its loss is on that scale
        words.append(
            "(scaled): on the standardised label the model learned; the rest in label units"
        )
    return "; ".join(words)


def stopping_words(metrics: dict[str, Any]) -> str | None:
    """The epochs EarlyStopping stopped at and restored, in one line; None when it did neither."""
    epochs = [
        f"{words} epoch {metrics[key]}"
        for key, words in (("stopped_epoch", "stopped early after"), ("best_epoch", "weights of"))
        if key in metrics
    ]
    return "EarlyStopping: " + "; ".join(epochs) if epochs else None


def format_score(value: float) -> str:
    """A score as every table shows it: four decimals, or four digits when large."""
    return f"{value:.4f}" if abs(value) < 1e4 else f"{value:.4g}"


def _read_metrics(path: Path) -> dict[str, Any]:
    """``metrics.json``: each scored part (the baseline's too) a mapping of finite numbers."""
    top = Field(str(path))
    metrics = mapping(read_json(path), top)
    baseline = mapping(metrics.get("baseline", {}), top.at("baseline"))
    for scores, where in (
        *((metrics[part], top.at(part)) for part in SCORED_PARTS if part in metrics),
        *(
            (baseline[part], top.at("baseline").at(part))
            for part in SCORED_PARTS
            if part in baseline
        ),
        (metrics.get("scale", {}), top.at("scale")),
    ):
        for name, value in mapping(scores, where).items():
            if where.key != "scale":
                number(value, where.at(name))
    for key in ("stopped_epoch", "best_epoch"):
        if key in metrics:
            count(metrics[key], top.at(key))
    return metrics


def _data_lines(data: dict[str, Any], split: dict[str, Any]) -> list[tuple[str, str]]:
    rows = data["rows"]
    parts = ", ".join(f"{part} {count:,}" for part, count in rows.items())
    features = data["features"]
    shown = ", ".join(features[:12]) + (
        f", … ({len(features) - 12} more)" if len(features) > 12 else ""
    )
    filled = data["filled"]
    missing = data["missing"] + (f" (column mean filled in: {', '.join(filled)})" if filled else "")
    return _present(
        ("data file", data["path"]),
        ("test file", data["test_path"]),
        ("rows", f"{sum(rows.values()):,} ({parts})"),
        ("split", split.get("method")),
        ("features", f"{len(features)}: {shown}"),
        ("model input", "×".join(map(str, data["input_shape"]))),
        ("label", data["label"] or None),
        ("classes", len(data["classes"]) if data["classes"] is not None else None),
        ("missing cells", missing),
        *(("note", note) for note in data["notes"]),
    )


def _backend_words(manifest: dict[str, Any]) -> str | None:
    backend = manifest.get("backend")
    if backend is None:
        return None
    versions = [f"Keras {manifest['keras']}"] if manifest.get("keras") else []
    engine = manifest.get("jax") if backend == "jax" else manifest.get("tensorflow")
    if engine:
        versions.append(f"{'JAX' if backend == 'jax' else 'TensorFlow'} {engine}")
    return f"{backend} ({', '.join(versions)})" if versions else str(backend)


def _section(config: dict[str, Any], name: str) -> dict[str, Any]:
    value = config.get(name)
    return value if isinstance(value, dict) else {}


def _named(value: Any) -> str | None:
    """A name or ``{type: Name, ...}`` as the config wrote it, in a few words; None for none."""
    if value is None:
        return None
    if isinstance(value, dict):
        arguments = ", ".join(f"{key}={item}" for key, item in value.items() if key != "type")
        return f"{value.get('type')}({arguments})"
    return str(value)


def _flat(section: dict[str, Any]) -> str | None:
    return ", ".join(f"{key}: {value}" for key, value in section.items()) or None


def _present(*pairs: tuple[str, Any]) -> list[tuple[str, str]]:
    """The (what, value) pairs that have a value, the value as text."""
    return [(what, str(value)) for what, value in pairs if value is not None and value != ""]
