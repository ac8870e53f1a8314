"""data/table.py: reading a whole CSV into clean arrays (``load_dataset``) and checking its classes.

The helpers here are shared by test_csvfile, test_cells and test_columns.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from cnncli.config.models import load_config
from cnncli.data.columns import label_values
from cnncli.data.table import check_classes, load_dataset
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
