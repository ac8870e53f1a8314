"""data/columns.py: which columns are features (numeric or categorical) and which is the label."""

from __future__ import annotations

import pytest

from cnncli.errors import CnnCliError
from tests.conftest import base_config
from tests.data.test_table import load


def test_text_column_is_categorical_but_a_numeric_column_with_a_typo_is_an_error(
    tmp_path, write_config
):
    text = "colour,size,label\n" + "".join(
        f"{c},{i},{'a' if i % 2 else 'b'}\n" for i, c in enumerate("rgbrgbrgb")
    )
    dataset = load(tmp_path, write_config, text)
    assert dataset.columns.categorical == ("colour",)
    typo = text.replace("g,4,", "g,4x,")
    with pytest.raises(CnnCliError) as caught:
        load(tmp_path, write_config, typo)
    assert caught.value.message == "numeric column holds text '4x'"
    assert caught.value.where.key == "column 'size'"
    assert caught.value.where.line == 6


def test_the_default_label_listed_as_a_feature_is_refused(runner, tiny_csv, write_config):
    """data.features: [label] trained on the label alone to accuracy 1.0, and validate said ok."""
    from cnncli.cli import cli

    config = base_config(tiny_csv)
    config["data"]["features"] = ["x1", "label"]  # data.label unset: the last column, 'label'
    result = runner.invoke(cli, ["validate", str(write_config(config))])
    assert result.exit_code == 2
    (line,) = result.stderr.strip().splitlines()
    assert line.endswith(
        "data.features[1]: the label 'label' is also listed as a feature;"
        " remove it from data.features, or name another column in data.label"
    )
