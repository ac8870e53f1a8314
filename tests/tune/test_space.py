"""The search: block and repeat: N, checked before anything trains (no TensorFlow)."""

from __future__ import annotations

import os
import stat

import pytest

from cnncli.cli import cli
from cnncli.config.expand import expand_model
from cnncli.config.models import load_config
from cnncli.errors import CnnCliError
from cnncli.tune.results import read_importance
from cnncli.tune.space import check_space, point_config
from tests.conftest import base_config, error_lines, problems_of

SPACE = {"fit.batch_size": [4, 8], "model.layers[0].units": {"int": [4, 16], "log": True}}


def search_config(tiny_csv, space=None, **search):
    return base_config(tiny_csv, search={"trials": 3, "space": space or SPACE, **search})


def test_a_layer_entry_repeats(tiny_csv, write_config):
    raw = base_config(tiny_csv)
    raw["model"]["layers"][0]["repeat"] = 3
    config = load_config(write_config(raw))
    nodes = expand_model(config).nodes
    assert [node.spec.type for node in nodes] == ["Dense"] * 4
    assert all("repeat" not in node.spec.args for node in nodes)
    assert config.raw["model"]["layers"][0]["repeat"] == 3  # a search point indexes as written


def test_an_error_in_a_repeated_layer_points_at_its_entry(tiny_csv, write_config):
    raw = base_config(tiny_csv)
    raw["model"]["layers"][0].update(units=float("inf"), repeat=2)
    path = write_config(raw)
    with pytest.raises(CnnCliError) as caught:
        load_config(path)
    lines = path.read_text().splitlines()
    first, second = [n for n, line in enumerate(lines, 1) if line.strip() == "- type: Dense"][:2]
    problems = problems_of(caught)
    assert problems  # a copy of the entry: its position is the entry's
    assert all(first <= problem.where.line < second for problem in problems)


@pytest.mark.parametrize("value", [0, -1, 1.5, True, "2"])
def test_a_bad_repeat_is_one_line_at_its_key(tiny_csv, write_config, value):
    raw = base_config(tiny_csv)
    raw["model"]["layers"][0]["repeat"] = value
    with pytest.raises(CnnCliError) as caught:
        load_config(write_config(raw))
    [problem] = problems_of(caught)
    assert problem.message.startswith("repeat must be a whole number of at least 1")
    assert problem.where.key == "model.layers[0].repeat"
    assert problem.where.line is not None


def test_a_config_without_search_reads_back_unchanged(tiny_csv, write_config):
    config = load_config(write_config(base_config(tiny_csv)))
    assert "search" not in config.to_yaml_dict()


def test_a_point_writes_its_values_and_drops_the_search(tiny_csv, write_config):
    config = load_config(write_config(search_config(tiny_csv)))
    point = point_config(config, {"fit.batch_size": 4, "model.layers[0].units": 12}, 0.25)
    assert point.search is None
    assert point.fit.batch_size == 4 and point.model.layers[0].args["units"] == 12
    assert point.fit.validation_split == 0.25 and point.seed == 0


def test_a_point_sets_an_argument_of_an_optimizer_given_by_name(tiny_csv, write_config):
    space = {"compile.optimizer.learning_rate": {"float": [1e-4, 1e-2], "log": True}}
    config = load_config(write_config(search_config(tiny_csv, space)))
    point = point_config(config, {"compile.optimizer.learning_rate": 0.003}, 0.2)
    assert point.compile.optimizer.type == "adam"
    assert point.compile.optimizer.args == {"learning_rate": 0.003}


@pytest.mark.parametrize(
    ("space", "words"),
    [
        ({"fit.batch_size": []}, "must not be empty"),
        ({"fit.batch_size": {"int": [64, 8]}}, "empty or reversed"),
        ({"fit.batch_size": {"int": [8, 8]}}, "empty or reversed"),
        ({"compile.optimizer.learning_rate": {"float": [0.0, 0.1], "log": True}}, "above 0"),
        ({"fit.batch_size": {"int": [8, 64], "float": [1.0, 2.0]}}, "either int"),
        ({"fit.batch_size": "big"}, "a list of choices or a range"),
    ],
)
def test_a_bad_space_is_refused_in_one_line(tiny_csv, write_config, runner, space, words):
    path = write_config(search_config(tiny_csv, space))
    result = runner.invoke(cli, ["validate", str(path)])
    assert result.exit_code == 2
    [line] = error_lines(result)
    assert words in line
    assert f"{path}:" in line and ": search.space." in line


@pytest.mark.parametrize(
    ("key", "words"),
    [
        ("model.layerz[0].units", "model.layerz is not in the config; did you mean 'layers'?"),
        ("fit.batch_sise", "batch_size"),
        ("model.layers[7].units", "the stack has 2 layers"),
        ("output.dir", "output cannot be searched"),
        # a trial sets these itself: a searched value would be dropped without a word
        ("seed", "seed cannot be searched; every trial trains with the config's seed"),
        ("data.path", "data.path cannot be searched; a search compares models on one"),
        ("fit.validation_split", "search.validation_split sets the part"),
        ("fit..epochs", "is not a config key"),
    ],
)
def test_a_path_not_in_the_config_is_one_line_at_its_entry(
    tiny_csv, write_config, runner, key, words
):
    path = write_config(search_config(tiny_csv, {key: [1, 2]}))
    entry_line = max(  # the last match: search: comes last, and a config has a seed: line too
        number
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if line.strip().startswith(key) or line.strip().startswith(f"'{key}")
    )
    result = runner.invoke(cli, ["validate", str(path)])
    assert result.exit_code == 2, result.output
    [line] = error_lines(result)
    assert words in line
    assert f"{path}:{entry_line}:" in line
    assert "Traceback" not in result.stderr


def test_a_value_of_the_wrong_type_is_located_at_the_entry(tiny_csv, write_config):
    config = load_config(write_config(search_config(tiny_csv, {"fit.epochs": [2, "ten"]})))
    with pytest.raises(CnnCliError) as caught:
        check_space(config)
    assert "fit.epochs" in caught.value.one_line()
    assert caught.value.where.line is not None


def test_an_unlogged_metric_is_refused(tiny_csv, write_config, runner):
    path = write_config(search_config(tiny_csv, metric="val_acuracy"))
    result = runner.invoke(cli, ["validate", str(path)])
    assert result.exit_code == 2
    [line] = error_lines(result)
    assert "val_acuracy is not logged" in line and "did you mean 'val_accuracy'?" in line


def test_validate_accepts_a_good_search(tiny_csv, write_config, runner):
    result = runner.invoke(cli, ["validate", str(write_config(search_config(tiny_csv)))])
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("ok:")


def test_tune_without_a_config_or_report_is_a_usage_error(runner):
    result = runner.invoke(cli, ["tune"])
    assert result.exit_code == 2
    assert "give a CONFIG with a search: block, or --report FOLDER" in result.stderr


def test_report_of_a_folder_without_trials_is_one_line(runner, tmp_path):
    result = runner.invoke(cli, ["tune", "--report", str(tmp_path)])
    assert result.exit_code == 2
    [line] = error_lines(result)
    assert "no trials.csv in this folder" in line


def test_report_refuses_a_fifo_in_place_of_trials_csv(runner, tmp_path):
    # a FIFO would block the reader for ever: it is refused at once, and left as it is
    os.mkfifo(tmp_path / "trials.csv")
    result = runner.invoke(cli, ["tune", "--report", str(tmp_path)])
    assert result.exit_code == 2
    [line] = error_lines(result)
    assert "trials.csv" in line and "FIFO" in line
    assert stat.S_ISFIFO(os.lstat(tmp_path / "trials.csv").st_mode)


def test_a_hand_edited_importance_json_is_left_out_not_a_crash(tmp_path):
    (tmp_path / "importance.json").write_text('{"a": 1' + "0" * 400 + ', "b": 0.5, "c": true}')
    assert read_importance(tmp_path) == {"b": 0.5}
    os.remove(tmp_path / "importance.json")
    os.mkfifo(tmp_path / "importance.json")
    assert read_importance(tmp_path) == {}


def test_trials_past_the_configs_limit_are_refused_on_the_command_line(
    tiny_csv, write_config, runner
):
    # search.trials stops at 100,000; --trials 99999999999 ran on without end
    path = write_config(search_config(tiny_csv))
    result = runner.invoke(cli, ["tune", str(path), "--trials", "100001"])
    assert result.exit_code == 2
    [line] = error_lines(result)
    assert "--trials: 100001 is not in the range 1<=x<=100000" in line
