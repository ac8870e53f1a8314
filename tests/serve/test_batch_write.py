"""The --input-file writers: CSV columns and one JSON object, files written whole or not at all."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest

from cnncli.data.preprocess import LabelTransform
from cnncli.errors import CnnCliError
from cnncli.serve.batch import BadRow, BatchSummary, Chunk, Layout
from cnncli.serve.batch_write import CsvWriter, JsonWriter, open_output

LABEL = LabelTransform("binary", "y", ("no", "yes"))


def layout(keys: tuple[str, ...] = ()) -> Layout:
    return Layout(("x",) + keys, ("x",), (), keys, ",", frozenset())


def chunk(keys: dict[str, list[str]] | None = None) -> Chunk:
    return Chunk(np.array([0, 1]), {"x": np.array([1.0, 2.0])}, keys or {}, [])


def test_csv_writer_writes_keys_label_and_probabilities():
    stream = io.BytesIO()
    writer = CsvWriter(stream, layout(("id",)), LABEL)
    writer.start()
    writer.write(chunk({"id": ["=a", "b,c"]}), np.array([[0.75], [0.25]], dtype=np.float32))
    writer.finish(BatchSummary("in.csv", "stdout"))
    assert stream.getvalue().decode().splitlines() == [
        "id,predicted,prob_no,prob_yes",
        "'=a,yes,0.250000,0.750000",
        '"b,c",no,0.750000,0.250000',
    ]


def test_json_writer_streams_rows_then_the_summary():
    stream = io.BytesIO()
    writer = JsonWriter(stream, layout(), LABEL)
    writer.start()
    writer.write(chunk(), np.array([[0.75], [0.25]]))
    summary = BatchSummary("in.csv", "stdout", backend="onnx", rows=2, failed_rows=1)
    summary.bad_rows.append(BadRow(4, "expected 1 cells, got 2"))
    writer.finish(summary)
    data = json.loads(stream.getvalue())
    assert data["predictions"] == [
        {"row": 0, "label": "yes", "probabilities": {"no": 0.25, "yes": 0.75}},
        {"row": 1, "label": "no", "probabilities": {"no": 0.75, "yes": 0.25}},
    ]
    assert data["bad_rows"] == [{"line": 4, "message": "expected 1 cells, got 2"}]
    assert (data["rows"], data["failed_rows"], data["backend"]) == (2, 1, "onnx")


def test_open_output_refuses_the_input_file(tmp_path: Path):
    source = tmp_path / "in.csv"
    source.write_text("x\n1\n")
    with pytest.raises(CnnCliError, match="--output is the input file"):
        with open_output(source, source):
            pass
    assert source.read_text() == "x\n1\n"


def test_open_output_leaves_no_file_when_writing_fails(tmp_path: Path):
    target = tmp_path / "out.csv"
    with pytest.raises(RuntimeError):
        with open_output(target, tmp_path / "in.csv") as stream:
            stream.write(b"half")
            raise RuntimeError("stopped")
    assert list(tmp_path.iterdir()) == []


def test_open_output_writes_into_a_fifo_and_never_replaces_it(tmp_path: Path):
    # --output /dev/full or a FIFO: the special file is written to; a rename would replace it
    import os
    import threading

    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    received: list[bytes] = []
    reader = threading.Thread(target=lambda: received.append(fifo.read_bytes()), daemon=True)
    reader.start()
    with open_output(fifo, tmp_path / "in.csv") as stream:
        stream.write(b"row,predicted\n")
    reader.join(timeout=10)
    assert received == [b"row,predicted\n"]
    assert fifo.is_fifo()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pipe"]


def test_open_output_on_a_folder_is_one_line(tmp_path: Path):
    with pytest.raises(CnnCliError) as caught:
        with open_output(tmp_path, tmp_path / "in.csv") as stream:
            stream.write(b"x")
    assert caught.value.message.startswith("cannot write there: ")


def test_a_full_device_while_writing_is_one_line():
    full = Path("/dev/full")
    if not full.is_char_device():
        pytest.skip("no /dev/full here")
    with pytest.raises(CnnCliError) as caught:
        with open_output(full, Path("in.csv")) as stream:
            stream.write(b"x" * (1 << 16))
    assert caught.value.message == "cannot write there: No space left on device"
    assert full.is_char_device()


def test_open_output_through_a_link_writes_its_target_and_keeps_the_link(tmp_path: Path):
    """--output out.csv, a link to a file elsewhere: the rename replaced the link with a file."""
    import os

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "real.csv").write_text("old\n")
    link = tmp_path / "out.csv"
    link.symlink_to(Path("elsewhere") / "real.csv")
    with open_output(link, tmp_path / "in.csv") as stream:
        stream.write(b"row,predicted\n")
    assert link.is_symlink() and os.readlink(link) == str(Path("elsewhere") / "real.csv")
    assert (elsewhere / "real.csv").read_text() == "row,predicted\n"
    assert sorted(p.name for p in elsewhere.iterdir()) == ["real.csv"]  # no temporary file left


def test_open_output_on_a_dangling_link_is_one_line_naming_it(tmp_path: Path):
    link = tmp_path / "out.csv"
    link.symlink_to("gone.csv")
    with pytest.raises(CnnCliError) as caught:
        with open_output(link, tmp_path / "in.csv") as stream:
            stream.write(b"x")
    assert caught.value.one_line() == (
        f"{link}: is a symbolic link to gone.csv, which does not exist;"
        " point the link at an existing file, or choose another --output"
    )
    assert link.is_symlink() and sorted(p.name for p in tmp_path.iterdir()) == ["out.csv"]


@pytest.mark.skipif(not Path("/proc/self/status").is_file(), reason="needs Linux /proc")
def test_an_output_whose_folder_holds_no_new_files_says_so(tmp_path: Path):
    """Hostile review: --output /proc/self/status said 'No such file or directory', though the
    file exists: it is the temporary file beside it that /proc cannot hold."""
    with pytest.raises(CnnCliError) as caught, open_output(Path("/proc/self/status"), tmp_path):
        pass
    assert caught.value.message == ("cannot create a file in /proc/self: No such file or directory")
