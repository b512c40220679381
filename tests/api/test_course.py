"""A patient's course: `GET /api/v1/patients/{id}/dashboard` and `GET /api/v1/patients/{id}/trends`.

Proves, with values computed by hand: the dashboard's latest value of each type with its
level judged against the thresholds in force now (a blood pressure's level is its worst
component), active alerts, thresholds, plan with adherence and 14 days of sparkline points
(a blood pressure gives a systolic and a diastolic line; older points left out); trends'
count/min/max/mean per bucket in the canonical unit (readings sent in lb and kPa converted),
buckets `raw`, `1h`, `1d` and `1w` cut at midnight in Norway, also on the 23- and 25-hour
days of 2026's daylight-saving changes, with each bucket's start and end at the right offset;
`from`/`to` as days (local midnight; `to` includes its day) or as times with an offset; a
blood pressure's two series; the bands in force over the period, one period per version of
the thresholds; the errors (unknown code, from after to, too many buckets, a time without
offset); 404 for another organisation and an unknown patient; an audit record for each read.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import httpx
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from rpm.audit.models import AuditRecord
from rpm.patients.models import Patient
from rpm.rules.models import ThresholdOverride
from tests.api.helpers import (
    assert_error,
    assign,
    enrol,
    ingest,
    message,
    new_organisation,
    parse_time,
    reading,
    register,
    unique,
)
from tests.conftest import ORG_B, Tokens

SPO2, SYSTOLIC, DIASTOLIC, WEIGHT, BLOOD_PRESSURE = "59408-5", "8480-6", "8462-4", "29463-7", "85354-9"
OSLO = ZoneInfo("Europe/Oslo")
ASSIGNED_FROM = "2026-01-01T00:00:00+01:00"  # before every reading of these tests


class Ward:
    """An organisation with one patient and a device of each type the test needs."""

    def __init__(self, client: httpx.AsyncClient, tokens: Tokens, session: AsyncSession) -> None:
        self.client, self.tokens, self.session = client, tokens, session
        self.org = ""
        self.patient: dict[str, Any] = {}
        self.serials: dict[str, str] = {}

    @property
    def nurse(self) -> dict[str, str]:
        return self.tokens(self.org, "nurse")

    @property
    def url(self) -> str:
        return f"/api/v1/patients/{self.patient['id']}"

    async def admit(self, *types: str, **enrolment: Any) -> Ward:
        self.org = await new_organisation(self.session)
        admin = self.tokens(self.org, "admin")
        self.patient = await enrol(self.client, admin, self.org, **enrolment)
        for reading_type in types:
            device = await register(self.client, admin, type=reading_type)
            await assign(self.client, admin, device["serial"], self.patient["id"], ASSIGNED_FROM)
            self.serials[reading_type] = device["serial"]
        return self

    async def send(self, reading_type: str, *taken: tuple[datetime | str, Any, str]) -> None:
        """Readings of one type as (time, value or values, unit); all must be accepted."""
        readings = [
            reading(
                self.serials[reading_type],
                at if isinstance(at, str) else at.isoformat(),
                type=reading_type,
                value=value,
                unit=unit,
                reading_id=unique("r"),
            )
            for at, value, unit in taken
        ]
        (outcome,) = await ingest(self.session, message(readings))
        assert [r["status"] for r in outcome.results] == ["accepted"] * len(readings), outcome.results

    async def trend(self, status: int = 200, **params: Any) -> dict[str, Any]:
        r = await self.client.get(f"{self.url}/trends", headers=self.nurse, params=params)
        assert r.status_code == status, r.text
        return r.json()


def buckets(series: dict[str, Any]) -> list[tuple[str, str, int, float, float, float]]:
    return [(b["start"], b["end"], b["count"], b["min"], b["max"], b["mean"]) for b in series["buckets"]]


def hours_between(start: str, end: str) -> float:
    return (parse_time(end) - parse_time(start)).total_seconds() / 3600


async def audit_of(session: AsyncSession, request_id: str) -> list[AuditRecord]:
    return list(await session.scalars(select(AuditRecord).where(AuditRecord.request_id == request_id)))


# -- dashboard -------------------------------------------------------------------------------


async def test_dashboard(client, tokens: Tokens, session):
    ward = await Ward(client, tokens, session).admit(
        "body-weight",
        "spo2",
        "blood-pressure",
        conditions=["copd", "hypertension"],
        measurement_plan=[
            {"type": "body-weight", "every_hours": 24},
            {"type": "spo2", "every_hours": 24},
            {"type": "blood-pressure", "every_hours": 24},
        ],
    )
    now = datetime.now(UTC).replace(microsecond=0)
    await session.execute(
        update(Patient).where(Patient.id == uuid.UUID(ward.patient["id"])).values(created_at=now - timedelta(days=10))
    )

    def ago(hours: float) -> datetime:
        return now - timedelta(hours=hours)

    await ward.send(
        "body-weight",
        (ago(15 * 24), 80.0, "kg"),  # older than 14 days: no sparkline point
        (ago(13 * 24), 81.0, "kg"),
        (ago(3 * 24 + 1), 82.0, "kg"),
        (ago(2), 181, "[lb_av]"),  # 82.1 kg
    )
    # COPD: SpO2 yellow below 86, red below 84; 85 is yellow and opens a yellow alert.
    await ward.send("spo2", (ago(25), 93, "%"), (ago(1), 85, "%"))
    # Hypertension: diastolic red above 119. 150/125 is green systolic, red diastolic: red.
    await ward.send(
        "blood-pressure",
        (ago(49), {"systolic": 16, "diastolic": 10}, "kPa"),  # 120.01 / 75.006 mm[Hg]
        (ago(0.5), {"systolic": 150, "diastolic": 125, "pulse": 77}, "mm[Hg]"),
    )

    r = await client.get(f"{ward.url}/dashboard", headers=ward.nurse)
    assert r.status_code == 200, r.text
    board = r.json()
    assert board["patient"]["id"] == ward.patient["id"]
    assert board["patient"]["conditions"] == ["copd", "hypertension"]

    latest = {v["type"]: v for v in board["latest"]}
    assert set(latest) == {"body-weight", "spo2", "blood-pressure", "heart-rate"}
    pressure = latest["blood-pressure"]
    assert (pressure["code"], pressure["unit"], pressure["value"]) == (BLOOD_PRESSURE, "mm[Hg]", None)
    assert pressure["components"] == {SYSTOLIC: 150, DIASTOLIC: 125}
    assert (pressure["level"], pressure["interpretation"]) == ("red", "HH")
    assert parse_time(pressure["effective_at"]) == ago(0.5)
    assert pressure["observation"].startswith("Observation/")
    spo2 = latest["spo2"]
    assert (spo2["code"], spo2["value"], spo2["unit"], spo2["level"], spo2["interpretation"]) == (
        SPO2,
        85,
        "%",
        "yellow",
        "L",
    )
    weight = latest["body-weight"]
    assert (weight["code"], weight["value"], weight["unit"], weight["level"]) == (WEIGHT, 82.1, "kg", "green")
    assert parse_time(weight["effective_at"]) == ago(2)
    pulse = latest["heart-rate"]
    assert (pulse["code"], pulse["value"], pulse["unit"], pulse["level"]) == ("8867-4", 77, "/min", "green")
    # Times in Norwegian time, with the offset of the day.
    for value in latest.values():
        assert value["effective_at"] == parse_time(value["effective_at"]).astimezone(OSLO).isoformat()

    # Red before yellow.
    assert [(a["rule"], a["level"], a["status"]) for a in board["active_alerts"]] == [
        (f"threshold:{DIASTOLIC}:high", "red", "open"),
        (f"threshold:{SPO2}:low", "yellow", "open"),
    ]
    assert board["active_alerts"][1]["value"] == 85

    thresholds = (await client.get(f"{ward.url}/thresholds", headers=ward.nurse)).json()
    assert board["thresholds"] == thresholds
    assert board["thresholds"][SPO2]["yellow"] == {"low": 86}

    plan = {p["type"]: (p["received"], p["expected"], p["missing"]) for p in board["plan"]}
    assert plan == {"body-weight": (2, 7, False), "spo2": (2, 7, False), "blood-pressure": (2, 7, False)}
    assert board["adherence"] == {"received": 6, "expected": 21, "ratio": 0.286}

    lines = [(s["type"], s["code"], s["unit"], [p["value"] for p in s["points"]]) for s in board["sparklines"]]
    assert lines == [
        ("blood-pressure", SYSTOLIC, "mm[Hg]", [120.01, 150]),
        ("blood-pressure", DIASTOLIC, "mm[Hg]", [75.006, 125]),
        ("heart-rate", "8867-4", "/min", [77]),
        ("spo2", SPO2, "%", [93, 85]),
        ("body-weight", WEIGHT, "kg", [81.0, 82.0, 82.1]),
    ]
    weights = next(s for s in board["sparklines"] if s["code"] == WEIGHT)
    assert [parse_time(p["at"]) for p in weights["points"]] == [ago(13 * 24), ago(3 * 24 + 1), ago(2)]

    # New thresholds judge the latest value anew: 85 % is green under yellow low 84.
    r = await client.put(
        f"{ward.url}/thresholds",
        headers=tokens(ward.org, "physician"),
        json={"reason": "habitual SpO2 85", "bands": {SPO2: {"yellow": {"low": 84}, "red": {"low": 80}}}},
    )
    assert r.status_code == 200, r.text
    board = (await client.get(f"{ward.url}/dashboard", headers=ward.nurse)).json()
    spo2 = next(v for v in board["latest"] if v["type"] == "spo2")
    assert (spo2["level"], spo2["interpretation"]) == ("green", "N")
    assert board["thresholds"][SPO2] == {"yellow": {"low": 84}, "red": {"low": 80}, "source": "override"}


async def test_dashboard_of_a_patient_without_readings(client, tokens: Tokens, session):
    ward = await Ward(client, tokens, session).admit()
    r = await client.get(f"{ward.url}/dashboard", headers=ward.nurse)
    assert r.status_code == 200, r.text
    board = r.json()
    assert (board["latest"], board["active_alerts"], board["sparklines"]) == ([], [], [])
    assert [(p["type"], p["last_reading_at"], p["expected"]) for p in board["plan"]] == [
        ("body-weight", None, 0),
        ("spo2", None, 0),
    ]
    assert board["adherence"] == {"received": 0, "expected": 0, "ratio": None}


async def test_blood_pressure_level_is_its_worst_component(client, tokens: Tokens, session):
    ward = await Ward(client, tokens, session).admit("blood-pressure", conditions=["hypertension"])
    now = datetime.now(UTC).replace(microsecond=0)
    cases = [
        # (systolic, diastolic): level, interpretation. Systolic yellow above 159, red above 179 and
        # below 91, yellow below 101; diastolic yellow above 99, red above 119.
        ((165, 80), "yellow", "H"),
        ((130, 105), "yellow", "H"),
        ((185, 80), "red", "HH"),
        ((165, 125), "red", "HH"),
        ((95, 60), "yellow", "L"),
        ((130, 80), "green", "N"),
    ]
    for minutes, ((systolic, diastolic), level, interpretation) in enumerate(cases):
        taken = now - timedelta(hours=3) + timedelta(minutes=minutes)
        await ward.send("blood-pressure", (taken, {"systolic": systolic, "diastolic": diastolic}, "mm[Hg]"))
        board = (await client.get(f"{ward.url}/dashboard", headers=ward.nurse)).json()
        (pressure,) = board["latest"]
        assert pressure["components"] == {SYSTOLIC: systolic, DIASTOLIC: diastolic}
        assert (pressure["level"], pressure["interpretation"]) == (level, interpretation), (systolic, diastolic)


# -- trends: units and buckets ---------------------------------------------------------------


async def test_trend_in_the_canonical_unit(client, tokens: Tokens, session):
    ward = await Ward(client, tokens, session).admit("body-weight", "blood-pressure")
    await ward.send(
        "body-weight",
        ("2026-11-10T08:00:00+01:00", 80.0, "kg"),
        ("2026-11-10T12:00:00+01:00", 81000, "g"),  # 81.0 kg
        ("2026-11-10T20:00:00+01:00", 180, "[lb_av]"),  # 81.647 kg
        ("2026-11-11T08:00:00+01:00", 200, "[lb_av]"),  # 90.718 kg
    )
    await ward.send(
        "blood-pressure",
        ("2026-11-10T08:00:00+01:00", {"systolic": 16, "diastolic": 10}, "kPa"),  # 120.01 / 75.006
        ("2026-11-10T09:00:00+01:00", {"systolic": 130, "diastolic": 80}, "mm[Hg]"),
    )
    trend = await ward.trend(code=WEIGHT, **{"from": "2026-11-10", "to": "2026-11-11"}, bucket="1d")
    assert (trend["code"], trend["unit"], trend["bucket"]) == (WEIGHT, "kg", "1d")
    assert (trend["from"], trend["to"]) == ("2026-11-10T00:00:00+01:00", "2026-11-12T00:00:00+01:00")
    assert buckets(trend) == [
        ("2026-11-10T00:00:00+01:00", "2026-11-11T00:00:00+01:00", 3, 80.0, 81.647, 80.882),  # 242.647 / 3
        ("2026-11-11T00:00:00+01:00", "2026-11-12T00:00:00+01:00", 1, 90.718, 90.718, 90.718),
    ]
    (series,) = trend["series"]
    assert (series["code"], series["unit"], series["display"]) == (WEIGHT, "kg", "Body weight")
    assert series["buckets"] == trend["buckets"]

    pressure = await ward.trend(code=BLOOD_PRESSURE, **{"from": "2026-11-10", "to": "2026-11-10"}, bucket="1d")
    assert pressure["unit"] == "mm[Hg]"
    assert [s["code"] for s in pressure["series"]] == [SYSTOLIC, DIASTOLIC]
    day = ("2026-11-10T00:00:00+01:00", "2026-11-11T00:00:00+01:00")
    systolic, diastolic = pressure["series"]
    assert buckets(systolic) == [(*day, 2, 120.01, 130.0, 125.005)]
    assert buckets(diastolic) == [(*day, 2, 75.006, 80.0, 77.503)]
    assert pressure["buckets"] == systolic["buckets"]
    assert pressure["bands"] == systolic["bands"]
    assert systolic["display"] == "Systolic blood pressure" and diastolic["unit"] == "mm[Hg]"

    # A component's code gives that series alone.
    only = await ward.trend(code=SYSTOLIC, **{"from": "2026-11-10", "to": "2026-11-10"}, bucket="1d")
    assert [s["code"] for s in only["series"]] == [SYSTOLIC]
    assert buckets(only) == [(*day, 2, 120.01, 130.0, 125.005)]
    only = await ward.trend(code=DIASTOLIC, **{"from": "2026-11-10", "to": "2026-11-10"}, bucket="raw")
    assert [s["code"] for s in only["series"]] == [DIASTOLIC]
    assert [(b["start"], b["end"], b["count"], b["mean"]) for b in only["buckets"]] == [
        ("2026-11-10T08:00:00+01:00", "2026-11-10T08:00:00+01:00", 1, 75.006),
        ("2026-11-10T09:00:00+01:00", "2026-11-10T09:00:00+01:00", 1, 80.0),
    ]


SPRING = [  # around Sunday 2026-03-29, clocks forward at 02:00 (a 23-hour day)
    ("2026-03-28T23:30:00+01:00", 80.0),
    ("2026-03-29T00:30:00+01:00", 81.0),
    ("2026-03-29T23:30:00+02:00", 82.0),
    ("2026-03-30T00:30:00+02:00", 83.0),
]
AUTUMN = [  # around Sunday 2026-10-25, clocks back at 03:00 (a 25-hour day)
    ("2026-10-24T23:30:00+02:00", 70.0),
    ("2026-10-25T00:30:00+02:00", 71.0),
    ("2026-10-25T02:30:00+02:00", 72.0),  # 02:30 the first time
    ("2026-10-25T02:30:00+01:00", 73.0),  # and the second
    ("2026-10-25T23:30:00+01:00", 74.0),
    ("2026-10-26T00:30:00+01:00", 75.0),
]


async def weighed_around_dst(client, tokens: Tokens, session) -> Ward:
    ward = await Ward(client, tokens, session).admit("body-weight", conditions=["copd"])
    await ward.send("body-weight", *((at, value, "kg") for at, value in SPRING + AUTUMN))
    return ward


async def test_days_around_the_spring_change(client, tokens: Tokens, session):
    ward = await weighed_around_dst(client, tokens, session)
    trend = await ward.trend(code=WEIGHT, **{"from": "2026-03-28", "to": "2026-03-30"}, bucket="1d")
    assert (trend["from"], trend["to"]) == ("2026-03-28T00:00:00+01:00", "2026-03-31T00:00:00+02:00")
    assert buckets(trend) == [
        ("2026-03-28T00:00:00+01:00", "2026-03-29T00:00:00+01:00", 1, 80.0, 80.0, 80.0),
        ("2026-03-29T00:00:00+01:00", "2026-03-30T00:00:00+02:00", 2, 81.0, 82.0, 81.5),
        ("2026-03-30T00:00:00+02:00", "2026-03-31T00:00:00+02:00", 1, 83.0, 83.0, 83.0),
    ]
    assert [hours_between(b["start"], b["end"]) for b in trend["buckets"]] == [24, 23, 24]


async def test_days_around_the_autumn_change(client, tokens: Tokens, session):
    ward = await weighed_around_dst(client, tokens, session)
    trend = await ward.trend(code=WEIGHT, **{"from": "2026-10-24", "to": "2026-10-26"}, bucket="1d")
    assert (trend["from"], trend["to"]) == ("2026-10-24T00:00:00+02:00", "2026-10-27T00:00:00+01:00")
    assert buckets(trend) == [
        ("2026-10-24T00:00:00+02:00", "2026-10-25T00:00:00+02:00", 1, 70.0, 70.0, 70.0),
        ("2026-10-25T00:00:00+02:00", "2026-10-26T00:00:00+01:00", 4, 71.0, 74.0, 72.5),
        ("2026-10-26T00:00:00+01:00", "2026-10-27T00:00:00+01:00", 1, 75.0, 75.0, 75.0),
    ]
    assert [hours_between(b["start"], b["end"]) for b in trend["buckets"]] == [24, 25, 24]


async def test_hours_around_both_changes(client, tokens: Tokens, session):
    ward = await weighed_around_dst(client, tokens, session)
    spring = await ward.trend(code=WEIGHT, **{"from": "2026-03-29", "to": "2026-03-29"}, bucket="1h")
    assert [(b["start"], b["end"], b["count"], b["mean"]) for b in spring["buckets"]] == [
        ("2026-03-29T00:00:00+01:00", "2026-03-29T01:00:00+01:00", 1, 81.0),
        ("2026-03-29T23:00:00+02:00", "2026-03-30T00:00:00+02:00", 1, 82.0),
    ]
    autumn = await ward.trend(code=WEIGHT, **{"from": "2026-10-25", "to": "2026-10-25"}, bucket="1h")
    # The repeated hour is two buckets, one at each offset.
    assert [(b["start"], b["end"], b["count"], b["mean"]) for b in autumn["buckets"]] == [
        ("2026-10-25T00:00:00+02:00", "2026-10-25T01:00:00+02:00", 1, 71.0),
        ("2026-10-25T02:00:00+02:00", "2026-10-25T02:00:00+01:00", 1, 72.0),
        ("2026-10-25T02:00:00+01:00", "2026-10-25T03:00:00+01:00", 1, 73.0),
        ("2026-10-25T23:00:00+01:00", "2026-10-26T00:00:00+01:00", 1, 74.0),
    ]
    assert all(hours_between(b["start"], b["end"]) == 1 for b in autumn["buckets"] + spring["buckets"])


async def test_weeks_start_on_monday_in_norway(client, tokens: Tokens, session):
    ward = await Ward(client, tokens, session).admit("body-weight")
    await ward.send(
        "body-weight",
        ("2026-03-22T23:30:00+01:00", 80.0, "kg"),  # Sunday: the week of 16 March
        ("2026-03-23T00:30:00+01:00", 81.0, "kg"),  # Monday (Sunday 23:30 UTC)
        ("2026-03-29T23:30:00+02:00", 82.0, "kg"),  # Sunday after the change (Sunday 21:30 UTC)
        ("2026-03-30T00:30:00+02:00", 83.0, "kg"),  # Monday (still Sunday 22:30 UTC)
        ("2026-10-25T23:30:00+01:00", 90.0, "kg"),
        ("2026-10-26T00:30:00+01:00", 91.0, "kg"),  # Sunday 23:30 UTC
    )
    trend = await ward.trend(code=WEIGHT, **{"from": "2026-03-16", "to": "2026-04-05"}, bucket="1w")
    assert buckets(trend) == [
        ("2026-03-16T00:00:00+01:00", "2026-03-23T00:00:00+01:00", 1, 80.0, 80.0, 80.0),
        ("2026-03-23T00:00:00+01:00", "2026-03-30T00:00:00+02:00", 2, 81.0, 82.0, 81.5),
        ("2026-03-30T00:00:00+02:00", "2026-04-06T00:00:00+02:00", 1, 83.0, 83.0, 83.0),
    ]
    assert [hours_between(b["start"], b["end"]) for b in trend["buckets"]] == [168, 167, 168]
    assert all(parse_time(b["start"]).weekday() == 0 for b in trend["buckets"])
    autumn = await ward.trend(code=WEIGHT, **{"from": "2026-10-19", "to": "2026-11-01"}, bucket="1w")
    assert buckets(autumn) == [
        ("2026-10-19T00:00:00+02:00", "2026-10-26T00:00:00+01:00", 1, 90.0, 90.0, 90.0),
        ("2026-10-26T00:00:00+01:00", "2026-11-02T00:00:00+01:00", 1, 91.0, 91.0, 91.0),
    ]
    assert hours_between(autumn["buckets"][0]["start"], autumn["buckets"][0]["end"]) == 169


async def test_from_and_to_as_days_and_as_times(client, tokens: Tokens, session):
    ward = await weighed_around_dst(client, tokens, session)

    def raw(trend: dict[str, Any]) -> list[tuple[str, float]]:
        return [(b["start"], b["mean"]) for b in trend["buckets"]]

    # Days: from its local midnight to the end of `to`'s day.
    day = await ward.trend(code=WEIGHT, **{"from": "2026-03-29", "to": "2026-03-29"}, bucket="raw")
    assert (day["from"], day["to"]) == ("2026-03-29T00:00:00+01:00", "2026-03-30T00:00:00+02:00")
    assert raw(day) == [("2026-03-29T00:30:00+01:00", 81.0), ("2026-03-29T23:30:00+02:00", 82.0)]
    day = await ward.trend(code=WEIGHT, **{"from": "2026-10-25", "to": "2026-10-25"}, bucket="raw")
    assert (day["from"], day["to"]) == ("2026-10-25T00:00:00+02:00", "2026-10-26T00:00:00+01:00")
    assert [m for _, m in raw(day)] == [71.0, 72.0, 73.0, 74.0]
    # Times: `from` included, `to` excluded, any offset.
    times = await ward.trend(
        code=WEIGHT, **{"from": "2026-03-29T00:30:00+01:00", "to": "2026-03-29T23:30:00+02:00"}, bucket="raw"
    )
    assert raw(times) == [("2026-03-29T00:30:00+01:00", 81.0)]
    assert (times["from"], times["to"]) == ("2026-03-29T00:30:00+01:00", "2026-03-29T23:30:00+02:00")
    utc = await ward.trend(code=WEIGHT, **{"from": "2026-03-28T22:00:00Z", "to": "2026-03-29T22:00:00Z"}, bucket="1d")
    assert [(b["start"], b["count"]) for b in utc["buckets"]] == [
        ("2026-03-28T00:00:00+01:00", 1),  # 23:30 on the 28th in Norway
        ("2026-03-29T00:00:00+01:00", 2),
    ]
    # A day and a time together.
    mixed = await ward.trend(code=WEIGHT, **{"from": "2026-03-29", "to": "2026-03-30T00:30:00+02:00"}, bucket="raw")
    assert [m for _, m in raw(mixed)] == [81.0, 82.0]
    # A time without an offset, or something that is no time: 422 naming the parameter.
    for name, value in (("from", "2026-03-29T00:30:00"), ("to", "2026-03-29T23:30"), ("from", "yesterday")):
        params = {"code": WEIGHT, "from": "2026-03-01", "to": "2026-04-01", name: value}
        r = await client.get(f"{ward.url}/trends", headers=ward.nurse, params=params)
        assert assert_error(r, 422, name)["error"] == "invalid_period"


async def test_default_period_is_the_last_30_days(client, tokens: Tokens, session):
    ward = await Ward(client, tokens, session).admit("body-weight")
    now = datetime.now(UTC).replace(microsecond=0)
    await ward.send(
        "body-weight", (now - timedelta(days=31), 80.0, "kg"), (now - timedelta(days=29), 81.0, "kg"), (now, 82.0, "kg")
    )
    trend = await ward.trend(code=WEIGHT, bucket="raw")
    assert [b["mean"] for b in trend["buckets"]] == [81.0, 82.0]
    assert abs(hours_between(trend["from"], trend["to"]) - 30 * 24) < 1e-6
    assert abs((parse_time(trend["to"]) - datetime.now(UTC)).total_seconds()) < 60
    # The default bucket is a day.
    assert (await ward.trend(code=WEIGHT))["bucket"] == "1d"


# -- trends: bands over the period ---------------------------------------------------------


async def set_changed_at(session: AsyncSession, patient_id: str, version: int, at: str) -> None:
    await session.execute(
        update(ThresholdOverride)
        .where(ThresholdOverride.patient_id == uuid.UUID(patient_id), ThresholdOverride.version == version)
        .values(changed_at=datetime.fromisoformat(at))
    )


async def test_bands_over_a_period_with_a_change_in_the_middle(client, tokens: Tokens, session):
    ward = await Ward(client, tokens, session).admit("spo2", conditions=["copd"])
    await ward.send("spo2", ("2026-11-05T08:00:00+01:00", 90, "%"), ("2026-11-20T08:00:00+01:00", 89, "%"))
    physician = tokens(ward.org, "physician")
    r = await client.put(
        f"{ward.url}/thresholds",
        headers=physician,
        json={"reason": "habitual SpO2 89-91", "bands": {SPO2: {"yellow": {"low": 88}, "red": {"low": 85}}}},
    )
    assert r.status_code == 200, r.text
    await set_changed_at(session, ward.patient["id"], 1, "2026-11-15T12:00:00+01:00")

    period = {"from": "2026-11-01", "to": "2026-11-30"}
    trend = await ward.trend(code=SPO2, **period, bucket="1d")
    (series,) = trend["series"]
    assert series["band_periods"] == [
        {
            "from": "2026-11-01T00:00:00+01:00",
            "to": "2026-11-15T12:00:00+01:00",
            "version": 0,
            "source": "template",
            "yellow": {"low": 86},  # copd's template
            "red": {"low": 84},
        },
        {
            "from": "2026-11-15T12:00:00+01:00",
            "to": "2026-12-01T00:00:00+01:00",
            "version": 1,
            "source": "override",
            "yellow": {"low": 88},
            "red": {"low": 85},
        },
    ]
    # The bands at the end of the period, at the top and in the series.
    assert trend["bands"] == series["bands"] == {"yellow": {"low": 88}, "red": {"low": 85}}
    assert [b["count"] for b in trend["buckets"]] == [1, 1]

    # A second change (of another code: the SpO2 override stays) makes a third period.
    r = await client.put(
        f"{ward.url}/thresholds",
        headers=physician,
        json={"reason": "pulse", "bands": {"8867-4": {"yellow": {"high": 100}, "red": {"high": 120}}}},
    )
    assert r.status_code == 200, r.text
    await set_changed_at(session, ward.patient["id"], 2, "2026-11-25T00:00:00+01:00")
    trend = await ward.trend(code=SPO2, **period, bucket="1d")
    assert [
        (p["from"], p["to"], p["version"], p["source"], p["yellow"]) for p in trend["series"][0]["band_periods"]
    ] == [
        ("2026-11-01T00:00:00+01:00", "2026-11-15T12:00:00+01:00", 0, "template", {"low": 86}),
        ("2026-11-15T12:00:00+01:00", "2026-11-25T00:00:00+01:00", 1, "override", {"low": 88}),
        ("2026-11-25T00:00:00+01:00", "2026-12-01T00:00:00+01:00", 2, "override", {"low": 88}),
    ]
    pulse = await ward.trend(code="8867-4", **period, bucket="1d")
    assert [(p["version"], p["source"], p["yellow"], p["red"]) for p in pulse["series"][0]["band_periods"]] == [
        (0, "template", {"high": 110}, {"low": 41, "high": 130}),
        (1, "template", {"high": 110}, {"low": 41, "high": 130}),
        (2, "override", {"high": 100}, {"high": 120}),
    ]

    # A period entirely before the change: the templates only; entirely after: the newest version.
    before = await ward.trend(code=SPO2, **{"from": "2026-11-01", "to": "2026-11-10"}, bucket="1d")
    assert [(p["version"], p["source"]) for p in before["series"][0]["band_periods"]] == [(0, "template")]
    assert before["bands"] == {"yellow": {"low": 86}, "red": {"low": 84}}
    after = await ward.trend(code=SPO2, **{"from": "2026-11-26", "to": "2026-11-28"}, bucket="1d")
    assert [(p["from"], p["version"]) for p in after["series"][0]["band_periods"]] == [("2026-11-26T00:00:00+01:00", 2)]


async def test_bands_of_a_blood_pressure_and_of_an_unbanded_type(client, tokens: Tokens, session):
    ward = await Ward(client, tokens, session).admit("blood-pressure", conditions=["hypertension"])
    trend = await ward.trend(code=BLOOD_PRESSURE, **{"from": "2026-11-01", "to": "2026-11-02"})
    systolic, diastolic = trend["series"]
    # general + hypertension, side by side.
    assert systolic["bands"] == {"yellow": {"low": 101, "high": 159}, "red": {"low": 91, "high": 179}}
    assert diastolic["bands"] == {"yellow": {"high": 99}, "red": {"high": 119}}
    assert trend["bands"] == systolic["bands"]
    assert trend["buckets"] == []
    weight = await ward.trend(code=WEIGHT, **{"from": "2026-11-01", "to": "2026-11-02"})
    assert weight["bands"] == {"yellow": {}, "red": {}}
    assert [(p["source"], p["yellow"], p["red"]) for p in weight["series"][0]["band_periods"]] == [("template", {}, {})]


# -- errors, access and audit ----------------------------------------------------------------


async def test_trend_errors(client, tokens: Tokens, session):
    ward = await Ward(client, tokens, session).admit()
    url, nurse = f"{ward.url}/trends", ward.nurse

    async def refused(error: str, field: str | None, **params: Any) -> None:
        r = await client.get(url, headers=nurse, params=params)
        assert assert_error(r, 422, field)["error"] == error, params

    await refused("unknown_code", "code", code="1234-5", **{"from": "2026-11-01", "to": "2026-11-02"})
    await refused("unknown_code", "code", code="body-weight")
    await refused("invalid_period", "from", code=WEIGHT, **{"from": "2026-11-05", "to": "2026-11-01"})
    await refused(
        "invalid_period", "from", code=WEIGHT, **{"from": "2026-11-01T10:00:00Z", "to": "2026-11-01T10:00:00Z"}
    )
    # 1 h buckets over two years: more than 10,000.
    await refused("too_many_buckets", None, code=WEIGHT, **{"from": "2025-01-01", "to": "2026-12-31"}, bucket="1h")
    r = await client.get(url, headers=nurse, params={"code": WEIGHT, "bucket": "2d"})
    assert_error(r, 422, "bucket")
    r = await client.get(url, headers=nurse)
    assert_error(r, 422, "code")
    # Daily buckets over the same two years are fine.
    r = await client.get(url, headers=nurse, params={"code": WEIGHT, "from": "2025-01-01", "to": "2026-11-30"})
    assert r.status_code == 200, r.text


async def test_another_organisation_and_an_unknown_patient_get_404(client, tokens: Tokens, session):
    ward = await Ward(client, tokens, session).admit("body-weight")
    await ward.send("body-weight", (datetime.now(UTC) - timedelta(hours=1), 80.0, "kg"))
    stranger = await new_organisation(session)
    params = {"code": WEIGHT}
    for headers in (tokens(stranger, "nurse"), tokens(ORG_B, "physician"), tokens(stranger, "admin")):
        assert_error(await client.get(f"{ward.url}/dashboard", headers=headers), 404)
        assert_error(await client.get(f"{ward.url}/trends", headers=headers, params=params), 404)
        # Not even a bad parameter tells the stranger the patient exists.
        r = await client.get(f"{ward.url}/trends", headers=headers, params={"code": "1234-5"})
        assert_error(r, 404)
    unknown = f"/api/v1/patients/{uuid.uuid4()}"
    assert_error(await client.get(f"{unknown}/dashboard", headers=ward.nurse), 404)
    assert_error(await client.get(f"{unknown}/trends", headers=ward.nurse, params=params), 404)
    assert_error(await client.get("/api/v1/patients/not-a-uuid/dashboard", headers=ward.nurse), 422)
    assert_error(await client.get(f"{ward.url}/dashboard"), 401)


async def test_each_read_is_audited(client, tokens: Tokens, session):
    ward = await Ward(client, tokens, session).admit()
    reader = tokens(ward.org, "physician", sub="gp-ola", hpr="1112223")
    for path, params, resource, resource_id in (
        ("dashboard", {}, "Dashboard", ward.patient["id"]),
        ("trends", {"code": WEIGHT}, "Trend", f"{ward.patient['id']}/{WEIGHT}"),
        ("trends", {"code": BLOOD_PRESSURE, "bucket": "1w"}, "Trend", f"{ward.patient['id']}/{BLOOD_PRESSURE}"),
    ):
        rid = f"req-{uuid.uuid4().hex}"
        r = await client.get(f"{ward.url}/{path}", headers={**reader, "X-Request-ID": rid}, params=params)
        assert r.status_code == 200, r.text
        (record,) = await audit_of(session, rid)
        assert (record.action, record.resource_type, record.resource_id) == ("read", resource, resource_id)
        assert str(record.patient_id) == ward.patient["id"]
        assert (record.actor_sub, record.actor_hpr, record.actor_org) == ("gp-ola", "1112223", ward.org)
    # A refused read leaves no record of the patient.
    rid = f"req-{uuid.uuid4().hex}"
    r = await client.get(f"{ward.url}/dashboard", headers={**tokens(ORG_B), "X-Request-ID": rid})
    assert r.status_code == 404
    assert await audit_of(session, rid) == []
