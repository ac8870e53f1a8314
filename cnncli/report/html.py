"""``cnncli report --html``: a run's report as one self-contained HTML file.

Everything is inside the file: the CSS in a ``<style>`` element, every plot as a ``data:`` URI,
and a Content-Security-Policy that lets the page load nothing else, so it opens the same from a
mail attachment, offline, or years later. Every text from the run is escaped.
"""

from __future__ import annotations

import base64
import html
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import yaml

from cnncli.report.content import (
    PLOT_CAPTIONS,
    RunReport,
    format_score,
    metric_rows,
    metrics_caption,
    stopping_words,
)
from cnncli.runs import output_target

#: The page may load nothing: no script, no font, no image but its own ``data:`` ones.
CONTENT_SECURITY_POLICY = "default-src 'none'; img-src data:; style-src 'unsafe-inline'"
STYLE = """
body { font: 15px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; color: #1b1b1b;
       max-width: 1100px; margin: 2em auto; padding: 0 1em; }
h1 { font-size: 1.6em; margin-bottom: 0.2em; }
h2 { font-size: 1.2em; border-bottom: 1px solid #ddd; padding-bottom: 0.2em; margin-top: 1.8em; }
.status { padding: 0.5em 0.8em; border-radius: 4px; background: #e8f3e8; }
.status.interrupted { background: #fff3cd; }
table { border-collapse: collapse; margin: 0.6em 0; }
th, td { border: 1px solid #ddd; padding: 0.25em 0.6em; text-align: left; }
td.number, th.number { text-align: right; font-variant-numeric: tabular-nums; }
th { background: #f4f4f4; }
caption { caption-side: bottom; text-align: left; color: #555; font-size: 0.9em;
          padding-top: 0.3em; }
figure { margin: 1em 1em 1em 0; display: inline-block; vertical-align: top; }
figure img { max-width: 100%; height: auto; border: 1px solid #eee; }
figcaption { color: #555; font-size: 0.9em; }
pre { background: #f7f7f7; padding: 0.8em; overflow-x: auto; font-size: 0.9em; }
ul.notes li { color: #7a5a00; }
"""


def write_html(report: RunReport, path: Path) -> Path:
    """Write the report to ``path`` as ``predict --output`` writes: atomically, a link
    followed, a device or FIFO written to and never replaced, a run folder refused.

    Raises:
        CnnCliError: ``path`` cannot be written (``serve.batch_write.open_output``'s refusals).
    """
    from cnncli.serve.batch_write import open_output

    target = output_target(path, "--html")
    # the report's input is the run folder, which no file path can be
    with open_output(target, report.path, option="--html") as stream:
        stream.write(html_report(report).encode("utf-8"))
    return target


def html_report(report: RunReport) -> str:
    """The whole page as text."""
    title = f"cnncli report: {report.name}"
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f'<meta http-equiv="Content-Security-Policy" content="{CONTENT_SECURITY_POLICY}">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{_text(title)}</title><style>{STYLE}</style></head><body>",
        f"<h1>{_text(title)}</h1>",
        f'<p class="status{"" if report.complete else " interrupted"}" id="status">'
        f"{_text(report.status)}</p>",
        f"<p>run folder: <code>{_text(str(report.path))}</code></p>",
        _pairs("Run", report.facts, "run"),
        _metrics(report),
        _per_class(report),
        _confusion(report),
        _plots(report),
        _pairs("Config", report.config_lines, "config"),
        _pairs("Data", report.data_lines, "data"),
        _classes(report),
        _layers(report),
        _files(report),
        _notes(report),
        "<h2>Resolved config</h2>",
        f'<pre id="resolved-config">{_text(yaml.safe_dump(report.config, sort_keys=False))}</pre>',
        "</body></html>",
    ]
    return "\n".join(part for part in parts if part) + "\n"


def _metrics(report: RunReport) -> str:
    rows = metric_rows(report.metrics)
    if not rows:
        return ""
    scale = report.metrics.get("scale") or {}
    names = sorted({name for values in rows.values() for name in values})
    header = ["split", *(f"{name} (scaled)" if name in scale else name for name in names)]
    body = [
        [split, *(format_score(values[name]) if name in values else "" for name in names)]
        for split, values in rows.items()
    ]
    caption = [metrics_caption(report.metrics.get("baseline"), scale)]
    caption.append(stopping_words(report.metrics) or "")
    title = "Metrics" if report.complete else "Metrics (last completed epoch)"
    return f"<h2>{title}</h2>" + _table(
        header, body, "metrics", caption="; ".join(filter(None, caption)), numbers=1
    )


def _per_class(report: RunReport) -> str:
    if not report.per_class:
        return ""
    body = [
        [
            str(row["class"]),
            *(format_score(row[name]) for name in ("precision", "recall", "f1")),
            str(row["support"]),
        ]
        for row in report.per_class
    ]
    header = ["class", "precision", "recall", "f1", "support"]
    return "<h2>Per class (test rows)</h2>" + _table(header, body, "per-class", numbers=1)


def _confusion(report: RunReport) -> str:
    if not report.confusion:
        return ""
    classes = [str(row["class"]) for row in report.per_class]
    body = [
        [name, *map(str, counts)] for name, counts in zip(classes, report.confusion, strict=True)
    ]
    return "<h2>Confusion matrix (rows: true, columns: predicted)</h2>" + _table(
        ["", *classes], body, "confusion", numbers=1
    )


def _plots(report: RunReport) -> str:
    if not report.plots:
        return ""
    figures = []
    for name, png in report.plots.items():
        caption = PLOT_CAPTIONS.get(name, name)
        uri = "data:image/png;base64," + base64.b64encode(png).decode("ascii")
        figures.append(
            f'<figure><img src="{uri}" alt="{_text(caption)}">'
            f"<figcaption>{_text(caption)} ({_text(name)})</figcaption></figure>"
        )
    return "<h2>Plots</h2>" + "".join(figures)


def _classes(report: RunReport) -> str:
    if not report.classes:
        return ""
    total = sum(rows for _, rows in report.classes) or 1
    body = [[name, f"{rows:,}", f"{rows / total:.1%}"] for name, rows in report.classes]
    return "<h3>Class balance (training rows)</h3>" + _table(
        ["class", "rows", "share"], body, "classes", numbers=1
    )


def _layers(report: RunReport) -> str:
    if not report.layers:
        return ""
    shape = "(batch, " + ", ".join(map(str, report.input_shape)) + ")"
    body = [["", "input", "Input", shape, "0"]]
    body += [
        [str(index), row["name"], row["type"], row["output_shape"], f"{row['params']:,}"]
        for index, row in enumerate(report.layers)
    ]
    total = sum(row["params"] for row in report.layers)
    header = ["#", "layer", "type", "output shape", "params"]
    return "<h2>Layers</h2>" + _table(
        header, body, "layers", caption=f"total parameters: {total:,}", numbers=4
    )


def _files(report: RunReport) -> str:
    if not report.files:
        return ""
    body = [[name, role, f"{size:,}"] for name, role, size in report.files]
    return f"<h2>Files in {_text(str(report.path))}</h2>" + _table(
        ["file", "holds", "bytes"], body, "files", numbers=2
    )


def _notes(report: RunReport) -> str:
    if not report.notes:
        return ""
    items = "".join(f"<li>{_text(note)}</li>" for note in report.notes)
    return f'<h2>Notes</h2><ul class="notes">{items}</ul>'


def _pairs(title: str, pairs: Sequence[tuple[str, str]], ident: str) -> str:
    if not pairs:
        return ""
    return f"<h2>{_text(title)}</h2>" + _table([], [list(pair) for pair in pairs], ident)


def _table(
    header: Sequence[str],
    body: Iterable[Sequence[str]],
    ident: str,
    *,
    caption: str = "",
    numbers: int | None = None,
) -> str:
    """A table; the columns from ``numbers`` on are right-aligned numbers."""

    def cell(tag: str, index: int, value: Any) -> str:
        right = numbers is not None and index >= numbers and index > 0
        kind = ' class="number"' if right else ""
        return f"<{tag}{kind}>{_text(str(value))}</{tag}>"

    rows = []
    if header:
        rows.append("<tr>" + "".join(cell("th", i, v) for i, v in enumerate(header)) + "</tr>")
    for row in body:
        rows.append("<tr>" + "".join(cell("td", i, v) for i, v in enumerate(row)) + "</tr>")
    shown = f"<caption>{_text(caption)}</caption>" if caption else ""
    return f'<table id="{ident}">{shown}{"".join(rows)}</table>'


def _text(value: str) -> str:
    return html.escape(value, quote=True)
