"""Complete runs side by side (``cnncli compare``): the config keys that differ, the test
metrics, and the learning curves overlaid in one PNG.

Run files are read through ``runs`` (``open_run`` checks the manifest, every checksum and field);
matplotlib, with its headless Agg backend, is imported only to draw the plot.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cnncli.config.overrides import flatten_config
from cnncli.errors import CnnCliError, Location
from cnncli.report.plots import labelled_legend
from cnncli.runs import (
    HISTORY_FILENAME,
    METRICS_FILENAME,
    new_file_target,
    open_run,
    read_history,
    read_metrics,
    unwritable,
    write_atomic,
)

#: Whatever a config leaves out is this in the table, so a key only one run sets still shows.
ABSENT = "(not set)"
DEFAULT_PLOT = Path("compare.png")


@dataclass(frozen=True)
class Comparison:
    """Runs side by side."""

    names: list[str]
    paths: list[Path]
    #: config key (a ``--set`` path) → each run's value, only where they differ
    differences: dict[str, list[Any]]
    #: test metric → each run's value (None where a run lacks it)
    metrics: dict[str, list[float | None]]
    histories: list[dict[str, list[float]]]

    def to_json(self) -> dict[str, Any]:
        return {
            "runs": [
                {"name": name, "path": str(path)}
                for name, path in zip(self.names, self.paths, strict=True)
            ],
            "differences": self.differences,
            "metrics": self.metrics,
        }


def compare_runs(paths: list[Path]) -> Comparison:
    """Read each run and set their configs and test metrics side by side.

    Raises:
        CnnCliError: fewer than two runs, the same run twice, or a run that is not complete.
    """
    if len(paths) < 2:
        raise CnnCliError(
            "compare needs two runs or more",
            where=Location(file="cnncli compare"),
            hint="e.g. cnncli compare runs/seed-20261201-101500 runs/seed-20261201-103000",
        )
    resolved = [path.resolve() for path in paths]
    for index, path in enumerate(resolved):
        if path in resolved[:index]:
            raise CnnCliError(
                "the same run is named twice",
                where=Location(file=str(paths[index])),
                hint="name each run once",
            )
    runs = [open_run(path) for path in resolved]
    configs = [flatten_config(run.config) for run in runs]
    keys = list(dict.fromkeys(key for config in configs for key in config))
    differences = {}
    for key in keys:
        values = [config.get(key, ABSENT) for config in configs]
        if len({repr(value) for value in values}) > 1:
            differences[key] = values
    tests = [
        read_metrics(run.file(METRICS_FILENAME)).get("test", {})
        if run.has(METRICS_FILENAME)
        else {}
        for run in runs
    ]
    names = sorted({name for scores in tests for name in scores})
    metrics = {name: [scores.get(name) for scores in tests] for name in names}
    histories = [
        read_history(run.file(HISTORY_FILENAME)) if run.has(HISTORY_FILENAME) else {}
        for run in runs
    ]
    return Comparison([path.name for path in resolved], resolved, differences, metrics, histories)


def write_curves(comparison: Comparison, output: Path) -> Path:
    """The runs' learning curves overlaid in one PNG: the loss, and each metric every run
    logged, training solid and validation dashed, one colour per run.

    Returns:
        The file written (a symbolic link's target).

    Raises:
        CnnCliError: ``output`` is not a regular file or its folder cannot be written.
    """
    target = new_file_target(output, replace=True, option="--plot")
    import matplotlib

    from cnncli.report.plots import epoch_axis

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    shared = set.intersection(*(set(history) for history in comparison.histories))
    panels = sorted(
        (name for name in shared if not name.startswith("val_")),
        key=lambda name: (name != "loss", name),  # the loss first
    ) or ["loss"]
    figure = Figure(figsize=(6 * len(panels), 4.5), layout="constrained")
    axes = figure.subplots(1, len(panels), squeeze=False)[0]
    colours = matplotlib.colormaps["tab10"]
    for ax, metric in zip(axes, panels, strict=True):
        for index, (name, history) in enumerate(
            zip(comparison.names, comparison.histories, strict=True)
        ):
            colour = colours(index % 10)
            for key, style, part in ((metric, "-", "training"), (f"val_{metric}", "--", "val.")):
                if key in history:
                    epochs = range(1, len(history[key]) + 1)
                    ax.plot(epochs, history[key], style, color=colour, label=f"{name} ({part})")
        ax.set_title(f"{metric} per epoch")
        epoch_axis(ax)
        ax.set_ylabel(metric)
        ax.grid(alpha=0.3)
        labelled_legend(ax)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100)
    try:
        write_atomic(target, buffer.getvalue())
    except OSError as exc:
        raise unwritable("the plot", target.parent, exc, "choose another --plot") from exc
    return target
