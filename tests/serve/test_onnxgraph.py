"""The direct Keras → ONNX writer matches Keras for every layer it claims; it declines the rest."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.slow  # builds Keras models


def layers(keras, name):
    L = keras.layers
    return {
        "seed": (
            (3, 1),
            [
                L.Conv1D(64, 3, activation="relu", padding="same"),
                L.MaxPooling1D(2),
                L.Flatten(),
                L.Dense(64, activation="relu"),
                L.Dense(3, activation="softmax"),
            ],
        ),
        "conv1d": (
            (80, 2),
            [
                L.Conv1D(8, 7, strides=2, padding="same", activation="gelu"),
                L.AveragePooling1D(3, padding="same"),
                L.Conv1D(4, 5, dilation_rate=2, activation="elu"),
                L.Dropout(0.5),
                L.GlobalMaxPooling1D(),
                L.Dense(1, activation="sigmoid"),
            ],
        ),
        "conv2d": (
            (8, 8, 1),
            [
                L.Conv2D(6, 3, padding="same", activation="relu"),
                L.MaxPooling2D(2),
                L.BatchNormalization(),
                L.Conv2D(4, (3, 2), use_bias=False),
                L.GlobalAveragePooling2D(),
                L.Dense(10, activation="softmax"),
            ],
        ),
        "dense": (
            (5,),
            [
                *(
                    L.Dense(6, activation=a)
                    for a in (
                        "tanh",
                        "selu",
                        "softplus",
                        "softsign",
                        "swish",
                        "relu6",
                        "leaky_relu",
                    )
                ),
                L.Activation("sigmoid"),
                L.ReLU(),
                L.Reshape((3, 2)),
                L.Flatten(),
                L.Dense(4),
                L.Softmax(),
            ],
        ),
    }[name]


@pytest.mark.parametrize("name", ["seed", "conv1d", "conv2d", "dense"])
def test_onnx_graph_matches_keras(tmp_path: Path, name: str):
    import onnx

    from cnncli.runtime import import_keras
    from cnncli.serve.onnxgraph import sequential_onnx
    from cnncli.serve.onnxrun import OnnxModel

    keras = import_keras()
    shape, stack = layers(keras, name)
    model = keras.Sequential([keras.Input(shape), *stack])
    rng = np.random.default_rng(0)
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):  # non-trivial moving statistics
            layer.set_weights(
                [rng.uniform(0.5, 1.5, w.shape).astype("float32") for w in layer.get_weights()]
            )
    proto = sequential_onnx(model)
    assert proto is not None
    onnx.checker.check_model(proto)
    onnx.save(proto, str(tmp_path / "model.onnx"))
    x = rng.normal(size=(32, *shape)).astype("float32")
    expected = np.asarray(model.predict(x, verbose=0))
    np.testing.assert_allclose(OnnxModel(tmp_path / "model.onnx").predict(x), expected, atol=1e-5)


def test_unsupported_layers_fall_back():
    from cnncli.runtime import import_keras
    from cnncli.serve.onnxgraph import sequential_onnx

    keras = import_keras()
    model = keras.Sequential([keras.Input((5, 2)), keras.layers.LSTM(3), keras.layers.Dense(2)])
    assert sequential_onnx(model) is None


def test_a_functional_graph_with_every_merge_matches_keras(tmp_path: Path):
    """Shortcuts and every merge the writer claims, one input feeding several layers."""
    import onnx

    from cnncli.runtime import import_keras
    from cnncli.serve.onnxgraph import sequential_onnx
    from cnncli.serve.onnxrun import OnnxModel

    keras = import_keras()
    L = keras.layers
    inputs = keras.Input((12, 2))
    a = L.Conv1D(4, 3, padding="same", activation="relu")(inputs)
    b = L.BatchNormalization()(L.Conv1D(4, 5, padding="same")(a))
    joined = L.Add()([a, b, a])
    mixed = [L.Multiply()([joined, b]), L.Average()([joined, a]), L.Subtract()([joined, b])]
    extremes = L.Maximum()([L.Minimum()([mixed[0], mixed[1]]), mixed[2]])
    both = L.Concatenate()([extremes, inputs])
    model = keras.Model(inputs, L.Dense(3, activation="softmax")(L.GlobalAveragePooling1D()(both)))
    proto = sequential_onnx(model)
    assert proto is not None
    onnx.checker.check_model(proto)
    assert {"Add", "Mul", "Mean", "Sub", "Max", "Min", "Concat"} <= {
        node.op_type for node in proto.graph.node
    }
    onnx.save(proto, str(tmp_path / "model.onnx"))
    x = np.random.default_rng(0).normal(size=(16, 12, 2)).astype("float32")
    expected = np.asarray(model.predict(x, verbose=0))
    np.testing.assert_allclose(OnnxModel(tmp_path / "model.onnx").predict(x), expected, atol=1e-5)


def test_a_layer_used_twice_falls_back():
    from cnncli.runtime import import_keras
    from cnncli.serve.onnxgraph import sequential_onnx

    keras = import_keras()
    inputs = keras.Input((4,))
    shared = keras.layers.Dense(4)
    model = keras.Model(inputs, keras.layers.Add()([shared(inputs), shared(shared(inputs))]))
    assert sequential_onnx(model) is None
