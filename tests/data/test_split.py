"""cnncli/data/split.py: the hash rule, the NumPy train_test_split, and how a split is stored."""

from __future__ import annotations

import numpy as np
import pytest

from cnncli.config.models import load_config
from cnncli.data.split import (
    TEST,
    TRAIN,
    VALIDATION,
    HashSplit,
    TrainTestSplit,
    split_method,
    split_rows,
    stored_test_rows,
    train_test_split,
)
from cnncli.errors import CnnCliError
from tests.conftest import base_config

ROWS = 50_000


@pytest.mark.parametrize("test_size", [0.1, 0.3, 0.5])
def test_hash_test_fraction_is_close_to_test_size(test_size):
    parts = HashSplit(test_size, random_state=3).parts(np.arange(ROWS))
    # a binomial share's standard deviation here is at most 0.0023; allow about four of them
    assert np.mean(parts == TEST) == pytest.approx(test_size, abs=0.01)
    assert set(np.unique(parts)) == {TRAIN, TEST}


def test_hash_rule_gives_each_row_its_part_whatever_the_chunks():
    rule = HashSplit(0.25, random_state=11, validation_split=0.2, validation_seed=5)
    whole = rule.parts(np.arange(ROWS))
    rng = np.random.default_rng(0)
    bounds = np.sort(rng.choice(np.arange(1, ROWS), size=40, replace=False))
    chunks = np.split(np.arange(ROWS), bounds)  # 41 chunks of uneven sizes
    np.testing.assert_array_equal(np.concatenate([rule.parts(chunk) for chunk in chunks]), whole)
    shuffled = rng.permutation(ROWS)  # a row's part depends on its number only
    np.testing.assert_array_equal(rule.parts(shuffled), whole[shuffled])
    np.testing.assert_array_equal(HashSplit(0.25, 11, 0.2, 5).parts(np.arange(ROWS)), whole)


def test_hash_validation_rows_come_from_the_training_rows_only():
    without = HashSplit(0.2, random_state=1).parts(np.arange(ROWS))
    rule = HashSplit(0.2, random_state=1, validation_split=0.25, validation_seed=9)
    parts = rule.parts(np.arange(ROWS))
    np.testing.assert_array_equal(parts == TEST, without == TEST)  # the test part is unchanged
    assert np.mean(parts[without == TRAIN] == VALIDATION) == pytest.approx(0.25, abs=0.01)


def test_stratified_split_keeps_each_class_share():
    labels = np.repeat(np.array(["a", "b", "c"]), [700, 240, 60])
    rows = np.arange(len(labels))
    train, test = train_test_split(rows, 0.2, 42, stratify=labels)
    assert sorted(np.concatenate([train, test]).tolist()) == rows.tolist()
    assert len(test) == 200
    for name, count in (("a", 700), ("b", 240), ("c", 60)):
        assert abs(np.sum(labels[test] == name) - 0.2 * count) < 1
    unstratified = [np.sum(labels[train_test_split(rows, 0.2, s)[1]] == "c") for s in range(20)]
    assert len(set(unstratified)) > 1  # without stratify the share of "c" varies by seed


def test_split_rows_stratifies_validation_and_test(write_config, tmp_path):
    labels = np.repeat(np.array(["low", "high"]), [80, 20])
    csv = tmp_path / "rows.csv"
    csv.write_text("x,label\n" + "".join(f"{i},{label}\n" for i, label in enumerate(labels)))
    config = load_config(
        write_config(
            base_config(csv, split={"test_size": 0.2}, fit={"epochs": 1, "validation_split": 0.25})
        )
    )
    split = split_rows(config, labels, "classification", 7, has_test_file=False)
    parts = [split.train_rows, split.test_rows, split.validation_rows]
    assert [len(part) for part in parts] == [60, 20, 20]
    assert sorted(np.concatenate(parts).tolist()) == list(range(100))
    assert [int(np.sum(labels[part] == "high")) for part in parts] == [12, 4, 4]


def test_hash_rule_round_trips_through_json():
    for rule in (
        HashSplit(0.2, random_state=4, validation_split=0.1, validation_seed=8),
        HashSplit(None, random_state=4),  # a test file: every row of this file trains
    ):
        again = HashSplit.from_json(rule.to_json())
        assert again == rule
        np.testing.assert_array_equal(again.parts(np.arange(1000)), rule.parts(np.arange(1000)))
    assert HashSplit(None, 4).to_json()["method"] == "test_file"


def test_stored_rows_give_back_the_test_part():
    split = TrainTestSplit(
        rows=6,
        train_rows=np.array([0, 2, 3]),
        test_rows=np.array([1, 5]),
        validation_rows=np.array([4]),
        method="shuffle",
    )
    stored = split.to_json()
    assert stored["validation_rows"] == [4]
    np.testing.assert_array_equal(stored_test_rows(stored, 6), [1, 5])
    hashed = HashSplit(0.3, 2)
    split = TrainTestSplit(100, np.arange(0), np.arange(0), None, "hash", hashed)
    expected = np.flatnonzero(hashed.parts(np.arange(100)) == TEST)
    np.testing.assert_array_equal(stored_test_rows(split.to_json(), 100), expected)


def test_split_method_follows_streaming(write_config, tiny_csv):
    auto = load_config(write_config(base_config(tiny_csv)))
    assert split_method(auto, streaming=True) == "hash"
    assert split_method(auto, streaming=False) == "shuffle"
    shuffle = load_config(write_config(base_config(tiny_csv, split={"method": "shuffle"})))
    with pytest.raises(CnnCliError) as caught:
        split_method(shuffle, streaming=True)
    assert caught.value.message == (
        "split.method shuffle needs the whole file in memory, but this run streams it"
    )
    assert caught.value.where.key == "split.method"


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
    from cnncli.data.columns import label_values
    from cnncli.data.table import load_dataset

    labels = label_values(load_dataset(config).labels)
    split = split_rows(config, labels, "classification", 0, has_test_file=False)
    assert split.method == "shuffle"
    assert split.to_json()["method"] == "shuffle"
    assert np.array_equal(stored_test_rows(split.to_json(), len(labels)), split.test_rows)


def test_a_split_stored_before_shuffle_had_its_name_still_gives_its_test_rows():
    old = {"method": "train_test_split", "rows": 6, "test_rows": [1, 4], "validation_rows": None}
    np.testing.assert_array_equal(stored_test_rows(old, 6), [1, 4])


def test_a_stored_split_is_checked_as_untrusted_input():
    import json

    from cnncli.data.split import read_split
    from cnncli.errors import CnnCliError

    good = {"method": "shuffle", "rows": 10, "test_rows": [1, 5], "validation_rows": None}
    assert read_split(json.dumps(good)) == good
    for change, line in (
        ({"test_rows": []}, "test_rows: expected at least one row for the test split, got []"),
        ({"test_rows": [1, 1]}, "test_rows[1]: expected a value not already in the list, got 1"),
        ({"rows": True}, "rows: expected a positive whole number, got True"),
        ({"validation_rows": [10]}, "validation_rows[0]: expected a whole number from 0 to 9"),
        ({"method": "hash", "test_size": 0}, "test_size: expected a fraction above 0, got 0"),
    ):
        with pytest.raises(CnnCliError) as caught:
            read_split(json.dumps({**good, **change}), "runs/x/split.json")
        assert caught.value.one_line().startswith(f"runs/x/split.json: {line}")
