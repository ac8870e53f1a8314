"""Property tests: random YAML documents and random CSV bytes never crash or hang cnncli.

Whatever ``validate``, ``train`` and ``predict`` are given, the only outcomes are success (exit 0)
or cnncli's own one-line error (exit 2): never exit 1 (a bug), never a traceback, never a hang.
Examples are few and derandomized so CI stays fast and repeatable; raise ``max_examples`` (or
drop ``derandomize``) locally to search harder.
"""

from __future__ import annotations

import contextlib
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from cnncli.cli import cli
from tests.conftest import base_config, seed_like_rows

FAST = settings(
    max_examples=40,
    deadline=None,  # time_limit below turns a hang into a failure instead
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
FEW = settings(FAST, max_examples=12)


@contextlib.contextmanager
def time_limit(seconds: float) -> Iterator[None]:
    """Fail (instead of hanging the suite) if the body runs longer than ``seconds``."""

    def expire(_signum: int, _frame: Any) -> None:
        raise TimeoutError(f"no answer within {seconds} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def invoke(runner, args: list[str], seconds: float):
    with time_limit(seconds):
        result = runner.invoke(cli, args)
    assert result.exit_code in (0, 2), f"exit {result.exit_code} for {args}:\n{result.output}"
    assert "Traceback" not in result.output, result.output
    event(f"exit {result.exit_code}")  # --hypothesis-show-statistics: how many got through
    if result.exit_code == 2:
        assert result.stderr.strip(), "exit 2 without saying why"
    return result


# ---------------------------------------------------------------------------------------------
# Random YAML documents → cnncli validate

# Integers stay within ±10,000: a layer with 10**12 units is a separate, known problem (the model
# is allocated before any size check), not what this test is after.
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-10_000, 10_000),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12),
    st.sampled_from(
        ["auto", "relu", "softmax", "Dense", "Conv1D", "same", "adam", "Lambda", "../../etc/passwd"]
    ),
)
values = st.recursive(
    scalars,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)
plausible = st.sampled_from(
    [1, 2, 3, 8, 0, -1, 0.5, 0.0, True, False, None, "relu", "same", "valid", "auto", "l2"]
)
HOSTILE_FRAGMENTS = [
    "a: &a [*a]\n",
    "!!python/object/apply:os.system ['true']\n",
    "a: !!binary aGVsbG8=\n",
    "<<: {a: 1}\n",
    "a: 1\na: 2\n",
    "--- 1\n--- 2\n",
    "a: [1, 2\n",
    "\t- tab\n",
    "a: !custom 1\n",
    "? [1, 2]\n: x\n",
    "a: 0x1F\nb: 1_000\nc: .inf\nd: 1e-3\n",
]


def config_paths(value: Any, prefix: tuple = ()) -> list[tuple]:
    """Every key path in a config dict (into lists too), for mutation."""
    paths = [prefix] if prefix else []
    if isinstance(value, dict):
        for key, item in value.items():
            paths += config_paths(item, (*prefix, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            paths += config_paths(item, (*prefix, index))
    return paths


@st.composite
def mutated_configs(draw: st.DrawFn, data_path: str) -> str:
    """A valid config with one value replaced (or one key added, or one removed)."""
    config = base_config(data_path)
    config["model"]["layers"].insert(
        0, {"type": "Conv1D", "filters": 4, "kernel_size": 2, "padding": "same"}
    )
    config["model"]["layers"].insert(1, "Flatten")
    path = draw(st.sampled_from(config_paths(config)))
    container: Any = config
    for part in path[:-1]:
        container = container[part]
    action = draw(st.sampled_from(["plausible", "replace", "add", "remove"]))
    if action == "plausible":  # a value of a kind configs hold, so some documents pass
        container[path[-1]] = draw(plausible)
    elif action == "replace" or not isinstance(container, dict):
        container[path[-1]] = draw(values)
    elif action == "add":
        container[draw(st.text(min_size=1, max_size=10))] = draw(values)
    else:
        del container[path[-1]]
    return yaml.safe_dump(config, sort_keys=False)


def yaml_documents(data_path: str) -> st.SearchStrategy[str]:
    return st.one_of(
        st.text(max_size=200),
        values.map(lambda value: yaml.safe_dump(value)),
        mutated_configs(data_path),
        st.lists(st.sampled_from(HOSTILE_FRAGMENTS), min_size=1, max_size=3).map("".join),
    )


@pytest.mark.slow
@FAST
@given(data=st.data())
def test_random_yaml_never_crashes_validate(runner, tmp_path, data):
    csv = tmp_path / "data.csv"
    if not csv.exists():
        csv.write_text(seed_like_rows(20))
    document = data.draw(yaml_documents(str(csv)))
    path = tmp_path / "config.yaml"
    path.write_text(document, encoding="utf-8")
    invoke(runner, ["validate", str(path)], seconds=30)


# ---------------------------------------------------------------------------------------------
# Random CSV bytes → cnncli train

cells = st.one_of(
    st.integers(-5, 5).map(str),
    st.floats(-10, 10, allow_nan=False).map(lambda x: f"{x:.2f}"),
    st.sampled_from(["", " ", "a", "b", "nan", "inf", "-", '"', '"x,y"', "é", "1e999", "True"]),
)


numbers = st.floats(-10, 10, allow_nan=False).map(lambda x: f"{x:.2f}")
good_rows = st.tuples(numbers, numbers, numbers, st.sampled_from(["a", "b", "c"])).map(",".join)
noisy_rows = st.lists(cells, min_size=2, max_size=5).map(",".join)


@st.composite
def csv_texts(draw: st.DrawFn) -> bytes:
    """CSV-shaped text, mostly well formed (so training is reached), with noisy rows and headers."""
    header = draw(
        st.sampled_from(
            ["x1,x2,x3,label"] * 6 + ["x1,x2,label", "x1,,x3,label", "a;b;c;d", "label"]
        )
    )
    clean = st.lists(good_rows, min_size=8, max_size=40)
    rows = draw(
        st.one_of(
            clean, st.lists(st.one_of(good_rows, good_rows, good_rows, noisy_rows), max_size=40)
        )
    )
    text = "\n".join([header, *rows]) + draw(st.sampled_from(["\n", "", "\n\n"]))
    encoding = draw(st.sampled_from(["utf-8", "utf-8", "utf-8", "latin-1", "utf-16"]))
    return text.encode(encoding, errors="replace")


@pytest.mark.slow
@FEW
@given(raw=st.one_of(st.binary(max_size=300), csv_texts(), st.just(seed_like_rows(12).encode())))
def test_random_csv_bytes_never_crash_train(runner, tmp_path, write_config, raw):
    csv = tmp_path / "data.csv"
    csv.write_bytes(raw)
    config = base_config(csv)
    config["split"] = {"test_size": 0.25, "stratify": False}
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    invoke(runner, ["train", str(path), "--output", str(tmp_path / "runs")], seconds=120)


# ---------------------------------------------------------------------------------------------
# Random input rows and files → cnncli predict


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from cnncli.config.models import load_config
    from cnncli.train.run import train_run

    folder = tmp_path_factory.mktemp("property-run")
    csv = folder / "data.csv"
    csv.write_text(seed_like_rows(30))
    config = folder / "config.yaml"
    config.write_text(yaml.safe_dump(base_config(csv)))
    return train_run(load_config(config), folder / "runs").run_dir


inputs = st.one_of(
    st.tuples(numbers, numbers, numbers).map(",".join),
    st.text(max_size=40),
    st.lists(cells, min_size=1, max_size=5).map(",".join),
    st.lists(st.tuples(st.sampled_from(["x1", "x2", "x3", "x4", ""]), cells), max_size=4).map(
        lambda pairs: ",".join(f"{k}={v}" for k, v in pairs)
    ),
)


@pytest.mark.slow
@FAST
@given(rows=st.lists(inputs, min_size=1, max_size=3))
def test_random_input_rows_never_crash_predict(runner, trained_run, rows):
    args = ["predict", str(trained_run)]
    for row in rows:
        args += ["--input", row]
    invoke(runner, args, seconds=30)


@pytest.mark.slow
@FAST
@given(raw=st.one_of(st.binary(max_size=200), csv_texts()), as_json=st.booleans())
def test_random_input_files_never_crash_predict(runner, tmp_path, trained_run, raw, as_json):
    rows = tmp_path / "rows.csv"
    rows.write_bytes(raw)
    args = [
        "predict",
        str(trained_run),
        "--input-file",
        str(rows),
        *(["--json"] if as_json else []),
    ]
    invoke(runner, args, seconds=30)


# ---------------------------------------------------------------------------------------------
# --set values of every config field → cnncli validate


def config_keys(model: Any = None, prefix: str = "") -> list[str]:
    """Every field of the Config model as a ``--set`` key, sections walked into."""
    from pydantic import BaseModel

    from cnncli.config.models import Config, NamedObject

    keys = []
    for name, field in (model or Config).model_fields.items():
        key = f"{prefix}{name}"
        keys.append(key)
        kind = field.annotation
        if isinstance(kind, type) and issubclass(kind, BaseModel) and kind is not NamedObject:
            keys += config_keys(kind, f"{key}.")
    return keys


SET_KEYS = [
    *config_keys(),
    "model.layers[0]",
    "model.layers[0].units",
    "model.layers[-1].activation",
    "compile.optimizer.learning_rate",
    "fit.callbacks[0]",
]
set_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.text(max_size=16),
    st.integers(-(2**70), 2**70),
    st.sampled_from([0, -1, 2**31, 2**32, 2**63, 10**400]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from(
        [
            "x1",
            "label",
            "x2",
            "mean",
            "drop",
            "hash",
            "regression",
            "sparse",
            "standard",
            "minmax",
            "none",
            "jax",
            "Dense",
            "3",
            "1_000",
            "auto",
            "true",
            "1e39",
            "relu",
            "",
            "NA",
        ]
    ),
)
set_values = st.one_of(
    set_scalars,
    st.lists(set_scalars, max_size=3),
    st.dictionaries(st.text(min_size=1, max_size=6), set_scalars, max_size=3),
)


def yaml_flow(value: Any) -> str:
    """``value`` as the one-line YAML a user would type after ``--set key=``."""
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)  # safe_dump would write 10**400 fine, but keep the digits as typed
    text = yaml.safe_dump(value, default_flow_style=True, width=10**6, allow_unicode=True)
    return text.removesuffix("\n").removesuffix("\n...").strip()


@pytest.mark.slow
@FAST
@given(key=st.sampled_from(SET_KEYS), value=set_values)
def test_set_values_of_every_field_end_in_ok_or_one_line_per_problem(runner, tmp_path, key, value):
    """Issue 11: a --set value of any type, on any field: exit 0, or exit 2 with one
    `error: where: what` line per problem; never exit 1, a traceback or a Click usage block."""
    csv = tmp_path / "data.csv"
    if not csv.exists():
        csv.write_text(seed_like_rows(20))
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(base_config(csv)))
    override = f"{key}={yaml_flow(value)}"
    result = invoke(runner, ["validate", str(path), "--set", override], seconds=30)
    if result.exit_code == 2:
        lines = result.stderr.splitlines()
        assert lines and all(line.startswith(("error: ", "warning: ")) for line in lines), (
            result.stderr
        )
        assert any(line.startswith("error: ") for line in lines)
        assert "Usage:" not in result.stderr
