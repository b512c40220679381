"""The patient's course page over ASGI: latest values with their levels, active alerts and the
plan; a chart per reading type as JSON in the page (raw readings up to 30 days, daily buckets
beyond; a blood pressure's systolic and diastolic together; the bands period by period, changed
by an override within the range; the alerts' readings marked); the table view holding the same
readings; the range swapped by htmx; another organisation 404; the reads audited.

Signed in through the development form; patients, devices and readings are made through the API
and the ingest path in the test's rolled-back transaction.
"""

from __future__ import annotations

import html
import json
import re
import uuid
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from rpm.alerts.models import Alert
from rpm.audit.models import AuditRecord
from rpm.rules.models import ThresholdOverride
from rpm.trends import service as trends_service
from tests.api.helpers import assign, enrol, ingest, message, reading, register
from tests.conftest import ORG_A, ORG_B, Tokens

OSLO = ZoneInfo("Europe/Oslo")
SPO2, SYSTOLIC, DIASTOLIC = "59408-5", "8480-6", "8462-4"
UNITS = {"spo2": "%", "blood-pressure": "mm[Hg]"}
MINUTE, HOUR, DAY = timedelta(minutes=1), timedelta(hours=1), timedelta(days=1)


async def sign_in(client: httpx.AsyncClient, org: str = ORG_A, role: str = "nurse", sub: str = "nurse-1") -> None:
    r = await client.post("/login/development", data={"organisation": org, "roles": [role], "sub": sub})
    assert r.status_code == 303, r.text


def midnight(day: date) -> datetime:
    return datetime.combine(day, time(), OSLO)


def now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


class Patient:
    """A patient of ORG_A with a pulse oximeter and a blood pressure monitor."""

    def __init__(self, client: httpx.AsyncClient, tokens: Tokens, session: AsyncSession) -> None:
        self.client, self.tokens, self.session = client, tokens, session
        self.id = ""
        self.serials: dict[str, str] = {}

    async def enrol(self, conditions: list[str]) -> Patient:
        admin = self.tokens(ORG_A, "admin")
        self.id = (await enrol(self.client, admin, conditions=conditions, name="Kari Nordmann"))["id"]
        for kind in ("spo2", "blood-pressure"):
            device = await register(self.client, admin, type=kind)
            await assign(self.client, admin, device["serial"], self.id, "2025-01-01T00:00:00+01:00")
            self.serials[kind] = device["serial"]
        return self

    async def send(self, kind: str, *taken: tuple[datetime, Any]) -> None:
        for at, value in taken:
            body = reading(self.serials[kind], at.isoformat(), type=kind, value=value, unit=UNITS[kind])
            [outcome] = await ingest(self.session, message([body]))
            assert [r["status"] for r in outcome.results] == ["accepted"], outcome.results


def chart_data(page: str, reading_type: str) -> dict[str, Any]:
    found = re.search(rf'<script type="application/json" id="chart-{reading_type}-data">(.*?)</script>', page, re.S)
    assert found, f"no chart data for {reading_type}"
    return dict(json.loads(found.group(1)))


def table_rows(page: str, reading_type: str) -> list[list[str]]:
    """The table view of a chart: each row's cells as text."""
    figure = page.split(f'id="chart-{reading_type}-title"', 1)[1].split("</figure>", 1)[0]
    body = figure.split("<tbody>", 1)[1].split("</tbody>", 1)[0]
    rows = []
    for row in re.findall(r"<tr>(.*?)</tr>", body, re.S):
        cells = re.findall(r"<t[hd][^>]*>(.*?)</t[hd]>", row, re.S)
        rows.append([" ".join(html.unescape(re.sub(r"<[^>]+>", " ", c)).split()) for c in cells])
    return rows


def section(page: str, title_id: str) -> str:
    return page.split(f'id="{title_id}"', 1)[1].split("</section>", 1)[0]


async def test_latest_values_with_levels_alerts_and_plan(client, tokens, session):
    patient = await Patient(client, tokens, session).enrol(["hypertension"])
    t = now()
    # SpO2 91 % is red (general template: red below 92), then 96 % is the latest and green;
    # 185/95 is red (hypertension: systolic red above 179).
    await patient.send("spo2", (t - 3 * HOUR, 91), (t - HOUR, 96))
    await patient.send("blood-pressure", (t - 2 * HOUR, {"systolic": 185, "diastolic": 95}))
    await sign_in(client)

    r = await client.get(f"/patients/{patient.id}")
    assert r.status_code == 200, r.text
    page = html.unescape(r.text)
    assert "<h1>Kari Nordmann</h1>" in page
    assert "Høyt blodtrykk" in page and "Bergen kommune" in page
    latest = {row[0]: row for row in table_rows_of(section(page, "latest-title"))}
    assert latest["Oksygenmetning"][1:3] == ["96 %", "✓ Grønn"]
    assert latest["Blodtrykk"][1:3] == ["185/95 mmHg", "▲ Rød"]

    alerts = section(page, "alerts-title")
    ids = {str(a) for a in await session.scalars(select(Alert.id).where(Alert.patient_id == uuid.UUID(patient.id)))}
    assert len(ids) == 2
    assert set(re.findall(r'href="/alerts/([0-9a-f-]+)"', alerts)) == ids
    assert "Oksygenmetning for lav" in alerts and "Systolisk blodtrykk for høy" in alerts

    plan = {row[0]: row for row in table_rows_of(section(page, "plan-title"))}
    assert set(plan) == {"Vekt hver 24 t", "Oksygenmetning hver 24 t"}
    assert plan["Vekt hver 24 t"][1] == "aldri"
    assert "Etterlevelse siste 7 dager" in section(page, "plan-title")
    assert f'href="/patients/{patient.id}/thresholds"' in page


def table_rows_of(fragment: str) -> list[list[str]]:
    body = fragment.split("<tbody>", 1)[1].split("</tbody>", 1)[0]
    return [
        [
            " ".join(html.unescape(re.sub(r"<[^>]+>", " ", c)).split())
            for c in re.findall(r"<t[hd][^>]*>(.*?)</t[hd]>", row, re.S)
        ]
        for row in re.findall(r"<tr[^>]*>(.*?)</tr>", body, re.S)
    ]


async def test_seven_days_are_raw_readings_with_bands_and_marks(client, tokens, session):
    patient = await Patient(client, tokens, session).enrol([])
    t = now()
    taken = [(t - 50 * HOUR, 95), (t - 26 * HOUR, 90), (t - 2 * HOUR, 97)]
    await patient.send("spo2", *taken)
    await patient.send("spo2", (t - 10 * DAY, 80))  # before the range
    await sign_in(client)

    page = (await client.get(f"/patients/{patient.id}?days=7")).text
    data = chart_data(page, "spo2")
    assert data["bucket"] == "raw"
    assert data["to"] - data["from"] == 7 * 24 * 3600
    assert data["x"] == [at.timestamp() for at, _ in taken]
    [series] = data["series"]
    assert (series["code"], series["y"]) == (SPO2, [95, 90, 97])
    assert "min" not in series
    # One period: the general template.
    assert [(p["yellow"], p["red"]) for p in series["bands"]] == [({"low": 94}, {"low": 92})]
    # 90 % opened a red alert: its reading is marked.
    assert data["marks"] == [{"x": (t - 26 * HOUR).timestamp(), "y": 90, "level": "red", "series": 0}]
    assert 'aria-pressed="true"' in page.split('id="range-7"', 1)[1].split(">", 1)[0]

    # The table view: the same readings, in Oslo time, with their levels and the alert.
    rows = table_rows(page, "spo2")
    assert [row[:3] for row in rows] == [
        [at.astimezone(OSLO).strftime("%d.%m.%Y %H:%M"), str(value), level]
        for (at, value), level in zip(taken, ["✓ Grønn", "▲ Rød", "✓ Grønn"], strict=True)
    ]
    [alert_id] = await session.scalars(select(Alert.id).where(Alert.patient_id == uuid.UUID(patient.id)))
    assert rows[1][3] == "Varsel (rød)" and f'href="/alerts/{alert_id}"' in page


async def test_ninety_days_are_daily_buckets(client, tokens, session):
    patient = await Patient(client, tokens, session).enrol([])
    noon = datetime.now(OSLO).replace(hour=12, minute=0, second=0, microsecond=0) - 3 * DAY
    await patient.send("spo2", (noon - HOUR, 96), (noon + HOUR, 92), (noon - 40 * DAY, 98))
    await sign_in(client)

    page = (await client.get(f"/patients/{patient.id}?days=90")).text
    data = chart_data(page, "spo2")
    assert data["bucket"] == "1d"
    start = datetime.fromtimestamp(data["from"], OSLO)
    assert (start.hour, start.minute) == (0, 0)  # whole days in Norway
    assert start.date() == datetime.now(OSLO).date() - timedelta(days=89)
    [series] = data["series"]
    assert (series["y"], series["min"], series["max"]) == ([98, 94], [98, 92], [98, 96])
    # Each day is drawn at its middle (noon but on the days the clocks change).
    days = [(noon - 40 * DAY).date(), noon.date()]
    assert data["x"] == [(midnight(d).timestamp() + midnight(d + DAY).timestamp()) / 2 for d in days]
    rows = table_rows(page, "spo2")
    assert [row[:3] for row in rows] == [
        [(noon - 40 * DAY).strftime("%d.%m.%Y"), "98 (98\u201398)", "1"],
        [noon.strftime("%d.%m.%Y"), "94 (92\u201396)", "2"],
    ]
    assert "Gjennomsnitt per dag" in page


async def test_blood_pressure_is_one_chart_of_two_series(client, tokens, session):
    patient = await Patient(client, tokens, session).enrol(["hypertension"])
    t = now()
    await patient.send(
        "blood-pressure",
        (t - 30 * HOUR, {"systolic": 150, "diastolic": 92}),
        (t - 6 * HOUR, {"systolic": 165, "diastolic": 101}),
    )
    await sign_in(client)
    page = (await client.get(f"/patients/{patient.id}?days=7")).text
    data = chart_data(page, "blood-pressure")
    assert [(s["code"], s["y"]) for s in data["series"]] == [(SYSTOLIC, [150, 165]), (DIASTOLIC, [92, 101])]
    assert [s["bands"][0]["yellow"] for s in data["series"]] == [{"low": 101, "high": 159}, {"high": 99}]
    assert [s["short"] for s in data["series"]] == ["Sys", "Dia"]
    # 165 (systolic) and 101 (diastolic) are yellow: each alert marks its component's value.
    assert sorted((m["series"], m["y"], m["level"]) for m in data["marks"]) == [(0, 165, "yellow"), (1, 101, "yellow")]
    rows = table_rows(page, "blood-pressure")
    assert [row[1:4] for row in rows] == [["150", "92", "✓ Grønn"], ["165", "101", "● Gul"]]
    assert "Systolisk blodtrykk" in page.split('id="chart-blood-pressure-title"', 1)[1].split("</thead>", 1)[0]


async def test_the_bands_change_within_the_range(client, tokens, session):
    patient = await Patient(client, tokens, session).enrol([])
    t = now()
    await patient.send("spo2", (t - 4 * DAY, 91), (t - HOUR, 91))
    r = await client.put(
        f"/api/v1/patients/{patient.id}/thresholds",
        headers=tokens(ORG_A, "physician"),
        json={"reason": "habitual 88-92", "bands": {SPO2: {"yellow": {"low": 90}, "red": {"low": 88}}}},
    )
    assert r.status_code == 200, r.text
    changed = t - 2 * DAY
    await session.execute(
        update(ThresholdOverride)
        .where(ThresholdOverride.patient_id == uuid.UUID(patient.id))
        .values(changed_at=changed)
    )
    await sign_in(client)
    page = (await client.get(f"/patients/{patient.id}?days=7")).text
    [series] = chart_data(page, "spo2")["series"]
    assert [(p["version"], p["yellow"], p["red"]) for p in series["bands"]] == [
        (0, {"low": 94}, {"low": 92}),
        (1, {"low": 90}, {"low": 88}),
    ]
    assert series["bands"][0]["to"] == series["bands"][1]["from"] == changed.timestamp()
    # Each reading's level is judged by the bands of its time: 91 was red, now it is green.
    assert [row[2] for row in table_rows(page, "spo2")] == ["▲ Rød", "✓ Grønn"]


async def test_the_range_is_swapped_by_htmx_and_shareable(client, tokens, session):
    patient = await Patient(client, tokens, session).enrol([])
    await patient.send("spo2", (now() - 50 * DAY, 95))
    await sign_in(client)
    page = (await client.get(f"/patients/{patient.id}")).text
    assert 'aria-pressed="true"' in page.split('id="range-30"', 1)[1].split(">", 1)[0]
    button = page.split('id="range-90"', 1)[1].split(">", 1)[0]
    # htmx sends the button's own name and value (days=90) with the GET.
    assert f'hx-get="/patients/{patient.id}/charts"' in button and 'name="days" value="90" id="range-90"' in page
    assert f'hx-push-url="/patients/{patient.id}?days=90"' in button
    assert "Ingen målinger i perioden." in page  # the 30 days hold none

    r = await client.get(f"/patients/{patient.id}/charts?days=90", headers={"HX-Request": "true"})
    assert r.status_code == 200
    assert '<section id="charts"' in r.text
    assert "<html" not in r.text
    assert chart_data(r.text, "spo2")["bucket"] == "1d"
    assert 'aria-pressed="true"' in r.text.split('id="range-90"', 1)[1].split(">", 1)[0]

    r = await client.get(f"/patients/{patient.id}?days=365")
    assert chart_data(r.text, "spo2")["series"][0]["y"] == [95]
    assert (await client.get(f"/patients/{patient.id}?days=12")).status_code == 422


async def test_another_organisation_gets_404(client, tokens, session):
    patient = await Patient(client, tokens, session).enrol([])
    await patient.send("spo2", (now() - HOUR, 95))
    await sign_in(client, ORG_B, sub="nurse-b")
    for path in (f"/patients/{patient.id}", f"/patients/{patient.id}/charts?days=7", f"/patients/{uuid.uuid4()}"):
        r = await client.get(path)
        assert r.status_code == 404, path
        assert "Finnes ikke, eller du har ikke tilgang." in html.unescape(r.text)


async def test_the_reads_are_audited_and_english_is_offered(client, tokens, session):
    patient = await Patient(client, tokens, session).enrol([])
    await patient.send("spo2", (now() - HOUR, 95))
    await patient.send("blood-pressure", (now() - HOUR, {"systolic": 120, "diastolic": 80}))
    await sign_in(client)
    await client.get("/language?to=en")
    page = (await client.get(f"/patients/{patient.id}?days=7")).text
    assert "Latest readings" in page and "Table view" in page
    assert chart_data(page, "spo2")["labels"]["yellow"] == "Yellow"
    audited = await session.execute(
        select(AuditRecord.action, AuditRecord.resource_type, AuditRecord.resource_id).where(
            AuditRecord.patient_id == uuid.UUID(patient.id), AuditRecord.actor_sub == "nurse-1"
        )
    )
    assert sorted(tuple(row) for row in audited) == [
        ("read", "Dashboard", patient.id),
        ("read", "Trend", f"{patient.id}/59408-5"),
        ("read", "Trend", f"{patient.id}/85354-9"),
        ("search", "Alert", None),
    ]  # one record of each: the page reads nothing else of the patient


def test_every_course_and_thresholds_text_is_in_both_languages_and_every_key_used_exists():
    from rpm.api.web.texts import TEXTS
    from rpm.api.web.texts import course as course_texts
    from rpm.api.web.texts import thresholds as thresholds_texts

    for table in (course_texts, thresholds_texts):
        assert set(table.NB) == set(table.EN)
        assert all(table.NB[k] and table.EN[k] for k in table.NB)
    templates = Path(__file__).parents[2] / "api" / "web" / "templates"
    used: set[str] = set()
    for name in ("course.html", "_course_charts.html", "_chart.html", "thresholds.html", "_thresholds_editor.html"):
        used |= set(re.findall(r"""\bt\(["']([a-z_.0-9-]+)["']\)""", (templates / name).read_text()))
    assert {"course.latest", "thresholds.save"} <= used
    dynamic = {f"course.status.{s}" for s in ("open", "acknowledged", "resolved")}
    dynamic |= {f"course.short.{code}" for code in (SYSTOLIC, DIASTOLIC)}
    dynamic |= {f"thresholds.template.{n}" for n in ("general", "copd", "heart-failure", "diabetes", "hypertension")}
    dynamic |= {f"thresholds.{side}" for side in ("low", "high")}
    dynamic |= {k for k in course_texts.NB if k.startswith("course.")}  # the charts' words, from Python
    for key in used | dynamic:
        assert key in TEXTS["nb"] and key in TEXTS["en"], key


async def test_a_device_sending_more_readings_than_a_chart_takes_is_drawn_hourly(client, tokens, session, monkeypatch):
    """A pulse oximeter reporting every few minutes can pass the trend's limit of raw readings:
    its chart falls back to hourly buckets, and the rest of the page is shown as usual."""
    monkeypatch.setattr(trends_service, "MAX_READINGS", 2)
    patient = await Patient(client, tokens, session).enrol([])
    start = now() - 3 * HOUR
    await patient.send("spo2", *((start + i * 10 * MINUTE, 95) for i in range(6)))
    await sign_in(client)
    page = await client.get(f"/patients/{patient.id}?days=7")
    assert page.status_code == 200, page.text
    data = chart_data(page.text, "spo2")
    assert data["bucket"] == "1h"
    assert sum(int(row[2]) for row in table_rows(page.text, "spo2")) == 6  # every reading, in its hour
