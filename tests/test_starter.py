"""``cnncli init``: a config from a CSV that validates and trains as written."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import yaml

from cnncli.cli import cli
from cnncli.starter import inspect_csv
from tests.conftest import DATA, error_lines


def init(runner, *args: str):
    return runner.invoke(cli, ["init", *args])


def validate_and_train(runner, config: Path, output: Path) -> None:
    result = runner.invoke(cli, ["validate", str(config)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    args = ["train", str(config), "--set", "fit.epochs=1", "--output", str(output), "--json"]
    result = runner.invoke(cli, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert Path(json.loads(result.stdout)["run_dir"], "manifest.json").is_file()


MESSY = "id,station,city,temp,note,label\n" + "".join(
    f"{i},north,{['rome', 'oslo', 'lima'][i % 3] if i != 5 else ''},"
    f"{'' if i == 7 else 10 + i % 9},note number {i} here,{['yes', 'no'][i % 2]}\n"
    for i in range(1, 41)
)


@pytest.mark.slow
@pytest.mark.parametrize("csv", sorted(DATA.glob("*.csv")), ids=lambda path: path.stem)
def test_init_on_every_bundled_csv_validates_and_trains(runner, csv, tmp_path):
    config = tmp_path / "config.yaml"
    result = init(runner, str(csv), "-o", str(config))
    assert result.exit_code == 0, result.output
    assert result.stdout == f"{config}\n"
    validate_and_train(runner, config, tmp_path / "runs")


@pytest.mark.slow
def test_init_drops_id_constant_and_free_text_and_fills_missing_cells(runner, tmp_path):
    csv = tmp_path / "messy.csv"
    csv.write_text(MESSY)
    config = tmp_path / "messy.yaml"
    result = init(runner, str(csv), "-o", str(config), "--json")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["columns"] == {"id": "drop", "station": "drop", "note": "drop"}
    assert summary["features"] == ["city", "temp"]
    assert (summary["label"], summary["task"], summary["missing"]) == (
        "label",
        "classification",
        "mean",
    )
    assert summary["classes"] == {"no": 20, "yes": 20}
    text = config.read_text()
    assert "# a row ID" in text and "# the same value ('north')" in text
    assert "# looks like an ID or free text" in text
    assert "empty cells: city 1, temp 1" in text
    loaded = yaml.safe_load(text)
    assert loaded["data"]["path"] == "messy.csv"  # beside the config: relative to it
    validate_and_train(runner, config, tmp_path / "runs")


def test_init_never_overwrites_without_force_nor_replaces_a_special_file(runner, tmp_path):
    csv = tmp_path / "rows.csv"
    csv.write_text(MESSY)
    config = tmp_path / "rows.yaml"
    config.write_text("mine\n")
    result = init(runner, str(csv), "-o", str(config))
    assert result.exit_code == 2
    assert error_lines(result) == [
        f"error: {config}: already exists; give --force to replace it, or choose another -o"
    ]
    assert config.read_text() == "mine\n"
    assert init(runner, str(csv), "-o", str(config), "--force").exit_code == 0
    assert config.read_text().startswith("# Made by `cnncli init` from rows.csv")
    fifo = tmp_path / "fifo.yaml"
    os.mkfifo(fifo)
    result = init(runner, str(csv), "-o", str(fifo), "--force")
    assert result.exit_code == 2
    assert "is a pipe (FIFO), and cnncli only writes a regular file here" in error_lines(result)[0]
    assert fifo.is_fifo()
    assert sorted(path.name for path in tmp_path.iterdir()) == [
        "fifo.yaml",
        "rows.csv",
        "rows.yaml",
    ]


def test_init_names_a_misspelt_label_and_models_that_do_not_fit(runner, tmp_path):
    result = init(
        runner, str(DATA / "iris.csv"), "--label", "specis", "-o", str(tmp_path / "x.yaml")
    )
    assert result.exit_code == 2
    assert error_lines(result)[0].startswith(
        "error: cnncli init: --label: column 'specis' is not in iris.csv; did you mean 'species'?"
    )
    result = init(
        runner, str(DATA / "diabetes.csv"), "--model", "conv2d", "-o", str(tmp_path / "x.yaml")
    )
    assert error_lines(result) == [
        "error: cnncli init: --model: conv2d needs a square number of features (an image), and"
        " there are 10; use --model conv1d or dense (the nearest squares are 9 and 16)"
    ]
    csv = tmp_path / "rows.csv"
    csv.write_text(MESSY)
    result = init(runner, str(csv), "--model", "conv1d", "-o", str(tmp_path / "x.yaml"))
    assert (
        "conv1d reads the features as one sequence of numbers, but city is not numeric"
        in (error_lines(result)[0])
    )
    assert not (tmp_path / "x.yaml").exists()


def test_conv2d_keeps_an_image_whole_and_writes_its_shape():
    starter = inspect_csv(DATA / "digits.csv", model="conv2d")
    assert starter.input_shape == [8, 8, 1]  # the blank border pixels stay
    assert len(starter.features) == 64
    assert starter.label == "digit" and starter.task == "classification"
    dense = inspect_csv(DATA / "digits.csv")
    assert {name for name, kind in dense.columns.items() if kind == "drop"} == {"p0", "p32", "p39"}


def test_init_reads_a_sample_not_the_whole_file(tmp_path, monkeypatch):
    import cnncli.starter as starter

    monkeypatch.setattr(starter, "INIT_SAMPLE_ROWS", 50)
    csv = tmp_path / "long.csv"
    csv.write_text("x,y\n" + "".join(f"{i % 7},{i % 2}\n" for i in range(500)) + "oops,\n")
    found = starter.inspect_csv(csv)  # the text cell past the sample is never read
    assert (found.rows, found.whole_file, found.task) == (50, False, "classification")


def test_init_reads_other_delimiters_and_never_writes_over_the_data(runner, tmp_path):
    csv = tmp_path / "semi.yaml"  # a data file with a config's name
    csv.write_text("a;b c;label\n" + "".join(f"{i % 5};{i % 3};{'xy'[i % 2]}\n" for i in range(40)))
    result = init(runner, str(csv), "-o", str(csv), "--force")
    assert result.exit_code == 2
    assert error_lines(result) == [
        f"error: {csv}: is the data file itself; write the config elsewhere, e.g. -o config.yaml"
    ]
    assert csv.read_text().startswith("a;b c;label\n")
    config = tmp_path / "semi-config.yaml"
    assert init(runner, str(csv), "-o", str(config)).exit_code == 0
    loaded = yaml.safe_load(config.read_text())
    assert loaded["data"]["delimiter"] == ";"
    assert loaded["fit"]["validation_split"] == 0.0  # 40 rows: too few to hold some out
    result = runner.invoke(cli, ["validate", str(config)], catch_exceptions=False)
    assert result.exit_code == 0, result.output


def test_init_names_a_link_loop_as_output_and_writes_nothing(runner, tmp_path):
    csv = tmp_path / "rows.csv"
    csv.write_text(MESSY)
    (tmp_path / "a.yaml").symlink_to("b.yaml")
    (tmp_path / "b.yaml").symlink_to("a.yaml")
    result = init(runner, str(csv), "-o", str(tmp_path / "a.yaml"))
    assert result.exit_code == 2
    assert error_lines(result) == [
        f"error: {tmp_path / 'a.yaml'}: is a symbolic link loop; choose another -o"
    ]
    assert sorted(path.name for path in tmp_path.iterdir()) == ["a.yaml", "b.yaml", "rows.csv"]


def test_init_refuses_a_class_of_one_row_that_training_could_not_both_learn_and_test(
    runner, tmp_path
):
    csv = tmp_path / "few.csv"
    csv.write_text("x,kind\n1,a\n2,b\n3,a\n4,a\n5,b\n6,c\n")
    config = tmp_path / "few.yaml"
    result = init(runner, str(csv), "-o", str(config))
    assert result.exit_code == 2
    assert error_lines(result) == [
        f"error: {csv}: column 'kind': class 'c' of the label 'kind' has 1 row(s) in 6: too few"
        " to be both trained on and tested; add rows of that class or remove its rows, or name"
        " another label with --label"
    ]
    assert not config.exists()


@pytest.mark.parametrize("delimiter", ["ab", "", "\\t"])
def test_init_refuses_a_delimiter_of_more_or_less_than_one_character(runner, tmp_path, delimiter):
    csv = tmp_path / "rows.csv"
    csv.write_text(MESSY)
    result = init(runner, str(csv), "--delimiter", delimiter, "-o", str(tmp_path / "c.yaml"))
    assert result.exit_code == 2
    assert error_lines(result) == [
        f"error: cnncli init: --delimiter: a delimiter is one character, got {delimiter!r};"
        " e.g. --delimiter ';', or leave it out to read it from the header"
    ]
    assert sorted(path.name for path in tmp_path.iterdir()) == ["rows.csv"]


@pytest.mark.slow
def test_init_on_too_few_rows_for_a_stratified_test_part_splits_unstratified_and_trains(
    runner, tmp_path
):
    csv = tmp_path / "four.csv"
    csv.write_text("x,kind\n1,a\n2,b\n3,a\n4,b\n")  # a test part of 1 row: not both classes
    config = tmp_path / "four.yaml"
    assert init(runner, str(csv), "-o", str(config)).exit_code == 0
    assert yaml.safe_load(config.read_text())["split"]["stratify"] is False
    validate_and_train(runner, config, tmp_path / "runs")


def test_init_keeps_a_linked_data_files_own_name_so_the_config_follows_the_link(runner, tmp_path):
    (tmp_path / "export-1.csv").write_text(MESSY)
    (tmp_path / "current.csv").symlink_to("export-1.csv")
    (tmp_path / "configs").mkdir()
    config = tmp_path / "configs" / "c.yaml"
    assert init(runner, str(tmp_path / "current.csv"), "-o", str(config)).exit_code == 0
    assert yaml.safe_load(config.read_text())["data"]["path"] == "../current.csv"
