"""Feeding Keras: in memory and streamed, the same preprocessing and the same model inputs."""

from __future__ import annotations

import numpy as np
import pytest

from cnncli.data.split import TEST, TRAIN, VALIDATION
from cnncli.train.feed import make_row_batches, prepare_data, prepare_streamed
from tests.data.test_chunks import mixed_csv, stream_config


@pytest.mark.parametrize("missing", ["drop", "mean"])
def test_streaming_fits_the_same_preprocessing_on_the_same_rows_as_in_memory(
    tmp_path, write_config, missing
):
    config = stream_config(write_config, mixed_csv(tmp_path / "mixed.csv"), missing=missing)
    in_memory = prepare_data(config, seed=3)
    streamed = prepare_streamed(config, 3)

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


@pytest.mark.slow
def test_row_batches_give_every_training_row_once_per_epoch(tmp_path, write_config):
    config = stream_config(
        write_config, mixed_csv(tmp_path / "mixed.csv", rows=300), missing="mean"
    )
    streamed = prepare_streamed(config, 0)
    in_memory = prepare_data(config, seed=0)
    batches = make_row_batches(streamed, TRAIN, 16, shuffle=True)
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
    test = make_row_batches(streamed, TEST, 50)
    x_test = np.concatenate([test[index][0] for index in range(len(test))])
    np.testing.assert_allclose(x_test, in_memory.x_test, atol=1e-6)  # file order, unshuffled


def test_a_classification_with_many_integer_classes_keeps_them_all_while_streaming(
    tmp_path, write_config
):
    from cnncli.config.models import load_config
    from tests.conftest import base_config

    path = tmp_path / "many.csv"
    rows = [f"{index % 7}.5,{index % 11},{index % 60}" for index in range(600)]
    path.write_text("x1,x2,label\n" + "\n".join(rows) + "\n")
    raw = base_config(path, data={"path": str(path), "chunk_rows": 37}, split={"method": "hash"})
    raw["task"] = "classification"  # 60 classes: more than infer_task would take as classes
    config = load_config(write_config(raw))
    streamed = prepare_streamed(config, 0)
    in_memory = prepare_data(config, 0)
    assert streamed.preprocessor.label.classes == tuple(range(60))
    assert streamed.preprocessor.label == in_memory.preprocessor.label


@pytest.mark.parametrize("streaming", [False, True])
def test_a_test_label_unseen_in_training_names_file_column_and_line(
    tmp_path, write_config, streaming
):
    from cnncli.config.models import load_config
    from cnncli.errors import CnnCliError
    from tests.conftest import base_config, seed_like_rows

    train = tmp_path / "train.csv"
    train.write_text(seed_like_rows(60))
    test = tmp_path / "test.csv"
    test.write_text("x1,x2,x3,label\n2.5,25,6,low\n\n5,55,3,huge\n")  # a blank line before it
    data = {"path": str(train), "test_path": str(test), "streaming": streaming}
    split = {"method": "hash"} if streaming else {}
    config = load_config(write_config(base_config(train, data=data, split=split)))
    with pytest.raises(CnnCliError, match="label 'huge' does not occur in the training rows") as e:
        if streaming:
            prepared = prepare_streamed(config, 0)
            for chunk in prepared.part_chunks(TEST):
                prepared.arrays(chunk)
        else:
            prepare_data(config, 0)
    assert (e.value.where.file, e.value.where.key, e.value.where.line) == (
        str(test),
        "column 'label'",
        4,
    )
