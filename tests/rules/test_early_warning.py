"""The NEWS2 rule, through the ingest pipeline: which readings it scores together, what it
stores, and the alerts it opens (the chart itself: tests/rules/test_news2.py)."""

from __future__ import annotations

import json
import uuid
from datetime import datetime, timedelta
from typing import Any

from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import select

from rpm.alerts.models import Alert
from rpm.fhir.news2 import news2_resource, score_of_resource
from rpm.observations.models import Observation
from rpm.pipeline import IncomingMessage, RulesReport, record_messages
from rpm.rules import early_warning, news2
from rpm.trends import service as trends
from tests.alerts.test_lifecycle import HOUR, MINUTE, SECOND, T0, TOPIC_ROOT, Enrolled, enrol, events_of, staff

VITAL_DEVICES = ("respiratory-rate", "spo2", "blood-pressure", "body-temperature")
UNITS = {"respiratory-rate": "/min", "spo2": "%", "body-temperature": "Cel", "heart-rate": "/min"}


async def send(
    session, patient: Enrolled, reading_type: str, value: Any, at: datetime, *, gateway: str | None = None
) -> tuple[str, list[dict[str, Any]]]:
    """One reading through the pipeline, received a minute after it was taken. Returns the
    gateway and the ack results."""
    gateway = gateway or f"gw-{uuid.uuid4().hex[:12]}"
    reading: dict[str, Any] = {
        "id": f"r-{reading_type}-{at.timestamp():.0f}",
        "device": {"serial": patient.serials[reading_type]},
        "type": reading_type,
        "time": at.isoformat(),
    }
    if reading_type == "blood-pressure":
        reading |= {"values": value, "unit": "mm[Hg]"}
    else:
        reading |= {"value": value, "unit": UNITS[reading_type]}
    report = RulesReport()
    [outcome] = await record_messages(
        session,
        [IncomingMessage(f"{TOPIC_ROOT}/gateways/{gateway}/measurements", json.dumps(reading).encode(), at + MINUTE)],
        now=at + MINUTE,
        topic_root=TOPIC_ROOT,
        report=report,
    )
    assert report.errors == 0, "the rules failed"
    return gateway, outcome.results


async def scores_of(session, patient_id: uuid.UUID) -> list[Observation]:
    statement = (
        select(Observation)
        .where(Observation.patient_id == patient_id, Observation.code == news2.NEWS2_TOTAL_CODE)
        .order_by(Observation.effective_at, Observation.id)
    )
    return list(await session.scalars(statement))


async def news2_alerts(session, patient_id: uuid.UUID) -> list[Alert]:
    statement = (
        select(Alert)
        .where(Alert.patient_id == patient_id, Alert.rule == early_warning.RULE)
        .execution_options(populate_existing=True)
    )
    return list(await session.scalars(statement))


async def test_a_news2_of_7_from_a_morning_round_opens_a_red_alert_on_the_stored_score(session):
    patient = await enrol(session, conditions=(), devices=VITAL_DEVICES)
    await send(session, patient, "respiratory-rate", 24, T0)  # 2
    await send(session, patient, "spo2", 95, T0 + MINUTE)  # 1 on scale 1
    assert await scores_of(session, patient.id) == []  # two parameters say nothing more
    await send(session, patient, "blood-pressure", {"systolic": 105, "diastolic": 70, "pulse": 115}, T0 + 2 * MINUTE)
    [first] = await scores_of(session, patient.id)  # respiration 2, SpO2 1, systolic 1, pulse 2
    assert first.value == 6 and first.device_id is None
    [alert] = await news2_alerts(session, patient.id)
    assert (alert.level, alert.value, alert.threshold) == ("yellow", 6.0, {"total": 5})

    await send(session, patient, "body-temperature", 38.5, T0 + 3 * MINUTE)  # 1: 7 in all
    scores = await scores_of(session, patient.id)
    assert [s.value for s in scores] == [6, 7]
    [alert] = await news2_alerts(session, patient.id)
    assert (alert.level, alert.value, alert.threshold, alert.occurrences) == ("red", 7.0, {"total": 7}, 2)
    assert [e.kind for e in await events_of(session, alert.id)] == ["opened", "changed"]

    resource = scores[-1].resource
    validate_resource_shape(resource)
    assert resource["valueInteger"] == 7
    assert resource["code"]["coding"] == [
        {"system": "http://snomed.info/sct", "code": "1104051000000101", "display": news2.NEWS2_TOTAL_DISPLAY}
    ]
    inputs = {
        o.code: o.id
        for o in await session.scalars(
            select(Observation).where(Observation.patient_id == patient.id, Observation.code != news2.NEWS2_TOTAL_CODE)
        )
    }
    # The blood pressure's systolic value comes from the panel, its pulse from the heart rate.
    assert [d["reference"] for d in resource["derivedFrom"]] == [
        f"Observation/{inputs[code]}" for code in ("9279-1", "59408-5", "85354-9", "8867-4", "8310-5")
    ]
    components = {c["code"]["coding"][0]["code"]: c for c in resource["component"]}
    assert components[news2.subscore_code(news2.PULSE)]["valueInteger"] == 2
    # A home patient's devices report neither consciousness nor oxygen: left out, and said so.
    for parameter in (news2.CONSCIOUSNESS, news2.OXYGEN):
        assert components[news2.subscore_code(parameter)]["dataAbsentReason"]["coding"][0]["code"] == "unknown"
    assert "not scored: air or oxygen score, consciousness score" in resource["note"][0]["text"]


def validate_resource_shape(resource: dict[str, Any]) -> None:
    """Valid FHIR R4 (not a vital sign: the vital-signs profile's checks do not apply)."""
    from fhir.resources.R4B.observation import Observation as FhirObservation

    FhirObservation.model_validate(resource)
    assert resource["status"] == "final" and resource["subject"]["reference"].startswith("Patient/")


async def test_copd_patients_are_scored_on_spo2_scale_2(session):
    copd = await enrol(session, conditions=("copd",), devices=VITAL_DEVICES)
    other = await enrol(session, conditions=(), devices=VITAL_DEVICES)
    for patient in (copd, other):
        await send(session, patient, "respiratory-rate", 18, T0)
        await send(session, patient, "spo2", 88, T0 + MINUTE)
        await send(session, patient, "body-temperature", 37.0, T0 + 2 * MINUTE)
    [copd_score] = await scores_of(session, copd.id)
    [other_score] = await scores_of(session, other.id)
    assert (copd_score.value, other_score.value) == (0, 3)
    assert "SpO2 scale 2" in copd_score.resource["note"][0]["text"]
    assert news2.subscore_code(news2.SPO2, 2) in json.dumps(copd_score.resource)
    assert await news2_alerts(session, copd.id) == []  # 88 % is on target for COPD
    [alert] = await news2_alerts(session, other.id)  # a single parameter scoring 3
    assert (alert.level, alert.threshold) == ("yellow", {"parameter": 3})


async def test_readings_more_than_the_window_apart_are_not_one_set(session):
    patient = await enrol(session, conditions=(), devices=VITAL_DEVICES)
    await send(session, patient, "respiratory-rate", 26, T0)
    await send(session, patient, "spo2", 90, T0 + 30 * MINUTE)
    await send(session, patient, "body-temperature", 39.5, T0 + 60 * MINUTE + SECOND)
    assert await scores_of(session, patient.id) == []  # never three within one hour
    await send(session, patient, "respiratory-rate", 26, T0 + 61 * MINUTE)
    [score] = await scores_of(session, patient.id)  # SpO2 3, temperature 2, respiration 3
    assert score.value == 8 and score.effective_at == T0 + 61 * MINUTE


async def test_a_late_batch_is_scored_at_each_readings_own_time_and_a_redelivery_adds_nothing(session):
    patient = await enrol(session, conditions=(), devices=VITAL_DEVICES)
    gateway = f"gw-{uuid.uuid4().hex[:12]}"
    readings = [
        ("respiratory-rate", 26, T0),
        ("spo2", 90, T0 + MINUTE),
        ("body-temperature", 39.5, T0 + 2 * MINUTE),
    ]
    payload = json.dumps(
        {
            "readings": [
                {
                    "id": f"r-{n}",
                    "device": {"serial": patient.serials[kind]},
                    "type": kind,
                    "time": at.isoformat(),
                    "value": value,
                    "unit": UNITS[kind],
                }
                for n, (kind, value, at) in enumerate(readings)
            ]
        }
    ).encode()
    arrival = T0 + 30 * 60 * MINUTE  # a gateway that was offline for 30 hours
    message = IncomingMessage(f"{TOPIC_ROOT}/gateways/{gateway}/measurements", payload, arrival)
    [outcome] = await record_messages(session, [message], now=arrival, topic_root=TOPIC_ROOT)
    assert {r["status"] for r in outcome.results} == {"accepted"}, outcome.results
    [score] = await scores_of(session, patient.id)
    assert (score.value, score.effective_at) == (8, T0 + 2 * MINUTE)
    [alert] = await news2_alerts(session, patient.id)
    assert (alert.level, alert.late) == ("red", True)
    [outcome] = await record_messages(session, [message], now=arrival + MINUTE, topic_root=TOPIC_ROOT)
    assert {r["status"] for r in outcome.results} == {"duplicate"}
    assert len(await scores_of(session, patient.id)) == 1
    assert (await news2_alerts(session, patient.id))[0].occurrences == 1


def test_the_scale_follows_the_red_spo2_edge_in_force():
    from rpm.rules.thresholds import effective_thresholds

    assert early_warning.spo2_scale(effective_thresholds(["copd"])) == 2
    assert early_warning.spo2_scale(effective_thresholds([])) == 1
    assert early_warning.spo2_scale(None) == 1
    raised = effective_thresholds(["copd"], {"59408-5": {"yellow": {"low": 94}, "red": {"low": 92}}})
    assert early_warning.spo2_scale(raised) == 1


async def test_the_window_is_a_setting(session):
    patient = await enrol(session, conditions=(), devices=VITAL_DEVICES)
    gateway = f"gw-{uuid.uuid4().hex[:12]}"
    for n, (kind, value) in enumerate((("respiratory-rate", 26), ("spo2", 90), ("body-temperature", 39.5))):
        at = T0 + n * 50 * MINUTE  # 100 minutes from first to last
        reading = {
            "id": f"r-{n}",
            "device": {"serial": patient.serials[kind]},
            "type": kind,
            "time": at.isoformat(),
            "value": value,
            "unit": UNITS[kind],
        }
        message = IncomingMessage(f"{TOPIC_ROOT}/gateways/{gateway}/measurements", json.dumps(reading).encode(), at)
        await record_messages(session, [message], now=at, topic_root=TOPIC_ROOT, news2_window=timedelta(minutes=120))
    [score] = await scores_of(session, patient.id)
    assert score.value == 8


def test_every_reading_type_that_reports_a_parameter_is_known_to_the_rule():
    from rpm.fhir.codes import READING_TYPES

    for name, reading_type in READING_TYPES.items():
        codes = {reading_type.code, *(q.code for q in reading_type.components.values())}
        reports = {news2.VITAL_SIGN_CODES[c] for c in codes if c in news2.VITAL_SIGN_CODES}
        if name == "blood-pressure":
            reports.add(news2.PULSE)  # its optional pulse, stored as a heart rate
        assert early_warning.PARAMETERS_OF_TYPE.get(name, set()) == reports, name


async def test_a_patient_whose_devices_measure_two_parameters_is_never_scored(session):
    patient = await enrol(session, conditions=(), devices=("spo2", "respiratory-rate"))
    await send(session, patient, "respiratory-rate", 30, T0)
    await send(session, patient, "spo2", 85, T0 + MINUTE)
    assert await scores_of(session, patient.id) == []


@given(
    parameters=st.dictionaries(st.sampled_from(news2.PARAMETERS), st.integers(min_value=0, max_value=3)),
    scale=st.sampled_from([1, 2]),
)
def test_a_stored_score_reads_back_as_it_was_scored(parameters, scale):
    result = news2.News2Score(
        parameters={p: parameters[p] for p in news2.PARAMETERS if p in parameters}, spo2_scale=scale
    )
    resource = news2_resource(
        result, observation_id=uuid.uuid4(), patient_id=uuid.uuid4(), effective_at=T0, issued=T0, derived_from=[]
    )
    assert score_of_resource(resource) == result


async def test_the_dashboard_shows_the_newest_score_and_what_it_left_out(session):
    patient = await enrol(session, conditions=(), devices=VITAL_DEVICES)
    await send(session, patient, "respiratory-rate", 24, T0)
    await send(session, patient, "spo2", 95, T0 + MINUTE)
    await send(session, patient, "blood-pressure", {"systolic": 105, "diastolic": 70, "pulse": 115}, T0 + 2 * MINUTE)
    await send(session, patient, "body-temperature", 38.5, T0 + 3 * MINUTE)
    board = await trends.dashboard(session, staff(), patient.id, now=T0 + HOUR, grace=timedelta(hours=2))
    assert board.news2 is not None
    assert (board.news2.total, board.news2.level, board.news2.spo2_scale) == (7, "red", 1)
    assert board.news2.parameters == {"respiratory_rate": 2, "spo2": 1, "systolic": 1, "pulse": 2, "temperature": 1}
    assert board.news2.missing == ["oxygen", "consciousness"]
    other = await enrol(session, conditions=(), devices=VITAL_DEVICES)
    assert (await trends.dashboard(session, staff(), other.id, now=T0, grace=timedelta(hours=2))).news2 is None
