"""Predict every row of a CSV file in chunks: read, preprocess, infer, write, in flat memory.

The file is cut into blocks of whole lines (a quoted field may span lines; a block never ends
inside one). A background thread parses the next block with pandas' C reader, using the
training reader's options, while the main thread runs the model on the current one and writes
it, so both cores stay busy. A block that does not parse cleanly goes through ``csv`` line by
line instead, which names every bad line; only its good rows go on, through the same parser,
so they get bit-for-bit the numbers training would have read.

``batch_write`` writes the predictions (CSV through ``csvformat``'s NumPy formatter, or JSON).
TensorFlow is never imported here.
"""

from __future__ import annotations

import contextlib
import csv
import io
import queue
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import numpy as np

from cnncli.data import csvfile
from cnncli.data.cells import (
    NA_STRINGS,
    cell_problem,
    empty_allowed,
    parse_dates,
    usable_numbers,
)
from cnncli.data.csvfile import check_header, line_too_long, require_regular_file
from cnncli.data.prefetch import Prefetch
from cnncli.data.preprocess import (
    Preprocessor,
)
from cnncli.errors import CnnCliError, Location
from cnncli.serve.batch_write import (
    LABEL_COLUMN,
    PROBABILITY_PREFIX,
    ROW_COLUMN,
    CsvWriter,
    JsonWriter,
    open_output,
)
from cnncli.serve.predictor import Predictor, Surprises, model_inputs

#: Bytes of input per chunk: about 200,000 rows of the seed data, a few MB of memory per stage.
CHUNK_BYTES = 4 << 20
#: ``--input-file -`` reads standard input.
STDIN = "-"
#: Bad rows listed one by one in the summary; the count covers the rest.
MAX_LISTED = 20

BadRowCallback = Callable[["BadRow"], None]


@dataclass(frozen=True)
class BadRow:
    """A row that could not be predicted: where it is and why."""

    line: int
    message: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.message}"


@dataclass
class BatchSummary:
    """What ``predict_file`` did, for the one line the CLI prints at the end."""

    source: str
    destination: str
    backend: str = ""
    rows: int = 0
    failed_rows: int = 0
    bad_rows: list[BadRow] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def rows_per_second(self) -> float:
        return self.rows / self.seconds if self.seconds > 0 else 0.0

    def describe(self) -> str:
        text = f"{self.rows:,} row(s) predicted → {self.destination} in {self.seconds:.2f} s"
        if self.rows:
            text += f" ({self.rows_per_second:,.0f} rows/s)"
        if self.failed_rows:
            lines = ", ".join(str(bad.line) for bad in self.bad_rows[:5])
            more = f" and {self.failed_rows - 5} more" if self.failed_rows > 5 else ""
            text += f"; {self.failed_rows:,} bad row(s) skipped (line {lines}{more})"
        return text


@dataclass(frozen=True)
class Layout:
    """Which columns of the input file feed the model and which are passed through as keys."""

    header: tuple[str, ...]
    numeric: tuple[str, ...]
    categorical: tuple[str, ...]
    keys: tuple[str, ...]
    delimiter: str
    may_be_empty: frozenset[str]  # features whose empty cells the run takes (missing: mean)
    dates: tuple[str, ...] = ()  # read as text, parsed by the cell rules into days

    @property
    def features(self) -> tuple[str, ...]:
        return self.numeric + self.categorical + self.dates


@dataclass
class Chunk:
    """The good rows of one block, as raw columns, plus its bad rows."""

    ordinals: np.ndarray  # 0-based data-row number of each good row in the file
    columns: dict[str, np.ndarray]
    keys: dict[str, list[str]]
    bad: list[BadRow]

    def __len__(self) -> int:
        return len(self.ordinals)


# ---------------------------------------------------------------------------------------------
# The entry point


def predict_file(
    predictor: Predictor,
    input_file: Path,
    output: Path | IO[bytes],
    *,
    skip_bad_rows: bool = False,
    as_json: bool = False,
    on_bad_row: BadRowCallback | None = None,
) -> BatchSummary:
    """Predict every row of ``input_file`` and stream the predictions to ``output``.

    Args:
        predictor: a loaded model and its preprocessing.
        input_file: a CSV with (at least) the model's feature columns; a label column is ignored
            and any other column is copied to the output as a key (else a ``row`` index is).
        output: a file path (written to a temporary file and renamed when complete; ``.json``
            means JSON) or a binary stream such as stdout.
        skip_bad_rows: report unparseable rows and go on, instead of stopping at the first.
        as_json: write one JSON object instead of CSV.
        on_bad_row: called with each of the first ``MAX_LISTED`` bad rows as it is found.

    Returns:
        A summary; ``failed_rows`` > 0 means some rows were skipped.

    Raises:
        CnnCliError: the file is missing or lacks a feature column, or (without
            ``skip_bad_rows``) a row cannot be parsed.
    """
    started = time.perf_counter()
    pre = predictor.preprocessor
    is_path = isinstance(output, Path)
    as_json = as_json or (is_path and output.suffix.lower() == ".json")  # type: ignore[union-attr]
    summary = BatchSummary(
        source=str(input_file),
        destination=str(output) if is_path else "stdout",
        backend=predictor.backend,
    )
    with _open_input(input_file) as handle:
        layout = read_layout(handle, input_file, pre, predictor.run.config)
        writer_type = JsonWriter if as_json else CsvWriter
        with open_output(output, input_file) as stream:
            writer = writer_type(stream, layout, pre.label)
            writer.start()
            surprises = Surprises(pre)
            with _in_background(writer.write) as write:  # formats chunk n while n+1 is inferred
                with Prefetch(parse_blocks(handle, layout, str(input_file))) as chunks:
                    for chunk in chunks:
                        _record_bad_rows(chunk.bad, summary, skip_bad_rows, on_bad_row)
                        if len(chunk):
                            surprises.add(chunk.columns)
                            write(chunk, predictor.outputs(model_inputs(pre, chunk.columns)))
                            summary.rows += len(chunk)
            summary.notes.extend(surprises.notes())
            summary.seconds = time.perf_counter() - started
            writer.finish(summary)
    summary.seconds = time.perf_counter() - started
    return summary


def _record_bad_rows(
    bad_rows: list[BadRow],
    summary: BatchSummary,
    skip_bad_rows: bool,
    on_bad_row: BadRowCallback | None,
) -> None:
    """Count and list bad rows, or stop at the first one."""
    for bad in bad_rows:
        if not skip_bad_rows:
            raise CnnCliError(
                bad.message,
                where=Location(file=summary.source, line=bad.line),
                hint="fix that row, or pass --skip-bad-rows to predict the other rows",
            )
        summary.failed_rows += 1
        if len(summary.bad_rows) < MAX_LISTED:
            summary.bad_rows.append(bad)
            if on_bad_row is not None:
                on_bad_row(bad)


# ---------------------------------------------------------------------------------------------
# Reading


@contextlib.contextmanager
def _open_input(path: Path) -> Iterator[IO[bytes]]:
    """The file to predict: a regular file, a pipe, or standard input for ``-``."""
    if str(path) == STDIN:
        yield sys.stdin.buffer
        return
    require_regular_file(path, stream_ok=True)  # read once, so a pipe streams
    try:
        handle = path.open("rb")
    except FileNotFoundError:
        raise CnnCliError(
            "input file not found", where=Location(file=str(path)), hint="check the path"
        ) from None
    except OSError as exc:
        raise CnnCliError(f"cannot read: {exc.strerror}", where=Location(file=str(path))) from None
    with handle:
        yield handle


def read_layout(handle: IO[bytes], path: Path, pre: Preprocessor, config: dict[str, Any]) -> Layout:
    """Read the header line and sort its columns into features, the label and keys.

    Raises:
        CnnCliError: empty file, duplicate or missing feature columns.
    """
    data = config.get("data") or {}
    delimiter = str(data.get("delimiter") or ",")
    line = _read_record(handle, source=str(path))
    try:
        text = line.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise CnnCliError(
            "the header is not UTF-8 text",
            where=Location(file=str(path), line=1),
            hint="re-save the CSV as UTF-8",
        ) from None
    try:
        cells = next(csv.reader([text], delimiter=delimiter), [])
    except csv.Error:  # a lone carriage return ends no line here: the whole file was one record
        raise CnnCliError(
            "the header line holds a carriage return (\\r) that ends no line: lines must end"
            " in \\n or \\r\\n",
            where=Location(file=str(path), line=1),
            hint="convert the line endings, e.g. tr '\\r' '\\n' < old.csv > new.csv",
        ) from None
    names = pre.feature_names
    header = tuple(check_header(cells, path, delimiter, unnamed_ok=True, known=names))
    missing = [name for name in names if name not in header]
    if missing:
        raise CnnCliError(
            f"missing feature column(s) {', '.join(missing)}",
            where=Location(file=str(path), line=1),
            hint=f"the model expects {len(names)} feature(s): {', '.join(names)}",
        )
    keys = tuple(name for name in header if name not in names and name != pre.label.name)
    outputs = {LABEL_COLUMN, ROW_COLUMN} | {PROBABILITY_PREFIX + str(c) for c in pre.label.classes}
    clash = [name for name in keys if name in outputs]
    if clash:
        raise CnnCliError(
            f"column(s) {', '.join(clash)} would clash with the prediction columns",
            where=Location(file=str(path), line=1),
            hint="rename them in the input file",
        )
    return Layout(
        header=header,
        numeric=tuple(f.name for f in pre.features if f.kind == "numeric"),
        categorical=tuple(f.name for f in pre.features if f.kind == "categorical"),
        keys=keys,
        delimiter=delimiter,
        may_be_empty=empty_allowed(pre, data.get("missing", "error")),
        dates=tuple(f.name for f in pre.features if f.kind == "date"),
    )


def _read_record(handle: IO[bytes], start: bytes = b"", *, source: str, line: int = 1) -> bytes:
    """``start`` completed to the end of its line, and on while a quoted field is open.

    Raises:
        CnnCliError: the record grows past ``csvfile.MAX_LINE_CHARS`` bytes (``/dev/zero`` through a
            pipe, a file without line breaks); ``line`` is where it started, for the message.
    """
    limit = csvfile.MAX_LINE_CHARS
    record = start + handle.readline(limit + 1)
    quotes = record.count(b'"')
    while quotes % 2 or not record.endswith(b"\n"):
        if len(record) - len(start) > limit:
            raise line_too_long(source, line + start.count(b"\n"))
        more = handle.readline(limit + 1)
        if not more:
            break
        record += more
        quotes += more.count(b'"')
    return record


def _blocks(handle: IO[bytes], source: str) -> Iterator[tuple[int, bytes]]:
    """(first line number, bytes) of whole-line blocks; line 1 is the header."""
    line = 2
    while True:
        block = handle.read(CHUNK_BYTES)
        if not block:
            return
        block = _read_record(handle, block, source=source, line=line)
        yield line, block
        line += block.count(b"\n")


def parse_blocks(handle: IO[bytes], layout: Layout, source: str = "input") -> Iterator[Chunk]:
    """Parse the rest of the file block by block into ``Chunk``s (``source`` names it)."""
    first_row = 0
    for line, block in _blocks(handle, source):
        chunk = _parse_fast(block, layout, first_row)
        if chunk is None:
            chunk = _parse_carefully(block, layout, line, first_row)
        first_row += len(chunk) + len(chunk.bad)
        yield chunk


def _read_frame(block: bytes, layout: Layout) -> Any:
    """pandas' C parser with the training reader's options; raises on malformed rows."""
    import pandas as pd

    dtypes: dict[str, Any] = {name: np.float64 for name in layout.numeric}
    dtypes.update({name: str for name in layout.categorical + layout.dates + layout.keys})
    na_values = {name: sorted(NA_STRINGS) for name in layout.features}
    return pd.read_csv(
        io.BytesIO(block),
        header=None,
        names=list(layout.header),
        usecols=list(layout.features + layout.keys),
        dtype=dtypes,
        sep=layout.delimiter,
        skipinitialspace=True,
        keep_default_na=False,
        na_values=na_values,
        encoding="utf-8",
        engine="c",
    )


def _parse_fast(block: bytes, layout: Layout, first_row: int) -> Chunk | None:
    """The whole block through pandas, or None if any row needs a closer look."""
    try:
        frame = _read_frame(block, layout)
    except (ValueError, UnicodeDecodeError):  # pandas' ParserError is a ValueError
        return None
    # pandas pads a short row with empty cells and, reading only some columns, drops a long
    # row's extra cells without a word: count every row's cells.
    counts = _cell_counts(block, layout.delimiter)
    if len(counts) != len(frame) or bool((counts != len(layout.header)).any()):
        return None
    columns, keys, ok = _columns(frame, layout)
    if not ok:
        return None
    return Chunk(np.arange(first_row, first_row + len(frame)), columns, keys, [])


def _cell_counts(block: bytes, delimiter: str) -> np.ndarray:
    """Cells in each non-blank record of ``block``, quotes respected, without a loop per row."""
    data = np.frombuffer(block, dtype=np.uint8)
    separator = data == ord(delimiter)
    newline = data == ord("\n")
    if b'"' in block:  # inside quotes (an odd number of quotes so far) nothing separates
        outside = np.cumsum(data == ord('"'), dtype=np.uint32) % 2 == 0
        separator &= outside
        newline &= outside
    ends = np.flatnonzero(newline)
    if data.size and data[-1] != ord("\n"):
        ends = np.append(ends, data.size)
    starts = np.concatenate([[0], ends[:-1] + 1]).astype(np.int64)
    positions = np.flatnonzero(separator)
    counts = np.diff(np.searchsorted(positions, ends), prepend=0) + 1  # none on a line end
    width = ends - starts
    first = data[np.minimum(starts, max(data.size - 1, 0))] if data.size else starts
    blank = (width == 0) | ((width == 1) & (first == ord("\r")))
    return counts[~blank]


def _columns(
    frame: Any, layout: Layout
) -> tuple[dict[str, np.ndarray], dict[str, list[str]], bool]:
    """Feature arrays as training builds them, keys as text, and whether every row is usable."""
    ok = True
    columns: dict[str, np.ndarray] = {}
    for name in layout.numeric:
        values = frame[name].to_numpy(dtype=np.float64, na_value=np.nan)
        ok = ok and bool(usable_numbers(values, name in layout.may_be_empty).all())
        columns[name] = values
    for name in layout.categorical:
        series = frame[name]
        ok = ok and (name in layout.may_be_empty or not bool(series.isna().any()))
        columns[name] = series.astype(str).to_numpy()
    for name in layout.dates:
        series = frame[name]
        days = parse_dates(series.to_numpy(dtype=object))
        empty = series.isna().to_numpy()
        ok = ok and bool((~np.isnan(days) | (empty & (name in layout.may_be_empty))).all())
        columns[name] = days
    keys = {}
    for name in layout.keys:
        series = frame[name]
        ok = ok and not bool(series.isna().any())  # a key is NaN only where the row was short
        keys[name] = series.tolist()
    return columns, keys, ok


def _parse_carefully(block: bytes, layout: Layout, line: int, first_row: int) -> Chunk:
    """Check each row with ``csv``; parse the good ones with pandas, name the bad ones."""
    text = block.decode("utf-8", errors="surrogateescape")
    reader = csv.reader(
        io.StringIO(text, newline=""), delimiter=layout.delimiter, skipinitialspace=True
    )
    good = io.StringIO()
    writer = csv.writer(good, delimiter=layout.delimiter, lineterminator="\n")
    ordinals, bad = [], []
    row, done = first_row, 0
    index = {name: layout.header.index(name) for name in layout.features}
    for cells in reader:
        start, done = line + done, reader.line_num
        if not cells:  # a blank line is no row, as in pandas
            continue
        problem = _row_problem(cells, layout, index)
        if problem:
            bad.append(BadRow(start, problem))
        else:
            writer.writerow(cells)
            ordinals.append(row)
        row += 1
    if not ordinals:
        return Chunk(
            np.zeros(0, dtype=np.int64), _empty_columns(layout), {k: [] for k in layout.keys}, bad
        )
    columns, keys, ok = _columns(_read_frame(good.getvalue().encode(), layout), layout)
    if not ok:  # pragma: no cover - _row_problem accepts only rows pandas reads cleanly
        raise RuntimeError("a row passed the line-by-line check but not pandas")
    return Chunk(np.asarray(ordinals, dtype=np.int64), columns, keys, bad)


def _row_problem(cells: list[str], layout: Layout, index: dict[str, int]) -> str | None:
    """Why one row cannot be predicted, or None."""
    if len(cells) != len(layout.header):
        return f"expected {len(layout.header)} cells, got {len(cells)}"
    try:
        "\x1f".join(cells).encode("utf-8")
    except UnicodeEncodeError:
        return "not UTF-8 text"
    for name in layout.features:
        problem = cell_problem(
            name,
            cells[index[name]],
            numeric=name in layout.numeric,
            may_be_empty=name in layout.may_be_empty,
            date=name in layout.dates,
        )
        if problem:
            return problem
    return None


def _empty_columns(layout: Layout) -> dict[str, np.ndarray]:
    columns = {name: np.zeros(0) for name in layout.numeric + layout.dates}
    columns.update({name: np.zeros(0, dtype=object) for name in layout.categorical})
    return columns


@contextlib.contextmanager
def _in_background(function: Callable[..., None], depth: int = 2) -> Iterator[Callable[..., None]]:
    """Call ``function`` in a background thread, in order; yields ``submit(*args)``.

    A failure in ``function`` is raised by the next ``submit`` or at the end of the block.
    """
    calls: queue.Queue[Any] = queue.Queue(maxsize=depth)
    failures: list[BaseException] = []

    def work() -> None:
        while (args := calls.get()) is not None:
            if not failures:
                try:
                    function(*args)
                except BaseException as exc:  # noqa: BLE001 - handed to the submitting thread
                    failures.append(exc)

    def submit(*args: Any) -> None:
        if failures:
            raise failures[0]
        calls.put(args)

    thread = threading.Thread(target=work, name="cnncli-write", daemon=True)
    thread.start()
    try:
        yield submit
    finally:
        calls.put(None)
        thread.join()
    if failures:
        raise failures[0]
