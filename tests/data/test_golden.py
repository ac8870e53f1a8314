"""The arrays training feeds Keras stay bit-for-bit the same on every example config.

``golden_preprocessing.json`` holds, for every config in ``configs/`` (read in memory, and for
some also streamed in small chunks with the hash split), a SHA-256 of each array's bytes with
its dtype and shape, and of ``preprocess.json``. It was recorded before the data readers and
the preprocessing fitter were merged; a change to cell rules, fitting or encoding that moves a
single bit fails here. Regenerate only for an intended change: ``python -m tests.data.test_golden``.
"""

from __future__ import annotations

import hashlib
import json
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from cnncli.config.models import load_config
from cnncli.data.split import TEST, TRAIN, VALIDATION
from tests.conftest import CARS_COLUMNS, base_config, cars_config, cars_rows
from tests.data.test_chunks import mixed_csv

ROOT = Path(__file__).resolve().parents[2]
GOLDEN = Path(__file__).with_name("golden_preprocessing.json")
CONFIGS = sorted((ROOT / "configs").glob("*.yaml"))
#: Streamed in chunks of 50 rows, so the running statistics merge many chunks.
STREAMING = ("data.streaming=true", "split.method=hash", "data.chunk_rows=50")
STREAMED_CONFIGS = ("seed", "iris", "diabetes", "gunpoint_conv1d")
#: A CSV with a categorical column and empty cells, under each ``data.missing`` that reads it.
MIXED = ("mixed-drop", "mixed-mean")
#: A table with a date column (one cell empty, filled) and two dropped columns (data.columns).
DATED = "cars-date"
CASES = (
    [(path.stem, "memory") for path in CONFIGS]
    + [(name, "stream") for name in STREAMED_CONFIGS]
    + [(name, mode) for name in (*MIXED, DATED) for mode in ("memory", "stream")]
)


def digest(array: np.ndarray | None) -> dict[str, Any] | None:
    if array is None:
        return None
    array = np.ascontiguousarray(array)
    return {
        "dtype": str(array.dtype),
        "shape": list(array.shape),
        "sha256": hashlib.sha256(array.tobytes()).hexdigest(),
    }


def streamed_arrays(data: Any, part: int) -> tuple[np.ndarray | None, np.ndarray | None]:
    pairs = [data.arrays(chunk) for chunk in data.part_chunks(part) if chunk.rows]
    if not pairs:
        return None, None
    return np.concatenate([x for x, _ in pairs]), np.concatenate([y for _, y in pairs])


def fingerprints(name: str, mode: str) -> dict[str, Any]:
    """Digests of what ``train`` would feed Keras for one example config."""
    overrides = STREAMING if mode == "stream" else ("data.streaming=false",)
    if name == DATED:
        with tempfile.TemporaryDirectory() as folder:
            data = Path(folder) / "cars.csv"
            data.write_text(cars_rows(300, empty_date_at=7))
            raw = cars_config(data, columns=CARS_COLUMNS, missing="mean")
            raw["fit"]["validation_split"] = 0.1
            path = Path(folder) / "cars.yaml"
            path.write_text(yaml.safe_dump(raw))
            return _fingerprints(load_config(path, overrides), mode)
    if name not in MIXED:
        return _fingerprints(load_config(ROOT / "configs" / f"{name}.yaml", overrides), mode)
    with tempfile.TemporaryDirectory() as folder:
        data = mixed_csv(Path(folder) / "mixed.csv")
        raw = base_config(data, data={"path": str(data), "missing": name.split("-")[1]})
        raw["fit"]["validation_split"] = 0.1
        path = Path(folder) / "mixed.yaml"
        path.write_text(yaml.safe_dump(raw))
        return _fingerprints(load_config(path, overrides), mode)


def _fingerprints(config: Any, mode: str) -> dict[str, Any]:
    seed = config.seed if config.seed is not None else 0
    if mode == "stream":
        from cnncli.train.feed import prepare_streamed

        data = prepare_streamed(config, seed)
        arrays = {}
        for part, label in ((TRAIN, "train"), (TEST, "test"), (VALIDATION, "val")):
            x, y = streamed_arrays(data, part)
            arrays[f"x_{label}"], arrays[f"y_{label}"] = x, y
        preprocessor, task, notes = data.preprocessor, data.task, data.notes
    else:
        from cnncli.train.feed import prepare_data

        prepared = prepare_data(config, seed)
        arrays = {
            "x_train": prepared.x_train,
            "y_train": prepared.y_train,
            "x_test": prepared.x_test,
            "y_test": prepared.y_test,
            "x_val": prepared.x_val,
            "y_val": prepared.y_val,
        }
        preprocessor, task, notes = prepared.preprocessor, prepared.task, prepared.notes
    text = preprocessor.to_json()
    return {
        "task": task,
        "notes": list(notes),
        "preprocess_json_sha256": hashlib.sha256(text.encode()).hexdigest(),
        "input_shape": list(preprocessor.input_shape),
        **{key: digest(value) for key, value in arrays.items()},
    }


def test_every_example_config_has_golden_fingerprints():
    recorded = json.loads(GOLDEN.read_text())
    assert sorted(recorded) == sorted(f"{name}/{mode}" for name, mode in CASES)


@pytest.mark.parametrize(("name", "mode"), CASES, ids=[f"{n}-{m}" for n, m in CASES])
def test_preprocessed_arrays_match_the_recorded_ones_bit_for_bit(name, mode):
    recorded = json.loads(GOLDEN.read_text())[f"{name}/{mode}"]
    assert fingerprints(name, mode) == recorded


if __name__ == "__main__":  # records the fixture: only for an intended change
    GOLDEN.write_text(
        json.dumps({f"{n}/{m}": fingerprints(n, m) for n, m in CASES}, indent=1, sort_keys=True)
        + "\n"
    )
