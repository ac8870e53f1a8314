"""build.py and arguments.py: layers, optimizers, losses, metrics and their argument errors."""

from __future__ import annotations

import pytest

from cnncli.config.models import LayerSpec, load_config
from cnncli.errors import CnnCliError, Location
from cnncli.model import build
from cnncli.model.arguments import MAX_LAYER_SIZE, check_arguments, keras_message, shape_text
from cnncli.model.registry import REGULARIZERS, SCHEDULES
from tests.conftest import EXPONENTIAL_DECAY, base_config
from tests.model.conftest import WHERE


def layer(spec, keras):
    return build.make_layer(LayerSpec.model_validate(spec), WHERE, keras)


def config_with(write_config, tiny_csv, **compile_):
    config = base_config(tiny_csv)
    config["compile"].update(compile_)
    return load_config(write_config(config))


# ---------------------------------------------------------------------------------------------
# Layer arguments


def test_unknown_argument_gets_its_location_and_a_close_name(keras):
    with pytest.raises(CnnCliError) as caught:
        layer({"type": "Dense", "unit": 8}, keras)
    assert caught.value.message == "Dense has no argument 'unit'"
    assert caught.value.where.key == "model.layers[0].unit"
    assert caught.value.hint == "did you mean 'units'?"


@pytest.mark.parametrize(
    ("spec", "argument", "hint"),
    [
        (
            {"type": "Conv1D", "nb_filter": 8, "kernel_size": 2},
            "nb_filter",
            "Keras 3 calls it filters",
        ),
        (
            {"type": "Dense", "units": 4, "init": "zeros"},
            "init",
            "Keras 3 calls it kernel_initializer",
        ),
        (
            {"type": "Dense", "units": 4, "input_dim": 3},
            "input_dim",
            "Keras 3 calls it model.input_shape (not a layer argument)",
        ),
    ],
)
def test_keras2_arguments_say_what_keras3_calls_them(keras, spec, argument, hint):
    with pytest.raises(CnnCliError) as caught:
        layer(spec, keras)
    assert caught.value.message == f"argument '{argument}' is Keras 2 spelling"
    assert caught.value.where.key == f"model.layers[0].{argument}"
    assert caught.value.hint == hint


def test_absurd_sizes_are_refused_before_keras_allocates(keras):
    with pytest.raises(CnnCliError) as caught:
        layer({"type": "Dense", "units": MAX_LAYER_SIZE + 1}, keras)
    assert caught.value.message == "units: 1,048,577 is too large (at most 1,048,576)"
    assert caught.value.where.key == "model.layers[0].units"
    assert layer({"type": "Dense", "units": 16}, keras).units == 16


@pytest.mark.parametrize(
    ("spec", "key"),
    [
        ({"type": "Dropout", "rate": 0.1, "seed": 2**31}, "model.layers[0].seed"),
        (
            {
                "type": "Dense",
                "units": 2,
                "kernel_initializer": {"type": "GlorotUniform", "seed": -1},
            },
            "model.layers[0].kernel_initializer.seed",
        ),
    ],
)
def test_a_seed_keras_cannot_hold_is_refused_at_its_key(keras, spec, key):
    """A seed past int32 failed while the layer was built, blamed on the layer's input shape."""
    with pytest.raises(CnnCliError) as caught:
        layer(spec, keras)
    assert caught.value.message.startswith("expected a seed from 0 to 2147483647, got ")
    assert caught.value.where.key == key
    assert layer({"type": "Dropout", "rate": 0.1, "seed": 2**31 - 1}, keras).seed == 2**31 - 1


def test_keras_constructor_error_points_at_the_argument(keras):
    with pytest.raises(CnnCliError) as caught:
        layer({"type": "Conv1D", "filters": 4, "kernel_size": 2, "padding": "full"}, keras)
    assert caught.value.where.key == "model.layers[0].padding"
    assert caught.value.hint == "see the Keras docs for Conv1D(padding=...)"
    assert "{'causal', 'same', 'valid'}" in caught.value.message


def test_nested_layers_initializers_and_regularizers_are_objects(keras):
    built = layer(
        {
            "type": "Bidirectional",
            "layer": {"type": "LSTM", "units": 3, "kernel_initializer": "he_normal"},
        },
        keras,
    )
    assert type(built.forward_layer).__name__ == "LSTM"
    dense = layer(
        {"type": "Dense", "units": 2, "kernel_regularizer": {"type": "L1L2", "l2": 0.01}}, keras
    )
    assert isinstance(dense.kernel_regularizer, keras.regularizers.L1L2)
    assert dense.kernel_regularizer.l2 == pytest.approx(0.01)


def test_unknown_regularizer_has_a_close_name(keras):
    with pytest.raises(CnnCliError) as caught:
        build.make_object(REGULARIZERS, "l3", WHERE.child("kernel_regularizer"), keras)
    assert caught.value.message == "unknown regularizer 'l3'"
    assert caught.value.hint == "did you mean 'l2'?"


def test_check_arguments_accepts_base_class_arguments(keras):
    args = {"units": 2, "name": "head", "dtype": "float32"}
    assert check_arguments(keras.layers.Dense, args, WHERE, (keras.layers.Layer,)) == args
    with pytest.raises(CnnCliError, match="Dense has no argument 'name'"):
        check_arguments(keras.layers.Dense, args, WHERE)


# ---------------------------------------------------------------------------------------------
# Compile objects


def test_optimizer_by_name_by_class_and_with_a_schedule(write_config, tiny_csv, keras):
    assert isinstance(
        build.make_optimizer(config_with(write_config, tiny_csv), keras), keras.optimizers.Adam
    )
    optimizer = build.make_optimizer(
        config_with(
            write_config,
            tiny_csv,
            optimizer={
                "type": "SGD",
                "learning_rate": EXPONENTIAL_DECAY,
            },
        ),
        keras,
    )
    assert isinstance(optimizer, keras.optimizers.SGD)
    assert float(optimizer.learning_rate) == pytest.approx(0.1)  # the schedule at step 0
    assert float(optimizer._learning_rate(10)) == pytest.approx(0.05)


def test_unknown_schedule_is_located(keras):
    with pytest.raises(CnnCliError) as caught:
        build.make_object(
            SCHEDULES, "ExponentalDecay", Location(key="compile.optimizer.learning_rate"), keras
        )
    assert caught.value.message == "unknown schedule 'ExponentalDecay'"
    assert caught.value.hint == "did you mean 'ExponentialDecay'?"


def test_optimizer_keras_error_is_located(write_config, tiny_csv, keras):
    with pytest.raises(CnnCliError) as caught:
        build.make_optimizer(
            config_with(
                write_config, tiny_csv, optimizer={"type": "Adam", "learning_rate": "fast"}
            ),
            keras,
        )
    assert caught.value.where.key == "compile.optimizer"


def test_losses_names_stay_names_and_classes_are_instances(write_config, tiny_csv, keras):
    assert (
        build.make_loss(config_with(write_config, tiny_csv, loss="huber"), keras, "mse") == "huber"
    )
    huber = build.make_loss(
        config_with(write_config, tiny_csv, loss={"type": "Huber", "delta": 2.0}), keras, "mse"
    )
    assert isinstance(huber, keras.losses.Huber)
    error = huber(keras.ops.array([0.0]), keras.ops.array([3.0]))
    assert float(error) == pytest.approx(4.0)  # delta 2: 2 * (3 - 1); the default gives 2.5
    assert build.make_loss(config_with(write_config, tiny_csv, loss=None), keras, "mse") == "mse"


def test_function_loss_with_arguments_asks_for_the_class(write_config, tiny_csv, keras):
    with pytest.raises(CnnCliError) as caught:
        build.make_loss(
            config_with(write_config, tiny_csv, loss={"type": "huber", "delta": 2.0}), keras, "mse"
        )
    assert caught.value.message == "'huber' with arguments must be a loss class name"
    assert caught.value.hint == "did you mean 'Huber'? names are case-sensitive"
    assert caught.value.where.key == "compile.loss"


def test_metrics_aliases_and_classes(write_config, tiny_csv, keras):
    metrics = build.make_metrics(
        config_with(
            write_config, tiny_csv, metrics=["accuracy", {"type": "Precision", "thresholds": 0.7}]
        ),
        keras,
        (),
    )
    assert metrics[0] == "accuracy"
    assert isinstance(metrics[1], keras.metrics.Precision)
    assert metrics[1].thresholds == pytest.approx([0.7])
    unset = config_with(write_config, tiny_csv, metrics=None)
    assert build.make_metrics(unset, keras, ("mae",)) == ["mae"]


# ---------------------------------------------------------------------------------------------
# The model


def test_build_model_names_layers_stably_and_resolves_auto_units(write_config, tiny_csv, keras):
    config = load_config(write_config(base_config(tiny_csv)))
    assert build.resolve_units(config, 3)[1].spec.args["units"] == 3
    model = build.build_model(config, (3,), 3)
    rows = build.describe_layers(model)
    assert [row["name"] for row in rows] == ["dense_0", "dense_1"]
    assert rows[1] == {
        "name": "dense_1",
        "type": "Dense",
        "output_shape": "(batch, 3)",
        "params": 27,
    }
    assert model.optimizer is not None


def test_layer_that_does_not_fit_its_input_is_located(write_config, tiny_csv):
    config = base_config(tiny_csv)
    config["model"]["layers"].insert(0, {"type": "Conv2D", "filters": 2, "kernel_size": 2})
    with pytest.raises(CnnCliError) as caught:
        build.build_model(load_config(write_config(config)), (3,), 3, compile_model=False)
    assert caught.value.message.startswith("does not fit its input of shape (batch, 3): ")
    assert caught.value.where.key == "model.layers[0]"


def test_keras_message_drops_context_colour_and_set_order():
    exc = ValueError(
        "\x1b[1mException encountered when calling Dense.call().\x1b[0m\n\n"
        "Invalid value {'valid', 'causal', 'same'} for padding\n\nArguments received by Dense.call():"
    )
    assert keras_message(exc) == "Invalid value {'causal', 'same', 'valid'} for padding"
    assert keras_message(TypeError("")) == "TypeError"
    assert shape_text((None, 3, 1)) == "(batch, 3, 1)"
