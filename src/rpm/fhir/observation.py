"""Mapping a checked reading to FHIR R4 Observation JSON. Pure.

The shape follows the FHIR R4 vital-signs profile where it applies (status, category,
code, subject, effective[x], valueQuantity in UCUM, blood-pressure components).
"""

from __future__ import annotations

import functools
import uuid
from datetime import datetime
from typing import Any

from rpm.fhir.codes import (
    CODES_BY_LOINC,
    LOINC,
    OBSERVATION_CATEGORY,
    READING_IDENTIFIER_SYSTEM,
    UCUM,
)
from rpm.observations.readings import ObservationDraft
from rpm.rules.bands import GREEN, Band, Judgement

INTERPRETATION_SYSTEM = "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation"
INTERPRETATION_DISPLAY = {"N": "Normal", "L": "Low", "H": "High", "LL": "Critical low", "HH": "Critical high"}

VITAL_SIGNS_CATEGORY = {
    "coding": [{"system": OBSERVATION_CATEGORY, "code": "vital-signs", "display": "Vital Signs"}],
    "text": "Vital Signs",
}


def quantity(value: float, unit: str) -> dict[str, Any]:
    return {"value": value, "unit": unit, "system": UCUM, "code": unit}


# The same few fragments appear in every Observation; they are built once and shared
# (resources are serialised, never mutated).
_INTERPRETATIONS = {
    code: [{"coding": [{"system": INTERPRETATION_SYSTEM, "code": code, "display": display}], "text": display}]
    for code, display in INTERPRETATION_DISPLAY.items()
}


_NORMAL = _INTERPRETATIONS["N"]


def interpretation(judgement: Judgement) -> list[dict[str, Any]]:
    return _NORMAL if judgement is GREEN else _INTERPRETATIONS[judgement.interpretation]


def reference_range(band: Band | None, unit: str) -> list[dict[str, Any]]:
    """The patient's yellow band: inside it the value is within the patient's targets."""
    if band is None:
        return []
    return _reference_range(band.low, band.high, unit)  # plain values: a dataclass hashes in Python


@functools.lru_cache(maxsize=4096)
def _reference_range(low: float | None, high: float | None, unit: str) -> list[dict[str, Any]]:
    sides = Band(low=low, high=high).as_dict()
    if not sides:
        return []
    reference: dict[str, Any] = {side: quantity(value, unit) for side, value in sides.items()}
    reference["text"] = "the patient's yellow band"
    return [reference]


def _judged(target: dict[str, Any], judgement: Judgement | None, band: Band | None, unit: str) -> None:
    if judgement is not None:
        target["interpretation"] = interpretation(judgement)
    ranges = reference_range(band, unit)
    if ranges:
        target["referenceRange"] = ranges


@functools.lru_cache(maxsize=8192)
def reference(resource_type: str, resource_id: uuid.UUID) -> dict[str, str]:
    """A reference to a patient or device: a batch names the same few over and over."""
    return {"reference": f"{resource_type}/{resource_id}"}


@functools.lru_cache(maxsize=16)
def instant(at: datetime) -> str:
    return at.isoformat()


@functools.cache
def codeable(code: str, display: str, extra: tuple[tuple[str, str], ...] = ()) -> dict[str, Any]:
    codings = [{"system": LOINC, "code": code, "display": display}]
    codings += [{"system": LOINC, "code": c, "display": d} for c, d in extra]
    return {"coding": codings, "text": display}


def observation_resource(
    draft: ObservationDraft,
    *,
    observation_id: uuid.UUID,
    patient_id: uuid.UUID,
    device_id: uuid.UUID,
    effective: str,
    issued: datetime,
    panel_id: uuid.UUID | None = None,
    judgements: dict[str, Judgement] | None = None,
    yellow_bands: dict[str, Band] | None = None,
) -> dict[str, Any]:
    """The Observation for one draft. `effective` is the reading's own time text, offset kept.

    `judgements` (by LOINC code) and the patient's `yellow_bands` add the interpretation and
    referenceRange; a panel gets them per component and its worst judgement on the whole.
    """
    judgements = judgements or {}
    yellow_bands = yellow_bands or {}
    reading_type = draft.reading_type
    resource: dict[str, Any] = {
        "resourceType": "Observation",
        "id": str(observation_id),
        "identifier": [{"system": READING_IDENTIFIER_SYSTEM, "value": draft.identifier}],
        "status": "final",
    }
    if reading_type.vital_signs:
        resource["category"] = [VITAL_SIGNS_CATEGORY]
    resource["code"] = codeable(draft.code, reading_type.display, reading_type.extra_codings)
    resource["subject"] = reference("Patient", patient_id)
    resource["effectiveDateTime"] = effective.upper()  # RFC 3339 allows t and z; FHIR needs T and Z
    resource["issued"] = instant(issued)  # the same for a whole batch
    resource["device"] = reference("Device", device_id)
    if reading_type.is_panel:
        components = []
        for code, value in draft.values.items():
            component = {
                "code": codeable(code, CODES_BY_LOINC[code].display),
                "valueQuantity": quantity(value, CODES_BY_LOINC[code].unit),
            }
            _judged(component, judgements.get(code), yellow_bands.get(code), CODES_BY_LOINC[code].unit)
            components.append(component)
        worst = max(judgements.values(), key=lambda j: j.level.rank, default=None)
        if worst is not None:
            resource["interpretation"] = interpretation(worst)
        resource["component"] = components
    else:
        resource["valueQuantity"] = quantity(draft.values[draft.code], draft.unit)
        _judged(resource, judgements.get(draft.code), yellow_bands.get(draft.code), draft.unit)
    if panel_id is not None:
        resource["derivedFrom"] = [{"reference": f"Observation/{panel_id}"}]
    return resource
