"""NEWS2 on the course page: the newest score's total and level beside the latest readings, and
the parameters it left out; the scores over the period as a chart like the readings' (the NEWS2
chart's bands, each score's parts, the alerts' scores marked, scores entered in error left out),
and the same scores through `GET /api/v1/patients/{id}/trends?code=1104051000000101`."""

from __future__ import annotations

import html
import uuid
from datetime import datetime, timedelta

from sqlalchemy import select

from rpm.audit.models import AuditRecord
from rpm.rules import news2
from tests.conftest import ORG_A, ORG_B
from tests.rules.test_early_warning import scores_of
from tests.web.test_course_page import Patient, chart_data, now, section, sign_in, table_rows, table_rows_of

MINUTE, DAY = timedelta(minutes=1), timedelta(days=1)


async def test_the_newest_score_stands_with_the_latest_readings(client, tokens, session):
    patient = await Patient(client, tokens, session).enrol([])
    t = now()
    await patient.send("spo2", (t - 30 * MINUTE, 91))  # 3 points
    await patient.send("blood-pressure", (t - 20 * MINUTE, {"systolic": 105, "diastolic": 70, "pulse": 115}))  # 1 + 2
    await sign_in(client)
    page = html.unescape((await client.get(f"/patients/{patient.id}")).text)
    latest = {row[0]: row for row in table_rows_of(section(page, "latest-title"))}
    assert latest["NEWS2"][1:3] == ["6", "● Gul"]
    assert "ikke skåret: respirasjonsfrekvens, luft eller oksygen, bevissthet, temperatur" in latest["NEWS2"][3]


async def test_a_patient_without_a_score_has_no_row(client, tokens, session):
    patient = await Patient(client, tokens, session).enrol([])
    await patient.send("spo2", (now() - 30 * MINUTE, 95))
    await sign_in(client)
    page = html.unescape((await client.get(f"/patients/{patient.id}")).text)
    assert "NEWS2" not in section(page, "latest-title")


# -- the scores over time -------------------------------------------------------------------


async def scored_patient(client, tokens, session) -> tuple[Patient, list[datetime]]:
    """Two NEWS2 scores within the week: 6 (yellow: SpO2 3, systolic 1, pulse 2) two days ago,
    and 3 with a single parameter's 3 (yellow, though under 5) twenty minutes ago."""
    patient = await Patient(client, tokens, session).enrol([])
    t = now()
    earlier, later = t - 2 * DAY - 20 * MINUTE, t - 20 * MINUTE
    await patient.send("spo2", (earlier - 10 * MINUTE, 91), (later - 10 * MINUTE, 97))  # 3, then 0
    await patient.send(
        "blood-pressure",
        (earlier, {"systolic": 105, "diastolic": 70, "pulse": 115}),  # 1 + 2
        (later, {"systolic": 88, "diastolic": 60, "pulse": 70}),  # 3 + 0
    )
    return patient, [earlier, later]


async def test_the_scores_are_charted_over_the_period_with_the_chart_s_bands_and_their_parts(client, tokens, session):
    patient, (earlier, later) = await scored_patient(client, tokens, session)
    await sign_in(client)
    page = (await client.get(f"/patients/{patient.id}?days=7")).text

    data = chart_data(page, "news2")
    assert data["bucket"] == "raw" and data["title"] == "NEWS2" and data["unit"] == ""
    assert data["x"] == [earlier.timestamp(), later.timestamp()]
    [series] = data["series"]
    assert (series["code"], series["y"], series["label"]) == (news2.NEWS2_TOTAL_CODE, [6, 3], "NEWS2-skår")
    assert [(p["yellow"], p["red"]) for p in series["bands"]] == [({"high": 4}, {"high": 6})]
    assert series["notes"] == ["SpO2 3 · Sys 1 · Puls 2", "SpO2 0 · Sys 3 · Puls 0"]
    # The NEWS2 alert (yellow; the second score added to it) marks both scores on the line.
    assert sorted((m["x"], m["y"], m["level"]) for m in data["marks"]) == [
        (earlier.timestamp(), 6, "yellow"),
        (later.timestamp(), 3, "yellow"),
    ]

    figure = page.split('id="chart-news2-title"', 1)[1].split("</figure>", 1)[0]
    assert "Sonene er NEWS2-skjemaets" in html.unescape(figure) and "()" not in figure.split("</h3>", 1)[0]
    rows = table_rows(page, "news2")
    # The rule's level, not the band's: a single 3 makes the 3 yellow.
    assert [row[1:4] for row in rows] == [
        ["6", "● Gul", "SpO2 3 · Sys 1 · Puls 2 Skåren og målingene"],
        ["3", "● Gul", "SpO2 0 · Sys 3 · Puls 0 Skåren og målingene"],
    ]
    scores = await scores_of(session, uuid.UUID(patient.id))
    for score in scores:
        assert f'href="/patients/{patient.id}/observations/{score.id}"' in figure
    # The latest row links to the newest score too.
    assert f'href="/patients/{patient.id}/observations/{scores[-1].id}"' in section(page, "latest-title")
    # The NEWS2 chart is the last.
    assert page.index('id="chart-news2-title"') > page.index('id="chart-blood-pressure-title"')


async def test_a_score_entered_in_error_leaves_the_chart(client, tokens, session):
    patient, (_, later) = await scored_patient(client, tokens, session)
    first, _ = await scores_of(session, uuid.UUID(patient.id))
    r = await client.post(
        f"/api/v1/observations/{first.id}/entered-in-error",
        headers=tokens(ORG_A, "nurse"),
        json={"reason": "scored the wrong pulse"},
    )
    assert r.status_code == 200, r.text
    await sign_in(client)
    page = (await client.get(f"/patients/{patient.id}?days=7")).text
    data = chart_data(page, "news2")
    assert data["x"] == [later.timestamp()] and data["series"][0]["y"] == [3]
    assert [(m["x"], m["y"]) for m in data["marks"]] == [(later.timestamp(), 3)]


async def test_ninety_days_are_daily_means_without_parts_and_the_range_fragment_has_the_chart(client, tokens, session):
    patient, _ = await scored_patient(client, tokens, session)
    await sign_in(client)
    page = (await client.get(f"/patients/{patient.id}?days=90")).text
    data = chart_data(page, "news2")
    assert data["bucket"] == "1d" and "notes" not in data["series"][0]
    assert "Deler" not in page.split('id="chart-news2-title"', 1)[1].split("</figure>", 1)[0]
    fragment = await client.get(f"/patients/{patient.id}/charts?days=7", headers={"HX-Request": "true"})
    assert fragment.status_code == 200
    assert chart_data(fragment.text, "news2")["series"][0]["notes"] == [
        "SpO2 3 · Sys 1 · Puls 2",
        "SpO2 0 · Sys 3 · Puls 0",
    ]


async def test_a_patient_without_scores_has_no_news2_chart_and_the_reads_are_audited(client, tokens, session):
    plain = await Patient(client, tokens, session).enrol([])
    await plain.send("spo2", (now() - 30 * MINUTE, 95))
    patient, _ = await scored_patient(client, tokens, session)
    await sign_in(client)
    await client.get("/language?to=en")
    assert 'id="chart-news2-data"' not in (await client.get(f"/patients/{plain.id}?days=7")).text
    page = (await client.get(f"/patients/{patient.id}?days=7")).text
    assert chart_data(page, "news2")["series"][0]["notes"][0] == "SpO2 3 · Sys 1 · Pulse 2"
    assert "The score and its readings" in page
    audited = await session.execute(
        select(AuditRecord.action, AuditRecord.resource_type, AuditRecord.resource_id).where(
            AuditRecord.patient_id == uuid.UUID(patient.id), AuditRecord.actor_sub == "nurse-1"
        )
    )
    assert sorted(tuple(row) for row in audited) == sorted(
        [
            ("read", "Dashboard", patient.id),
            ("read", "Trend", f"{patient.id}/59408-5"),
            ("read", "Trend", f"{patient.id}/85354-9"),
            ("read", "Trend", f"{patient.id}/8867-4"),  # the blood pressure's pulse
            ("read", "Trend", f"{patient.id}/{news2.NEWS2_TOTAL_CODE}"),
            ("search", "Observation", None),  # the scores' parts
            ("search", "Alert", None),
        ]
    )


async def test_the_api_trend_of_the_scores(client, tokens, session):
    patient, _ = await scored_patient(client, tokens, session)
    nurse = tokens(ORG_A, "nurse")
    r = await client.get(
        f"/api/v1/patients/{patient.id}/trends",
        params={"code": news2.NEWS2_TOTAL_CODE, "bucket": "raw", "from": (now() - 7 * DAY).isoformat()},
        headers=nurse,
    )
    assert r.status_code == 200, r.text
    trend = r.json()
    assert (trend["code"], trend["unit"], trend["bucket"]) == (news2.NEWS2_TOTAL_CODE, "{score}", "raw")
    assert trend["bands"] == {"yellow": {"high": 4.0}, "red": {"high": 6.0}}
    assert [(b["count"], b["mean"]) for b in trend["buckets"]] == [(1, 6.0), (1, 3.0)]
    [series] = trend["series"]
    assert series["display"] == news2.NEWS2_TOTAL_DISPLAY and series["unit"] == "{score}"
    assert [(p["version"], p["source"]) for p in series["band_periods"]] == [(0, "template")]
    daily = await client.get(
        f"/api/v1/patients/{patient.id}/trends", params={"code": news2.NEWS2_TOTAL_CODE}, headers=nurse
    )
    assert daily.status_code == 200, daily.text
    assert sum(b["count"] for b in daily.json()["buckets"]) == 2
    other = await client.get(
        f"/api/v1/patients/{patient.id}/trends", params={"code": news2.NEWS2_TOTAL_CODE}, headers=tokens(ORG_B, "nurse")
    )
    assert other.status_code == 404
