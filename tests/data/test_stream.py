"""Streaming (chunked) training data: same statistics and split rules as in memory, and evaluate
reproduces a streaming run's test split."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from cnncli.config.models import load_config
from cnncli.data.split import TEST, TRAIN, VALIDATION, HashSplit, split_rows, stored_test_rows
from cnncli.data.stream import (
    distinct_values,
    prepare_stream,
    read_chunks,
    read_columns,
    wants_streaming,
)
from cnncli.errors import CnnCliError
from cnncli.model.targets import label_kind, model_input_shape
from cnncli.train.run import prepare_data
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


@pytest.mark.parametrize("missing", ["drop", "mean"])
def test_streaming_fits_the_same_preprocessing_on_the_same_rows_as_in_memory(
    tmp_path, write_config, missing
):
    config = stream_config(write_config, mixed_csv(tmp_path / "mixed.csv"), missing=missing)
    in_memory = prepare_data(config, seed=3)
    streamed = prepare_stream(config, 3, model_input_shape, label_kind)

    # the same rows in each part: the hash rule applied to row numbers after cleaning
    counts = {TRAIN: len(in_memory.split.train_rows), TEST: len(in_memory.split.test_rows)}
    counts[VALIDATION] = len(in_memory.split.validation_rows)
    assert streamed.counts == counts
    assert streamed.rows == in_memory.split.rows
    assert streamed.split.to_json() == in_memory.split.to_json()

    # the same statistics, fitted in one chunked pass (37 rows a chunk) instead of at once
    for ours, theirs in zip(
        streamed.preprocessor.features, in_memory.preprocessor.features, strict=True
    ):
        assert (ours.name, ours.kind, ours.categories) == (
            theirs.name,
            theirs.kind,
            theirs.categories,
        )
        for value in ("center", "scale", "fill", "minimum", "maximum"):
            expected = getattr(theirs, value)
            assert getattr(ours, value) == (
                None if expected is None else pytest.approx(expected, rel=1e-12, abs=1e-12)
            )
    assert streamed.preprocessor.label == in_memory.preprocessor.label
    assert streamed.preprocessor.input_shape == in_memory.preprocessor.input_shape
    assert streamed.task == in_memory.task

    # and the same model inputs, part by part
    for part, x_ref, y_ref in (
        (TRAIN, in_memory.x_train, in_memory.y_train),
        (TEST, in_memory.x_test, in_memory.y_test),
    ):
        blocks = [streamed.arrays(chunk) for chunk in streamed.part_chunks(part) if chunk.rows]
        np.testing.assert_allclose(
            np.concatenate([x for x, _ in blocks]), x_ref, rtol=1e-6, atol=1e-6
        )
        np.testing.assert_array_equal(np.concatenate([y for _, y in blocks]), y_ref)


def test_hash_split_rule_is_independent_of_chunking_and_stored_as_a_rule():
    rule = HashSplit(test_size=0.2, random_state=7, validation_split=0.25, validation_seed=1)
    whole = rule.parts(np.arange(10_000))
    chunked = np.concatenate(
        [rule.parts(np.arange(start, min(start + 333, 10_000))) for start in range(0, 10_000, 333)]
    )
    np.testing.assert_array_equal(whole, chunked)
    shares = np.bincount(whole) / len(whole)
    assert shares[TEST] == pytest.approx(0.2, abs=0.015)
    assert shares[VALIDATION] == pytest.approx(0.8 * 0.25, abs=0.015)
    # another random_state is another split; the stored rule gives the rows back
    assert (
        HashSplit(0.2, 8).parts(np.arange(10_000)) != HashSplit(0.2, 7).parts(np.arange(10_000))
    ).any()
    assert np.array_equal(stored_test_rows(rule.to_json(), 10_000), np.flatnonzero(whole == TEST))


def test_in_memory_shuffle_split_is_stored_as_rows(tiny_csv, write_config):
    config = load_config(write_config(base_config(tiny_csv)))
    from cnncli.data.table import label_values, load_dataset

    labels = label_values(load_dataset(config).labels)
    split = split_rows(config, labels, "classification", 0, has_test_file=False)
    assert split.method == "train_test_split"
    assert np.array_equal(stored_test_rows(split.to_json(), len(labels)), split.test_rows)


def test_streaming_auto_follows_file_size_and_shuffle_split_cannot_stream(
    tiny_csv, write_config, monkeypatch
):
    config = load_config(write_config(base_config(tiny_csv)))
    assert not wants_streaming(config)
    monkeypatch.setattr("cnncli.data.stream.STREAMING_THRESHOLD_BYTES", 10)
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
        prepare_stream(shuffled, 0, model_input_shape, label_kind)
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
    with pytest.raises(CnnCliError, match="empty cell on line 82") as caught:
        list(read_chunks(config, str(path), columns, label_text))
    assert caught.value.where.key == "column 'x2'"


def test_distinct_values_in_chunks(tmp_path, write_config):
    path = mixed_csv(tmp_path / "mixed.csv")
    config = stream_config(write_config, path)
    columns, _ = read_columns(config, str(path))
    labels, categories = distinct_values(config, str(path), columns)
    assert sorted(labels.tolist()) == ["high", "low", "medium"]
    assert categories == {"colour": {"red", "green", "blue"}}


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


@pytest.mark.slow
def test_row_batches_give_every_training_row_once_per_epoch(tmp_path, write_config):
    config = stream_config(
        write_config, mixed_csv(tmp_path / "mixed.csv", rows=300), missing="mean"
    )
    streamed = prepare_stream(config, 0, model_input_shape, label_kind)
    in_memory = prepare_data(config, seed=0)
    batches = streamed.batches(TRAIN, 16, shuffle=True)
    assert len(batches) == -(-streamed.n_train // 16)

    def epoch() -> tuple[np.ndarray, np.ndarray]:
        parts = [batches[index] for index in range(len(batches))]
        assert [len(x) for x, _ in parts[:-1]] == [16] * (len(parts) - 1)
        return np.concatenate([x for x, _ in parts]), np.concatenate([y for _, y in parts])

    def rows(x: np.ndarray, y: np.ndarray) -> np.ndarray:
        table = np.concatenate([x.reshape(len(x), -1), y], axis=1).round(5)
        return table[np.lexsort(table.T)]

    first, second = epoch(), epoch()
    expected = rows(in_memory.x_train, in_memory.y_train)
    np.testing.assert_allclose(rows(*first), expected, atol=1e-5)
    np.testing.assert_allclose(rows(*second), expected, atol=1e-5)
    assert not np.array_equal(first[0], second[0])  # shuffled anew each epoch
    test = streamed.batches(TEST, 50)
    x_test = np.concatenate([test[index][0] for index in range(len(test))])
    np.testing.assert_allclose(x_test, in_memory.x_test, atol=1e-6)  # file order, unshuffled
