"""data/cells.py: one set of cell rules (numbers, text, infinite values, empty cells under
``data.missing``) for in-memory training, streaming training and predict."""

from __future__ import annotations

import pytest

from cnncli.data.cells import describe_cleaning
from cnncli.errors import CnnCliError
from tests.conftest import seed_like_rows
from tests.data.test_table import load


def test_infinite_value_is_reported(tmp_path, write_config):
    text = seed_like_rows(6).replace("\n", "\ninf,1,1,low\n", 1)
    with pytest.raises(CnnCliError, match="infinite value") as caught:
        load(tmp_path, write_config, text)
    assert caught.value.where.line == 2


def test_missing_cells_error_lists_lines(tmp_path, write_config):
    rows = seed_like_rows(12).splitlines()
    for line in (3, 9):  # 0-based index in the list = file line - 1
        cells = rows[line].split(",")
        cells[1] = ""
        rows[line] = ",".join(cells)
    with pytest.raises(CnnCliError) as caught:
        load(tmp_path, write_config, "\n".join(rows) + "\n")
    assert caught.value.message == "2 empty cell(s) on line(s) 4, 10"
    assert caught.value.where.key == "column 'x2'"
    assert "data.missing: drop or mean" in caught.value.hint


def test_drop_and_mean_report_what_they_did(tmp_path, write_config):
    rows = seed_like_rows(12).splitlines()
    rows[3] = ",".join(["", *rows[3].split(",")[1:]])
    rows[5] = ",".join([rows[5].split(",")[0], "", *rows[5].split(",")[2:]])
    text = "\n".join(rows) + "\n"
    dropped = load(tmp_path, write_config, text, missing="drop")
    assert (dropped.rows, dropped.dropped_rows) == (10, 2)
    assert (
        describe_cleaning(dropped)
        == "dropped 2 of 12 row(s) with empty cells from data.csv (missing: drop)"
    )
    assert dropped.lines([2, 3]) == [5, 7]  # rows after the dropped lines 4 and 6 keep their lines
    filled = load(tmp_path, write_config, text, missing="mean")
    assert (filled.rows, filled.filled_cells) == (12, 2)
    assert (
        describe_cleaning(filled)
        == "filled 2 empty cell(s) in data.csv with the column mean (missing: mean)"
    )


def test_empty_label_is_dropped_under_drop_but_an_error_under_mean(tmp_path, write_config):
    text = seed_like_rows(6) + "1.0,2.0,3.0,\n"
    assert load(tmp_path, write_config, text, missing="drop").dropped_rows == 1
    with pytest.raises(CnnCliError, match=r"1 empty cell\(s\) on line\(s\) 8") as caught:
        load(tmp_path, write_config, text, missing="mean")
    assert caught.value.where.key == "column 'label'"


def test_drop_that_leaves_nothing_says_so(tmp_path, write_config):
    with pytest.raises(CnnCliError, match="all 2 rows have an empty cell"):
        load(tmp_path, write_config, "x1,x2,x3,label\n1,,3,a\n,2,3,b\n", missing="drop")
