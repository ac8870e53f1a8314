"""The chunked reader: the hash split rule, errors with their lines, distinct values, and
evaluate reproducing a streaming run's test split."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from cnncli.config.models import load_config
from cnncli.data.chunks import (
    prepare_stream,
    read_chunks,
    read_columns,
    survey_columns,
    wants_streaming,
)
from cnncli.data.split import TEST, HashSplit
from cnncli.errors import CnnCliError
from tests.conftest import base_config, seed_like_rows


def mixed_csv(path: Path, rows: int = 400) -> Path:
    """Seed-like rows plus a categorical column and a few empty cells."""
    lines = seed_like_rows(rows).splitlines()
    colours = ["red", "green", "blue"]
    out = [lines[0].replace(",label", ",colour,label")]
    for index, line in enumerate(lines[1:]):
        *numbers, label = line.split(",")
        if index % 50 == 7:
            numbers[1] = ""  # an empty cell: dropped or filled, by data.missing
        out.append(",".join([*numbers, colours[(index * 7) % 3], label]))
    path.write_text("\n".join(out) + "\n")
    return path


def stream_config(write_config, data: Path, **data_options):
    config = base_config(
        data, data={"path": str(data), "chunk_rows": 37, **data_options}, split={"method": "hash"}
    )
    config["fit"]["validation_split"] = 0.1
    return load_config(write_config(config))


def test_streaming_auto_follows_file_size_and_shuffle_split_cannot_stream(
    tiny_csv, write_config, monkeypatch
):
    config = load_config(write_config(base_config(tiny_csv)))
    assert not wants_streaming(config)
    monkeypatch.setattr("cnncli.data.chunks.STREAMING_THRESHOLD_BYTES", 10)
    assert wants_streaming(config)
    shuffled = load_config(
        write_config(
            base_config(
                tiny_csv,
                split={"method": "shuffle"},
                data={"path": str(tiny_csv), "streaming": True},
            )
        )
    )
    with pytest.raises(CnnCliError, match="needs the whole file in memory") as caught:
        prepare_stream(shuffled, 0)
    assert caught.value.where.key == "split.method"


def test_streaming_errors_name_the_line(tmp_path, write_config):
    path = tmp_path / "bad.csv"
    lines = seed_like_rows(100).splitlines()
    lines[81] = "1.0,abc,2.0,low"
    path.write_text("\n".join(lines) + "\n")
    config = stream_config(write_config, path)
    columns, label_text = read_columns(config, str(path))
    with pytest.raises(CnnCliError, match="numeric column holds text 'abc'") as caught:
        list(read_chunks(config, str(path), columns, label_text))
    assert caught.value.where.line == 82
    lines[81] = "1.0,,2.0,low"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(CnnCliError, match=r"1 empty cell\(s\) on line\(s\) 82") as caught:
        list(read_chunks(config, str(path), columns, label_text))
    assert caught.value.where.key == "column 'x2'"


def test_survey_counts_distinct_values_and_rows_in_chunks(tmp_path, write_config):
    path = mixed_csv(tmp_path / "mixed.csv")
    config = stream_config(write_config, path, missing="drop")
    columns, _ = read_columns(config, str(path))
    survey = survey_columns(config, str(path), columns)
    assert sorted(survey.labels.tolist()) == ["high", "low", "medium"]
    assert survey.categories == {"colour": {"red", "green", "blue"}}
    assert survey.rows == 400 - 8  # the rows data.missing: drop keeps


def test_survey_refuses_empty_cells_as_training_does(tmp_path, write_config):
    path = mixed_csv(tmp_path / "mixed.csv")
    config = stream_config(write_config, path)  # missing: error
    columns, _ = read_columns(config, str(path))
    with pytest.raises(CnnCliError, match=r"1 empty cell\(s\) on line\(s\) 9;") as caught:
        survey_columns(config, str(path), columns)
    assert caught.value.where.key == "column 'x2'"


@pytest.mark.slow
def test_evaluate_reproduces_a_streaming_runs_test_split(tmp_path, write_config):
    from cnncli.runs import open_run
    from cnncli.serve.evaluate import evaluate_run, evaluation_data
    from cnncli.train.run import train_run

    path = tmp_path / "seedlike.csv"
    path.write_text(seed_like_rows(600))
    config = base_config(path, data={"path": str(path), "streaming": True, "chunk_rows": 64})
    config["fit"].update(epochs=2, batch_size=16)
    result = train_run(load_config(write_config(config)), tmp_path / "runs")
    split = json.loads((result.run_dir / "split.json").read_text())
    assert split["method"] == "hash" and "test_rows" not in split

    run = open_run(result.run_dir)
    features, labels, _source = evaluation_data(run, None)
    expected = np.flatnonzero(HashSplit.from_json(split).parts(np.arange(600)) == TEST)
    assert len(labels) == len(expected) and split["rows"] == 600
    lines = path.read_text().splitlines()[1:]
    assert [lines[row].rsplit(",", 1)[1] for row in expected] == list(labels)
    evaluation = evaluate_run(run)
    assert evaluation.rows == len(expected)
    assert evaluation.metrics["accuracy"] == pytest.approx(
        result.metrics["test"]["accuracy"], abs=1e-6
    )


@pytest.mark.parametrize(
    ("missing", "note"),
    [
        ("drop", "dropped 8 of 400 row(s) with empty cells from mixed.csv (missing: drop)"),
        ("mean", "filled 8 empty cell(s) in mixed.csv with the column mean (missing: mean)"),
    ],
)
def test_streaming_reports_dropped_and_filled_rows_like_in_memory(
    tmp_path, write_config, missing, note
):
    from cnncli.data.cells import describe_cleaning
    from cnncli.data.table import load_dataset

    config = stream_config(write_config, mixed_csv(tmp_path / "mixed.csv"), missing=missing)
    assert prepare_stream(config, 0).notes == [note]
    assert describe_cleaning(load_dataset(config)) == note


def test_an_empty_label_drops_its_row_while_streaming_as_in_memory(tmp_path, write_config):
    path = tmp_path / "labels.csv"
    lines = seed_like_rows(100).splitlines()
    lines[5] = lines[5].rsplit(",", 1)[0] + ","
    path.write_text("\n".join(lines) + "\n")
    config = stream_config(write_config, path, missing="drop")
    fit = prepare_stream(config, 0)
    assert fit.rows == 99
    assert fit.notes == ["dropped 1 of 100 row(s) with empty cells from labels.csv (missing: drop)"]
