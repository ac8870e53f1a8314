"""The fault suite (issue 6): never lose work, never run foreign code, say what is wrong with data.

Each test injects one fault (a signal, SIGKILL, a full disk, a tampered or hostile file, a dirty
CSV, a hostile YAML document) and checks the promise the README's "What cnncli promises" section
makes about it: the exit code, the one-line message, and what is left on disk.
"""

from __future__ import annotations

import ast
import json
import shutil
import time
import zipfile
from pathlib import Path
from typing import Any

import pytest

import cnncli
from cnncli.cli import cli
from cnncli.config.models import load_config
from cnncli.errors import CnnCliError
from cnncli.runs import (
    MANIFEST_FILENAME,
    MODEL_FILENAME,
    load_keras_model,
    open_run,
    sha256_file,
)
from tests.conftest import base_config, seed_like_rows

PACKAGE = Path(cnncli.__file__).parent


def error_lines(result) -> list[str]:
    return [line for line in result.stderr.splitlines() if line.startswith("error:")]


@pytest.fixture
def run_copy(tiny_run: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "run"
    shutil.copytree(tiny_run, copy)
    return copy


def rewrite_manifest(run: Path, **changes: Any) -> None:
    """What an attacker who swaps a file would do: recompute its sha256 in the manifest too."""
    manifest = json.loads((run / MANIFEST_FILENAME).read_text())
    manifest["files"] = {name: sha256_file(run / name) for name in manifest["files"]}
    manifest.update(changes)
    (run / MANIFEST_FILENAME).write_text(json.dumps(manifest))


# ---------------------------------------------------------------------------------------------
# Safe loading


def make_hostile_lambda_model(path: Path, marker: Path) -> None:
    from cnncli.runtime import import_keras

    keras = import_keras()
    touch = f"lambda x: (open({str(marker)!r}, 'w').close(), x)[1]"
    model = keras.Sequential(
        [keras.Input((3,)), keras.layers.Lambda(eval(touch)), keras.layers.Dense(3)]
    )  # noqa: S307
    model.save(path)
    marker.unlink(missing_ok=True)  # saving traced the lambda once; start clean


def make_hostile_config_model(original: Path, path: Path, marker: Path) -> None:
    """A real model whose config.json asks Keras for ``subprocess.Popen(["touch", marker])``."""
    with zipfile.ZipFile(original) as source:
        config = json.loads(source.read("config.json"))
        config["config"]["layers"].insert(
            1,
            {
                "module": "subprocess",
                "class_name": "Popen",
                "config": {"args": ["touch", str(marker)]},
            },
        )
        with zipfile.ZipFile(path, "w") as target:
            for item in source.infolist():
                data = (
                    json.dumps(config)
                    if item.filename == "config.json"
                    else source.read(item.filename)
                )
                target.writestr(item, data)


@pytest.mark.slow
@pytest.mark.parametrize("attack", ["lambda", "config"])
def test_hostile_keras_file_is_refused_without_running_anything(runner, run_copy, tmp_path, attack):
    marker = tmp_path / "PWNED"
    hostile = tmp_path / "hostile.keras"
    if attack == "lambda":
        make_hostile_lambda_model(hostile, marker)
    else:
        make_hostile_config_model(run_copy / MODEL_FILENAME, hostile, marker)
    shutil.copy(hostile, run_copy / MODEL_FILENAME)
    rewrite_manifest(run_copy)  # even with a matching checksum
    with pytest.raises(CnnCliError, match="model.keras could not be loaded safely"):
        load_keras_model(open_run(run_copy))
    result = runner.invoke(
        cli, ["predict", str(run_copy), "--backend", "keras", "--input", "3,30,5"]
    )
    assert result.exit_code == 2
    assert "model.keras could not be loaded safely" in result.stderr
    assert not marker.exists()


@pytest.mark.slow
@pytest.mark.parametrize("name", [MODEL_FILENAME, "preprocess.json", "model.onnx"])
def test_tampered_file_is_refused(runner, run_copy, name):
    data = bytearray((run_copy / name).read_bytes())
    data[len(data) // 2] ^= 0xFF
    (run_copy / name).write_bytes(bytes(data))
    result = runner.invoke(cli, ["predict", str(run_copy), "--input", "3,30,5"])
    assert result.exit_code == 2
    assert error_lines(result) == [
        f"error: {run_copy / name}: {name} does not match its sha256 in manifest.json; it was changed after"
        " training; refusing to load it; retrain or restore the original file"
    ]


@pytest.mark.slow
def test_run_from_a_newer_cnncli_is_refused(runner, run_copy):
    rewrite_manifest(run_copy, format=cnncli.RUN_FORMAT_VERSION + 1, cnncli="9.0.0")
    result = runner.invoke(cli, ["evaluate", str(run_copy)])
    assert result.exit_code == 2
    assert error_lines(result) == [
        f"error: {run_copy}: run was written by cnncli 9.0.0 (run format {cnncli.RUN_FORMAT_VERSION + 1}),"
        f" newer than this cnncli {cnncli.__version__} (format {cnncli.RUN_FORMAT_VERSION}); upgrade cnncli to read it"
    ]


UNSAFE_MODULES = {
    "pickle",
    "cPickle",
    "_pickle",
    "dill",
    "cloudpickle",
    "joblib",
    "marshal",
    "shelve",
}
UNSAFE_BUILTINS = {"eval", "exec", "compile", "__import__"}
UNSAFE_ATTRIBUTES = {
    "yaml": {
        "load",
        "load_all",
        "unsafe_load",
        "unsafe_load_all",
        "full_load",
        "full_load_all",
        "Loader",
        "UnsafeLoader",
    },
    "importlib": {"import_module"},
}


def unsafe_uses(tree: ast.AST) -> list[tuple[int, str]]:
    """(line, what) for every pickle-like import, eval/exec, unsafe YAML load and allow_pickle."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [
                (node.lineno, f"imports {a.name}")
                for a in node.names
                if a.name.split(".")[0] in UNSAFE_MODULES
            ]
        elif isinstance(node, ast.ImportFrom):
            module = node.module or ""
            if module.split(".")[0] in UNSAFE_MODULES:
                found.append((node.lineno, f"imports {module}"))
            found += [
                (node.lineno, f"imports {module}.{a.name}")
                for a in node.names
                if a.name in UNSAFE_ATTRIBUTES.get(module, ())
            ]
        elif isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
            if node.attr in UNSAFE_ATTRIBUTES.get(node.value.id, ()):
                found.append((node.lineno, f"uses {node.value.id}.{node.attr}"))
        elif isinstance(node, ast.Call):
            if isinstance(node.func, ast.Name) and node.func.id in UNSAFE_BUILTINS:
                found.append((node.lineno, f"calls {node.func.id}"))
            for keyword in node.keywords:
                if keyword.arg == "allow_pickle" and not (
                    isinstance(keyword.value, ast.Constant) and keyword.value.value is False
                ):
                    found.append((node.lineno, "passes allow_pickle"))
    return sorted(found)


def test_the_scan_finds_what_it_looks_for():
    sample = (
        "import pickle\nfrom joblib import dump\nimport yaml\nyaml.load(s)\neval('1')\n"
        "np.load(f, allow_pickle=True)\n"
    )
    assert [what for _, what in unsafe_uses(ast.parse(sample))] == [
        "imports pickle",
        "imports joblib",
        "uses yaml.load",
        "calls eval",
        "passes allow_pickle",
    ]


def test_package_uses_no_pickle_joblib_or_code_loading():
    """No module imports a pickle-like library, evals code, loads YAML unsafely or lets NumPy unpickle."""
    found = [
        f"{path.relative_to(PACKAGE.parent)}:{line} {what}"
        for path in sorted(PACKAGE.rglob("*.py"))
        for line, what in unsafe_uses(ast.parse(path.read_text(), filename=str(path)))
    ]
    assert found == []


# ---------------------------------------------------------------------------------------------
# YAML safety


def test_billion_laughs_is_refused_within_a_second(write_config, tiny_csv):
    lines = ['a0: &a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    lines += [f"a{i}: &a{i} [{','.join(['*a' + str(i - 1)] * 9)}]" for i in range(1, 10)]
    path = write_config("\n".join(lines) + f"\ndata: {{path: {tiny_csv}}}\n")
    started = time.perf_counter()
    with pytest.raises(CnnCliError, match="aliases included") as caught:
        load_config(path)
    assert time.perf_counter() - started < 1.0
    assert caught.value.hint.startswith("remove the repeated aliases")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("a: &a [*a]\n", "an alias (*) refers to a node that contains it"),
        ("a: " + "[" * 5000 + "]" * 5000 + "\n", "config nests more than 64 levels deep"),
        ("a: " + "[" * 70 + "]" * 70 + "\n", "config nests more than 64 levels deep"),
    ],
    ids=["self-alias", "deep-5000", "deep-70"],
)
def test_recursive_or_deeply_nested_yaml_is_refused_quickly(write_config, text, message):
    started = time.perf_counter()
    with pytest.raises(CnnCliError) as caught:
        load_config(write_config(text))
    assert time.perf_counter() - started < 1.0
    assert caught.value.message.startswith(message)


def test_oversized_config_is_refused_before_parsing(write_config):
    path = write_config("# " + "x" * 1_100_000 + "\n")
    with pytest.raises(
        CnnCliError, match="config is 1,100,003 bytes, more than the 1,000,000 allowed"
    ):
        load_config(path)


def test_non_utf8_config_says_where(tmp_path):
    path = tmp_path / "latin.yaml"
    path.write_bytes("name: caf\u00e9\n".encode("latin-1"))
    with pytest.raises(CnnCliError) as caught:
        load_config(path)
    assert caught.value.message == "config is not UTF-8 text (byte 0xe9 on line 1)"
    assert caught.value.hint == "save the file as UTF-8"


@pytest.mark.parametrize(
    "tag",
    [
        "!!python/object/apply:os.system ['touch {marker}']",
        "!!python/name:os.system",
        "!!python/object/new:subprocess.Popen [['touch', '{marker}']]",
    ],
)
def test_python_tags_are_refused_and_never_run(runner, tmp_path, tiny_csv, tag):
    marker = tmp_path / "PWNED"
    path = tmp_path / "evil.yaml"
    path.write_text(
        f"name: {tag.format(marker=marker)}\ndata: {{path: {tiny_csv}}}\nmodel: {{layers: [Dense]}}\n"
    )
    result = runner.invoke(cli, ["validate", str(path)])
    assert result.exit_code == 2
    assert "is not allowed; configs hold plain values only; remove the tag" in result.stderr
    assert "Traceback" not in result.output and not marker.exists()


# ---------------------------------------------------------------------------------------------
# Data errors through `cnncli train`: one line naming file, column and line; exit code 2

GOOD = seed_like_rows(24).splitlines()


def with_line(number: int, text: str) -> str:
    """GOOD with file line ``number`` (1 = header) replaced."""
    lines = list(GOOD)
    lines[number - 1] = text
    return "\n".join(lines) + "\n"


def cell_changed(number: int, column: int, value: str) -> str:
    cells = GOOD[number - 1].split(",")
    cells[column] = value
    return with_line(number, ",".join(cells))


DATA_ERRORS = {
    "empty-file": ("", {}, "{csv}: data file is empty; a CSV needs a header line and rows"),
    "header-only": (
        GOOD[0] + "\n",
        {},
        "{csv}: data file has a header but no rows; add data rows below the header",
    ),
    "text-in-numeric": (
        cell_changed(7, 1, "n/a?"),
        {},
        "{csv}:7: column 'x2': numeric column holds text 'n/a?'; fix or empty that cell (see data.missing),"
        " or leave the column out of data.features",
    ),
    "empty-cells": (
        cell_changed(5, 0, ""),
        {},
        "{csv}:5: column 'x1': 1 empty cell(s) on line(s) 5; fill them in, or set data.missing: drop or mean",
    ),
    "single-class": (
        "x1,label\n" + "".join(f"{i},same\n" for i in range(10)),
        {},
        "{csv}: column 'label': the label column has a single class ('same') in all 10 rows;"
        " classification needs at least two classes; check data.label",
    ),
    "class-too-small": (
        "\n".join(GOOD) + "\n1,2,3,rare\n",
        {},
        "{csv}:26: column 'label': class 'rare' has only 1 row (line 26), too few to stratify;"
        " add rows of that class, remove that row, or set split.stratify: false",
    ),
    "ragged-long": (
        with_line(4, GOOD[3] + ",9"),
        {},
        "{csv}:4: line 4 has 5 cells but the header has 4; every row needs one cell per header column;"
        " look for extra or missing delimiters",
    ),
    "ragged-short": (
        with_line(9, GOOD[8].rsplit(",", 1)[0]),
        {"missing": "mean"},
        "{csv}:9: line 9 has 3 cells but the header has 4; every row needs one cell per header column;"
        " check for missing delimiters",
    ),
    "semicolons": (
        "\n".join(GOOD).replace(",", ";") + "\n",
        {},
        "{csv}:1: the header has one column when split on ',' but contains ';'; set data.delimiter: ';'",
    ),
    "latin-1": (
        cell_changed(3, 3, "caf\u00e9").encode("latin-1"),
        {},
        "{csv}:3: data file is not UTF-8 text (byte 0xe9 on line 3); re-save it as UTF-8,"
        " e.g. iconv -f latin1 -t utf-8 in.csv > out.csv",
    ),
}


@pytest.mark.parametrize("case", list(DATA_ERRORS))
def test_data_error_is_one_line_with_file_column_and_line(runner, tmp_path, write_config, case):
    content, data, expected = DATA_ERRORS[case]
    csv = tmp_path / "data.csv"
    csv.write_bytes(content if isinstance(content, bytes) else content.encode())
    config = base_config(csv, data={"path": str(csv), **data})
    config = write_config(config)
    result = runner.invoke(cli, ["train", str(config), "--output", str(tmp_path / "runs")])
    assert result.exit_code == 2
    assert error_lines(result) == ["error: " + expected.format(csv=csv)]
    assert "Traceback" not in result.output
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


def test_test_file_with_other_columns(runner, tmp_path, tiny_csv, write_config):
    test_csv = tmp_path / "test.csv"
    test_csv.write_text("x1,x2,label\n1,2,low\n")
    config = write_config(
        base_config(tiny_csv, data={"path": str(tiny_csv), "test_path": str(test_csv)})
    )
    result = runner.invoke(cli, ["train", str(config), "--output", str(tmp_path / "runs")])
    assert result.exit_code == 2
    assert error_lines(result) == [
        f"error: {test_csv}:1: 1 column(s) of the training data are missing: x3 (the file has x1, x2, label);"
        " a test file needs the same columns as the training file"
    ]


@pytest.mark.slow
@pytest.mark.parametrize(
    ("policy", "note"),
    [
        ("drop", "dropped 2 of 24 row(s) with empty cells from data.csv (missing: drop)"),
        ("mean", "filled 2 empty cell(s) in data.csv with the column mean (missing: mean)"),
    ],
)
def test_missing_drop_and_mean_say_how_many(runner, tmp_path, write_config, policy, note):
    csv = tmp_path / "data.csv"
    lines = cell_changed(5, 0, "").splitlines()
    cells = lines[10].split(",")
    cells[2] = ""
    lines[10] = ",".join(cells)
    csv.write_text("\n".join(lines) + "\n")
    config = write_config(base_config(csv, data={"path": str(csv), "missing": policy}))
    result = runner.invoke(
        cli, ["train", str(config), "--output", str(tmp_path / "runs")], catch_exceptions=False
    )
    assert result.exit_code == 0
    assert f"warning: {note}" in result.stderr


# ---------------------------------------------------------------------------------------------
# Predict-time faults (prediction is another module's; the promises are checked here too)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("3,nan,5", "error: --input 3,nan,5: feature 'x2' is nan; give a finite number"),
        ("3,30", "error: --input 3,30: got 2 value(s), the model expects 3: x1, x2, x3"),
        ("3,30,5,7", "error: --input 3,30,5,7: got 4 value(s), the model expects 3: x1, x2, x3"),
    ],
)
def test_predict_input_faults(runner, tiny_run, value, message):
    result = runner.invoke(cli, ["predict", str(tiny_run), "--input", value])
    assert result.exit_code == 2
    assert error_lines(result)[0].startswith(message)


@pytest.mark.slow
def test_predict_out_of_range_warns_and_keeps_going(runner, tiny_run):
    result = runner.invoke(cli, ["predict", str(tiny_run), "--input", "300,30,5"])
    assert result.exit_code == 0
    assert "x1: 1 value(s) outside the training range" in result.stderr
    assert "→" in result.stdout
