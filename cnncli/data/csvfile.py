"""A CSV file as text: its header, encoding, delimiter, ragged lines and line numbers; and any
user-given path that no file can have, in words (``path_error``, ``check_path``).

Every problem becomes a one-line ``CnnCliError`` naming the file and the line in the file (the
header is line 1), so a user can open the file at the right place. The cell rules are in
``cells``, the column choice in ``columns``.
"""

from __future__ import annotations

import csv
import errno
import os
import stat
from collections.abc import Collection, Iterator, Sequence
from pathlib import Path
from typing import IO, TYPE_CHECKING

from cnncli.errors import CnnCliError, Location, short_repr, shorten

if TYPE_CHECKING:
    import pandas as pd

    from cnncli.config.models import Config

#: Rows read to tell numeric from text columns.
SAMPLE_ROWS = 200


def file_location(path: str | Path, column: str | None = None, line: int | None = None) -> Location:
    """Where in a data file: the file, a column and a line, as much as is known."""
    return Location(file=str(path), key=f"column '{column}'" if column else None, line=line)


#: Byte signatures of files that are not CSV text, with what to do about them.
_NOT_TEXT = (
    (b"\xff\xfe\x00\x00", "is UTF-32 text", "re-save the CSV as UTF-8"),
    (b"\x00\x00\xfe\xff", "is UTF-32 text", "re-save the CSV as UTF-8"),
    (b"\xff\xfe", "is UTF-16 text", "re-save the CSV as UTF-8"),
    (b"\xfe\xff", "is UTF-16 text", "re-save the CSV as UTF-8"),
    (
        b"PK\x03\x04",
        "is a zip archive (an Excel workbook?)",
        "export the sheet as CSV (File > Save As > CSV UTF-8)",
    ),
    (b"\x1f\x8b", "is gzip-compressed", "decompress it first: gunzip FILE"),
)
_DELIMITERS = {",": ",", ";": ";", "\t": "\\t", "|": "|"}


def encoding_error(path: Path, exc: UnicodeDecodeError | None = None) -> CnnCliError:
    """Say what the file is (UTF-16, a zip, gzip), where its first NUL byte is, or where its first
    non-UTF-8 byte is."""
    try:
        with path.open("rb") as handle:
            head = handle.read(4)
            raw = head + handle.read() if exc is None or exc.start >= len(head) else head
    except OSError:
        raw = b""
    for signature, what, hint in _NOT_TEXT:
        if raw.startswith(signature):
            return CnnCliError(
                f"data file {what}, not UTF-8 CSV text", where=file_location(path), hint=hint
            )
    try:
        raw.decode("utf-8")
        position = exc.start if exc is not None else len(raw)
    except UnicodeDecodeError as error:
        position = error.start
    nul = raw.find(b"\x00", 0, position)
    if nul >= 0:  # valid UTF-8, but no text file holds one: a binary file, or UTF-16 without a BOM
        line = raw[:nul].count(b"\n") + 1
        return CnnCliError(
            f"data file holds a NUL byte (line {line}): it is probably binary, or text in another"
            " encoding (UTF-16 without a byte-order mark?)",
            where=file_location(path, line=line),
            hint="give a CSV file saved as UTF-8 text",
        )
    line = raw[:position].count(b"\n") + 1
    shown = f" (byte 0x{raw[position]:02x} on line {line})" if position < len(raw) else ""
    return CnnCliError(
        f"data file is not UTF-8 text{shown}",
        where=file_location(path, line=line if shown else None),
        hint="re-save it as UTF-8, e.g. iconv -f latin1 -t utf-8 in.csv > out.csv",
    )


def read_header(path: str | Path, delimiter: str = ",", known: Collection[str] = ()) -> list[str]:
    """Read only the header line: cheap enough for ``validate``; ``known`` as in ``check_header``.

    Raises:
        CnnCliError: the path is missing or not a regular file, or the header breaks a rule of
            ``check_header``.
    """
    path = Path(path)
    require_regular_file(path)
    try:
        with path.open(newline="", encoding="utf-8-sig") as handle:
            header = next(csv.reader(bounded_lines(handle, path), delimiter=delimiter), None)
    except FileNotFoundError as exc:
        raise CnnCliError(
            "data file not found",
            where=file_location(path),
            hint="check data.path; relative paths resolve against the config file's folder",
        ) from exc
    except UnicodeDecodeError as exc:
        raise encoding_error(path) from exc
    except (OSError, csv.Error) as exc:
        raise CnnCliError(
            f"cannot read data file: {getattr(exc, 'strerror', None) or exc}",
            where=file_location(path),
        ) from exc
    if header and "\x00" in "".join(header):
        raise encoding_error(path)
    return check_header(header or [], path, delimiter, known=known)


def check_header(
    cells: list[str],
    path: str | Path,
    delimiter: str,
    *,
    unnamed_ok: bool = False,
    known: Collection[str] = (),
) -> list[str]:
    """The column names of a header line, or the one-line error of its first problem.

    The one header rule of every reader (train, streaming, evaluate, predict): not empty, split
    on the right delimiter, not a data row, every column named (unless ``unnamed_ok``: key
    columns of a file to predict), no name twice (pandas would silently rename it ``x1.1``).

    Args:
        cells: the header line split into cells.
        path: the file, for the message.
        delimiter: ``data.delimiter``.
        unnamed_ok: allow empty names.
        known: column names the caller expects (a run's features): a line holding all of them
            is a header even if every name is a number.

    Raises:
        CnnCliError: the first problem, naming the file and line 1.
    """
    path = Path(path)
    if not cells or all(not cell.strip() for cell in cells):
        raise CnnCliError(
            "data file is empty",
            where=file_location(path),
            hint="a CSV needs a header line and rows",
        )
    names = [cell.strip() for cell in cells]
    if len(names) == 1:
        for other, shown in _DELIMITERS.items():
            if other != delimiter and other in names[0]:
                raise wrong_delimiter(path, delimiter, shown)
    # All numbers, or a number with a fraction or an exponent (`91.71`, which names no column):
    # a data row read as the header would lose that row and name the columns after its values.
    numbers = [name for name in names if _looks_like_a_number(name)]
    fractions = [name for name in numbers if not name.lstrip("+-").isdigit()]
    if (len(numbers) == len(names) or fractions) and not (known and set(known) <= set(names)):
        what = "numbers" if len(numbers) == len(names) else f"the number {fractions[0]!r}"
        raise _data_row_as_header(path, delimiter, names, what)
    for index, name in enumerate(names):
        if not name and not unnamed_ok:
            raise CnnCliError(
                f"header column {index + 1} has no name"
                + (" (a delimiter at the end of the line?)" if index == len(names) - 1 else ""),
                where=file_location(path, line=1),
                hint="name every column in the header line, or remove the extra delimiter",
            )
        if not name.isprintable():
            raise CnnCliError(
                f"header column {index + 1}'s name {short_repr(name)} holds a line break or"
                " control character",
                where=file_location(path, line=1),
                hint="name every column on the header line itself",
            )
        if name in names[:index]:
            raise CnnCliError(
                f"column '{name}' appears twice in the header (columns"
                f" {names.index(name) + 1} and {index + 1})",
                where=file_location(path, line=1),
                hint="give every column a distinct name",
            )
    return names


def _data_row_as_header(path: Path, delimiter: str, names: list[str], what: str) -> CnnCliError:
    return CnnCliError(
        f"the first line ({short_repr(delimiter.join(names))}) holds {what}, not column"
        " names, but cnncli reads the first line as the header",
        where=file_location(path, line=1),
        hint="add a header line naming the columns, e.g. x1,x2,label (not numbers only)",
    )


def _refuse_a_data_row_read_as_header(frame: pd.DataFrame, path: Path, delimiter: str) -> None:
    """A header of whole numbers and words that are also cells of their own columns
    (``3,30,5,low`` above rows whose label is low/medium/high) is the first data row.

    Whole-number names alone are fine (``region,2019,2020``): only a name that recurs among
    its own column's values gives the row away.
    """
    from pandas.api.types import is_numeric_dtype

    names = [str(name) for name in frame.columns]
    words = [name for name in names if not _looks_like_a_number(name)]
    if len(words) == len(names) or not all(
        not is_numeric_dtype(frame[name]) and (frame[name].astype(str).str.strip() == name).any()
        for name in words
    ):
        return
    raise _data_row_as_header(path, delimiter, names, "numbers and values of its columns")


def _looks_like_a_number(name: str) -> bool:
    """A header cell that reads as a number by the cell rules (with a digit: not 'nan')."""
    from cnncli.data.cells import NUMBER  # cells imports this module

    return NUMBER.fullmatch(name) is not None and any(char.isdigit() for char in name)


#: The longest line a reader takes: a line without end (``/dev/zero``, a stream of bytes with no
#: line break) is refused at this length instead of filling memory.
MAX_LINE_CHARS = 16 << 20


def bounded_lines(handle: IO[str], path: str | Path, first_line: int = 1) -> Iterator[str]:
    """The lines of a text stream, each at most ``MAX_LINE_CHARS`` long.

    Raises:
        CnnCliError: a longer line, named by its number.
    """
    number = first_line
    while line := handle.readline(MAX_LINE_CHARS + 1):
        if len(line) > MAX_LINE_CHARS:
            raise line_too_long(path, number)
        yield line
        number += 1


def line_too_long(path: str | Path, line: int) -> CnnCliError:
    """The error for a line longer than ``MAX_LINE_CHARS`` (endless input, or not a CSV)."""
    return CnnCliError(
        f"line {line} is longer than {MAX_LINE_CHARS:,} characters without a line break",
        where=file_location(path, line=line),
        hint="pass a CSV file with one row per line",
    )


#: What a path that is not a regular file is, in words.
_SPECIAL = (
    (stat.S_ISDIR, "a folder", "pass the CSV file inside it"),
    (stat.S_ISCHR, "a character device", "pass a CSV file"),
    (stat.S_ISBLK, "a block device", "pass a CSV file"),
    (stat.S_ISSOCK, "a socket", "save the data to a file first"),
    (
        stat.S_ISFIFO,
        "a pipe (FIFO)",
        "this command reads the data more than once: save it to a file",
    ),
)


def kind_of(mode: int) -> str:
    """What a file of this ``st_mode`` is, in words: ``a file``, ``a folder``, ``a pipe (FIFO)``."""
    if stat.S_ISREG(mode):
        return "a file"
    return next((name for test, name, _ in _SPECIAL if test(mode)), "a special file")


#: The longest file or folder name (in bytes) that Linux, macOS and Windows file systems hold.
NAME_MAX = 255


def shown_path(path: str | Path) -> str:
    """A user's path fit for one error line: a name longer than any file can have is cut."""
    parts = [
        shorten(part, 40) if len(os.fsencode(part)) > NAME_MAX else part
        for part in str(path).split(os.sep)
    ]
    return shorten(os.sep.join(parts), 300)


def path_error(
    path: str | Path, exc: OSError, *, hint: str | None = None, where: Location | None = None
) -> CnnCliError:
    """The one line for an ``OSError`` about a path a user gave, saying what is wrong with it.

    Every path cnncli is given (data, RUN, ``--output``) is explained here: a name over
    ``NAME_MAX`` bytes, a symbolic link loop, a file where a folder should be, a permission.

    Args:
        path: the path as the user gave it.
        exc: what the OS said.
        hint: what to do; each reason has a default.
        where: what to blame instead of the path itself (the ``--set`` that gave it).
    """
    path = Path(path)
    if exc.errno == errno.ENAMETOOLONG:
        longest = max((len(os.fsencode(part)) for part in path.parts), default=0)
        message = (
            f"a name in this path is {longest} bytes long, over the {NAME_MAX} a file name may have"
            if longest > NAME_MAX
            else "the path is too long"
        )
        hint = hint or "use a shorter name"
    elif exc.errno == errno.ELOOP:
        link = "is" if os.path.islink(path) else "passes through"
        message = f"{link} a symbolic link loop"
        hint = hint or "point the link at an existing file or folder"
    elif exc.errno in (errno.ENOTDIR, errno.EEXIST) and (blocker := _not_a_folder(path)):
        part, mode = blocker
        message = f"{'it' if part == path else shown_path(part)} is {kind_of(mode)}, not a folder"
    else:
        reason = exc.strerror or str(exc)
        message = reason[:1].lower() + reason[1:]
    return CnnCliError(message, where=where or Location(file=shown_path(path)), hint=hint)


def _not_a_folder(path: Path) -> tuple[Path, int] | None:
    """The first part of ``path`` (itself last) that exists and is no folder, with its mode."""
    for part in [*reversed(path.parents), path]:
        try:
            mode = os.stat(part).st_mode
        except OSError:
            return None
        if not stat.S_ISDIR(mode):
            return part, mode
    return None


def check_path(
    path: str | Path,
    *,
    folder: bool = False,
    hint: str | None = None,
    where: Location | None = None,
) -> int | None:
    """A path a user gave can name a file: refuse, in ``path_error``'s words, what pathlib
    hides as "not found" (a link loop) or raises bare (a name over 255 bytes).

    A missing path passes (``None``): the caller says what it expected there.

    Args:
        path: the path as the user gave it.
        folder: it must be a folder where it exists (``--output`` of ``train``).
        hint: what to do instead.
        where: what to blame instead of the path itself.

    Returns:
        The ``st_mode`` of what the path names, or ``None`` where nothing is there.

    Raises:
        CnnCliError: the path cannot name a file, or (``folder``) exists and is no folder.
    """
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise path_error(path, exc, hint=hint, where=where) from None
    if folder and not stat.S_ISDIR(mode):
        raise CnnCliError(
            f"is {kind_of(mode)}, not a folder",
            where=where or Location(file=shown_path(path)),
            hint=hint,
        )
    return mode


def require_data_files(config: Config) -> None:
    """``data.path`` and ``data.test_path`` exist and are regular files: the one check that
    ``validate``, ``summary`` and ``train`` make before reading either.

    A path that came from ``--set`` is blamed on that override, as every problem a ``--set``
    value causes is; one from the config file is named itself (a missing one at its key).

    Raises:
        CnnCliError: a missing path, a folder, device, socket or pipe.
    """
    for name in ("path", "test_path"):
        path, where = getattr(config.data, name), config.locate(f"data.{name}")
        if path is None:
            continue
        overridden = config.source.override_of(("data", name)) is not None
        require_regular_file(path, where=where if overridden else None)
        if not Path(path).exists():
            raise CnnCliError(
                f"data file {path} not found",
                where=where,
                hint="relative paths resolve against the config file's folder",
            )


def require_regular_file(
    path: str | Path, *, stream_ok: bool = False, where: Location | None = None
) -> None:
    """A data path is a regular file (or, where ``stream_ok``, a pipe the command reads once).

    Training and evaluation read a file more than once (header, sample, rows), which a pipe
    cannot give; a device such as ``/dev/zero`` never ends.

    Args:
        path: the data path.
        stream_ok: whether the command reads the file once, so that a pipe can stream.
        where: what to blame instead of the path itself (the ``--set`` that gave it).

    Raises:
        CnnCliError: a folder, device, socket, or a pipe where it cannot be streamed, named as
            what it is (not "not found"); a path no file can have (``check_path``).
    """
    mode = check_path(path, where=where)
    if mode is None:
        return  # missing: the reader's open says so
    if stat.S_ISREG(mode) or (stream_ok and stat.S_ISFIFO(mode)):
        return
    what = kind_of(mode)
    hint = next((advice for _, name, advice in _SPECIAL if name == what), "pass a CSV file")
    raise CnnCliError(
        f"data path is {what}, not a CSV file", where=where or file_location(path), hint=hint
    )


def guess_delimiter(path: Path) -> str:
    """The delimiter (of those a wrong one is recognised by) that a file's header line holds
    most of; a comma when it holds none. Ties go to the earlier one: , ; tab |."""
    with path.open(encoding="utf-8-sig", errors="replace") as stream:
        header = stream.readline(1 << 20)
    counts = {delimiter: header.count(delimiter) for delimiter in _DELIMITERS}
    best = max(_DELIMITERS, key=counts.__getitem__)
    return best if counts[best] else ","


def wrong_delimiter(path: Path, delimiter: str, shown: str) -> CnnCliError:
    """The error for a header that is one column split on ``delimiter`` but contains ``shown``."""
    current = _DELIMITERS.get(delimiter, delimiter)
    return CnnCliError(
        f"the header has one column when split on '{current}' but contains '{shown}'",
        where=file_location(path, line=1),
        hint=f"set data.delimiter: '{shown}'",
    )


def read_sample(path: str | Path, delimiter: str = ",", rows: int = SAMPLE_ROWS) -> pd.DataFrame:
    """Read the first rows only: enough to tell numeric from text columns."""
    return read_csv(path, delimiter, nrows=rows)


def read_csv(
    path: str | Path,
    delimiter: str,
    nrows: int | None = None,
    text: Sequence[str] = (),
    known: Collection[str] = (),
) -> pd.DataFrame:
    """The whole file (or its first ``nrows`` rows) as pandas reads it, column names stripped;
    the ``text`` columns as their cells' text (``1``, not ``1.0``), as the chunked reader does.

    Raises:
        CnnCliError: a missing, empty, mis-delimited, ragged or non-UTF-8 file, or one with a
            header but no rows.
    """
    import warnings

    import pandas as pd

    # clear messages for missing, empty and mis-delimited files
    header = read_header(path, delimiter, known)
    try:
        with warnings.catch_warnings():
            # index_col=False: a long first row must not silently become the index (shifting
            # every column); pandas then warns about the long row, which we report as ragged.
            warnings.simplefilter("error", pd.errors.ParserWarning)
            frame = pd.read_csv(
                path,
                sep=delimiter,
                nrows=nrows,
                skipinitialspace=True,
                encoding="utf-8-sig",
                index_col=False,
                dtype=dict.fromkeys(text, str),
            )
    except (pd.errors.ParserError, pd.errors.ParserWarning) as exc:
        raise ragged_error(path, delimiter, len(header), exc) from exc
    except pd.errors.EmptyDataError as exc:
        raise CnnCliError("data file is empty", where=file_location(path)) from exc
    except UnicodeDecodeError as exc:
        raise encoding_error(Path(path), exc) from exc
    frame.columns = [str(name).strip() for name in frame.columns]
    if not known:
        _refuse_a_data_row_read_as_header(frame, Path(path), delimiter)
    if frame.empty:
        raise CnnCliError(
            "data file has a header but no rows",
            where=file_location(path),
            hint="add data rows below the header",
        )
    return frame


def records(path: str | Path, delimiter: str) -> Iterator[tuple[int, list[str]]]:
    """(first line, cells) of every non-blank data record, the way pandas counts rows."""
    with Path(path).open(newline="", encoding="utf-8-sig", errors="replace") as handle:
        reader = csv.reader(handle, delimiter=delimiter)
        next(reader, None)
        previous_end = reader.line_num
        for cells in reader:
            start, previous_end = previous_end + 1, reader.line_num
            if cells and any(cell.strip() for cell in cells) or len(cells) > 1:
                yield start, cells


def line_numbers(path: str | Path, delimiter: str, rows: list[int]) -> list[int]:
    """File line numbers (the header is line 1) of data rows given by their 0-based position.

    Blank lines and quoted cells spanning lines make these differ from ``row + 2``; the file is
    scanned only when an error needs the numbers.
    """
    wanted = set(rows)
    found: dict[int, int] = {}
    try:
        for index, (line, _cells) in enumerate(records(path, delimiter)):
            if index in wanted:
                found[index] = line
                if len(found) == len(wanted):
                    break
    except (OSError, csv.Error):
        pass
    return [found.get(row, row + 2) for row in rows]


def find_ragged(path: str | Path, delimiter: str, width: int) -> tuple[int, int] | None:
    """The first data record whose cell count differs from the header's: (line, cells)."""
    try:
        for line, cells in records(path, delimiter):
            if len(cells) != width:
                return line, len(cells)
    except (OSError, csv.Error):
        return None
    return None


def ragged_line(path: str | Path, ragged: tuple[int, int], width: int, hint: str) -> CnnCliError:
    """The error for a data record with ``cells`` cells where the header has ``width``."""
    line, cells = ragged
    return CnnCliError(
        f"line {line} has {cells} cells but the header has {width}",
        where=file_location(path, line=line),
        hint=f"every row needs one cell per header column; {hint}",
    )


def ragged_error(path: str | Path, delimiter: str, width: int, exc: Exception) -> CnnCliError:
    """The error for a file pandas cannot parse: its first ragged line, else the quoting."""
    ragged = find_ragged(path, delimiter, width)
    if ragged is not None:
        return ragged_line(path, ragged, width, "look for extra or missing delimiters")
    detail = str(exc).strip().splitlines()[-1].replace("Error tokenizing data. C error: ", "")
    return CnnCliError(
        f"cannot parse the CSV ({detail})",
        where=file_location(path),
        hint="check quoting: every opening quote needs a closing one",
    )
