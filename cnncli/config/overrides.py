"""``--set key=value``: parse each override and apply it to the raw config before validation.

Values are parsed by ``source.parse_override_value``, with the same safe YAML 1.2 rules as a file,
and each override is recorded in the ``SourceMap`` so that a problem it causes points at it.
"""

from __future__ import annotations

import copy
from typing import Any

from cnncli.config.source import (
    SourceMap,
    key_to_path,
    override_place,
    parse_override_value,
    path_to_key,
)
from cnncli.errors import CnnCliError, Location, short_repr


def apply_overrides(
    raw: dict[str, Any], overrides: list[str] | tuple[str, ...], source: SourceMap
) -> dict[str, Any]:
    """Apply ``--set key=value`` overrides; values are parsed as YAML."""
    raw = copy.deepcopy(raw)
    for text in overrides:
        where = Location(file=override_place(text))
        key, sep, value_text = text.partition("=")
        path = key_to_path(key.strip())
        if not sep or not key.strip():
            raise CnnCliError(
                "expected key=value" if not sep else "no key before '='",
                where=where,
                hint="for example --set fit.epochs=5 or --set model.layers[0].filters=128",
            )
        if path is None:
            raise CnnCliError(
                f"{short_repr(key.strip())} is not a config key",
                where=where,
                hint="join names with '.' and index lists with [n], e.g. model.layers[0].units",
            )
        value = parse_override_value(value_text, override_place(text))
        set_path(raw, path, value, text)
        source.overrides[path] = text
    return raw


def set_path(raw: dict[str, Any], path: tuple[str | int, ...], value: Any, text: str) -> None:
    """Set ``path`` in ``raw`` to ``value`` as ``--set`` does (``text`` names it in errors):
    missing sections are created, a bare layer name becomes a mapping, indexes must exist."""
    container: Any = raw
    for depth, part in enumerate(path[:-1]):
        nxt = path[depth + 1]
        container = _step_into(container, part, nxt, text, path[: depth + 1])
    _assign(container, path[-1], value, text, path)


def _step_into(container: Any, part: str | int, nxt: str | int, text: str, path: tuple) -> Any:
    if isinstance(part, int):
        _check_index(container, part, text, path)
        item = container[part]
        if isinstance(item, str) and isinstance(nxt, str):  # bare layer name → mapping
            item = container[part] = {"type": item}
        return item
    if not isinstance(container, dict):
        raise CnnCliError(
            f"{path_to_key(path[:-1])} is not a mapping", where=Location(file=override_place(text))
        )
    if part not in container or container[part] is None:
        container[part] = [] if isinstance(nxt, int) else {}
    elif isinstance(container[part], str) and isinstance(nxt, str):  # `optimizer: adam`
        container[part] = {"type": container[part]}
    return container[part]


def _assign(container: Any, part: str | int, value: Any, text: str, path: tuple) -> None:
    if isinstance(part, int):
        _check_index(container, part, text, path)
        container[part] = value
    elif isinstance(container, dict):
        container[part] = value
    else:
        raise CnnCliError(
            f"{path_to_key(path[:-1])} is not a mapping", where=Location(file=override_place(text))
        )


def _check_index(container: Any, index: int, text: str, path: tuple) -> None:
    if not isinstance(container, list):
        raise CnnCliError(
            f"{path_to_key(path[:-1])} is not a list", where=Location(file=override_place(text))
        )
    if not -len(container) <= index < len(container):
        what = "stack" if path[:2] == ("model", "layers") else "list"
        unit = "layers" if what == "stack" else "items"
        raise CnnCliError(
            f"the {what} has {len(container)} {unit}",
            where=Location(file=override_place(text)),
            hint=f"use an index from 0 to {len(container) - 1}"
            if container
            else f"the {what} is empty: set the whole {path_to_key(path[:-1])}=[…] instead",
        )


def flatten_config(value: Any, prefix: str = "") -> dict[str, Any]:
    """A config as ``{key: value}``, each key a ``--set`` path (``model.layers[0].units``)."""
    if isinstance(value, dict):
        items: dict[str, Any] = {}
        for key, item in value.items():
            items.update(flatten_config(item, f"{prefix}.{key}" if prefix else str(key)))
        return items
    if isinstance(value, list):
        items = {}
        for index, item in enumerate(value):
            items.update(flatten_config(item, f"{prefix}[{index}]"))
        return items or {prefix: []}
    return {prefix: value}
