"""config/messages.py: pydantic's errors as one-line messages with a place and a hint."""

from __future__ import annotations

import pytest

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
    assert keys["fit.batch_size"] == "expected an integer, got 'big'"
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
    assert "expected an integer, got 'xxxxx" in line and "… (100002 characters)" in line
