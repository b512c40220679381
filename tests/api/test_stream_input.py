"""The alert stream's resume position is checked before the stream starts (found by tests/fuzz's
schemathesis run: a Last-Event-ID beyond 64 bits reached the database from inside the stream,
and the answer broke off after its first line)."""

from __future__ import annotations

import httpx
import pytest

from tests.conftest import ORG_A


@pytest.mark.parametrize("event_id", [str(2**63), "-1", "9" * 40, "1_000", " 12", "1e3", ""])
async def test_a_last_event_id_that_is_no_event_id_is_refused(client: httpx.AsyncClient, tokens, event_id):
    response = await client.get("/api/v1/alerts/stream", headers={**tokens(ORG_A, "nurse"), "Last-Event-ID": event_id})
    assert response.status_code == 422
    assert response.json()["error"] == "invalid_last_event_id"


@pytest.mark.parametrize("after", [str(2**63), "-1"])
async def test_an_after_position_beyond_an_event_id_is_refused(client: httpx.AsyncClient, tokens, after):
    response = await client.get(f"/api/v1/alerts/stream?after={after}", headers=tokens(ORG_A, "nurse"))
    assert response.status_code == 422
    assert response.json()["error"] == "invalid_request"
