"""Property test: a run whose files were edited (with their sha256 fixed up) is never a crash.

Issue 11.10: every field of ``manifest.json``, ``preprocess.json`` and ``split.json`` is replaced
by a value of another type or out of range; ``predict --input`` and ``evaluate`` may succeed or
refuse with one line (exit 2), never exit 1, print a traceback, or print NaN.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cnncli.runs import MANIFEST_FILENAME, sha256_file
from tests.conftest import error_lines
from tests.test_properties import FAST, config_paths, invoke

RUN_FILES = (MANIFEST_FILENAME, "preprocess.json", "split.json")

hostile_values = st.one_of(
    st.none(),
    st.booleans(),
    st.sampled_from([0, -1, 1, 2, 10_000, 2**40, -(2**63), 0.0, -0.5, 1e-300, 1e39, 1e308]),
    st.sampled_from([float("nan"), float("inf"), float("-inf")]),
    st.integers(),
    st.floats(),
    st.text(max_size=8),
    st.sampled_from(["", "numeric", "categorical", "onehot", "binary", "hash", "test_file"]),
    st.lists(st.one_of(st.integers(-3, 40), st.text(max_size=3)), max_size=4),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
)


def replaced(document: Any, path: tuple[Any, ...], value: Any) -> Any:
    parent = document
    for key in path[:-1]:
        parent = parent[key]
    if value is _DROP:
        del parent[path[-1]]
    else:
        parent[path[-1]] = value
    return document


_DROP = object()


@pytest.fixture(scope="module")
def fields(tiny_run: Path) -> list[tuple[str, tuple[Any, ...]]]:
    """(file, field path) of every field of the run's three JSON files."""
    return [
        (name, path)
        for name in RUN_FILES
        for path in config_paths(json.loads((tiny_run / name).read_text()))
    ]


@pytest.mark.slow
@settings(FAST, max_examples=60)
@given(data=st.data())
def test_an_edited_run_ends_in_success_or_one_line(
    runner, tmp_path_factory, tiny_run, fields, data
):
    name, path = data.draw(st.sampled_from(fields), label="field")
    value = data.draw(st.one_of(hostile_values, st.just(_DROP)), label="value")
    run = tmp_path_factory.mktemp("edited") / "run"
    shutil.copytree(tiny_run, run)
    document = replaced(json.loads((run / name).read_text()), path, value)
    (run / name).write_text(json.dumps(document))  # NaN and Infinity too, as Python writes them
    if name != MANIFEST_FILENAME:  # the sha256 is fixed up: only the field checks can catch it
        manifest = json.loads((run / MANIFEST_FILENAME).read_text())
        manifest["files"][name] = sha256_file(run / name)
        (run / MANIFEST_FILENAME).write_text(json.dumps(manifest))
    for args in (
        ["predict", str(run), "--input", "3,30,5", "--json"],
        ["predict", str(run), "--input", "3,30,5"],
        ["evaluate", str(run), "--json"],
    ):
        result = invoke(runner, args, seconds=60)
        if result.exit_code == 2:
            assert len(error_lines(result)) == 1, result.stderr
        else:
            assert "nan" not in result.stdout.lower(), result.stdout
            if "--json" in args:
                json.loads(result.stdout)  # valid JSON: no NaN
