"""The study: storage, seeded TPE, a pruner, and trials one after another until ``trials``
have completed or been pruned, however many processes share the storage and however often
one was stopped."""

from __future__ import annotations

import contextlib
import math
import os
import socket
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cnncli.config.models import Config
from cnncli.errors import CnnCliError, ConfigErrors, Location, did_you_mean
from cnncli.serve.scores import smaller_is_better
from cnncli.tune.results import (
    BEST_FILENAME,
    IMPORTANCE_FILENAME,
    IMPORTANCE_MIN_TRIALS,
    TRIALS_FILENAME,
    prepare_folder,
    trial_rows,
    write_best,
    write_importance,
    write_trials,
)
from cnncli.tune.space import (
    check_space,
    entry_location,
    point_config,
    point_raw,
    sample_points,
    suggest_point,
)

TUNE_SUFFIX = "-tune"
STUDY_FILENAME = "study.db"
#: What a tune writes in its folder (and checks first).
RESULT_FILES = (STUDY_FILENAME, TRIALS_FILENAME, BEST_FILENAME, IMPORTANCE_FILENAME)
#: Seconds between a running trial's heartbeats, and after which a silent one is failed (a
#: process on another machine killed mid-trial); one on this machine is failed at once.
HEARTBEAT_SECONDS = 10
GRACE_SECONDS = 60
#: Points drawn and model-checked before any trial trains.
SAMPLE_CHECKED = 8
#: Why a trial a signal or a dead process cut short failed.
INTERRUPTED = "interrupted; its values are tried again as a new trial"
#: Draws in a row that repeat a trial's values before one is trained anyway (a small space).
MAX_REDRAWS = 20
#: Tries at opening a storage another worker is creating at the same moment.
OPEN_ATTEMPTS = 4
#: Finished trials the median pruner waits for before it prunes anything.
MEDIAN_STARTUP_TRIALS = 4

TrialCallback = Callable[[dict[str, Any]], None]
MessageCallback = Callable[[str], None]


@dataclass
class TuneResult:
    folder: Path
    study: str
    storage: str
    metric: str
    direction: str
    keys: list[str]
    rows: list[dict[str, Any]]
    best: dict[str, Any] | None = None
    run_dir: Path | None = None
    best_yaml: Path | None = None
    importance: dict[str, float] = field(default_factory=dict)


class _Surplus(Exception):
    """A trial not to run: the study already had its count (another process got there), or
    its point was drawn before. Failed, left out of ``trials.csv`` and of the count."""


def tune_folder(config: Config) -> Path:
    """``<output.dir>/<name>-tune``: the study, the trials table, ``best.yaml``, the best run."""
    return Path(config.output.dir) / f"{config.name}{TUNE_SUFFIX}"


def import_optuna() -> Any:
    """Optuna, or one line naming the install command."""
    try:
        import optuna
    except ImportError:
        raise CnnCliError(
            "cnncli tune needs Optuna, which is not installed",
            hint="pip install 'cnncli[tune]'",
        ) from None
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    return optuna


def metric_and_direction(config: Config, task: str) -> tuple[str, str]:
    """The validation metric trials are scored on, and whether to maximise it.

    Raises:
        CnnCliError: Keras would not log that metric for this config.
    """
    from cnncli.model.build import log_names

    assert config.search is not None
    name = config.search.metric or ("accuracy" if task == "classification" else "loss")
    metric = name if name.startswith("val_") else f"val_{name}"
    logged = log_names(point_config(config, {}, config.search.validation_split))
    if metric not in logged:
        raise CnnCliError(
            f"{metric} is not logged for this config",
            where=config.locate("search.metric"),
            hint=did_you_mean(metric, logged, f"use one of {', '.join(logged)}"),
        )
    minimised = smaller_is_better(metric)
    direction = config.search.direction or ("minimize" if minimised else "maximize")
    return metric, direction


def check_search(config: Config) -> None:
    """What ``validate`` checks of a ``search:`` block: every path and value, and the metric.

    Raises:
        ConfigErrors, CnnCliError: one line per problem, at the ``search:`` entry.
    """
    assert config.search is not None
    check_space(config)
    if config.search.metric is not None:  # the default depends on the task the data decides
        metric_and_direction(config, "")


def run_tune(
    config: Config,
    *,
    trials: int | None = None,
    timeout: float | None = None,
    storage: str | None = None,
    study_name: str | None = None,
    on_trial: TrialCallback | None = None,
    on_message: MessageCallback | None = None,
) -> TuneResult:
    """Run (or continue) the config's search and write its results.

    Args:
        config: a validated config with a ``search:`` block.
        trials: how many trials the study ends with (completed or pruned); default the block's.
        timeout: seconds after which no new trial starts.
        storage: an Optuna RDB URL; default a SQLite file in the tune folder.
        study_name: default the config's name.
        on_trial: told each finished trial's row.
        on_message: one-line notes.

    Returns:
        The trials, the best one, ``best.yaml`` and the best trial's run folder.

    Raises:
        CnnCliError: the search or its storage cannot work; KeyboardInterrupt on a signal
            (the interrupted trial is queued again, the results written).
    """
    if config.search is None:
        raise CnnCliError(
            "this config has no search: block",
            where=Location(file=config.source.file),
            hint="add search: {trials: 20, space: {fit.batch_size: [32, 64]}} (see the README)",
        )
    say = on_message or (lambda _text: None)
    optuna = import_optuna()
    from cnncli.train.check import check_model, inspect_data

    search = config.search
    total = trials if trials is not None else search.trials
    check_space(config)
    base = point_config(config, {}, search.validation_split)
    facts = inspect_data(base)  # the data once: a problem there is the config's, not a trial's
    check_model(base, facts)  # the base point, as validate checks it; other points are pruned
    _check_a_sample(config, facts, seed=base.seed or 0, say=say)
    metric, direction = metric_and_direction(config, facts.task)
    folder = tune_folder(config)
    prepare_folder(folder, RESULT_FILES)
    url = storage or f"sqlite:///{(folder / STUDY_FILENAME).resolve()}"
    name = study_name or config.name
    seed = base.seed or 0
    with _folder_lock(folder, ".study.lock"):  # the default SQLite file is made once
        study = _open_study(optuna, url, name, direction, _pruner(optuna, search.pruner, config))
    _same_search(study, config, metric, name)
    keys = list(search.space)
    outcome = TuneResult(folder, name, _shown(url), metric, direction, keys, [])

    duplicates = [0]

    def objective(trial: Any) -> float:
        # A sampler seeded per trial number: processes sharing the study draw different points,
        # and one process alone draws the same ones every time.
        study.sampler = optuna.samplers.TPESampler(seed=(seed * 1_000_003 + trial.number) % 2**32)
        trial.set_user_attr("host", socket.gethostname())
        trial.set_user_attr("pid", os.getpid())
        if _is_surplus(optuna, study, trial, total):
            trial.set_user_attr("reason", f"surplus: the study already has {total} trials")
            raise _Surplus
        point = suggest_point(trial, search.space)
        if _is_duplicate(optuna, study, trial, point) and duplicates[0] < MAX_REDRAWS:
            duplicates[0] += 1
            trial.set_user_attr("reason", "duplicate: another trial has these values; drawn again")
            raise _Surplus
        duplicates[0] = 0
        try:
            return _run_trial(optuna, trial, config, point, metric, folder, say)
        except KeyboardInterrupt:
            trial.set_user_attr("reason", INTERRUPTED)
            raise

    def finished(study_: Any, trial: Any) -> None:
        rows = _write_rows(study_, folder, keys)
        shown = [row for row in rows if row["number"] == trial.number]
        if on_trial is not None and shown:
            on_trial(shown[0])

    started = time.monotonic()
    try:
        while True:
            _fail_dead_trials(optuna, study)
            if _counted(optuna, study, running=True) >= total:
                break  # done, or the rest is running in other processes
            if timeout is not None and time.monotonic() - started >= timeout:
                say(f"--timeout {timeout:g} s reached; the same command continues the search")
                break
            with _quiet_optuna(optuna):
                study.optimize(objective, n_trials=1, catch=(_Surplus,), callbacks=[finished])
    except KeyboardInterrupt:
        # Best effort: a signal that cut a storage write short may leave it unusable until the
        # next run, which fails the trial (its process is gone) and queues it again anyway.
        with contextlib.suppress(Exception):
            _retry_interrupted(optuna, study)
            _write_rows(study, folder, keys)
        raise
    outcome.rows = _write_rows(study, folder, keys)
    _finish(optuna, study, config, outcome, say)
    return outcome


def _check_a_sample(config: Config, facts: Any, *, seed: int, say: MessageCallback) -> None:
    """A sample of points through the model checks before anything trains: how many of them
    a trial would prune unrun, and why the first one fails."""
    from cnncli.train.check import check_model

    assert config.search is not None
    failures = []
    points = sample_points(config.search.space, SAMPLE_CHECKED, seed)
    for point in points:
        try:
            check_model(point_config(config, point, config.search.validation_split), facts)
        except CnnCliError as exc:
            failures.append(exc.problems[0] if isinstance(exc, ConfigErrors) else exc)
    if failures:
        say(
            f"{len(failures)} of {len(points)} sampled points fail the model checks and will be"
            f" pruned unrun, e.g. {failures[0].one_line()}"
        )


def _run_trial(
    optuna: Any,
    trial: Any,
    config: Config,
    point: dict[str, Any],
    metric: str,
    folder: Path,
    say: MessageCallback,
) -> float:
    """One point: checked (a failure prunes it with the reason), trained, reported per epoch."""
    from cnncli.train.run import train_for_search

    assert config.search is not None
    epochs: list[int] = [0]
    pruned: list[str] = []

    def keep_going(epoch: int, logs: dict[str, float]) -> bool:
        epochs[0] = epoch
        value = logs.get(metric)
        if value is None or not math.isfinite(value):
            return True
        trial.report(value, epoch)
        if trial.should_prune():
            pruned.append(f"pruned after epoch {epoch}: {metric} {value:.4g}")
            return False
        return True

    try:
        trial_config = point_config(config, point, config.search.validation_split)
        with tempfile.TemporaryDirectory(dir=folder, prefix=".trial-") as scratch:
            history = train_for_search(trial_config, keep_going, Path(scratch), on_message=say)
    except CnnCliError as exc:
        first = exc.problems[0] if isinstance(exc, ConfigErrors) else exc
        trial.set_user_attr("reason", f"invalid point: {first.one_line()}")
        trial.set_user_attr("epochs", 0)
        raise optuna.TrialPruned() from None
    trial.set_user_attr("epochs", epochs[0])
    if pruned:
        trial.set_user_attr("reason", pruned[0])
        raise optuna.TrialPruned()
    values = history.get(f"final_{metric}") or history.get(metric) or []
    if not values or not math.isfinite(values[-1]):
        trial.set_user_attr("reason", f"{metric} was not finite (the loss diverged)")
        raise optuna.TrialPruned()
    return values[-1]


def _open_study(optuna: Any, url: str, name: str, direction: str, pruner: Any) -> Any:
    """The study at ``url`` (created on first use), its storage beating a heart per trial."""
    from optuna.storages import RDBStorage

    given, url = url, _with_driver(url)
    for attempt in range(OPEN_ATTEMPTS):
        try:
            with _quiet_optuna(optuna):
                storage = RDBStorage(
                    url,
                    heartbeat_interval=HEARTBEAT_SECONDS,
                    grace_period=GRACE_SECONDS,
                    heartbeat_stale_trial_callback=_queue_again,
                )
                study = optuna.create_study(
                    study_name=name,
                    storage=storage,
                    direction=direction,
                    pruner=pruner,
                    load_if_exists=True,
                )
            _read_whole(study, given, name)
            return study
        except (ImportError, ValueError, OSError) as exc:
            raise _storage_error(given, exc) from None
        except Exception as exc:  # SQLAlchemy's errors: a server not running, a wrong password
            if type(exc).__module__.split(".")[0] != "sqlalchemy":
                raise
            # Workers started together on a new storage race to create its tables: the loser
            # finds them half made, and a moment later whole.
            racing = type(exc).__name__ == "IntegrityError" or "already exists" in str(exc)
            if not racing or attempt == OPEN_ATTEMPTS - 1:
                raise _storage_error(given, exc) from None
            time.sleep(0.5 + attempt)
    raise AssertionError("unreachable")


def _read_whole(study: Any, url: str, name: str) -> None:
    """Every trial and the study's notes read once, so a study edited by hand (a choice's index
    past its list, a distribution that is not JSON) is one line here, not a crash mid-search.

    Raises:
        CnnCliError: Optuna cannot rebuild a trial or a note from what the storage holds.
    """
    try:
        study.get_trials(deepcopy=False)
        _ = study.user_attrs
    except (IndexError, KeyError, TypeError, ValueError, AttributeError) as exc:
        raise CnnCliError(
            f"the study {name!r} in {_shown(url)} cannot be read"
            f" ({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''})",
            where=Location(file="--storage"),
            hint="it was edited or damaged: delete it, or start anew with --study NEW_NAME",
        ) from None


def _with_driver(url: str) -> str:
    """``postgresql://`` through psycopg2 (the tune extra) where psycopg 3, SQLAlchemy 2.1's
    default driver, is not installed."""
    import importlib.util

    if url.startswith("postgresql://") and importlib.util.find_spec("psycopg") is None:
        return "postgresql+psycopg2://" + url.removeprefix("postgresql://")
    return url


def _storage_error(url: str, exc: BaseException) -> CnnCliError:
    detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return CnnCliError(
        f"cannot open the study storage {_shown(url)}: {detail}",
        where=Location(file="--storage"),
        hint="give a URL Optuna's RDB storage takes, e.g. postgresql://user@host/db"
        " (pip install 'cnncli[tune]' for PostgreSQL) or sqlite:///study.db",
    )


def _shown(url: str) -> str:
    """The URL without its password."""
    try:
        from sqlalchemy.engine import make_url

        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # not a URL SQLAlchemy reads: nothing in it is shown as a password
        return url.split("@")[-1] if "@" in url else url


def _pruner(optuna: Any, kind: str, config: Config) -> Any:
    if kind == "median":
        return optuna.pruners.MedianPruner(
            n_startup_trials=MEDIAN_STARTUP_TRIALS, n_warmup_steps=max(1, config.fit.epochs // 5)
        )
    if kind == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=1, max_resource=config.fit.epochs)
    return optuna.pruners.NopPruner()


def _same_search(study: Any, config: Config, metric: str, name: str) -> None:
    """A study continued with another space or metric would mix incomparable trials."""
    assert config.search is not None
    signature = {
        "space": config.search.model_dump(mode="json", by_alias=True)["space"],
        "metric": metric,
    }
    known = study.user_attrs.get("search")
    if known is None:
        study.set_user_attr("search", signature)
    elif known != signature:
        raise CnnCliError(
            f"the study {name!r} in this storage was started with another search space or metric",
            where=entry_location(config, next(iter(config.search.space)), on_key=True),
            hint="give it a new name with --study NAME, or delete the old study",
        )


def _counted(optuna: Any, study: Any, *, running: bool = False) -> int:
    """Trials completed or pruned, and those running when ``running``."""
    state = optuna.trial.TrialState
    states = (state.COMPLETE, state.PRUNED, *((state.RUNNING,) if running else ()))
    return len(study.get_trials(deepcopy=False, states=states))


def _is_surplus(optuna: Any, study: Any, trial: Any, total: int) -> bool:
    """Whether the trials finished, and those running that started first (a lower number,
    given out by the storage one at a time), already make ``total``."""
    state = optuna.trial.TrialState
    ahead = 0
    for other in study.get_trials(deepcopy=False):
        if other.number == trial.number:
            continue
        if other.state in (state.COMPLETE, state.PRUNED) or (
            other.state == state.RUNNING and other.number < trial.number
        ):
            ahead += 1
    return ahead >= total


def _is_duplicate(optuna: Any, study: Any, trial: Any, point: dict[str, Any]) -> bool:
    """Whether a finished trial, or a running one that started first, has these values."""
    state = optuna.trial.TrialState
    for other in study.get_trials(deepcopy=False):
        if other.number == trial.number or other.params != point:
            continue
        if other.state in (state.COMPLETE, state.PRUNED) or (
            other.state == state.RUNNING and other.number < trial.number
        ):
            return True
    return False


def _fail_dead_trials(optuna: Any, study: Any) -> None:
    """A RUNNING trial whose process on this machine is gone (SIGKILL, a power cut): failed
    now and queued again; one on another machine waits for its heartbeat to go stale."""
    host = socket.gethostname()
    for trial in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
        pid = trial.user_attrs.get("pid")
        if trial.user_attrs.get("host") != host or not isinstance(pid, int) or _alive(pid):
            continue
        try:
            study._storage.set_trial_user_attr(trial._trial_id, "reason", INTERRUPTED)
            study._storage.set_trial_state_values(trial._trial_id, optuna.trial.TrialState.FAIL)
        except Exception:  # another process failed it first (UpdateFinishedTrialError)
            continue
        _queue_again(study, trial)


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive
        return True
    return True


def _queue_again(study: Any, trial: Any) -> None:
    """An interrupted trial's point, tried again as a new trial."""
    if trial.params:
        study.enqueue_trial(trial.params, user_attrs={"retry_of": trial.number})


def _retry_interrupted(optuna: Any, study: Any) -> None:
    """After a signal: the trial it cut short (failed by Optuna) is queued again."""
    pid = os.getpid()
    trials = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.FAIL,))
    mine = [
        t
        for t in trials
        if t.user_attrs.get("pid") == pid and t.user_attrs.get("reason") == INTERRUPTED
    ]
    if mine:
        _queue_again(study, max(mine, key=lambda t: t.number))


def _write_rows(study: Any, folder: Path, keys: list[str]) -> list[dict[str, Any]]:
    rows = trial_rows(study.get_trials(deepcopy=False), keys)
    write_trials(folder, rows, keys)
    return rows


def _finish(
    optuna: Any, study: Any, config: Config, outcome: TuneResult, say: MessageCallback
) -> None:
    """``best.yaml``, ``importance.json`` and the best trial trained as an ordinary run."""
    assert config.search is not None
    done = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    if not done:
        say("no trial completed, so there is no best.yaml; see trials.csv for the reasons")
        return
    best = study.best_trial
    outcome.best = {"number": best.number, "value": best.value, "params": dict(best.params)}
    raw = point_raw(config, dict(best.params), config.search.validation_split)
    header = (
        f"cnncli tune: trial {best.number} of study {outcome.study!r},"
        f" {outcome.metric} {best.value:.6g}\nTrain it with: cnncli train best.yaml"
    )
    outcome.best_yaml = write_best(outcome.folder, raw, header)
    if len(done) >= IMPORTANCE_MIN_TRIALS:
        try:
            with _quiet_optuna(optuna), warnings.catch_warnings():
                warnings.simplefilter("ignore")  # "importances will be equal": they say so
                importance = optuna.importance.get_param_importances(study)
            outcome.importance = {key: float(value) for key, value in importance.items()}
            write_importance(outcome.folder, outcome.importance)
        except (RuntimeError, ValueError) as exc:  # every trial drew the same values
            say(f"parameter importances not written: {exc}")
    outcome.run_dir = _best_run(config, dict(best.params), best.value, outcome, say)


def _best_run(
    config: Config, point: dict[str, Any], value: float, outcome: TuneResult, say: MessageCallback
) -> Path:
    """The best trial as a full run folder in the tune folder (kept when it is already there)."""
    from cnncli.runs import open_run
    from cnncli.train.run import train_run

    assert config.search is not None
    best = point_config(config, point, config.search.validation_split)
    latest = outcome.folder / "latest"
    with _folder_lock(outcome.folder, ".best.lock"):  # workers sharing the folder train it once
        with contextlib.suppress(CnnCliError, OSError):
            run = open_run(latest, verify=False)
            if run.manifest.get("config_sha256") == best.fingerprint():
                return run.path.resolve()
        say(f"training the best trial as a run folder in {outcome.folder}")
        result = train_run(best, outcome.folder, on_message=say)
    trained = (result.metrics.get("validation") or {}).get(outcome.metric.removeprefix("val_"))
    if trained is not None and not math.isclose(trained, value, rel_tol=1e-4, abs_tol=1e-6):
        say(f"the best run's {outcome.metric} is {trained:.6g}, the trial's was {value:.6g}")
    return result.run_dir


@contextlib.contextmanager
def _folder_lock(folder: Path, name: str) -> Iterator[None]:
    """One process at a time in the tune folder (opening the study, training the best run)."""
    import fcntl

    fd = os.open(folder / name, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


@contextlib.contextmanager
def _quiet_optuna(optuna: Any) -> Iterator[None]:
    """Optuna's experimental-feature warnings are about its API, not the user's search."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        yield
