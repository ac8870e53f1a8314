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
    config["fit"]["callbacks"] = [{"type": callback}]
    with pytest.raises(CnnCliError) as caught:
        load_config(write_config(config))
    (problem,) = problems_of(caught)
    assert problem.message.startswith(f"{callback} sets the learning rate")
    assert problem.where.key == "fit.callbacks[0]" and problem.where.line is not None
    assert problem.hint.startswith("keep either the schedule")
    config["compile"]["optimizer"]["learning_rate"] = 0.1
    load_config(write_config(config))  # a number the callback may change is fine
