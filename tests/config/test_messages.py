"""config/messages.py: pydantic's errors as one-line messages with a place and a hint."""

from __future__ import annotations

import pytest
import yaml

from cnncli.config.models import load_config
from cnncli.errors import CnnCliError, ConfigErrors
from tests.conftest import base_config, problems_of


def test_unknown_key_points_at_line_and_suggests(write_config, tiny_csv):
    text = f"""name: t
data:
  path: {tiny_csv}
model:
  layers: [Dense]
fit:
  epochz: 3
"""
    path = write_config(text)
    with pytest.raises(CnnCliError) as caught:
        load_config(path)
    (problem,) = problems_of(caught)
    assert problem.message == "unknown key 'epochz'"
    assert problem.hint == "did you mean 'epochs'?"
    assert (problem.where.line, problem.where.column) == (7, 3)
    assert (
        problem.one_line()
        == f"{path}:7:3: fit.epochz: unknown key 'epochz'; did you mean 'epochs'?"
    )


def test_every_schema_problem_is_reported(write_config, tiny_csv):
    config = base_config(tiny_csv, fit={"epochs": 0, "batch_size": "big"})
    config["split"] = {"test_size": 1.5}
    with pytest.raises(ConfigErrors) as caught:
        load_config(write_config(config))
    keys = {problem.where.key: problem.message for problem in caught.value.problems}
    assert keys["fit.epochs"] == "expected a positive integer, got 0"
    assert keys["fit.batch_size"] == "expected an integer, got a string ('big')"
    assert keys["split.test_size"] == "expected a value < 1.0, got 1.5"


def test_missing_required_section(write_config, tiny_csv):
    with pytest.raises(CnnCliError) as caught:
        load_config(write_config({"data": {"path": str(tiny_csv)}}))
    (problem,) = problems_of(caught)
    assert problem.where.key == "model"
    assert problem.message == "missing required value"
    assert "layers" in problem.hint


def test_literal_choice_gets_did_you_mean(write_config, tiny_csv):
    config = base_config(tiny_csv)
    config["data"]["missing"] = "dorp"
    with pytest.raises(CnnCliError) as caught:
        load_config(write_config(config))
    (problem,) = problems_of(caught)
    assert problem.where.key == "data.missing"
    assert problem.hint == "did you mean 'drop'?"


@pytest.mark.parametrize(
    ("section", "hint"),
    [
        ({"modle": {}}, "did you mean 'model'?"),  # a top-level key
        (
            {"compile": {"optimizer": {"type": "adam", "args": {}, "lr": 1}}},
            "allowed keys: args, type",
        ),
    ],
    ids=["top-level", "named-object"],
)
def test_unknown_key_hint_lists_what_that_section_allows(write_config, tiny_csv, section, hint):
    config = {**base_config(tiny_csv), **section}
    with pytest.raises(CnnCliError) as caught:
        load_config(write_config(config))
    (problem,) = problems_of(caught)
    assert problem.message.startswith("unknown key")
    assert problem.hint == hint


def test_a_huge_value_is_cut_short_in_the_error_line(write_config, tiny_csv):
    """A 100 KB value used to be echoed whole into the one error line."""
    config = base_config(tiny_csv)
    config["fit"] = {"epochs": "x" * 100_000}
    with pytest.raises(CnnCliError) as caught:
        load_config(write_config(config))
    line = caught.value.one_line()
    assert len(line) < 300
    assert "expected an integer, got a string ('xxxxx" in line and "… (100002 characters)" in line


#: Issue 11: `epochs: <YAML>` → the message and a piece of the hint (None: no hint).
NOT_INTEGERS = {
    "true": ("expected an integer, got a boolean (true)", "write the number itself"),
    '"3"': ("expected an integer, got a string ('3')", "remove the quotes: epochs: 3"),
    "'3'": ("expected an integer, got a string ('3')", "remove the quotes: epochs: 3"),
    "1_000": ("expected an integer, got a string ('1_000')", "write epochs: 1000"),
    "3.0": ("expected an integer, got 3.0", None),
}


@pytest.mark.parametrize("yaml_value", NOT_INTEGERS)
def test_a_boolean_or_quoted_string_is_not_an_integer(write_config, tiny_csv, yaml_value):
    """A YAML boolean or a quoted string is not a number; YAML 1.2 numbers still are."""
    message, hint = NOT_INTEGERS[yaml_value]
    text = yaml.safe_dump(base_config(tiny_csv)).replace("epochs: 1", f"epochs: {yaml_value}")
    with pytest.raises(CnnCliError) as caught:
        load_config(write_config(text))
    (problem,) = problems_of(caught)
    assert problem.where.key == "fit.epochs"
    assert problem.where.line is not None
    assert problem.message == message
    assert (problem.hint is None) if hint is None else (hint in problem.hint)


#: `--set` override → (the key the problem names, its message).
STRICT_SET = {
    "fit.epochs=true": ("fit.epochs", "expected an integer, got a boolean (true)"),
    "split.test_size=false": ("split.test_size", "expected a number, got a boolean (false)"),
    "split.test_size='0.2'": ("split.test_size", "expected a number, got a string ('0.2')"),
    "seed=true": ("seed", "expected an integer, got a boolean (true)"),
    "fit.shuffle=1": ("fit.shuffle", "expected true or false, got 1"),
    "data.streaming=1": ("data.streaming", "expected 'auto' or true or false, got 1"),
    "fit.steps_per_execution=true": (
        "fit.steps_per_execution",
        "expected an integer or 'auto', got a boolean (true)",
    ),
    "model.input_shape=[3, true]": (
        "model.input_shape[1]",
        "expected an integer, got a boolean (true)",
    ),
}


@pytest.mark.parametrize("override", STRICT_SET)
def test_strict_types_through_set_are_one_line_at_the_override(write_config, tiny_csv, override):
    key, message = STRICT_SET[override]
    config = base_config(tiny_csv)
    config["model"]["input_shape"] = [3]  # a file position under the override's key
    with pytest.raises(CnnCliError) as caught:
        load_config(write_config(config), [override])
    (problem,) = problems_of(caught)
    assert (problem.where.file, problem.where.key, problem.message) == (
        f"--set {override}",
        key,
        message,
    )
    assert problem.one_line().startswith(f"--set {override}: {key}: {message}")


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        ("fit.epochs=0x10", 16),
        ("fit.epochs=010", 10),
        ("split.test_size=1e-1", 0.1),
        ("split.test_size=.5", 0.5),
        ("data.streaming=true", True),
        ("data.streaming=auto", "auto"),
        ("fit.steps_per_execution=4", 4),
        ("fit.steps_per_execution=auto", "auto"),
    ],
)
def test_yaml_1_2_numbers_and_unions_still_work(write_config, tiny_csv, override, expected):
    config = load_config(write_config(base_config(tiny_csv)), [override])
    section, name = override.split("=")[0].split(".")
    value = getattr(getattr(config, section), name)
    assert value == expected and type(value) is type(expected)


@pytest.mark.parametrize("key", ["data.path", "data.test_path", "output.dir"])
def test_a_nul_character_in_a_path_is_one_line(write_config, tiny_csv, key):
    """Found by the --set property test: open() raised ValueError, reported as a bug (exit 1)."""
    override = f'{key}="a\\0b"'
    with pytest.raises(CnnCliError) as caught:
        load_config(write_config(base_config(tiny_csv)), [override])
    (problem,) = problems_of(caught)
    assert (
        problem.one_line() == f"--set {override}: {key}: a path cannot hold a NUL character (\\0)"
    )


@pytest.mark.parametrize(
    ("weight", "expected"),
    [
        (".nan", "expected a finite number, got nan; write an ordinary number (not .nan or .inf)"),
        ("0", "expected a value > 0.0, got 0"),  # a number, not "a positive integer"
    ],
)
def test_a_class_weight_is_described_as_the_number_it_is(write_config, tiny_csv, weight, expected):
    with pytest.raises(CnnCliError) as caught:
        load_config(write_config(base_config(tiny_csv)), [f"fit.class_weight={{low: {weight}}}"])
    [problem] = problems_of(caught)
    assert problem.one_line().endswith(f"fit.class_weight.low: {expected}")


@pytest.mark.parametrize(
    ("value", "got", "hint"),
    [
        (
            "[1,2]",
            "a list ([1, 2])",
            "for example `class_weight: balanced` or `class_weight: {rare: 5.0}`",
        ),
        ("3", "3", "for example `class_weight: balanced` or `class_weight: {rare: 5.0}`"),
        (
            "auto",
            "a string ('auto')",
            "for example `class_weight: balanced` or `class_weight: {rare: 5.0}`",
        ),
        ("balance", "a string ('balance')", "did you mean 'balanced'?"),
    ],
)
def test_a_class_weight_of_neither_form_names_both_forms(write_config, tiny_csv, value, got, hint):
    """Hostile review: a list said "use one of: balanced", hiding the {class: weight} form."""
    override = f"fit.class_weight={value}"
    with pytest.raises(CnnCliError) as caught:
        load_config(write_config(base_config(tiny_csv)), [override])
    [problem] = problems_of(caught)
    assert problem.one_line() == (
        f"--set {override}: fit.class_weight: expected 'balanced' or a mapping {{class: weight}},"
        f" got {got}; {hint}"
    )


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        (
            "compile.loss=[mse]",
            "compile.loss: expected a name or a mapping with a type, got a list (['mse']);"
            " for example `mse` or `{type: Huber, delta: 1.0}`",
        ),
        (
            "model.layers[0]=7",
            "model.layers[0]: expected a name or a mapping with a type, got 7;"
            " for example `Flatten` or `{type: Dense, units: 8}`",
        ),
        (
            "name=" + "a" * 90,
            "name: 90 characters, more than the 80 allowed; shorten it to 80 characters or fewer",
        ),
    ],
    ids=["loss-list", "layer-number", "long-name"],
)
def test_a_named_object_or_a_long_name_is_described_in_cnncli_words(
    write_config, tiny_csv, override, expected
):
    """These said 'expected a mapping' (a name works too) and pydantic's 'String should have…'."""
    with pytest.raises(CnnCliError) as caught:
        load_config(write_config(base_config(tiny_csv)), [override])
    (problem,) = problems_of(caught)
    assert problem.one_line().endswith(expected)
