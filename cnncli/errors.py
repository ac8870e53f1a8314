"""The one error type users see: what went wrong, where, and what to do about it."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace


@dataclass(frozen=True)
class Location:
    """A place a user can go to: a config node, a CSV cell, or a command-line override.

    Lines and columns are 1-based. ``key`` is the dotted config path
    (``model.layers[2].units``) or, for data, the column name.
    """

    file: str | None = None
    key: str | None = None
    line: int | None = None
    column: int | None = None
    row: int | None = None
    label: str | None = None  # extra context shown after the key, e.g. the layer type
    # Finds the location of a key below this one (a layer's argument) in the same source.
    resolver: Callable[[str], Location] | None = field(default=None, compare=False, repr=False)

    def child(self, name: str) -> Location:
        """The location of ``<key>.<name>``: its own line where the source knows it."""
        key = f"{self.key}.{name}" if self.key else name
        if self.resolver is not None:
            return replace(self.resolver(key), label=self.label)
        return replace(self, key=key)

    def __str__(self) -> str:
        parts = []
        if self.file:
            position = self.file
            if self.line is not None:
                position += f":{self.line}"
                if self.column is not None:
                    position += f":{self.column}"
            parts.append(position)
        if self.key:
            parts.append(f"{self.key} ({self.label})" if self.label else self.key)
        if self.row is not None:
            parts.append(f"row {self.row}")
        return ": ".join(parts)


#: Every control character (C0, DEL, C1), every character ``str.splitlines`` breaks at and the
#: bidirectional overrides, each as its escape: a value quoted into a message (a class name from a
#: CSV cell, an ESC in ``--set``) must neither split the one line a script greps nor be obeyed by
#: the terminal that shows it (``\x1b[31m`` recolours it, U+202E reverses it).
_CONTROLS = {
    ord(char): char.encode("unicode_escape").decode()
    for char in (
        *map(chr, range(0x20)),
        *map(chr, range(0x7F, 0xA0)),
        *"\u2028\u2029",
        *map(chr, range(0x202A, 0x202F)),
        *map(chr, range(0x2066, 0x206A)),
    )
}


def escape_controls(text: str) -> str:
    """``text`` with every control character written as its escape (``\\x1b``, ``\\n``), so that
    whatever a user typed is shown, never obeyed, and stays on one line. Every line cnncli prints
    about a user's value goes through here."""
    return text.translate(_CONTROLS)


class CnnCliError(Exception):
    """A mistake the user can fix: bad config, bad data, bad arguments (exit code 2)."""

    exit_code = 2

    def __init__(
        self, message: str, *, where: Location | None = None, hint: str | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        self.where = where
        self.hint = hint

    def one_line(self) -> str:
        """Render as ``where: what; what to do`` on a single line."""
        text = self.message.rstrip(".")
        if self.where is not None and str(self.where):
            text = f"{self.where}: {text}"
        if self.hint:
            text = f"{text}; {self.hint.rstrip('.')}"
        return escape_controls(text)

    def __str__(self) -> str:
        return self.one_line()


class ConfigErrors(CnnCliError):
    """Several problems found in one pass, reported together, one per line."""

    def __init__(self, problems: list[CnnCliError]) -> None:
        if not problems:
            raise ValueError("ConfigErrors needs at least one problem")
        super().__init__(problems[0].message, where=problems[0].where, hint=problems[0].hint)
        self.problems = problems

    def one_line(self) -> str:
        return "\n".join(problem.one_line() for problem in self.problems)


def did_you_mean(name: str, options: Iterable[str], fallback: str = "") -> str:
    """A hint naming the closest of ``options`` to ``name``, or ``fallback`` when none is close.

    Compared without case (a case slip says that names are case-sensitive); the same-case
    spelling wins a tie. Every did-you-mean cnncli prints comes from here.
    """
    import difflib

    lowered: dict[str, str] = {}
    for option in sorted(
        options, key=lambda o: o != o.lower() if name == name.lower() else o == o.lower()
    ):
        lowered.setdefault(option.lower(), option)
    if name.lower() in lowered and lowered[name.lower()] != name:
        return f"did you mean '{lowered[name.lower()]}'? names are case-sensitive"
    match = difflib.get_close_matches(name.lower(), list(lowered), n=1, cutoff=0.5)
    return f"did you mean '{lowered[match[0]]}'?" if match else fallback


def short_repr(value: object, limit: int = 60) -> str:
    """``repr(value)``, cut to ``limit`` characters: an error line must stay one readable line
    even when a config holds a 100 KB value."""
    return shorten(repr(value), limit)


def shorten(text: str, limit: int = 60) -> str:
    """``text``, cut to ``limit`` characters with how long it was (``aaa… (2000 characters)``)."""
    return text if len(text) <= limit else f"{text[: limit - 1]}… ({len(text)} characters)"
