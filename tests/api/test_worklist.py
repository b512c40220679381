"""The nurse's worklist, `GET /api/v1/patients`.

Proves: each patient's status (priority, worst active alert level, active alerts, the newest
alert's rule and time, the oldest unacknowledged alert, last reading per type, each planned
type's last reading, `missing` flag and 7-day adherence, and the total adherence) with values
computed by hand; the priority order (red, yellow, missing, green; within a level the oldest
unacknowledged alert first, acknowledged ones after); the missing rule (interval + grace,
counted from enrolment when never measured); each filter and sort; cursor pagination with no
gaps or repeats under every sort; cursors refused under another sort or when made up; another
organisation's nurse sees none of the patients; one audit record per listed patient.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from rpm import norway
from rpm.alerts.models import Alert, AlertStatus
from rpm.audit.models import AuditRecord
from rpm.observations import repository as observations
from rpm.patients.models import Patient
from tests.api.helpers import (
    assert_error,
    assign,
    enrol,
    ingest,
    message,
    new_organisation,
    parse_time,
    raw_cursor,
    reading,
    register,
)
from tests.conftest import Tokens

URL = "/api/v1/patients"
WEIGHT_PLAN = [{"type": "body-weight", "every_hours": 24}]
SPO2_PLAN = [{"type": "spo2", "every_hours": 24}]
UNITS = {"body-weight": "kg", "spo2": "%"}


def now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


def ago(hours: float, since: datetime | None = None) -> datetime:
    return (since or now()) - timedelta(hours=hours)


async def set_enrolled(session: AsyncSession, patient: dict[str, Any], at: datetime) -> None:
    """Enrolment in the past: the adherence window and the missing rule count from it."""
    await session.execute(update(Patient).where(Patient.id == uuid.UUID(patient["id"])).values(created_at=at))


async def add_alert(
    session: AsyncSession,
    patient: dict[str, Any],
    *,
    rule: str,
    level: str,
    opened_at: datetime,
    status: AlertStatus = AlertStatus.open,
) -> Alert:
    """An alert with an exact opening time, as the rules would have stored it."""
    alert = Alert(
        patient_id=uuid.UUID(patient["id"]),
        rule=rule,
        level=level,
        status=status,
        opened_at=opened_at,
        raised_at=opened_at,
        updated_at=opened_at,
        last_reading_at=opened_at,
        acknowledged_by="nurse-1" if status == AlertStatus.acknowledged else None,
        acknowledged_at=opened_at + timedelta(minutes=5) if status == AlertStatus.acknowledged else None,
    )
    session.add(alert)
    await session.flush()
    return alert


async def send(
    client: httpx.AsyncClient,
    session: AsyncSession,
    admin: dict[str, str],
    patient: dict[str, Any],
    reading_type: str,
    times: Sequence[datetime],
    value: float = 81.4,
) -> None:
    """Readings of one type from a device of the patient's, all of them accepted."""
    device = await register(client, admin, type=reading_type)
    await assign(client, admin, device["serial"], patient["id"], (now() - timedelta(days=60)).isoformat())
    readings = [
        reading(device["serial"], at.isoformat(), type=reading_type, value=value, unit=UNITS[reading_type])
        for at in times
    ]
    (outcome,) = await ingest(session, message(readings))
    assert [r["status"] for r in outcome.results] == ["accepted"] * len(times), outcome.results


async def listed(client: httpx.AsyncClient, headers: dict[str, str], **params: Any) -> list[dict[str, Any]]:
    """One page big enough for everything."""
    r = await client.get(URL, headers=headers, params={"limit": 500, **params})
    assert r.status_code == 200, r.text
    body = r.json()
    assert set(body) == {"items", "next"}
    assert body["next"] is None
    return body["items"]


async def walk(client: httpx.AsyncClient, headers: dict[str, str], limit: int, **params: Any) -> list[str]:
    """Every page of `limit`, following `next`: the ids in the order seen."""
    seen: list[str] = []
    query: dict[str, Any] = {"limit": limit, **params}
    for _ in range(50):
        r = await client.get(URL, headers=headers, params=query)
        assert r.status_code == 200, r.text
        body = r.json()
        assert len(body["items"]) <= limit
        seen += [p["id"] for p in body["items"]]
        if body["next"] is None:
            return seen
        assert len(body["items"]) == limit, "a page before the last must be full"
        query = {**query, "cursor": body["next"]}
    raise AssertionError("pagination does not end")


def by_id(items: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {p["id"]: p for p in items}


def ids(items: list[dict[str, Any]]) -> list[str]:
    return [p["id"] for p in items]


def uuid_order(patients: Sequence[dict[str, Any]], *, reverse: bool = False) -> list[str]:
    return sorted((p["id"] for p in patients), key=uuid.UUID, reverse=reverse)


# -- the status of one patient -------------------------------------------------------------


async def test_status_of_a_patient_with_readings_and_alerts(client, tokens: Tokens, session):
    org = await new_organisation(session)
    admin, nurse = tokens(org, "admin"), tokens(org, "nurse")
    patient = await enrol(
        client, admin, org, measurement_plan=[*WEIGHT_PLAN, {"type": "spo2", "every_hours": 12}]
    )  # copd and heart-failure
    start = now()
    await set_enrolled(session, patient, start - timedelta(days=10))
    # Weighed on 5 of the last 7 days, twice on one of them, and once 8 days ago (outside the window).
    weighed = [ago(h, start) for h in (3, 26, 31, 50, 98, 146, 8 * 24)]
    await send(client, session, admin, patient, "body-weight", weighed)
    # SpO2 83 % for a COPD patient is red (below the red band's low 84): the rules open an alert.
    await send(client, session, admin, patient, "spo2", [ago(2, start)], value=83)

    (item,) = await listed(client, nurse)
    assert item["id"] == patient["id"]
    assert item["name"] == "Kari Nordmann" and item["status"] == "active"
    assert item["identifier"] == patient["identifier"]
    assert item["priority"] == "red"
    assert item["worst_alert_level"] == "red"
    assert item["active_alerts"] == 1
    newest = item["newest_alert"]
    assert newest["rule"] == "threshold:59408-5:low"
    assert newest["level"] == "red" and newest["status"] == "open"
    assert newest["value"] == 83 and newest["unit"] == "%"
    assert parse_time(newest["last_reading_at"]) == ago(2, start)
    opened = parse_time(newest["opened_at"])
    assert start - timedelta(minutes=1) <= opened <= datetime.now(UTC)
    assert parse_time(item["unacknowledged_since"]) == opened
    assert parse_time(item["last_reading"]) == ago(2, start)
    assert {k: parse_time(v) for k, v in item["last_reading_at"].items()} == {
        "body-weight": ago(3, start),
        "spo2": ago(2, start),
    }
    plan = {p["type"]: p for p in item["plan"]}
    assert set(plan) == {"body-weight", "spo2"}
    assert parse_time(plan["body-weight"].pop("last_reading_at")) == ago(3, start)
    assert plan["body-weight"] == {
        "type": "body-weight",
        "every_hours": 24,
        "missing": False,
        "received": 5,
        "expected": 7,
    }
    assert parse_time(plan["spo2"].pop("last_reading_at")) == ago(2, start)
    # Every 12 h over a week: 14 intervals, one of them with a reading.
    assert plan["spo2"] == {"type": "spo2", "every_hours": 12, "missing": False, "received": 1, "expected": 14}
    # 6 of 21 intervals.
    assert item["adherence"] == {"received": 6, "expected": 21, "ratio": 0.286}

    # Acknowledged: still red, but nothing unacknowledged any more.
    r = await client.post(f"/api/v1/alerts/{newest['id']}/acknowledge", headers=nurse)
    assert r.status_code == 200, r.text
    # A newer alert of another rule becomes the newest; the worst level stays red.
    gain = await add_alert(session, patient, rule="trend:weight-gain", level="yellow", opened_at=datetime.now(UTC))
    (item,) = await listed(client, nurse)
    assert item["priority"] == "red"
    assert item["worst_alert_level"] == "red"
    assert item["active_alerts"] == 2
    assert item["unacknowledged_since"] is None
    assert item["newest_alert"]["id"] == str(gain.id)
    assert item["newest_alert"]["rule"] == "trend:weight-gain"
    assert item["newest_alert"]["level"] == "yellow"


async def test_lists_only_the_callers_patients(client, tokens: Tokens, session):
    """The intent of the former list test, in the worklist's shape: the caller's patients only,
    the last reading of each type that was measured, and each planned type's status."""
    org = await new_organisation(session)
    other_org = await new_organisation(session)
    admin = tokens(org, "admin")
    mine = await enrol(client, admin, org)
    other = await enrol(client, tokens(other_org, "admin"), other_org)
    weighed = ago(2)
    await send(client, session, admin, mine, "body-weight", [weighed - timedelta(days=2), weighed])

    items = await listed(client, tokens(org, "nurse"))
    assert ids(items) == [mine["id"]]
    (item,) = items
    assert item["priority"] == "green"
    assert item["worst_alert_level"] is None
    assert item["active_alerts"] == 0
    assert item["newest_alert"] is None
    assert item["unacknowledged_since"] is None
    assert set(item["last_reading_at"]) == {"body-weight"}
    assert parse_time(item["last_reading_at"]["body-weight"]) == weighed
    assert parse_time(item["last_reading"]) == weighed
    plan = {p["type"]: p for p in item["plan"]}
    assert parse_time(plan["body-weight"]["last_reading_at"]) == weighed
    assert plan["body-weight"]["missing"] is False
    # Never measured, but enrolled just now: not overdue yet, and nothing expected yet.
    assert plan["spo2"] == {
        "type": "spo2",
        "every_hours": 24,
        "last_reading_at": None,
        "missing": False,
        "received": 0,
        "expected": 0,
    }
    assert item["adherence"] == {"received": 0, "expected": 0, "ratio": None}

    assert ids(await listed(client, tokens(other_org, "nurse"))) == [other["id"]]


async def test_another_organisations_nurse_sees_none_of_them(client, tokens: Tokens, session):
    org = await new_organisation(session)
    stranger = await new_organisation(session)
    admin = tokens(org, "admin")
    red = await enrol(client, admin, org)
    await add_alert(session, red, rule="threshold:59408-5:low", level="red", opened_at=ago(1))
    await enrol(client, admin, org)
    assert len(await listed(client, tokens(org, "nurse"))) == 2
    assert await listed(client, tokens(stranger, "nurse")) == []
    for level in ("red", "yellow", "missing", "green"):
        assert await listed(client, tokens(stranger, "nurse"), level=level) == []
    # Naming the organisation as a filter does not widen what the stranger sees.
    assert await listed(client, tokens(stranger, "nurse"), organisation=org) == []


# -- adherence --------------------------------------------------------------------------------


async def test_adherence_hand_computed(client, tokens: Tokens, session):
    org = await new_organisation(session)
    admin = tokens(org, "admin")
    start = now()

    # Enrolled 10 days ago, weighed every 24 h: on 5 of the last 7 days (twice on one of them).
    week = await enrol(client, admin, org, name="Week Patient", measurement_plan=WEIGHT_PLAN)
    await set_enrolled(session, week, start - timedelta(days=10))
    await send(client, session, admin, week, "body-weight", [ago(h, start) for h in (2, 26, 31, 50, 98, 146)])

    # Enrolled 3 days ago: three days expected; a weight from before enrolment does not count.
    recent = await enrol(client, admin, org, name="Recent Patient", measurement_plan=WEIGHT_PLAN)
    await set_enrolled(session, recent, start - timedelta(days=3, hours=1))
    await send(client, session, admin, recent, "body-weight", [ago(3 * 24 + 5, start), ago(30, start)])

    # Every 12 h: 14 intervals in a week; three readings in three intervals, two in one of them.
    twice = await enrol(
        client, admin, org, name="Twice Patient", measurement_plan=[{"type": "spo2", "every_hours": 12}]
    )
    await set_enrolled(session, twice, start - timedelta(days=10))
    await send(client, session, admin, twice, "spo2", [ago(h, start) for h in (1, 5, 13, 30)], value=93)

    # Enrolled just now: nothing expected yet.
    new = await enrol(client, admin, org, name="New Patient", measurement_plan=WEIGHT_PLAN)

    items = by_id(await listed(client, tokens(org, "nurse")))
    assert items[week["id"]]["adherence"] == {"received": 5, "expected": 7, "ratio": 0.714}
    (week_plan,) = items[week["id"]]["plan"]
    assert (week_plan["received"], week_plan["expected"]) == (5, 7)

    assert items[recent["id"]]["adherence"] == {"received": 1, "expected": 3, "ratio": 0.333}
    assert items[twice["id"]]["adherence"] == {"received": 3, "expected": 14, "ratio": 0.214}
    (twice_plan,) = items[twice["id"]]["plan"]
    assert (twice_plan["type"], twice_plan["every_hours"], twice_plan["expected"]) == ("spo2", 12, 14)
    assert items[new["id"]]["adherence"] == {"received": 0, "expected": 0, "ratio": None}


# -- the missing rule -------------------------------------------------------------------------


async def test_missing_rule_counts_from_enrolment_or_the_last_reading(client, tokens: Tokens, session):
    """Overdue = no reading of the type for its interval plus the grace (2 h); never measured
    counts from enrolment. Such a patient is in the `missing` group without any alert."""
    org = await new_organisation(session)
    admin = tokens(org, "admin")
    start = now()

    async def patient(name: str, enrolled_hours_ago: float, plan: list[dict[str, Any]]) -> dict[str, Any]:
        found = await enrol(client, admin, org, name=name, measurement_plan=plan)
        await set_enrolled(session, found, ago(enrolled_hours_ago, start))
        return found

    never_27 = await patient("Never 27h", 27, SPO2_PLAN)  # 24 + 2 < 27: overdue
    await patient("Never 25h", 25, SPO2_PLAN)  # 25 < 24 + 2: not yet
    late_27 = await patient("Late 27h", 240, SPO2_PLAN)
    await send(client, session, admin, late_27, "spo2", [ago(27, start)], value=93)
    late_25 = await patient("Late 25h", 240, SPO2_PLAN)
    await send(client, session, admin, late_25, "spo2", [ago(25, start)], value=93)
    late_30 = await patient("Late 30h", 240, WEIGHT_PLAN)  # the former "off schedule" case
    await send(client, session, admin, late_30, "body-weight", [ago(30, start)])
    twelve_15 = await patient("Twelve 15h", 240, [{"type": "spo2", "every_hours": 12}])
    await send(client, session, admin, twelve_15, "spo2", [ago(15, start)], value=93)
    twelve_13 = await patient("Twelve 13h", 240, [{"type": "spo2", "every_hours": 12}])
    await send(client, session, admin, twelve_13, "spo2", [ago(13, start)], value=93)
    # A weight before enrolment does not restart the clock earlier than enrolment.
    before = await patient("Before enrolment", 20, WEIGHT_PLAN)
    await send(client, session, admin, before, "body-weight", [ago(40, start)])
    # Two planned types, one of them overdue.
    one_of_two = await patient("One of two", 240, [*WEIGHT_PLAN, *SPO2_PLAN])
    await send(client, session, admin, one_of_two, "body-weight", [ago(3, start)])
    await send(client, session, admin, one_of_two, "spo2", [ago(28, start)], value=93)

    overdue = {never_27["id"], late_27["id"], late_30["id"], twelve_15["id"], one_of_two["id"]}
    items = by_id(await listed(client, tokens(org, "nurse")))
    for patient_id, item in items.items():
        assert item["priority"] == ("missing" if patient_id in overdue else "green"), item["name"]
        assert item["worst_alert_level"] is None and item["active_alerts"] == 0
    flags = {item["name"]: {p["type"]: p["missing"] for p in item["plan"]} for item in items.values()}
    assert flags == {
        "Never 27h": {"spo2": True},
        "Never 25h": {"spo2": False},
        "Late 27h": {"spo2": True},
        "Late 25h": {"spo2": False},
        "Late 30h": {"body-weight": True},
        "Twelve 15h": {"spo2": True},
        "Twelve 13h": {"spo2": False},
        "Before enrolment": {"body-weight": False},
        "One of two": {"body-weight": False, "spo2": True},
    }
    late = items[late_30["id"]]
    (weight,) = late["plan"]
    assert parse_time(weight["last_reading_at"]) == ago(30, start)
    assert {p["id"] for p in await listed(client, tokens(org, "nurse"), level="missing")} == overdue


async def test_missing_alert_alone_puts_the_patient_in_the_missing_group(client, tokens: Tokens, session):
    org = await new_organisation(session)
    admin = tokens(org, "admin")
    patient = await enrol(client, admin, org)
    opened = ago(1)
    await add_alert(session, patient, rule="missing:spo2", level="yellow", opened_at=opened)
    acknowledged = await enrol(client, admin, org)
    await add_alert(
        session,
        acknowledged,
        rule="missing:body-weight",
        level="yellow",
        opened_at=ago(3),
        status=AlertStatus.acknowledged,
    )
    items = by_id(await listed(client, tokens(org, "nurse")))
    item = items[patient["id"]]
    assert item["priority"] == "missing"
    assert item["worst_alert_level"] == "yellow"  # a missing-measurement alert is yellow
    assert item["active_alerts"] == 1
    assert item["newest_alert"]["rule"] == "missing:spo2"
    assert parse_time(item["unacknowledged_since"]) == opened
    assert items[acknowledged["id"]]["priority"] == "missing"
    assert items[acknowledged["id"]]["unacknowledged_since"] is None
    # The unacknowledged one first, the acknowledged one after it.
    assert ids(await listed(client, tokens(org, "nurse"))) == [patient["id"], acknowledged["id"]]


async def test_resolved_alerts_and_ended_follow_up_do_not_count(client, tokens: Tokens, session):
    org = await new_organisation(session)
    admin = tokens(org, "admin")
    resolved = await enrol(client, admin, org)
    alert = await add_alert(session, resolved, rule="threshold:59408-5:low", level="red", opened_at=ago(5))
    alert.status, alert.note, alert.resolved_at, alert.resolved_by = AlertStatus.resolved, "ok", ago(4), "nurse-1"
    await session.flush()
    ended = await enrol(client, admin, org, measurement_plan=SPO2_PLAN)
    await set_enrolled(session, ended, ago(240))  # never measured: overdue, were it followed
    r = await client.patch(f"{URL}/{ended['id']}", headers=admin, json={"status": "ended"})
    assert r.status_code == 200, r.text

    items = by_id(await listed(client, tokens(org, "nurse")))
    assert items[resolved["id"]]["priority"] == "green"
    assert items[resolved["id"]]["active_alerts"] == 0
    assert items[resolved["id"]]["newest_alert"] is None
    assert items[ended["id"]]["priority"] == "green"
    assert items[ended["id"]]["status"] == "ended"
    assert [p["missing"] for p in items[ended["id"]]["plan"]] == [False]


# -- a ward: priority order, filters, sorts and pages ----------------------------------------


async def ward(client: httpx.AsyncClient, tokens: Tokens, session: AsyncSession) -> tuple[str, dict[str, Any]]:
    """An organisation with ten patients in every state: (orgnr, patients by name)."""
    org = await new_organisation(session)
    admin = tokens(org, "admin")
    start = now()
    names = ["Astrid", "Bodil", "Cecilie", "Dagny", "Eli", "Frida", "Gro", "Hanne 1", "Hanne 2", "Ingrid"]
    patients = {}
    for name in names:
        patients[name] = await enrol(client, admin, org, name=name.split()[0])
    p = patients
    # Red: Astrid's since 5 h; Bodil's since 2 h (her acknowledged red of 12 h does not count);
    # Cecilie's red is acknowledged.
    await add_alert(session, p["Astrid"], rule="threshold:59408-5:low", level="red", opened_at=ago(5, start))
    await add_alert(session, p["Bodil"], rule="threshold:8867-4:high", level="red", opened_at=ago(2, start))
    await add_alert(
        session,
        p["Bodil"],
        rule="threshold:59408-5:low",
        level="red",
        opened_at=ago(12, start),
        status=AlertStatus.acknowledged,
    )
    await add_alert(
        session,
        p["Cecilie"],
        rule="threshold:59408-5:low",
        level="red",
        opened_at=ago(8, start),
        status=AlertStatus.acknowledged,
    )
    # Yellow: Eli's since 6 h; Dagny's since 3 h (her acknowledged yellow of 10 h does not count).
    await add_alert(session, p["Eli"], rule="threshold:59408-5:low", level="yellow", opened_at=ago(6, start))
    await add_alert(session, p["Dagny"], rule="trend:weight-gain", level="yellow", opened_at=ago(3, start))
    await add_alert(
        session,
        p["Dagny"],
        rule="threshold:59408-5:low",
        level="yellow",
        opened_at=ago(10, start),
        status=AlertStatus.acknowledged,
    )
    # Missing: Frida has a missing-measurement alert; Gro is overdue without one.
    await add_alert(session, p["Frida"], rule="missing:spo2", level="yellow", opened_at=ago(4, start))
    await set_enrolled(session, p["Gro"], ago(72, start))
    # Readings, for the last_reading sorts.
    await send(client, session, admin, p["Astrid"], "body-weight", [ago(30, start)])
    await send(client, session, admin, p["Cecilie"], "spo2", [ago(1, start)], value=90)
    await send(client, session, admin, p["Dagny"], "body-weight", [ago(10, start)])
    await send(client, session, admin, p["Eli"], "body-weight", [ago(50, start)])
    await send(client, session, admin, p["Eli"], "spo2", [ago(20, start)], value=90)
    await send(client, session, admin, p["Hanne 1"], "body-weight", [ago(5, start)])
    return org, patients


def hanne(patients: dict[str, Any], *, reverse: bool = False) -> list[str]:
    return uuid_order([patients["Hanne 1"], patients["Hanne 2"]], reverse=reverse)


async def test_priority_order(client, tokens: Tokens, session):
    org, p = await ward(client, tokens, session)
    items = await listed(client, tokens(org, "nurse"))
    expected = [
        *(p[n]["id"] for n in ("Astrid", "Bodil", "Cecilie", "Eli", "Dagny", "Frida", "Gro")),
        *hanne(p),
        p["Ingrid"]["id"],
    ]
    assert ids(items) == expected
    # The default sort is priority.
    assert ids(await listed(client, tokens(org, "nurse"), sort="priority")) == expected
    priorities = [i["priority"] for i in items]
    assert priorities == ["red"] * 3 + ["yellow"] * 2 + ["missing"] * 2 + ["green"] * 3
    worst = {i["name"]: i["worst_alert_level"] for i in items}
    assert worst == {
        "Astrid": "red",
        "Bodil": "red",
        "Cecilie": "red",
        "Eli": "yellow",
        "Dagny": "yellow",
        "Frida": "yellow",
        "Gro": None,
        "Hanne": None,
        "Ingrid": None,
    }
    counts = [i["active_alerts"] for i in items]
    assert counts == [1, 2, 1, 1, 2, 1, 0, 0, 0, 0]
    unacknowledged = {i["name"]: i["unacknowledged_since"] is not None for i in items}
    assert unacknowledged["Cecilie"] is False and unacknowledged["Gro"] is False
    assert unacknowledged["Astrid"] and unacknowledged["Bodil"] and unacknowledged["Eli"] and unacknowledged["Frida"]
    by_name = {i["name"]: i for i in items}
    # Bodil's newest alert is the heart-rate one of 2 h, not the acknowledged SpO2 alert of 12 h.
    assert by_name["Bodil"]["newest_alert"]["rule"] == "threshold:8867-4:high"
    assert by_name["Dagny"]["newest_alert"]["rule"] == "trend:weight-gain"
    assert [pl["missing"] for pl in by_name["Gro"]["plan"]] == [True, True]


async def test_level_filter(client, tokens: Tokens, session):
    org, p = await ward(client, tokens, session)
    nurse = tokens(org, "nurse")
    assert ids(await listed(client, nurse, level="red")) == [p[n]["id"] for n in ("Astrid", "Bodil", "Cecilie")]
    assert ids(await listed(client, nurse, level="yellow")) == [p[n]["id"] for n in ("Eli", "Dagny")]
    assert ids(await listed(client, nurse, level="missing")) == [p[n]["id"] for n in ("Frida", "Gro")]
    assert ids(await listed(client, nurse, level="green")) == [*hanne(p), p["Ingrid"]["id"]]
    # With another sort, the filter keeps the same patients.
    assert set(ids(await listed(client, nurse, level="red", sort="name"))) == {
        p[n]["id"] for n in ("Astrid", "Bodil", "Cecilie")
    }
    # Paged: the red group over pages of two.
    assert await walk(client, nurse, 2, level="red") == [p[n]["id"] for n in ("Astrid", "Bodil", "Cecilie")]
    assert_error(await client.get(URL, headers=nurse, params={"level": "purple"}), 422, "level")


async def test_sorts(client, tokens: Tokens, session):
    org, p = await ward(client, tokens, session)
    nurse = tokens(org, "nurse")
    never = uuid_order([p[n] for n in ("Bodil", "Frida", "Gro", "Hanne 2", "Ingrid")])
    measured = [p[n]["id"] for n in ("Astrid", "Eli", "Dagny", "Hanne 1", "Cecilie")]  # 30, 20, 10, 5, 1 h ago

    by_name = await listed(client, nurse, sort="name")
    assert ids(by_name) == [
        *(p[n]["id"] for n in ("Astrid", "Bodil", "Cecilie", "Dagny", "Eli", "Frida", "Gro")),
        *hanne(p),
        p["Ingrid"]["id"],
    ]
    # Oldest first, never measured before all of them.
    oldest_first = await listed(client, nurse, sort="last_reading")
    assert ids(oldest_first) == [*never, *measured]
    assert [i["last_reading"] is None for i in oldest_first] == [True] * 5 + [False] * 5
    # Newest first, never measured last.
    newest_first = await listed(client, nurse, sort="-last_reading")
    assert ids(newest_first) == [*reversed(measured), *reversed(never)]
    times = [parse_time(i["last_reading"]) for i in newest_first[:5]]
    assert times == sorted(times, reverse=True)
    assert_error(await client.get(URL, headers=nurse, params={"sort": "age"}), 422, "sort")


async def test_pages_have_no_gaps_or_repeats_under_every_sort(client, tokens: Tokens, session):
    org, _ = await ward(client, tokens, session)
    nurse = tokens(org, "nurse")
    for sort in ("priority", "name", "last_reading", "-last_reading"):
        whole = ids(await listed(client, nurse, sort=sort))
        assert len(whole) == 10
        for limit in (1, 2, 3, 4):
            paged = await walk(client, nurse, limit, sort=sort)
            assert paged == whole, (sort, limit)
            assert len(set(paged)) == len(paged)
        # A filter and pages together.
        assert await walk(client, nurse, 2, sort=sort, condition="copd") == whole


async def test_a_reading_arriving_while_a_page_is_read_moves_no_patient_across_pages(
    client, tokens: Tokens, session, monkeypatch
):
    """The page's order and its cursor come from one statement; the summaries are read a moment
    later. A reading arriving in between (simulated: every patient measured just now) must not
    move the cursor, or patients would be skipped (oldest first) or repeated (newest first)."""
    org, _ = await ward(client, tokens, session)
    nurse = tokens(org, "nurse")
    whole = {sort: ids(await listed(client, nurse, sort=sort)) for sort in ("last_reading", "-last_reading")}
    real = observations.newest_reading_times

    async def measured_just_now(session: AsyncSession, patient_ids: Any) -> dict[Any, datetime]:
        found = await real(session, patient_ids)
        return {p: now() for p in [*found, *patient_ids]}

    monkeypatch.setattr(observations, "newest_reading_times", measured_just_now)
    for sort, expected in whole.items():
        assert await walk(client, nurse, 2, sort=sort) == expected, sort


async def test_a_cursor_from_another_sort_or_made_up_is_refused(client, tokens: Tokens, session):
    org, p = await ward(client, tokens, session)
    nurse = tokens(org, "nurse")
    cursors = {}
    for sort in ("priority", "name", "last_reading", "-last_reading"):
        r = await client.get(URL, headers=nurse, params={"sort": sort, "limit": 2})
        assert r.status_code == 200, r.text
        cursors[sort] = r.json()["next"]
        assert cursors[sort]
    for given, cursor in cursors.items():
        for sort in ("priority", "name", "last_reading", "-last_reading"):
            r = await client.get(URL, headers=nurse, params={"sort": sort, "limit": 2, "cursor": cursor})
            if sort == given:
                assert r.status_code == 200, r.text
            else:
                assert assert_error(r, 422, "cursor")["error"] == "invalid_cursor", (given, sort)
    some_id = p["Astrid"]["id"]
    made_up = [
        "!!!not-a-cursor",
        raw_cursor("priority"),
        raw_cursor(["patients", ["priority", 0]]),
        raw_cursor(["patients", ["priority", 0, "2026-01-01T00:00:00", "Astrid", some_id]]),  # a time without offset
        raw_cursor(["patients", ["priority", "red", "2026-01-01T00:00:00Z", "Astrid", some_id]]),
        raw_cursor(["patients", ["name", "Astrid", "not-a-uuid"]]),
        raw_cursor(["patients", ["age", 1, some_id]]),
        raw_cursor({"sort": "name"}),
    ]
    for cursor in made_up:
        r = await client.get(URL, headers=nurse, params={"cursor": cursor})
        assert assert_error(r, 422, "cursor")["error"] == "invalid_cursor", cursor


# -- the other filters ---------------------------------------------------------------------


async def test_condition_filter(client, tokens: Tokens, session):
    org = await new_organisation(session)
    admin = tokens(org, "admin")
    copd = await enrol(client, admin, org, conditions=["copd"])
    diabetes = await enrol(client, admin, org, conditions=["diabetes"])
    both = await enrol(client, admin, org, conditions=["copd", "hypertension"])
    none = await enrol(client, admin, org, conditions=[])
    nurse = tokens(org, "nurse")
    assert set(ids(await listed(client, nurse, condition="copd"))) == {copd["id"], both["id"]}
    assert ids(await listed(client, nurse, condition="diabetes")) == [diabetes["id"]]
    assert ids(await listed(client, nurse, condition="hypertension")) == [both["id"]]
    assert await listed(client, nurse, condition="heart-failure") == []
    assert set(ids(await listed(client, nurse))) == {copd["id"], diabetes["id"], both["id"], none["id"]}
    assert_error(await client.get(URL, headers=nurse, params={"condition": "flu"}), 422, "condition")


async def test_organisation_filter_lists_patients_that_organisation_also_follows(client, tokens: Tokens, session):
    org = await new_organisation(session)
    gp = await new_organisation(session, kind="gp-office")
    admin = tokens(org, "admin")
    today = norway.today()  # care-team periods are dates in Norway
    alone = await enrol(client, admin, org)
    shared = await enrol(
        client,
        admin,
        org,
        care_team=[{"organisation": org, "from": "2026-01-01"}, {"organisation": gp, "from": "2026-01-01"}],
    )
    formerly = await enrol(
        client,
        admin,
        org,
        care_team=[
            {"organisation": org, "from": "2026-01-01"},
            {"organisation": gp, "from": "2026-01-01", "to": (today - timedelta(days=1)).isoformat()},
        ],
    )
    later = await enrol(
        client,
        admin,
        org,
        care_team=[
            {"organisation": org, "from": "2026-01-01"},
            {"organisation": gp, "from": (today + timedelta(days=1)).isoformat()},
        ],
    )
    nurse = tokens(org, "nurse")
    assert set(ids(await listed(client, nurse))) == {alone["id"], shared["id"], formerly["id"], later["id"]}
    assert ids(await listed(client, nurse, organisation=gp)) == [shared["id"]]
    assert ids(await listed(client, nurse, organisation=org)) == ids(await listed(client, nurse))
    # The GP office's own list is the shared patient alone.
    assert ids(await listed(client, tokens(gp, "physician"))) == [shared["id"]]
    assert ids(await listed(client, tokens(gp, "physician"), organisation=org)) == [shared["id"]]
    assert_error(await client.get(URL, headers=nurse, params={"organisation": "12345"}), 422, "organisation")


async def test_status_filter(client, tokens: Tokens, session):
    org = await new_organisation(session)
    admin = tokens(org, "admin")
    active = await enrol(client, admin, org)
    ended = await enrol(client, admin, org)
    r = await client.patch(f"{URL}/{ended['id']}", headers=admin, json={"status": "ended"})
    assert r.status_code == 200, r.text
    nurse = tokens(org, "nurse")
    assert ids(await listed(client, nurse, status="active")) == [active["id"]]
    assert ids(await listed(client, nurse, status="ended")) == [ended["id"]]
    assert set(ids(await listed(client, nurse))) == {active["id"], ended["id"]}
    assert_error(await client.get(URL, headers=nurse, params={"status": "paused"}), 422, "status")


# -- audit -------------------------------------------------------------------------------------


async def audited(session: AsyncSession, request_id: str) -> list[AuditRecord]:
    rows = await session.scalars(select(AuditRecord).where(AuditRecord.request_id == request_id))
    return list(rows)


async def test_each_listed_patient_is_audited(client, tokens: Tokens, session):
    org = await new_organisation(session)
    admin = tokens(org, "admin")
    patients = [await enrol(client, admin, org, name=name) for name in ("Anne", "Berit", "Cecilie")]
    nurse = tokens(org, "nurse", sub="nurse-kari", hpr="7654321")

    rid = f"req-{uuid.uuid4().hex}"
    r = await client.get(URL, headers={**nurse, "X-Request-ID": rid}, params={"sort": "name"})
    assert r.status_code == 200, r.text
    records = await audited(session, rid)
    assert sorted(str(a.patient_id) for a in records) == sorted(p["id"] for p in patients)
    for a in records:
        assert (a.action, a.resource_type, a.resource_id) == ("search", "Patient", None)
        assert (a.actor_sub, a.actor_hpr, a.actor_org) == ("nurse-kari", "7654321", org)

    # A page of two: the two patients shown, not the one after them.
    rid = f"req-{uuid.uuid4().hex}"
    r = await client.get(URL, headers={**nurse, "X-Request-ID": rid}, params={"sort": "name", "limit": 2})
    assert r.status_code == 200, r.text
    assert ids(r.json()["items"]) == [patients[0]["id"], patients[1]["id"]]
    assert sorted(str(a.patient_id) for a in await audited(session, rid)) == sorted(
        [patients[0]["id"], patients[1]["id"]]
    )

    # An empty list audits nobody.
    stranger = await new_organisation(session)
    rid = f"req-{uuid.uuid4().hex}"
    r = await client.get(URL, headers={**tokens(stranger), "X-Request-ID": rid})
    assert r.status_code == 200, r.text
    assert await audited(session, rid) == []


async def test_needs_a_token(client):
    r = await client.get(URL)
    assert_error(r, 401)
    assert r.headers["www-authenticate"].startswith("Bearer")
