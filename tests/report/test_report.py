"""``cnncli report``: the terminal report and the self-contained HTML file (report/content.py,
report/html.py)."""

from __future__ import annotations

import base64
import json
import re
import shutil
import stat
import sys
from pathlib import Path

import pytest
import yaml

from cnncli.cli import cli
from cnncli.runs import (
    LEARNING_CURVES_FILENAME,
    MANIFEST_FILENAME,
    PLOT_FILENAMES,
    SUMMARY_FILENAME,
    sha256_file,
)
from tests.conftest import base_config, error_lines, seed_like_rows
from tests.train.conftest import interrupt_after, resume_config, staging_folders

#: Class names a hostile CSV may hold: markup for the browser and for rich.
HOSTILE_CLASSES = ("<script>alert(1)</script>", "[bold]b", "c&d")


def report(runner, *args: str):
    return runner.invoke(cli, ["report", *args], catch_exceptions=False)


def images_of(page: str) -> list[bytes]:
    """Every <img>'s PNG bytes; fails on an image that is not an inline data: URI."""
    sources = re.findall(r'<img src="([^"]*)"', page)
    assert all(source.startswith("data:image/png;base64,") for source in sources), sources
    return [base64.b64decode(source.split(",", 1)[1]) for source in sources]


def external_references(page: str) -> list[str]:
    """Every src/href/url() in the page that is not an inline data: URI."""
    found = re.findall(r"""(?:src|href)\s*=\s*["']?([^"' >]+)|url\(([^)]*)\)""", page)
    return [a or b for a, b in found if not (a or b).startswith("data:")]


@pytest.fixture(scope="module")
def streamed_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A streaming (hash split) run whose three classes are named like markup."""
    from cnncli.config.models import load_config
    from cnncli.train.run import train_run

    folder = tmp_path_factory.mktemp("streamed")
    lines = seed_like_rows(90).splitlines()
    names = dict(zip(("low", "medium", "high"), HOSTILE_CLASSES, strict=True))
    rows = [lines[0]] + [
        ",".join([*line.split(",")[:3], names[line.split(",")[3]]]) for line in lines[1:]
    ]
    (folder / "data.csv").write_text("\n".join(rows) + "\n")
    config = base_config(folder / "data.csv")
    config["data"]["streaming"] = True
    config["data"]["chunk_rows"] = 32
    path = folder / "streamed.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return train_run(load_config(path), folder / "runs").run_dir


@pytest.mark.slow
def test_the_terminal_report_shows_the_run_its_data_layers_scores_and_files(runner, tiny_run):
    result = report(runner, str(tiny_run))
    assert result.exit_code == 0, result.output
    out = result.stdout
    metrics = json.loads((tiny_run / "metrics.json").read_text())
    summary = json.loads((tiny_run / SUMMARY_FILENAME).read_text())
    assert out.startswith(f"t  {tiny_run}\ncomplete\n")
    assert f"{metrics['test']['accuracy']:.4f}" in out
    assert re.search(r"│ rows\s+│ 30 \(train 24, test 6\)", out)
    assert re.search(r"│ features\s+│ 3: x1, x2, x3", out)
    for row in summary["data"]["classes"]:  # the class balance of the training rows
        assert re.search(rf"{row['class']}\s+│\s+{row['train_rows']}\s+│", out)
    for layer in summary["layers"]:
        assert layer["name"] in out
    assert "Per class" in out and "Confusion matrix (rows: true, columns: predicted)" in out
    for name in json.loads((tiny_run / MANIFEST_FILENAME).read_text())["files"]:
        assert name in out
    assert result.stderr == ""


def test_report_json_is_one_object_with_the_runs_metrics_plots_and_files(runner, tiny_run):
    result = report(runner, str(tiny_run), "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    manifest = json.loads((tiny_run / MANIFEST_FILENAME).read_text())
    assert data["complete"] is True and data["name"] == "t"
    assert data["metrics"] == json.loads((tiny_run / "metrics.json").read_text())
    assert set(data["plots"]) <= set(manifest["files"]) and "learning_curves.png" in data["plots"]
    assert {row["file"] for row in data["files"]} == {*manifest["files"], MANIFEST_FILENAME}
    assert result.stderr == ""


@pytest.mark.slow
def test_the_html_report_is_one_self_contained_file_with_the_plots_and_the_config(
    runner, tiny_run, tmp_path
):
    page_path = tmp_path / "report.html"
    result = report(runner, str(tiny_run), "--html", str(page_path))
    assert result.exit_code == 0, result.output
    assert f"report written to {page_path}" in result.stderr
    page = page_path.read_text()
    assert external_references(page) == []
    assert "Content-Security-Policy" in page
    plots = [tiny_run / name for name in PLOT_FILENAMES if (tiny_run / name).exists()]
    assert images_of(page) == [path.read_bytes() for path in plots] and len(plots) == 4
    metrics = json.loads((tiny_run / "metrics.json").read_text())
    assert f'<td class="number">{metrics["test"]["accuracy"]:.4f}</td>' in page
    resolved = re.search(r'<pre id="resolved-config">(.*?)</pre>', page, re.S)[1]
    import html

    assert yaml.safe_load(html.unescape(resolved)) == yaml.safe_load(
        (tiny_run / "config.yaml").read_text()
    )


@pytest.mark.slow
def test_a_streaming_run_is_reported_and_its_class_names_stay_text(runner, streamed_run, tmp_path):
    result = report(runner, str(streamed_run), "--html", str(tmp_path / "r.html"))
    assert result.exit_code == 0, result.output
    assert "streamed in chunks (hash split)" in result.stdout
    for name in HOSTILE_CLASSES:  # shown as written, not as rich markup
        assert name in result.stdout
    page = (tmp_path / "r.html").read_text()
    assert "streamed in chunks (hash split)" in page
    assert "<script" not in page.lower()
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page and "c&amp;d" in page
    assert len(images_of(page)) == 4


@pytest.mark.slow
def test_an_interrupted_run_is_reported_with_its_epochs_so_far_and_how_to_resume(
    runner, monkeypatch, tmp_path, tiny_csv, write_config
):
    path = write_config(resume_config(tiny_csv, epochs=4))
    interrupt_after(monkeypatch, epoch=2)
    trained = runner.invoke(cli, ["train", str(path), "--output", str(tmp_path / "runs")])
    assert trained.exit_code == 130, trained.output
    monkeypatch.undo()
    [staging] = staging_folders(tmp_path / "runs")
    before = {p.name: sha256_file(p) for p in staging.rglob("*") if p.is_file()}

    result = report(runner, str(staging), "--html", str(tmp_path / "r.html"))
    assert result.exit_code == 0, result.output
    assert (
        "interrupted after epoch 2 (not finished); resume with: cnncli train CONFIG"
        in result.stdout
    )
    assert f"--resume {staging}" in result.stdout
    assert "Metrics (last completed epoch)" in result.stdout
    page = (tmp_path / "r.html").read_text()
    assert 'class="status interrupted"' in page and "interrupted after epoch 2" in page
    [curves] = images_of(page)
    assert curves[:8] == b"\x89PNG\r\n\x1a\n"
    assert not (staging / LEARNING_CURVES_FILENAME).exists()  # the report writes nothing there
    assert {p.name: sha256_file(p) for p in staging.rglob("*") if p.is_file()} == before


@pytest.mark.slow
def test_a_summary_edited_by_hand_is_one_line_naming_the_field(runner, tiny_run, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    summary = json.loads((run / SUMMARY_FILENAME).read_text())
    summary["layers"][0]["params"] = -5
    (run / SUMMARY_FILENAME).write_text(json.dumps(summary))
    manifest = json.loads((run / MANIFEST_FILENAME).read_text())
    manifest["files"][SUMMARY_FILENAME] = sha256_file(run / SUMMARY_FILENAME)  # fixed up
    (run / MANIFEST_FILENAME).write_text(json.dumps(manifest))
    result = runner.invoke(cli, ["report", str(run)])
    assert result.exit_code == 2
    assert error_lines(result) == [
        f"error: {run / SUMMARY_FILENAME}: layers[0].params: expected a whole number ≥ 0,"
        " got -5; the run's files were edited or damaged: retrain"
    ]
    assert "Traceback" not in result.output


@pytest.mark.slow
def test_a_changed_plot_is_refused_like_any_changed_run_file(runner, tiny_run, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    (run / "roc.png").write_bytes(b"\x89PNG\r\n\x1a\nnot the plot")
    result = runner.invoke(cli, ["report", str(run), "--html", str(tmp_path / "r.html")])
    assert result.exit_code == 2
    assert "roc.png does not match its sha256 in manifest.json" in error_lines(result)[0]
    assert not (tmp_path / "r.html").exists()


@pytest.mark.slow
def test_the_html_is_never_written_into_a_run_or_over_a_folder(runner, tiny_run, tmp_path):
    before = sorted(p.name for p in tiny_run.iterdir())
    inside = runner.invoke(cli, ["report", str(tiny_run), "--html", str(tiny_run / "r.html")])
    assert inside.exit_code == 2
    assert "is inside the run folder" in error_lines(inside)[0]
    assert sorted(p.name for p in tiny_run.iterdir()) == before
    folder = runner.invoke(cli, ["report", str(tiny_run), "--html", str(tmp_path)])
    assert folder.exit_code == 2
    assert error_lines(folder)[0].endswith(
        f"'{tmp_path}' is a directory; see 'cnncli report --help'"
    )
    denied = runner.invoke(cli, ["report", str(tiny_run), "--html", "/proc/version"])
    assert denied.exit_code == 2
    assert error_lines(denied)[0].startswith("error: /proc/version: cannot create a file in /proc")
    assert error_lines(denied)[0].endswith("; choose another --html")
    dangling = tmp_path / "report.html"
    dangling.symlink_to(tmp_path / "nowhere.html")
    broken = runner.invoke(cli, ["report", str(tiny_run), "--html", str(dangling)])
    assert broken.exit_code == 2  # the hint named --output, an option report does not have
    assert error_lines(broken) == [
        f"error: {dangling}: is a symbolic link to {tmp_path / 'nowhere.html'}, which does not"
        " exist; point the link at an existing file, or choose another --html"
    ]


@pytest.mark.slow
def test_the_html_goes_into_a_fifo_without_replacing_it(runner, tiny_run, tmp_path):
    import os
    import threading

    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    received = []
    reader = threading.Thread(target=lambda: received.append(fifo.read_bytes()))
    reader.start()
    result = report(runner, str(tiny_run), "--html", str(fifo))
    reader.join(timeout=30)
    assert result.exit_code == 0, result.output
    assert stat.S_ISFIFO(fifo.lstat().st_mode)
    assert received[0].startswith(b"<!DOCTYPE html>") and received[0].endswith(b"</html>\n")


def test_open_needs_html(runner, tmp_path):
    result = runner.invoke(cli, ["report", str(tmp_path), "--open"])
    assert result.exit_code == 2
    assert error_lines(result) == ["error: --open goes with --html; give --html report.html --open"]


@pytest.mark.slow
def test_open_shows_the_written_page_in_the_browser(runner, tiny_run, tmp_path, monkeypatch):
    """``webbrowser`` runs $BROWSER with the page's file:// URL (a script here that notes it)."""
    browser = tmp_path / "browser"
    browser.write_text(
        f"#!{sys.executable}\nimport sys\nopen({str(tmp_path / 'opened')!r}, 'w').write(sys.argv[1])\n"
    )
    browser.chmod(browser.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("BROWSER", str(browser))
    page = tmp_path / "r.html"
    result = report(runner, str(tiny_run), "--html", str(page), "--open")
    assert result.exit_code == 0, result.output
    import time

    deadline = time.monotonic() + 10
    while not (tmp_path / "opened").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert (tmp_path / "opened").read_text() == page.resolve().as_uri()


@pytest.mark.slow
def test_a_run_without_summary_or_plots_is_reported_with_what_is_missing(
    runner, tiny_run, tmp_path
):
    """A run from before summary.json (or trained with fit.plots: false) still reports."""
    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    manifest = json.loads((run / MANIFEST_FILENAME).read_text())
    for name in (SUMMARY_FILENAME, *PLOT_FILENAMES):
        (run / name).unlink(missing_ok=True)
        manifest["files"].pop(name, None)
    (run / MANIFEST_FILENAME).write_text(json.dumps(manifest))
    result = report(runner, str(run), "--html", str(tmp_path / "r.html"))
    assert result.exit_code == 0, result.output
    assert "note: this run has no summary.json (an older cnncli wrote none)" in result.stdout
    assert "note: no plots: the run was trained with fit.plots: false" in result.stdout
    assert re.search(r"│ rows\s+│ 30\s+│", result.stdout)
    assert images_of((tmp_path / "r.html").read_text()) == []


def test_the_config_lines_name_every_layer_written_as_a_name_or_a_mapping():
    from cnncli.report.content import config_lines

    config = {
        "name": "x",
        "model": {"layers": [{"type": "Conv1D", "filters": 4}, "Flatten", {"type": "Dense"}]},
        "compile": {"optimizer": {"type": "Adam", "learning_rate": 0.01}, "metrics": ["mae"]},
        "fit": {"epochs": 3, "callbacks": [{"type": "EarlyStopping", "patience": 2}]},
    }
    lines = dict(config_lines(config))
    assert lines["layers"] == "3: Conv1D → Flatten → Dense"
    assert lines["optimizer"] == "Adam(learning_rate=0.01)"
    assert lines["callbacks"] == "EarlyStopping(patience=2)"
    assert (lines["metrics"], lines["epochs"]) == ("mae", "3")
    assert "loss" not in lines  # nothing shown for what the config leaves out
