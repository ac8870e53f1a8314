"""config/checks.py: the cross-field checks of pass two."""

from __future__ import annotations

import pytest
import yaml

from cnncli.config.models import load_config
from cnncli.errors import CnnCliError
from tests.conftest import EXPONENTIAL_DECAY, base_config, problems_of


def test_conv_strides_and_dilation_conflict(write_config, tiny_csv):
    config = base_config(tiny_csv)
    config["model"]["layers"].insert(
        0, {"type": "Conv1D", "filters": 4, "kernel_size": 2, "strides": 2, "dilation_rate": 2}
    )
    with pytest.raises(CnnCliError, match="strides=2 together with dilation_rate=2") as caught:
        load_config(write_config(config))
    assert problems_of(caught)[0].where.label == "Conv1D"


def test_causal_padding_only_for_1d(write_config, tiny_csv):
    config = base_config(tiny_csv)
    config["model"]["layers"].insert(
        0, {"type": "Conv2D", "filters": 4, "kernel_size": 2, "padding": "causal"}
    )
    with pytest.raises(CnnCliError, match="only defined for 1-D convolutions, not Conv2D"):
        load_config(write_config(config))


def test_a_feature_listed_twice(write_config, tiny_csv):
    config = base_config(tiny_csv, data={"path": str(tiny_csv), "features": ["x1", "x2", "x1"]})
    with pytest.raises(CnnCliError) as caught:
        load_config(write_config(config))
    (problem,) = problems_of(caught)
    assert problem.message == "feature 'x1' is listed twice"
    assert problem.where.key == "data.features[2]"
    assert problem.hint == "list each column once"


@pytest.mark.parametrize(
    ("task", "label", "options"),
    [
        ("classification", "standard", "onehot or sparse"),
        ("regression", "onehot", "none or standard"),
    ],
)
def test_label_preprocessing_must_fit_the_task(write_config, tiny_csv, task, label, options):
    config = base_config(tiny_csv, task=task, preprocess={"label": label})
    with pytest.raises(CnnCliError) as caught:
        load_config(write_config(config))
    (problem,) = problems_of(caught)
    assert problem.one_line().endswith(
        f"preprocess.label: preprocess.label '{label}' does not fit task {task}; use {options}"
    )


def test_every_problem_of_pass_two_is_reported_together(write_config, tiny_csv):
    config = base_config(
        tiny_csv,
        data={"path": str(tiny_csv), "features": ["x1", "x1", "label"], "label": "label"},
    )
    with pytest.raises(CnnCliError) as caught:
        load_config(write_config(config))
    assert [problem.message for problem in problems_of(caught)] == [
        "the label 'label' is also listed as a feature",
        "feature 'x1' is listed twice",
    ]


def test_label_cannot_be_a_feature(write_config, tiny_csv):
    config = base_config(tiny_csv)
    config["data"].update(features=["x1", "label"], label="label")
    with pytest.raises(CnnCliError) as caught:
        load_config(write_config(config))
    (problem,) = problems_of(caught)
    assert problem.message == "the label 'label' is also listed as a feature"
    assert problem.where.key == "data.features[1]"


@pytest.mark.parametrize("value", [".nan", ".inf", "-.inf"])
def test_a_learning_rate_that_is_not_finite_is_refused(write_config, tiny_csv, value):
    """learning_rate: .nan passed validate, and training ended in a NaN loss and exit 1."""
    config = base_config(tiny_csv)
    config["compile"] = {"optimizer": {"type": "SGD", "learning_rate": "VALUE"}}
    text = yaml.safe_dump(config).replace("VALUE", value).replace("'", "")
    with pytest.raises(CnnCliError) as caught:
        load_config(write_config(text))
    (problem,) = problems_of(caught)
    assert problem.message.endswith("is not a finite number")
    assert problem.where.key == "compile.optimizer.learning_rate"
    assert problem.where.line is not None


@pytest.mark.parametrize("callback", ["ReduceLROnPlateau", "LearningRateScheduler"])
def test_a_schedule_set_again_by_a_callback_is_refused(write_config, tiny_csv, callback):
    """Keras refused to set a scheduled rate after epoch 1: exit 1 mid-training (issue 11.6)."""
    config = base_config(tiny_csv)
    config["compile"]["optimizer"] = {"type": "SGD", "learning_rate": EXPONENTIAL_DECAY}
    config["fit"].update(callbacks=[{"type": callback}], validation_split=0.25)  # its val_loss
    with pytest.raises(CnnCliError) as caught:
        load_config(write_config(config))
    (problem,) = problems_of(caught)
    assert problem.message.startswith(f"{callback} sets the learning rate")
    assert problem.where.key == "fit.callbacks[0]" and problem.where.line is not None
    assert problem.hint.startswith("keep either the schedule")
    config["compile"]["optimizer"]["learning_rate"] = 0.1
    load_config(write_config(config))  # a number the callback may change is fine


@pytest.mark.parametrize(
    ("rate", "key", "climb"),
    [
        (-0.05, "compile.optimizer.learning_rate", True),
        (0, "compile.optimizer.learning_rate", False),
        ({**EXPONENTIAL_DECAY, "initial_learning_rate": -1.0}, ".initial_learning_rate", True),
    ],
)
def test_a_learning_rate_at_or_below_zero_is_refused_at_its_key(
    write_config, tiny_csv, rate, key, climb
):
    """Hostile review 3: Adam at -0.05 validated and trained with a climbing loss."""
    config = base_config(tiny_csv)
    config["compile"]["optimizer"] = {"type": "Adam", "learning_rate": rate}
    with pytest.raises(CnnCliError) as caught:
        load_config(write_config(config))
    (problem,) = problems_of(caught)
    assert problem.where.key.endswith(key)
    assert problem.message.startswith("expected a learning rate above 0, got ")
    assert ("climb the loss" in problem.message) == climb
    assert problem.hint == "use a small positive number, e.g. learning_rate: 0.001"


@pytest.mark.parametrize(
    ("callback", "key"),
    [
        ({"type": "EarlyStopping", "monitor": "val_accuracy"}, "fit.callbacks[0].monitor"),
        ({"type": "ReduceLROnPlateau"}, "fit.callbacks[0]"),  # Keras' default: val_loss
        ({"type": "ModelCheckpoint", "filepath": "m.keras", "save_best_only": True}, None),
    ],
)
def test_a_callback_monitoring_a_validation_metric_needs_a_validation_split(
    write_config, tiny_csv, callback, key
):
    """Hostile review 3: Keras warned in its own words and the callback never acted."""
    config = base_config(tiny_csv)
    config["fit"]["callbacks"] = [callback]
    with pytest.raises(CnnCliError) as caught:
        load_config(write_config(config))
    (problem,) = problems_of(caught)
    assert problem.where.key == (key or "fit.callbacks[0]")
    assert " monitors val_" in problem.message and "no validation part" in problem.message
    assert problem.hint.startswith("set fit.validation_split (e.g. 0.2), or monitor")
    config["fit"]["validation_split"] = 0.25
    load_config(write_config(config))  # with a validation part it is fine
    config["fit"] = {"callbacks": [{"type": "ModelCheckpoint", "filepath": "m.keras"}]}
    load_config(write_config(config))  # saves every epoch: monitors nothing
