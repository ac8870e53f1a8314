"""cnncli/errors.py: the one-line error and the one did-you-mean every message uses."""

from __future__ import annotations

from cnncli.errors import CnnCliError, Location, did_you_mean, escape_controls


def test_a_case_slip_says_names_are_case_sensitive():
    assert did_you_mean("Conv1d", ["Conv1D", "Dense"]) == (
        "did you mean 'Conv1D'? names are case-sensitive"
    )


def test_a_typo_gets_the_closest_name_and_nothing_close_gets_the_fallback():
    assert did_you_mean("Dense2", ["Conv1D", "Dense"], "known: Conv1D, Dense") == (
        "did you mean 'Dense'?"
    )
    assert did_you_mean("zzz", ["Conv1D", "Dense"], "known: Conv1D, Dense") == (
        "known: Conv1D, Dense"
    )
    assert did_you_mean("zzz", ["Conv1D"]) == ""


def test_an_error_is_one_line_with_where_what_and_hint():
    error = CnnCliError(
        "expected a positive integer, got 0",
        where=Location(file="c.yaml", key="model.layers[2].units", line=14, column=17),
        hint="set units to the number of neurons",
    )
    assert error.one_line() == (
        "c.yaml:14:17: model.layers[2].units: expected a positive integer, got 0;"
        " set units to the number of neurons"
    )


def test_a_line_break_quoted_into_a_message_stays_one_line():
    """A class name from a CSV cell ('a\\nb', or '\\x1e', which splitlines also breaks at) used
    to split an error in two lines."""
    error = CnnCliError("classes are: a\nb, \x1e", hint="see \u2028 here")
    assert error.one_line() == "classes are: a\\nb, \\x1e; see \\u2028 here"
    assert len(error.one_line().splitlines()) == 1


def test_a_control_character_in_a_message_or_location_is_shown_not_obeyed():
    """Hostile review: an ESC typed into --set or --input was echoed raw in the error's prefix,
    so the terminal obeyed it (``\\x1b[31m`` turned the rest of the line red)."""
    error = CnnCliError(
        "got '\x1b]0;title\x07'",
        where=Location(file="--set fit.epochs=\x1b[31mred", key="k\x00\x7f\x9b"),
        hint="see \u202eevil\t",
    )
    assert error.one_line() == (
        "--set fit.epochs=\\x1b[31mred: k\\x00\\x7f\\x9b: got '\\x1b]0;title\\x07';"
        " see \\u202eevil\\t"
    )
    assert escape_controls("é ✓ naïve, 3.5") == "é ✓ naïve, 3.5"  # printable text stays as is
