"""``cnncli tune`` end to end: results, reproducing the best trial, pruning, workers, SIGKILL."""

from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from cnncli.cli import cli
from tests.conftest import ROOT, base_config, error_lines, seed_like_rows

pytestmark = pytest.mark.slow

#: A pool of 8 does not fit the 3 steps the data gives: those points are pruned, not a crash.
SPACE = {
    "model.layers[0].filters": [4, 8],
    "model.layers[1].pool_size": [1, 8],
    "fit.batch_size": [16, 32],
}


def conv_config(data: Path, out: Path, trials: int, epochs: int = 2, **search) -> dict:
    config = base_config(
        data,
        name="s",
        output={"dir": str(out)},
        search={"trials": trials, "pruner": "none", "space": SPACE, **search},
    )
    config["model"] = {
        "input_shape": [3, 1],
        "layers": [
            {"type": "Conv1D", "filters": 4, "kernel_size": 2, "padding": "same"},
            {"type": "MaxPooling1D", "pool_size": 1},
            "Flatten",
            {"type": "Dense", "units": "auto", "activation": "softmax"},
        ],
    }
    config["fit"]["epochs"] = epochs
    return config


def read_rows(folder: Path) -> list[dict[str, str]]:
    with open(folder / "trials.csv", newline="") as stream:
        return list(csv.DictReader(stream))


def counted(rows: list[dict[str, str]]) -> list[dict[str, str]]:
    return [row for row in rows if row["state"] in ("COMPLETE", "PRUNED")]


@pytest.fixture(scope="module")
def seed_csv(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("data") / "seed.csv"
    path.write_text(seed_like_rows(90))
    return path


def test_a_small_search_writes_results_that_train_reproduces(
    seed_csv, tmp_path, write_config, runner
):
    config = conv_config(seed_csv, tmp_path / "runs", trials=5)
    config["fit"]["callbacks"] = [{"type": "CSVLogger", "filename": "log.csv"}]
    path = write_config(config)
    result = runner.invoke(cli, ["tune", str(path), "--json"], catch_exceptions=False)
    assert result.exit_code == 0, result.stderr
    summary = yaml.safe_load(result.stdout)  # JSON is YAML
    assert "sampled points fail the model checks and will be pruned unrun" in result.stderr
    folder = Path(summary["folder"])
    rows = read_rows(folder)
    assert len(counted(rows)) == 5 == len(rows)
    for row in rows:  # the shape-invalid point is pruned with its reason; the rest complete
        if row["model.layers[1].pool_size"] == "8":
            assert row["state"] == "PRUNED"
            assert "invalid point" in row["reason"] and "pool_size" in row["reason"]
        else:
            assert row["state"] == "COMPLETE" and float(row["value"]) >= 0
    best = yaml.safe_load((folder / "best.yaml").read_text())
    assert "search" not in best
    assert best["model"]["layers"][1]["pool_size"] == 1
    assert best["fit"]["validation_split"] == 0.2 and best["seed"] == 0
    run_dir = Path(summary["run_dir"])
    assert (run_dir / "manifest.json").is_file() and (run_dir / "model.keras").is_file()
    # a trial's callbacks write in a scratch folder it throws away; the best run keeps its own
    assert (run_dir / "log.csv").is_file() and not (Path.cwd() / "log.csv").exists()
    assert not list(folder.glob(".trial-*"))
    # cnncli train best.yaml: the same validation score as the best trial (same seed)
    trained = runner.invoke(
        cli,
        ["train", str(folder / "best.yaml"), "--json", "--output", str(tmp_path / "again")],
        catch_exceptions=False,
    )
    assert trained.exit_code == 0, trained.stderr
    metrics = yaml.safe_load(trained.stdout)["metrics"]
    assert metrics["validation"]["accuracy"] == pytest.approx(summary["best"]["value"], abs=1e-6)
    # the report prints the same table again
    report = runner.invoke(cli, ["tune", "--report", str(folder)], catch_exceptions=False)
    assert report.exit_code == 0
    assert "pool_size" in report.stdout and "PRUNED" in report.stdout
    # run again: nothing finished is retrained, the study already has its trials
    again = runner.invoke(cli, ["tune", str(path), "--json"], catch_exceptions=False)
    assert again.exit_code == 0, again.stderr
    assert read_rows(folder) == rows
    assert yaml.safe_load(again.stdout)["run_dir"] == summary["run_dir"]


def test_train_on_a_search_config_trains_the_base_and_names_tune(
    seed_csv, tmp_path, write_config, runner
):
    path = write_config(conv_config(seed_csv, tmp_path / "runs", trials=2, epochs=1))
    result = runner.invoke(cli, ["train", str(path)], catch_exceptions=False)
    assert result.exit_code == 0, result.stderr
    assert "this config has a search: block; train trains the base config, tune searches" in (
        result.stderr
    )


def _env() -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if key != "CNNCLI_BACKEND"}
    env["PYTHONPATH"] = str(ROOT)
    return env


def _tune(path: Path, *args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "cnncli", "tune", str(path), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=_env(),
    )


def _study_trials(storage: str, name: str) -> list:
    import optuna

    return optuna.load_study(study_name=name, storage=storage).get_trials(deepcopy=False)


def _two_workers(path: Path, trials: int, *args: str) -> None:
    workers = [_tune(path, *args) for _ in range(2)]
    for worker in workers:
        _out, err = worker.communicate(timeout=600)
        assert worker.returncode == 0, err


def _assert_exactly(trials: list, total: int) -> None:
    done = [t for t in trials if t.state.name in ("COMPLETE", "PRUNED")]
    assert len(done) == total
    assert len({t.number for t in done}) == total
    points = [tuple(sorted(t.params.items())) for t in done]
    assert len(set(points)) == len(points), points


def test_two_workers_on_sqlite_run_exactly_the_trials(seed_csv, tmp_path, write_config):
    config = conv_config(seed_csv, tmp_path / "runs", trials=4, epochs=1)
    config["search"]["space"] = {"model.layers[0].filters": {"int": [2, 64]}}
    config["backend"] = "jax"
    path = write_config(config)
    _two_workers(path, 4)
    storage = f"sqlite:///{tmp_path / 'runs' / 's-tune' / 'study.db'}"
    _assert_exactly(_study_trials(storage, "s"), 4)


def test_two_workers_on_postgresql_run_exactly_the_trials(seed_csv, tmp_path, write_config):
    url = os.environ.get("CNNCLI_TEST_POSTGRES_URL")
    if not url:
        pytest.skip("no PostgreSQL server: .ci/run starts one and sets CNNCLI_TEST_POSTGRES_URL")
    config = conv_config(seed_csv, tmp_path / "runs", trials=4, epochs=1)
    config["search"]["space"] = {"model.layers[0].filters": {"int": [2, 64]}}
    config["backend"] = "jax"
    path = write_config(config)
    study = f"pg-{os.getpid()}-{time.time_ns()}"
    _two_workers(path, 4, "--storage", url, "--study", study)
    # read back through psycopg2, which the tune extra installs (tune picks it by itself)
    driver_url = url.replace("postgresql://", "postgresql+psycopg2://", 1)
    _assert_exactly(_study_trials(driver_url, study), 4)


def test_a_tune_killed_mid_trial_continues_to_exactly_the_trials(seed_csv, tmp_path, write_config):
    config = conv_config(seed_csv, tmp_path / "runs", trials=3, epochs=400)
    config["search"]["space"] = {"model.layers[0].filters": {"int": [2, 64]}}
    config["backend"] = "jax"
    path = write_config(config)
    storage = f"sqlite:///{tmp_path / 'runs' / 's-tune' / 'study.db'}"
    worker = _tune(path)
    _wait_for_a_running_trial(storage, "s")  # killed once a trial is running
    time.sleep(1.0)
    worker.send_signal(signal.SIGKILL)
    worker.communicate(timeout=30)
    killed = [t for t in _study_trials(storage, "s") if t.state.name == "RUNNING"]
    assert len(killed) == 1
    config["fit"]["epochs"] = 1  # the same study, shorter trials
    rerun = _tune(write_config(config, name=path.name))
    _out, err = rerun.communicate(timeout=600)
    assert rerun.returncode == 0, err
    trials = _study_trials(storage, "s")
    _assert_exactly(trials, 3)
    failed = [  # a point drawn twice is failed unrun, and not a row of trials.csv
        t
        for t in trials
        if t.state.name == "FAIL" and not t.user_attrs.get("reason", "").startswith("duplicate")
    ]
    assert [t.number for t in failed] == [killed[0].number]
    assert failed[0].user_attrs["reason"].startswith("interrupted")
    retried = [t for t in trials if t.user_attrs.get("retry_of") == killed[0].number]
    assert len(retried) == 1 and retried[0].params == killed[0].params


def _wait_for_a_running_trial(storage: str, name: str) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        time.sleep(0.5)
        try:
            if any(t.state.name == "RUNNING" for t in _study_trials(storage, name)):
                return
        except Exception:  # the study is not created yet
            continue


def test_ctrl_c_mid_trial_is_one_line_and_queues_the_trial_again(seed_csv, tmp_path, write_config):
    config = conv_config(seed_csv, tmp_path / "runs", trials=3, epochs=400)
    config["search"]["space"] = {"model.layers[0].filters": {"int": [2, 64]}}
    config["backend"] = "jax"
    storage = f"sqlite:///{tmp_path / 'runs' / 's-tune' / 'study.db'}"
    worker = _tune(write_config(config))
    _wait_for_a_running_trial(storage, "s")
    time.sleep(1.0)
    worker.send_signal(signal.SIGINT)
    _out, err = worker.communicate(timeout=60)
    assert worker.returncode == 130
    [line] = [line for line in err.splitlines() if line.startswith("error:")] or [err]
    assert line == (
        "error: tune interrupted by SIGINT; finished trials are kept:"
        " run the same command to continue"
    )
    assert "Traceback" not in err
    trials = _study_trials(storage, "s")
    [failed] = [t for t in trials if t.state.name == "FAIL"]
    assert failed.user_attrs["reason"].startswith("interrupted")
    [waiting] = [t for t in trials if t.state.name == "WAITING"]
    assert waiting.system_attrs["fixed_params"] == failed.params  # tried again by the next run
    rows = read_rows(tmp_path / "runs" / "s-tune")
    assert [row["state"] for row in rows] == ["FAIL", "WAITING"]
    key = "model.layers[0].filters"
    assert rows[0][key] == rows[1][key] == str(failed.params[key])


def test_a_hand_edited_study_is_one_line_and_left_as_it_is(
    seed_csv, tmp_path, write_config, runner
):
    import sqlite3

    import optuna

    db = tmp_path / "edited.db"
    study = optuna.create_study(study_name="s", storage=f"sqlite:///{db}")
    study.add_trial(
        optuna.trial.create_trial(
            params={"fit.batch_size": 16},
            distributions={
                "fit.batch_size": optuna.distributions.CategoricalDistribution([16, 32])
            },
            value=0.5,
        )
    )
    with sqlite3.connect(db) as connection:  # a choice's index past its list
        connection.execute("UPDATE trial_params SET param_value = 999")
    before = db.read_bytes()
    path = write_config(conv_config(seed_csv, tmp_path / "runs", trials=2))
    result = runner.invoke(cli, ["tune", str(path), "--storage", f"sqlite:///{db}", "--study", "s"])
    assert result.exit_code == 2, result.output
    [line] = error_lines(result)
    assert "the study 's' in sqlite:///" in line and "cannot be read (IndexError" in line
    assert "delete it, or start anew with --study NEW_NAME" in line
    assert db.read_bytes() == before
