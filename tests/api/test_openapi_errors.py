"""The error answers are in /openapi.json as the API gives them (found by tests/fuzz's
schemathesis run: 404s, 401s and bodies that are not JSON were undocumented, and every 422
was described as FastAPI's list of validation errors, not the `{"error", "detail"}` it is)."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import jsonschema

from tests.conftest import ORG_A


async def document(client: httpx.AsyncClient) -> dict[str, Any]:
    response = await client.get("/openapi.json")
    assert response.status_code == 200
    return response.json()


def error_schema(spec: dict[str, Any], path: str, method: str, status: int, media_type: str) -> dict[str, Any]:
    answer = spec["paths"][path][method]["responses"][str(status)]
    reference = answer["content"][media_type]["schema"]["$ref"]
    return {**spec["components"]["schemas"][reference.rsplit("/", 1)[1]], "components": spec["components"]}


async def test_a_404_and_a_422_answer_as_documented(client: httpx.AsyncClient, tokens):
    spec = await document(client)
    missing = await client.get(f"/api/v1/patients/{uuid.uuid4()}", headers=tokens(ORG_A, "nurse"))
    assert missing.status_code == 404
    jsonschema.validate(
        missing.json(), error_schema(spec, "/api/v1/patients/{patient_id}", "get", 404, "application/json")
    )
    invalid = await client.get("/api/v1/patients?limit=0", headers=tokens(ORG_A, "nurse"))
    assert invalid.status_code == 422
    jsonschema.validate(invalid.json(), error_schema(spec, "/api/v1/patients", "get", 422, "application/json"))
    assert "HTTPValidationError" not in spec["components"]["schemas"]


async def test_a_body_that_is_not_json_answers_400_as_documented(client: httpx.AsyncClient, tokens):
    spec = await document(client)
    headers = {**tokens(ORG_A, "admin"), "Content-Type": "application/json"}
    response = await client.post("/api/v1/devices", content=b"\xff not json", headers=headers)
    assert response.status_code == 400
    jsonschema.validate(response.json(), error_schema(spec, "/api/v1/devices", "post", 400, "application/json"))


async def test_without_a_token_the_401_is_documented(client: httpx.AsyncClient):
    spec = await document(client)
    response = await client.get("/api/v1/alerts")
    assert response.status_code == 401
    jsonschema.validate(response.json(), error_schema(spec, "/api/v1/alerts", "get", 401, "application/json"))


async def test_fhir_errors_are_documented_as_operation_outcomes(client: httpx.AsyncClient, tokens):
    spec = await document(client)
    response = await client.get(f"/fhir/Patient/{uuid.uuid4()}", headers=tokens(ORG_A, "nurse"))
    assert response.status_code == 404
    assert response.headers["content-type"].startswith("application/fhir+json")
    schema = error_schema(spec, "/fhir/Patient/{patient_id}", "get", 404, "application/fhir+json")
    jsonschema.validate(response.json(), schema)
    assert "400" in spec["paths"]["/fhir/Patient"]["get"]["responses"]  # an unsupported search parameter


async def test_every_api_operation_documents_the_errors_every_route_can_give(client: httpx.AsyncClient):
    spec = await document(client)
    for path, operations in spec["paths"].items():
        if not path.startswith(("/api/", "/fhir/")) or path == "/fhir/metadata":
            continue
        for method, operation in operations.items():
            assert {"401", "403", "422"} <= set(operation["responses"]), f"{method.upper()} {path}"
