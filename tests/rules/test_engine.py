"""The rules engine: one registry of rules, one interface, and a new rule is one module.

The rules themselves are tested in their own files (thresholds, band edges, weight gain, the
alert lifecycle for missing measurements); here: what the engine promises about all of them.
"""

from __future__ import annotations

import ast
import uuid
from datetime import timedelta
from pathlib import Path

from rpm.alerts.breaches import Breach, Evidence, Findings, Level
from rpm.pipeline import run_clock_rules
from rpm.rules import engine
from rpm.rules.interface import Batch
from rpm.rules.missing import MissingMeasurement
from tests.alerts.test_lifecycle import GRACE, HOUR, MINUTE, SECOND, T0, enrol, events_of, send, the_alert

PROJECT = Path(__file__).resolve().parents[2]
SRC = PROJECT / "src" / "rpm"


def test_every_registered_rule_has_a_distinct_name_and_the_interface():
    names = [rule.name for rule in engine.READING_RULES] + [rule.name for rule in engine.CLOCK_RULES]
    assert {"threshold", "weight-gain", "missing"} <= set(names)
    assert len(set(engine.READING_RULES)) == len(engine.READING_RULES)
    for rule in engine.READING_RULES:
        assert callable(rule.judge)
    for rule in engine.CLOCK_RULES:
        assert callable(rule.due)


def imported_modules(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return found


def test_nothing_outside_the_rules_package_builds_breaches_or_judges_against_bands():
    # Judging a reading means calling the bands' `judge` or building a Breach; the pipeline
    # asks the threshold rule for its interpretation, the course page for its colours.
    judging = {"rpm.rules.bands.judge", "rpm.rules.bands.judge_gain", "rpm.alerts.breaches.Breach"}
    paths = [p for top in ("src", "api", "ingest", "simulator") for p in (PROJECT / top).rglob("*.py")]
    assert len(paths) > 100 and PROJECT / "api" / "web" / "charts.py" in paths
    offenders = [
        str(path.relative_to(PROJECT))
        for path in sorted(paths)
        if not path.is_relative_to(SRC / "rules") and imported_modules(path) & judging
    ]
    assert offenders == [], offenders


async def test_a_new_rule_is_one_class_and_its_registration(session, monkeypatch):
    """A rule written against the interface alone, registered, judges live readings, and its
    breaches open and update alerts with events like any other rule's."""

    class VeryLowSpO2:
        name = "very-low-spo2"

        async def judge(self, session, batch: Batch) -> Findings:
            return Findings(
                [
                    Breach(
                        patient_id=r.patient_id,
                        rule="test:very-low-spo2",
                        level=Level.red,
                        value=r.value,
                        unit=r.unit,
                        threshold={"below": 80},
                        reading_at=r.effective_at,
                        late=False,
                        thresholds_version=0,
                        evidence=(Evidence(r.id, r.value, r.effective_at),),
                    )
                    for r in batch.readings
                    if r.reading_type == "spo2" and r.value is not None and r.value < 80
                ]
            )

    monkeypatch.setattr(engine, "READING_RULES", (*engine.READING_RULES, VeryLowSpO2()))
    patient = await enrol(session)
    first = await send(session, patient, 79, at=T0)
    second = await send(session, patient, 78, at=T0 + MINUTE)
    await send(session, patient, 97, at=T0 + 2 * MINUTE)
    alert = await the_alert(session, patient.id, "test:very-low-spo2")
    assert (alert.level, alert.occurrences, alert.value) == ("red", 2, 78.0)
    events = await events_of(session, alert.id)
    assert [e.kind for e in events] == ["opened", "changed"]
    assert events[-1].alert["observations"] == [f"Observation/{first}", f"Observation/{second}"]


async def test_a_rule_that_answers_resolves_the_active_alert_it_names(session, monkeypatch):
    class AnyReadingAnswers:
        name = "answers"

        async def judge(self, session, batch: Batch) -> Findings:
            return Findings(answered={(r.patient_id, "threshold:59408-5:low") for r in batch.readings})

    patient = await enrol(session)
    await send(session, patient, 85, at=T0)  # opens the SpO2 low alert
    monkeypatch.setattr(engine, "READING_RULES", (AnyReadingAnswers(),))
    await send(session, patient, 85, at=T0 + MINUTE)
    alert = await the_alert(session, patient.id, "threshold:59408-5:low")
    assert (alert.status, alert.occurrences) == ("resolved", 1)


async def test_the_missing_rule_reports_each_overdue_type_once_and_nothing_for_an_answered_one(session):
    patient = await enrol(session, devices=("spo2",), plan={"spo2": 24}, created_at=T0)
    due = T0 + 24 * HOUR + GRACE + SECOND
    [breach] = (await MissingMeasurement().due(session, due, GRACE)).breaches
    assert (breach.patient_id, breach.rule, breach.level, breach.reading_at) == (
        patient.id,
        "missing:spo2",
        Level.yellow,
        None,
    )
    assert breach.threshold == {"every_hours": 24, "grace_hours": 2}
    assert await run_clock_rules(session, due, GRACE) == 1
    # The alert is active: the rule reports it no more, and a second tick opens nothing.
    assert (await MissingMeasurement().due(session, due + MINUTE, GRACE)).breaches == []
    assert await run_clock_rules(session, due + MINUTE, GRACE) == 0
    answered = await MissingMeasurement().judge(session, Batch([_Stored(patient.id, "spo2")], thresholds={}))
    assert answered == Findings([], {(patient.id, "missing:spo2")})


async def test_a_grace_of_part_hours_is_reported_as_is(session):
    patient = await enrol(session, devices=("spo2",), plan={"spo2": 24}, created_at=T0)
    grace = timedelta(minutes=90)
    [breach] = (await MissingMeasurement().due(session, T0 + 26 * HOUR, grace)).breaches
    assert breach.patient_id == patient.id and breach.threshold == {"every_hours": 24, "grace_hours": 1.5}


class _Stored:
    """A stored reading as the rules see it, for the rules that need only its type."""

    def __init__(self, patient_id: uuid.UUID, reading_type: str) -> None:
        self.patient_id, self.reading_type = patient_id, reading_type
        self.id, self.code, self.value, self.components, self.unit = uuid.uuid4(), "", None, None, ""
        self.effective_at = self.received_at = T0
