"""data.columns (numeric, categorical, date, drop), the date rule and transform, and what
validate, summary and train say each column becomes (issue 10: column types for real tables)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from cnncli.config.models import load_config
from cnncli.data.cells import cell_problem, parse_date, parse_dates
from cnncli.data.columns import RowIds, describe_columns, text_advice
from cnncli.data.preprocess import (
    DATE_INPUTS,
    PreprocessingFit,
    Preprocessor,
    transform_features,
)
from cnncli.data.table import load_dataset
from cnncli.errors import CnnCliError
from tests.conftest import CARS_COLUMNS, cars_config, cars_rows, problems_of

# ---------------------------------------------------------------------------------------------
# The date rule


@pytest.mark.parametrize(
    ("text", "day"),
    [
        ("1970-01-01", 0.0),
        ("2024-02-29", 19782.0),
        (" 2021-12-31 ", 18992.0),
        ("2021-12-31T23:59", 18992.0),  # the time does not count
        ("2021-12-31 23:59:59.5+02:00", 18992.0),
        ("2021-12-31Z", None),  # a zone needs a time
        ("2021-02-30", None),  # the right shape, no such day
        ("31/12/2021", None),
        ("2021-1-5", None),
        ("2021", None),
    ],
)
def test_a_date_is_iso_with_an_optional_time(text, day):
    assert parse_date(text) == day


def test_parse_dates_reads_each_cell_and_leaves_empty_and_bad_ones_nan():
    days = parse_dates(np.array(["1970-01-02", None, "x", "1970-01-02", np.nan], dtype=object))
    assert days[0] == days[3] == 1.0
    assert np.isnan(days[1:3]).all() and np.isnan(days[4])


def test_a_date_cell_row_by_row_follows_the_same_rule():
    assert cell_problem("sold", "2021-03-04", numeric=False, may_be_empty=False, date=True) is None
    assert cell_problem("sold", "", numeric=False, may_be_empty=False, date=True) == (
        "column 'sold' is empty"
    )
    assert cell_problem("sold", "", numeric=False, may_be_empty=True, date=True) is None
    assert cell_problem("sold", "03/04/21", numeric=False, may_be_empty=False, date=True) == (
        "column 'sold': date column holds '03/04/21', not a YYYY-MM-DD date"
    )


# ---------------------------------------------------------------------------------------------
# The date transform


def fitted(days: list[float], **finish) -> Preprocessor:
    fit = PreprocessingFit(["sold"], [], dates=["sold"])
    fit.update({"sold": np.asarray(days, dtype=np.float64)}, np.zeros(len(days)))
    options = {"feature_method": "standard", "label_kind": "none", "fill_missing": False}
    return fit.finish(**{**options, **finish, "label_name": "y"})


def test_a_date_becomes_a_scaled_year_and_sine_cosine_of_month_weekday_and_yearday():
    days = [parse_date(text) for text in ("2020-01-01", "2022-07-04")]  # Wed, Mon
    pre = fitted(days)
    (feature,) = pre.features
    assert (feature.kind, feature.center, feature.scale, feature.fill) == ("date", 2021, 1, None)
    assert pre.input_width == len(DATE_INPUTS) == 7
    x = transform_features(pre, {"sold": np.asarray(days)})
    assert x.dtype == np.float32 and x.shape == (2, 7)

    def cycle(value: float, period: float) -> list[float]:
        return [np.sin(2 * np.pi * value / period), np.cos(2 * np.pi * value / period)]

    first = [-1.0, *cycle(0, 12), *cycle(2, 7), *cycle(0, 365.25)]
    second = [1.0, *cycle(6, 12), *cycle(0, 7), *cycle(184, 365.25)]
    np.testing.assert_allclose(x, np.asarray([first, second], dtype=np.float32), atol=1e-6)


def test_an_empty_date_under_missing_mean_is_the_mean_day():
    pre = fitted([0.0, 10.0, np.nan], fill_missing=True)
    assert pre.features[0].fill == 5.0
    x = transform_features(pre, {"sold": np.asarray([np.nan, 5.0])})
    np.testing.assert_array_equal(x[0], x[1])


def test_a_date_transform_survives_preprocess_json():
    pre = dataclasses.replace(fitted([0.0, 400.0], fill_missing=True), input_shape=(7,))
    again = Preprocessor.from_json(pre.to_json())
    assert again == pre and again.format == 2  # a cnncli without dates refuses it in one line
    days = np.asarray([3.0, 1000.0])
    assert np.array_equal(
        transform_features(again, {"sold": days}), transform_features(pre, {"sold": days})
    )


# ---------------------------------------------------------------------------------------------
# data.columns in the config and against the header


def cars(tmp_path, write_config, rows: int = 60, **data):
    path = tmp_path / "cars.csv"
    path.write_text(cars_rows(rows))
    return load_config(write_config(cars_config(path, **data)))


def test_columns_typed_drop_date_and_categorical_shape_the_features(tmp_path, write_config):
    config = cars(tmp_path, write_config, columns={**CARS_COLUMNS, "km": "categorical"})
    dataset = load_dataset(config)
    assert dataset.columns.features == ("sold", "km", "colour")
    assert dataset.columns.dates == ("sold",)
    assert dataset.columns.categorical == ("km", "colour")
    assert dataset.features["sold"].dtype == np.float64
    assert dataset.features["sold"][0] == parse_date(cars_rows(60).splitlines()[1].split(",")[2])


def test_a_column_typed_numeric_with_text_is_the_numeric_cell_error(tmp_path, write_config):
    config = cars(tmp_path, write_config, columns={"name": "numeric"})
    with pytest.raises(CnnCliError, match="numeric column holds text 'Car 0 model") as caught:
        load_dataset(config)
    assert (caught.value.where.key, caught.value.where.line) == ("column 'name'", 2)


def test_a_cell_of_a_date_column_that_is_no_date_names_row_and_column(tmp_path, write_config):
    config = cars(tmp_path, write_config, columns={**CARS_COLUMNS, "sold": "date"})
    path = tmp_path / "cars.csv"
    lines = path.read_text().splitlines()
    lines[4] = lines[4].replace(lines[4].split(",")[2], "4 July")
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(CnnCliError) as caught:
        load_dataset(config)
    error = caught.value
    assert error.message == "date column holds '4 July', not a YYYY-MM-DD date"
    assert (error.where.key, error.where.line) == ("column 'sold'", 5)
    assert error.hint.startswith("write dates as YYYY-MM-DD")


def test_an_unknown_column_in_data_columns_gets_a_did_you_mean(tmp_path, write_config):
    config = cars(tmp_path, write_config, columns={"Sold": "date"})
    with pytest.raises(CnnCliError) as caught:
        load_dataset(config)
    assert caught.value.message == "column 'Sold' is not in cars.csv"
    assert caught.value.hint.startswith("did you mean 'sold'? names are case-sensitive")
    assert caught.value.where.key == "data.columns.Sold"
    assert caught.value.where.line is not None


def test_a_dropped_feature_and_a_typed_label_are_contradictions(tmp_path, write_config):
    path = tmp_path / "cars.csv"
    path.write_text(cars_rows(20))
    raw = cars_config(path, features=["km", "name"], columns={"name": "drop", "price": "date"})
    raw["data"]["label"] = "price"
    with pytest.raises(CnnCliError) as caught:
        load_config(write_config(raw))
    lines = [problem.one_line() for problem in problems_of(caught)]
    assert any(
        "data.features[1]: column 'name' is listed in data.features and as drop in data.columns;"
        " remove it from data.features" in line
        for line in lines
    ), lines
    assert any("the label 'price' has a type in data.columns (date)" in line for line in lines)


def test_an_unknown_type_is_refused_with_the_types_there_are(tmp_path, write_config):
    path = tmp_path / "cars.csv"
    path.write_text(cars_rows(20))
    with pytest.raises(CnnCliError) as caught:
        load_config(write_config(cars_config(path, columns={"sold": "datetime"})))
    (line,) = [problem.one_line() for problem in problems_of(caught)]
    assert "data.columns.sold" in line and "'date'" in line, line


# ---------------------------------------------------------------------------------------------
# What each column becomes, and the warnings


def test_text_advice_tells_an_id_and_dates_from_a_category():
    assert text_advice("colour", {"red", "blue"}, 300) is None
    ids = {f"C-{i}" for i in range(300)}
    advice = text_advice("id", ids, 300)
    assert advice is not None and not advice.dates
    assert advice.warning() == (
        "column 'id' looks like an ID or free text (300 distinct value(s) in 300 row(s)):"
        " one-hot encoding makes 300 input(s); set data.columns: {id: drop}"
    )
    dates = text_advice("sold", {"2021-01-01", "2021-01-02"}, 300)
    assert dates is not None and dates.dates
    assert "set data.columns: {sold: date} (7 inputs: year, month" in dates.warning()
    assert text_advice("few", {f"v{i}" for i in range(10)}, 10) is None  # too few to tell


def test_describe_columns_says_what_every_column_becomes(tmp_path, write_config):
    config = cars(tmp_path, write_config, rows=50, columns={"id": "drop"})
    dataset = load_dataset(config)
    categories = {
        name: set(dataset.features[name].tolist()) for name in dataset.columns.categorical
    }
    header = ["id", "name", "sold", "km", "colour", "price"]
    report = describe_columns(config, header, dataset.columns, categories, dataset.rows)
    distinct_dates = len(categories["sold"])
    assert report.lines == (
        "id: not used (data.columns: drop)",
        "name: text, 50 distinct in 50 row(s) → looks like an ID or free text; 50 inputs if"
        " one-hot encoded; set data.columns: {name: drop}",
        f"sold: text, {distinct_dates} distinct in 50 row(s) → looks like dates;"
        f" {distinct_dates} inputs if one-hot encoded; set data.columns: {{sold: date}}"
        " (7 inputs: year, month, day of week, day of year)",
        "km: numeric → 1 input (standard)",
        "colour: text, 3 distinct in 50 row(s) → 3 one-hot input(s)",
        "price: label",
    )
    assert len(report.warnings) == 2
    assert report.warnings[0].startswith("column 'name' looks like an ID or free text (50 distinct")


def test_train_notes_carry_the_same_warnings_in_memory_and_streamed(tmp_path, write_config):
    from cnncli.train.feed import prepare_data, prepare_streamed

    config = cars(tmp_path, write_config, rows=100)
    in_memory = prepare_data(config, 0).notes
    # the test rows hold IDs, names and dates that training never saw: in memory they are
    # transformed here and noted, naming the rows; streamed, as each chunk is read
    unseen = [note for note in in_memory if "not seen in training" in note]
    assert len(unseen) == 3 and all(note.endswith("(in the test rows)") for note in unseen)
    in_memory = [note for note in in_memory if note not in unseen]
    streamed = prepare_streamed(config, 0).notes
    for notes in (in_memory, streamed):
        assert [note.split(" (")[0] for note in notes] == [
            "column 'id' looks like an ID or free text",
            "column 'name' looks like an ID or free text",
            "column 'sold' looks like dates",
        ], notes


def test_the_onnx_recipe_for_a_date_gives_the_transform_s_inputs():
    """A client in another language follows the recipe in model.onnx's metadata."""
    import datetime
    import math

    from cnncli.serve.export import PREPROCESS_RECIPE

    assert "2*pi*weekday/7 (Monday 0)" in PREPROCESS_RECIPE
    texts = ["2019-07-14", "2020-02-29", "1999-12-31", "2024-01-01"]
    pre = fitted([parse_date(text) for text in texts])
    (feature,) = pre.features
    for text in texts:
        day = datetime.date.fromisoformat(text)
        cycles = [
            (day.month - 1, 12),
            (day.weekday(), 7),
            (day.timetuple().tm_yday - 1, 365.25),
        ]
        client = [(day.year - feature.center) / feature.scale]
        for value, period in cycles:
            client += [
                math.sin(2 * math.pi * value / period),
                math.cos(2 * math.pi * value / period),
            ]
        ours = transform_features(pre, {"sold": np.asarray([parse_date(text)])})[0]
        np.testing.assert_array_equal(ours, np.asarray(client, dtype=np.float64).astype(np.float32))


def test_a_number_column_typed_categorical_keeps_each_cell_s_text_on_every_path(
    tmp_path, write_config
):
    """`1`, not `1.0` (pandas reads a whole-number column with an empty cell as floats), in
    memory, streamed and at predict time alike."""
    from cnncli.data.chunks import read_chunks, read_columns
    from cnncli.serve.rows import parse_input

    path = tmp_path / "doors.csv"
    rows = [
        f"{index % 3 + 2 if index != 4 else ''},{index},{'ab'[index % 2]}" for index in range(20)
    ]
    path.write_text("doors,x,label\n" + "\n".join(rows) + "\n")
    raw = cars_config(path, columns={"doors": "categorical"}, missing="mean")
    config = load_config(write_config(raw))
    in_memory = load_dataset(config).features["doors"]
    columns, label_text = read_columns(config, str(path))
    (chunk,) = read_chunks(config, str(path), columns, label_text)
    assert in_memory[:4].tolist() == chunk.features["doors"][:4].tolist() == ["2", "3", "4", "2"]
    fit = PreprocessingFit(columns.features, columns.categorical)
    fit.update(chunk.features, chunk.labels)
    pre = fit.finish(
        feature_method="standard", label_kind="none", fill_missing=True, label_name="label"
    )
    assert pre.features[0].categories == ("2", "3", "4")
    assert parse_input(pre, "doors=3,x=1", "mean")["doors"] == "3"


def test_dates_written_day_first_are_dates_to_rewrite_not_free_text_to_drop():
    """Review of issue 10: 02/11/2017 was called an ID or free text, with `drop` as the fix."""
    values = {f"{day:02d}/{month:02d}/2017" for day in range(1, 29) for month in range(1, 13)}
    advice = text_advice("sale_date", values, 400)
    assert advice is not None and advice.other_dates
    assert advice.warning() == (
        f"column 'sale_date' looks like dates not written YYYY-MM-DD ({len(values)} distinct"
        f" value(s) in 400 row(s)): one-hot encoding makes {len(values)} input(s); rewrite them"
        " as YYYY-MM-DD (e.g. 2017-11-02), then set data.columns: {sale_date: date}"
        " (7 inputs: year, month, day of week, day of year)"
    )
    names = {f"street {n}" for n in range(400)}
    assert not text_advice("street", names, 400).dates  # free text stays free text


# ---------------------------------------------------------------------------------------------
# Numeric row IDs (newcomer finding: a text ID was flagged, `id` 1..N was not)


def ids_of(columns, chunks=1):
    """``RowIds`` fed ``columns`` (name → values) in ``chunks`` pieces, as the chunked reader."""
    ids = RowIds(columns)
    pieces = {
        name: np.array_split(np.asarray(values, float), chunks) for name, values in columns.items()
    }
    for index in range(chunks):
        ids.update({name: parts[index] for name, parts in pieces.items()})
    return ids


def test_a_numeric_column_numbering_the_rows_is_an_id_and_ordinary_integers_are_not():
    rng = np.random.default_rng(0)
    columns = {
        "id": np.arange(1, 101),  # counts up by 1
        "seq": np.arange(501, 601),  # any name, counting up by 1
        "customer_id": rng.permutation(100) + 7000,  # an ID's name, each value once, shuffled
        "orderId": np.cumsum(rng.integers(1, 9, 100)),  # an ID's name, increasing with gaps
        "age": rng.integers(18, 90, 100),  # whole numbers that repeat
        "count": np.cumsum(rng.integers(1, 9, 100)),  # increasing with gaps, no ID's name
        "row_id": np.r_[np.arange(99), 5],  # an ID's name, but one value twice
        "index": np.arange(100) + 0.5,  # not whole numbers
        "paid": np.arange(100),  # no ID's name ('paid' only ends in id), but counts up by 1
    }
    for chunks in (1, 7):
        ids = ids_of(columns, chunks)
        flagged = [name for name in columns if ids.advice(name) is not None]
        assert flagged == ["id", "seq", "customer_id", "orderId", "paid"], chunks
    assert ids.warning("id") == (
        "column 'id' looks like a row ID (100 distinct whole numbers in 100 row(s)): as a feature"
        " it teaches the model each row's position; set data.columns: {id: drop}"
    )
    assert ids.warning("age") is None
    assert ids_of({"id": np.arange(10)}).advice("id") is None  # ten rows prove nothing
    assert ids_of({"id": np.r_[np.arange(1, 50), np.nan]}).advice("id") is None  # an empty cell


def test_validate_summary_and_train_advise_dropping_a_numeric_id(tmp_path, write_config, runner):
    from cnncli.cli import cli
    from cnncli.train.feed import prepare_data, prepare_streamed
    from tests.conftest import base_config

    rng = np.random.default_rng(1)
    lines = ["id,age,x,label"] + [
        f"{row},{rng.integers(20, 40)},{rng.normal():.3f},{'ab'[row % 2]}" for row in range(1, 61)
    ]
    (tmp_path / "people.csv").write_text("\n".join(lines) + "\n")
    path = write_config(base_config(tmp_path / "people.csv"))
    warning = (
        "column 'id' looks like a row ID (60 distinct whole numbers in 60 row(s)): as a feature it"
        " teaches the model each row's position; set data.columns: {id: drop}"
    )
    for command in ("validate", "summary"):
        result = runner.invoke(cli, [command, str(path)])
        assert result.exit_code == 0, result.output
        assert f"warning: {warning}" in result.stderr.splitlines()
    result = runner.invoke(cli, ["validate", str(path)])
    assert "  id: numeric → looks like a row ID; set data.columns: {id: drop}" in result.stdout
    assert "  age: numeric → 1 input (standard)" in result.stdout
    config = load_config(path)
    assert warning in prepare_data(config, 0).notes
    assert warning in prepare_streamed(config, 0).notes
    dropped = load_config(path, ["data.columns={id: drop}"])
    assert not [note for note in prepare_data(dropped, 0).notes if "row ID" in note]
