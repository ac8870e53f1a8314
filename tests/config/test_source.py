"""config/source.py: the safe YAML 1.2 reader, its limits, and the positions it keeps."""

from __future__ import annotations

import math

import pytest

from cnncli.cli import cli
from cnncli.config.models import load_config
from cnncli.config.source import parse_override_value, parse_yaml
from cnncli.errors import CnnCliError
from tests.conftest import base_config, problems_of

# --- YAML 1.2 core schema scalars ------------------------------------------------------------

CORE_SCALARS = [
    ("010", 10),  # YAML 1.1: octal 8
    ("0o17", 15),  # YAML 1.1: a string
    ("0x1F", 31),
    ("-12", -12),
    ("+7", 7),
    ("1:30", "1:30"),  # YAML 1.1: sexagesimal 90
    ("1_000", "1_000"),  # YAML 1.1: 1000
    ("0b11", "0b11"),  # YAML 1.1: 3
    ("1e-3", 0.001),
    ("1.5E+3", 1500.0),
    ("0.5", 0.5),
    (".5", 0.5),
    (".inf", math.inf),
    ("-.inf", -math.inf),
    ("+.INF", math.inf),
    ("yes", "yes"),  # YAML 1.1: true
    ("no", "no"),
    ("on", "on"),
    ("off", "off"),
    ("y", "y"),
    ("true", True),
    ("False", False),
    ("TRUE", True),
    ("null", None),
    ("~", None),
    ("2024-01-31", "2024-01-31"),  # YAML 1.1: a timestamp, which configs refuse
    ("=", "="),  # YAML 1.1: the value tag, which configs refuse
]


@pytest.mark.parametrize(("text", "expected"), CORE_SCALARS, ids=[t for t, _ in CORE_SCALARS])
def test_scalars_follow_the_yaml_1_2_core_schema(text, expected):
    value, _ = parse_yaml(f"value: {text}\n", "config.yaml")
    assert value["value"] == expected
    assert type(value["value"]) is type(expected)


def test_nan_is_a_float():
    for text in (".nan", ".NaN", ".NAN"):
        value, _ = parse_yaml(f"value: {text}\n", "config.yaml")
        assert isinstance(value["value"], float) and math.isnan(value["value"])


@pytest.mark.parametrize(("text", "expected"), CORE_SCALARS, ids=[t for t, _ in CORE_SCALARS])
def test_set_values_follow_the_same_rules(text, expected):
    value = parse_override_value(text, f"--set key={text}")
    assert value == expected and type(value) is type(expected)


def test_explicit_tags_use_the_same_number_rules():
    value, _ = parse_yaml("a: !!int 010\nb: !!float 3\nc: !!int '0x10'\n", "config.yaml")
    assert value == {"a": 10, "b": 3.0, "c": 16}
    assert isinstance(value["b"], float)


def test_explicit_int_tag_on_a_non_number_is_one_problem():
    with pytest.raises(CnnCliError) as caught:
        parse_yaml("a: !!int 1_000\n", "config.yaml")
    (problem,) = problems_of(caught)
    assert problem.message.startswith("cannot read value '1_000': not a YAML 1.2 integer")
    assert (problem.where.line, problem.where.column) == (1, 4)


def test_numbers_reach_the_config_as_yaml_1_2_reads_them(write_config, tiny_csv):
    text = f"""
data: {{path: {tiny_csv}}}
model: {{layers: [{{type: Dense, units: 010}}, {{type: Dense, units: auto}}]}}
compile: {{optimizer: {{type: Adam, learning_rate: 1e-3}}}}
fit: {{epochs: 0o17, batch_size: 0x10}}
name: no
"""
    config = load_config(write_config(text))
    assert config.model.layers[0].args["units"] == 10
    assert config.fit.epochs == 15
    assert config.fit.batch_size == 16
    assert config.compile.optimizer.args["learning_rate"] == pytest.approx(0.001)
    assert isinstance(config.compile.optimizer.args["learning_rate"], float)
    assert config.name == "no"  # YAML 1.1 would have read a boolean


def test_set_reads_numbers_as_a_file_does(write_config, tiny_csv):
    path = write_config(base_config(tiny_csv))
    config = load_config(path, ["fit.epochs=010", "model.layers[0].units=0x20"])
    assert config.fit.epochs == 10
    assert config.model.layers[0].args["units"] == 32
    with pytest.raises(CnnCliError) as caught:
        load_config(path, ["fit.epochs=1:30"])
    (problem,) = problems_of(caught)
    assert (
        problem.one_line()
        == "--set fit.epochs=1:30: fit.epochs: expected an integer, got a string ('1:30')"
    )


def test_positions_are_kept(write_config, tiny_csv):
    text = f"name: t\ndata:\n  path: {tiny_csv}\nmodel:\n  layers: [Dense]\nfit:\n  epochs: 0o0\n"
    with pytest.raises(CnnCliError) as caught:
        load_config(write_config(text))
    (problem,) = problems_of(caught)
    assert problem.where.key == "fit.epochs"
    assert (problem.where.line, problem.where.column) == (7, 11)
    assert problem.message == "expected a positive integer, got 0"


# --- structure: duplicate keys, syntax ---------------------------------------------------------


def test_duplicate_keys_are_an_error(write_config, tiny_csv):
    text = f"name: a\nname: b\ndata: {{path: {tiny_csv}}}\nmodel: {{layers: [Dense]}}\n"
    with pytest.raises(CnnCliError) as caught:
        load_config(write_config(text))
    (problem,) = problems_of(caught)
    assert problem.message == "duplicate key 'name' (first given on line 1)"
    assert problem.where.line == 2


def test_yaml_syntax_error_has_position(write_config):
    with pytest.raises(CnnCliError, match="YAML syntax error") as caught:
        load_config(write_config("model:\n  layers: [Dense\n"))
    assert caught.value.where.line is not None


def test_merge_keys_are_refused():
    with pytest.raises(CnnCliError) as caught:
        parse_yaml("base: &b {units: 8}\nlayer:\n  <<: *b\n", "config.yaml")
    (problem,) = problems_of(caught)
    assert (
        problem.one_line()
        == "config.yaml:3:3: layer: merge keys (<<) are not supported; write the keys out"
    )


# --- limits: a config is data, never code --------------------------------------------------------


def test_billion_laughs_is_refused_before_it_is_expanded(write_config, tiny_csv):
    lines = ['a0: &a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    lines += [f"a{i}: &a{i} [{','.join(['*a' + str(i - 1)] * 9)}]" for i in range(1, 10)]
    path = write_config("\n".join(lines) + f"\ndata: {{path: {tiny_csv}}}\n")
    # 9**10 strings if expanded: refused by counting aliases, so the test ends at once or never
    with pytest.raises(CnnCliError, match="aliases included") as caught:
        load_config(path)
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
def test_recursive_or_deeply_nested_yaml_is_refused(write_config, text, message):
    with pytest.raises(CnnCliError) as caught:
        load_config(write_config(text))
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
