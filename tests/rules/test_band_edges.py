"""Every band edge of rules.md, for every template: on the edge, just inside, just outside.

The numbers are written here as rules.md states them (not read from rpm.rules.templates), so
these tests check the code against the contract: a value strictly below `low` or strictly
above `high` of the red band is red; otherwise strictly outside the yellow band is yellow;
otherwise green. Interpretation: N, L/H for yellow, LL/HH for red.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from rpm.observations.readings import ValidReading, validate_reading
from rpm.rules.bands import Judgement, Level
from rpm.rules.threshold import interpret as judgements_for
from rpm.rules.threshold import threshold_breaches
from rpm.rules.thresholds import effective_thresholds

SPO2 = "59408-5"
HEART_RATE = "8867-4"
SYSTOLIC = "8480-6"
DIASTOLIC = "8462-4"
TEMPERATURE = "8310-5"
RESPIRATORY_RATE = "9279-1"
GLUCOSE = "14743-9"
PEAK_FLOW = "19935-6"

NAMES = {
    SPO2: "spo2",
    HEART_RATE: "heart-rate",
    SYSTOLIC: "systolic",
    DIASTOLIC: "diastolic",
    TEMPERATURE: "temperature",
    RESPIRATORY_RATE: "respiratory-rate",
    GLUCOSE: "glucose",
}
UNITS = {
    SPO2: "%",
    HEART_RATE: "/min",
    SYSTOLIC: "mm[Hg]",
    DIASTOLIC: "mm[Hg]",
    TEMPERATURE: "Cel",
    RESPIRATORY_RATE: "/min",
    GLUCOSE: "mmol/L",
}

# rules.md, "Every stored Observation carries its interpretation".
INTERPRETATION = {
    ("green", None): "N",
    ("yellow", "low"): "L",
    ("yellow", "high"): "H",
    ("red", "low"): "LL",
    ("red", "high"): "HH",
}

STEP = 0.1
PATIENT = uuid.UUID("00000000-0000-4000-8000-000000000001")
OBSERVATION = uuid.UUID("00000000-0000-4000-8000-000000000002")
READING_AT = datetime(2026, 11, 23, 7, 0, tzinfo=UTC)


@dataclass(frozen=True)
class Edge:
    """One edge of a band: beyond it (strictly) the value is `level`; on it and just inside
    it the value is `inside` (the level of the next band in, per rules.md's tables)."""

    code: str
    level: str
    side: str
    edge: float
    inside: str


# Template `general` (NEWS2), rules.md's table.
GENERAL = (
    Edge(SPO2, "yellow", "low", 94, inside="green"),
    Edge(SPO2, "red", "low", 92, inside="yellow"),
    Edge(HEART_RATE, "yellow", "high", 110, inside="green"),
    Edge(HEART_RATE, "red", "low", 41, inside="green"),
    Edge(HEART_RATE, "red", "high", 130, inside="yellow"),
    Edge(SYSTOLIC, "yellow", "low", 101, inside="green"),
    Edge(SYSTOLIC, "red", "low", 91, inside="yellow"),
    Edge(SYSTOLIC, "red", "high", 219, inside="green"),
    Edge(TEMPERATURE, "yellow", "high", 39.0, inside="green"),
    Edge(TEMPERATURE, "red", "low", 35.1, inside="green"),
    Edge(RESPIRATORY_RATE, "yellow", "high", 20, inside="green"),
    Edge(RESPIRATORY_RATE, "red", "low", 9, inside="green"),
    Edge(RESPIRATORY_RATE, "red", "high", 24, inside="yellow"),
)
# `copd`: SpO2 yellow low 86, red low 84.
COPD = (
    Edge(SPO2, "yellow", "low", 86, inside="green"),
    Edge(SPO2, "red", "low", 84, inside="yellow"),
)
# `diabetes`: capillary glucose yellow low 3.9, high 13.9; red low 3.0.
DIABETES = (
    Edge(GLUCOSE, "yellow", "low", 3.9, inside="green"),
    Edge(GLUCOSE, "yellow", "high", 13.9, inside="green"),
    Edge(GLUCOSE, "red", "low", 3.0, inside="yellow"),
)
# `hypertension`: systolic yellow high 159, red high 179; diastolic yellow high 99, red high
# 119. Merged per side: systolic keeps general's lows (yellow 101, red 91).
HYPERTENSION = (
    Edge(SYSTOLIC, "yellow", "low", 101, inside="green"),
    Edge(SYSTOLIC, "red", "low", 91, inside="yellow"),
    Edge(SYSTOLIC, "yellow", "high", 159, inside="green"),
    Edge(SYSTOLIC, "red", "high", 179, inside="yellow"),
    Edge(DIASTOLIC, "yellow", "high", 99, inside="green"),
    Edge(DIASTOLIC, "red", "high", 119, inside="yellow"),
)


def replacing(base: tuple[Edge, ...], *templates: tuple[Edge, ...]) -> tuple[Edge, ...]:
    """`base` with the quantities the templates name replaced by the templates' edges."""
    replaced = {e.code for t in templates for e in t}
    return tuple(e for e in base if e.code not in replaced) + tuple(e for t in templates for e in t)


TEMPLATES: dict[str, tuple[tuple[str, ...], tuple[Edge, ...]]] = {
    "general": ((), GENERAL),
    "copd": (("copd",), replacing(GENERAL, COPD)),
    "heart-failure": (("heart-failure",), GENERAL),
    "diabetes": (("diabetes",), replacing(GENERAL, DIABETES)),
    "hypertension": (("hypertension",), replacing(GENERAL, HYPERTENSION)),
    "all-four": (
        ("copd", "heart-failure", "diabetes", "hypertension"),
        replacing(GENERAL, COPD, DIABETES, HYPERTENSION),
    ),
}


def _fmt(value: float) -> str:
    return f"{value:g}"


def edge_cases() -> list[Any]:
    cases = []
    for template, (conditions, edges) in TEMPLATES.items():
        for e in edges:
            inward = STEP if e.side == "low" else -STEP
            positions = (
                ("on", e.edge, e.inside),
                ("inside", round(e.edge + inward, 6), e.inside),
                ("outside", round(e.edge - inward, 6), e.level),
            )
            for position, value, level in positions:
                if level == "green":
                    side, threshold = None, None
                elif level == e.level:
                    side, threshold = e.side, {e.side: e.edge}
                else:  # on/inside a red edge: outside the yellow band on the same side
                    (yellow,) = [y for y in edges if (y.code, y.level, y.side) == (e.code, "yellow", e.side)]
                    side, threshold = e.side, {e.side: yellow.edge}
                case_id = f"{template}-{NAMES[e.code]}-{e.level}-{e.side}-{_fmt(e.edge)}-{position}-{_fmt(value)}"
                cases.append(pytest.param(conditions, e.code, value, level, side, threshold, id=f"{case_id}->{level}"))
    return cases


def judged(conditions: tuple[str, ...], code: str, value: float) -> Judgement:
    return judgements_for({code: value}, effective_thresholds(conditions))[code]


@pytest.mark.parametrize(("conditions", "code", "value", "level", "side", "threshold"), edge_cases())
def test_band_edge(
    conditions: tuple[str, ...],
    code: str,
    value: float,
    level: str,
    side: str | None,
    threshold: dict[str, float] | None,
) -> None:
    thresholds = effective_thresholds(conditions)
    judgement = judgements_for({code: value}, thresholds)[code]
    assert judgement.level is Level(level)
    assert judgement.side == side
    assert judgement.threshold == threshold
    assert judgement.interpretation == INTERPRETATION[(level, side)]

    breaches = threshold_breaches(
        patient_id=PATIENT,
        observation_id=OBSERVATION,
        judgements={code: judgement},
        values={code: value},
        unit=UNITS[code],
        reading_at=READING_AT,
        received_at=READING_AT + timedelta(minutes=1),
        thresholds=thresholds,
    )
    if level == "green":
        assert breaches == []
    else:
        assert [(b.rule, b.level, b.value, b.unit, b.threshold, b.late) for b in breaches] == [
            (f"threshold:{code}:{side}", Level(level), value, UNITS[code], threshold, False)
        ]
        assert breaches[0].evidence[0].observation_id == OBSERVATION


# rules.md's own examples, written out.
@pytest.mark.parametrize(
    ("conditions", "code", "value", "level", "interpretation"),
    [
        pytest.param((), SPO2, 91, "red", "LL", id="general-spo2-91-red"),
        pytest.param((), SPO2, 93, "yellow", "L", id="general-spo2-93-yellow"),
        pytest.param((), SPO2, 94, "green", "N", id="general-spo2-94-green"),
        pytest.param((), SPO2, 92, "yellow", "L", id="general-spo2-92-yellow"),
        pytest.param(("copd",), SPO2, 85, "yellow", "L", id="copd-spo2-85-yellow"),
        pytest.param(("copd",), SPO2, 83, "red", "LL", id="copd-spo2-83-red"),
        pytest.param(("copd",), SPO2, 86, "green", "N", id="copd-spo2-86-green"),
        pytest.param(("copd",), SPO2, 84, "yellow", "L", id="copd-spo2-84-yellow"),
        pytest.param(("copd",), SPO2, 91, "green", "N", id="copd-spo2-91-green-not-general-red"),
        pytest.param(("diabetes",), GLUCOSE, 2.9, "red", "LL", id="diabetes-glucose-2.9-red"),
        pytest.param(("diabetes",), GLUCOSE, 3.5, "yellow", "L", id="diabetes-glucose-3.5-yellow"),
        pytest.param(("diabetes",), GLUCOSE, 14.0, "yellow", "H", id="diabetes-glucose-14-yellow-no-red-high"),
        pytest.param(("diabetes",), GLUCOSE, 40.0, "yellow", "H", id="diabetes-glucose-40-yellow-no-red-high"),
        pytest.param(("hypertension",), SYSTOLIC, 100, "yellow", "L", id="hypertension-systolic-100-general-low"),
        pytest.param(("hypertension",), SYSTOLIC, 90, "red", "LL", id="hypertension-systolic-90-general-red-low"),
        pytest.param(("hypertension",), SYSTOLIC, 160, "yellow", "H", id="hypertension-systolic-160-yellow"),
        pytest.param(("hypertension",), SYSTOLIC, 180, "red", "HH", id="hypertension-systolic-180-crisis"),
        pytest.param(("hypertension",), DIASTOLIC, 120, "red", "HH", id="hypertension-diastolic-120-crisis"),
        pytest.param((), SYSTOLIC, 180, "green", "N", id="general-systolic-180-green"),
        pytest.param((), SYSTOLIC, 220, "red", "HH", id="general-systolic-220-red"),
        pytest.param((), TEMPERATURE, 35.0, "red", "LL", id="general-temperature-35.0-red"),
        pytest.param((), HEART_RATE, 40, "red", "LL", id="general-heart-rate-40-red"),
    ],
)
def test_rules_md_examples(
    conditions: tuple[str, ...], code: str, value: float, level: str, interpretation: str
) -> None:
    judgement = judged(conditions, code, value)
    assert (judgement.level, judgement.interpretation) == (Level(level), interpretation)


@pytest.mark.parametrize(
    ("conditions", "code", "value"),
    [
        pytest.param((), GLUCOSE, 1.0, id="glucose-without-diabetes"),
        pytest.param((), GLUCOSE, 30.0, id="glucose-high-without-diabetes"),
        pytest.param((), DIASTOLIC, 150, id="diastolic-without-hypertension"),
        pytest.param(("copd", "diabetes", "hypertension"), PEAK_FLOW, 40, id="peak-flow-has-no-template"),
    ],
)
def test_quantity_without_bands_is_green(conditions: tuple[str, ...], code: str, value: float) -> None:
    judgement = judged(conditions, code, value)
    assert (judgement.level, judgement.side, judgement.threshold, judgement.interpretation) == (
        Level.green,
        None,
        None,
        "N",
    )


def test_blood_pressure_components_give_one_breach_each() -> None:
    thresholds = effective_thresholds(["hypertension"])
    values = {SYSTOLIC: 185.0, DIASTOLIC: 125.0}
    judgements = judgements_for(values, thresholds)
    breaches = threshold_breaches(
        patient_id=PATIENT,
        observation_id=OBSERVATION,
        judgements=judgements,
        values=values,
        unit="mm[Hg]",
        reading_at=READING_AT,
        received_at=READING_AT,
        thresholds=thresholds,
    )
    assert sorted((b.rule, b.level, b.value, b.threshold) for b in breaches) == [
        ("threshold:8462-4:high", Level.red, 125.0, {"high": 119}),
        ("threshold:8480-6:high", Level.red, 185.0, {"high": 179}),
    ]


@pytest.mark.parametrize(
    ("delay", "late"),
    [
        pytest.param(timedelta(0), False, id="at-once"),
        pytest.param(timedelta(hours=24), False, id="exactly-24h"),
        pytest.param(timedelta(hours=24, seconds=1), True, id="24h-plus-1s"),
        pytest.param(timedelta(days=3), True, id="3-days"),
    ],
)
def test_threshold_breach_late_flag(delay: timedelta, late: bool) -> None:
    thresholds = effective_thresholds([], version=7)
    judgements = judgements_for({SPO2: 90.0}, thresholds)
    (breach,) = threshold_breaches(
        patient_id=PATIENT,
        observation_id=OBSERVATION,
        judgements=judgements,
        values={SPO2: 90.0},
        unit="%",
        reading_at=READING_AT,
        received_at=READING_AT + delay,
        thresholds=thresholds,
    )
    assert breach.late is late
    assert breach.reading_at == READING_AT
    assert breach.thresholds_version == 7
    assert breach.patient_id == PATIENT


# The same edges reached through the gateway contract's unit conversions (validate_reading).
NOW = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("conditions", "type_name", "value", "unit", "level"),
    [
        pytest.param((), "spo2", 0.94, "1", "green", id="spo2-0.94-fraction-on-edge-green"),
        pytest.param((), "spo2", 0.93, "1", "yellow", id="spo2-0.93-fraction-yellow"),
        pytest.param((), "spo2", 0.92, "1", "yellow", id="spo2-0.92-fraction-on-red-edge-yellow"),
        pytest.param((), "body-temperature", 102.2, "[degF]", "green", id="temperature-102.2F-is-39.0C-green"),
        pytest.param((), "body-temperature", 102.38, "[degF]", "yellow", id="temperature-102.38F-is-39.1C-yellow"),
        pytest.param(("diabetes",), "blood-glucose", 70, "mg/dL", "yellow", id="glucose-70mgdl-below-3.9"),
        pytest.param(("diabetes",), "blood-glucose", 54, "mg/dL", "red", id="glucose-54mgdl-below-3.0"),
    ],
)
def test_edges_after_unit_conversion(
    conditions: tuple[str, ...], type_name: str, value: float, unit: str, level: str
) -> None:
    body = {"id": "r-1", "device": {"serial": "S-1"}, "type": type_name, "time": "2026-11-23T07:59:00Z"}
    outcome = validate_reading(body | {"value": value, "unit": unit}, "hub-1", NOW)
    assert isinstance(outcome, ValidReading), outcome
    (draft,) = outcome.drafts
    judgements = judgements_for(draft.values, effective_thresholds(conditions))
    assert judgements[draft.code].level is Level(level)


@pytest.mark.parametrize(
    ("level", "side", "code"),
    [pytest.param(level, side, code, id=f"{level}-{side}-{code}") for (level, side), code in INTERPRETATION.items()],
)
def test_judgement_interpretation(level: str, side: str | None, code: str) -> None:
    assert Judgement(Level(level), side, None if side is None else {side: 1.0}).interpretation == code
