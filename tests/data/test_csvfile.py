"""data/csvfile.py: the header, encoding, delimiter, ragged lines and line numbers of a CSV.

Through ``load_dataset`` (no TensorFlow); tests/test_faults.py checks the same errors end to
end through ``cnncli train`` with exit code 2.
"""

from __future__ import annotations

import re

import pytest

from cnncli.data.csvfile import line_numbers
from cnncli.data.table import load_dataset
from cnncli.errors import CnnCliError
from tests.conftest import seed_like_rows
from tests.data.test_table import dataset_of, load


def test_line_numbers_count_blank_lines_and_quoted_newlines(tmp_path):
    csv = tmp_path / "lines.csv"
    csv.write_text('a,b\n1,2\n\n3,"multi\nline"\n4,5\n')
    assert line_numbers(csv, ",", [0, 1, 2]) == [2, 4, 6]


def test_error_line_is_right_after_a_blank_line(tmp_path, write_config):
    rows = seed_like_rows(10).splitlines()
    rows.insert(3, "")  # a blank line 4: pandas skips it, so row + 2 would be off by one
    rows[6] = rows[6].replace(rows[6].split(",")[1], "oops", 1)
    with pytest.raises(CnnCliError) as caught:
        load(tmp_path, write_config, "\n".join(rows) + "\n")
    assert caught.value.where.line == 7
    assert "'oops'" in caught.value.message


def test_long_first_row_is_ragged_not_an_index(tmp_path, write_config):
    # pandas would take the first column as the index and shift every value one column left
    text = "x1,x2,x3,label\n1,2,3,low,extra\n4,5,6,high\n"
    with pytest.raises(CnnCliError) as caught:
        load(tmp_path, write_config, text)
    assert caught.value.message == "line 2 has 5 cells but the header has 4"
    assert caught.value.where.line == 2


def test_short_row_is_ragged_not_empty_cells(tmp_path, write_config):
    text = seed_like_rows(6) + "1.0,2.0,low\n"
    for policy in ("error", "drop", "mean"):
        with pytest.raises(CnnCliError, match="line 8 has 3 cells but the header has 4"):
            load(tmp_path, write_config, text, missing=policy)


def test_trailing_delimiter_in_header_is_named(tmp_path, write_config):
    with pytest.raises(CnnCliError, match="header column 5 has no name"):
        load(tmp_path, write_config, "x1,x2,x3,label,\n1,2,3,a,\n")


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (
            b"x1;x2;x3;label\n1;2;3;a\n",
            "the header has one column when split on ',' but contains ';'",
        ),
        (
            "x1,x2,x3,label\n1,2,3,caf\u00e9\n".encode("latin-1"),
            "data file is not UTF-8 text (byte 0xe9 on line 2)",
        ),
        (
            "x1,x2,x3,label\n1,2,3,a\n".encode("utf-16"),
            "data file is UTF-16 text, not UTF-8 CSV text",
        ),
        (
            b"PK\x03\x04\x14\x00\x00\x00",
            "data file is a zip archive (an Excel workbook?), not UTF-8 CSV text",
        ),
        (b"\x1f\x8b\x08\x00\x00\x00", "data file is gzip-compressed, not UTF-8 CSV text"),
    ],
    ids=["semicolons", "latin-1", "utf-16", "xlsx", "gzip"],
)
def test_wrong_delimiter_or_encoding_is_named(tmp_path, write_config, raw, message):
    with pytest.raises(CnnCliError) as caught:
        load(tmp_path, write_config, raw)
    assert caught.value.message == message
    assert caught.value.where.file.endswith("data.csv")


def test_tab_file_with_tab_delimiter_configured_reads(tmp_path, write_config):
    text = seed_like_rows(20).replace(",", "\t")
    assert load(tmp_path, write_config, text, delimiter="\t").rows == 20
    with pytest.raises(CnnCliError, match=r"set data.delimiter: '\\t'"):
        load(tmp_path, write_config, text)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "data file is empty"),
        ("\n\n", "data file is empty"),
        ("x1,x2,x3,label\n", "data file has a header but no rows"),
    ],
    ids=["empty", "blank-lines", "header-only"],
)
def test_empty_and_header_only(tmp_path, write_config, text, message):
    with pytest.raises(CnnCliError) as caught:
        load(tmp_path, write_config, text)
    assert caught.value.message == message


def test_missing_file(tmp_path, write_config):
    config, csv = dataset_of(tmp_path, write_config, seed_like_rows(4))
    csv.unlink()
    with pytest.raises(CnnCliError, match="data file not found"):
        load_dataset(config)


# ---------------------------------------------------------------------------------------------
# The header rule every reader shares, and paths that are not regular files (issue 11)


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        (
            "5.1,3.5,1.4,0\n4.9,3.0,1.4,1\n",
            "the first line ('5.1,3.5,1.4,0') holds numbers, not column names, but cnncli reads"
            " the first line as the header; add a header line naming the columns, e.g. x1,x2,label"
            " (not numbers only)",
        ),
        (  # a text label and a category: only the fraction gives the data row away
            "91.71,0.532,C,day,ok\n88.2,0.4,A,night,fault\n",
            "the first line ('91.71,0.532,C,day,ok') holds the number '91.71', not column names,"
            " but cnncli reads the first line as the header; add a header line naming the"
            " columns, e.g. x1,x2,label (not numbers only)",
        ),
        (  # whole numbers, and a label that recurs among the label column's values
            "3,30,5,low\n8,92,5,high\n4,51,3,low\n",
            "the first line ('3,30,5,low') holds numbers and values of its columns, not column"
            " names, but cnncli reads the first line as the header; add a header line naming the"
            " columns, e.g. x1,x2,label (not numbers only)",
        ),
        (
            'x1,"x\n2",x3,label\n1,2,3,a\n4,5,6,b\n',
            "header column 2's name 'x\\n2' holds a line break or control character; name every"
            " column on the header line itself",
        ),
    ],
    ids=["header-less", "header-less-with-text", "header-less-integers", "name-with-a-line-break"],
)
def test_a_header_less_csv_is_refused_not_read_with_its_first_row_as_names(
    tmp_path, write_config, text, problem
):
    """A header-less file used to train silently, with column names such as '5.1', a row lost."""
    with pytest.raises(CnnCliError) as caught:
        load(tmp_path, write_config, text)
    assert caught.value.one_line() == f"{tmp_path / 'data.csv'}:1: {problem}"


def test_names_that_merely_contain_digits_are_a_header(tmp_path, write_config):
    assert load(tmp_path, write_config, "x1,2b,nan,label\n1,2,3,a\n4,5,6,b\n").rows == 2


def test_whole_numbers_as_names_are_a_header_when_no_word_recurs_below(tmp_path, write_config):
    """Years as column names are common; only a name repeated among its values is a data row."""
    assert load(tmp_path, write_config, "2019,2020,2021,label\n1,2,3,a\n4,5,6,b\n").rows == 2


def test_a_duplicated_header_name_is_named_by_every_reader(
    tmp_path, write_config, runner, tiny_run
):
    """train renamed the second x1 to x1.1 (and predict then refused the run's own file)."""
    from cnncli.cli import cli

    text = "x1,x1,x3,label\n1,2,3,a\n4,5,6,b\n"
    expected = "column 'x1' appears twice in the header (columns 1 and 2)"
    with pytest.raises(CnnCliError, match=re.escape(expected)):
        load(tmp_path, write_config, text)
    rows = tmp_path / "rows.csv"
    rows.write_text("x1,x2,x3,x1\n1,2,3,4\n")
    result = runner.invoke(cli, ["predict", str(tiny_run), "--input-file", str(rows)])
    assert result.exit_code == 2
    assert result.stderr.splitlines()[-1] == (
        f"error: {rows}:1: column 'x1' appears twice in the header (columns 1 and 4);"
        " give every column a distinct name"
    )


@pytest.mark.parametrize("kind", ["folder", "fifo", "device"])
def test_a_data_path_that_is_not_a_file_is_named_as_what_it_is(
    tmp_path, write_config, runner, kind
):
    import os

    from cnncli.cli import cli
    from tests.conftest import base_config

    path = {"folder": tmp_path / "data", "fifo": tmp_path / "pipe", "device": "/dev/zero"}[kind]
    if kind == "folder":
        path.mkdir()
    elif kind == "fifo":
        os.mkfifo(path)
    result = runner.invoke(cli, ["validate", str(write_config(base_config(path)))])
    assert result.exit_code == 2
    what, hint = {
        "folder": ("a folder", "pass the CSV file inside it"),
        "fifo": (
            "a pipe (FIFO)",
            "this command reads the data more than once: save it to a file",
        ),
        "device": ("a character device", "pass a CSV file"),
    }[kind]
    assert result.stderr.splitlines() == [
        f"error: {path}: data path is {what}, not a CSV file; {hint}"
    ]


def test_a_line_without_end_is_refused_at_the_bound(tmp_path, monkeypatch):
    from cnncli.data import csvfile

    monkeypatch.setattr(csvfile, "MAX_LINE_CHARS", 1000)
    csv = tmp_path / "endless.csv"
    csv.write_text("x" * 5000)
    with pytest.raises(CnnCliError) as caught:
        csvfile.read_header(csv)
    assert caught.value.one_line() == (
        f"{csv}:1: line 1 is longer than 1,000 characters without a line break;"
        " pass a CSV file with one row per line"
    )


@pytest.mark.parametrize(
    "raw",
    [b"x1,x\x00,x3,label\n1,2,3,a\n4,5,6,b\n", "x1,x2,x3,label\n1,2,3,a\n".encode("utf-16-le")],
    ids=["nul-in-header", "utf-16-without-bom"],
)
def test_a_nul_byte_is_named_not_called_not_utf8(tmp_path, write_config, runner, raw):
    """Hostile review: a NUL in the header line was "not UTF-8 text (byte 0x78 on line 1)",
    naming the header's first byte; the file is valid UTF-8, and the NUL is what is wrong."""
    from cnncli.cli import cli
    from tests.conftest import base_config

    expected = (
        f"{tmp_path / 'data.csv'}:1: data file holds a NUL byte (line 1): it is probably binary,"
        " or text in another encoding (UTF-16 without a byte-order mark?);"
        " give a CSV file saved as UTF-8 text"
    )
    with pytest.raises(CnnCliError) as caught:
        load(tmp_path, write_config, raw)
    assert caught.value.one_line() == expected
    result = runner.invoke(cli, ["validate", str(write_config(base_config(tmp_path / "data.csv")))])
    assert result.exit_code == 2
    assert result.stderr.splitlines() == [f"error: {expected}"]


@pytest.mark.parametrize("command", ["validate", "train"])
@pytest.mark.parametrize("kind", ["folder", "fifo", "device", "missing"])
def test_a_data_path_from_set_is_refused_at_the_override(
    tmp_path, write_config, runner, command, kind
):
    """Hostile review: ``--set data.path=/dev/zero`` was blamed on /dev/zero itself, while every
    other problem a ``--set`` value causes is located at the override."""
    import os

    from cnncli.cli import cli
    from tests.conftest import base_config

    path = {
        "folder": tmp_path / "data",
        "fifo": tmp_path / "pipe",
        "device": "/dev/zero",
        "missing": tmp_path / "gone.csv",
    }[kind]
    if kind == "folder":
        path.mkdir()
    elif kind == "fifo":
        os.mkfifo(path)
    problem = {
        "folder": "data path is a folder, not a CSV file; pass the CSV file inside it",
        "fifo": "data path is a pipe (FIFO), not a CSV file;"
        " this command reads the data more than once: save it to a file",
        "device": "data path is a character device, not a CSV file; pass a CSV file",
        "missing": f"data file {path} not found;"
        " relative paths resolve against the config file's folder",
    }[kind]
    config = write_config(base_config(tmp_path / "unused.csv"))
    args = [command, str(config), "--set", f"data.path={path}"]
    result = runner.invoke(
        cli, [*args, *(["--output", str(tmp_path)] if command == "train" else [])]
    )
    assert result.exit_code == 2
    assert result.stderr.splitlines() == [f"error: --set data.path={path}: data.path: {problem}"]


def test_path_errors_say_what_is_wrong_with_the_path(tmp_path):
    """One place words an OSError about a user's path: a name too long is cut, not echoed."""
    import errno
    import os

    from cnncli.data.csvfile import check_path

    (tmp_path / "a").symlink_to("b")
    (tmp_path / "b").symlink_to("a")
    (tmp_path / "file.csv").write_text("x\n")
    long = tmp_path / ("d" * 300) / "x.csv"
    cases = [
        (long, "a name in this path is 300 bytes long, over the 255 a file name may have"),
        (tmp_path / "a", "is a symbolic link loop"),
        (tmp_path / "a" / "x.csv", "passes through a symbolic link loop"),
        (tmp_path / "file.csv" / "x.csv", f"{tmp_path / 'file.csv'} is a file, not a folder"),
    ]
    for path, message in cases:
        with pytest.raises(CnnCliError) as caught:
            check_path(path)
        assert caught.value.message == message
        assert len(str(caught.value.where)) < len(str(tmp_path)) + 70
    assert check_path(tmp_path / "missing.csv") is None
    with pytest.raises(CnnCliError) as caught:
        check_path(tmp_path / "file.csv", folder=True)
    assert caught.value.message == "is a file, not a folder"
    denied = OSError(errno.EACCES, os.strerror(errno.EACCES), "x")
    from cnncli.data.csvfile import path_error

    assert path_error("x", denied, hint="fix it").one_line() == "x: permission denied; fix it"
