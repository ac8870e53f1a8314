"""Pass one's wording: turn pydantic's validation errors into one-line messages.

Each message says what is wrong and what was received, points at the line and column the value
came from (or the ``--set`` that gave it), and hints what to write instead.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ValidationError

from cnncli.config.source import SourceMap, path_to_key
from cnncli.errors import CnnCliError, did_you_mean, short_repr

_EXAMPLES = {
    "data.path": "path: data/train.csv",
    "model.layers": "layers: [{type: Dense, units: 16}, {type: Dense, units: auto}]",
    "model": "model: {layers: [{type: Dense, units: auto}]}",
    "data": "data: {path: data/train.csv}",
}


def explain_errors(
    error: ValidationError, source: SourceMap, root: type[BaseModel]
) -> list[CnnCliError]:
    """One problem per pydantic error, in the user's terms.

    Args:
        error: what ``root.model_validate`` raised.
        source: where each value of the raw config came from.
        root: the model that was validated, to list the keys a section allows.

    Returns:
        The problems, each with its location and, where one helps, a hint.
    """
    return [_explain(item, source, root) for item in error.errors()]


def _section_model(root: type[BaseModel], path: tuple[str | int, ...]) -> type[BaseModel] | None:
    """The model that holds the keys at ``path`` (a section such as ``fit``), if it is one."""
    model = root
    for part in path:
        field = model.model_fields.get(part) if isinstance(part, str) else None
        annotation = field.annotation if field else None
        if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
            return None
        model = annotation
    return model


def _yaml_path(loc: tuple[Any, ...]) -> tuple[str | int, ...]:
    """Map pydantic's error location back onto the path a user wrote in YAML."""
    path: list[str | int] = []
    for part in loc:
        if part == "args" and path and isinstance(path[-1], int):
            continue  # NamedObject keeps extra keys under "args"; users write them inline
        if isinstance(part, str) and (
            part.startswith("function-") or part in ("str", "int", "dict", "literal['auto']")
        ):
            continue  # union branch labels
        path.append(part)
    return tuple(path)


def _explain(error: dict[str, Any], source: SourceMap, root: type[BaseModel]) -> CnnCliError:
    path = _yaml_path(error["loc"])
    kind = error["type"]
    received = error.get("input")
    shown = short_repr(received)
    key = path_to_key(path)
    if kind == "extra_forbidden":
        name = str(path[-1])
        model = _section_model(root, path[:-1])
        allowed = sorted(model.model_fields) if model else []
        hint = did_you_mean(name, allowed, f"allowed keys: {', '.join(allowed)}")
        return CnnCliError(
            f"unknown key '{name}'", where=source.locate(path, on_key=True), hint=hint
        )
    if kind == "missing":
        example = _EXAMPLES.get(key)
        return CnnCliError(
            "missing required value",
            where=source.locate(path),
            hint=f"add it, for example `{example}`" if example else f"add `{path[-1]}:`",
        )
    if kind == "literal_error":
        expected = error.get("ctx", {}).get("expected", "")
        options = [option.strip(" '") for option in expected.replace(" or ", ",").split(",")]
        hint = did_you_mean(str(received), options, f"use one of: {', '.join(options)}")
        return CnnCliError(
            f"got {shown}, expected one of {', '.join(options)}",
            where=source.locate(path),
            hint=hint,
        )
    if kind in ("greater_than", "greater_than_equal", "less_than", "less_than_equal"):
        ctx = error.get("ctx", {})
        if "gt" in ctx and ctx["gt"] == 0 and isinstance(received, int):
            return CnnCliError(
                f"expected a positive integer, got {received}",
                where=source.locate(path),
                hint=f"set {path[-1]} to 1 or more",
            )
        bound = {
            "greater_than": ">",
            "greater_than_equal": ">=",
            "less_than": "<",
            "less_than_equal": "<=",
        }
        return CnnCliError(
            f"expected a value {bound[kind]} {next(iter(ctx.values()))}, got {received}",
            where=source.locate(path),
        )
    if kind in ("int_parsing", "int_type", "int_from_float"):
        return CnnCliError(f"expected an integer, got {shown}", where=source.locate(path))
    if kind in ("float_parsing", "float_type"):
        return CnnCliError(f"expected a number, got {shown}", where=source.locate(path))
    if kind in ("bool_parsing", "bool_type"):
        return CnnCliError(f"expected true or false, got {shown}", where=source.locate(path))
    if kind in ("list_type", "dict_type", "model_type", "model_attributes_type", "string_type"):
        wanted = {
            "list_type": "a list",
            "dict_type": "a mapping",
            "model_type": "a mapping",
            "model_attributes_type": "a mapping",
            "string_type": "a string",
        }[kind]
        return CnnCliError(f"expected {wanted}, got {shown}", where=source.locate(path))
    if kind == "too_short":
        return CnnCliError("must not be empty", where=source.locate(path), hint=_hint_for(key))
    if kind == "string_pattern_mismatch":
        return CnnCliError(
            f"{shown} is not a usable name",
            where=source.locate(path),
            hint="use letters, digits, '-', '_' and '.', starting with a letter or digit",
        )
    message = str(error.get("msg", "invalid value")).removeprefix("Value error, ")
    return CnnCliError(message, where=source.locate(path))


def _hint_for(key: str) -> str | None:
    example = _EXAMPLES.get(key)
    return f"for example `{example}`" if example else None
