"""The OpenAPI 3.1 document of ``cnncli serve`` and its ``/docs`` page, written out by hand:
the request and response bodies of every endpoint, the error body and each status."""

from __future__ import annotations

from typing import Any

from cnncli import __version__

#: ``/docs``: Swagger UI (loaded by the browser from its CDN) on ``/openapi.json``.
SWAGGER_PAGE = """<!doctype html>
<html><head><title>cnncli serve</title><meta charset="utf-8">
<link rel="stylesheet" href="https://cdn.jsdelivr.net/npm/swagger-ui-dist@5/swagger-ui.css">
</head><body><div id="docs"></div>
<script src="https://cdn.jsdelivr.net/npm/swagger-ui-dist@5/swagger-ui-bundle.js"></script>
<script>SwaggerUIBundle({url: "/openapi.json", dom_id: "#docs"});</script>
</body></html>
"""


def openapi_document(names: list[str], run_name: str) -> dict[str, Any]:
    """The OpenAPI 3.1 description of every endpoint: bodies, answers, errors.

    Args:
        names: the run's features, in order.
        run_name: the run folder's name, for the description.
    """
    errors = {str(status): response for status, response in _ERROR_RESPONSES.items()}

    def answer(media: str, schema: dict[str, Any], description: str) -> dict[str, Any]:
        return {"description": description, "content": {media: {"schema": schema}}}

    json_object = {"type": "object"}
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "cnncli serve",
            "version": __version__,
            "description": f"Predictions of the cnncli run {run_name}.",
        },
        "paths": {
            "/predict": {
                "post": {
                    "summary": "Predict rows given as JSON",
                    "requestBody": _predict_request_schema(names),
                    "responses": {
                        "200": answer("application/json", _predict_response_schema(), "labels")
                    }
                    | errors,
                }
            },
            "/predict/csv": {
                "post": {
                    "summary": "Predict the rows of a CSV body, CSV out (predict --input-file's)",
                    "requestBody": {
                        "required": True,
                        "content": {"text/csv": {"schema": {"type": "string"}}},
                        "description": f"a header naming {', '.join(names)} (others are keys)",
                    },
                    "responses": {"200": answer("text/csv", {"type": "string"}, "predictions")}
                    | errors,
                }
            },
            "/health": {
                "get": {
                    "summary": "Ready once the model answered its warm-up row",
                    "responses": {"200": answer("application/json", json_object, "ready")},
                }
            },
            "/metadata": {
                "get": {
                    "summary": "The run: features with types and ranges, classes, task",
                    "responses": {"200": answer("application/json", json_object, "the run")},
                }
            },
            "/metrics": {
                "get": {
                    "summary": "Requests, errors, rows and latency in Prometheus text",
                    "responses": {"200": answer("text/plain", {"type": "string"}, "metrics")},
                }
            },
        },
    }


def _predict_request_schema(names: list[str]) -> dict[str, Any]:
    """OpenAPI for ``/predict``'s body: rows in feature order, or records by name."""
    cell = {"type": ["number", "string", "null"]}
    example = {"rows": [[0.0] * len(names)]}
    return {
        "required": True,
        "content": {
            "application/json": {
                "schema": {
                    "oneOf": [
                        {
                            "type": "object",
                            "properties": {
                                "rows": {
                                    "type": "array",
                                    "items": {
                                        "type": "array",
                                        "items": cell,
                                        "minItems": len(names),
                                        "maxItems": len(names),
                                    },
                                }
                            },
                            "required": ["rows"],
                            "additionalProperties": False,
                        },
                        {
                            "type": "object",
                            "properties": {
                                "records": {
                                    "type": "array",
                                    "items": {
                                        "type": "object",
                                        "properties": {name: cell for name in names},
                                        "required": names,
                                        "additionalProperties": False,
                                    },
                                }
                            },
                            "required": ["records"],
                            "additionalProperties": False,
                        },
                    ]
                },
                "example": example,
            }
        },
    }


def _predict_response_schema() -> dict[str, Any]:
    """OpenAPI for ``/predict``'s answer."""
    return {
        "type": "object",
        "properties": {
            "predictions": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {
                        "label": {"description": "the class, or the value in the label's units"},
                        "probabilities": {
                            "type": "object",
                            "additionalProperties": {"type": "number"},
                            "description": "each class's probability (classifiers only)",
                        },
                    },
                },
            },
            "backend": {"type": "string"},
            "warnings": {"type": "array", "items": {"type": "string"}},
        },
    }


_ERROR_SCHEMA = {
    "type": "object",
    "properties": {
        "error": {"type": "string", "description": "the one line the CLI would print"},
        "row": {"type": ["integer", "null"], "description": "0-based row of a JSON body"},
        "line": {"type": ["integer", "null"], "description": "line of a CSV body"},
        "column": {"type": ["string", "null"]},
        "hint": {"type": ["string", "null"]},
    },
}
_ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {"description": what, "content": {"application/json": {"schema": _ERROR_SCHEMA}}}
    for status, what in {
        400: "not JSON, or not rows/records of the model's features",
        401: "a token is required and missing or wrong",
        413: "over --max-body or --max-rows",
        415: "wrong content type",
        422: "a cell the training rules refuse (row and column named)",
        503: "over --timeout",
    }.items()
}
