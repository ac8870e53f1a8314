"""The command line contract: help with examples, exit codes, clean stdout, one-line errors."""

from __future__ import annotations

import errno
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
def test_example_configs_point_editors_at_the_schema(config, runner):
    """Issue 10: a relative `$schema=../cnncli.schema.json` broke in a copied config; the
    schema's own `$id` names it wherever the file lands."""
    from cnncli.config.models import SCHEMA_URL

    header = f"# yaml-language-server: $schema={SCHEMA_URL}"
    assert config.read_text().splitlines()[0] == header
    printed = runner.invoke(cli, ["schema"], catch_exceptions=False)
    assert json.loads(printed.stdout)["$id"] == SCHEMA_URL
    readme = (CONFIGS.parent / "README.md").read_text()
    assert header in readme and "$schema=../" not in readme


def _reference_block() -> tuple[dict, set[tuple]]:
    """The README's config reference as data, and the key paths whose line says ``# example``."""
    import yaml

    readme = (CONFIGS.parent / "README.md").read_text()
    section = readme[readme.index("## Config reference") :]
    text = section[section.index("```yaml\n") + 8 :]
    text = text[: text.index("```")]
    marked = {n for n, line in enumerate(text.splitlines()) if re.search(r"#\s*example\b", line)}
    examples: set[tuple] = set()

    def walk(node: yaml.Node, path: tuple) -> None:
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                if key.start_mark.line in marked:
                    examples.add((*path, key.value))
                walk(value, (*path, key.value))

    walk(yaml.compose(text), ())
    return yaml.safe_load(text), examples


def _leaves(value: object, path: tuple = ()) -> dict[tuple, object]:
    if isinstance(value, dict):
        return {k: v for key, item in value.items() for k, v in _leaves(item, (*path, key)).items()}
    return {path: value}


def test_config_reference_shows_the_real_defaults(runner, write_config):
    """The README said epochs: 50 while cnncli trained 10: every value in its reference block
    is the default ``--print-config`` shows for the minimal config, unless marked ``# example``,
    and every key cnncli knows is in the block."""
    import yaml

    from tests.conftest import MINIMAL_REGRESSION

    minimal = {"data": MINIMAL_REGRESSION["data"], "model": MINIMAL_REGRESSION["model"]}
    result = runner.invoke(
        cli, ["train", str(write_config(minimal)), "--print-config"], catch_exceptions=False
    )
    printed = _leaves(yaml.safe_load(result.stdout))
    shown, examples = _reference_block()
    assert {("name",), ("data", "path"), ("model", "layers")} <= examples

    def kept(leaves: dict[tuple, object]) -> dict[tuple, object]:
        return {
            path: value
            for path, value in leaves.items()
            if not any(path[: len(example)] == example for example in examples)
        }

    assert kept(_leaves(shown)) == kept(printed)


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


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (
            ["validate", "{tmp}"],
            "error: cnncli validate: CONFIG: '{tmp}' is a directory;"
            " give a YAML config file, e.g. configs/seed.yaml",
        ),
        (
            ["evaluate", "{config}"],
            "error: cnncli evaluate: RUN: '{config}' is a file;"
            " give a run folder, e.g. runs/latest, or leave RUN out for the latest run",
        ),
        (
            ["validate"],
            "error: cnncli validate: missing argument 'CONFIG'; see 'cnncli validate --help'",
        ),
        (
            ["validate", "{config}", "--sett", "x=1"],
            "error: cnncli validate: no such option '--sett'; did you mean '--set'?",
        ),
        (["validat"], "error: cnncli: no such command 'validat'; did you mean 'validate'?"),
        (
            ["train", "{config}", "--set"],
            "error: cnncli train: option '--set' requires an argument; see 'cnncli train --help'",
        ),
        (
            ["predict", "--backend", "onx"],
            "error: cnncli predict: --backend: 'onx' is not one of 'auto', 'onnx', 'keras';"
            " see 'cnncli predict --help'",
        ),
    ],
)
def test_click_usage_errors_are_one_house_line_with_exit_2(runner, tmp_path, args, expected):
    """Issue 11: Click's three-line "Usage: ... Try ... Error:" block, in cnncli's one line."""
    config = tmp_path / "c.yaml"
    config.write_text("name: x\n")
    fill = {"tmp": str(tmp_path), "config": str(config)}
    result = runner.invoke(cli, [arg.format(**fill) for arg in args])
    assert result.exit_code == 2
    assert result.stdout == ""
    assert result.stderr == expected.format(**fill) + "\n"


def test_set_type_error_is_located_at_the_override(runner, write_config, tiny_csv):
    path = write_config(base_config(tiny_csv))
    result = runner.invoke(cli, ["validate", str(path), "--set", "fit.epochs=true"])
    assert result.exit_code == 2
    assert result.stderr == (
        "error: --set fit.epochs=true: fit.epochs: expected an integer, got a boolean (true);"
        " a boolean is not a number here; write the number itself\n"
    )


def test_tables_written_to_a_file_are_never_cut_whatever_columns_says(tmp_path):
    """Issue 11: `COLUMNS=20 cnncli validate ... > out.txt` cut every cell to '…'."""
    out = tmp_path / "out.txt"
    with out.open("w") as stdout:
        subprocess.run(
            [sys.executable, "-m", "cnncli", "validate", str(CONFIGS / "seed.yaml")],
            stdout=stdout,
            check=True,
            env={**os.environ, "COLUMNS": "20"},
        )
    text = out.read_text()
    assert "…" not in text
    assert "max_pooling1_d_1" in text and "(batch, 3, 64)" in text and "4,611" in text


def test_a_narrow_terminal_folds_table_cells_instead_of_cutting_them(monkeypatch):
    import io

    from rich.console import Console

    from cnncli import render

    screen = io.StringIO()
    monkeypatch.setattr(
        render.stdout,
        "_console",
        Console(file=screen, force_terminal=True, color_system=None, width=30),
    )
    row = {"name": "max_pooling1_d_1", "type": "MaxPooling1D", "output_shape": "(b, 1)"}
    render.layers_table([{**row, "params": 123456}], (3, 1), title="t")
    text = screen.getvalue()
    assert "…" not in text
    assert max(len(line) for line in text.splitlines()) <= 30
    body = [line.split("│") for line in text.splitlines() if line.startswith("│")]
    layer_column = "".join(cells[2].strip() for cells in body)  # the folded pieces, in order
    assert "max_pooling1_d_1" in layer_column


def test_library_warnings_are_one_line_once_without_python_format(runner, monkeypatch):
    """Issue 10: a Keras UserWarning printed as `/…/site-packages/keras/…py:27: UserWarning:`
    plus the source line; now `warning: keras: …`, once."""
    import warnings

    import cnncli.config.schema

    real = cnncli.config.schema.config_json_schema
    keras_file = "/venv/lib/python3.11/site-packages/keras/src/layers/input_layer.py"

    def noisy() -> dict:
        for _ in range(3):
            warnings.warn_explicit(
                "Do not pass an `input_shape`\n  argument to a layer (test).",
                UserWarning,
                keras_file,
                27,
            )
        return real()

    monkeypatch.setattr(cnncli.config.schema, "config_json_schema", noisy)
    with warnings.catch_warnings():
        warnings.simplefilter("default")
        result = runner.invoke(cli, ["schema"], catch_exceptions=False)
    assert result.exit_code == 0
    assert result.stderr == (
        "warning: keras: Do not pass an `input_shape` argument to a layer (test).\n"
    )
    json.loads(result.stdout)  # stdout stays the one JSON document


@pytest.mark.slow
def test_litert_export_prints_no_tensorflow_log_lines(tiny_run, tmp_path):
    """Issue 10: `export --format litert` printed about 15 TensorFlow C++ log lines: TensorFlow
    was imported for its converter before the quiet environment was set."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TF_", "ABSL_"))}
    target = tmp_path / "m.tflite"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "cnncli",
            "export",
            str(tiny_run),
            "--format",
            "litert",
            "--output",
            str(target),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    assert target.stat().st_size > 0


@pytest.mark.slow
@pytest.mark.parametrize(
    ("override", "expected"),
    [
        (
            "model.layers[0].units=true",
            "error: --set model.layers[0].units=true: model.layers[0].units (Dense):"
            " expected a number, got a boolean (true); a boolean is not a number here;"
            " write the number itself",
        ),
        (
            'compile.optimizer={type: adam, learning_rate: "1e-3"}',
            'error: --set compile.optimizer={type: adam, learning_rate: "1e-3"}:'
            " compile.optimizer.learning_rate: expected a number, got a string ('1e-3');"
            " remove the quotes: learning_rate: 1e-3",
        ),
    ],
)
def test_keras_number_arguments_are_strict_too(runner, write_config, tiny_csv, override, expected):
    """Issue 11: `units: true` built a 1-unit layer; a quoted number failed inside Keras."""
    path = write_config(base_config(tiny_csv))
    result = runner.invoke(cli, ["validate", str(path), "--set", override])
    assert result.exit_code == 2
    assert result.stderr == expected + "\n"


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


def test_ctrl_c_while_the_program_loads_its_libraries_is_the_one_line_and_130():
    """The program imports click and rich before any handler is in place: a Ctrl-C then (the
    first quarter second) is still one line and 130, not an import traceback."""
    interrupt_on_click = (
        "import runpy, sys\n"
        "class Interrupt:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name == 'click':\n"
        "            raise KeyboardInterrupt\n"
        "sys.meta_path.insert(0, Interrupt())\n"
        "sys.argv = ['cnncli', 'runs']\n"
        "runpy.run_module('cnncli', run_name='__main__', alter_sys=True)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", interrupt_on_click],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(CONFIGS.parent)},
        timeout=120,
    )
    assert (result.returncode, result.stderr) == (130, "error: interrupted by SIGINT\n")


def test_every_test_the_readme_names_exists():
    """A promise is only as good as the test behind it: a renamed test must not leave a dead name."""
    import re

    root = CONFIGS.parent
    config_keys = {"test_size", "test_path", "test_rows"}  # split.test_size, data.test_path, …
    named = set(re.findall(r"`(test_[A-Za-z0-9_]+)", (root / "README.md").read_text()))
    named -= config_keys
    defined = {
        match
        for path in (root / "tests").rglob("test_*.py")
        for match in re.findall(r"^(?:async )?def (test_\w+)", path.read_text(), re.M)
    }
    assert named, "the README names no test"
    assert sorted(named - defined) == []


#: A folder or file name of 300 bytes: longer than any file system allows (NAME_MAX is 255).
LONG_NAME = "d" * 300


def _path_commands(run, data, config):
    return [
        ["train", config, "--output", LONG_NAME],
        ["train", config, "--set", f"output.dir={LONG_NAME}"],
        ["validate", config, "--set", f"data.path={LONG_NAME}.csv"],
        ["predict", LONG_NAME, "--input", "1,2,3"],
        ["evaluate", run, "--data", f"{LONG_NAME}.csv"],
        ["predict", run, "--input-file", data, "--output", f"{LONG_NAME}.csv"],
        ["predict", run, "--input-file", f"{LONG_NAME}.csv"],
        ["export", run, "--format", "onnx", "--output", f"{LONG_NAME}.onnx"],
        ["train", config, "--resume", LONG_NAME],
    ]


@pytest.mark.parametrize("index", range(len(_path_commands("", "", ""))))
def test_a_name_over_255_bytes_is_one_short_line_in_every_command(
    runner, tiny_run, tmp_path, monkeypatch, index
):
    """Hostile review: a 300-byte name was 'unexpected OSError: File name too long', exit 1,
    with the whole name echoed, in nearly every command."""
    monkeypatch.chdir(tmp_path)
    data = tiny_run.parent.parent / "tiny.csv"
    config = tiny_run.parent.parent / "tiny.yaml"
    args = _path_commands(str(tiny_run), str(data), str(config))[index]
    result = runner.invoke(cli, args)
    assert result.exit_code == 2, result.stderr
    [line] = result.stderr.splitlines()
    assert "a name in this path is 30" in line and "bytes long, over the 255" in line, line
    assert LONG_NAME not in line and "unexpected" not in line
    assert not list(tmp_path.iterdir())  # nothing written


def test_an_os_error_about_a_path_that_no_check_caught_is_one_line(runner, monkeypatch):
    """The last resort: an OSError naming a file is the user's path to fix (exit 2)."""
    from cnncli.runs import ONNX_FILENAME

    def fail(*_args, **_kwargs):
        raise OSError(errno.ELOOP, os.strerror(errno.ELOOP), ONNX_FILENAME)

    monkeypatch.setattr("cnncli.runs.resolve_run_dir", fail)
    result = runner.invoke(cli, ["predict", "--input", "1,2,3"])
    assert result.exit_code == 2
    assert result.stderr == (
        f"error: {ONNX_FILENAME}: passes through a symbolic link loop; check the path\n"
    )
    monkeypatch.setattr("cnncli.runs.resolve_run_dir", lambda *_: 1 / 0)
    assert runner.invoke(cli, ["predict", "--input", "1,2,3"]).exit_code == 1  # still a bug

    def missing(*_args, **_kwargs):  # cnncli failing to find its own file is a bug, not the user's
        raise OSError(errno.ENOENT, os.strerror(errno.ENOENT), ONNX_FILENAME)

    monkeypatch.setattr("cnncli.runs.resolve_run_dir", missing)
    result = runner.invoke(cli, ["predict", "--input", "1,2,3"])
    assert result.exit_code == 1 and "this is a bug in cnncli" in result.stderr


def test_a_data_path_that_is_a_link_loop_is_named_a_loop(runner, write_config, tiny_csv, tmp_path):
    """Hostile review: validate crashed with 'RuntimeError: Symlink loop' (pathlib resolve)."""
    (tmp_path / "loop1.csv").symlink_to("loop2.csv")
    (tmp_path / "loop2.csv").symlink_to("loop1.csv")
    config = write_config(base_config(tiny_csv))
    for args in (["--set", "data.path=loop1.csv"], []):
        if not args:
            config = write_config(base_config("loop1.csv"))
        result = runner.invoke(cli, ["validate", str(config), *args])
        assert result.exit_code == 2, result.stderr
        [line] = result.stderr.splitlines()
        assert line.endswith(
            "is a symbolic link loop; point the link at an existing file or folder"
        ), line


def test_an_output_inside_a_run_folder_is_refused(runner, tiny_run, tmp_path):
    """Hostile review: predict --output RUN/metrics.json replaced the run's own file, and the
    run was broken for good (its sha256 no longer matched)."""
    import shutil

    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    data = tiny_run.parent.parent / "tiny.csv"
    before = {path.name: path.read_bytes() for path in run.iterdir()}
    for args in (
        ["predict", str(run), "--input-file", str(data), "--output", str(run / "metrics.json")],
        ["predict", str(run), "--input-file", str(data), "--output", str(run / "new.csv")],
        ["export", str(run), "--format", "onnx", "--output", str(run / "sub" / "m.onnx")],
    ):
        result = runner.invoke(cli, args)
        assert result.exit_code == 2, result.stderr
        [line] = result.stderr.splitlines()
        assert f"is inside the run folder {run}, whose files cnncli wrote" in line, line
    assert {path.name: path.read_bytes() for path in run.iterdir()} == before
    assert runner.invoke(cli, ["predict", str(run), "--input", "1,2,3"]).exit_code == 0


@pytest.mark.parametrize("command", ["serve", "tune"])
@pytest.mark.parametrize("seconds", ["nan", "inf", "1e400"])
def test_a_timeout_that_is_not_a_finite_number_of_seconds_is_one_line(
    runner, tmp_path, command, seconds
):
    # nan passed FloatRange and then crashed serve's timers (exit 1) or never stopped a search
    target = tmp_path / ("run" if command == "serve" else "c.yaml")
    target.mkdir() if command == "serve" else target.write_text("name: x\n")
    result = runner.invoke(cli, [command, str(target), "--timeout", seconds])
    assert result.exit_code == 2
    assert result.stderr.splitlines() == [
        f"error: cnncli {command}: --timeout: {seconds!r} is not a finite number of seconds;"
        f" see 'cnncli {command} --help'"
    ]
