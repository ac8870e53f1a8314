"""Run one training: data → preprocessing → builder → fit → evaluate → artifacts.

``train_run`` returns a ``TrainResult`` and reports progress through callbacks; it never
prints, prompts or exits, so the CLI and the tests drive it the same way.
"""

from __future__ import annotations

import csv
import io
import json
import random
import signal
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from cnncli.config.models import Config
from cnncli.data.chunks import StreamedData, wants_streaming
from cnncli.data.csvfile import require_data_files
from cnncli.data.split import TEST, TRAIN, VALIDATION
from cnncli.errors import Location
from cnncli.model.build import build_model, describe_layers, make_callbacks
from cnncli.model.targets import default_loss, default_metrics
from cnncli.runs import (
    CONFIG_FILENAME,
    HISTORY_FILENAME,
    METRICS_FILENAME,
    MODEL_FILENAME,
    ONNX_FILENAME,
    PREPROCESS_FILENAME,
    SPLIT_FILENAME,
    SUMMARY_FILENAME,
    finish_run,
    save_keras_atomic,
    write_atomic,
    write_json,
)
from cnncli.runtime import (
    forced_backend,
    import_keras,
    interrupts_kept_quiet,
    seed_everything,
    select_backend,
)
from cnncli.serve.scores import (
    BASELINE_METHODS,
    baseline_prediction,
    baseline_scores,
    baseline_warning,
    beats_baseline,
    label_scores,
    scaled_scores,
    truth_from_targets,
)
from cnncli.train.check import check_model, facts_from_preprocessor
from cnncli.train.checkpoints import CheckpointKeeper, TrainingInterrupted, resume_point
from cnncli.train.checkpoints.resume import restore_callbacks, restore_variables
from cnncli.train.checkpoints.signals import SignalCatcher, interrupted
from cnncli.train.distribute import (
    LostCallback,
    Session,
    dropped_rows,
    preprocessing_digest,
    worker_for,
)
from cnncli.train.distribute import start as start_distribution
from cnncli.train.feed import (
    EVALUATE_BATCH,
    PreparedData,
    class_weights,
    evaluate_inputs,
    fit_inputs,
    part_arrays,
    prepare_data,
    prepare_streamed,
)
from cnncli.train.tracking import MlflowTracker, open_tracker, require_trackers

EpochCallback = Callable[[int, int, dict[str, float]], None]
MessageCallback = Callable[[str], None]

#: Steps per call into Keras under ``steps_per_execution: auto``. Each call on TensorFlow costs a
#: few ms of dispatch: a whole 75-step seed epoch per call made the 50-epoch run 0.6 s (7 %)
#: faster than 32 steps did, with the same weights. A signal is noticed between calls, so
#: this also bounds how long Ctrl-C waits.
AUTO_STEPS_PER_EXECUTION = 128


@dataclass
class TrainResult:
    #: None on a worker other than process 0, which writes no run folder.
    run_dir: Path | None
    metrics: dict[str, Any]
    history: dict[str, list[float]]
    seed: int
    onnx: dict[str, Any] = field(default_factory=dict)


def train_run(
    config: Config,
    output_dir: Path | None = None,
    *,
    on_epoch_end: EpochCallback | None = None,
    on_message: MessageCallback | None = None,
    resume: str | Path | None = None,
    process_id: int | None = None,
    on_lost: LostCallback | None = None,
) -> TrainResult:
    """Train the config's model and save it as a complete run folder.

    Args:
        config: a validated config.
        output_dir: where run folders go; defaults to ``output.dir``.
        on_epoch_end: called with (epoch, epochs, logs) after every epoch.
        on_message: called with one-line notes (rows dropped, ONNX fallback, ...).
        resume: an interrupted run's folder to continue, or "" for the newest one of this name.
        process_id: this worker's number under ``distribute`` (default ``CNNCLI_PROCESS_ID``).
        on_lost: called with the error line when another worker is lost, just before this
            process exits (``train.distribute``).

    Returns:
        The run folder, test metrics, history and the seed used.
    """
    signals = SignalCatcher()
    # the signal handler notes every signal, so an interrupt hidden from Python is acted on
    with signals.installed(), interrupts_kept_quiet(reraise=False):
        try:
            return _train(
                config, output_dir, on_epoch_end, on_message, resume, signals, process_id, on_lost
            )
        except BaseException as exc:
            # Before the run's folder exists (reading the data, checking the model): a signal
            # that a reader turned into its own error, or that a library swallowed, still wins.
            if signals.received is None or isinstance(exc, TrainingInterrupted):
                raise
            error = interrupted(config, None, signals.received, None, 0, phase=signals.phase)
            raise error from None


def _train(
    config: Config,
    output_dir: Path | None,
    on_epoch_end: EpochCallback | None,
    on_message: MessageCallback | None,
    resume: str | Path | None,
    signals: SignalCatcher,
    process_id: int | None = None,
    on_lost: LostCallback | None = None,
) -> TrainResult:
    say = on_message or (lambda _text: None)
    output = Path(output_dir or config.output.dir)
    worker = worker_for(config, process_id)
    resumed = (
        resume_point(config, output, resume, lock=worker.writes) if resume is not None else None
    )
    require_data_files(config)  # as validate does, and before Keras loads
    require_trackers(config)
    seed = config.seed if config.seed is not None else random.SystemRandom().randrange(2**31)
    seed = resumed.seed if resumed is not None else seed
    backend = select_backend(config.backend)
    if backend not in (config.backend, forced_backend()):
        say(
            f"Keras already runs on {backend} in this process;"
            f" training there instead of on {config.backend}"
        )
    signals.phase = "loading Keras"
    with signals.deferred():  # an import cut short left TensorFlow half set up: one run segfaulted
        keras = import_keras()
    signals.check()
    signals.phase = "joining the other workers"
    session = start_distribution(worker, keras, on_lost)  # before any JAX computation
    seed = session.agree_on_seed(seed)
    # JAX strategies feed shards of the in-memory rows (train.distribute)
    streaming = wants_streaming(config) and not session.on_jax
    signals.phase = "reading the data"
    prepared = prepare_streamed(config, seed) if streaming else prepare_data(config, seed)
    signals.check()
    signals.phase = "checking the model"
    # The data is read once, here: the model is checked against the preprocessing fitted on
    # the training rows, not against a second, cheaper read as `validate` does.
    check_model(config, facts_from_preprocessor(prepared.task, prepared.preprocessor))
    session.agree_on_preprocessing(
        preprocessing_digest(
            prepared.preprocessor.to_json(), yaml.safe_dump(prepared.split.to_json())
        )
    )
    if session.feeds_shards and (left_out := dropped_rows(prepared.n_train, session.shards()[0])):
        say(f"{left_out} training row(s) left out so that every device's shard is the same size")
    for note in prepared.notes:
        say(note)
    if on_epoch_end is not None and prepared.preprocessor.label.kind == "standard":
        on_epoch_end = _on_the_scaled_label(on_epoch_end)
    # Seeded after the checks, whose throwaway layers draw from the global RNGs, and before the
    # model is built: weights, Dropout and shuffling follow the seed alone. Reading and
    # splitting the data use their own generators.
    seed_everything(seed)
    signals.check()
    signals.phase = "building the model"
    build, steps_per_epoch = _builder(config, prepared, say, backend, worker.strategy)
    with session.building():
        model = build()
    signals.check()
    if not worker.writes:
        signals.phase = "training"
        try:
            return _follow(config, keras, model, prepared, session, resumed, seed)
        except BaseException:
            if signals.received is None:
                raise
            raise TrainingInterrupted(  # the checkpoint, and the line that resumes, are process 0's
                f"{worker.name} interrupted by {signal.Signals(signals.received).name};"
                " process 0 keeps the checkpoint",
                signum=signals.received,
                where=Location(key="distribute"),
                hint="see process 0's line for how to resume",
            ) from None
    # staging folder + checkpoints; from here on, a failure keeps the last checkpoint
    with signals.deferred():  # the staging folder exists only with a keeper to clean it up
        keeper = CheckpointKeeper.open(config, output, seed, resumed, signals)
    tracker = None
    try:
        tracker = open_tracker(config, say)  # a copy of the run: its failures only warn
        result = _fit_and_save(
            config,
            keras,
            model,
            prepared,
            keeper,
            seed,
            streaming,
            steps_per_epoch,
            on_epoch_end,
            say,
            session,
            build,
            tracker,
        )
    except BaseException as exc:
        error = keeper.failed(exc)
        if tracker is not None:
            stopped = isinstance(error or exc, (TrainingInterrupted, KeyboardInterrupt))
            tracker.end("KILLED" if stopped else "FAILED")
        if error is None:
            raise
        raise error from (None if isinstance(error, TrainingInterrupted) else exc)
    if tracker is not None:
        tracker.finish(result.run_dir, result.metrics)
    return result


def _builder(
    config: Config,
    prepared: PreparedData | StreamedData,
    say: MessageCallback,
    backend: str,
    strategy: str = "none",
) -> tuple[Callable[[], Any], int]:
    """A function that builds the compiled model (again, for an undistributed copy), and the
    steps of one epoch."""
    steps_per_epoch = max(1, int(np.ceil(prepared.n_train / config.fit.batch_size)))
    steps_per_execution = (
        AUTO_STEPS_PER_EXECUTION
        if config.fit.steps_per_execution == "auto"
        else config.fit.steps_per_execution
    )
    if config.fit.steps_per_execution != "auto" and steps_per_execution > steps_per_epoch:
        # in memory and streamed alike: a call never spans more than one epoch's batches
        say(
            f"fit.steps_per_execution: {steps_per_execution} is more than the"
            f" {steps_per_epoch} step(s) of an epoch; {steps_per_epoch} are run per call"
        )
    steps_per_execution = min(steps_per_execution, steps_per_epoch)
    one_step = {"torch": "Keras on torch", "tensorflow": "TensorFlow's MirroredStrategy"}
    if steps_per_execution > 1 and (
        backend == "torch" or (backend == "tensorflow" and strategy == "mirrored")
    ):
        # Keras refuses more on PyTorch; a MirroredStrategy loop of several steps fails to run
        if config.fit.steps_per_execution != "auto":
            say(
                f"fit.steps_per_execution: {one_step[backend]} runs 1 step per call,"
                f" not {steps_per_execution}"
            )
        steps_per_execution = 1

    def build() -> Any:
        return build_model(
            config,
            prepared.preprocessor.input_shape,
            prepared.n_outputs,
            default_loss=default_loss(prepared.preprocessor.label.kind),
            default_metrics=default_metrics(prepared.task),
            steps_per_execution=steps_per_execution,
        )

    return build, steps_per_epoch


#: Called after each epoch of a search trial with (epoch, logs); False stops the fit there.
KeepGoing = Callable[[int, dict[str, float]], bool]


def train_for_search(
    config: Config,
    keep_going: KeepGoing,
    scratch: Path,
    on_message: MessageCallback | None = None,
) -> dict[str, list[float]]:
    """One trial of a search: the steps of ``train_run`` up to the fit, and no further.

    The data is read, split and preprocessed, the model checked, seeded, built and fitted
    exactly as ``train_run`` does, so ``train`` on the trial's config reproduces its validation
    scores; no run folder is written and the test rows are never evaluated.

    Args:
        config: a validated config with a seed and a validation split.
        keep_going: told each epoch's logs; False stops training after that epoch.
        scratch: an empty folder the trial's callbacks write in (a CSVLogger), thrown away.
        on_message: called with one-line notes.

    Returns:
        Keras' history (each logged name to its values per epoch), and ``final_val_<name>``: the
        validation scores of the weights the fit ended with.

    Raises:
        CnnCliError: the data or the model fails a check (the point cannot train).
    """
    say = on_message or (lambda _text: None)
    require_data_files(config)
    assert config.seed is not None, "a search trial is seeded"
    backend = select_backend(config.backend)
    keras = import_keras()
    streaming = wants_streaming(config)
    prepared = (
        prepare_streamed(config, config.seed) if streaming else prepare_data(config, config.seed)
    )
    check_model(config, facts_from_preprocessor(prepared.task, prepared.preprocessor))
    seed_everything(config.seed)
    build, steps_per_epoch = _builder(config, prepared, say, backend)
    model = build()
    callbacks = make_callbacks(config, keras, run_dir=scratch)
    callbacks += epoch_seeding(keras, config.seed)
    callbacks.append(_Stopper(keras, keep_going))
    inputs = fit_inputs(config, prepared, 0, class_weights(config, prepared))
    if not streaming and backend != "torch":  # as _fit_and_save: torch opens a loader per epoch
        inputs["steps_per_epoch"] = steps_per_epoch
    history = model.fit(**inputs, epochs=config.fit.epochs, callbacks=callbacks, verbose=0)
    logs = {name: [float(v) for v in values] for name, values in history.history.items()}
    # The weights the fit ended with (EarlyStopping may have restored an earlier epoch's), scored
    # as train_run scores them for metrics.json: a trial and `train` of its config agree.
    final = model.evaluate(
        **evaluate_inputs(config, prepared, VALIDATION), verbose=0, return_dict=True
    )
    return {**logs, **{f"final_val_{name}": [float(value)] for name, value in final.items()}}


class _Stopper:
    """Keras callback that asks ``keep_going`` after every epoch; built lazily like
    ``_EpochReporter``."""

    def __new__(cls, keras: Any, keep_going: KeepGoing) -> Any:
        class Stopper(keras.callbacks.Callback):
            def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
                values = {k: float(v) for k, v in (logs or {}).items()}
                if not keep_going(epoch + 1, values):
                    self.model.stop_training = True

        return Stopper()


def _fit_and_save(
    config: Config,
    keras: Any,
    model: Any,
    prepared: PreparedData | StreamedData,
    keeper: CheckpointKeeper,
    seed: int,
    streaming: bool,
    steps_per_epoch: int,
    on_epoch_end: EpochCallback | None,
    say: MessageCallback,
    session: Session,
    build: Callable[[], Any],
    tracker: MlflowTracker | None = None,
) -> TrainResult:
    """Fit with checkpoints, evaluate on the test rows and publish the run folder."""
    resumed = keeper.resumed
    # a callback that writes files writes inside the run
    callbacks = make_callbacks(config, keras, run_dir=keeper.staged.staging)
    callbacks += epoch_seeding(keras, seed)
    for report in (on_epoch_end, tracker and tracker.log_epoch):
        if report is not None:
            callbacks.append(_EpochReporter(keras, config.fit.epochs, report))
    weights = class_weights(config, prepared)
    first_epoch = resumed.epoch if resumed is not None else 0
    inputs = fit_inputs(config, prepared, first_epoch, weights)
    inputs = session.fit_inputs(inputs, config, seed, first_epoch)
    # On torch, Keras shuffles with torch's global generator, which epoch_seeding starts anew
    # each epoch; told the epoch's length, Keras would keep the loader of a previous epoch,
    # which a resumed fit cannot (its first loader draws from that generator, later ones not).
    if not streaming and not session.feeds_shards and keras.backend.backend() != "torch":
        # Told the epoch's length, Keras keeps the data iterator it opens at the end of an
        # epoch for the next one instead of opening another: on TensorFlow that is ~10 ms an
        # epoch, and the shuffled order is the same either way.
        inputs["steps_per_epoch"] = steps_per_epoch
    with session.fitting():
        history = keeper.fit(
            model, **inputs, epochs=config.fit.epochs, callbacks=callbacks, verbose=0
        )
    model = session.undistributed(model, build)
    keeper.entering("evaluating on the test rows")
    metrics, tested = result_metrics(config, model, prepared, callbacks, keras)
    if not metrics["baseline"]["beaten"]:
        say(baseline_warning(prepared.preprocessor.label, "test"))
    histories = {name: [float(v) for v in values] for name, values in history.history.items()}
    keeper.entering("saving the run")
    # drawn from the outputs scoring already computed: the model does not run again
    files: dict[str, str | bytes] = {
        SUMMARY_FILENAME: _summary_json(config, model, prepared, tested)
    }
    if config.fit.plots and len(tested.truth):
        from cnncli.report.plots import run_plots

        label = prepared.preprocessor.label
        best = metrics.get("best_epoch")
        files.update(run_plots(histories, label, tested.outputs, tested.truth, best))
    run_dir, onnx = save_run(
        config,
        model,
        prepared,
        metrics,
        histories,
        seed,
        say,
        keeper,
        class_weight=weights,
        report_files=files,
    )
    session.finish()
    return TrainResult(run_dir=run_dir, metrics=metrics, history=histories, seed=seed, onnx=onnx)


def _follow(
    config: Config,
    keras: Any,
    model: Any,
    prepared: PreparedData | StreamedData,
    session: Session,
    resumed: Any,
    seed: int,
) -> TrainResult:
    """A worker other than process 0: the same fit on its own shards, writing nothing.

    Its callbacks are the same (EarlyStopping must stop every worker at the same epoch); a
    callback's files go to a folder deleted afterwards. It reads the checkpoint on ``--resume``.
    """
    import tempfile

    first_epoch = resumed.epoch if resumed is not None else 0
    with tempfile.TemporaryDirectory(prefix="cnncli-worker-") as scratch:
        callbacks = make_callbacks(config, keras, run_dir=Path(scratch))
        callbacks += epoch_seeding(keras, seed)
        if resumed is not None:
            restore_callbacks(callbacks, resumed, restore_variables(model, resumed))
        inputs = fit_inputs(config, prepared, first_epoch, class_weights(config, prepared))
        inputs = session.fit_inputs(inputs, config, seed, first_epoch)
        history: dict[str, list[float]] = {}
        if resumed is None or not (resumed.done or first_epoch >= config.fit.epochs):
            with session.fitting():
                fitted = model.fit(
                    **inputs,
                    epochs=config.fit.epochs,
                    initial_epoch=first_epoch,
                    callbacks=callbacks,
                    verbose=0,
                )
            history = {name: [float(v) for v in values] for name, values in fitted.history.items()}
    session.finish()
    return TrainResult(run_dir=None, metrics={}, history=history, seed=seed)


def result_metrics(
    config: Config,
    model: Any,
    prepared: PreparedData | StreamedData,
    callbacks: list[Any],
    keras: Any,
) -> tuple[dict[str, Any], TestedRows]:
    """What ``metrics.json`` holds: test (and validation) scores, the baseline's, the epochs;
    and the test rows' outputs, which the plots and ``summary.json`` are drawn from.

    Keras' evaluation gives the loss and the configured metrics, on the scale the model learned;
    accuracy, or MAE, RMSE and R² in the label's units, come from the same functions ``evaluate``
    uses (``serve.scores``), so the two never disagree.
    """
    label = prepared.preprocessor.label
    train_truth = np.concatenate(
        [truth_from_targets(label, y) for _, y in part_arrays(prepared, TRAIN)]
    )
    predicts = baseline_prediction(label, train_truth)
    metrics: dict[str, Any] = {}
    baseline: dict[str, Any] = {"method": BASELINE_METHODS[label.is_classification]}
    baseline["predicts"] = predicts
    tested = TestedRows(train_truth, rows={"train": len(train_truth)})
    for part, name in ((TEST, "test"), (VALIDATION, "validation")):
        outputs, truths = [], []  # a chunk at a time: a streaming run's inputs never pile up
        for x, y in part_arrays(prepared, part):
            outputs.append(model.predict(x, batch_size=EVALUATE_BATCH, verbose=0))
            truths.append(truth_from_targets(label, y))
        if not outputs:
            continue
        truth = np.concatenate(truths)
        tested.rows[name] = len(truth)
        if part == TEST:
            tested.outputs, tested.truth = np.concatenate(outputs), truth
        keras_scores = model.evaluate(
            **evaluate_inputs(config, prepared, part), verbose=0, return_dict=True
        )
        metrics[name] = {
            **{key: float(value) for key, value in keras_scores.items()},
            **label_scores(label, np.concatenate(outputs), truth),
        }
        baseline[name] = baseline_scores(label, predicts, truth)
    baseline["beaten"] = beats_baseline(label, metrics["test"], baseline["test"])
    metrics["baseline"] = baseline
    if not label.is_classification:
        metrics["scale"] = scaled_scores(label, metrics["test"])
    metrics.update(stopping_epochs(callbacks, keras))
    return metrics, tested


@dataclass
class TestedRows:
    """What scoring saw: each training row's truth, the test rows' outputs and truth (class
    indices, or values in label units), and the rows of each part."""

    train_truth: np.ndarray
    rows: dict[str, int]
    outputs: np.ndarray = field(default_factory=lambda: np.empty(0))
    truth: np.ndarray = field(default_factory=lambda: np.empty(0))


def stopping_epochs(callbacks: list[Any], keras: Any) -> dict[str, int]:
    """``stopped_epoch`` when EarlyStopping ended the fit, ``best_epoch`` when it restored that
    epoch's weights (1-based, as the progress shows them; a resumed run's state is restored)."""
    epochs: dict[str, int] = {}
    for callback in callbacks:
        if not isinstance(callback, keras.callbacks.EarlyStopping):
            continue
        if callback.stopped_epoch > 0:
            epochs["stopped_epoch"] = int(callback.stopped_epoch) + 1
        if callback.restore_best_weights and callback.best_weights is not None:
            epochs["best_epoch"] = int(callback.best_epoch) + 1
    return epochs


def _on_the_scaled_label(report: EpochCallback) -> EpochCallback:
    """Keras' per-epoch values of a model that learned a standardised label are on that scale,
    not the label's units that the final scores use: the progress line says so per value."""

    def scaled(epoch: int, epochs: int, logs: dict[str, float]) -> None:
        report(epoch, epochs, {f"{name} (scaled)": value for name, value in logs.items()})

    return scaled


def epoch_seeding(keras: Any, seed: int) -> list[Any]:
    """On torch, a callback that seeds torch's global generator at each epoch's start.

    Keras on torch shuffles and runs unseeded Dropout with that generator, which a checkpoint
    does not hold; started from (seed, epoch), a resumed run draws what an uninterrupted one
    draws.
    """
    if keras.backend.backend() != "torch":
        return []

    class EpochSeed(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
            import torch

            torch.manual_seed(int(np.random.default_rng([seed, epoch]).integers(2**62)))

    return [EpochSeed()]


class _EpochReporter:
    """Keras callback that forwards epoch ends; built lazily so Keras is imported late."""

    def __new__(cls, keras: Any, epochs: int, report: EpochCallback) -> Any:
        class Reporter(keras.callbacks.Callback):
            def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
                report(epoch + 1, epochs, {k: float(v) for k, v in (logs or {}).items()})

        return Reporter()


def save_run(
    config: Config,
    model: Any,
    prepared: PreparedData | StreamedData,
    metrics: dict[str, Any],
    history: dict[str, list[float]],
    seed: int,
    say: MessageCallback,
    keeper: CheckpointKeeper,
    *,
    class_weight: dict[str, float] | None = None,
    report_files: dict[str, str | bytes] | None = None,
) -> tuple[Path, dict[str, Any]]:
    """Write every artifact into the keeper's staging folder, then publish it atomically.

    The staging folder already holds the run's checkpoints; a failure keeps the last one so
    the run can be resumed. ``report_files`` (name → content) are ``summary.json`` and the plots.
    """
    from cnncli.serve.export import export_onnx_checked

    staged = keeper.staged
    try:
        resolved = resolved_config(config, prepared, seed)
        if class_weight is not None:  # `balanced` resolved into the weight of each class
            resolved["fit"]["class_weight"] = class_weight
        write_atomic(staged.staging / CONFIG_FILENAME, yaml.safe_dump(resolved, sort_keys=False))
        write_atomic(staged.staging / PREPROCESS_FILENAME, prepared.preprocessor.to_json() + "\n")
        write_json(staged.staging / METRICS_FILENAME, metrics)
        write_json(staged.staging / SPLIT_FILENAME, prepared.split.to_json())
        write_atomic(staged.staging / HISTORY_FILENAME, history_csv(history))
        for name, content in (report_files or {}).items():
            write_atomic(staged.staging / name, content)
        save_keras_atomic(model, staged.staging / MODEL_FILENAME)
        onnx = export_onnx_checked(model, staged.staging / ONNX_FILENAME, prepared.check_rows())
        if not onnx["checked"]:
            say(f"ONNX export unavailable ({onnx['reason']}); predict will use Keras")
        keras = import_keras()
        manifest = {
            "keras": keras.__version__,
            "backend": keras.backend.backend(),
            # read from the package metadata: importing TensorFlow for its version costs seconds
            "tensorflow": _installed_version("tensorflow", "tensorflow-cpu"),
            **(
                {keras.backend.backend(): _installed_version(keras.backend.backend())}
                if keras.backend.backend() in ("jax", "torch")
                else {}
            ),
            "config_sha256": config.fingerprint(),
            "seed": seed,
            "task": prepared.task,
            # fingerprinted when training started: the files may have changed or gone since
            **keeper.data,
            "onnx": onnx,
        }
        keeper.check_signal()  # an interrupt the exporter swallowed stops the run here
        with keeper.signals_deferred():  # published whole, or not at all
            return finish_run(staged, manifest), onnx
    except BaseException as exc:
        error = keeper.failed(exc)
        if error is None:
            raise
        raise error from exc


def _summary_json(config: Config, model: Any, prepared: Any, tested: TestedRows) -> str:
    """``summary.json``: the data, the layer table and the test rows' per-class scores."""
    from cnncli.report.summary import run_summary

    summary = run_summary(
        config,
        prepared.preprocessor,
        describe_layers(model),
        tested.train_truth,
        tested.rows,
        list(prepared.notes),
        (tested.outputs, tested.truth),
    )
    return json.dumps(summary, indent=2, allow_nan=False) + "\n"


#: A label encoding in the config's words: a binary label (one 0/1 output, set by a binary loss
#: on two classes) is a class index, as ``sparse`` is; the loss keeps it binary when reloaded.
_CONFIG_LABEL = {"binary": "sparse"}


def resolved_config(
    config: Config, prepared: PreparedData | StreamedData, seed: int
) -> dict[str, Any]:
    """The config as trained, every default resolved: seed, task, features and label, label
    encoding, loss, metrics and input shape, so a run's ``config.yaml`` holds no null that
    training decided."""
    resolved = config.to_yaml_dict()
    resolved["seed"] = seed
    resolved["task"] = prepared.task
    resolved["data"]["features"] = list(prepared.preprocessor.feature_names)
    resolved["data"]["label"] = prepared.preprocessor.label.name
    kind = prepared.preprocessor.label.kind
    resolved["preprocess"]["label"] = _CONFIG_LABEL.get(kind, kind)
    compile_ = resolved["compile"]
    if compile_["loss"] is None:
        compile_["loss"] = default_loss(kind)
    if compile_["metrics"] is None:
        compile_["metrics"] = list(default_metrics(prepared.task))
    resolved["model"]["input_shape"] = list(prepared.preprocessor.input_shape)
    return resolved


def _installed_version(*distributions: str) -> str | None:
    from importlib import metadata

    for name in distributions:
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return None


def history_csv(history: dict[str, list[float]]) -> str:
    names = list(history)
    stream = io.StringIO()
    writer = csv.writer(stream, lineterminator="\n")
    writer.writerow(["epoch", *names])
    epochs = len(next(iter(history.values()), []))
    for epoch in range(epochs):
        writer.writerow([epoch + 1, *(repr(history[name][epoch]) for name in names)])
    return stream.getvalue()
