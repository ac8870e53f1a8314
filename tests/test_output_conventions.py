"""Output conventions: results on stdout, progress on stderr; plain text without a terminal,
under NO_COLOR or --quiet; --json on every command that prints results; shell completion."""

from __future__ import annotations

import io
import json

import pytest

from cnncli import render
from cnncli.cli import cli
from tests.conftest import base_config


def test_every_command_that_prints_results_takes_json():
    prints_no_results = {
        "schema",  # prints JSON and nothing else
        "serve",  # answers in JSON over HTTP; its log lines on stderr are JSON already
    }
    lacking = [
        name
        for name, command in cli.commands.items()
        if name not in prints_no_results
        and "--json" not in [opt for param in command.params for opt in param.opts]
    ]
    assert lacking == []


def terminal(monkeypatch, no_color: str | None):
    from rich.console import Console

    if no_color is None:
        monkeypatch.delenv("NO_COLOR", raising=False)
    else:
        monkeypatch.setenv("NO_COLOR", no_color)
    monkeypatch.delenv("TERM", raising=False)
    stream = io.StringIO()
    return stream, Console(file=stream, force_terminal=True, width=100)


def test_no_color_on_a_terminal_gives_plain_epoch_lines_without_escapes(monkeypatch):
    stream, console = terminal(monkeypatch, "1")
    progress = render.EpochProgress(console)
    progress(1, 2, {"loss": 0.5})
    progress(2, 2, {"loss": 0.25})
    progress.close()
    assert stream.getvalue() == "epoch 1/2  loss 0.5000\nepoch 2/2  loss 0.2500\n"
    stream, console = terminal(monkeypatch, None)  # a terminal without NO_COLOR: the bar
    progress = render.EpochProgress(console)
    progress(2, 2, {"loss": 0.25})
    assert "\x1b[" in stream.getvalue()


def test_quiet_turns_progress_and_notes_off_but_keeps_results(monkeypatch):
    stream, console = terminal(monkeypatch, None)
    render.set_quiet(True)
    try:
        render.EpochProgress(console)(1, 1, {"loss": 0.5})
        render.note("a note")
    finally:
        render.set_quiet(False)
    assert stream.getvalue() == ""


@pytest.mark.slow
def test_train_progress_goes_to_stderr_in_plain_lines_and_quiet_drops_it(
    runner, tiny_csv, write_config, tmp_path
):
    config = base_config(tiny_csv)
    config["fit"].update(epochs=2, verbose=True)
    path = write_config(config)
    output = tmp_path / "runs"
    loud = runner.invoke(cli, ["train", str(path), "--output", str(output)], catch_exceptions=False)
    assert loud.exit_code == 0
    assert "epoch 1/2  accuracy" in loud.stderr and "epoch 2/2  accuracy" in loud.stderr
    assert "\x1b[" not in loud.stderr + loud.stdout  # not a terminal: no colour, no bar
    assert loud.stdout.strip().startswith(str(output))  # the run folder is the result
    quiet = runner.invoke(
        cli, ["--quiet", "train", str(path), "--output", str(output)], catch_exceptions=False
    )
    assert quiet.exit_code == 0
    assert "epoch" not in quiet.stderr
    assert quiet.stdout.strip().startswith(str(output))


def test_summary_json_is_one_document_on_stdout(runner, tiny_csv, write_config):
    result = runner.invoke(
        cli, ["summary", str(write_config(base_config(tiny_csv))), "--json"], catch_exceptions=False
    )
    assert result.exit_code == 0
    report = json.loads(result.stdout)
    assert report["input_shape"] == [3]
    assert [layer["type"] for layer in report["layers"]] == ["Dense", "Dense"]
    assert report["parameters"] == (3 * 8 + 8) + (8 * 3 + 3)


@pytest.mark.parametrize("shell", ["bash", "zsh", "fish"])
def test_shell_completion_scripts_come_from_the_documented_variable(runner, shell):
    result = runner.invoke(cli, [], prog_name="cnncli", env={"_CNNCLI_COMPLETE": f"{shell}_source"})
    assert result.exit_code == 0
    assert "_CNNCLI_COMPLETE" in result.stdout and f"{shell}_complete" in result.stdout
