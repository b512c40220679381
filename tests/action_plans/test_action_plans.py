"""Self-management plans (issue 11, item 4) against the real PostgreSQL: versions with who, when
and why; who may change them; and the action each alert carries, taken from the plan in force
when the alert opens or is raised to red, never rewritten by a later change of the plan.

Alerts here come through the ingest pipeline and the clock rules, on the clock of the alert
lifecycle tests (2021), inside the rolled-back `session` transaction.
"""

from __future__ import annotations

import asyncio
import contextlib
import time

import pytest
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from rpm.access.staff import Role, Staff
from rpm.action_plans import service
from rpm.action_plans.schemas import ActionPlanChange, ActionsIn
from rpm.alerts import service as alerts
from rpm.audit.models import AuditRecord
from rpm.audit.service import Actor
from rpm.errors import Conflict, Forbidden, NotFound
from rpm.pipeline import run_clock_rules
from tests.alerts.test_lifecycle import (
    GRACE,
    HOUR,
    MINUTE,
    MISSING_WEIGHT,
    SECOND,
    T0,
    enrol,
    events_of,
    item_of,
    send,
    staff,
    the_alert,
    weight_patient,
)
from tests.alerts.test_lifecycle import C as ENROLLED
from tests.conftest import ORG_A, ORG_B
from tests.fixtures.world import add_patient_with_devices
from tests.rules.test_early_warning import VITAL_DEVICES, news2_alerts
from tests.rules.test_early_warning import send as send_vital

YELLOW = "Take an extra dose of diuretic and weigh again tomorrow"
RED = "Call the out-of-hours emergency service 116 117"
GREEN = "Keep taking your medicines as usual"


def clinician(role: Role = Role.physician, orgnr: str = ORG_A, sub: str = "dr-lege") -> Actor:
    return Actor(staff=Staff(sub=sub, name="Dr. Lege", hpr="7654321", orgnr=orgnr, roles=frozenset({role})))


def change(reason: str = "agreed with the GP", **actions: str | None) -> ActionPlanChange:
    return ActionPlanChange(reason=reason, actions=ActionsIn(**actions))


async def test_every_change_is_a_new_version_with_who_when_and_why(session: AsyncSession):
    patient = await enrol(session)
    empty = await service.plan_record(session, staff(), patient.id)
    assert (empty.in_force, empty.history) == (None, [])

    first = await service.change_plan(session, clinician(), patient.id, change("GP visit", yellow=YELLOW, red=RED))
    assert first.in_force is not None and first.in_force.version == 1
    assert first.in_force.actions.model_dump() == {"green": None, "yellow": YELLOW, "red": RED}
    admin = clinician(Role.admin, sub="admin-ola")
    second = await service.change_plan(session, admin, patient.id, change("  red only now  ", red="  " + RED + " "))

    record = await service.plan_record(session, staff(), patient.id)
    assert record == second
    assert [v.version for v in record.history] == [2, 1]  # newest first
    assert record.in_force == record.history[0]
    newest, oldest = record.history
    # The whole plan is the new version: the yellow action left out is no longer there.
    assert newest.actions.model_dump() == {"green": None, "yellow": None, "red": RED}
    assert (newest.reason, newest.changed_by_sub, newest.changed_by_org) == ("red only now", "admin-ola", ORG_A)
    assert (oldest.reason, oldest.changed_by_sub, oldest.changed_by_name, oldest.changed_by_hpr) == (
        "GP visit",
        "dr-lege",
        "Dr. Lege",
        "7654321",
    )
    assert oldest.actions.yellow == YELLOW and oldest.changed_at is not None

    audit = await session.execute(
        select(AuditRecord.action, AuditRecord.actor_sub)
        .where(AuditRecord.patient_id == patient.id, AuditRecord.resource_type == "ActionPlan")
        .order_by(AuditRecord.id)
    )
    assert list(audit) == [
        ("read", "nurse-kari"),
        ("update", "dr-lege"),
        ("update", "admin-ola"),
        ("read", "nurse-kari"),
    ]


async def test_a_nurse_may_read_but_not_change(session: AsyncSession):
    patient = await enrol(session)
    with pytest.raises(Forbidden):
        await service.change_plan(session, clinician(Role.nurse), patient.id, change(red=RED))
    assert (await service.plan_record(session, clinician(Role.nurse), patient.id)).history == []


async def test_another_organisation_sees_no_plan_and_changes_none(session: AsyncSession):
    patient = await enrol(session)
    await service.change_plan(session, clinician(), patient.id, change(red=RED))
    for call in (
        service.plan_record(session, clinician(orgnr=ORG_B), patient.id),
        service.change_plan(session, clinician(orgnr=ORG_B), patient.id, change(red="something else")),
        service.change_plan(session, clinician(Role.nurse, orgnr=ORG_B), patient.id, change(red="x")),
    ):
        with pytest.raises(NotFound):
            await call
    assert [v.actions.red for v in (await service.plan_record(session, staff(), patient.id)).history] == [RED]


async def test_two_changes_at_the_same_moment_the_later_is_refused(
    committed: async_sessionmaker[AsyncSession], own_organisation: str
):
    """Both read version 0 and write version 1: the second waits on the first's key, and when
    the first commits it is refused (409), not saved over it."""
    async with committed() as setup, setup.begin():
        patient_id, _ = await add_patient_with_devices(setup, own_organisation, [])
    first_session, second_session = committed(), committed()
    try:
        await first_session.begin()
        await service.change_plan(
            first_session, clinician(orgnr=own_organisation), patient_id, change("first", red=RED)
        )
        await second_session.begin()
        second_pid = await second_session.scalar(text("select pg_backend_pid()"))  # its connection from now on
        second = asyncio.create_task(
            service.change_plan(
                second_session, clinician(orgnr=own_organisation, sub="dr-2"), patient_id, change("second", red="other")
            )
        )
        deadline = time.monotonic() + 15
        async with committed() as watcher:
            while not await watcher.scalar(
                text("select wait_event_type = 'Lock' from pg_stat_activity where pid = :pid"), {"pid": second_pid}
            ):
                assert not second.done(), second
                assert time.monotonic() < deadline, "the second change never waited on the first"
                await watcher.rollback()
                await asyncio.sleep(0.02)
        await first_session.commit()
        with pytest.raises(Conflict) as refused:
            await second
        assert refused.value.code == "action_plan_changed"
        await second_session.rollback()
    finally:
        with contextlib.suppress(Exception):
            await first_session.close()
            await second_session.close()
    async with committed() as reader:
        record = await service.plan_record(reader, clinician(orgnr=own_organisation), patient_id)
        assert [(v.version, v.reason) for v in record.history] == [(1, "first")]


# -- the action an alert carries -------------------------------------------------------------


async def test_an_alert_carries_its_levels_action_and_takes_the_red_one_when_raised(session: AsyncSession):
    patient = await enrol(session, conditions=["copd"])
    await service.change_plan(session, clinician(), patient.id, change(green=GREEN, yellow=YELLOW))
    await service.change_plan(session, clinician(), patient.id, change(green=GREEN, yellow=YELLOW, red=RED))

    await send(session, patient, 85, at=T0)  # COPD: yellow below 86
    alert = await the_alert(session, patient.id)
    assert (alert.level, alert.action, alert.action_plan_version) == ("yellow", YELLOW, 2)
    await send(session, patient, 85, at=T0 + MINUTE)  # yellow again: nothing new to take
    assert ((await the_alert(session, patient.id)).action, alert.action_plan_version) == (YELLOW, 2)

    await service.change_plan(session, clinician(), patient.id, change(yellow="changed yellow", red="changed red"))
    await send(session, patient, 83, at=T0 + 10 * MINUTE)  # red below 84
    raised = await the_alert(session, patient.id)
    assert (raised.id, raised.level) == (alert.id, "red")
    assert (raised.action, raised.action_plan_version) == ("changed red", 3)

    await send(session, patient, 82, at=T0 + 20 * MINUTE)  # red again: keeps what it was raised with
    await service.change_plan(session, clinician(), patient.id, change(red="changed once more"))
    await send(session, patient, 81, at=T0 + 30 * MINUTE)
    kept = await the_alert(session, patient.id)
    assert (kept.action, kept.action_plan_version, kept.occurrences) == ("changed red", 3, 5)

    # The queue item, the detail and every stream event carry it as it was at each step.
    item = await item_of(session, kept)
    assert (item.action, item.action_plan_version) == ("changed red", 3)
    [queued] = await alerts.queue(session, staff(), patient_id=patient.id)
    assert (queued.action, queued.action_plan_version) == ("changed red", 3)
    detail = await alerts.detail(session, staff(), kept.id)
    assert (detail.action, detail.action_plan_version) == ("changed red", 3)
    events = await events_of(session, kept.id)
    assert [(e.kind, e.alert["level"], e.alert["action"], e.alert["action_plan_version"]) for e in events] == [
        ("opened", "yellow", YELLOW, 2),
        ("changed", "yellow", YELLOW, 2),
        ("changed", "red", "changed red", 3),
        ("changed", "red", "changed red", 3),
        ("changed", "red", "changed red", 3),
    ]


async def test_an_alert_opened_before_any_plan_has_no_action_and_a_new_plan_does_not_rewrite_it(
    session: AsyncSession,
):
    patient = await enrol(session, conditions=["copd"])
    await send(session, patient, 85, at=T0)
    alert = await the_alert(session, patient.id)
    assert (alert.action, alert.action_plan_version) == (None, None)
    assert (await item_of(session, alert)).model_dump(include={"action", "action_plan_version"}) == {
        "action": None,
        "action_plan_version": None,
    }
    [opened] = await events_of(session, alert.id)
    assert (opened.alert["action"], opened.alert["action_plan_version"]) == (None, None)

    await service.change_plan(session, clinician(), patient.id, change(yellow=YELLOW, red=RED))
    await send(session, patient, 85, at=T0 + MINUTE)
    assert ((await the_alert(session, patient.id)).action, alert.action_plan_version) == (None, None)

    # The next patient's alert after the plan does carry it: the plan is per patient.
    other = await enrol(session, conditions=["copd"])
    await send(session, other, 85, at=T0)
    assert (await the_alert(session, other.id)).action is None


async def test_a_plan_without_an_action_for_the_level_gives_none_but_names_the_version(session: AsyncSession):
    patient = await enrol(session, conditions=["copd"])
    await service.change_plan(session, clinician(), patient.id, change(red=RED))
    await send(session, patient, 85, at=T0)
    alert = await the_alert(session, patient.id)
    assert (alert.level, alert.action, alert.action_plan_version) == ("yellow", None, 1)


async def test_a_missing_measurement_alert_carries_the_yellow_action(session: AsyncSession):
    """The clock rules open alerts through the other queue statement; it takes the action too."""
    patient = await weight_patient(session)
    await service.change_plan(session, clinician(), patient.id, change(yellow=YELLOW, red=RED))
    assert await run_clock_rules(session, ENROLLED + 24 * HOUR + GRACE + SECOND, GRACE) == 1
    alert = await the_alert(session, patient.id, MISSING_WEIGHT)
    assert (alert.level, alert.action, alert.action_plan_version) == ("yellow", YELLOW, 1)
    [opened] = await events_of(session, alert.id)
    assert (opened.alert["action"], opened.alert["action_plan_version"]) == (YELLOW, 1)


@pytest.mark.parametrize(
    "payload",
    [
        {"reason": "x", "actions": {}},  # no level
        {"reason": "x", "actions": {"green": None, "yellow": None, "red": None}},
        {"reason": "", "actions": {"red": RED}},
        {"reason": "   ", "actions": {"red": RED}},
        {"actions": {"red": RED}},
        {"reason": "x", "actions": {"red": ""}},
        {"reason": "x", "actions": {"red": "   "}},
        {"reason": "x", "actions": {"red": "x" * 501}},
        {"reason": "x", "actions": {"purple": RED}},
        {"reason": "x", "actions": {"red": 116117}},
        {"reason": "x", "actions": {"red": RED}, "version": 3},
        {"reason": "x" * 2001, "actions": {"red": RED}},
    ],
)
def test_malformed_changes_are_refused(payload):
    with pytest.raises(ValueError):
        ActionPlanChange.model_validate(payload)


def test_the_longest_action_is_taken():
    assert ActionPlanChange.model_validate({"reason": "r", "actions": {"red": "x" * 500}}).actions.red == "x" * 500


async def test_a_news2_of_7_opens_a_red_alert_carrying_the_red_action(session: AsyncSession):
    """issue 11's "done": a NEWS2 of 7 opens a red alert carrying the patient's red-zone action."""
    patient = await enrol(session, conditions=(), devices=VITAL_DEVICES)
    await service.change_plan(session, clinician(), patient.id, change(yellow=YELLOW, red=RED))
    await send_vital(session, patient, "respiratory-rate", 25, T0)  # 3
    await send_vital(session, patient, "spo2", 95, T0 + MINUTE)  # 1 on scale 1
    await send_vital(session, patient, "body-temperature", 39.5, T0 + 2 * MINUTE)  # 2: 6, one parameter 3
    await send_vital(session, patient, "blood-pressure", {"systolic": 105, "diastolic": 70}, T0 + 3 * MINUTE)  # 1
    [alert] = await news2_alerts(session, patient.id)
    assert (alert.level, alert.value) == ("red", 7.0)
    assert (alert.action, alert.action_plan_version) == (RED, 1)
    events = [(e.kind, e.alert["level"], e.alert["action"]) for e in await events_of(session, alert.id)]
    assert events == [("opened", "yellow", YELLOW), ("changed", "red", RED)]
