"""The FHIR R4 facade: Observation, Patient and Device read and search, CapabilityStatement.

Every answer is `application/fhir+json`; every error an OperationOutcome (api.errors).
Access and audit are those of the JSON API: the same services answer both.
"""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict

from rpm.api.deps import ActorDep, SessionDep
from rpm.api.errors import FHIR_JSON
from rpm.api.fhir import search
from rpm.api.pagination import Cursor, Moment
from rpm.devices import service as devices
from rpm.errors import InvalidInput, NotFound
from rpm.fhir.resources import capability_statement, device_resource, patient_resource, searchset
from rpm.observations import service as observations
from rpm.observations.repository import SearchCursor
from rpm.patients import service as patients

router = APIRouter(prefix="/fhir", tags=["fhir"])
STARTED = datetime.now(UTC)
SearchPosition = tuple[Moment, uuid.UUID]  # the last Observation's time and id
SEARCH_CURSOR: Cursor[SearchPosition] = Cursor("fhir-observations", SearchPosition, parameter="_cursor")


class FhirResource(BaseModel):
    """A FHIR R4 resource as JSON (documented here; the facade's tests validate each one with
    the `fhir.resources` models)."""

    model_config = ConfigDict(extra="allow")
    resourceType: str
    id: str | None = None


class FhirResponse(JSONResponse):
    media_type = FHIR_JSON


def _base(request: Request) -> str:
    return str(request.base_url).rstrip("/") + "/fhir"


def _id(text: str, kind: str) -> uuid.UUID:
    """Ids are UUIDs; anything else names no resource."""
    try:
        return uuid.UUID(text)
    except ValueError:
        raise NotFound("not_found", f"no such {kind}") from None


def _one(request: Request, name: str) -> str | None:
    values = request.query_params.getlist(name)
    if len(values) > 1:
        raise search.BadSearch("invalid_search", f"{name}: give it once")
    return values[0] if values else None


def _searchset(request: Request, resources: list[dict[str, Any]], next_url: str | None = None) -> FhirResponse:
    base = _base(request)
    self_url = f"{base}{request.url.path.removeprefix('/fhir')}" + (
        f"?{request.url.query}" if request.url.query else ""
    )
    return FhirResponse(searchset(resources, base, self_url, next_url))


@router.get("/metadata", response_model=FhirResource, response_class=FhirResponse)
async def metadata(request: Request) -> FhirResponse:
    """The CapabilityStatement: exactly the interactions and search parameters implemented."""
    return FhirResponse(capability_statement(_base(request), STARTED, search.RESOURCES))


@router.get("/Observation", response_model=FhirResource, response_class=FhirResponse)
async def search_observations(request: Request, session: SessionDep, actor: ActorDep) -> FhirResponse:
    """A searchset Bundle, newest first by default, with a `next` link while there is more."""
    params = request.query_params
    search.check_parameters("Observation", set(params), dict(params))
    if "patient" in params and "subject" in params:
        raise search.BadSearch("invalid_search", "patient and subject name the same thing: give one")
    subject = _one(request, "patient") or _one(request, "subject")
    sort = _one(request, "_sort") or "-date"
    if sort not in ("date", "-date"):
        raise search.BadSearch("invalid_search", "_sort: date or -date")
    count_text = _one(request, "_count") or "50"
    if not re.fullmatch(r"[0-9]{1,3}", count_text) or not 1 <= int(count_text) <= 500:
        raise search.BadSearch("invalid_search", "_count: a number from 1 to 500")
    count = int(count_text)
    codes = search.codes(params.getlist("code"))
    allowed = search.categories(params.getlist("category"))
    if allowed is not None:
        codes = allowed if codes is None else codes & allowed
    try:
        position = SEARCH_CURSOR.decode(_one(request, "_cursor"))
    except InvalidInput as error:
        raise search.BadSearch("invalid_search", "_cursor: not a cursor this server gave out") from error
    found = await observations.search_observations(
        session,
        actor,
        patient_id=search.patient_reference(subject) if subject else None,
        codes=codes,
        dates=search.date_bounds(params.getlist("date")),
        newest_first=sort == "-date",
        after=SearchCursor(*position) if position else None,
        limit=count,
    )
    next_url = None
    if len(found) > count:
        found = found[:count]
        last = found[-1]
        kept = [(k, v) for k, v in params.multi_items() if k != "_cursor"]
        cursor = SEARCH_CURSOR.encode((last.effective_at, last.id))
        next_url = f"{_base(request)}/Observation?{urlencode([*kept, ('_cursor', cursor)])}"
    return _searchset(request, [o.resource for o in found], next_url)


@router.get("/Observation/{observation_id}", response_model=FhirResource, response_class=FhirResponse)
async def read_observation(observation_id: str, session: SessionDep, actor: ActorDep) -> FhirResponse:
    found = await observations.read_observation(session, actor, _id(observation_id, "Observation"))
    return FhirResponse(found)


@router.get("/Patient/{patient_id}", response_model=FhirResource, response_class=FhirResponse)
async def read_patient(patient_id: str, session: SessionDep, actor: ActorDep) -> FhirResponse:
    return FhirResponse(patient_resource(await patients.read_model(session, actor, _id(patient_id, "patient"))))


@router.get("/Patient", response_model=FhirResource, response_class=FhirResponse)
async def search_patients(request: Request, session: SessionDep, actor: ActorDep) -> FhirResponse:
    """By `identifier`: `urn:oid:2.16.578.1.12.4.1.4.1|<fødselsnummer>` or
    `urn:oid:2.16.578.1.12.4.1.4.2|<D-number>` (or the number alone)."""
    search.check_parameters("Patient", set(request.query_params), dict(request.query_params))
    identifier = _one(request, "identifier")
    if not identifier:
        raise search.BadSearch("invalid_search", "identifier: required (system|value)")
    system, bar, value = identifier.rpartition("|")
    found = await patients.find_by_identifier(session, actor, system if bar and system else None, value)
    return _searchset(request, [patient_resource(p) for p in found])


@router.get("/Device/{device_id}", response_model=FhirResource, response_class=FhirResponse)
async def read_device(device_id: str, session: SessionDep, actor: ActorDep) -> FhirResponse:
    device, patient_id = await devices.read(session, actor, _id(device_id, "device"))
    return FhirResponse(device_resource(device, patient_id))


@router.get("/Device", response_model=FhirResource, response_class=FhirResponse)
async def search_devices(request: Request, session: SessionDep, actor: ActorDep) -> FhirResponse:
    """By `patient`: the devices assigned to the patient now."""
    search.check_parameters("Device", set(request.query_params), dict(request.query_params))
    subject = _one(request, "patient")
    if not subject:
        raise search.BadSearch("invalid_search", "patient: required")
    patient_id = search.patient_reference(subject)
    found = await devices.assigned_to(session, actor, patient_id)
    return _searchset(request, [device_resource(d, patient_id) for d in found])
