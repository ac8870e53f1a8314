"""Read plain data back from a run's JSON files as untrusted input: shape and range first.

A run folder can be edited by hand, damaged, or swapped with its sha256 fixed up in the
manifest, so every field of ``manifest.json``, ``preprocess.json`` and ``split.json`` is
checked here before any code uses it. A bad field is one line naming the file and the field,
what was expected and what was found (issue 11.10):

    error: runs/x/preprocess.json: features[2].scale: expected a positive finite number, got 0;
    the run's files were edited or damaged: retrain
"""

from __future__ import annotations

import json
import math
import os
import re
import stat
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, TypeVar

from cnncli.data.csvfile import kind_of
from cnncli.errors import CnnCliError, Location, short_repr

#: The hint of every refusal of a run file's field.
DAMAGED_HINT = "the run's files were edited or damaged: retrain"

T = TypeVar("T")
_SHA256 = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True)
class Field:
    """One place in one run file: the file and the field's path (``features[2].scale``)."""

    file: str
    key: str = ""

    def at(self, name: str | int) -> Field:
        """The field ``name`` (a key) or ``[name]`` (a position) below this one."""
        if isinstance(name, int):
            return Field(self.file, f"{self.key}[{name}]")
        return Field(self.file, f"{self.key}.{name}" if self.key else name)

    def refuse(self, expected: str, value: Any) -> CnnCliError:
        """The one-line error: this field is not ``expected`` (and what it is instead)."""
        return self.damaged(f"expected {expected}, got {short_repr(value)}")

    def damaged(self, what: str) -> CnnCliError:
        """The one-line error for this field, saying ``what`` is wrong with it."""
        return CnnCliError(
            what, where=Location(file=self.file, key=self.key or None), hint=DAMAGED_HINT
        )


def parse_json(text: str, file: str) -> Any:
    """A run file's JSON text as plain data; any text that does not parse is one line.

    Every JSON file of a run (manifest, preprocess, split, metrics, a checkpoint's state) is
    read here: a document nested past Python's recursion limit is refused like any other
    damage instead of ending in a RecursionError.
    """
    try:
        return json.loads(text)
    except RecursionError:
        raise Field(file).damaged("not valid JSON (nested too deeply)") from None
    except ValueError as exc:
        raise Field(file).damaged(f"not valid JSON ({exc})") from exc


def open_run_file(path: Path) -> BinaryIO:
    """A run's file opened for reading, refused unless it is a regular file: a FIFO put in its
    place would block the reader for ever, a device never end.

    Raises:
        CnnCliError: it cannot be opened, or is not a regular file (named as what it is).
    """
    try:  # O_NONBLOCK: opening a FIFO returns at once instead of waiting for a writer
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except OSError as exc:
        raise Field(str(path)).damaged(f"cannot be read ({exc.strerror or exc})") from exc
    mode = os.fstat(fd).st_mode
    if not stat.S_ISREG(mode):
        os.close(fd)
        raise Field(str(path)).damaged(f"is {kind_of(mode)}, not a file cnncli wrote")
    return os.fdopen(fd, "rb")


def read_text(path: Path) -> str:
    """A run's file as UTF-8 text (``open_run_file``); one that cannot be read is one line."""
    with open_run_file(path) as stream:
        try:
            data = stream.read()
        except OSError as exc:
            raise Field(str(path)).damaged(f"cannot be read ({exc.strerror or exc})") from exc
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise Field(str(path)).damaged(f"not UTF-8 text ({exc.reason})") from exc


def read_json(path: Path) -> Any:
    """``parse_json`` of the file at ``path`` (``read_text``)."""
    return parse_json(read_text(path), str(path))


def nested(value: Any, where: Field, depth: int = 64) -> Any:
    """Plain JSON data nested at most ``depth`` levels (walked without recursion)."""
    stack = [(value, 0)]
    while stack:
        item, level = stack.pop()
        if level > depth:
            raise where.damaged(f"nested more than {depth} levels deep")
        if isinstance(item, dict):
            stack.extend((child, level + 1) for child in item.values())
        elif isinstance(item, list):
            stack.extend((child, level + 1) for child in item)
    return value


def member(data: dict[str, Any], name: str, where: Field, check: Callable[[Any, Field], T]) -> T:
    """``data[name]`` through ``check``; a missing field is refused too."""
    if name not in data:
        raise where.at(name).damaged("missing")
    return check(data[name], where.at(name))


def optional(check: Callable[[Any, Field], T]) -> Callable[[Any, Field], T | None]:
    """``check``, or None for a JSON null."""

    def checked(value: Any, where: Field) -> T | None:
        return None if value is None else check(value, where)

    return checked


def of_type(value: Any, where: Field, kind: type[T], expected: str) -> T:
    """``value`` if it is a ``kind``, else the refusal saying ``expected``."""
    if not isinstance(value, kind):
        raise where.refuse(expected, value)
    return value


def mapping(value: Any, where: Field) -> dict[str, Any]:
    """A JSON object."""
    return of_type(value, where, dict, "an object")


def string(value: Any, where: Field) -> str:
    """Any string, the empty one included (a category may be any text)."""
    return of_type(value, where, str, "a string")


def text(value: Any, where: Field) -> str:
    """A non-empty string."""
    if not string(value, where):
        raise where.refuse("a non-empty string", value)
    return value


def one_line(value: Any, where: Field) -> str:
    """A non-empty string without line breaks (a column name, shown in one-line messages)."""
    if not text(value, where).isprintable():
        raise where.refuse("a name without line breaks or control characters", value)
    return value


def flag(value: Any, where: Field) -> bool:
    """true or false."""
    return of_type(value, where, bool, "true or false")


def integer(value: Any, where: Field, minimum: int = 0, maximum: int | None = None) -> int:
    """A whole number in ``[minimum, maximum]`` (a JSON boolean is not one)."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise where.refuse(_integer_words(minimum, maximum), value)
    if maximum is not None and value > maximum:
        raise where.refuse(_integer_words(minimum, maximum), value)
    return value


def count(value: Any, where: Field) -> int:
    """A whole number ≥ 0."""
    return integer(value, where)


def positive_count(value: Any, where: Field) -> int:
    """A whole number ≥ 1."""
    return integer(value, where, minimum=1)


def seed_number(value: Any, where: Field) -> int:
    """A seed NumPy takes: 0 … 2**32 - 1."""
    return integer(value, where, maximum=2**32 - 1)


def number(value: Any, where: Field) -> float:
    """A finite number."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise where.refuse("a finite number", value)
    return float(value)


def positive_number(value: Any, where: Field) -> float:
    """A finite number > 0 (a scale, a divisor)."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value < math.inf:
        raise where.refuse("a positive finite number", value)
    return float(value)


def fraction(value: Any, where: Field) -> float:
    """A number in [0, 1)."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value < 1:
        raise where.refuse("a number from 0 up to (not including) 1", value)
    return float(value)


def sha256(value: Any, where: Field) -> str:
    """64 lowercase hex digits."""
    if not isinstance(value, str) or not _SHA256.fullmatch(value):
        raise where.refuse("a sha256 (64 hex digits)", value)
    return value


def one_of(*options: str) -> Callable[[Any, Field], str]:
    """A check that a value is one of ``options``."""
    words = ", ".join(options)

    def checked(value: Any, where: Field) -> str:
        if not isinstance(value, str) or value not in options:
            raise where.refuse(f"one of {words}", value)
        return value

    return checked


def items(
    value: Any, where: Field, check: Callable[[Any, Field], T], length: int | None = None
) -> list[T]:
    """A JSON list, each item through ``check``; exactly ``length`` items when given."""
    if not isinstance(value, list):
        raise where.refuse("a list", value)
    if length is not None and len(value) != length:
        raise where.refuse(f"a list of {length} item(s)", f"{len(value)} item(s)")
    return [check(item, where.at(index)) for index, item in enumerate(value)]


def distinct(values: Sequence[Any], where: Field) -> None:
    """No value twice (compared as text, as the label classes are matched)."""
    seen: set[str] = set()
    for index, value in enumerate(values):
        if str(value) in seen:
            raise where.at(index).refuse("a value not already in the list", value)
        seen.add(str(value))


def _integer_words(minimum: int, maximum: int | None) -> str:
    if maximum is not None:
        return f"a whole number from {minimum} to {maximum}"
    return "a positive whole number" if minimum == 1 else f"a whole number ≥ {minimum}"
