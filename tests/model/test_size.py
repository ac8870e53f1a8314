"""model/size.py: parameters counted by a build that allocates nothing, and training's bytes."""

from __future__ import annotations

import numpy as np
import pytest

from cnncli.model.size import estimate_memory, human_bytes
from cnncli.runtime import import_keras


def layer_stacks(keras):
    layers = keras.layers
    return {
        "dense": ((4,), [layers.Dense(8), layers.Dense(3)]),
        "conv1d-lstm-batchnorm": (
            (10, 3),
            [layers.Conv1D(4, 3), layers.LSTM(5), layers.BatchNormalization(), layers.Dense(2)],
        ),
        "conv2d": ((8, 8, 1), [layers.Conv2D(4, 3), layers.MaxPooling2D(), layers.Flatten()]),
        "embedding-gru": ((10,), [layers.Embedding(50, 4), layers.GRU(3), layers.Dense(2)]),
        "bidirectional": ((10, 3), [layers.Bidirectional(layers.LSTM(4)), layers.Dense(2)]),
    }


@pytest.mark.parametrize(
    "stack", ["dense", "conv1d-lstm-batchnorm", "conv2d", "embedding-gru", "bidirectional"]
)
def test_the_dry_count_equals_the_built_model_s(stack):
    keras = import_keras()
    shape, layers = layer_stacks(keras)[stack]
    estimate = estimate_memory(keras, layers, shape)
    model = keras.Sequential(
        [keras.Input(shape), *(type(x).from_config(x.get_config()) for x in layers)]
    )
    trainable = sum(int(np.prod(w.shape)) for w in model.trainable_weights)
    assert (estimate.parameters, sum(estimate.trainable)) == (model.count_params(), trainable)
    assert not layers[0].built  # the config's layers stay unbuilt; copies were built


def test_a_terabyte_model_is_counted_without_allocating():
    """Dense 2**20 after Dense 2**20 (issue 11.7): building it would ask for 4 TB."""
    keras = import_keras()
    estimate = estimate_memory(keras, [keras.layers.Dense(2**20), keras.layers.Dense(2**20)], (3,))
    assert estimate.parameters == (3 + 1) * 2**20 + (2**20 + 1) * 2**20
    assert estimate.largest == 1
    # 4 copies of each weight (weight, gradient, two Adam moments), 2 of each output per row
    assert estimate.training_bytes(32) == 4 * (4 * estimate.parameters + 2 * 32 * 2 * 2**20)
    assert human_bytes(estimate.training_bytes(32)) == "17.6 TB"
    assert human_bytes(999) == "999 B" and human_bytes(2.5e9) == "2.5 GB"
