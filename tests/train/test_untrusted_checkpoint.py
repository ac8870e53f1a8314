"""An interrupted run's folder is untrusted input too: state.json, its links, a run's YAML/JSON.

Hostile review 3: ``final_name: ../../escaped-run`` published the run outside the output folder,
``epoch: -3`` trained 607 epochs for ``fit.epochs: 400``, a hard link carried CSVLogger's writes
out of the run, an alias bomb in a run's config.yaml ran ``evaluate`` out of memory and a deeply
nested manifest.json ended in a RecursionError (exit 1).
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from cnncli.cli import cli
from cnncli.runs import MANIFEST_FILENAME, sha256_file
from cnncli.train.checkpoints import store
from tests.conftest import error_lines
from tests.test_properties import FAST, config_paths, invoke
from tests.test_untrusted_runs import _DROP, hostile_values, replaced
from tests.train.conftest import interrupt_after, resume_config, staging_folders


@pytest.fixture(scope="module")
def interrupted(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(config, output folder) of a 3-epoch run interrupted after epoch 1."""
    from tests.conftest import seed_like_rows

    folder = tmp_path_factory.mktemp("interrupted")
    csv = folder / "rows.csv"
    csv.write_text(seed_like_rows(40, seed=5))
    config = folder / "resume.yaml"
    config.write_text(yaml.safe_dump(resume_config(csv, epochs=3)))
    with pytest.MonkeyPatch.context() as patch:
        interrupt_after(patch, epoch=1)
        result = CliRunner().invoke(cli, ["train", str(config), "--output", str(folder / "runs")])
    assert result.exit_code == 130, result.output
    return config, folder / "runs"


def edited_copy(interrupted: tuple[Path, Path], where: Path) -> tuple[Path, Path]:
    """A copy of the interrupted output folder under ``where``: (output, staging folder)."""
    output = where / "out" / "runs"
    shutil.copytree(interrupted[1], output)
    (staging,) = staging_folders(output)
    return output, staging


def edit_state(staging: Path, **fields: Any) -> None:
    path = store.state_path(staging)
    path.write_text(json.dumps({**json.loads(path.read_text()), **fields}))


def resume(runner, config: Path, output: Path, staging: Path):
    args = ["train", str(config), "--output", str(output), "--resume", str(staging), "--json"]
    return runner.invoke(cli, args)


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"final_name": "../../escaped-run"}, "final_name: expected a run name"),
        ({"final_name": "/tmp/abs-run"}, "final_name: expected a run name"),
        ({"final_name": "other-20260101-000000"}, "final_name: expected the run's folder name"),
        ({"epoch": -3}, "epoch: expected a whole number ≥ 0, got -3"),
        ({"epoch": 2}, "history.accuracy: expected a list of 2 item(s), got '1 item(s)'"),
        ({"arrays": "../../model.npz"}, "arrays: expected a file name epoch-NNNN.npz"),
        ({"rng": {"python": [3, [], None], "numpy": []}}, "rng.python[1]: expected a list of 625"),
        ({"callbacks": [{"model": None}], "callback_arrays": []}, None),
    ],
)
def test_a_hand_edited_state_json_is_refused_in_one_line_naming_the_field(
    runner, tmp_path, interrupted, fields, expected
):
    output, staging = edited_copy(interrupted, tmp_path)
    edit_state(staging, **fields)
    before = sorted(tmp_path.rglob("*"))

    result = resume(runner, interrupted[0], output, staging)

    if expected is None:  # a setting the callback does not hold is left alone, not set
        assert result.exit_code == 0, result.output
        return
    assert result.exit_code == 2, result.output
    (line,) = error_lines(result)
    assert line.startswith(f"error: {store.state_path(staging)}: {expected}"), line
    assert line.endswith("the run's files were edited or damaged: retrain")
    assert sorted(tmp_path.rglob("*")) == before  # nothing published, here or outside
    assert not (tmp_path.parent / "escaped-run").exists()


def test_a_hard_link_inside_an_interrupted_run_is_refused_and_the_outside_file_kept(
    runner, tmp_path, interrupted
):
    output, staging = edited_copy(interrupted, tmp_path)
    outside = tmp_path / "outside.csv"
    outside.write_text("ORIGINAL\n")
    (staging / "logs").mkdir()
    (staging / "logs" / "fit.csv").hardlink_to(outside)

    result = resume(runner, interrupted[0], output, staging)

    assert result.exit_code == 2, result.output
    assert error_lines(result) == [
        f"error: {staging}: logs/fit.csv is a hard link (2 names for one file); an interrupted"
        " run holds only its own files, so resuming would write outside the run; remove the"
        " link, or train again without --resume"
    ]
    assert outside.read_text() == "ORIGINAL\n"


@pytest.mark.slow
@settings(FAST, max_examples=25)
@given(data=st.data())
def test_an_edited_state_json_ends_in_success_or_one_line_and_writes_only_in_the_output(
    tmp_path_factory, interrupted, data
):
    """Any field of state.json replaced by a hostile value: a resume succeeds or exits 2 with
    one line, and nothing appears outside the output folder."""
    config, original = interrupted
    state = json.loads(store.state_path(staging_folders(original)[0]).read_text())
    paths = [path for path in config_paths(state) if path[0] != "format"]
    path = data.draw(st.sampled_from(paths), label="field")
    value = data.draw(
        st.one_of(
            hostile_values,
            st.just(_DROP),
            st.sampled_from(["../../escaped-run", "/tmp/abs-run", "..", "a/b", "epoch-0001.npz"]),
        ),
        label="value",
    )
    where = tmp_path_factory.mktemp("edited")
    output, staging = edited_copy(interrupted, where)
    state_file = store.state_path(staging)
    state_file.write_text(json.dumps(replaced(json.loads(state_file.read_text()), path, value)))

    result = invoke(CliRunner(), ["train", str(config), "--resume", str(staging)], seconds=120)

    if result.exit_code == 2:
        assert len(error_lines(result)) == 1, result.stderr
    assert sorted(p.name for p in where.iterdir()) == ["out"]
    assert sorted(p.name for p in (where / "out").iterdir()) == ["runs"]


@pytest.fixture
def bombed_run(tmp_path, tiny_run) -> Path:
    """``tiny_run`` whose config.yaml is an alias bomb, its sha256 fixed up in the manifest."""
    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]" for i in range(1, 10)]
    (run / "config.yaml").write_text((run / "config.yaml").read_text() + "\n".join(lines) + "\n")
    manifest = json.loads((run / MANIFEST_FILENAME).read_text())
    manifest["files"]["config.yaml"] = sha256_file(run / "config.yaml")
    (run / MANIFEST_FILENAME).write_text(json.dumps(manifest))
    return run


@pytest.mark.parametrize("command", ["evaluate", "predict", "export"])
def test_an_alias_bomb_in_a_runs_config_is_refused_at_once(runner, bombed_run, tmp_path, command):
    args = {
        "evaluate": ["evaluate", str(bombed_run)],
        "predict": ["predict", str(bombed_run), "--input", "3,30,5"],
        "export": ["export", str(bombed_run), "--output", str(tmp_path / "m.onnx")],
    }[command]
    started = time.monotonic()
    result = runner.invoke(cli, args)
    assert time.monotonic() - started < 10
    assert result.exit_code == 2, result.output
    (line,) = error_lines(result)
    assert f"{bombed_run / 'config.yaml'}" in line
    assert "config expands to more than 20,000 values (aliases included)" in line


@pytest.mark.parametrize("name", [MANIFEST_FILENAME, "preprocess.json", "split.json"])
def test_a_deeply_nested_run_json_is_one_line_not_a_recursion_error(
    runner, tmp_path, tiny_run, name
):
    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    (run / name).write_text("[" * 100_000 + "]" * 100_000)
    if name != MANIFEST_FILENAME:
        manifest = json.loads((run / MANIFEST_FILENAME).read_text())
        manifest["files"][name] = sha256_file(run / name)
        (run / MANIFEST_FILENAME).write_text(json.dumps(manifest))
    for args in (["predict", str(run), "--input", "3,30,5"], ["evaluate", str(run)]):
        result = runner.invoke(cli, args)
        assert result.exit_code == 2, result.output
        assert error_lines(result) == [
            f"error: {run / name}: not valid JSON (nested too deeply); the run's files were"
            " edited or damaged: retrain"
        ]


@pytest.mark.slow
def test_a_resumed_runs_csv_log_holds_every_epoch_once_as_an_uninterrupted_run(
    runner, tmp_path, tiny_csv, write_config, monkeypatch
):
    """Hostile review 3: CSVLogger's file of a resumed run started at the resumed epoch."""
    from cnncli.config.models import load_config
    from cnncli.train.run import train_run

    raw = resume_config(tiny_csv, epochs=5)
    raw["fit"]["callbacks"] = [{"type": "CSVLogger", "filename": "logs/fit.csv"}]
    config = write_config(raw)
    whole = train_run(load_config(config), tmp_path / "whole").run_dir
    output = tmp_path / "runs"
    interrupt_after(monkeypatch, epoch=2)
    assert runner.invoke(cli, ["train", str(config), "--output", str(output)]).exit_code == 130
    monkeypatch.undo()
    (staging,) = staging_folders(output)
    log = staging / "logs" / "fit.csv"
    row = log.read_text().splitlines()[-1]
    with log.open("a") as stream:  # an epoch logged after the last checkpoint was written
        stream.write(row.replace("1,", "2,", 1) + "\n")

    run = train_run(load_config(config), output, resume=str(staging)).run_dir

    lines = (run / "logs" / "fit.csv").read_text().splitlines()
    assert [line.split(",")[0] for line in lines] == ["epoch", "0", "1", "2", "3", "4"]
    assert (run / "logs" / "fit.csv").read_bytes() == (whole / "logs" / "fit.csv").read_bytes()


@pytest.mark.parametrize(
    ("part", "index", "value", "expected"),
    [
        ("python", 0, 2, "rng.python[0]: expected a whole number from 3 to 3, got 2"),
        ("numpy", 2, 625, "rng.numpy[2]: expected a whole number from 0 to 624, got 625"),
        ("numpy", 0, "PCG64", "rng.numpy[0]: expected one of MT19937, got 'PCG64'"),
    ],
)
def test_an_rng_state_python_or_numpy_would_refuse_is_one_line(
    runner, tmp_path, interrupted, part, index, value, expected
):
    """random.setstate and np.random.set_state raised ValueError (exit 1) on these."""
    output, staging = edited_copy(interrupted, tmp_path)
    rng = json.loads(store.state_path(staging).read_text())["rng"]
    rng[part][index] = value
    edit_state(staging, rng=rng)
    result = resume(runner, interrupted[0], output, staging)
    assert result.exit_code == 2, result.output
    (line,) = error_lines(result)
    assert line.startswith(f"error: {store.state_path(staging)}: {expected};"), line


def test_a_checkpoint_sets_only_plain_callback_settings_of_the_kind_they_hold():
    """A hand-edited ``callbacks`` entry set ``wait`` to text (a TypeError in the next epoch)."""
    from cnncli.train.checkpoints.resume import restore_callbacks
    from cnncli.train.checkpoints.store import Checkpoint

    class Stopper:
        model = None  # a class attribute (Keras' model property): never set from a file

        def __init__(self) -> None:
            self.wait = 0
            self.monitor = "val_loss"
            self.baseline = None
            self.append = False

    saved = {
        "wait": "x",
        "monitor": 3,
        "baseline": 0.5,
        "append": True,
        "model": "m",
        "_private": 1,
        "best_epoch": 4,
        "note": "text",
    }
    callback = Stopper()
    restore_callbacks([callback], Checkpoint(Path("."), {"callbacks": [saved]}), [None])
    assert vars(callback) == {
        "wait": 0,
        "monitor": "val_loss",
        "baseline": 0.5,
        "append": False,
        "best_epoch": 4,
    }
