"""data.py: reading a CSV into clean arrays, and the one-line message for each way a CSV goes wrong.

These tests call ``load_dataset`` directly (no TensorFlow); tests/test_faults.py checks the same
errors end to end through ``cnncli train`` with exit code 2.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from cnncli.config.models import load_config
from cnncli.data.table import (
    check_classes,
    describe_cleaning,
    label_values,
    line_numbers,
    load_dataset,
)
from cnncli.errors import CnnCliError
from tests.conftest import base_config, seed_like_rows


def dataset_of(tmp_path: Path, write_config, text: str | bytes, **data):
    csv = tmp_path / "data.csv"
    if isinstance(text, bytes):
        csv.write_bytes(text)
    else:
        csv.write_text(text)
    config = load_config(write_config(base_config(csv, data={"path": str(csv), **data})))
    return config, csv


def load(tmp_path, write_config, text, **data):
    config, _ = dataset_of(tmp_path, write_config, text, **data)
    return load_dataset(config)


def test_clean_file_gives_float_features_and_raw_labels(tmp_path, write_config):
    dataset = load(tmp_path, write_config, seed_like_rows(20))
    assert dataset.rows == 20
    assert dataset.columns.features == ("x1", "x2", "x3")
    assert dataset.columns.categorical == ()
    assert all(values.dtype == np.float64 for values in dataset.features.values())
    assert set(dataset.labels) == {"low", "medium", "high"}


def test_text_column_is_categorical_but_a_numeric_column_with_a_typo_is_an_error(
    tmp_path, write_config
):
    text = "colour,size,label\n" + "".join(
        f"{c},{i},{'a' if i % 2 else 'b'}\n" for i, c in enumerate("rgbrgbrgb")
    )
    dataset = load(tmp_path, write_config, text)
    assert dataset.columns.categorical == ("colour",)
    typo = text.replace("g,4,", "g,4x,")
    with pytest.raises(CnnCliError) as caught:
        load(tmp_path, write_config, typo)
    assert caught.value.message == "numeric column holds text '4x'"
    assert caught.value.where.key == "column 'size'"
    assert caught.value.where.line == 6


def test_line_numbers_count_blank_lines_and_quoted_newlines(tmp_path):
    csv = tmp_path / "lines.csv"
    csv.write_text('a,b\n1,2\n\n3,"multi\nline"\n4,5\n')
    assert line_numbers(csv, ",", [0, 1, 2]) == [2, 4, 6]


def test_error_line_is_right_after_a_blank_line(tmp_path, write_config):
    rows = seed_like_rows(10).splitlines()
    rows.insert(3, "")  # a blank line 4: pandas skips it, so row + 2 would be off by one
    rows[6] = rows[6].replace(rows[6].split(",")[1], "oops", 1)
    with pytest.raises(CnnCliError) as caught:
        load(tmp_path, write_config, "\n".join(rows) + "\n")
    assert caught.value.where.line == 7
    assert "'oops'" in caught.value.message


def test_infinite_value_is_reported(tmp_path, write_config):
    text = seed_like_rows(6).replace("\n", "\ninf,1,1,low\n", 1)
    with pytest.raises(CnnCliError, match="infinite value") as caught:
        load(tmp_path, write_config, text)
    assert caught.value.where.line == 2


def test_long_first_row_is_ragged_not_an_index(tmp_path, write_config):
    # pandas would take the first column as the index and shift every value one column left
    text = "x1,x2,x3,label\n1,2,3,low,extra\n4,5,6,high\n"
    with pytest.raises(CnnCliError) as caught:
        load(tmp_path, write_config, text)
    assert caught.value.message == "line 2 has 5 cells but the header has 4"
    assert caught.value.where.line == 2


def test_short_row_is_ragged_not_empty_cells(tmp_path, write_config):
    text = seed_like_rows(6) + "1.0,2.0,low\n"
    for policy in ("error", "drop", "mean"):
        with pytest.raises(CnnCliError, match="line 8 has 3 cells but the header has 4"):
            load(tmp_path, write_config, text, missing=policy)


def test_trailing_delimiter_in_header_is_named(tmp_path, write_config):
    with pytest.raises(CnnCliError, match="header column 5 has no name"):
        load(tmp_path, write_config, "x1,x2,x3,label,\n1,2,3,a,\n")


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (
            b"x1;x2;x3;label\n1;2;3;a\n",
            "the header has one column when split on ',' but contains ';'",
        ),
        (
            "x1,x2,x3,label\n1,2,3,caf\u00e9\n".encode("latin-1"),
            "data file is not UTF-8 text (byte 0xe9 on line 2)",
        ),
        (
            "x1,x2,x3,label\n1,2,3,a\n".encode("utf-16"),
            "data file is UTF-16 text, not UTF-8 CSV text",
        ),
        (
            b"PK\x03\x04\x14\x00\x00\x00",
            "data file is a zip archive (an Excel workbook?), not UTF-8 CSV text",
        ),
        (b"\x1f\x8b\x08\x00\x00\x00", "data file is gzip-compressed, not UTF-8 CSV text"),
    ],
    ids=["semicolons", "latin-1", "utf-16", "xlsx", "gzip"],
)
def test_wrong_delimiter_or_encoding_is_named(tmp_path, write_config, raw, message):
    with pytest.raises(CnnCliError) as caught:
        load(tmp_path, write_config, raw)
    assert caught.value.message == message
    assert caught.value.where.file.endswith("data.csv")


def test_tab_file_with_tab_delimiter_configured_reads(tmp_path, write_config):
    text = seed_like_rows(20).replace(",", "\t")
    assert load(tmp_path, write_config, text, delimiter="\t").rows == 20
    with pytest.raises(CnnCliError, match=r"set data.delimiter: '\\t'"):
        load(tmp_path, write_config, text)


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


def test_test_file_with_other_columns_names_them(tmp_path, write_config):
    config, _ = dataset_of(tmp_path, write_config, seed_like_rows(20))
    train = load_dataset(config)
    other = tmp_path / "test.csv"
    other.write_text("x1,x2,y\n1,2,low\n")
    with pytest.raises(CnnCliError) as caught:
        load_dataset(config, str(other), train.columns)
    assert (
        caught.value.message
        == "2 column(s) of the training data are missing: x3, label (the file has x1, x2, y)"
    )
    assert caught.value.where.file == str(other)


def test_single_class_and_too_small_class(tmp_path, write_config):
    config, _ = dataset_of(tmp_path, write_config, "x1,label\n1,a\n2,a\n3,a\n")
    dataset = load_dataset(config)
    with pytest.raises(CnnCliError, match=r"single class \('a'\) in all 3 rows") as caught:
        check_classes(config, dataset, label_values(dataset.labels), "classification")
    assert caught.value.where.key == "column 'label'"
    config, _ = dataset_of(tmp_path, write_config, seed_like_rows(12) + "\n1,2,3,rare\n")
    dataset = load_dataset(config)
    with pytest.raises(CnnCliError) as caught:
        check_classes(config, dataset, label_values(dataset.labels), "classification")
    assert caught.value.message == "class 'rare' has only 1 row (line 15), too few to stratify"
    assert caught.value.where.line == 15
    check_classes(config, dataset, label_values(dataset.labels), "regression")  # no classes there


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "data file is empty"),
        ("\n\n", "data file is empty"),
        ("x1,x2,x3,label\n", "data file has a header but no rows"),
    ],
    ids=["empty", "blank-lines", "header-only"],
)
def test_empty_and_header_only(tmp_path, write_config, text, message):
    with pytest.raises(CnnCliError) as caught:
        load(tmp_path, write_config, text)
    assert caught.value.message == message


def test_missing_file(tmp_path, write_config):
    config, csv = dataset_of(tmp_path, write_config, seed_like_rows(4))
    csv.unlink()
    with pytest.raises(CnnCliError, match="data file not found"):
        load_dataset(config)
