"""The FHIR R4 facade: Observation search and read, Patient, Device, CapabilityStatement."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from api.deps import ActorDep, SessionDep
from api.errors import FHIR_JSON
from api.fhir import search
from api.pagination import decode_cursor, encode_cursor
from rpm.devices import service as devices
from rpm.errors import InvalidInput
from rpm.fhir.resources import capability_statement, device_resource, patient_resource, searchset
from rpm.observations import service as observations
from rpm.observations.repository import SearchCursor
from rpm.patients import service as patients

router = APIRouter(prefix="/fhir", tags=["fhir"])
OBSERVATION_PARAMS = {"patient", "subject", "code", "date", "_count", "_sort", "_cursor", "_format"}
STARTED = datetime.now(UTC)


class FhirResponse(JSONResponse):
    media_type = FHIR_JSON


def _base(request: Request) -> str:
    return str(request.base_url).rstrip("/") + "/fhir"


@router.get("/metadata", response_class=FhirResponse)
async def metadata(request: Request) -> dict[str, Any]:
    return capability_statement(_base(request), STARTED)


@router.get("/Observation", response_class=FhirResponse)
async def search_observations(request: Request, session: SessionDep, actor: ActorDep) -> dict[str, Any]:
    params = request.query_params
    unknown = sorted(set(params) - OBSERVATION_PARAMS)
    if unknown:
        raise search.BadSearch("invalid_search", f"unsupported search parameter {unknown[0]!r}")
    subject = params.get("patient") or params.get("subject")
    patient_id = search.patient_reference(subject) if subject else None
    sort = params.get("_sort", "-date")
    if sort not in ("date", "-date"):
        raise search.BadSearch("invalid_search", "_sort: date or -date")
    try:
        count = int(params.get("_count", "50"))
    except ValueError:
        raise search.BadSearch("invalid_search", "_count: a number from 1 to 500") from None
    if not 1 <= count <= 500:
        raise search.BadSearch("invalid_search", "_count: a number from 1 to 500")
    try:
        position = decode_cursor(params.get("_cursor"))
        after = SearchCursor(datetime.fromisoformat(position[0]), uuid.UUID(position[1])) if position else None
    except (InvalidInput, ValueError, TypeError, IndexError, KeyError, AttributeError):
        raise search.BadSearch("invalid_search", "_cursor: not a cursor this server gave out") from None

    found = await observations.search_observations(
        session,
        actor,
        patient_id=patient_id,
        codes=search.codes(params.getlist("code")),
        dates=search.date_bounds(params.getlist("date")),
        newest_first=sort == "-date",
        after=after,
        limit=count + 1,
    )
    base = _base(request)
    next_url = None
    if len(found) > count:
        found = found[:count]
        last = found[-1]
        kept = [(k, v) for k, v in params.multi_items() if k != "_cursor"]
        cursor = encode_cursor([last.effective_at.isoformat(), str(last.id)])
        next_url = f"{base}/Observation?{urlencode([*kept, ('_cursor', cursor)])}"
    self_url = f"{base}/Observation" + (f"?{request.url.query}" if request.url.query else "")
    return searchset([o.resource for o in found], base, self_url, next_url)


@router.get("/Observation/{observation_id}", response_class=FhirResponse)
async def read_observation(observation_id: uuid.UUID, session: SessionDep, actor: ActorDep) -> dict[str, Any]:
    return await observations.read_observation(session, actor, observation_id)


@router.get("/Patient/{patient_id}", response_class=FhirResponse)
async def read_patient(patient_id: uuid.UUID, session: SessionDep, actor: ActorDep) -> dict[str, Any]:
    return patient_resource(await patients.read_model(session, actor, patient_id))


@router.get("/Patient", response_class=FhirResponse)
async def search_patients(request: Request, identifier: str, session: SessionDep, actor: ActorDep) -> dict[str, Any]:
    system, bar, value = identifier.rpartition("|")
    found = await patients.find_by_identifier(session, actor, system if bar and system else None, value)
    base = _base(request)
    return searchset([patient_resource(p) for p in found], base, f"{base}/Patient?{request.url.query}", None)


@router.get("/Device/{device_id}", response_class=FhirResponse)
async def read_device(device_id: uuid.UUID, session: SessionDep, actor: ActorDep) -> dict[str, Any]:
    return device_resource(await devices.read(session, actor, device_id))
