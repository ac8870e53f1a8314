"""A JSON request's rows through the cell rules: ``cnncli/serve/records.py``."""

from __future__ import annotations

import numpy as np
import pytest

from cnncli.errors import CnnCliError
from cnncli.serve.records import BadRequest, load_body, request_rows, rows_to_inputs
from cnncli.serve.rows import parse_input
from tests.conftest import fit_preprocessor


def fitted(columns: dict[str, np.ndarray], categorical=(), fill_missing=False):
    """A run's preprocessing fitted on ``columns`` (a classifier of two classes)."""
    rows = len(next(iter(columns.values())))
    labels = np.asarray(["a", "b"] * rows, dtype=object)[:rows]
    return fit_preprocessor(
        columns,
        labels,
        categorical=list(categorical),
        feature_method="standard",
        label_kind="onehot",
        fill_missing=fill_missing,
    )


@pytest.fixture
def pre():
    columns = {
        "x1": np.array([1.0, 2.0, 3.0]),
        "color": np.array(["red", "blue", "red"], dtype=object),
    }
    return fitted(columns, categorical=["color"])


def test_rows_and_records_give_the_same_columns(pre):
    by_position = rows_to_inputs(pre, "rows", [[1.5, "red"], ["2", "blue"]])
    by_name = rows_to_inputs(
        pre, "records", [{"color": "red", "x1": 1.5}, {"x1": 2, "color": "blue"}]
    )
    for columns in (by_position, by_name):
        assert columns["x1"].tolist() == [1.5, 2.0]
        assert columns["x1"].dtype == np.float64
        assert columns["color"].tolist() == ["red", "blue"]


def test_text_cells_are_trimmed_as_predict_input_trims_them(pre):
    # " red" was an unseen category over HTTP and red in `predict --input 1, red`
    texts = ["1, red ", "2,\tblue", "3,red"]
    printed = [parse_input(pre, text) for text in texts]
    for rows in ([[1, " red "], [2, "\tblue"], [3, "red"]], [[1, " red "], [2, "\tblue"], [3, 5]]):
        served = rows_to_inputs(pre, "rows", rows)  # all text (one step) or a number (each cell)
        expected = [row["color"] for row in printed][: len(rows) - 1]
        assert served["color"].tolist()[:2] == expected == ["red", "blue"]
    with pytest.raises(CnnCliError) as printed_error:
        parse_input(pre, "1,  NA ")
    with pytest.raises(BadRequest) as served_error:
        rows_to_inputs(pre, "records", [{"x1": 1, "color": "  NA "}])
    assert served_error.value.message == printed_error.value.message
    assert "'NA' reads as a missing value" in served_error.value.message


def test_plain_numbers_take_the_one_step_path_and_text_the_cell_rules():
    pre = fitted({"a": np.array([1.0, 2.0]), "b": np.array([3.0, 4.0])})
    assert rows_to_inputs(pre, "rows", [[1, 2.5], [3, 4]])["b"].tolist() == [2.5, 4.0]
    assert rows_to_inputs(pre, "rows", [[" 1 ", "2e1"]])["b"].tolist() == [20.0]
    with pytest.raises(BadRequest, match=r"rows\[1\]: column 'a': numeric column holds text '1_0'"):
        rows_to_inputs(pre, "rows", [[1, 2], ["1_0", 2]])
    with pytest.raises(BadRequest, match="a JSON boolean is not a cell") as caught:
        rows_to_inputs(pre, "rows", [[True, 2]])
    assert (caught.value.status, caught.value.row, caught.value.column) == (422, 0, "a")
    with pytest.raises(BadRequest, match="column 'b': numeric column holds an infinite value"):
        rows_to_inputs(pre, "rows", [[1, 10**400]])


def test_an_empty_cell_is_taken_only_where_the_run_fills_it():
    pre = fitted({"a": np.array([1.0, 3.0])}, fill_missing=True)
    assert np.isnan(rows_to_inputs(pre, "rows", [[None]], "mean")["a"][0])
    strict = fitted({"a": np.array([1.0, 3.0])})
    with pytest.raises(BadRequest, match=r"rows\[0\]: column 'a' is empty"):
        rows_to_inputs(strict, "rows", [[None]])


def test_body_shapes_and_limits(pre):
    assert request_rows(load_body(b'{"rows": []}'), 5) == ("rows", [])
    with pytest.raises(BadRequest, match="7 rows in one request, over the limit of 5") as caught:
        request_rows({"rows": [[1, "red"]] * 7}, 5)
    assert caught.value.status == 413
    with pytest.raises(BadRequest, match="the body has both 'rows' and 'records'"):
        request_rows({"rows": [], "records": []}, 5)
    with pytest.raises(BadRequest, match="'records' is a JSON object, not a list"):
        request_rows({"records": {}}, 5)
    with pytest.raises(BadRequest, match="-Infinity is not a JSON number"):
        load_body(b'{"rows": [[-Infinity]]}')
    with pytest.raises(BadRequest, match="the key 'x1' appears twice in one object"):
        load_body(b'{"records": [{"x1": 1, "x1": 2}]}')
    with pytest.raises(BadRequest, match="nests too deeply"):
        load_body(b"[" * 100_000 + b"]" * 100_000)
    assert BadRequest(400, "x", row=2, column="c").to_json() == {
        "error": "x",
        "row": 2,
        "line": None,
        "column": "c",
        "hint": None,
    }
