"""NumPy preprocessing: fitted statistics, transforms and label encoding."""

from __future__ import annotations

import json

import numpy as np
import pytest

from cnncli.data.preprocess import (
    Preprocessor,
    RunningMoments,
    UnknownCategoryWarning,
    encode_labels,
    transform_features,
)
from tests.conftest import fit_label, fit_preprocessor


def test_running_moments_over_chunks_equal_numpy():
    values = np.random.default_rng(0).normal(5, 3, size=10_001)
    moments = RunningMoments()
    for chunk in np.array_split(values, 7):
        moments.update(chunk)
    assert moments.count == values.size
    assert moments.mean == pytest.approx(values.mean(), rel=1e-12)
    assert moments.std == pytest.approx(values.std(), rel=1e-12)
    assert (moments.minimum, moments.maximum) == (values.min(), values.max())


def test_running_moments_ignore_empty_cells():
    moments = RunningMoments()
    moments.update(np.array([1.0, np.nan, 3.0]))
    assert (moments.count, moments.mean) == (2, 2.0)


def fitted(method="standard", fill=False):
    columns = {
        "a": np.array([1.0, 2.0, 3.0, 4.0]),
        "b": np.array([5.0, 5.0, 5.0, 5.0]),
        "c": np.array(["x", "y", "x", "z"], dtype=object),
    }
    return fit_preprocessor(
        columns,
        np.array(["p", "q", "p", "q"]),
        categorical=("c",),
        feature_method=method,
        label_kind="onehot",
        fill_missing=fill,
    )


def test_standard_minmax_and_constant_columns():
    pre = fitted()
    a, b, c = pre.features
    assert (a.center, a.scale) == (2.5, pytest.approx(np.std([1, 2, 3, 4])))
    assert b.scale == 1.0  # zero spread: scale 1 keeps the constant column at 0, not NaN
    assert c.categories == ("x", "y", "z")
    assert pre.input_width == 5
    minmax = fitted("minmax").features[0]
    assert (minmax.center, minmax.scale) == (1.0, 3.0)


def test_transform_is_float32_and_one_hot():
    pre = fitted()
    x = transform_features(
        pre, {"a": np.array([2.5]), "b": np.array([5.0]), "c": np.array(["y"], dtype=object)}
    )
    assert x.dtype == np.float32
    np.testing.assert_array_equal(x, [[0.0, 0.0, 0.0, 1.0, 0.0]])


def test_unseen_category_is_all_zeros_with_a_warning():
    pre = fitted()
    with pytest.warns(UnknownCategoryWarning, match="column 'c': 1 value"):
        x = transform_features(
            pre, {"a": np.array([1.0]), "b": np.array([5.0]), "c": np.array(["new"], dtype=object)}
        )
    np.testing.assert_array_equal(x[0, 2:], [0, 0, 0])


def test_one_long_unseen_cell_costs_its_own_size_and_a_short_warning():
    # the one-hot compared a fixed-width text array: a 100,000-character cell among 500 rows
    # made it 500 x 400 KB (a 16 MB request to serve could ask for tens of GB)
    import tracemalloc

    pre = fitted()
    cells = np.array(["x", "y", "z"] * 166 + ["x", "q" * 100_000], dtype=object)
    rows = len(cells)
    tracemalloc.start()
    try:
        with pytest.warns(UnknownCategoryWarning) as caught:
            x = transform_features(pre, {"a": np.ones(rows), "b": np.full(rows, 5.0), "c": cells})
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 20 << 20
    message = str(caught[0].message)
    assert len(message) < 200 and "(100002 characters)" in message
    np.testing.assert_array_equal(x[:3, 2:], np.eye(3))
    np.testing.assert_array_equal(x[-1, 2:], [0, 0, 0])
    assert x[:, 2:].sum() == rows - 1


def test_missing_mean_fills_with_the_training_mean():
    pre = fitted(fill=True)
    x = transform_features(
        pre, {"a": np.array([np.nan]), "b": np.array([5.0]), "c": np.array(["x"], dtype=object)}
    )
    assert x[0, 0] == 0.0


def test_labels_encode():
    onehot = fit_label(np.array(["b", "a", "b"]), "onehot", name="y")
    np.testing.assert_array_equal(encode_labels(onehot, np.array(["a", "b"])), [[1, 0], [0, 1]])
    sparse = fit_label(np.array([3, 1, 2]), "sparse", name="y")
    np.testing.assert_array_equal(encode_labels(sparse, np.array([2, 3])), [1, 2])


def test_json_round_trip_keeps_types():
    pre = fitted()
    pre = Preprocessor(pre.features, fit_label(np.array([0, 1, 2]), "onehot", name="digit"), (5,))
    again = Preprocessor.from_json(pre.to_json())
    assert again == pre
    assert again.label.classes == (0, 1, 2)


def test_a_newer_preprocess_format_is_refused_with_one_line():
    from cnncli.data.preprocess import PREPROCESS_FORMAT
    from cnncli.errors import CnnCliError

    features = fitted().features
    width = sum(feature.width for feature in features)
    pre = Preprocessor(features, fit_label(np.array([0, 1]), "binary", name="y"), (width,))
    assert Preprocessor.from_json(pre.to_json()) == pre
    newer = json.loads(pre.to_json())
    newer["format"] = PREPROCESS_FORMAT + 1
    with pytest.raises(
        CnnCliError, match=f"preprocess.json has format {PREPROCESS_FORMAT + 1}"
    ) as caught:
        Preprocessor.from_json(json.dumps(newer), "runs/x/preprocess.json")
    assert caught.value.where.file == "runs/x/preprocess.json"
    assert "retrain" in caught.value.hint


def test_an_empty_categorical_cell_under_missing_mean_is_no_category_and_no_warning():
    # pandas 3 keeps an empty text cell as NaN: fitting used to fail on '<' between float and
    # str (exit 1), and streaming warned the NaN was a category "not seen in training"
    import warnings

    from cnncli.data.preprocess import PreprocessingFit, transform_features

    site = np.array(["north", np.nan, "south", "north"], dtype=object)
    fit = PreprocessingFit(["site"], ["site"], classification=True)
    fit.update({"site": site}, np.array([0, 1, 0, 1]))
    pre = fit.finish(feature_method="none", label_kind="binary", fill_missing=True, label_name="y")
    assert pre.features[0].categories == ("north", "south")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        x = transform_features(pre, {"site": site})
    assert x.tolist() == [[1, 0], [0, 0], [0, 1], [1, 0]]
