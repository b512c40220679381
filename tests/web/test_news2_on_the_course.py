"""The newest NEWS2 score on the course page: its total and level beside the latest readings,
and the parameters it left out."""

from __future__ import annotations

import html
from datetime import timedelta

from tests.web.test_course_page import Patient, now, section, sign_in, table_rows_of

MINUTE = timedelta(minutes=1)


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
