"""data/split.py: the shuffle and hash rules, and the split stored for evaluate."""

from __future__ import annotations

import numpy as np
import pytest

from cnncli.config.models import load_config
from cnncli.data.split import TEST, VALIDATION, HashSplit, split_rows, stored_test_rows
from tests.conftest import base_config


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
