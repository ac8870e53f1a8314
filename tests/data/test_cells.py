"""data/cells.py: one set of cell rules (numbers, text, infinite values, empty cells under
``data.missing``) for in-memory training, streaming training and predict."""

from __future__ import annotations

import numpy as np
import pytest

from cnncli.data.cells import describe_cleaning
from cnncli.errors import CnnCliError
from tests.conftest import seed_like_rows
from tests.data.test_table import dataset_of, load


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


class _StubPredictor:
    """What ``predict_file`` reads of a predictor, without a model (the error comes first)."""

    backend = "stub"

    def __init__(self, pre):
        from types import SimpleNamespace

        self.preprocessor = pre
        self.run = SimpleNamespace(config={"data": {}})

    def outputs(self, features):
        return np.zeros((len(features), 2), dtype=np.float32)


def test_an_infinite_cell_is_the_same_error_in_memory_streamed_and_predicted(
    tmp_path, write_config
):
    from pathlib import Path

    from cnncli.data.chunks import read_chunks, read_columns
    from cnncli.data.table import load_dataset
    from cnncli.serve.batch import predict_file
    from cnncli.serve.rows import parse_input
    from tests.conftest import fit_preprocessor

    text = "x1,x2,label\n1,2,a\n3,-inf,b\n5,6,a\n7,8,b\n"
    config, csv = dataset_of(tmp_path, write_config, text)
    with pytest.raises(CnnCliError) as in_memory:
        load_dataset(config)
    columns, label_text = read_columns(config, str(csv))
    with pytest.raises(CnnCliError) as streamed:
        list(read_chunks(config, str(csv), columns, label_text))
    pre = fit_preprocessor(
        {"x1": np.array([1.0, 5.0]), "x2": np.array([2.0, 6.0])},
        np.array(["a", "b"]),
        categorical=(),
        feature_method="standard",
        label_kind="onehot",
        fill_missing=False,
        label_name="label",
    )
    with pytest.raises(CnnCliError) as predicted:
        predict_file(_StubPredictor(pre), Path(csv), tmp_path / "out.csv")

    with pytest.raises(CnnCliError) as one_row:
        parse_input(pre, "3,-inf")

    expected = f"{csv}:3: column 'x2': numeric column holds an infinite value"
    assert in_memory.value.one_line().split("; ")[0] == expected
    assert streamed.value.one_line().split("; ")[0] == expected
    assert predicted.value.one_line().split("; ")[0] == expected
    # predict --input: the same words, placed at the row given on the command line
    assert one_row.value.one_line().split("; ")[0] == (
        "--input 3,-inf: column 'x2': numeric column holds an infinite value"
    )


def test_the_empty_cell_strings_are_pandas_own():
    """``--input`` checks cells without pandas, so cnncli keeps its own copy of pandas' list."""
    from pandas._libs.parsers import STR_NA_VALUES

    from cnncli.data.cells import NA_STRINGS

    assert NA_STRINGS == frozenset(STR_NA_VALUES)


def test_inf_text_in_a_text_column_is_refused_too(tmp_path, write_config):
    text = "x1,x2,label\n1,2 ,a\n3,inf ,b\n5,6,a\n7,8,b\n"  # trailing spaces: read as text
    with pytest.raises(CnnCliError, match="infinite value") as caught:
        load(tmp_path, write_config, text)
    assert caught.value.where.line == 3


def test_empty_cells_name_the_same_column_in_memory_and_streamed(tmp_path, write_config):
    from cnncli.data.chunks import read_chunks, read_columns
    from cnncli.data.table import load_dataset

    text = "x1,x2,label\n1,2,a\n,4,b\n5,,a\n7,8,b\n"  # x1 empty first in the file
    config, csv = dataset_of(tmp_path, write_config, text, features=["x2", "x1"])
    with pytest.raises(CnnCliError) as in_memory:
        load_dataset(config)
    columns, label_text = read_columns(config, str(csv))
    with pytest.raises(CnnCliError) as streamed:
        list(read_chunks(config, str(csv), columns, label_text))
    assert in_memory.value.where.key == "column 'x2'"  # data.features' order decides
    assert streamed.value.one_line() == in_memory.value.one_line()


@pytest.mark.parametrize("text", ["١٢", "１２", "1.５"])
def test_non_ascii_digits_are_text_as_pandas_reads_them(text):
    # float() takes them, pandas does not: --input accepted what training refuses, and
    # predict --input-file --skip-bad-rows crashed (exit 1) when such a row met pandas
    from cnncli.data.cells import cell_problem

    assert cell_problem("x", text, numeric=True, may_be_empty=False) == (
        f"column 'x': numeric column holds text {text!r}"
    )


@pytest.mark.parametrize("text", ["NAN", "+nan", "Nan", "NaN "])
def test_nan_spellings_pandas_does_not_take_as_empty_are_text(text):
    # training reads them as text; predict took them as empty cells, and --input-file
    # --skip-bad-rows then crashed (exit 1) when pandas met such a row
    from cnncli.data.cells import cell_problem

    assert cell_problem("x", text, numeric=True, may_be_empty=True) == (
        f"column 'x': numeric column holds text {text.strip()!r}"
    )
    assert cell_problem("x", " NaN", numeric=True, may_be_empty=True) is None


def test_a_number_beyond_float32_is_refused_by_training_and_predict(tmp_path, write_config):
    """1e39 is finite as float64 but infinite in the model's float32: predict printed NaN."""
    from cnncli.serve.rows import parse_input
    from tests.conftest import fit_preprocessor

    text = seed_like_rows(6).replace("\n", "\n1e39,1,1,low\n", 1)
    with pytest.raises(CnnCliError) as in_memory:
        load(tmp_path, write_config, text)
    assert in_memory.value.message == (
        "numeric column holds a number beyond float32's range (±3.4e38)"
    )
    assert in_memory.value.where.line == 2
    pre = fit_preprocessor(
        {"x1": np.array([1.0, 5.0])},
        np.array(["a", "b"]),
        categorical=(),
        feature_method="standard",
        label_kind="onehot",
        fill_missing=False,
    )
    with pytest.raises(CnnCliError) as one_row:
        parse_input(pre, "-1e39")
    assert one_row.value.message == (
        "column 'x1': numeric column holds a number beyond float32's range (±3.4e38)"
    )
    assert parse_input(pre, "3.4e38") == {"x1": 3.4e38}  # the largest float32s still pass
