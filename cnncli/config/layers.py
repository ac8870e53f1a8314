"""``repeat: N`` on a layer entry: the one place ``model.layers`` is expanded before validation.

A config (and a search space) indexes layers as written; the checks and the build see the
expanded stack. Each copy keeps the written entry's position, so an error about any copy
points at the entry in the file.
"""

from __future__ import annotations

import copy
from typing import Any

from cnncli.config.source import SourceMap
from cnncli.errors import CnnCliError, short_repr

REPEAT_KEY = "repeat"
#: More copies than any stack a CSV model needs; a typo of 10000 must not build for minutes.
MAX_REPEAT = 100


def expand_layer_repeats(raw: dict[str, Any], source: SourceMap) -> dict[str, Any]:
    """``model.layers`` with every ``repeat: N`` entry written out N times (without the key).

    Args:
        raw: the config as plain data (after ``--set``), left unchanged.
        source: positions of ``raw``; the copies' paths are added so they locate the entry.

    Returns:
        The config with the layers expanded (``raw`` itself when no entry repeats).

    Raises:
        CnnCliError: ``repeat`` is not an integer from 1 to ``MAX_REPEAT``.
    """
    model = raw.get("model")
    layers = model.get("layers") if isinstance(model, dict) else None
    if not isinstance(layers, list) or not any(
        isinstance(entry, dict) and REPEAT_KEY in entry for entry in layers
    ):
        return raw
    expanded: list[Any] = []
    origins: list[int] = []
    for index, entry in enumerate(layers):
        times = 1
        if isinstance(entry, dict) and REPEAT_KEY in entry:
            entry = {key: value for key, value in entry.items() if key != REPEAT_KEY}
            times = _repeat_count(layers[index][REPEAT_KEY], index, source)
        expanded += [copy.deepcopy(entry) for _ in range(times)]
        origins += [index] * times
    _relocate_layers(source, origins)
    result = dict(raw)
    result["model"] = {**model, "layers": expanded}
    return result


def _repeat_count(value: Any, index: int, source: SourceMap) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_REPEAT:
        raise CnnCliError(
            f"repeat must be an integer from 1 to {MAX_REPEAT}, got {short_repr(value)}",
            where=source.locate(("model", "layers", index, REPEAT_KEY)),
            hint="repeat: 2 writes the layer twice; leave it out for one",
        )
    return value


def _relocate_layers(source: SourceMap, origins: list[int]) -> None:
    """Give the expanded layer ``i`` the positions (and ``--set`` overrides) of its entry."""
    prefix = ("model", "layers")
    count = max(origins) + 1
    for table in (source.positions, source.key_positions, source.overrides):
        written = {
            path: value
            for path, value in table.items()
            if path[:2] == prefix and len(path) > 2 and isinstance(path[2], int)
        }
        for path in written:
            del table[path]
        for new, old in enumerate(origins):
            for path, value in written.items():
                if path[2] % count == old:  # `--set model.layers[-1]...` names the last entry
                    table[(*prefix, new, *path[3:])] = value
