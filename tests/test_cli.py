"""The command line contract: help with examples, exit codes, clean stdout, one-line errors."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import pytest

from cnncli.cli import cli
from tests.conftest import CONFIGS, base_config


def test_every_command_has_help_with_an_example(runner):
    result = runner.invoke(cli, ["--help"], catch_exceptions=False)
    assert result.exit_code == 0
    assert "cnncli train configs/seed.yaml" in result.stdout
    for name in cli.commands:
        result = runner.invoke(cli, [name, "--help"], catch_exceptions=False)
        assert result.exit_code == 0, name
        assert re.search(r"Example:\n +cnncli " + name, result.stdout), name


def test_missing_config_file_is_a_usage_error(runner, tmp_path):
    result = runner.invoke(cli, ["train", str(tmp_path / "nope.yaml")])
    assert result.exit_code == 2
    assert "does not exist" in result.stderr


def test_config_error_is_one_line_without_traceback(runner, write_config, tiny_csv):
    path = write_config(base_config(tiny_csv, fit={"epochs": 0}))
    result = runner.invoke(cli, ["train", str(path)])
    assert result.exit_code == 2
    assert result.stdout == ""
    line = path.read_text().splitlines().index("  epochs: 0") + 1
    assert (
        result.stderr
        == f"error: {path}:{line}:11: fit.epochs: expected a positive integer, got 0; set epochs to 1 or more\n"
    )


def test_unexpected_errors_exit_1_and_show_traceback_only_with_debug(
    runner, monkeypatch, write_config, tiny_csv
):
    import cnncli.cli

    def broken(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(cnncli.cli, "load_config", broken)
    path = write_config(base_config(tiny_csv))
    result = runner.invoke(cli, ["validate", str(path)])
    assert result.exit_code == 1
    assert result.stderr.startswith("error: unexpected RuntimeError: boom (this is a bug in cnncli")
    assert "Traceback" not in result.stderr
    debug = runner.invoke(cli, ["--debug", "validate", str(path)])
    assert debug.exit_code == 1
    assert "Traceback" in debug.stderr


def test_no_run_yet_says_how_to_get_one(runner, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(cli, ["predict", "--input", "3,30,5"])
    assert result.exit_code == 2
    assert result.stderr == (
        "error: no trained run at runs/latest; train one first: cnncli train configs/seed.yaml, or pass the run folder\n"
    )


def test_schema_command_prints_json_schema(runner):
    result = runner.invoke(cli, ["schema"], catch_exceptions=False)
    schema = json.loads(result.stdout)
    assert schema["title"] == "cnncli config"
    assert {"data", "model", "compile", "fit"} <= set(schema["properties"])


def test_committed_schema_is_current(runner):
    result = runner.invoke(cli, ["schema"], catch_exceptions=False)
    committed = (CONFIGS.parent / "cnncli.schema.json").read_text()
    assert json.loads(committed) == json.loads(result.stdout), (
        "run: cnncli schema > cnncli.schema.json"
    )


@pytest.mark.parametrize("config", sorted(CONFIGS.glob("*.yaml")), ids=lambda p: p.stem)
def test_example_configs_point_editors_at_the_schema(config):
    assert (
        config.read_text().splitlines()[0]
        == "# yaml-language-server: $schema=../cnncli.schema.json"
    )


# --- a real run through the CLI ------------------------------------------------------------


@pytest.mark.slow
def test_train_json_then_predict_and_evaluate(runner, write_config, tmp_path):
    from tests.conftest import seed_like_rows

    data = tmp_path / "seed.csv"
    data.write_text(seed_like_rows(150))
    config = base_config(data, fit={"epochs": 30, "batch_size": 16, "verbose": False})
    config["compile"]["optimizer"] = {"type": "Adam", "learning_rate": 0.01}
    path = write_config(config)
    output = tmp_path / "runs"
    result = runner.invoke(
        cli, ["train", str(path), "--output", str(output), "--json"], catch_exceptions=False
    )
    assert result.exit_code == 0, result.stderr
    payload = json.loads(result.stdout)  # stdout holds exactly one JSON document
    run_dir = payload["run_dir"]
    assert payload["metrics"]["test"]["accuracy"] >= 0.9
    assert (output / "latest").resolve() == output / run_dir.split("/")[-1]
    for name in (
        "config.yaml",
        "preprocess.json",
        "model.keras",
        "metrics.json",
        "history.csv",
        "manifest.json",
    ):
        assert (output / "latest" / name).is_file(), name

    result = runner.invoke(
        cli,
        ["predict", run_dir, "--input", "2.5,25,6", "--input", "x1=7.5,x2=80,x3=6.5"],
        catch_exceptions=False,
    )
    assert result.exit_code == 0
    lines = result.stdout.splitlines()
    assert lines[0].startswith("2.5,25,6 → low  (high: ")
    assert lines[1].startswith("x1=7.5,x2=80,x3=6.5 → high  (")

    result = runner.invoke(cli, ["predict", run_dir, "--input", "1,2", "--json"])
    assert result.exit_code == 2
    assert result.stderr == (
        "error: --input 1,2: got 2 value(s), the model expects 3: x1, x2, x3;"
        " for example --input x1,x2,x3 values in that order, or name=value pairs\n"
    )

    result = runner.invoke(cli, ["evaluate", run_dir, "--json"], catch_exceptions=False)
    report = json.loads(result.stdout)
    assert report["metrics"]["accuracy"] == pytest.approx(payload["metrics"]["test"]["accuracy"])
    assert sum(map(sum, report["confusion_matrix"])) == report["rows"] == 30


def test_without_a_backend_says_which_command_installs_one():
    code = (
        "import sys\nsys.modules['keras'] = None  # as if neither Keras nor TensorFlow were installed\n"
        "from cnncli.cli import cli\ncli(['validate', 'configs/iris.yaml'])\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=CONFIGS.parent
    )
    assert result.returncode == 2
    assert result.stderr == (
        "error: no deep-learning backend is installed (keras); install one:"
        " pip install 'cnncli[cpu]' (or 'cnncli[gpu]' for CUDA), or run `make install`\n"
    )


def test_stdout_on_a_full_device_is_a_user_error_not_a_bug():
    # `cnncli schema > /dev/full` used to exit 1 with "this is a bug in cnncli"
    if not os.path.exists("/dev/full"):
        pytest.skip("no /dev/full here")
    with open("/dev/full", "wb") as full:
        done = subprocess.run(
            [sys.executable, "-m", "cnncli", "schema"],
            stdout=full,
            stderr=subprocess.PIPE,
            text=True,
            cwd=CONFIGS.parent,
            check=False,
        )
    assert done.returncode == 2, done.stderr
    assert done.stderr.strip().splitlines() == [
        "error: cannot write the output: No space left on device;"
        " free some space or write elsewhere"
    ]


@pytest.mark.slow
def test_predict_names_the_run_it_took_when_none_is_given(runner, tiny_run, monkeypatch):
    """runs/latest may be another config's run by now: say which one is used."""
    monkeypatch.chdir(tiny_run.parent.parent)  # where runs/latest points at tiny_run
    result = runner.invoke(cli, ["predict", "--input", "3,30,5"], catch_exceptions=False)
    assert result.exit_code == 0
    assert result.stderr.splitlines()[0] == f"run {tiny_run.resolve()} (config 't')"
    named = runner.invoke(cli, ["predict", str(tiny_run), "--input", "3,30,5"])
    assert named.exit_code == 0
    assert "(config 't')" not in named.stderr


@pytest.mark.parametrize(("name", "code"), [("SIGINT", 130), ("SIGTERM", 143)])
@pytest.mark.parametrize("library", ["lets-it-through", "swallows-it"])
def test_a_signal_ends_any_command_with_128_plus_its_number(
    runner, monkeypatch, tiny_csv, write_config, name, code, library
):
    """Even when a library swallows the interrupt (a converter, an XLA callback) and the
    command runs to its end, it exits 130/143, not 0 (issue 11.15-16)."""
    import signal

    from cnncli.train import check

    summarize_config = check.summarize_config

    def interrupted(config):
        try:
            os.kill(os.getpid(), getattr(signal, name))
        except KeyboardInterrupt:
            if library == "lets-it-through":
                raise
        return summarize_config(config)

    monkeypatch.setattr(check, "summarize_config", interrupted)
    result = runner.invoke(cli, ["validate", str(write_config(base_config(tiny_csv)))])
    assert result.exit_code == code, result.output
    assert result.stderr.splitlines()[-1] == f"error: interrupted by {name}"
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # handlers restored
