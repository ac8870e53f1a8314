"""A search space: its paths checked like ``--set`` keys, and a point of it as a config."""

from __future__ import annotations

import copy
import math
import random
from pathlib import Path
from typing import Any

from cnncli.config.models import Config, SearchEntry, SearchRange, config_from_raw
from cnncli.config.overrides import set_path
from cnncli.config.source import key_to_path, path_to_key
from cnncli.errors import CnnCliError, ConfigErrors, Location, did_you_mean, short_repr

#: Sections a search cannot vary: the search itself and where results go.
FIXED_SECTIONS = ("search", "output", "name")
#: Paths every trial sets itself (``point_raw``): a value searched there would be overwritten
#: silently, so the trials would differ from what ``trials.csv`` and ``best.yaml`` say.
SET_BY_THE_SEARCH = {
    ("seed",): "every trial trains with the config's seed; set seed: once",
    ("data", "path"): "a search compares models on one data set; set data.path once",
    ("data", "test_path"): "a search compares models on one data set; set data.test_path once",
    ("fit", "validation_split"): "search.validation_split sets the part every trial is scored on",
}
#: A seed when the config has none: trials and ``best.yaml`` must train alike.
DEFAULT_SEED = 0
#: The most choices of one list tried alone by ``check_space``.
CHECKED_CHOICES = 16


def entry_location(config: Config, key: str, *, on_key: bool = False) -> Location:
    """Where the ``search.space`` entry ``key`` is written (its value, or its key)."""
    return config.source.locate(("search", "space", key), on_key=on_key)


def entry_values(entry: SearchEntry) -> list[Any]:
    """The values ``check_space`` tries alone: every choice (up to a limit), or both ends."""
    if isinstance(entry, SearchRange):
        low, high = entry.bounds
        return [low, high]
    return list(entry[:CHECKED_CHOICES])


def suggest_point(trial: Any, space: dict[str, SearchEntry]) -> dict[str, Any]:
    """Ask an Optuna trial for one value of every entry."""
    point: dict[str, Any] = {}
    for key, entry in space.items():
        if not isinstance(entry, SearchRange):
            point[key] = trial.suggest_categorical(key, entry)
        elif entry.int_range is not None:
            point[key] = trial.suggest_int(key, *entry.int_range, log=entry.log)
        else:
            low, high = entry.bounds
            point[key] = trial.suggest_float(key, low, high, log=entry.log)
    return point


def sample_points(space: dict[str, SearchEntry], count: int, seed: int) -> list[dict[str, Any]]:
    """``count`` points drawn uniformly (ranges on their log scale when ``log``), for the checks
    made before any trial trains."""
    rng = random.Random(seed)
    points = []
    for _ in range(count):
        point: dict[str, Any] = {}
        for key, entry in space.items():
            if not isinstance(entry, SearchRange):
                point[key] = rng.choice(entry)
                continue
            low, high = entry.bounds
            value = (
                math.exp(rng.uniform(math.log(low), math.log(high)))
                if entry.log
                else rng.uniform(low, high)
            )
            point[key] = round(value) if entry.int_range is not None else value
        points.append(point)
    return points


def point_raw(config: Config, point: dict[str, Any], validation_split: float) -> dict[str, Any]:
    """The config as plain data with ``point`` written in: no ``search:``, a seed, the search's
    validation split, absolute data paths. What a trial trains and ``best.yaml`` holds.

    Raises:
        CnnCliError: a path of the point cannot be set (located at its ``search.space`` entry).
    """
    raw = config.raw
    raw.pop("search", None)
    for key, value in point.items():
        path = _entry_path(config, key)
        try:
            set_path(raw, path, value, f"{key}={value}")
        except CnnCliError as exc:
            raise CnnCliError(
                exc.message, where=entry_location(config, key, on_key=True), hint=exc.hint
            ) from None
    raw["seed"] = config.seed if config.seed is not None else DEFAULT_SEED
    fit = raw.setdefault("fit", {})
    # the search's split where it names one, else the config's own, else the search's default
    named = config.search is not None and "validation_split" in config.search.model_fields_set
    if isinstance(fit, dict) and (named or not fit.get("validation_split")):
        fit["validation_split"] = validation_split
    data = raw.get("data")
    if isinstance(data, dict):  # the file may be written elsewhere (best.yaml)
        data["path"] = config.data.path
        if config.data.test_path is not None:
            data["test_path"] = config.data.test_path
    return raw


def point_config(config: Config, point: dict[str, Any], validation_split: float) -> Config:
    """``point_raw`` validated, each value's problems located at its ``search.space`` entry.

    Raises:
        CnnCliError, ConfigErrors: the point fails the config's schema or cross-field checks.
    """
    raw = point_raw(config, point, validation_split)
    source = copy.deepcopy(config.source)
    for key in point:
        path = _entry_path(config, key)
        value, name = entry_location(config, key), entry_location(config, key, on_key=True)
        for table in (source.positions, source.key_positions, source.overrides):
            for known in [p for p in table if p[: len(path)] == path]:
                del table[known]
        if value.line is not None:
            source.positions[path] = (value.line, value.column or 1)
        if name.line is not None:
            source.key_positions[path] = (name.line, name.column or 1)
    return config_from_raw(raw, source, Path(config.data.path).parent)


def check_space(config: Config) -> None:
    """Every path of ``search.space`` against the config, as ``--set`` keys are checked: each
    value alone (every choice, both ends of a range) must give a valid config.

    Raises:
        ConfigErrors: one line per problem, at the ``search.space`` entry.
    """
    assert config.search is not None
    split = config.search.validation_split
    problems: list[CnnCliError] = []
    for key, entry in config.search.space.items():
        try:
            _entry_path(config, key)
            _missing_parent(config, key)
            for value in entry_values(entry):
                point_config(config, {key: value}, split)
        except ConfigErrors as exc:
            problems += exc.problems
        except CnnCliError as exc:
            problems.append(exc)
    if problems:
        raise ConfigErrors(list({problem.one_line(): problem for problem in problems}.values()))


def _entry_path(config: Config, key: str) -> tuple[str | int, ...]:
    path = key_to_path(key)
    where = entry_location(config, key, on_key=True)
    if path is None:
        raise CnnCliError(
            f"{short_repr(key)} is not a config key",
            where=where,
            hint="join names with '.' and index lists with [n], e.g. model.layers[0].units",
        )
    if path[0] in FIXED_SECTIONS:
        raise CnnCliError(
            f"{path[0]} cannot be searched",
            where=where,
            hint="search model, compile, fit, preprocess or split values",
        )
    if path in SET_BY_THE_SEARCH:
        raise CnnCliError(f"{key} cannot be searched", where=where, hint=SET_BY_THE_SEARCH[path])
    return path


def _missing_parent(config: Config, key: str) -> None:
    """A list the path goes through that the config does not have: did you mean?"""
    path = _entry_path(config, key)
    container: Any = config.raw
    for depth, part in enumerate(path[:-1]):
        if isinstance(container, dict) and isinstance(part, str):
            if part not in container and isinstance(path[depth + 1], int):
                raise CnnCliError(
                    f"{path_to_key(path[: depth + 1])} is not in the config",
                    where=entry_location(config, key, on_key=True),
                    hint=did_you_mean(part, [str(name) for name in container], "check the path"),
                )
            container = container.get(part)
        elif isinstance(container, list) and isinstance(part, int):
            container = container[part] if -len(container) <= part < len(container) else None
        else:
            return  # set_path says what is wrong
