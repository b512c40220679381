"""The judgement of a reading on its FHIR Observation: `interpretation` (HL7 v3
ObservationInterpretation: N, L/H yellow, LL/HH red) and `referenceRange` with the patient's
yellow band; a blood-pressure panel per component plus its worst on the whole. Readings go
through validate_reading, the thresholds through effective_thresholds, the way ingest does."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import pytest
from fhir.resources.R4B.observation import Observation

from rpm.fhir.observation import observation_resource
from rpm.observations.readings import ObservationDraft, ValidReading, validate_reading
from rpm.rules.threshold import interpret as judgements_for
from rpm.rules.thresholds import effective_thresholds

INTERPRETATION_SYSTEM = "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation"
UCUM = "http://unitsofmeasure.org"
DISPLAY = {"N": "Normal", "L": "Low", "H": "High", "LL": "Critical low", "HH": "Critical high"}
SYSTOLIC = "8480-6"
DIASTOLIC = "8462-4"
GLUCOSE_BAND = {"low": 3.9, "high": 13.9}  # diabetes' yellow band

NOW = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)
TIME = "2026-11-23T07:59:41+01:00"
PATIENT_ID = uuid.UUID("6f1c2f57-6bd8-4d43-9a4b-0a4c8c1e0101")
DEVICE_ID = uuid.UUID("6f1c2f57-6bd8-4d43-9a4b-0a4c8c1e0102")
OBSERVATION_ID = uuid.UUID("6f1c2f57-6bd8-4d43-9a4b-0a4c8c1e0103")


def drafts(type_name: str, unit: str, **fields: Any) -> tuple[ObservationDraft, ...]:
    body = {"id": "r-1", "device": {"serial": "SN-1"}, "type": type_name, "time": TIME, "unit": unit} | fields
    outcome = validate_reading(body, "hub-1", NOW)
    assert isinstance(outcome, ValidReading), outcome
    return outcome.drafts


def judged_resource(
    draft: ObservationDraft, conditions: tuple[str, ...], overrides: dict[str, Any] | None = None
) -> dict[str, Any]:
    thresholds = effective_thresholds(conditions, override_bands=overrides)
    resource = observation_resource(
        draft,
        observation_id=OBSERVATION_ID,
        patient_id=PATIENT_ID,
        device_id=DEVICE_ID,
        effective=TIME,
        issued=NOW,
        judgements=judgements_for(draft.values, thresholds),
        yellow_bands={code: bands.yellow for code, bands in thresholds.bands.items()},
    )
    Observation.model_validate(resource)
    return resource


def codes(element: dict[str, Any]) -> list[str]:
    """The interpretation codes of a resource or component, checking system and display."""
    found = []
    for concept in element["interpretation"]:
        for coding in concept["coding"]:
            assert coding["system"] == INTERPRETATION_SYSTEM
            assert coding["display"] == DISPLAY[coding["code"]]
            found.append(coding["code"])
    return found


def reference(element: dict[str, Any], unit: str) -> dict[str, float]:
    (reference_range,) = element["referenceRange"]
    sides = {side: reference_range[side] for side in ("low", "high") if side in reference_range}
    for quantity in sides.values():
        assert (quantity["unit"], quantity["system"], quantity["code"]) == (unit, UCUM, unit)
    return {side: quantity["value"] for side, quantity in sides.items()}


def test_copd_spo2_83_is_critical_low_with_copd_yellow_band() -> None:
    (draft,) = drafts("spo2", "%", value=83)
    resource = judged_resource(draft, ("copd",))
    assert resource["valueQuantity"]["value"] == 83
    assert codes(resource) == ["LL"]
    assert reference(resource, "%") == {"low": 86}


@pytest.mark.parametrize(
    ("conditions", "type_name", "value", "unit", "code", "band"),
    [
        pytest.param((), "spo2", 95, "%", "N", {"low": 94}, id="general-spo2-95-N"),
        pytest.param((), "spo2", 94, "%", "N", {"low": 94}, id="general-spo2-94-edge-N"),
        pytest.param((), "spo2", 93, "%", "L", {"low": 94}, id="general-spo2-93-L"),
        pytest.param((), "spo2", 91, "%", "LL", {"low": 94}, id="general-spo2-91-LL"),
        pytest.param(("copd",), "spo2", 85, "%", "L", {"low": 86}, id="copd-spo2-85-L"),
        pytest.param(("copd",), "spo2", 0.9, "1", "N", {"low": 86}, id="copd-spo2-fraction-0.9-N"),
        pytest.param((), "heart-rate", 111, "bpm", "H", {"high": 110}, id="general-heart-rate-111-H"),
        pytest.param((), "heart-rate", 131, "/min", "HH", {"high": 110}, id="general-heart-rate-131-HH"),
        pytest.param((), "heart-rate", 40, "/min", "LL", {"high": 110}, id="general-heart-rate-40-LL"),
        pytest.param((), "body-temperature", 39.5, "Cel", "H", {"high": 39.0}, id="general-temperature-39.5-H"),
        pytest.param((), "body-temperature", 35.0, "Cel", "LL", {"high": 39.0}, id="general-temperature-35.0-LL"),
        pytest.param((), "respiratory-rate", 25, "/min", "HH", {"high": 20}, id="general-respiratory-rate-25-HH"),
        pytest.param(("diabetes",), "blood-glucose", 2.8, "mmol/L", "LL", GLUCOSE_BAND, id="diabetes-glucose-2.8-LL"),
        pytest.param(("diabetes",), "blood-glucose", 15.0, "mmol/L", "H", GLUCOSE_BAND, id="diabetes-glucose-15-H"),
    ],
)
def test_single_value_interpretation_and_reference_range(
    conditions: tuple[str, ...], type_name: str, value: float, unit: str, code: str, band: dict[str, float]
) -> None:
    (draft,) = drafts(type_name, unit, value=value)
    resource = judged_resource(draft, conditions)
    assert codes(resource) == [code]
    assert reference(resource, draft.unit) == band


@pytest.mark.parametrize(
    ("conditions", "type_name", "value", "unit"),
    [
        pytest.param((), "blood-glucose", 2.0, "mmol/L", id="glucose-without-diabetes"),
        pytest.param(("copd",), "peak-flow", 100, "L/min", id="peak-flow"),
        pytest.param(("heart-failure",), "body-weight", 90, "kg", id="body-weight"),
    ],
)
def test_quantity_without_a_band_is_normal_without_reference_range(
    conditions: tuple[str, ...], type_name: str, value: float, unit: str
) -> None:
    (draft,) = drafts(type_name, unit, value=value)
    resource = judged_resource(draft, conditions)
    assert codes(resource) == ["N"]
    assert "referenceRange" not in resource


def component(resource: dict[str, Any], code: str) -> dict[str, Any]:
    (found,) = [c for c in resource["component"] if c["code"]["coding"][0]["code"] == code]
    return found


def test_hypertension_blood_pressure_185_is_critical_high() -> None:
    panel, pulse = drafts("blood-pressure", "mm[Hg]", values={"systolic": 185, "diastolic": 90, "pulse": 77})
    resource = judged_resource(panel, ("hypertension",))
    systolic, diastolic = component(resource, SYSTOLIC), component(resource, DIASTOLIC)
    assert codes(systolic) == ["HH"]
    assert codes(diastolic) == ["N"]
    assert codes(resource) == ["HH"]
    # Merged per side: systolic yellow band keeps general's low 101 and gets hypertension's high 159.
    assert reference(systolic, "mm[Hg]") == {"low": 101, "high": 159}
    assert reference(diastolic, "mm[Hg]") == {"high": 99}
    assert "referenceRange" not in resource  # a panel's ranges are on its components
    # The pulse becomes its own heart-rate Observation, judged against heart-rate bands.
    pulse_resource = judged_resource(pulse, ("hypertension",))
    assert codes(pulse_resource) == ["N"]
    assert reference(pulse_resource, "/min") == {"high": 110}


@pytest.mark.parametrize(
    ("conditions", "systolic", "diastolic", "expected"),
    [
        pytest.param(("hypertension",), 120, 80, ("N", "N", "N"), id="hypertension-120/80-N"),
        pytest.param(("hypertension",), 165, 80, ("H", "N", "H"), id="hypertension-165/80-H"),
        pytest.param(("hypertension",), 120, 125, ("N", "HH", "HH"), id="hypertension-120/125-HH-diastolic"),
        pytest.param(("hypertension",), 95, 125, ("L", "HH", "HH"), id="hypertension-95/125-worst-is-red"),
        pytest.param(("hypertension",), 85, 105, ("LL", "H", "LL"), id="hypertension-85/105-worst-is-red-low"),
        pytest.param((), 185, 90, ("N", "N", "N"), id="general-185/90-N"),
        pytest.param((), 225, 90, ("HH", "N", "HH"), id="general-225/90-HH"),
    ],
)
def test_blood_pressure_components_and_worst(
    conditions: tuple[str, ...], systolic: float, diastolic: float, expected: tuple[str, str, str]
) -> None:
    panel, *_ = drafts("blood-pressure", "mm[Hg]", values={"systolic": systolic, "diastolic": diastolic})
    resource = judged_resource(panel, conditions)
    assert (
        *codes(component(resource, SYSTOLIC)),
        *codes(component(resource, DIASTOLIC)),
        *codes(resource),
    ) == expected


def test_general_diastolic_has_no_reference_range() -> None:
    panel, *_ = drafts("blood-pressure", "mm[Hg]", values={"systolic": 120, "diastolic": 80})
    resource = judged_resource(panel, ())
    assert reference(component(resource, SYSTOLIC), "mm[Hg]") == {"low": 101}
    assert "referenceRange" not in component(resource, DIASTOLIC)


def test_reference_range_follows_an_override() -> None:
    """api.md's example override: SpO2 yellow low 88, red low 85 for a COPD patient."""
    (draft,) = drafts("spo2", "%", value=86)
    resource = judged_resource(draft, ("copd",), {"59408-5": {"yellow": {"low": 88}, "red": {"low": 85}}})
    assert codes(resource) == ["L"]
    assert reference(resource, "%") == {"low": 88}


def test_without_judgements_no_interpretation() -> None:
    (draft,) = drafts("spo2", "%", value=83)
    resource = observation_resource(
        draft, observation_id=OBSERVATION_ID, patient_id=PATIENT_ID, device_id=DEVICE_ID, effective=TIME, issued=NOW
    )
    Observation.model_validate(resource)
    assert "interpretation" not in resource
    assert "referenceRange" not in resource
