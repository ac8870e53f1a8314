"""The ``cnncli`` command: parse arguments, make one call into the core, render the result.

Heavy libraries (TensorFlow, pandas, scikit-learn) are imported inside command bodies only,
so ``cnncli --help`` and schema checks start instantly.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import math
import os
import re
import signal
import sys
import threading
import traceback
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, NoReturn

import click

from cnncli import __version__, render
from cnncli.errors import CnnCliError, Location, did_you_mean
from cnncli.runtime import select_backend

EXIT_USER_ERROR = 2
EXIT_BUG = 1
EXIT_BROKEN_PIPE = 128 + 13  # 128 + SIGPIPE, as a shell reports `yes | head -1`'s yes
#: A write that failed for want of room (a full disk, quota or device): the user's to fix.
FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG})
#: A user's path that no check before it caught: a name too long, a link loop, a file where a
#: folder should be. Any other OSError is a bug (cnncli failing on its own files), exit 1.
PATH_ERRNOS = frozenset({errno.ENAMETOOLONG, errno.ELOOP, errno.ENOTDIR})
#: ``ctx.meta`` key: the signals noted while the command runs (``_signals_noted``).
_SIGNALS_RECEIVED = "cnncli.signals_received"


def load_config(path: Path, overrides: tuple[str, ...] | list[str] = ()) -> Any:
    """``config.models.load_config``, imported on first use (pydantic costs 0.1-0.2 s)."""
    from cnncli.config.models import load_config as load

    return load(path, overrides)


def _open_run(run: Path | None) -> Any:
    """The run a command works on: RUN, or ``runs/latest``, which is then named on stderr."""
    from cnncli.runs import open_run, resolve_run_dir

    folder = open_run(resolve_run_dir(run))
    if run is None:
        render.run_in_use(folder.path, str(folder.config.get("name", "")))
    return folder


class Seconds(click.FloatRange):
    """A positive, finite number of seconds: ``nan`` passed FloatRange's comparisons and
    ``inf`` its range, and then broke the server's timers or never stopped a search."""

    name = "float"

    def __init__(self) -> None:
        super().__init__(0, min_open=True)

    def convert(self, value: Any, param: Any, ctx: Any) -> Any:
        seconds = super().convert(value, param, ctx)
        if not math.isfinite(seconds):
            self.fail(f"{value!r} is not a finite number of seconds", param, ctx)
        return seconds


class UserError(click.ClickException):
    """A ``CnnCliError`` on its way out: one line per problem on stderr, exit code 2."""

    exit_code = EXIT_USER_ERROR

    def __init__(self, error: CnnCliError) -> None:
        super().__init__(error.one_line())
        self.error = error

    def show(self, file: Any = None) -> None:
        render.error(self.error.one_line())


#: What to give instead, for an argument Click refused (a directory as CONFIG, a file as RUN).
_ARGUMENT_HINTS = {
    "config": "give a YAML config file, e.g. configs/seed.yaml",
    "run": "give a run folder, e.g. runs/latest, or leave RUN out for the latest run",
}
_CLICK_PATH_MESSAGE = re.compile(r"^(?:File|Directory|Path) ('.*') (.*?)\.?$")


def usage_error(exc: click.UsageError, subcommand: str | None = None) -> UserError:
    """Click's usage error (unknown option, missing argument, a bad path) as cnncli's one line.

    Args:
        exc: what Click raised.
        subcommand: the command being parsed, where Click's error does not carry it.
    """
    ctx = exc.ctx
    if ctx is not None and ctx.parent is not None:
        subcommand = ctx.command.name
    command = f"cnncli {subcommand}" if subcommand else "cnncli"
    hint = f"see '{command} --help'"
    key = None
    message = exc.format_message()
    if isinstance(exc, click.BadParameter) and exc.param is not None and exc.message:
        param = exc.param
        key = param.human_readable_name if isinstance(param, click.Argument) else param.opts[-1]
        message = exc.message
        hint = _ARGUMENT_HINTS.get(exc.param.name or "", hint)
    elif isinstance(exc, click.NoSuchOption) and ctx is not None:
        options = [
            name for param in ctx.command.params for name in param.opts + param.secondary_opts
        ]
        message, hint = exc.message, did_you_mean(exc.option_name, options, hint)
    elif isinstance(exc, click.exceptions.NoSuchCommand) and ctx is not None:
        commands = ctx.command.list_commands(ctx) if isinstance(ctx.command, click.Group) else []
        message, hint = exc.message, did_you_mean(exc.command_name, commands, hint)
    if match := _CLICK_PATH_MESSAGE.match(message):
        message = f"{match[1]} {match[2]}"
    message = message[:1].lower() + message[1:]
    return UserError(CnnCliError(message, where=Location(file=command, key=key), hint=hint))


class CnnCliGroup(click.Group):
    """Turns every error into its exit code in one place."""

    #: Set by ``main`` (the program): after a command succeeds, SIGINT and SIGTERM are ignored.
    exits_quietly = False

    def make_context(
        self,
        info_name: str | None,
        args: list[str],
        parent: click.Context | None = None,
        **extra: Any,
    ) -> click.Context:
        try:
            return super().make_context(info_name, args, parent, **extra)
        except click.exceptions.NoArgsIsHelpError:
            raise
        except click.UsageError as exc:  # before a command runs: `cnncli validat`, `--verbose`
            raise usage_error(exc) from exc

    def invoke(self, ctx: click.Context) -> Any:
        with _signals_noted() as received:
            ctx.meta[_SIGNALS_RECEIVED] = received
            result = self._invoke(ctx, received)
            if self.exits_quietly and not received:
                # The command's work is complete (a run published, a file renamed into place);
                # only the interpreter's exit is left (TensorFlow's takes about 0.5 s), where a
                # signal killed the process with no line. Ignored: the command succeeded.
                for sig in (signal.SIGINT, signal.SIGTERM):
                    signal.signal(sig, signal.SIG_IGN)
        if received:  # a library swallowed the interrupt and the command went on to the end
            _interrupted(received[0])
        return result

    def _invoke(self, ctx: click.Context, received: list[int]) -> Any:
        debug = bool(ctx.params.get("debug"))
        try:
            return super().invoke(ctx)
        except CnnCliError as exc:
            if debug:
                traceback.print_exc()
            raise UserError(exc) from exc
        except click.exceptions.NoArgsIsHelpError:
            raise
        except click.UsageError as exc:  # a command's own arguments and options
            raise usage_error(exc, ctx.invoked_subcommand) from exc
        except (click.ClickException, click.exceptions.Exit, click.Abort):
            raise
        except KeyboardInterrupt:
            _interrupted(received[0] if received else signal.SIGINT)
        except BrokenPipeError:
            # `cnncli predict ... | head` stopped reading: stop quietly, with the status a shell
            # gives a process that SIGPIPE ends, and keep Python's exit flush off the dead pipe.
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            sys.exit(EXIT_BROKEN_PIPE)
        except OSError as exc:
            if isinstance(exc.filename, (str, os.PathLike)) and exc.errno in PATH_ERRNOS:
                _path_error(exc, debug)
            if exc.errno not in FULL_ERRNOS:
                _bug(exc, debug)
            # `cnncli evaluate > /dev/full`: the output has no room, which is not a bug
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            render.error(
                f"cannot write the output: {exc.strerror}; free some space or write elsewhere"
            )
            sys.exit(EXIT_USER_ERROR)
        except Exception as exc:
            _bug(exc, debug)


@contextlib.contextmanager
def _signals_noted() -> Iterator[list[int]]:
    """SIGINT and SIGTERM raise ``KeyboardInterrupt`` as usual, and are noted in the list, so
    that one a library swallows still ends the command with 128 + its number. ``train``
    installs its own handlers while it trains (``train.checkpoints.signals``)."""
    received: list[int] = []
    if threading.current_thread() is not threading.main_thread():
        yield received
        return

    def note(signum: int, _frame: Any) -> None:
        received.append(signum)
        raise KeyboardInterrupt

    previous = {sig: signal.signal(sig, note) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield received
    finally:
        for sig, handler in previous.items():
            if signal.getsignal(sig) is note:  # not once the command ignores signals to exit
                signal.signal(sig, handler)


@contextlib.contextmanager
def _interrupts_name_the_run(run_dir: Path) -> Iterator[None]:
    """A signal while a published run is shown: one line naming the run, which is complete,
    and 128 + its number (a silent 130 left the user guessing whether the run was saved)."""
    from cnncli.train.checkpoints.signals import interrupted_after_saving

    received: list[int] = click.get_current_context().meta.get(_SIGNALS_RECEIVED, [])
    before = len(received)
    try:
        yield
    except KeyboardInterrupt:
        pass
    else:
        if len(received) == before:
            return
    signum = received[before] if received[before:] else signal.SIGINT
    error = interrupted_after_saving(run_dir, signum)
    render.error(error.one_line())
    sys.exit(error.exit_code)


def _interrupted(signum: int) -> NoReturn:
    render.error(f"interrupted by {signal.Signals(signum).name}")
    sys.exit(128 + signum)


def _path_error(exc: OSError, debug: bool) -> NoReturn:
    """An OS error about a path that no check before it caught (a name too long, a link loop):
    the user's path to fix, so one line and exit 2, the traceback only on --debug."""
    from cnncli.data.csvfile import path_error

    if debug:
        traceback.print_exc()
    render.error(path_error(exc.filename, exc, hint="check the path").one_line())
    sys.exit(EXIT_USER_ERROR)


def _bug(exc: Exception, debug: bool) -> NoReturn:
    """A bug: say so in one line, show the traceback on --debug, exit 1."""
    if debug:
        traceback.print_exc()
    else:
        detail = str(exc).splitlines()[0] if str(exc) else ""
        render.error(
            f"unexpected {type(exc).__name__}: {detail} (this is a bug in cnncli;"
            " rerun with --debug"
            " for the traceback and report it)"
        )
    sys.exit(EXIT_BUG)


@click.group(cls=CnnCliGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="cnncli")
@click.option("--debug", is_flag=True, help="Show tracebacks and TensorFlow's own log lines.")
@click.option(
    "-q", "--quiet", is_flag=True, help="No progress or notes on stderr; results and errors only."
)
def cli(debug: bool, quiet: bool) -> None:
    """Train Keras networks on CSV data from a YAML model spec.

    \b
    Example:
      cnncli train configs/seed.yaml
      cnncli predict --input 3,30,5
    """
    from cnncli.runtime import set_debug

    set_debug(debug)
    render.set_quiet(quiet)
    if not debug:  # --debug keeps Python's own format, with the source path
        warnings.showwarning = render.python_warning


# ---------------------------------------------------------------------------------------------
# Shared options


config_path_argument = click.argument(
    "config", type=click.Path(exists=True, dir_okay=False, path_type=Path)
)
overrides_option = click.option(
    "--set",
    "overrides",
    multiple=True,
    metavar="KEY=VALUE",
    help="Override a config value, e.g. --set fit.epochs=5 --set model.layers[0].filters=128.",
)


def config_argument(function: Callable[..., Any]) -> Callable[..., Any]:
    """CONFIG plus repeatable ``--set key=value`` and ``--print-config``."""

    @config_path_argument
    @overrides_option
    @click.option("--print-config", is_flag=True, help="Print the resolved config and exit.")
    @functools.wraps(function)
    def wrapper(config: Path, overrides: tuple[str, ...], print_config: bool, **kwargs: Any) -> Any:
        loaded = load_config(config, overrides)
        select_backend(loaded.backend)  # before anything imports Keras, which fixes its backend
        if print_config:
            import yaml

            click.echo(yaml.safe_dump(loaded.to_yaml_dict(), sort_keys=False), nl=False)
            return None
        return function(config=loaded, **kwargs)

    return wrapper


def run_argument(function: Callable[..., Any]) -> Callable[..., Any]:
    return click.argument("run", required=False, type=click.Path(file_okay=False, path_type=Path))(
        function
    )


json_option = click.option(
    "--json", "as_json", is_flag=True, help="Print one JSON object on stdout."
)
backend_option = click.option(
    "--backend",
    type=click.Choice(["auto", "onnx", "keras"]),
    default="auto",
    show_default=True,
    help="Inference engine: ONNX Runtime when the run has a checked model.onnx, else Keras.",
)


# ---------------------------------------------------------------------------------------------
# Commands


runs_output_option = click.option(
    "--output",
    type=click.Path(file_okay=False, path_type=Path),
    help="Folder for run folders (default: output.dir).",
)
resume_option = click.option(
    "--resume",
    is_flag=False,
    flag_value="",
    default=None,
    metavar="[RUN]",
    help="Continue an interrupted run from its last complete epoch (default: the newest one).",
)


@cli.command()
@config_argument
@runs_output_option
@json_option
@resume_option
@click.option(
    "--process-id",
    type=click.IntRange(min=0),
    default=None,
    help="This worker's number under distribute: data_parallel (default: CNNCLI_PROCESS_ID).",
)
def train(
    config: Any, output: Path | None, as_json: bool, resume: str | None, process_id: int | None
) -> None:
    """Train the model described by CONFIG and save it as a run folder.

    Ctrl-C (or SIGTERM) stops after the current step, keeps the last complete epoch and prints
    the command that resumes the run (exit code 130, or 143 for SIGTERM).

    \b
    Example:
      cnncli train configs/seed.yaml
      cnncli train configs/iris.yaml --set fit.epochs=5 --json
      cnncli train configs/seed.yaml --resume
      cnncli train configs/seed.yaml --set distribute.strategy=data_parallel \\
        --set distribute.num_processes=2 --process-id 1
    """
    from cnncli.train.checkpoints import TrainingInterrupted
    from cnncli.train.run import train_run  # TensorFlow loads only here

    if config.search is not None:
        render.note("this config has a search: block; train trains the base config, tune searches")
    # under distribute, process 0 shows the progress: every worker runs the same epochs
    shown = config.fit.verbose and not as_json and not process_id
    progress = render.EpochProgress() if shown else None
    try:
        result = train_run(
            config,
            output,
            on_epoch_end=progress,
            on_message=render.warning,
            resume=resume,
            process_id=process_id,
            on_lost=lambda error: render.error(error.one_line()),
        )
    except TrainingInterrupted as exc:
        if progress is not None:
            progress.close()
        render.error(exc.one_line())
        sys.exit(exc.exit_code)
    finally:
        if progress is not None:
            progress.close()
    if result.run_dir is None:  # a distributed worker other than process 0
        render.note("worker done; process 0 writes the run folder")
        return
    with _interrupts_name_the_run(result.run_dir):
        if as_json:
            render.print_json(
                {"run_dir": str(result.run_dir), "metrics": result.metrics, "seed": result.seed}
            )
            return
        render.metrics_table(result.metrics)
        click.echo(str(result.run_dir))


@cli.command()
@config_path_argument
@overrides_option
@click.option(
    "--local",
    type=click.IntRange(min=1, max=64),
    required=True,
    help="How many worker processes to start on this machine.",
)
@runs_output_option
@resume_option
@json_option
def launch(
    config: Path,
    overrides: tuple[str, ...],
    local: int,
    output: Path | None,
    resume: str | None,
    as_json: bool,
) -> None:
    """Train CONFIG with distribute: data_parallel in LOCAL worker processes of this machine.

    Each worker is `cnncli train CONFIG --process-id I`; process 0 shows the progress and writes
    the run folder. The workers meet at distribute.coordinator, CNNCLI_COORDINATOR, or a free
    port of 127.0.0.1. The exit code is the first failed worker's.

    \b
    Example:
      cnncli launch configs/seed.yaml --local 2
      cnncli launch configs/seed.yaml --local 2 --resume
    """
    from cnncli.errors import CnnCliError, Location
    from cnncli.train.launch import launch_local

    forced = ("distribute.strategy=data_parallel", f"distribute.num_processes={local}")
    loaded = load_config(config, (*overrides, *forced))  # every problem once, not once a worker

    def failed(index: int, code: int) -> None:
        if code in (128 + signal.SIGINT, 128 + signal.SIGTERM):
            return  # the worker said it was interrupted, and process 0 how to resume
        render.error(
            CnnCliError(
                f"process {index} of {local} exited with code {code}",
                where=Location(key="launch"),
                hint="see its lines above; rerun with --resume to continue the run",
            ).one_line()
        )

    sys.exit(
        launch_local(
            loaded, config, overrides, local, output, resume, on_failure=failed, as_json=as_json
        )
    )


@cli.command()
@run_argument
@click.option(
    "--data",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Evaluate on this CSV instead of the run's test split.",
)
@backend_option
@json_option
def evaluate(run: Path | None, data: Path | None, backend: str, as_json: bool) -> None:
    """Loss, metrics, per-class scores and confusion matrix of a trained RUN.

    RUN defaults to runs/latest. Without --data, the run's own test split is rebuilt exactly.

    \b
    Example:
      cnncli evaluate
      cnncli evaluate runs/iris-20261126-101500 --data data/iris.csv --json
    """
    from cnncli.serve.evaluate import evaluate_run

    result = evaluate_run(_open_run(run), data, backend)
    for text in result.notes:
        render.warning(text)
    if as_json:
        render.print_json(result.to_json())
        return
    render.evaluation(result)


@cli.command()
@run_argument
@click.option(
    "--html",
    "html_file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Also write the report as one self-contained HTML file (plots and CSS inline).",
)
@click.option("--open", "open_html", is_flag=True, help="Open the --html file in a web browser.")
@json_option
def report(run: Path | None, html_file: Path | None, open_html: bool, as_json: bool) -> None:
    """Report on a RUN: config, data, layers, metrics, per-class scores, plots and files.

    RUN defaults to runs/latest. An interrupted run (the .tmp- folder named when it stopped) is
    reported too: its epochs so far and how to resume it. --html writes one HTML file with no
    external link (images inline) that opens anywhere.

    \b
    Example:
      cnncli report
      cnncli report runs/latest --html report.html --open
      cnncli report --json
    """
    from cnncli.report.content import report_interrupted, report_run
    from cnncli.runs import MANIFEST_FILENAME, has_checkpoint, resolve_run_dir

    if open_html and html_file is None:
        raise CnnCliError("--open goes with --html", hint="give --html report.html --open")
    path = resolve_run_dir(run)
    if not (path / MANIFEST_FILENAME).is_file() and has_checkpoint(path):
        from cnncli.train.checkpoints.store import load_checkpoint

        checkpoint = load_checkpoint(path)
        result = report_interrupted(checkpoint.run, checkpoint.state)
    else:
        result = report_run(_open_run(run))
    if as_json:
        render.print_json(result.as_json())
    else:
        render.run_report(result)
    if html_file is not None:
        from cnncli.report.html import write_html

        written = write_html(result, html_file)
        render.note(f"report written to {written}")
        if open_html:
            import webbrowser

            webbrowser.open(written.resolve().as_uri())


@cli.command()
@run_argument
@click.option(
    "--input",
    "inputs",
    multiple=True,
    metavar="VALUES",
    help="One row: 3,30,5 in feature order, or x1=3,x2=30,x3=5.",
)
@click.option(
    "--input-file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="CSV of rows to predict, streamed ('-': stdin; label optional; others kept as keys).",
)
@click.option(
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    help="With --input-file: write here (CSV, or JSON for a .json name); default stdout.",
)
@click.option(
    "--skip-bad-rows",
    is_flag=True,
    help="With --input-file: report unparseable rows, predict the rest, exit 2.",
)
@backend_option
@json_option
def predict(
    run: Path | None,
    inputs: tuple[str, ...],
    input_file: Path | None,
    output: Path | None,
    skip_bad_rows: bool,
    backend: str,
    as_json: bool,
) -> None:
    """Predict labels (or values) for new rows with a trained RUN.

    RUN defaults to runs/latest. The training preprocessing is applied to every row. With
    --input-file the output has the file's key columns (or a row index), the predicted label
    and one prob_<class> column per class; a bad row stops it (exit 2) unless --skip-bad-rows.

    \b
    Example:
      cnncli predict --input 3,30,5
      cnncli predict runs/latest --input x1=3,x2=30,x3=5 --json
      cnncli predict --input-file new.csv --output predictions.csv --skip-bad-rows
    """
    # Prediction needs no BLAS (ONNX Runtime has its own kernels); OpenBLAS would start a
    # thread pool while NumPy imports, a tenth of a cold `predict --input`.
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    from cnncli.serve.predictor import Predictor
    from cnncli.serve.rows import predict_rows

    if not inputs and input_file is None:
        raise CnnCliError("nothing to predict", hint="give --input 3,30,5 or --input-file rows.csv")
    if inputs and input_file is not None:
        raise CnnCliError(
            "--input and --input-file both given", hint="predict rows or a file, one at a time"
        )
    if output is not None and input_file is None:
        raise CnnCliError(
            "--output goes with --input-file",
            hint="--input prints its predictions; redirect them with >",
        )
    # One ONNX Runtime thread: a single row gains nothing from a pool, and a file's reader
    # thread keeps the other core busy.
    predictor = Predictor(_open_run(run), backend, threads=1)
    if input_file is not None:
        from cnncli.serve.batch import predict_file

        destination = output if output is not None else sys.stdout.buffer
        summary = predict_file(
            predictor,
            input_file,
            destination,
            skip_bad_rows=skip_bad_rows,
            as_json=as_json,
            on_bad_row=lambda bad: render.warning(f"{input_file}:{bad.line}: {bad.message}"),
        )
        for text in summary.notes:
            render.warning(text)
        render.note(summary.describe())
        if summary.failed_rows:
            sys.exit(EXIT_USER_ERROR)
        return
    result = predict_rows(predictor, list(inputs))
    for text in result.warnings:
        render.warning(text)
    if as_json:
        render.print_json(result.to_json())
        return
    render.predictions(result)


@cli.command()
@run_argument
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["onnx", "saved_model", "litert"]),
    default="onnx",
    show_default=True,
    help="onnx (preprocessing in its metadata), a TensorFlow SavedModel folder, or LiteRT .tflite.",
)
@click.option(
    "--output",
    type=click.Path(path_type=Path),
    help="Where to write (default: <run name>.onnx, .saved_model or .tflite here); must not exist.",
)
@click.option(
    "--with-preprocessing",
    is_flag=True,
    help="ONNX only: the graph itself scales, one-hot encodes and decodes: one input per column"
    " (raw values), label and probabilities out.",
)
@json_option
def export(
    run: Path | None, fmt: str, output: Path | None, with_preprocessing: bool, as_json: bool
) -> None:
    """Export a trained RUN for serving elsewhere, with its preprocessing.

    RUN defaults to runs/latest. The ONNX file carries preprocess.json (means, scales,
    categories, classes) and a plain-words recipe in its metadata_props (cnncli.preprocess,
    cnncli.recipe), so a client in any language can rebuild the inputs; with
    --with-preprocessing the graph does it itself and needs nothing but ONNX Runtime. A
    SavedModel folder or a .tflite file gets a preprocess.json beside it. Prints the paths
    written.

    \b
    Example:
      cnncli export --format onnx --output seed.onnx
      cnncli export --format onnx --with-preprocessing --output seed-pipeline.onnx
      cnncli export runs/latest --format litert --output seed.tflite
    """
    from cnncli.serve.export import export_run

    paths = export_run(_open_run(run), fmt, output, with_preprocessing)
    if as_json:
        render.print_json({"format": fmt, "files": [str(path) for path in paths]})
        return
    for path in paths:
        click.echo(str(path))


@cli.command()
@run_argument
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", type=click.IntRange(0, 65535), default=8000, help="Port (0: a free one).")
@click.option("--workers", type=click.IntRange(1, 64), default=1, help="Server processes.")
@click.option(
    "--max-body",
    type=click.IntRange(1),
    default=16 << 20,
    metavar="BYTES",
    help="Largest request body (16 MB); more is refused with 413.",
)
@click.option(
    "--max-rows",
    type=click.IntRange(1),
    default=100_000,
    help="Most rows in one JSON request (100,000); more is refused with 413.",
)
@click.option(
    "--timeout",
    type=Seconds(),
    default=30.0,
    metavar="SECONDS",
    help="Longest a request may take (30; 503 after), and the bound on finishing at SIGTERM.",
)
@click.option(
    "--token",
    envvar="CNNCLI_SERVE_TOKEN",
    help="Require 'Authorization: Bearer TOKEN' on every path but /health"
    " (or set CNNCLI_SERVE_TOKEN).",
)
@click.option("--quiet", is_flag=True, help="No JSON access-log line per request on stderr.")
def serve(
    run: Path | None,
    host: str,
    port: int,
    workers: int,
    max_body: int,
    max_rows: int,
    timeout: float,
    token: str | None,
    quiet: bool,
) -> None:
    """Serve a trained RUN over HTTP: POST /predict (JSON), /predict/csv, GET /health,
    /metadata, /metrics and /docs.

    RUN defaults to runs/latest; it is checked as predict checks it before the port opens.
    Answers equal cnncli predict's. SIGTERM finishes the requests in flight and exits 0.

    \b
    Example:
      cnncli serve runs/latest --port 8000
      curl -s localhost:8000/predict -d '{"rows": [[3, 30, 5]]}'
      curl -s localhost:8000/predict/csv --data-binary @new.csv -H 'Content-Type: text/csv'
    """
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # as predict: ONNX Runtime needs no BLAS
    from cnncli.serve.http import ServeSettings, require_server_libraries
    from cnncli.serve.http import serve as run_server

    require_server_libraries()
    if token is not None and not token.strip():
        raise CnnCliError(
            "the token is empty",
            where=Location(file="--token"),
            hint="give a secret, or leave --token and CNNCLI_SERVE_TOKEN unset",
        )
    folder = _open_run(run)
    settings = ServeSettings(
        run=str(folder.path),
        host=host,
        port=port,
        workers=workers,
        max_body=max_body,
        max_rows=max_rows,
        timeout=timeout,
        token=token,
        quiet=quiet,
    )
    serving: list[str] = []

    def ready(url: str) -> None:
        serving.append(url)
        render.note(f"serving {folder.path.name} on {url}")

    received: list[int] = click.get_current_context().meta.get(_SIGNALS_RECEIVED, [])
    try:
        run_server(settings, on_ready=ready, run=folder)
    except KeyboardInterrupt:
        # uvicorn finished the requests in flight, then handed the signal back. SIGTERM is how
        # a service is stopped: a clean exit once it served; SIGINT stays an interrupt (130).
        if not (serving and received and received[-1] == signal.SIGTERM):
            raise
        received.clear()


@cli.command()
@config_argument
@json_option
def summary(config: Any, as_json: bool) -> None:
    """Show CONFIG's layer stack with output shapes and parameter counts (no training).

    \b
    Example:
      cnncli summary configs/seed.yaml
      cnncli summary configs/seed.yaml --set model.layers[0].filters=128 --json
    """
    from cnncli.train.check import summarize_config

    report = summarize_config(config)
    for text in report.columns.warnings:
        render.warning(text)
    if as_json:
        render.print_json(
            {
                "name": config.name,
                "description": report.description,
                "input_shape": list(report.input_shape),
                "layers": report.layers,
                "parameters": sum(layer["params"] for layer in report.layers),
                "columns": list(report.columns.lines),
            }
        )
        return
    render.column_lines(report.columns.lines)
    render.layers_table(
        report.layers, report.input_shape, title=f"{config.name}: {report.description}"
    )


@cli.command()
@config_argument
@json_option
def validate(config: Any, as_json: bool) -> None:
    """Check CONFIG without training: schema, names, data columns, shapes, head and loss.

    Exits 0 with "ok" and the layer table, or 2 with every problem found, one per line.

    \b
    Example:
      cnncli validate configs/seed.yaml
      cnncli validate configs/seed.yaml --set model.layers[1].pool_size=4
    """
    from cnncli.train.check import summarize_config

    report = summarize_config(config)
    if config.search is not None:
        from cnncli.tune.study import check_search

        check_search(config)
    for text in report.columns.warnings:
        render.warning(text)
    if as_json:
        render.print_json(
            {
                "ok": True,
                "input_shape": list(report.input_shape),
                "layers": report.layers,
                "columns": list(report.columns.lines),
                "warnings": list(report.columns.warnings),
            }
        )
        return
    click.echo(f"ok: {config.name}: {report.description}")
    render.column_lines(report.columns.lines)
    render.layers_table(report.layers, report.input_shape, title=config.name)


@cli.command()
@click.argument(
    "config", required=False, type=click.Path(exists=True, dir_okay=False, path_type=Path)
)
@click.option(
    "--trials", type=click.IntRange(min=1, max=100_000), help="Trials the study ends with."
)
@click.option("--timeout", type=Seconds(), help="Seconds; then no new trial.")
@click.option(
    "--storage", metavar="URL", help="Optuna RDB URL (default runs/<name>-tune/study.db)."
)
@click.option("--study", "study_name", metavar="NAME", help="Study name (default: the config's).")
@click.option(
    "--set", "overrides", multiple=True, metavar="KEY=VALUE", help="Override a config value."
)
@click.option(
    "--report",
    type=click.Path(file_okay=False, path_type=Path),
    help="Print a tune folder's trials table again.",
)
@json_option
def tune(
    config: Path | None,
    trials: int | None,
    timeout: float | None,
    storage: str | None,
    study_name: str | None,
    overrides: tuple[str, ...],
    report: Path | None,
    as_json: bool,
) -> None:
    """Search CONFIG's search: space with Optuna; write best.yaml, trials.csv and the best run.

    Trials are scored on a validation part of the training rows and pruned early when hopeless.
    Stopped (Ctrl-C, SIGTERM, even SIGKILL), the same command continues; with a shared
    --storage, the same command on several machines works on one study.

    \b
    Example:
      cnncli tune configs/seed_tune.yaml
      cnncli tune configs/seed_tune.yaml --trials 40 --storage postgresql://tune@db/studies
      cnncli tune --report runs/seed-tune
    """
    if report is not None:
        from cnncli.tune.results import read_importance, read_trials

        keys, rows = read_trials(report)
        if as_json:
            render.print_json({"trials": rows, "importance": read_importance(report)})
            return
        render.trials_table(keys, rows, title=str(report))
        return
    if config is None:
        raise click.UsageError("give a CONFIG with a search: block, or --report FOLDER")
    loaded = load_config(config, overrides)
    select_backend(loaded.backend)
    from cnncli.train.checkpoints import TrainingInterrupted
    from cnncli.tune.study import run_tune

    table = render.TrialTable() if not as_json else None
    try:
        result = run_tune(
            loaded,
            trials=trials,
            timeout=timeout,
            storage=storage,
            study_name=study_name,
            on_trial=table,
            on_message=render.note,
        )
    except (KeyboardInterrupt, TrainingInterrupted) as exc:  # the latter: training the best run
        received = click.get_current_context().meta.get(_SIGNALS_RECEIVED) or [signal.SIGINT]
        signum = exc.signum if isinstance(exc, TrainingInterrupted) else received[0]
        render.error(
            f"tune interrupted by {signal.Signals(signum).name}; finished trials are kept:"
            " run the same command to continue"
        )
        sys.exit(128 + signum)
    finally:
        if table is not None:
            table.close()
    summary = {
        "folder": str(result.folder),
        "study": result.study,
        "storage": result.storage,
        "metric": result.metric,
        "direction": result.direction,
        "best": result.best,
        "best_yaml": str(result.best_yaml) if result.best_yaml else None,
        "run_dir": str(result.run_dir) if result.run_dir else None,
        "states": {s: sum(r["state"] == s for r in result.rows) for s in ("COMPLETE", "PRUNED")},
        "importance": result.importance,
    }
    if as_json:
        render.print_json({**summary, "trials": result.rows})
        return
    render.tune_summary(summary)


@cli.command()
def schema() -> None:
    """Print the JSON Schema of a config, for editors and CI.

    \b
    Example:
      cnncli schema > cnncli.schema.json
    """
    from cnncli.config.schema import config_json_schema

    render.print_json(config_json_schema())


@cli.command()
@click.argument("data", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--label", help="The label column (default: the last column).")
@click.option(
    "--task",
    type=click.Choice(["classification", "regression"]),
    help="What to predict (default: inferred from the label).",
)
@click.option(
    "-m",
    "--model",
    type=click.Choice(["dense", "conv1d", "conv2d"]),
    default="dense",
    help="The layer stack: dense (default), conv1d (the features as a sequence) or conv2d (a"
    " square image).",
)
@click.option("--force", is_flag=True, help="Replace the output file if it exists.")
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    help="The config to write (default: <DATA name>.yaml here).",
)
@click.option("--delimiter", help="The file's delimiter (default: , ; tab or |, from the header).")
@json_option
def init(
    data: Path,
    label: str | None,
    task: str | None,
    model: str,
    output: Path | None,
    delimiter: str | None,
    force: bool,
    as_json: bool,
) -> None:
    """Write a commented config for the CSV file DATA that validates and trains as written.

    Reads the header and a sample: numeric and text columns, the label (the last column unless
    --label), the task, classes, empty cells and a policy for them, and the ID-like, free-text
    and constant columns to leave out, each with a comment saying why.

    \b
    Example:
      cnncli init my.csv -o my.yaml
      cnncli init data/digits.csv --label digit --model conv2d -o digits.yaml --force
    """
    from cnncli.starter import (
        check_config_text,
        config_target,
        inspect_csv,
        render_config,
        write_config,
    )

    output = output if output is not None else Path(f"{data.stem or 'config'}.yaml")
    target = config_target(output, data, force=force)
    starter = inspect_csv(data, label=label, task=task, model=model, delimiter=delimiter)
    text = render_config(starter, target)
    check_config_text(text, target)
    write_config(text, target)
    if as_json:
        render.print_json(
            {
                "config": str(output),
                "label": starter.label,
                "task": starter.task,
                "features": starter.features,
                "columns": starter.columns,
                "missing": starter.missing,
                "classes": starter.classes,
            }
        )
        return
    for name, why in starter.reasons.items():
        render.note(f"{name}: {starter.columns[name]} ({why})")
    click.echo(str(output))


@cli.command()
@click.argument("folder", required=False, type=click.Path(path_type=Path), default=Path("runs"))
@click.option("--sort", "metric", metavar="METRIC", help="Best first by this test metric.")
@click.option("--limit", type=click.IntRange(min=1), help="Show at most this many runs.")
@json_option
def runs(folder: Path, metric: str | None, limit: int | None, as_json: bool) -> None:
    """List the runs in FOLDER (default: runs), newest first, complete and interrupted.

    One line per run: name, when it started, task, rows, epochs run, backend, test metrics and
    status (complete, or interrupted and resumable with cnncli train CONFIG --resume RUN).

    \b
    Example:
      cnncli runs
      cnncli runs runs --sort accuracy --limit 5 --json
    """
    from cnncli.report.history import list_runs

    found = list_runs(folder, metric, limit)
    if as_json:
        render.print_json([run.to_json() for run in found])
        return
    render.runs_table(found)


@cli.command()
@click.argument("run_paths", nargs=-1, metavar="RUN RUN...", type=click.Path(path_type=Path))
@click.option(
    "--plot",
    type=click.Path(dir_okay=False, path_type=Path),
    default=Path("compare.png"),
    show_default=True,
    help="Where to write the overlaid learning curves (PNG).",
)
@click.option("--no-plot", is_flag=True, help="Compare configs and metrics only.")
@json_option
def compare(run_paths: tuple[Path, ...], plot: Path, no_plot: bool, as_json: bool) -> None:
    """Compare complete runs: the config keys that differ, test metrics side by side, and the
    learning curves overlaid into one PNG.

    \b
    Example:
      cnncli compare runs/seed-20261201-101500 runs/seed-20261201-103000
      cnncli compare runs/a runs/b --plot curves.png --json
    """
    from cnncli.report.compare import compare_runs, write_curves

    result = compare_runs(list(run_paths))
    written = None if no_plot else write_curves(result, plot)
    if as_json:
        render.print_json({**result.to_json(), "plot": None if written is None else str(written)})
        return
    render.comparison(result)
    if written is not None:
        render.note(f"learning curves: {written}")


def main() -> None:
    """The ``cnncli`` program (console script and ``python -m cnncli``): ``cli``, where a signal
    after a command succeeded no longer kills the exiting process without a line.

    ``cli`` alone, as tests invoke it, leaves the process's signal handlers as they were.
    """
    CnnCliGroup.exits_quietly = True
    try:
        cli()
    except SystemExit as exc:
        if exc.code not in (0, None) and "jax" in sys.modules:  # a distributed worker failed
            from cnncli.train.distribute import leave_after_failure

            leave_after_failure(exc.code if isinstance(exc.code, int) else 1)
        raise
