"""The error answers in the OpenAPI document, as errors.py renders them.

FastAPI documents only the success and its own 422 shape (`HTTPValidationError`, a list),
while every error here is `{"error": code, "detail": text}` under /api and a FHIR
OperationOutcome under /fhir. This fills each operation's responses with the errors it can
give, in the shape it gives them, so that a client generated from /openapi.json (or a
schemathesis run against it) knows every answer it can get.
"""

from __future__ import annotations

import json
from typing import Any

from fastapi import FastAPI
from pydantic import BaseModel

from rpm.api.errors import FHIR_JSON

API_ERROR = "ApiError"
OPERATION_OUTCOME = "OperationOutcome"
DESCRIPTIONS = {
    400: "the body is not JSON, or the search parameters cannot be used",
    401: "no valid token",
    403: "the caller's role does not allow this",
    404: "no such resource, or not one the caller may see",
    409: "conflicts with the current state",
    413: "the request body is too large",
    422: "the request does not follow this document",
}


class ApiError(BaseModel):
    error: str  # a stable code, e.g. not_found
    detail: str  # for people


_OPERATION_OUTCOME_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["resourceType", "issue"],
    "properties": {
        "resourceType": {"type": "string", "enum": ["OperationOutcome"]},
        "issue": {"type": "array", "items": {"type": "object"}},
    },
}


def _statuses(path: str, method: str, operation: dict[str, Any]) -> list[int]:
    """The errors an operation can answer with; what every route shares, and what depends on
    its parameters and body."""
    if not path.startswith(("/api/", "/fhir/")) or path == "/fhir/metadata":
        return [422] if operation.get("parameters") or operation.get("requestBody") else []
    statuses = [401, 403, 422]
    parameters = operation.get("parameters", [])
    if parameters or "requestBody" in operation:
        statuses.append(404)  # a path, query or body may name something that is not there
    if "requestBody" in operation:
        statuses += [400, 413]  # a body that is not JSON at all; too large
    if method in ("post", "put", "patch"):
        statuses.append(409)
    if path.startswith("/fhir/") and not any(p.get("in") == "path" for p in parameters):
        statuses.append(400)  # a FHIR search with parameters it does not support
    return sorted(set(statuses))


def document_errors(app: FastAPI) -> None:
    """Make `app.openapi()` describe the error answers of every operation."""

    build = app.openapi  # FastAPI's own

    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        document = build()
        schemas = document.setdefault("components", {}).setdefault("schemas", {})
        schemas[API_ERROR] = ApiError.model_json_schema()
        schemas[OPERATION_OUTCOME] = _OPERATION_OUTCOME_SCHEMA
        for path, operations in document.get("paths", {}).items():
            fhir = path.startswith("/fhir")
            media_type, schema = (FHIR_JSON, OPERATION_OUTCOME) if fhir else ("application/json", API_ERROR)
            for method, operation in operations.items():
                responses = operation.setdefault("responses", {})
                for status in _statuses(path, method, operation):
                    responses[str(status)] = {
                        "description": DESCRIPTIONS[status],
                        "content": {media_type: {"schema": {"$ref": f"#/components/schemas/{schema}"}}},
                    }
        if "HTTPValidationError" not in json.dumps(document["paths"]):
            for unused in ("HTTPValidationError", "ValidationError"):  # FastAPI's shapes, which no answer has
                schemas.pop(unused, None)
        return document

    app.openapi = openapi  # type: ignore[method-assign]
