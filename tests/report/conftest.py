"""Runs shared by the history and compare tests: two complete runs and an interrupted one."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from cnncli.cli import cli
from tests.conftest import base_config, seed_like_rows
from tests.train.conftest import interrupt_after


@pytest.fixture(scope="session")
def runs_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``runs/`` with run ``a`` (2 epochs, 8 units), ``b`` (3 epochs, 16 units), both complete,
    and ``c`` stopped by SIGINT after epoch 1 of 4 (resumable)."""
    from click.testing import CliRunner

    folder = tmp_path_factory.mktemp("history")
    csv = folder / "rows.csv"
    csv.write_text(seed_like_rows(60))
    output = folder / "runs"
    runner = CliRunner()
    for name, units, epochs in (("a", 8, 2), ("b", 16, 3), ("c", 8, 4)):
        config = base_config(csv, name=name)
        config["model"]["layers"][0]["units"] = units
        config["fit"]["epochs"] = epochs
        path = folder / f"{name}.yaml"
        path.write_text(yaml.safe_dump(config, sort_keys=False))
        with pytest.MonkeyPatch.context() as monkeypatch:
            if name == "c":
                interrupt_after(monkeypatch, epoch=1)
            result = runner.invoke(cli, ["train", str(path), "--output", str(output)])
        assert result.exit_code == (130 if name == "c" else 0), result.output
    return output
