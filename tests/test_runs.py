"""cnncli/runs.py: atomic writes, staging folders, the manifest, ``latest``, and refusing bad runs.

Most tests build run folders from plain files, without TensorFlow; the last ones (marked slow)
load a real trained run that was made hostile, tampered with or stamped by a newer cnncli.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import zipfile
from pathlib import Path
from typing import Any

import pytest
import yaml

import cnncli
from cnncli import RUN_FORMAT_VERSION
from cnncli.cli import cli
from cnncli.errors import CnnCliError
from cnncli.runs import (
    CHECKPOINT_STATE_FILENAME,
    CHECKPOINTS_DIRNAME,
    CONFIG_FILENAME,
    LATEST_LINK,
    MANIFEST_FILENAME,
    MODEL_FILENAME,
    REQUIRED_FILES,
    abandon_run,
    fingerprint_file,
    finish_run,
    load_keras_model,
    open_run,
    sha256_file,
    start_run,
    verify_files,
    write_atomic,
)
from tests.conftest import base_config, error_lines


def staged_with_files(output: Path, name: str = "t"):
    staged = start_run(output, name)
    for file in REQUIRED_FILES:
        (staged.staging / file).write_text(f"{file}\n")
    return staged


def test_write_atomic_replaces_whole_file_and_leaves_no_temp(tmp_path):
    target = tmp_path / "a.json"
    write_atomic(target, "old")
    write_atomic(target, b"new")
    assert target.read_text() == "new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.json"]


def test_write_atomic_failure_keeps_old_content(tmp_path, monkeypatch):
    target = tmp_path / "a.json"
    write_atomic(target, "old")

    def full_disk(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", full_disk)
    with pytest.raises(OSError, match="No space left"):
        write_atomic(target, "new")
    assert target.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.json"]


def test_staging_folder_is_hidden_until_finished(tmp_path):
    staged = staged_with_files(tmp_path)
    assert staged.staging.name.startswith(".tmp-t-")
    assert not staged.final.exists() and not (tmp_path / LATEST_LINK).exists()
    final = finish_run(staged, {"seed": 1})
    assert final == staged.final and not staged.staging.exists()
    assert os.readlink(tmp_path / LATEST_LINK) == final.name


def test_manifest_lists_every_file_with_sha256_but_no_checkpoints_or_temp_files(tmp_path):
    staged = staged_with_files(tmp_path)
    (staged.staging / "sub").mkdir()
    (staged.staging / "sub" / "x.txt").write_text("x")
    (staged.staging / ".model.keras.part.keras").write_text("half a model")
    (staged.staging / CHECKPOINTS_DIRNAME).mkdir()
    (staged.staging / CHECKPOINTS_DIRNAME / CHECKPOINT_STATE_FILENAME).write_text("{}")
    final = finish_run(staged, {"seed": 7, "config_sha256": "c" * 64})
    manifest = json.loads((final / MANIFEST_FILENAME).read_text())
    assert manifest["format"] == RUN_FORMAT_VERSION and manifest["seed"] == 7
    assert set(manifest["files"]) == {*REQUIRED_FILES, "sub/x.txt"}
    for name, digest in manifest["files"].items():
        assert sha256_file(final / name) == digest
    assert not (final / CHECKPOINTS_DIRNAME).exists()
    assert not (final / ".model.keras.part.keras").exists()


def test_latest_moves_only_to_complete_runs(tmp_path):
    first = finish_run(staged_with_files(tmp_path), {})
    second = staged_with_files(tmp_path)  # never finished: interrupted
    abandon_run(second)
    assert os.readlink(tmp_path / LATEST_LINK) == first.name
    assert not second.staging.exists()


def test_abandon_keeps_a_staging_folder_with_a_checkpoint(tmp_path):
    staged = staged_with_files(tmp_path)
    (staged.staging / CHECKPOINTS_DIRNAME).mkdir()
    (staged.staging / CHECKPOINTS_DIRNAME / CHECKPOINT_STATE_FILENAME).write_text("{}")
    abandon_run(staged)
    assert staged.staging.is_dir()


def test_finish_never_overwrites_a_run_of_the_same_name(tmp_path):
    staged = staged_with_files(tmp_path)
    staged.final.mkdir()
    (staged.final / "keep").write_text("someone else's run")
    final = finish_run(staged, {})
    assert final.name == f"{staged.final.name}-2"
    assert (staged.final / "keep").read_text() == "someone else's run"


def test_unwritable_output_folder_is_a_user_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(CnnCliError) as caught:
        start_run(blocker / "runs", "t")
    assert caught.value.message == f"{blocker} is a file, not a folder"
    assert caught.value.where.file == str(blocker / "runs")


def test_fingerprint_is_size_and_sha256(tmp_path):
    data = tmp_path / "d.csv"
    data.write_text("a,b\n1,2\n")
    assert fingerprint_file(data) == {"path": str(data), "bytes": 8, "sha256": sha256_file(data)}


def complete_run(tmp_path: Path, **manifest_changes) -> Path:
    final = finish_run(staged_with_files(tmp_path), {})
    manifest = json.loads((final / MANIFEST_FILENAME).read_text())
    manifest.update(manifest_changes)
    (final / MANIFEST_FILENAME).write_text(json.dumps(manifest))
    return final


def test_changed_file_is_refused(tmp_path):
    run = complete_run(tmp_path)
    (run / "model.keras").write_text("swapped")
    with pytest.raises(CnnCliError, match="model.keras does not match its sha256 in manifest.json"):
        verify_files(run, json.loads((run / MANIFEST_FILENAME).read_text()))


def test_manifest_must_list_the_files_cnncli_loads(tmp_path):
    run = complete_run(tmp_path)
    manifest = json.loads((run / MANIFEST_FILENAME).read_text())
    del manifest["files"]["model.keras"]  # an attacker drops the entry, then swaps the file
    with pytest.raises(CnnCliError, match="does not list model.keras"):
        verify_files(run, manifest)


def test_manifest_cannot_point_outside_the_run(tmp_path):
    run = complete_run(tmp_path)
    manifest = json.loads((run / MANIFEST_FILENAME).read_text())
    manifest["files"]["../../etc/passwd"] = "0" * 64
    with pytest.raises(CnnCliError, match="names a file outside the run"):
        verify_files(run, manifest)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"format": RUN_FORMAT_VERSION + 1, "cnncli": "9.0.0"}, "newer than this cnncli"),
        ({"format": "1"}, "no valid run format"),
        ({"files": ["model.keras"]}, "no list of files"),
    ],
    ids=["newer-format", "format-not-int", "files-not-mapping"],
)
def test_bad_manifest_is_refused_before_anything_loads(tmp_path, changes, message):
    run = complete_run(tmp_path, **changes)
    with pytest.raises(CnnCliError, match=message):
        open_run(run)


def test_unparseable_manifest_and_interrupted_run(tmp_path):
    run = complete_run(tmp_path)
    (run / MANIFEST_FILENAME).write_text("{not json")
    with pytest.raises(CnnCliError, match=r"manifest.json: not valid JSON \(Expecting"):
        open_run(run)
    staged = staged_with_files(tmp_path)
    (staged.staging / CHECKPOINTS_DIRNAME).mkdir()
    (staged.staging / CHECKPOINTS_DIRNAME / CHECKPOINT_STATE_FILENAME).write_text("{}")
    with pytest.raises(CnnCliError, match="interrupted run") as caught:
        open_run(staged.staging)
    assert "--resume" in caught.value.hint


# ---------------------------------------------------------------------------------------------
# A real run made hostile or tampered with: refused, and nothing in it runs


@pytest.fixture
def run_copy(tiny_run: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "run"
    shutil.copytree(tiny_run, copy)
    return copy


def rewrite_manifest(run: Path, **changes: Any) -> None:
    """What an attacker who swaps a file would do: recompute its sha256 in the manifest too."""
    manifest = json.loads((run / MANIFEST_FILENAME).read_text())
    manifest["files"] = {name: sha256_file(run / name) for name in manifest["files"]}
    manifest.update(changes)
    (run / MANIFEST_FILENAME).write_text(json.dumps(manifest))


def make_hostile_lambda_model(path: Path, marker: Path) -> None:
    from cnncli.runtime import import_keras

    keras = import_keras()
    touch = f"lambda x: (open({str(marker)!r}, 'w').close(), x)[1]"
    model = keras.Sequential(
        [keras.Input((3,)), keras.layers.Lambda(eval(touch)), keras.layers.Dense(3)]
    )  # noqa: S307
    model.save(path)
    marker.unlink(missing_ok=True)  # saving traced the lambda once; start clean


def make_hostile_config_model(original: Path, path: Path, marker: Path) -> None:
    """A real model whose config.json asks Keras for ``subprocess.Popen(["touch", marker])``."""
    with zipfile.ZipFile(original) as source:
        config = json.loads(source.read("config.json"))
        config["config"]["layers"].insert(
            1,
            {
                "module": "subprocess",
                "class_name": "Popen",
                "config": {"args": ["touch", str(marker)]},
            },
        )
        with zipfile.ZipFile(path, "w") as target:
            for item in source.infolist():
                data = (
                    json.dumps(config)
                    if item.filename == "config.json"
                    else source.read(item.filename)
                )
                target.writestr(item, data)


@pytest.mark.slow
@pytest.mark.parametrize("attack", ["lambda", "config"])
def test_hostile_keras_file_is_refused_without_running_anything(runner, run_copy, tmp_path, attack):
    marker = tmp_path / "PWNED"
    hostile = tmp_path / "hostile.keras"
    if attack == "lambda":
        make_hostile_lambda_model(hostile, marker)
    else:
        make_hostile_config_model(run_copy / MODEL_FILENAME, hostile, marker)
    shutil.copy(hostile, run_copy / MODEL_FILENAME)
    rewrite_manifest(run_copy)  # even with a matching checksum
    with pytest.raises(CnnCliError, match="model.keras could not be loaded safely"):
        load_keras_model(open_run(run_copy))
    result = runner.invoke(
        cli, ["predict", str(run_copy), "--backend", "keras", "--input", "3,30,5"]
    )
    assert result.exit_code == 2
    assert "model.keras could not be loaded safely" in result.stderr
    assert "safe_mode" not in result.stderr  # Keras' advice names an option cnncli lacks
    if attack == "lambda":
        assert "it holds Python code (a Lambda layer's function)" in result.stderr
        assert "retrain with cnncli" in result.stderr
    assert not marker.exists()


@pytest.mark.slow
@pytest.mark.parametrize("name", [MODEL_FILENAME, "preprocess.json", "model.onnx"])
def test_tampered_file_is_refused(runner, run_copy, name):
    data = bytearray((run_copy / name).read_bytes())
    data[len(data) // 2] ^= 0xFF
    (run_copy / name).write_bytes(bytes(data))
    result = runner.invoke(cli, ["predict", str(run_copy), "--input", "3,30,5"])
    assert result.exit_code == 2
    assert error_lines(result) == [
        f"error: {run_copy / name}: {name} does not match its sha256 in manifest.json; it was changed after"
        " training; refusing to load it; retrain or restore the original file"
    ]


@pytest.mark.slow
def test_run_from_a_newer_cnncli_is_refused(runner, run_copy):
    rewrite_manifest(run_copy, format=cnncli.RUN_FORMAT_VERSION + 1, cnncli="9.0.0")
    result = runner.invoke(cli, ["evaluate", str(run_copy)])
    assert result.exit_code == 2
    assert error_lines(result) == [
        f"error: {run_copy}: run was written by cnncli 9.0.0 (run format {cnncli.RUN_FORMAT_VERSION + 1}),"
        f" newer than this cnncli {cnncli.__version__} (format {cnncli.RUN_FORMAT_VERSION}); upgrade cnncli to read it"
    ]


@pytest.mark.parametrize("kind", ["folder", "file", "pipe (FIFO)"])
def test_a_latest_that_is_not_a_link_stops_train_before_it_starts(
    runner, tmp_path, tiny_csv, write_config, kind
):
    """runs/latest as a real folder: the run used to finish, then fail and leave a stray link.
    A FIFO was called "a file"."""
    from cnncli.cli import cli

    output = tmp_path / "runs"
    latest = output / "latest"
    output.mkdir()
    if kind == "folder":
        latest.mkdir()
        (latest / "mine.txt").write_text("keep\n")
    elif kind == "file":
        latest.write_text("keep\n")
    else:
        os.mkfifo(latest)
    result = runner.invoke(
        cli, ["train", str(write_config(base_config(tiny_csv))), "--output", str(output)]
    )
    assert result.exit_code == 2
    assert error_lines(result) == [
        f"error: {latest}: latest is a {kind}, not the link cnncli keeps to the newest run;"
        f" move or rename {latest}, then train again"
    ]
    assert sorted(path.name for path in output.iterdir()) == ["latest"]  # nothing else written
    if kind == "pipe (FIFO)":
        assert latest.is_fifo()
    else:
        assert (latest / "mine.txt" if kind == "folder" else latest).read_text() == "keep\n"


@pytest.mark.parametrize("command", [["predict", "--input", "3,30,5"], ["evaluate"], ["export"]])
def test_a_dangling_or_fifo_latest_says_what_it_is_when_no_run_is_named(
    runner, tmp_path, monkeypatch, command
):
    """A dangling runs/latest said "no trained run"; the run it pointed to is gone."""
    from cnncli.cli import cli

    monkeypatch.chdir(tmp_path)
    Path("runs").mkdir()
    Path("runs/latest").symlink_to("t-20250101-000000")
    result = runner.invoke(cli, command)
    assert (result.exit_code, error_lines(result)) == (
        2,
        [
            "error: runs/latest: latest points to t-20250101-000000, a run that is gone;"
            " train again, or pass a run folder as RUN"
        ],
    )
    Path("runs/latest").unlink()
    os.mkfifo("runs/latest")
    result = runner.invoke(cli, command)
    assert (result.exit_code, error_lines(result)) == (
        2,
        [
            "error: runs/latest: latest is a pipe (FIFO), not the link cnncli keeps to the newest"
            " run; move or rename runs/latest, then train again"
        ],
    )
    assert Path("runs/latest").is_fifo()


# ---------------------------------------------------------------------------------------------
# Runs are untrusted input (issue 11.10): a field edited with its sha256 fixed up is one line


def edit_json(run: Path, name: str, change) -> None:
    """Edit one JSON file of a run, then fix up its sha256 in the manifest, as an attacker would."""
    data = json.loads((run / name).read_text())
    change(data)
    (run / name).write_text(json.dumps(data))
    rewrite_manifest(run)


def drop_feature(pre: dict[str, Any]) -> None:
    del pre["features"][1]
    pre["input_shape"] = [2]  # consistent within the file: only the model disagrees


@pytest.mark.slow
@pytest.mark.parametrize(
    ("name", "change", "field", "problem"),
    [
        (
            "preprocess.json",
            lambda pre: pre["features"][2].update(scale=0),
            "features[2].scale",
            "expected a positive finite number, got 0",
        ),
        (
            "preprocess.json",
            lambda pre: pre["features"][0].update(center=float("nan")),
            "features[0].center",
            "expected a finite number, got nan",
        ),
        (
            "preprocess.json",
            lambda pre: pre["label"].update(classes=["low"]),
            "label.classes",
            "expected at least 2 classes, got ['low']",
        ),
        (
            "preprocess.json",
            lambda pre: pre["features"][1].update(kind="text"),
            "features[1].kind",
            "expected one of numeric, categorical, date, got 'text'",
        ),
        (
            "preprocess.json",
            lambda pre: pre.update(input_shape=[4]),
            "input_shape",
            "expected a shape holding the 3 input values of the features, got [4]",
        ),
        (
            "split.json",
            lambda split: split["test_rows"].append(10_000),
            f"test_rows[{6}]",
            "expected a whole number from 0 to 29, got 10000",
        ),
        (
            "split.json",
            lambda split: split.update(method="magic"),
            "method",
            "expected one of shuffle, train_test_split, hash, test_file, got 'magic'",
        ),
    ],
    ids=["scale-0", "center-nan", "one-class", "unknown-kind", "shape", "test-row", "method"],
)
def test_an_edited_run_file_is_one_line_naming_the_field(
    runner, run_copy, name, change, field, problem
):
    edit_json(run_copy, name, change)
    for args in (["predict", str(run_copy), "--input", "3,30,5"], ["evaluate", str(run_copy)]):
        assert_damaged(runner, args, f"{run_copy / name}: {field}: {problem}")


@pytest.mark.slow
@pytest.mark.parametrize(
    ("loss", "problem"),
    [
        ("nosuchloss", "expected a loss cnncli allows (see keras.io/api/losses), got 'nosuchloss'"),
        (
            {"type": "CategoricalCrossentropy", "nosuch": 1},
            "Keras refuses the loss: CategoricalCrossentropy.__init__() got an unexpected"
            " keyword argument 'nosuch'",
        ),
    ],
    ids=["unknown", "argument"],
)
def test_an_edited_loss_in_the_run_config_is_one_line(runner, run_copy, loss, problem):
    """evaluate computes the run's loss from its config.yaml: an edited name exited 1."""
    config = yaml.safe_load((run_copy / CONFIG_FILENAME).read_text())
    config["compile"]["loss"] = loss
    (run_copy / CONFIG_FILENAME).write_text(yaml.safe_dump(config))
    rewrite_manifest(run_copy)
    assert_damaged(
        runner,
        ["evaluate", str(run_copy)],
        f"{run_copy / CONFIG_FILENAME}: compile.loss: {problem}",
    )


def assert_damaged(runner, args: list[str], problem: str) -> None:
    """``args`` end in exit 2 and the one line ``error: PROBLEM; <the damaged-run hint>``."""
    result = runner.invoke(cli, args)
    assert result.exit_code == 2, result.output
    assert error_lines(result) == [
        f"error: {problem}; the run's files were edited or damaged: retrain"
    ]


@pytest.mark.slow
@pytest.mark.parametrize(
    ("change", "field", "problem"),
    [
        ({"onnx": None}, "onnx", "expected an object, got None"),
        ({"seed": -1}, "seed", "expected a whole number from 0 to 4294967295, got -1"),
        ({"task": 3}, "task", "expected one of classification, regression, got 3"),
        ({"data": {"path": "x.csv"}}, "data.bytes", "missing"),
    ],
    ids=["onnx-null", "seed", "task", "data-fingerprint"],
)
def test_a_manifest_field_of_the_wrong_shape_is_one_line(runner, run_copy, change, field, problem):
    """``"onnx": null`` used to be exit 1 (a bug) in predict."""
    rewrite_manifest(run_copy, **change)
    args = ["predict", str(run_copy), "--input", "3,30,5"]
    assert_damaged(runner, args, f"{run_copy / MANIFEST_FILENAME}: {field}: {problem}")


@pytest.mark.slow
def test_a_dropped_feature_is_caught_against_the_model(runner, run_copy):
    edit_json(run_copy, "preprocess.json", drop_feature)
    for backend in ("onnx", "keras"):
        assert_damaged(
            runner,
            ["predict", str(run_copy), "--backend", backend, "--input", "3,30"],
            f"{run_copy}: the model takes [3] and gives [3] value(s) per row, but"
            " preprocess.json describes [2] and 3",
        )


@pytest.mark.slow
def test_evaluate_refuses_a_data_file_changed_since_training(runner, run_copy):
    """Issue 11.13: the stored split on changed data gave a silently different accuracy."""
    manifest = json.loads((run_copy / MANIFEST_FILENAME).read_text())
    data = manifest["data"]
    rewrite_manifest(run_copy, data={**data, "sha256": "0" * 64})  # as if the file had changed
    result = runner.invoke(cli, ["evaluate", str(run_copy)])
    assert result.exit_code == 2
    assert error_lines(result) == [
        f"error: {data['path']}: the data file changed since training (its sha256 differs from"
        " manifest.json's), so the run's stored test split no longer picks the rows it was tested"
        f" on; restore the file, or score every row of it as it is now with --data {data['path']}"
    ]
    # --data is the user's explicit choice: every row of the file, no word about the change
    # (the tiny run may still be warned that it does not beat its baseline)
    result = runner.invoke(cli, ["evaluate", str(run_copy), "--data", data["path"], "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["rows"] == 30
    assert "changed" not in result.stderr and "sha256" not in result.stderr


def test_unchanged_data_passes_the_check_and_a_size_change_is_enough(tmp_path):
    from cnncli.runs import RunFolder, verify_data

    csv = tmp_path / "d.csv"
    csv.write_text("a,b\n1,2\n")
    run = RunFolder(tmp_path, {"data": fingerprint_file(csv)}, None, {})  # type: ignore[arg-type]
    verify_data(run, "data", str(csv))
    verify_data(run, "test_data", str(csv))  # nothing recorded: nothing to compare
    csv.write_text("a,b\n1,2\n3,4\n")
    with pytest.raises(CnnCliError, match="the data file changed since training"):
        verify_data(run, "data", str(csv))


def test_sha256_of_a_device_is_refused_not_read_forever():
    """A resume or an evaluate whose data path is /dev/zero hashed it until memory ran out."""
    with pytest.raises(CnnCliError, match="data path is a character device, not a CSV file"):
        sha256_file(Path("/dev/zero"))


@pytest.mark.slow
def test_a_split_that_picks_no_test_rows_is_one_line(runner, run_copy):
    """A hash rule edited down to a tiny test_size left nothing to score: a reshape crash."""
    rule = {"method": "hash", "rows": 30, "test_size": 1e-9, "random_state": 0}
    edit_json(
        run_copy,
        "split.json",
        lambda split: split.update(rule, validation_split=0.0, validation_seed=0),
    )
    result = runner.invoke(cli, ["evaluate", str(run_copy)])
    assert result.exit_code == 2, result.output
    assert error_lines(result)[0].endswith(
        "the run's test split has no rows in this file; pass the test data with --data"
    )


def test_output_folders_and_run_links_that_are_not_folders_are_named(tmp_path, monkeypatch):
    """Hostile review: --output /dev/null said 'File exists', a self-linked latest 'a run that
    is gone', and a looping --output 'a link to loop2.csv, which does not exist'."""
    from cnncli.runs import output_target, resolve_run_dir

    with pytest.raises(CnnCliError) as caught:
        start_run(Path(os.devnull), "t")
    assert caught.value.message == "is a character device, not a folder"
    runs = tmp_path / "runs"
    runs.mkdir()
    (runs / "latest").symlink_to("latest")
    with pytest.raises(CnnCliError) as caught:
        resolve_run_dir(None, runs)
    assert caught.value.message == "is a symbolic link loop"
    (tmp_path / "loop1.csv").symlink_to("loop2.csv")
    (tmp_path / "loop2.csv").symlink_to("loop1.csv")
    with pytest.raises(CnnCliError) as caught:
        output_target(tmp_path / "loop1.csv")
    assert caught.value.message == "is a symbolic link loop"
    assert caught.value.hint == "choose another --output"


def test_an_output_is_refused_inside_a_run_or_staging_folder(tmp_path):
    from cnncli.runs import output_target

    staged = staged_with_files(tmp_path)
    (tmp_path / "link").symlink_to(staged.staging)
    for path in (staged.staging / "p.csv", tmp_path / "link" / "deeper" / "p.csv"):
        with pytest.raises(CnnCliError, match="is inside the run folder"):
            output_target(path)
    final = finish_run(staged, {})
    with pytest.raises(CnnCliError, match=f"is inside the run folder {final}, whose files"):
        output_target(final / MANIFEST_FILENAME)
    assert output_target(tmp_path / "p.csv") == tmp_path / "p.csv"


def test_a_device_in_place_of_a_run_file_is_named_as_what_it_is(runner, run_copy):
    (run_copy / "metrics.json").unlink()
    (run_copy / "metrics.json").symlink_to("/dev/zero")
    result = runner.invoke(cli, ["evaluate", str(run_copy)])
    assert result.exit_code == 2
    assert error_lines(result) == [
        f"error: {run_copy}: metrics.json is a character device, not a file cnncli wrote;"
        " retrain, or restore the folder"
    ]
