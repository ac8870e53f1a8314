"""Dirty data through ``cnncli train``: one line naming the file, the column and the line, exit 2.

Each case writes one faulty CSV and checks the whole error line the README's table promises; the
rules themselves are tested module by module beside this file.
"""

from __future__ import annotations

import pytest

from cnncli.cli import cli
from tests.conftest import base_config, error_lines, seed_like_rows

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
    "single-class": (  # caught when train reads the file, before any model is built
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
