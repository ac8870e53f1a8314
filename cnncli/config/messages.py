"""Pass one's wording: turn pydantic's validation errors into one-line messages.

Each message says what is wrong and what was received, points at the line and column the value
came from (or the ``--set`` that gave it), and hints what to write instead.
"""

from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel, ValidationError

from cnncli.config.source import SourceMap, path_to_key
from cnncli.errors import CnnCliError, did_you_mean, short_repr

_EXAMPLES = {
    "data.path": "path: data/train.csv",
    "model.layers": "layers: [{type: Dense, units: 16}, {type: Dense, units: auto}]",
    "model": "model: {layers: [{type: Dense, units: auto}]}",
    "data": "data: {path: data/train.csv}",
    "fit.class_weight": "class_weight: balanced` or `class_weight: {rare: 5.0}",
}

#: The error type of a value that fits none of a field's forms (a discriminated union's custom
#: error): its ``msg``, set where the field is declared, names the forms, with the words allowed
#: in quotes for a did-you-mean: ``'balanced' or a mapping {class: weight}``.
WRONG_TYPE = "wrong_type"


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
    groups: dict[tuple[str | int, ...], list[dict[str, Any]]] = {}
    for item in error.errors():
        groups.setdefault(_yaml_path(item["loc"]), []).append(item)
    return [_explain_group(items, source, root) for items in groups.values()]


#: What a value of the wrong type was expected to be, per pydantic error type.
_EXPECTED = {
    "int_type": "an integer",
    "int_parsing": "an integer",
    "int_from_float": "an integer",
    "float_type": "a number",
    "float_parsing": "a number",
    "bool_type": "true or false",
    "bool_parsing": "true or false",
    "string_type": "a string",
    "list_type": "a list",
    "dict_type": "a mapping",
    "model_type": "a mapping",
    "model_attributes_type": "a mapping",
}


def _explain_group(
    items: list[dict[str, Any]], source: SourceMap, root: type[BaseModel]
) -> CnnCliError:
    """One problem for one value: a union (``int | 'auto'``) fails once per branch."""
    if len(items) == 1:
        return _explain(items[0], source, root)
    constraints = [
        item for item in items if item["type"] not in _EXPECTED and item["type"] != "literal_error"
    ]
    if constraints:  # the value had a branch's type but broke its rule: that rule is the problem
        return _explain(constraints[0], source, root)
    wanted: list[str] = []
    for item in items:
        if item["type"] == "literal_error":
            wanted += [repr(option) for option in _literal_options(item)]
        else:
            wanted.append(_EXPECTED[item["type"]])
    path = _yaml_path(items[0]["loc"])
    received = items[0].get("input")
    numeric = any(item["type"].startswith(("int", "float")) for item in items)
    return CnnCliError(
        f"expected {' or '.join(dict.fromkeys(wanted))}, got {describe_value(received)}",
        where=source.locate(path),
        hint=type_hint(received, path) if numeric else None,
    )


def _literal_options(error: dict[str, Any]) -> list[str]:
    expected = error.get("ctx", {}).get("expected", "")
    return [option.strip(" '") for option in expected.replace(" or ", ",").split(",")]


def describe_value(value: Any) -> str:
    """A wrong-typed value in YAML's words: ``a boolean (true)``, ``a string ('3')``,
    ``a list ([1, 2])``."""
    if isinstance(value, bool):
        return f"a boolean ({str(value).lower()})"
    if isinstance(value, str):
        return f"a string ({short_repr(value)})"
    if isinstance(value, list):
        return f"a list ({short_repr(value)})"
    if isinstance(value, dict):
        return f"a mapping ({short_repr(value)})"
    if value is None:
        return "nothing (null)"
    return short_repr(value)


def type_hint(value: Any, path: tuple[str | int, ...]) -> str | None:
    """What to write instead of a boolean or a quoted number where a number belongs (the
    config's fields here, and a Keras argument in ``model.arguments``)."""
    name = path[-1] if path else "it"
    if isinstance(value, bool):
        return "a boolean is not a number here; write the number itself"
    if isinstance(value, str):
        text = value.strip()
        if "_" in text and is_number(text.replace("_", "")):
            # The YAML 1.2 core schema has no digit separators (1.1 had): `1_000` is a string.
            return f"YAML 1.2 numbers have no '_' separators: write {name}: {text.replace('_', '')}"
        if is_number(text):
            return f"remove the quotes: {name}: {text}"
    return None


def is_number(text: str) -> bool:
    """Whether ``text`` reads as a number (``3``, ``1e-3``, ``nan``): a quoted number."""
    try:
        float(text)
    except ValueError:
        return False
    return True


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
            part.startswith(("function-", "entry-"))
            or part in ("str", "int", "bool", "dict", "list", "literal['auto']")
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
        options = _literal_options(error)
        hint = did_you_mean(str(received), options, f"use one of: {', '.join(options)}")
        return CnnCliError(
            f"got {shown if isinstance(received, str) else describe_value(received)},"
            f" expected one of {', '.join(options)}",
            where=source.locate(path),
            hint=hint,
        )
    if kind in ("greater_than", "greater_than_equal", "less_than", "less_than_equal"):
        ctx = error.get("ctx", {})
        # an integer field's bound is an int (gt=0); a number field's is a float (gt=0.0)
        if ctx.get("gt") == 0 and type(ctx["gt"]) is int and isinstance(received, int):
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
    if kind == "model_type" and error.get("ctx", {}).get("class_name") in _NAMED_OBJECTS:
        return CnnCliError(
            f"expected a name or a mapping with a type, got {describe_value(received)}",
            where=source.locate(path),
            hint="for example " + _NAMED_EXAMPLES.get(path_to_key(path[:2]), _NAMED_EXAMPLES[""]),
        )
    if kind in _EXPECTED:
        return CnnCliError(
            f"expected {_EXPECTED[kind]}, got {describe_value(received)}",
            where=source.locate(path),
            hint=type_hint(received, path) if kind not in ("bool_type", "bool_parsing") else None,
        )
    if kind == WRONG_TYPE:
        words = re.findall(r"'([^']+)'", str(error["msg"]))
        fallback = _hint_for(key)
        return CnnCliError(
            f"expected {error['msg']}, got {describe_value(received)}",
            where=source.locate(path),
            hint=did_you_mean(received, words, fallback or "")
            if isinstance(received, str)
            else fallback,
        )
    if kind == "finite_number":
        return CnnCliError(
            f"expected a finite number, got {describe_value(received)}",
            where=source.locate(path),
            hint="write an ordinary number (not .nan or .inf)",
        )
    if kind == "too_short":
        return CnnCliError("must not be empty", where=source.locate(path), hint=_hint_for(key))
    if kind == "string_too_long":
        limit = error.get("ctx", {}).get("max_length")
        return CnnCliError(
            f"{len(str(received))} characters, more than the {limit} allowed",
            where=source.locate(path),
            hint=f"shorten it to {limit} characters or fewer",
        )
    if kind == "string_pattern_mismatch":
        return CnnCliError(
            f"{shown} is not a usable name",
            where=source.locate(path),
            hint="use letters, digits, '-', '_' and '.', starting with a letter or digit",
        )
    message = str(error.get("msg", "invalid value")).removeprefix("Value error, ")
    return CnnCliError(message, where=source.locate(path))


#: Models a config may also write as a bare name (``loss: mse``).
_NAMED_OBJECTS = ("NamedObject", "LayerSpec", "CallbackSpec")
_NAMED_EXAMPLES = {
    "": "`adam` or `{type: Adam, learning_rate: 0.001}`",
    "compile.loss": "`mse` or `{type: Huber, delta: 1.0}`",
    "compile.metrics": "`accuracy` or `{type: AUC}`",
    "model.layers": "`Flatten` or `{type: Dense, units: 8}`",
    "fit.callbacks": "`{type: EarlyStopping, patience: 5}`",
}


def _hint_for(key: str) -> str | None:
    example = _EXAMPLES.get(key)
    return f"for example `{example}`" if example else None
