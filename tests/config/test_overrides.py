"""config/overrides.py: ``--set key=value`` applied to the raw config, and its errors."""

from __future__ import annotations

import pytest

from cnncli.config.models import load_config
from cnncli.errors import CnnCliError
from tests.conftest import base_config, error_lines


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
        load_config(path, ["fit.callbacks[0].patience=3"])  # no callbacks: there is no index 0
    assert caught.value.one_line() == (
        "--set fit.callbacks[0].patience=3: the list has 0 items; the list is empty: set the"
        " whole fit.callbacks=[…] instead"
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


def test_empty_override_clears_a_value(write_config, tiny_csv):
    config = base_config(tiny_csv)
    config["data"]["test_path"] = str(tiny_csv)
    assert load_config(write_config(config), ["data.test_path="]).data.test_path is None


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("model.layers[0]units=3", "'model.layers[0]units' is not a config key"),
        ("a..b=1", "'a..b' is not a config key"),
        ("x[=1", "'x[' is not a config key"),
        ("=3", "no key before '='"),
        ("model.layers[99].units=3", "the stack has 2 layers"),
        ("fit.epochs[0]=3", "fit.epochs is not a list"),
    ],
)
def test_malformed_set_path_is_one_line_at_the_override(write_config, tiny_csv, override, message):
    """Issue 11: `model.layers[0]units=3` used to be applied as if it were well-formed."""
    with pytest.raises(CnnCliError) as caught:
        load_config(write_config(base_config(tiny_csv)), [override])
    assert caught.value.message == message
    assert caught.value.where.file == f"--set {override}"
    assert "\n" not in caught.value.one_line()


@pytest.mark.parametrize(
    "override",
    ["fit.epochs=\x1b[31mred", "fit.epo\x1b[31mchs=3", "fit.epochs=3\x1b[0m", "data.path=\x1b[2J"],
)
def test_a_control_character_in_set_is_escaped_in_the_error(
    write_config, tiny_csv, runner, override
):
    """Hostile review: ``error: --set fit.epochs=<ESC>[31m…`` let the terminal obey the ESC."""
    from cnncli.cli import cli

    result = runner.invoke(
        cli, ["validate", str(write_config(base_config(tiny_csv))), "--set", override]
    )
    assert result.exit_code == 2
    assert "\x1b" not in result.stderr
    lines = error_lines(result)
    assert len(lines) == 1
    assert lines[0].startswith("error: --set " + override.replace("\x1b", "\\x1b") + ":")


def test_a_huge_set_value_is_cut_in_the_place_an_error_names(write_config, tiny_csv, runner):
    """Issue 11 cut a 100 KB config value in the message; the ``--set`` place still repeated
    the whole override, so the one line was 100 KB long."""
    from cnncli.cli import cli

    override = "fit.epochs=" + "a" * 100_000
    path = str(write_config(base_config(tiny_csv)))
    result = runner.invoke(cli, ["validate", path, "--set", override])
    assert result.exit_code == 2
    [line] = result.stderr.splitlines()
    assert line.startswith(f"error: --set fit.epochs={'a' * 288}… (100011 characters): fit.epochs:")
    assert len(line) < 600
