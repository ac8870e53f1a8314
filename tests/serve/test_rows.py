"""``--input`` rows: feature order or name=value, finite numbers, helpful messages."""

from __future__ import annotations

import numpy as np
import pytest

from cnncli.cli import cli
from cnncli.data.preprocess import FeatureTransform, LabelTransform, Preprocessor
from cnncli.errors import CnnCliError
from cnncli.serve.rows import parse_input

PRE = Preprocessor(
    features=(
        FeatureTransform("x1", "numeric", center=1.0, scale=2.0),
        FeatureTransform("x2", "numeric"),
        FeatureTransform("x3", "numeric"),
    ),
    label=LabelTransform("onehot", "label", ("a", "b")),
    input_shape=(3,),
)


# ---------------------------------------------------------------------------------------------
# --input parsing: no model needed


def test_an_empty_cell_is_taken_where_the_run_fills_it():
    filled = Preprocessor(
        features=(FeatureTransform("x1", "numeric", fill=2.0), FeatureTransform("x2", "numeric")),
        label=PRE.label,
        input_shape=(2,),
    )
    row = parse_input(filled, "x1=,x2=4", missing="mean")
    assert np.isnan(row["x1"]) and row["x2"] == 4.0
    with pytest.raises(CnnCliError, match="column 'x2' is empty"):
        parse_input(filled, "1,", missing="mean")  # x2 has no fill: trained without empty cells


def test_an_empty_category_reads_as_the_file_reader_reads_it():
    # --input-file and training read '', 'NA' as NaN (no category); --input kept the text
    pre = Preprocessor(
        features=(FeatureTransform("c", "categorical", categories=("u", "v")),),
        label=PRE.label,
        input_shape=(2,),
    )
    for text in ("c=", "c=NA", "c= NaN "):
        assert np.isnan(parse_input(pre, text, missing="mean")["c"])
    assert parse_input(pre, "c=u", missing="mean")["c"] == "u"


def test_a_missing_value_spelled_as_text_is_not_called_empty():
    """Issue 11: a cell reading 'NA' was reported as "empty"."""
    pre = Preprocessor(
        features=(FeatureTransform("c", "categorical", categories=("u", "v")),),
        label=PRE.label,
        input_shape=(2,),
    )
    with pytest.raises(CnnCliError) as caught:
        parse_input(pre, "c=NA")
    assert caught.value.message == "column 'c': 'NA' reads as a missing value"
    with pytest.raises(CnnCliError) as caught:
        parse_input(pre, "c=")
    assert caught.value.message == "column 'c' is empty"


def test_input_in_feature_order_or_by_name():
    assert parse_input(PRE, "3,30,5") == {"x1": 3.0, "x2": 30.0, "x3": 5.0}
    assert parse_input(PRE, "x3=5, x1=3,x2=30") == {"x1": 3.0, "x2": 30.0, "x3": 5.0}


MIXED = Preprocessor(
    features=(
        FeatureTransform("x1", "numeric"),
        FeatureTransform("city", "categorical", categories=("York, UK", "Paris")),
        FeatureTransform("x3", "numeric"),
    ),
    label=PRE.label,
    input_shape=(4,),
)


@pytest.mark.parametrize(
    ("text", "city"),
    [
        ('3,"York, UK",5', "York, UK"),
        ('x3=5,city="York, UK",x1=3', "York, UK"),
        ('3, "say ""hi"", ok" ,5', 'say "hi", ok'),
        ('3,"a=b",5', "a=b"),
        ("3,Paris,5", "Paris"),
    ],
)
def test_input_honours_csv_quoting(text, city):
    """Issue 11: a category with a comma could not be entered."""
    assert parse_input(MIXED, text) == {"x1": 3.0, "city": city, "x3": 5.0}


def test_an_unclosed_quote_is_one_line():
    with pytest.raises(CnnCliError, match="a quote is not closed") as caught:
        parse_input(MIXED, '3,"York, UK,5')
    assert caught.value.where.file == '--input 3,"York, UK,5'


def test_a_feature_named_twice_is_refused():
    """Issue 11: `x1=3,x1=4` silently took the last value."""
    with pytest.raises(CnnCliError) as caught:
        parse_input(PRE, "x1=3,x1=4,x2=1,x3=2")
    assert caught.value.one_line() == (
        "--input x1=3,x1=4,x2=1,x3=2: x1 is given twice ('3' and '4'); give each feature once"
    )


def test_wrong_count_names_the_features():
    with pytest.raises(CnnCliError) as caught:
        parse_input(PRE, "3,30")
    assert caught.value.message == "got 2 value(s), the model expects 3: x1, x2, x3"


def test_unknown_name_suggests_the_closest_or_lists_the_features():
    with pytest.raises(CnnCliError, match="unknown feature 'x1x'") as caught:
        parse_input(PRE, "x1x=1,x2=2,x3=3")
    assert caught.value.hint == "did you mean 'x1'?"
    with pytest.raises(CnnCliError, match="unknown feature 'speed'") as caught:
        parse_input(PRE, "speed=1,x2=2,x3=3")
    assert caught.value.hint == "features are: x1, x2, x3"


@pytest.mark.parametrize(
    ("text", "message"), [("1,abc,3", "holds text 'abc'"), ("1,inf,3", "infinite value")]
)
def test_values_must_be_finite_numbers(text, message):
    with pytest.raises(CnnCliError, match=message):
        parse_input(PRE, text)


# ---------------------------------------------------------------------------------------------
# Through `cnncli predict --input`: one error line and exit 2, or a warning and a prediction


@pytest.mark.slow
@pytest.mark.parametrize(
    ("value", "message"),
    [
        (
            "3,nan,5",
            "error: --input 3,nan,5: column 'x2': 'nan' reads as a missing value;"
            " give a finite number",
        ),
        ("3,,5", "error: --input 3,,5: column 'x2' is empty; give a finite number"),
        ("3,abc,5", "error: --input 3,abc,5: column 'x2': numeric column holds text 'abc'"),
        ("3,30", "error: --input 3,30: got 2 value(s), the model expects 3: x1, x2, x3"),
        ("3,30,5,7", "error: --input 3,30,5,7: got 4 value(s), the model expects 3: x1, x2, x3"),
    ],
)
def test_predict_input_faults(runner, seed_run, value, message):
    result = runner.invoke(cli, ["predict", str(seed_run), "--input", value])
    assert result.exit_code == 2
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert errors[0].startswith(message)


@pytest.mark.slow
def test_predict_out_of_range_warns_and_keeps_going(runner, seed_run):
    result = runner.invoke(cli, ["predict", str(seed_run), "--input", "300,30,5"])
    assert result.exit_code == 0
    assert "x1: 1 value(s) outside the training range" in result.stderr
    assert "→" in result.stdout


def test_a_control_character_in_input_is_escaped_in_the_error():
    """Hostile review: ``--input 3,<ESC>[31m,5`` was echoed raw in the error's prefix."""
    with pytest.raises(CnnCliError) as caught:
        parse_input(PRE, "3,\x1b[31m,5")
    assert caught.value.one_line() == (
        "--input 3,\\x1b[31m,5: column 'x2': numeric column holds text '\\x1b[31m';"
        " give a finite number"
    )


@pytest.mark.slow
def test_a_control_character_in_input_is_never_echoed_raw(runner, mixed_run):
    """An unseen category holding an ESC: the warning and the echoed row show it escaped."""
    result = runner.invoke(
        cli, ["predict", str(mixed_run), "--input", "x1=1,color=re\x1b[2Jd,x2=3"]
    )
    assert result.exit_code == 0, result.output
    assert "\x1b[2J" not in result.stdout + result.stderr
    assert result.stdout.startswith("x1=1,color=re\\x1b[2Jd,x2=3 → ")
    assert "re\\x1b[2Jd" in result.stderr  # the unseen-category warning names it
