"""Write ``predict --input-file`` results: CSV or one JSON object, to a file or a stream.

A file is written through ``open_atomic`` (temporary file, fsync, rename), so a reader never sees
half of it. The CSV rows come from ``csvformat``'s NumPy formatter.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import numpy as np

from cnncli.data.preprocess import LabelTransform
from cnncli.errors import CnnCliError, Location
from cnncli.runs import open_atomic, output_target
from cnncli.serve.csvformat import (
    Cells,
    TextTable,
    csv_cell,
    fixed_cells,
    integer_cells,
    join_rows,
    text_cells,
)
from cnncli.serve.predictor import decode, labels_of

if TYPE_CHECKING:  # batch imports this module for the writers
    from cnncli.serve.batch import BatchSummary, Chunk, Layout

PROBABILITY_DECIMALS = 6
ROW_COLUMN = "row"
LABEL_COLUMN = "predicted"
PROBABILITY_PREFIX = "prob_"


@contextlib.contextmanager
def open_output(
    output: Path | IO[bytes], input_file: Path, option: str = "--output"
) -> Iterator[IO[bytes]]:
    """A stream as is, or a temporary file beside ``output`` renamed over it on success.

    An existing special file (a device, a FIFO) is written to directly: renaming over it would
    replace it with a regular file. A symbolic link is followed (``runs.output_target``).
    ``option`` names the option the path came from (``--html``), for the hint.

    Raises:
        CnnCliError: ``output`` is the input file, a dangling link, or cannot be created.
    """
    if not isinstance(output, Path):
        yield output
        output.flush()
        return
    output = output_target(output)
    if output.resolve() == input_file.resolve():
        raise CnnCliError(
            "--output is the input file",
            where=Location(file=str(output)),
            hint="write the predictions elsewhere",
        )
    if output.exists() and not output.is_file():  # /dev/full, a FIFO: write, never replace
        try:
            special = output.open("wb")
        except OSError as exc:
            raise cannot_write(output, exc, option) from None
        try:
            with special:
                yield special
                special.flush()
        except OSError as exc:  # a full disk or device while writing: the user's to fix
            raise cannot_write(output, exc, option) from None
        return
    atomic = open_atomic(output, buffering=1 << 20)
    try:
        stream = atomic.__enter__()
    except OSError as exc:
        raise cannot_write(output, exc, option) from None
    try:
        with contextlib.ExitStack() as stack:  # entered above, so creation errors get a message
            stack.push(atomic)
            yield stream
    except OSError as exc:  # a full disk while writing or at fsync; open_atomic removed the rest
        raise cannot_write(output, exc, option) from None


def cannot_write(output: Path, exc: OSError, option: str = "--output") -> CnnCliError:
    """The one line for a write error at ``output`` (read-only folder, full disk, a device)."""
    # open_atomic's temporary file beside it: a folder such as /proc/self holds no new files
    temporary = (  # not a rename (filename2): the temporary file could not be created
        exc.filename is not None and exc.filename2 is None and Path(exc.filename) != output
    )
    what = f"cannot create a file in {output.parent}" if temporary else "cannot write there"
    problem = f"{what}: {exc.strerror}"
    return CnnCliError(problem, where=Location(file=str(output)), hint=f"choose another {option}")


class Writer:
    """Writes a header, then each chunk's predictions, then what follows the rows."""

    def __init__(self, stream: IO[bytes], layout: Layout, label: LabelTransform) -> None:
        self.stream = stream
        self.layout = layout
        self.label = label

    def start(self) -> None:
        """Write what comes before the first row."""

    def write(self, chunk: Chunk, outputs: np.ndarray) -> None:
        """Write the predictions of one chunk's rows."""
        raise NotImplementedError

    def finish(self, summary: BatchSummary) -> None:
        """Write what follows the last row (nothing for CSV)."""


class CsvWriter(Writer):
    """Keys (or ``row``), ``predicted`` and one ``prob_<class>`` column per class."""

    def __init__(self, stream: IO[bytes], layout: Layout, label: LabelTransform) -> None:
        super().__init__(stream, layout, label)
        self.classes = TextTable([csv_cell(str(c)) for c in label.classes])

    def start(self) -> None:
        names = list(self.layout.keys or (ROW_COLUMN,)) + [LABEL_COLUMN]
        if self.label.is_classification:
            names += [PROBABILITY_PREFIX + str(c) for c in self.label.classes]
        self.stream.write((",".join(csv_cell(name) for name in names) + "\n").encode())

    def write(self, chunk: Chunk, outputs: np.ndarray) -> None:
        predicted, probabilities = decode(self.label, outputs)
        cells: list[Cells] = []
        if self.layout.keys:
            cells += [
                text_cells([csv_cell(str(v)) for v in chunk.keys[k]]) for k in self.layout.keys
            ]
        else:
            cells.append(integer_cells(chunk.ordinals))
        if probabilities is None:
            cells.append(text_cells([repr(v) for v in predicted.tolist()]))
        else:
            cells.append(self.classes.cells(predicted))
            cells += [
                fixed_cells(probabilities[:, k], PROBABILITY_DECIMALS)
                for k in range(probabilities.shape[1])
            ]
        self.stream.write(join_rows(cells))


class JsonWriter(Writer):
    """One JSON object: ``predictions`` (streamed), then the counts and the bad rows."""

    def __init__(self, stream: IO[bytes], layout: Layout, label: LabelTransform) -> None:
        super().__init__(stream, layout, label)
        self.first = True

    def start(self) -> None:
        self.stream.write(b'{"predictions": [')

    def write(self, chunk: Chunk, outputs: np.ndarray) -> None:
        predicted, probabilities = decode(self.label, outputs)
        classes = [str(c) for c in self.label.classes]
        labels = labels_of(self.label, predicted)
        probs = probabilities.tolist() if probabilities is not None else None
        rows = []
        for index in range(len(chunk)):
            row: dict[str, Any] = {k: chunk.keys[k][index] for k in self.layout.keys}
            if not self.layout.keys:
                row[ROW_COLUMN] = int(chunk.ordinals[index])
            row["label"] = labels[index]
            if probs is not None:
                row["probabilities"] = dict(zip(classes, probs[index], strict=True))
            rows.append(json.dumps(row))
        if rows:
            self.stream.write(((",\n" if not self.first else "\n") + ",\n".join(rows)).encode())
            self.first = False

    def finish(self, summary: BatchSummary) -> None:
        tail = {
            "rows": summary.rows,
            "failed_rows": summary.failed_rows,
            "bad_rows": [{"line": bad.line, "message": bad.message} for bad in summary.bad_rows],
            "notes": summary.notes,
            "backend": summary.backend,
        }
        self.stream.write(("\n], " + json.dumps(tail)[1:] + "\n").encode())
