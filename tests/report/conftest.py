"""Runs for the report tests: every kind of label for the plots and the report, two complete
runs and an interrupted one for the history and compare tests; and a PNG reader."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest
import yaml

from cnncli.cli import cli
from tests.conftest import base_config, mixed_rows, seed_like_rows
from tests.train.conftest import interrupt_after

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def png_size(path: Path) -> tuple[int, int]:
    """Width and height of a PNG file, from its IHDR chunk; fails on anything not a PNG."""
    data = path.read_bytes()
    assert data[:8] == PNG_SIGNATURE, f"{path.name} is not a PNG"
    length, kind = struct.unpack(">I4s", data[8:16])
    assert (length, kind) == (13, b"IHDR"), f"{path.name} has no IHDR chunk first"
    assert data[-12:-4] == b"\x00\x00\x00\x00IEND", f"{path.name} does not end with IEND"
    return struct.unpack(">II", data[16:24])


@pytest.fixture(scope="session")
def binary_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A binary classifier (one sigmoid output, binary_crossentropy) on two classes."""
    from cnncli.config.models import load_config
    from cnncli.train.run import train_run

    folder = tmp_path_factory.mktemp("binary")
    (folder / "mixed.csv").write_text(mixed_rows(120))
    config = base_config(folder / "mixed.csv")
    config["model"]["layers"][-1] = {"type": "Dense", "units": "auto", "activation": "sigmoid"}
    config["compile"] = {
        "optimizer": "adam",
        "loss": "binary_crossentropy",
        "metrics": ["accuracy"],
    }
    config["fit"]["epochs"] = 2
    path = folder / "binary.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return train_run(load_config(path), folder / "runs").run_dir


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
