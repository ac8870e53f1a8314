"""What a person sees: rich tables and progress on stderr, results on stdout.

Only this module and ``cli`` import rich or click. Progress and errors go to stderr so that
``cnncli predict ... > preds.csv`` and ``--json`` output stay clean.
"""

from __future__ import annotations

import json
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
    return f"{value:.4f}" if abs(value) < 1e4 else f"{value:.4g}"


class EpochProgress:
    """An epoch bar with loss and metrics, redrawn at most a few times a second; plain lines
    when stderr is not a terminal (a CI log, a file)."""

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
        if not self.console.is_terminal:
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


#: The parts of ``metrics.json`` that are rows of scores, in the order a table shows them.
SCORED_PARTS = ("test", "validation")


def metrics_table(metrics: dict[str, Any], title: str = "Results") -> None:
    """Training's scores per split beside the baseline's, on stderr beside the progress (the run
    folder is the result), then the epochs EarlyStopping stopped at and restored, on one line."""
    rows = {part: metrics[part] for part in SCORED_PARTS if part in metrics}
    baseline = metrics.get("baseline") or {}
    rows.update({f"baseline ({part})": baseline[part] for part in rows if part in baseline})
    stderr.print(_metrics_table(rows, title, metrics.get("scale") or {}, baseline))
    epochs = [
        f"{words} epoch {metrics[key]}"
        for key, words in (("stopped_epoch", "stopped early after"), ("best_epoch", "weights of"))
        if key in metrics
    ]
    if epochs:
        note("EarlyStopping: " + "; ".join(epochs))


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
    if baseline:
        predicts = baseline["predicts"]
        shown = _format(predicts) if isinstance(predicts, float) else str(predicts)
        table.caption = f"baseline: always predict the {baseline['method']} ({shown})"
    if scale:  # the model learned a standardised label: its loss is on that scale
        words = "(scaled): on the standardised label the model learned; the rest in label units"
        table.caption = f"{table.caption}; {words}" if table.caption else words
    return table


def layers_table(rows: list[dict[str, Any]], input_shape: tuple[int, ...], title: str) -> None:
    from rich.table import Table

    table = Table(title=title, title_justify="left")
    for column, justify in (
        ("#", "right"),
        ("layer", "left"),
        ("type", "left"),
        ("output shape", "left"),
        ("params", "right"),
    ):
        table.add_column(column, justify=justify)  # type: ignore[arg-type]
    table.add_row("", "input", "Input", "(batch, " + ", ".join(map(str, input_shape)) + ")", "0")
    for index, row in enumerate(rows):
        table.add_row(
            str(index), row["name"], row["type"], row["output_shape"], f"{row['params']:,}"
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
    from rich.table import Table

    note(f"{result.source} · {result.rows} rows · {result.backend}")
    rows = {result.scored: result.metrics}
    if result.baseline:
        rows["baseline"] = result.baseline["metrics"]
    stdout.print(_metrics_table(rows, "Evaluation", result.scale, result.baseline))
    if not result.per_class:
        return
    table = Table(title="Per class", title_justify="left")
    for column in ("class", "precision", "recall", "f1", "support"):
        table.add_column(column, justify="left" if column == "class" else "right")
    for row in result.per_class:
        table.add_row(
            str(row["class"]),
            _format(row["precision"]),
            _format(row["recall"]),
            _format(row["f1"]),
            str(row["support"]),
        )
    stdout.print(table)
    matrix = Table(title="Confusion matrix (rows: true, columns: predicted)", title_justify="left")
    matrix.add_column("")
    for name in result.classes:
        matrix.add_column(str(name), justify="right")
    for name, counts in zip(result.classes, result.confusion, strict=True):
        matrix.add_row(str(name), *map(str, counts))
    stdout.print(matrix)


def error(text: str) -> None:
    """A user's mistake: one line per problem, no traceback."""
    for line in text.splitlines():
        stderr.print(
            f"[red]error:[/red] {escape(line)}", highlight=False, markup=True, soft_wrap=True
        )


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
