"""The JSON Schema of a config, in the shape users write (layers inline, bare names allowed)."""

from __future__ import annotations

from typing import Any

from cnncli.config.models import SCHEMA_URL, Config

_NAMED = {
    "anyOf": [
        {"type": "string", "description": "a Keras name, e.g. adam or Dense"},
        {
            "type": "object",
            "required": ["type"],
            "properties": {"type": {"type": "string"}},
            "additionalProperties": True,
            "description": "the Keras class name in type; every other key is a keyword argument",
        },
    ]
}


_BLOCK_USE = {
    "type": "object",
    "required": ["block"],
    "properties": {
        "block": {"type": "string", "description": "a block named under model.blocks"},
        "repeat": {"type": "integer", "minimum": 1, "default": 1},
        "name": {"type": "string", "description": "the node's name, in model.graph"},
        "inputs": {
            "anyOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}],
            "description": "the nodes it takes (model.graph); default: the node above",
        },
    },
    "additionalProperties": True,
    "description": "a use of a block; every other key fills one of the block's params",
}


def config_json_schema() -> dict[str, Any]:
    """JSON Schema (draft 2020-12) for editors: completion, types and unknown-key warnings."""
    schema = Config.model_json_schema(mode="validation")
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["$id"] = SCHEMA_URL
    schema["title"] = "cnncli config"
    defs = schema.get("$defs", {})
    for name in ("NamedObject", "LayerSpec", "CallbackSpec"):
        if name in defs:
            defs[name] = {**_NAMED, "title": name}
    if "BlockUse" in defs:
        defs["BlockUse"] = {**_BLOCK_USE, "title": "BlockUse"}
    return schema
