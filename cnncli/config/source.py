"""Safe YAML reading that remembers where every value came from.

Configs are read with PyYAML's safe composer only. Every value keeps its line and column so
any later check (schema, data, shapes) can point at the node it concerns. Scalars follow the
YAML 1.2 core schema (``010`` is 10, ``0o17`` is 15, ``1e-3`` is a float; ``no``, ``1:30`` and
``1_000`` are strings), duplicate keys are errors, and alias expansion is bounded so a
"billion laughs" document is refused at once instead of eating memory.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import yaml

from cnncli.errors import CnnCliError, ConfigErrors, Location, shorten

MAX_CONFIG_BYTES = 1_000_000
MAX_NODES = 20_000  # visits while converting, aliases included
MAX_DEPTH = 64  # nesting levels; a model spec needs about six

Path_ = tuple[str | int, ...]

_SAFE_TAGS = {
    "tag:yaml.org,2002:str",
    "tag:yaml.org,2002:int",
    "tag:yaml.org,2002:float",
    "tag:yaml.org,2002:bool",
    "tag:yaml.org,2002:null",
    "tag:yaml.org,2002:map",
    "tag:yaml.org,2002:seq",
}


class _TooDeep(Exception):
    def __init__(self, mark: yaml.Mark) -> None:
        super().__init__(mark)
        self.mark = mark


class _Yaml12Loader(yaml.SafeLoader):
    """SafeLoader with the YAML 1.2 core schema's scalars, and bounded nesting."""

    _depth = 0

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node:
        # PyYAML's scanner is quadratic in the nesting depth (5,000 brackets take seconds) and its
        # composer recursive; stop at MAX_DEPTH, after reading only that many tokens.
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                raise _TooDeep(self.peek_event().start_mark)
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


# The YAML 1.2 core schema (yaml.org/spec/1.2.2, 10.3.2). PyYAML implements YAML 1.1, where
# `010` is octal, `1:30` is 90, `1_000` is 1000, `yes` is true and `2024-01-01` a timestamp;
# in 1.2 those are 10 and strings. Null and the merge key (refused later) keep PyYAML's rules.
_CORE_BOOL = re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$")
_CORE_INT = re.compile(r"^(?:[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+)$")
_CORE_FLOAT = re.compile(
    r"""^(?:[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?
    |[-+]?\.(?:inf|Inf|INF)
    |\.(?:nan|NaN|NAN))$""",
    re.X,
)
_YAML11_ONLY = {
    "tag:yaml.org,2002:bool",
    "tag:yaml.org,2002:int",
    "tag:yaml.org,2002:float",
    "tag:yaml.org,2002:timestamp",
    "tag:yaml.org,2002:value",
}
_Yaml12Loader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag not in _YAML11_ONLY]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Yaml12Loader.add_implicit_resolver("tag:yaml.org,2002:bool", _CORE_BOOL, list("tTfF"))
# Integers before floats: the float pattern also matches `10`.
_Yaml12Loader.add_implicit_resolver("tag:yaml.org,2002:int", _CORE_INT, list("-+0123456789"))
_Yaml12Loader.add_implicit_resolver("tag:yaml.org,2002:float", _CORE_FLOAT, list("-+0123456789."))


def _construct_int(loader: yaml.SafeLoader, node: yaml.ScalarNode) -> int:
    text = loader.construct_scalar(node)
    if not _CORE_INT.match(text):
        raise ValueError("not a YAML 1.2 integer (digits, 0o octal or 0x hex)")
    if text.startswith(("0o", "0x")):
        return int(text[2:], 8 if text[1] == "o" else 16)
    return int(text, 10)


def _construct_float(loader: yaml.SafeLoader, node: yaml.ScalarNode) -> float:
    text = loader.construct_scalar(node)
    if not (_CORE_FLOAT.match(text) or _CORE_INT.match(text)):
        raise ValueError("not a YAML 1.2 number")
    if _CORE_INT.match(text) and text.startswith(("0o", "0x")):
        return float(_construct_int(loader, node))
    lowered = text.lower()
    if lowered in (".inf", "+.inf"):
        return float("inf")
    if lowered == "-.inf":
        return float("-inf")
    if lowered == ".nan":
        return float("nan")
    return float(text)


_Yaml12Loader.add_constructor("tag:yaml.org,2002:int", _construct_int)
_Yaml12Loader.add_constructor("tag:yaml.org,2002:float", _construct_float)


def path_to_key(path: Path_) -> str:
    """``("model", "layers", 2, "units")`` → ``model.layers[2].units``."""
    key = ""
    for part in path:
        key += f"[{part}]" if isinstance(part, int) else (f".{part}" if key else part)
    return key


_KEY_PART = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)|\[(-?\d+)\]")


#: The most of a ``--set key=value`` an error line repeats as its place.
OVERRIDE_SHOWN = 300


def override_place(text: str) -> str:
    """``--set key=value`` as the place an error points at, cut past ``OVERRIDE_SHOWN``
    characters: a 100 KB value must not fill the one line."""
    return f"--set {shorten(text, OVERRIDE_SHOWN)}"


def key_to_path(key: str) -> Path_ | None:
    """Parse ``model.layers[0].filters`` into a path, or None if it is not one."""
    path: list[str | int] = []
    position = 0
    for segment in key.split("."):
        if not segment:
            return None
        matched = 0
        for match in _KEY_PART.finditer(segment):
            # a name only at the start of a segment: `layers[0]units` lacks its '.'
            if match.start() != matched or (match.group(1) and matched):
                return None
            path.append(match.group(1) if match.group(1) else int(match.group(2)))
            matched = match.end()
        if matched != len(segment) or isinstance(path[position], int):
            return None
        position = len(path)
    return tuple(path)


@dataclass
class SourceMap:
    """Where each value of a config came from: file positions and command-line overrides."""

    file: str
    positions: dict[Path_, tuple[int, int]] = field(default_factory=dict)
    key_positions: dict[Path_, tuple[int, int]] = field(default_factory=dict)
    overrides: dict[Path_, str] = field(default_factory=dict)

    def locate(self, path: Path_, *, on_key: bool = False, label: str | None = None) -> Location:
        """The most precise location known for ``path`` (or its nearest ancestor)."""
        key = path_to_key(path)
        resolver = self._locate_key
        override = self.override_of(path)
        if override is not None:
            return Location(file=override_place(override), key=key, label=label, resolver=resolver)
        for depth in range(len(path), -1, -1):
            prefix = path[:depth]
            table = self.key_positions if on_key and depth == len(path) else self.positions
            if prefix in table:
                line, column = table[prefix]
                return Location(
                    file=self.file,
                    key=key,
                    line=line,
                    column=column,
                    label=label,
                    resolver=resolver,
                )
        return Location(file=self.file, key=key, label=label, resolver=resolver)

    def override_of(self, path: Path_) -> str | None:
        """The ``--set`` that gave ``path``'s value, if one did. An override replaces everything
        below its key, so it wins over any file position there."""
        for depth in range(len(path), -1, -1):
            if path[:depth] in self.overrides:
                return self.overrides[path[:depth]]
        return None

    def _locate_key(self, key: str) -> Location:
        return self.locate(key_to_path(key) or (), on_key=True)


def decode_config_bytes(raw: bytes, file: str) -> str:
    """Check size and encoding before any parsing happens."""
    if len(raw) > MAX_CONFIG_BYTES:
        raise CnnCliError(
            f"config is {len(raw):,} bytes, more than the {MAX_CONFIG_BYTES:,} allowed",
            where=Location(file=file),
            hint="a model spec fits in a few kilobytes; check that this is the right file",
        )
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise CnnCliError(
            f"config is not UTF-8 text (byte 0x{raw[exc.start]:02x} on line {line})",
            where=Location(file=file, line=line),
            hint="save the file as UTF-8",
        ) from exc


def parse_yaml(text: str, file: str) -> tuple[Any, SourceMap]:
    """Parse one YAML document safely into plain Python values plus their positions.

    Raises:
        CnnCliError: on YAML syntax errors, unsafe tags, duplicate keys or runaway aliases.
    """
    source = SourceMap(file=file)
    try:
        node = yaml.compose(text, Loader=_Yaml12Loader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = Location(file=file, line=mark.line + 1, column=mark.column + 1) if mark else None
        raise CnnCliError(
            f"YAML syntax error: {exc.problem or exc.context}",
            where=where,
            hint="check indentation and quoting on that line",
        ) from exc
    except yaml.YAMLError as exc:  # e.g. "expected a single document"
        raise CnnCliError(
            f"YAML error: {exc}".splitlines()[0],
            where=Location(file=file),
            hint="a config is a single YAML document",
        ) from exc
    except _TooDeep as exc:
        raise _too_deep(
            Location(file=file, line=exc.mark.line + 1, column=exc.mark.column + 1)
        ) from None
    except RecursionError as exc:  # PyYAML's composer recurses once per nesting level
        raise _too_deep(Location(file=file)) from exc
    if node is None:
        return {}, source
    converter = _Converter(source)
    value = converter.convert(node, ())
    if converter.problems:
        raise ConfigErrors(converter.problems)
    return value, source


def parse_override_value(text: str, label: str) -> Any:
    """Parse the value of ``--set key=value`` with the same safe YAML rules as a file."""
    if not text.strip():
        return None  # `--set data.test_path=` clears a value, as an empty YAML value would
    value, _ = parse_yaml(text, label)
    return value


def _too_deep(where: Location) -> CnnCliError:
    return CnnCliError(
        f"config nests more than {MAX_DEPTH} levels deep",
        where=where,
        hint="a model spec needs a few levels; check the indentation and brackets",
    )


class _Converter:
    def __init__(self, source: SourceMap) -> None:
        self.source = source
        self.visits = 0
        self.open_nodes: set[int] = set()  # the nodes being converted: a cycle revisits one
        self.problems: list[CnnCliError] = []
        self.constructor = _Yaml12Loader("")

    def _where(self, node: yaml.Node, path: Path_) -> Location:
        return Location(
            file=self.source.file,
            key=path_to_key(path) or None,
            line=node.start_mark.line + 1,
            column=node.start_mark.column + 1,
        )

    def convert(self, node: yaml.Node, path: Path_) -> Any:
        self.visits += 1
        if self.visits > MAX_NODES:
            raise CnnCliError(
                f"config expands to more than {MAX_NODES:,} values (aliases included)",
                where=self._where(node, path),
                hint="remove the repeated aliases (&/*); a model spec never needs this many",
            )
        if id(node) in self.open_nodes:
            raise CnnCliError(
                "an alias (*) refers to a node that contains it, so the config would be infinite",
                where=self._where(node, path),
                hint="remove that alias",
            )
        if len(path) > MAX_DEPTH:
            mark = node.start_mark
            raise _too_deep(
                Location(file=self.source.file, line=mark.line + 1, column=mark.column + 1)
            )
        self.open_nodes.add(id(node))
        try:
            return self._convert(node, path)
        finally:
            self.open_nodes.discard(id(node))

    def _convert(self, node: yaml.Node, path: Path_) -> Any:
        self.source.positions.setdefault(
            path, (node.start_mark.line + 1, node.start_mark.column + 1)
        )
        if node.tag not in _SAFE_TAGS:
            self.problems.append(
                CnnCliError(
                    f"tag {node.tag} is not allowed",
                    where=self._where(node, path),
                    hint="configs hold plain values only; remove the tag",
                )
            )
            return None
        if isinstance(node, yaml.MappingNode):
            return self._mapping(node, path)
        if isinstance(node, yaml.SequenceNode):
            return [self.convert(item, (*path, index)) for index, item in enumerate(node.value)]
        try:
            return self.constructor.construct_object(node)
        except (yaml.YAMLError, ValueError) as exc:
            self.problems.append(
                CnnCliError(
                    f"cannot read value {node.value!r}: {exc}", where=self._where(node, path)
                )
            )
            return None

    def _mapping(self, node: yaml.MappingNode, path: Path_) -> dict[str, Any]:
        result: dict[str, Any] = {}
        for key_node, value_node in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                self.problems.append(
                    CnnCliError(
                        "merge keys (<<) are not supported",
                        where=self._where(key_node, path),
                        hint="write the keys out",
                    )
                )
                continue
            if not isinstance(key_node, yaml.ScalarNode):
                self.problems.append(
                    CnnCliError(
                        "mapping keys must be plain names", where=self._where(key_node, path)
                    )
                )
                continue
            key = str(key_node.value)
            child = (*path, key)
            if key in result:
                first_line = self.source.key_positions[child][0]
                self.problems.append(
                    CnnCliError(
                        f"duplicate key '{key}' (first given on line {first_line})",
                        where=self._where(key_node, child),
                        hint="keep one of them; YAML would silently use the last",
                    )
                )
                continue
            self.source.key_positions[child] = (
                key_node.start_mark.line + 1,
                key_node.start_mark.column + 1,
            )
            result[key] = self.convert(value_node, child)
        return result
