"""load_config: YAML reading with positions, schema errors, overrides, cross-field checks."""

from __future__ import annotations

import pytest
import yaml

from cnncli.config.models import load_config
from cnncli.errors import CnnCliError, ConfigErrors
from tests.conftest import CONFIGS, base_config


def problems_of(caught: pytest.ExceptionInfo[CnnCliError]) -> list[CnnCliError]:
    error = caught.value
    return error.problems if isinstance(error, ConfigErrors) else [error]


def test_example_config_loads_with_absolute_data_path():
    config = load_config(CONFIGS / "seed.yaml")
    assert config.name == "seed-conv1d"
    assert config.data.path == str((CONFIGS.parent / "data" / "seed.csv").resolve())
    assert [layer.type for layer in config.model.layers] == [
        "Conv1D",
        "MaxPooling1D",
        "Flatten",
        "Dense",
        "Dense",
    ]
    assert config.model.layers[2].args == {}
    assert config.model.layers[4].args["units"] == "auto"


def test_yaml_1_2_numbers_and_booleans(write_config, tiny_csv):
    text = f"""
data: {{path: {tiny_csv}}}
model: {{layers: [{{type: Dense, units: auto}}]}}
compile: {{optimizer: {{type: Adam, learning_rate: 1e-3}}}}
name: no
"""
    config = load_config(write_config(text))
    assert config.compile.optimizer.args["learning_rate"] == pytest.approx(0.001)
    assert isinstance(config.compile.optimizer.args["learning_rate"], float)
    assert config.name == "no"  # YAML 1.1 would have read a boolean


def test_unknown_key_points_at_line_and_suggests(write_config, tiny_csv):
    text = f"""name: t
data:
  path: {tiny_csv}
model:
  layers: [Dense]
fit:
  epochz: 3
"""
    path = write_config(text)
    with pytest.raises(CnnCliError) as caught:
        load_config(path)
    (problem,) = problems_of(caught)
    assert problem.message == "unknown key 'epochz'"
    assert problem.hint == "did you mean 'epochs'?"
    assert (problem.where.line, problem.where.column) == (7, 3)
    assert (
        problem.one_line()
        == f"{path}:7:3: fit.epochz: unknown key 'epochz'; did you mean 'epochs'?"
    )


def test_every_schema_problem_is_reported(write_config, tiny_csv):
    config = base_config(tiny_csv, fit={"epochs": 0, "batch_size": "big"})
    config["split"] = {"test_size": 1.5}
    with pytest.raises(ConfigErrors) as caught:
        load_config(write_config(config))
    keys = {problem.where.key: problem.message for problem in caught.value.problems}
    assert keys["fit.epochs"] == "expected a positive integer, got 0"
    assert keys["fit.batch_size"] == "expected an integer, got 'big'"
    assert keys["split.test_size"] == "expected a value < 1.0, got 1.5"


def test_missing_required_section(write_config, tiny_csv):
    with pytest.raises(CnnCliError) as caught:
        load_config(write_config({"data": {"path": str(tiny_csv)}}))
    (problem,) = problems_of(caught)
    assert problem.where.key == "model"
    assert problem.message == "missing required value"
    assert "layers" in problem.hint


def test_literal_choice_gets_did_you_mean(write_config, tiny_csv):
    config = base_config(tiny_csv)
    config["data"]["missing"] = "dorp"
    with pytest.raises(CnnCliError) as caught:
        load_config(write_config(config))
    (problem,) = problems_of(caught)
    assert problem.where.key == "data.missing"
    assert problem.hint == "did you mean 'drop'?"


def test_duplicate_keys_are_an_error(write_config, tiny_csv):
    text = f"name: a\nname: b\ndata: {{path: {tiny_csv}}}\nmodel: {{layers: [Dense]}}\n"
    with pytest.raises(CnnCliError) as caught:
        load_config(write_config(text))
    (problem,) = problems_of(caught)
    assert problem.message == "duplicate key 'name' (first given on line 1)"
    assert problem.where.line == 2


def test_yaml_syntax_error_has_position(write_config):
    with pytest.raises(CnnCliError, match="YAML syntax error") as caught:
        load_config(write_config("model:\n  layers: [Dense\n"))
    assert caught.value.where.line is not None


def test_python_tags_are_refused(write_config, tiny_csv):
    text = f"name: !!python/object/apply:os.system ['echo hacked']\ndata: {{path: {tiny_csv}}}\nmodel: {{layers: [Dense]}}\n"
    with pytest.raises(CnnCliError) as caught:
        load_config(write_config(text))
    assert (
        "tag:yaml.org,2002:python/object/apply:os.system is not allowed" in caught.value.one_line()
    )


def test_label_cannot_be_a_feature(write_config, tiny_csv):
    config = base_config(tiny_csv)
    config["data"].update(features=["x1", "label"], label="label")
    with pytest.raises(CnnCliError) as caught:
        load_config(write_config(config))
    (problem,) = problems_of(caught)
    assert problem.message == "the label 'label' is also listed as a feature"
    assert problem.where.key == "data.features[1]"


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


# --- --set overrides -----------------------------------------------------------------------


def test_overrides_apply_and_parse_as_yaml(write_config, tiny_csv):
    path = write_config(base_config(tiny_csv))
    config = load_config(
        path,
        [
            "fit.epochs=5",
            "model.layers[0].units=128",
            "compile.optimizer={type: Adam, learning_rate: 1e-2}",
        ],
    )
    assert config.fit.epochs == 5
    assert config.model.layers[0].args["units"] == 128
    assert config.compile.optimizer.args["learning_rate"] == pytest.approx(0.01)


def test_override_errors_point_at_the_override(write_config, tiny_csv):
    path = write_config(base_config(tiny_csv))
    with pytest.raises(CnnCliError) as caught:
        load_config(path, ["model.layers[9].units=8"])
    assert (
        caught.value.one_line()
        == "--set model.layers[9].units=8: the stack has 2 layers; use an index from 0 to 1"
    )
    with pytest.raises(CnnCliError) as caught:
        load_config(path, ["fit.epochs=-1"])
    assert (
        caught.value.one_line()
        == "--set fit.epochs=-1: fit.epochs: expected a positive integer, got -1; set epochs to 1 or more"
    )


def test_override_can_turn_a_bare_layer_into_a_mapping(write_config, tiny_csv):
    config = base_config(tiny_csv)
    config["model"]["layers"].insert(0, "Flatten")
    config = load_config(write_config(config), ["model.layers[0].name=flat"])
    assert config.model.layers[0].type == "Flatten"
    assert config.model.layers[0].args == {"name": "flat"}


def test_malformed_override(write_config, tiny_csv):
    with pytest.raises(CnnCliError, match="expected key=value"):
        load_config(write_config(base_config(tiny_csv)), ["fit.epochs"])


def test_resolved_config_round_trips(write_config, tiny_csv):
    config = load_config(write_config(base_config(tiny_csv)), ["fit.epochs=2"])
    again = load_config(write_config(yaml.safe_dump(config.to_yaml_dict())))
    assert again.to_yaml_dict() == config.to_yaml_dict()
    assert again.fingerprint() == config.fingerprint()


def test_schema_errors_do_not_import_tensorflow(write_config, tiny_csv):
    import subprocess
    import sys

    config = base_config(tiny_csv, fit={"epochz": 1})
    path = write_config(config)
    code = (
        "import sys, time; t=time.perf_counter()\n"
        "from cnncli.config.models import load_config\n"
        "try:\n    load_config(sys.argv[1])\nexcept Exception as e:\n    print(type(e).__name__)\n"
        "print(round(time.perf_counter()-t, 3))\n"
        "print(sorted(m for m in ('tensorflow','keras','pandas','sklearn') if m in sys.modules))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(path)], capture_output=True, text=True, check=True
    ).stdout.split()
    assert out[0] == "ConfigErrors"
    assert out[2] == "[]"


def test_name_defaults_to_the_file_name(write_config, tiny_csv):
    config = base_config(tiny_csv)
    del config["name"]
    assert load_config(write_config(config, name="my model.yaml")).name == "my-model"


def test_empty_override_clears_a_value(write_config, tiny_csv):
    config = base_config(tiny_csv)
    config["data"]["test_path"] = str(tiny_csv)
    assert load_config(write_config(config), ["data.test_path="]).data.test_path is None
