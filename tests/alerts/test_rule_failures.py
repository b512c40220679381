"""A failure of the rules never costs a reading: it is stored, and the error is counted."""

from __future__ import annotations

import json
import uuid

from sqlalchemy import select

from rpm import pipeline
from rpm.alerts.models import Alert
from rpm.observations.models import Observation
from rpm.pipeline import IncomingMessage, RulesReport, record_messages
from tests.alerts.test_lifecycle import MINUTE, T0, TOPIC_ROOT, enrol


async def record_spo2(session, patient, value: float) -> tuple[list, RulesReport, str]:
    gateway = f"gw-{uuid.uuid4().hex[:12]}"
    payload = {
        "id": "r-1",
        "device": {"serial": patient.serials["spo2"]},
        "type": "spo2",
        "time": T0.isoformat(),
        "value": value,
        "unit": "%",
    }
    report = RulesReport()
    outcomes = await record_messages(
        session,
        [IncomingMessage(f"{TOPIC_ROOT}/gateways/{gateway}/measurements", json.dumps(payload).encode(), T0 + MINUTE)],
        now=T0 + MINUTE,
        topic_root=TOPIC_ROOT,
        report=report,
    )
    return outcomes, report, gateway


async def test_a_failing_alert_step_keeps_the_reading_and_counts_the_error(session, monkeypatch):
    patient = await enrol(session)

    async def broken(*args, **kwargs):
        raise RuntimeError("rules are broken")

    monkeypatch.setattr(pipeline.engine, "judge_batch", broken)
    [outcome], report, gateway = await record_spo2(session, patient, 83)
    assert outcome.results == [{"id": "r-1", "status": "accepted"}]
    assert report.errors == 1
    stored = await session.scalar(select(Observation).where(Observation.gateway_id == gateway))
    assert stored is not None and stored.value == 83
    assert await session.scalar(select(Alert).where(Alert.patient_id == patient.id)) is None


async def test_a_failing_judgement_stores_the_reading_without_interpretation(session, monkeypatch):
    patient = await enrol(session)

    def broken(values, thresholds):
        raise ValueError("cannot judge")

    monkeypatch.setattr(pipeline, "interpret", broken)
    [outcome], report, gateway = await record_spo2(session, patient, 83)
    assert outcome.results == [{"id": "r-1", "status": "accepted"}]
    assert report.errors == 1
    stored = await session.scalar(select(Observation).where(Observation.gateway_id == gateway))
    assert stored is not None and "interpretation" not in stored.resource
