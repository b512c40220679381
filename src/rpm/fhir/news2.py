"""The FHIR R4 Observation of a NEWS2 score the service derived. Pure.

Coded with SNOMED CT (see rules.news2 for the choice of codes); one component per
parameter: its sub-score where measured, a data-absent reason where not (a home patient's
devices do not report consciousness or supplemental oxygen), so the record says what the
score left out. `derivedFrom` names the Observations scored.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from rpm.fhir.codes import OBSERVATION_CATEGORY
from rpm.fhir.observation import instant, reference
from rpm.rules import news2

DATA_ABSENT_REASON = "http://terminology.hl7.org/CodeSystem/data-absent-reason"
SURVEY_CATEGORY = {
    "coding": [{"system": OBSERVATION_CATEGORY, "code": "survey", "display": "Survey"}],
    "text": "Survey",
}
PARAMETER_DISPLAY = {
    news2.RESPIRATORY_RATE: "NEWS2 respiration rate score",
    news2.SPO2: "NEWS2 oxygen saturation score",
    news2.OXYGEN: "NEWS2 air or oxygen score",
    news2.SYSTOLIC: "NEWS2 systolic blood pressure score",
    news2.PULSE: "NEWS2 pulse score",
    news2.CONSCIOUSNESS: "NEWS2 consciousness score",
    news2.TEMPERATURE: "NEWS2 temperature score",
}
_NOT_REPORTED = {
    "coding": [{"system": DATA_ABSENT_REASON, "code": "unknown", "display": "Unknown"}],
    "text": "not measured within the score's window, or not reported by the patient's devices",
}


def snomed(code: str, display: str) -> dict[str, Any]:
    return {"coding": [{"system": news2.SNOMED_CT, "code": code, "display": display}], "text": display}


def news2_resource(
    result: news2.News2Score,
    *,
    observation_id: uuid.UUID,
    patient_id: uuid.UUID,
    effective_at: datetime,
    issued: datetime,
    derived_from: Sequence[uuid.UUID],
) -> dict[str, Any]:
    """The Observation of one score, taken at the time of the newest reading it scores."""
    resource: dict[str, Any] = {
        "resourceType": "Observation",
        "id": str(observation_id),
        "status": "final",
        "category": [SURVEY_CATEGORY],
        "code": snomed(news2.NEWS2_TOTAL_CODE, news2.NEWS2_TOTAL_DISPLAY),
        "subject": reference("Patient", patient_id),
        "effectiveDateTime": effective_at.isoformat(),
        "issued": instant(issued),
        "valueInteger": result.total,
    }
    resource["note"] = [
        {
            "text": f"SpO2 scale {result.spo2_scale}; "
            + (
                "all seven parameters scored"
                if result.complete
                else "not scored: " + ", ".join(PARAMETER_DISPLAY[p].removeprefix("NEWS2 ") for p in result.missing)
            )
        }
    ]
    resource["derivedFrom"] = [reference("Observation", oid) for oid in derived_from]
    components = []
    for parameter in news2.PARAMETERS:
        component: dict[str, Any] = {
            "code": snomed(news2.subscore_code(parameter, result.spo2_scale), PARAMETER_DISPLAY[parameter])
        }
        if parameter in result.parameters:
            component["valueInteger"] = result.parameters[parameter]
        else:
            component["dataAbsentReason"] = _NOT_REPORTED
        components.append(component)
    resource["component"] = components
    return resource


_PARAMETER_OF_CODE = {
    news2.subscore_code(parameter, scale): (parameter, scale) for parameter in news2.PARAMETERS for scale in (1, 2)
}


def score_of_resource(resource: dict[str, Any]) -> news2.News2Score:
    """The score a stored NEWS2 Observation holds: its components' points (news2_resource's
    inverse)."""
    parameters: dict[str, int] = {}
    scale = 1
    for component in resource.get("component", []):
        parameter, component_scale = _PARAMETER_OF_CODE[component["code"]["coding"][0]["code"]]
        if parameter == news2.SPO2:
            scale = component_scale
        if "valueInteger" in component:
            parameters[parameter] = component["valueInteger"]
    return news2.News2Score(
        parameters={p: parameters[p] for p in news2.PARAMETERS if p in parameters}, spo2_scale=scale
    )
