"""What a person sees: rich tables and progress on stderr, results on stdout.

Only this module and ``cli`` import rich or click. Progress and errors go to stderr so that
``cnncli predict ... > preds.csv`` and ``--json`` output stay clean.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from cnncli.errors import escape_controls

if TYPE_CHECKING:
    from rich.console import Console


#: The width of a console that is not a terminal (a file, a pipe, a CI log): no table is ever cut
#: to fit, whatever ``COLUMNS`` says (issue 11: ``COLUMNS=20`` cut every cell written to a file).
UNBOUNDED_WIDTH = 100_000
#: The narrowest a terminal is taken to be: at ``COLUMNS=5`` rich drew every table with empty
#: cells; wider than the screen, the terminal wraps the lines, and every value is still there.
MIN_TERMINAL_WIDTH = 40


class _LazyConsole:
    """A rich ``Console`` made on first use: importing rich is a quarter of a cold
    ``cnncli predict --input``, which prints its result without it."""

    def __init__(self, **options: Any) -> None:
        self._options = options
        self._console: Console | None = None

    @property
    def console(self) -> Console:
        if self._console is None:
            from rich.console import Console

            console = Console(**self._options)
            if not console.is_terminal:
                console.width = UNBOUNDED_WIDTH
            elif console.width < MIN_TERMINAL_WIDTH:
                console.width = MIN_TERMINAL_WIDTH
            self._console = console
        return self._console

    def print(self, *objects: Any, **options: Any) -> None:
        """``Console.print``, with every table's cells folded onto more lines in a narrow terminal
        rather than cut to '…': a value is never shown wrong, only taller."""
        from rich.table import Table

        for item in objects:
            if isinstance(item, Table):
                for column in item.columns:
                    column.overflow = "fold"
        self.console.print(*objects, **options)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.console, name)


stdout = _LazyConsole(soft_wrap=True)
stderr = _LazyConsole(stderr=True, soft_wrap=True)

#: ``cnncli --quiet``: no progress and no notes on stderr; results, warnings and errors stay.
_QUIET = {"on": False}


def set_quiet(quiet: bool) -> None:
    _QUIET["on"] = quiet


def plain_output(console: Any) -> bool:
    """Plain lines instead of a redrawn bar: not a terminal, or ``NO_COLOR`` set (no-color.org:
    any non-empty value), or ``TERM=dumb``."""
    return (
        not console.is_terminal
        or bool(os.environ.get("NO_COLOR"))
        or os.environ.get("TERM") == "dumb"
    )


def escape(text: str) -> str:
    """``text`` shown as written: control characters as escapes (``errors.escape_controls``), then
    rich's markup escape, imported with rich."""
    from rich.markup import escape as escape_markup

    return escape_markup(escape_controls(text))


def print_json(data: Any) -> None:
    """One JSON document on stdout and nothing else."""
    sys.stdout.write(json.dumps(data, default=_jsonable) + "\n")
    sys.stdout.flush()


def _jsonable(value: Any) -> Any:
    if hasattr(value, "tolist"):
        return value.tolist()
    if hasattr(value, "item"):
        return value.item()
    return str(value)


def note(text: str) -> None:
    if _QUIET["on"]:
        return
    stderr.print(f"[dim]{escape(text)}[/dim]", highlight=False)


def warning(text: str) -> None:
    stderr.print(f"[yellow]warning:[/yellow] {escape(text)}", highlight=False, markup=True)


_warned: set[str] = set()


def python_warning(
    message: Warning | str,
    category: type[Warning],
    filename: str,
    lineno: int,
    file: Any = None,
    line: str | None = None,
) -> None:
    """``warnings.showwarning`` for cnncli: a library's warning as one ``warning:`` line, once,
    without Python's ``path:line: Category:`` format or the source line (issue 10)."""
    text = " ".join(str(message).split()) or category.__name__
    origin = _library_of(filename)
    if origin not in (None, "cnncli"):
        text = f"{origin}: {text}"
    if text not in _warned:
        _warned.add(text)
        warning(text)


def _library_of(filename: str) -> str | None:
    """The package a warning came from (``keras``, ``sklearn``), from its file's path."""
    parts = filename.replace("\\", "/").split("/")
    for marker in ("site-packages", "dist-packages"):
        if marker in parts and parts.index(marker) + 1 < len(parts):
            return parts[parts.index(marker) + 1].removesuffix(".py")
    return "cnncli" if "cnncli" in parts else None


def _format(value: float) -> str:
    from cnncli.report.content import format_score

    return format_score(value)


class EpochProgress:
    """An epoch bar with loss and metrics, redrawn at most a few times a second; plain lines
    when stderr is not a terminal (a CI log, a file) or ``NO_COLOR`` is set; nothing with
    ``--quiet``."""

    def __init__(self, console: Console | _LazyConsole = stderr, min_interval: float = 0.2) -> None:
        self.console = console.console if isinstance(console, _LazyConsole) else console
        self.min_interval = min_interval
        self._last = 0.0
        self._progress: Any = None
        self._task: Any = None
        #: The newest epoch not shown yet: shown by ``close`` when the fit ends before its last
        #: epoch (EarlyStopping), so the epoch it stopped at is never missing.
        self._unshown: tuple[int, int, dict[str, float]] | None = None

    def __call__(self, epoch: int, epochs: int, logs: dict[str, float]) -> None:
        if _QUIET["on"]:
            return
        if plain_output(self.console):
            self._plain_line(epoch, epochs, logs)
            return
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
        )

        if self._progress is None:
            self._progress = Progress(
                TextColumn("epoch"),
                MofNCompleteColumn(),
                BarColumn(),
                TimeElapsedColumn(),
                TextColumn("{task.fields[logs]}"),
                console=self.console,
                transient=False,
            )
            self._progress.start()
            self._task = self._progress.add_task("train", total=epochs, logs="")
        now = time.monotonic()
        self._unshown = (epoch, epochs, logs)
        if epoch == epochs or now - self._last >= self.min_interval:
            self._bar_update(epoch, logs)
            self._last = now
        if epoch == epochs:
            self.close()

    def _bar_update(self, epoch: int, logs: dict[str, float]) -> None:
        text = "  ".join(f"{name} {_format(value)}" for name, value in logs.items())
        self._progress.update(self._task, completed=epoch, logs=text)
        self._unshown = None

    def _plain_line(
        self, epoch: int, epochs: int, logs: dict[str, float], *, last: bool = False
    ) -> None:
        """In a log file a redrawn bar is noise: one plain line per tenth of the run instead."""
        self._unshown = (epoch, epochs, logs)
        if last or epoch in (1, epochs) or epoch % max(1, epochs // 10) == 0:
            text = "  ".join(f"{name} {_format(value)}" for name, value in logs.items())
            self.console.print(f"epoch {epoch}/{epochs}  {text}", highlight=False, markup=False)
            self._unshown = None

    def close(self) -> None:
        """End the display, first showing the newest epoch if it was not shown yet."""
        unshown, self._unshown = self._unshown, None
        if self._progress is not None:
            if unshown is not None:
                self._bar_update(unshown[0], unshown[2])
            self._progress.stop()
            self._progress = None
        elif unshown is not None:
            self._plain_line(*unshown, last=True)


def metrics_table(metrics: dict[str, Any], title: str = "Results") -> None:
    """Training's scores per split beside the baseline's, on stderr beside the progress (the run
    folder is the result), then the epochs EarlyStopping stopped at and restored, on one line."""
    from cnncli.report.content import metric_rows, stopping_words

    rows = metric_rows(metrics)
    baseline = metrics.get("baseline") or {}
    stderr.print(_metrics_table(rows, title, metrics.get("scale") or {}, baseline))
    if stopped := stopping_words(metrics):
        note(stopped)


def _metrics_table(
    rows: dict[str, dict[str, float]],
    title: str,
    scale: dict[str, str] | None = None,
    baseline: dict[str, Any] | None = None,
) -> Any:
    """Scores by row; a score not in the label's units says so in its header (``loss
    (scaled)``), and the caption says what the baseline predicts."""
    from rich.table import Table

    table = Table(title=title, title_justify="left")
    table.add_column("split")
    names = sorted({name for values in rows.values() for name in values})
    for name in names:
        table.add_column(f"{name} (scaled)" if name in (scale or {}) else name, justify="right")
    for split, values in rows.items():
        table.add_row(split, *(_format(values[name]) if name in values else "" for name in names))
    from cnncli.report.content import metrics_caption

    table.caption = metrics_caption(baseline, scale) or None
    return table


def layers_table(rows: list[dict[str, Any]], input_shape: tuple[int, ...], title: str) -> None:
    from rich.table import Table

    graph = any("inputs" in row for row in rows)  # a graph's rows name what each layer takes
    table = Table(title=title, title_justify="left")
    for column, justify in (
        ("#", "right"),
        ("layer", "left"),
        ("type", "left"),
        *((("inputs", "left"),) if graph else ()),
        ("output shape", "left"),
        ("params", "right"),
    ):
        table.add_column(column, justify=justify)  # type: ignore[arg-type]
    shape = "(batch, " + ", ".join(map(str, input_shape)) + ")"
    table.add_row("", "input", "Input", *(("",) if graph else ()), shape, "0")
    for index, row in enumerate(rows):
        inputs = (escape(", ".join(row.get("inputs", ()))),) if graph else ()
        table.add_row(
            str(index),
            escape(row["name"]),
            row["type"],
            *inputs,
            row["output_shape"],
            f"{row['params']:,}",
        )
    total = sum(row["params"] for row in rows)
    table.caption = f"total parameters: {total:,}"
    stdout.print(table)


def column_lines(lines: Sequence[str]) -> None:
    """What each data column becomes, one line each (``validate``, ``summary``)."""
    if lines:
        stdout.print("columns:", highlight=False)
    for line in lines:
        stdout.print(f"  {escape(line)}", highlight=False)


def run_in_use(path: Any, config_name: str) -> None:
    """Which run a command took when none was named (``runs/latest`` may be another config's).

    Printed with click, like ``predictions``, so ``predict --input`` stays free of rich.
    """
    import click

    if _QUIET["on"]:
        return
    text = escape_controls(f"run {path} (config '{config_name}')")
    click.echo(click.style(text, dim=True), err=True)


def predictions(result: Any) -> None:
    """One line per ``--input`` row on stdout: the label (bold on a terminal), then each class's
    confidence.

    Printed with click rather than rich, so a cold ``predict --input`` never imports rich.
    """
    import click

    for index, label in enumerate(result.labels):
        shown = escape_controls(str(label))
        line = f"{escape_controls(result.inputs[index])} → {click.style(shown, bold=True)}"
        if result.probabilities is not None:
            pairs = zip(result.classes, result.probabilities[index], strict=True)
            scores = "  ".join(f"{name}: {prob:.3f}" for name, prob in pairs)
            line += escape_controls(f"  ({scores})")
        click.echo(line)


def evaluation(result: Any) -> None:
    """Scores, per-class table and confusion matrix on stdout; where they came from on stderr."""

    note(f"{result.source} · {result.rows} rows · {result.backend}")
    rows = {result.scored: result.metrics}
    if result.baseline:
        rows["baseline"] = result.baseline["metrics"]
    stdout.print(_metrics_table(rows, "Evaluation", result.scale, result.baseline))
    if result.per_class:
        _class_tables(result.per_class, result.classes, result.confusion)


def _class_tables(
    per_class: list[dict[str, Any]], classes: Sequence[Any], confusion: list[list[int]]
) -> None:
    """The per-class scores and the confusion matrix, on stdout."""
    from rich.table import Table

    table = Table(title="Per class", title_justify="left")
    for column in ("class", "precision", "recall", "f1", "support"):
        table.add_column(column, justify="left" if column == "class" else "right")
    for row in per_class:
        table.add_row(
            escape(str(row["class"])),
            _format(row["precision"]),
            _format(row["recall"]),
            _format(row["f1"]),
            str(row["support"]),
        )
    stdout.print(table)
    if not confusion:
        return
    matrix = Table(title="Confusion matrix (rows: true, columns: predicted)", title_justify="left")
    matrix.add_column("")
    for name in classes:
        matrix.add_column(escape(str(name)), justify="right")
    for name, counts in zip(classes, confusion, strict=True):
        matrix.add_row(escape(str(name)), *map(str, counts))
    stdout.print(matrix)


def run_report(report: Any) -> None:
    """``cnncli report``: the run, its config and data, layers, scores and files, on stdout.

    Args:
        report: a ``report.content.RunReport``.
    """
    from rich.table import Table

    from cnncli.report.content import metric_rows, stopping_words

    colour = "green" if report.complete else "yellow"
    stdout.print(f"[bold]{escape(report.name)}[/bold]  {escape(str(report.path))}", highlight=False)
    stdout.print(f"[{colour}]{escape(report.status)}[/{colour}]", highlight=False)
    for title, pairs in (
        ("Run", report.facts),
        ("Config", report.config_lines),
        ("Data", report.data_lines),
    ):
        if pairs:
            table = Table(title=title, title_justify="left", show_header=False)
            table.add_column(style="bold")
            table.add_column()
            for what, value in pairs:
                table.add_row(escape(what), escape(value))
            stdout.print(table)
    if report.classes:
        balance = Table(title="Class balance (training rows)", title_justify="left")
        balance.add_column("class")
        balance.add_column("rows", justify="right")
        balance.add_column("share", justify="right")
        total = sum(rows for _, rows in report.classes) or 1
        for name, rows in report.classes:
            balance.add_row(escape(name), f"{rows:,}", f"{rows / total:.1%}")
        stdout.print(balance)
    if report.layers:
        layers_table(report.layers, report.input_shape, title="Layers")
    rows = metric_rows(report.metrics)
    if rows:
        title = "Metrics" if report.complete else "Metrics (last completed epoch)"
        metrics = report.metrics
        stdout.print(_metrics_table(rows, title, metrics.get("scale"), metrics.get("baseline")))
        if stopped := stopping_words(metrics):
            stdout.print(stopped, highlight=False, markup=False)
    if report.per_class:
        _class_tables(
            report.per_class, [row["class"] for row in report.per_class], report.confusion
        )
    if report.files:
        files = Table(title=f"Files in {escape(str(report.path))}", title_justify="left")
        for column, justify in (("file", "left"), ("holds", "left"), ("bytes", "right")):
            files.add_column(column, justify=justify)  # type: ignore[arg-type]
        for name, role, size in report.files:
            files.add_row(escape(name), escape(role), f"{size:,}")
        stdout.print(files)
    for text in report.notes:
        stdout.print(f"note: {escape(text)}", highlight=False)


def error(text: str) -> None:
    """A user's mistake: one line per problem, no traceback."""
    for line in text.splitlines():
        stderr.print(
            f"[red]error:[/red] {escape(line)}", highlight=False, markup=True, soft_wrap=True
        )


def runs_table(runs: Sequence[Any]) -> None:
    """``cnncli runs``: one line per run on stdout, newest (or best) first."""
    from rich.table import Table

    table = Table(title="Runs", title_justify="left")
    for column in ("run", "started", "task", "rows", "epochs", "backend", "test", "status"):
        table.add_column(column, justify="right" if column in ("rows", "epochs") else "left")
    for run in runs:
        epochs = "" if run.epochs is None else str(run.epochs)
        status = {"interrupted": "interrupted (resumable)"}.get(run.status, run.status)
        if run.problem:
            status += f": {run.problem}"
        table.add_row(
            escape(run.name),
            run.started or "",
            run.task or "",
            "" if run.rows is None else str(run.rows),
            epochs,
            escape(run.backend or ""),
            "  ".join(f"{escape(name)} {_format(value)}" for name, value in run.test.items()),
            escape(status),
        )
    if not runs:
        table.caption = "no runs yet: cnncli train CONFIG writes one"
    stdout.print(table)


def comparison(result: Any) -> None:
    """``cnncli compare``: the config keys that differ, then the test metrics, run by run."""
    from rich.table import Table

    names = [escape(name) for name in result.names]
    differ = Table(title="Config keys that differ", title_justify="left")
    differ.add_column("key")
    for name in names:
        differ.add_column(name)
    for key, values in result.differences.items():
        differ.add_row(escape(key), *(escape(str(value)) for value in values))
    if not result.differences:
        differ.caption = "the configs are the same"
    stdout.print(differ)
    scores = Table(title="Test metrics", title_justify="left")
    scores.add_column("metric")
    for name in names:
        scores.add_column(name, justify="right")
    for metric, values in result.metrics.items():
        scores.add_row(
            escape(metric), *("" if value is None else _format(value) for value in values)
        )
    stdout.print(scores)


def _cell(value: Any) -> str:
    if value is None or value == "":
        return ""
    if isinstance(value, float):
        return _format(value)
    return escape(str(value))


def _trials_grid(keys: Sequence[str], rows: Sequence[dict[str, Any]], title: str) -> Any:
    from rich.table import Table

    table = Table(title=title, title_justify="left")
    for name in ("#", *keys, "value", "state", "epochs", "s", "reason"):
        table.add_column(name, justify="left" if name in ("state", "reason") else "right")
    for row in rows:
        table.add_row(
            *(
                _cell(row.get(name))
                for name in ("number", *keys, "value", "state", "epochs", "seconds", "reason")
            )
        )
    return table


def trials_table(keys: Sequence[str], rows: Sequence[dict[str, Any]], title: str) -> None:
    """A tune's trials (``tune --report``) on stdout: the table is the result."""
    stdout.print(_trials_grid(keys, rows, title))


class TrialTable:
    """The trials of a running tune on stderr: a live table in a terminal, one plain line per
    trial elsewhere (a CI log, a file)."""

    def __init__(self) -> None:
        self.rows: list[dict[str, Any]] = []
        self._live: Any = None

    def __call__(self, row: dict[str, Any]) -> None:
        self.rows.append(row)
        keys = [
            k for k in row if k not in ("number", "state", "value", "epochs", "seconds", "reason")
        ]
        console = stderr.console
        if not console.is_terminal:
            shown = "  ".join(f"{key}={row[key]}" for key in keys)
            value = _cell(row.get("value")) or "-"
            reason = f"  {row['reason']}" if row.get("reason") else ""
            head = f"trial {row['number']}: {row['state']} {value} ({row['seconds']} s)"
            console.print(
                f"{head}  {shown}{reason}",
                highlight=False,
                markup=False,
            )
            return
        from rich.live import Live

        grid = _trials_grid(keys, self.rows[-30:], "trials")
        if self._live is None:
            self._live = Live(grid, console=console, auto_refresh=False)
            self._live.start()
        self._live.update(grid, refresh=True)

    def close(self) -> None:
        if self._live is not None:
            self._live.stop()
            self._live = None


def tune_summary(summary: dict[str, Any]) -> None:
    """A finished tune: the best trial and where its results are, on stdout."""
    best = summary["best"]
    states = summary["states"]
    counts = f"{states['COMPLETE']} complete, {states['PRUNED']} pruned"
    if best is None:
        stdout.print(f"no trial completed ({counts}); see {escape(summary['folder'])}/trials.csv")
        return
    params = "  ".join(f"{key}={value}" for key, value in best["params"].items())
    stdout.print(
        f"best trial {best['number']}: {summary['metric']} {_format(best['value'])}"
        f" ({counts})\n  {escape(params)}",
        highlight=False,
    )
    for name in ("best_yaml", "run_dir"):
        if summary[name]:
            stdout.print(escape(summary[name]), highlight=False)
