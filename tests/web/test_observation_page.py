"""One Observation's page (issue 11): a NEWS2 score with its parts and the readings it scored,
each with its own "mark entered in error", and the words that marking one marks the score and
judges its alert again; a reading's page with what marking it takes along. Over ASGI, htmx and
plain posts; the reason required; a reading that is not the page's; another organisation; the
CSRF token.
"""

from __future__ import annotations

import html
import re
import uuid
from pathlib import Path

from sqlalchemy import select

from rpm.alerts.models import Alert
from rpm.observations.models import Observation
from rpm.observations.service import INPUT_IN_ERROR
from rpm.rules import early_warning
from tests.conftest import ORG_B
from tests.rules.test_early_warning import scores_of
from tests.web.test_alert_page import csrf_of, htmx
from tests.web.test_course_page import OSLO, Patient, now, sign_in
from tests.web.test_news2_on_the_course import MINUTE

REASON = "pasienten glemte mansjetten"


async def scored(client, tokens, session) -> tuple[Patient, Observation, dict[str, Observation]]:
    """A patient with one NEWS2 score of 6 (SpO2 91: 3, systolic 105: 1, pulse 115: 2), its
    yellow alert resting on it alone; the score and its readings by code."""
    patient = await Patient(client, tokens, session).enrol([])
    t = now()
    await patient.send("spo2", (t - 30 * MINUTE, 91))
    await patient.send("blood-pressure", (t - 20 * MINUTE, {"systolic": 105, "diastolic": 70, "pulse": 115}))
    [score] = await scores_of(session, uuid.UUID(patient.id))
    mine = select(Observation).where(Observation.patient_id == uuid.UUID(patient.id))
    readings = {o.code: o for o in await session.scalars(mine.where(Observation.device_id.is_not(None)))}
    return patient, score, readings


def page_of(patient: Patient, observation_id: uuid.UUID) -> str:
    return f"/patients/{patient.id}/observations/{observation_id}"


def mark_url(patient: Patient, observation_id: uuid.UUID) -> str:
    return f"{page_of(patient, observation_id)}/entered-in-error"


def heading(page: str) -> str:
    found = re.search(r"<h1[^>]*>(.*?)</h1>", page, re.S)
    assert found, "no heading"
    return " ".join(re.sub(r"<[^>]+>", " ", found.group(1)).split())


def row_of(page: str, observation_id: uuid.UUID) -> str:
    at = page.index(f'id="reading-{observation_id}"')
    return page[page.rindex("<tr", 0, at) : page.index("</tr>", at)]


async def fresh(session, observation_id: uuid.UUID) -> Observation:
    found = await session.scalar(
        select(Observation).where(Observation.id == observation_id).execution_options(populate_existing=True)
    )
    assert found is not None
    return found


async def news2_alert(session, patient: Patient) -> Alert:
    [alert] = await session.scalars(
        select(Alert)
        .where(Alert.patient_id == uuid.UUID(patient.id), Alert.rule == early_warning.RULE)
        .execution_options(populate_existing=True)
    )
    return alert


async def test_a_score_s_page_lists_its_readings_each_with_a_form_and_says_what_marking_one_does(
    client, tokens, session
):
    patient, score, readings = await scored(client, tokens, session)
    await sign_in(client)
    r = await client.get(page_of(patient, score.id))
    assert r.status_code == 200, r.text
    page = html.unescape(r.text)
    assert heading(page) == "NEWS2-skår 6"
    # The parts, and what was not scored.
    parts = page.split('class="parts"', 1)[1].split("</table>", 1)[0]
    assert re.search(r"oksygenmetning</th><td class=\"number\">3", parts)
    assert re.search(r"systolisk blodtrykk</th><td class=\"number\">1", parts)
    assert re.search(r"puls</th><td class=\"number\">2", parts)
    assert "respirasjonsfrekvens" in parts and "ikke skåret" in parts
    # Its readings, with values and times, each with its own form; the words first.
    inputs = page.split('id="inputs-title"', 1)[1].split("</section>", 1)[0]
    assert "merk den målingen som feilmåling. Da merkes skåren med den" in inputs
    assert "varselet skåren ga vurderes på nytt" in inputs
    for code, value in (("59408-5", "91 %"), ("85354-9", "105/70 mmHg"), ("8867-4", "115 /min")):
        row = row_of(page, readings[code].id)
        assert value in row, (code, row)
        assert readings[code].effective_at.astimezone(OSLO).strftime("%d.%m.%Y %H:%M") in row
        assert f'hx-post="{mark_url(patient, readings[code].id)}"' in row and 'name="reason"' in row
        assert f'name="shown" value="{score.id}"' in row
    # The score itself can be marked too, below, with the warning.
    assert "Sjelden riktig" in page.split('id="self-title"', 1)[1]
    assert f'hx-post="{mark_url(patient, score.id)}"' in page


async def test_marking_a_reading_marks_the_score_with_the_input_s_reason_and_resolves_its_alert(
    client, tokens, session
):
    patient, score, readings = await scored(client, tokens, session)
    assert (await news2_alert(session, patient)).status == "open"
    await session.commit()
    await sign_in(client, sub="nurse-kari")
    token = csrf_of((await client.get(page_of(patient, score.id))).text)
    spo2 = readings["59408-5"]

    r = await client.post(
        mark_url(patient, spo2.id), headers=htmx(token), data={"reason": REASON, "shown": str(score.id)}
    )

    assert r.status_code == 200, r.text
    fragment = html.unescape(r.text)
    assert fragment.lstrip().startswith('<section id="observation-main"')
    assert "Varsel uten gyldig måling igjen er løst." in fragment
    marked = row_of(fragment, spo2.id)
    assert '<tr class="entered-in-error"' in marked and "<del>" in marked and REASON in marked
    assert 'name="reason"' not in marked
    assert 'name="reason"' in row_of(fragment, readings["85354-9"].id)
    # The score is struck through with the reason in words, and offers no form of its own.
    assert heading(fragment) == "NEWS2-skår 6" and "<del>" in fragment.split("</h1>", 1)[0]
    assert f"en av målingene bak skåren var feil: {REASON}" in fragment
    assert 'id="self-title"' not in fragment

    stored = await fresh(session, score.id)
    assert stored.invalidation_reason == INPUT_IN_ERROR + REASON
    assert stored.resource["status"] == "entered-in-error"
    assert (await fresh(session, spo2.id)).invalidation_reason == REASON
    for code in ("85354-9", "8867-4"):
        assert (await fresh(session, readings[code].id)).invalidated_at is None
    alert = await news2_alert(session, patient)
    assert (alert.status, alert.resolved_by) == ("resolved", "system")
    assert alert.note == f"reading entered in error: {REASON}"


async def test_a_plain_post_returns_to_the_page_and_the_score_alone_leaves_its_readings(client, tokens, session):
    patient, score, readings = await scored(client, tokens, session)
    await session.commit()
    await sign_in(client)
    token = csrf_of((await client.get(page_of(patient, score.id))).text)
    r = await client.post(mark_url(patient, score.id), data={"reason": "scored twice", "csrf_token": token})
    assert r.status_code == 303 and r.headers["location"] == page_of(patient, score.id)
    assert (await fresh(session, score.id)).invalidation_reason == "scored twice"
    for reading in readings.values():
        assert (await fresh(session, reading.id)).invalidated_at is None
    page = html.unescape((await client.get(page_of(patient, score.id))).text)
    assert "scored twice" in page and 'id="self-title"' not in page
    assert 'name="reason"' in row_of(page, readings["59408-5"].id), "its readings can still be marked"


async def test_a_reading_s_page_says_what_marking_it_takes_along(client, tokens, session):
    patient, score, readings = await scored(client, tokens, session)
    panel = readings["85354-9"]
    await sign_in(client)
    page = html.unescape((await client.get(page_of(patient, panel.id))).text)
    derived = page.split('id="derived-title"', 1)[1].split("</section>", 1)[0]
    assert "Puls" in derived and "NEWS2-skår" in derived
    assert f'href="{page_of(patient, score.id)}"' in derived
    assert f'hx-post="{mark_url(patient, panel.id)}"' in page
    token = csrf_of(page)
    r = await client.post(mark_url(patient, panel.id), headers=htmx(token), data={"reason": REASON})
    assert r.status_code == 200, r.text
    assert (await fresh(session, readings["8867-4"].id)).invalidation_reason == REASON  # the same cuff
    assert (await fresh(session, score.id)).invalidation_reason == INPUT_IN_ERROR + REASON


async def test_the_reason_is_required_and_twice_is_refused(client, tokens, session):
    patient, score, readings = await scored(client, tokens, session)
    spo2 = readings["59408-5"]
    await session.commit()
    await sign_in(client)
    token = csrf_of((await client.get(page_of(patient, score.id))).text)
    for reason, error in (("   ", "Skriv hvorfor målingen er feil."), ("x" * 501, "høyst 500 tegn")):
        r = await client.post(
            mark_url(patient, spo2.id), headers=htmx(token), data={"reason": reason, "shown": str(score.id)}
        )
        assert r.status_code == 422, r.text
        row = row_of(html.unescape(r.text), spo2.id)
        assert error in row and 'aria-invalid="true"' in row and '<details class="entered-in-error-form" open>' in row
    assert (await fresh(session, spo2.id)).invalidated_at is None
    ok = await client.post(mark_url(patient, spo2.id), headers=htmx(token), data={"reason": REASON})
    assert ok.status_code == 200, ok.text
    await session.commit()
    again = await client.post(
        mark_url(patient, spo2.id), headers=htmx(token), data={"reason": "igjen", "shown": str(score.id)}
    )
    assert again.status_code == 409
    assert "Målingen er allerede merket som feilmåling" in html.unescape(again.text)


async def test_another_page_s_reading_another_organisation_and_no_csrf_token_change_nothing(client, tokens, session):
    patient, score, readings = await scored(client, tokens, session)
    other, other_score, _ = await scored(client, tokens, session)
    # Plain ids: a refused request rolls the session back, which expires the rows.
    score_id, spo2_id, other_score_id = score.id, readings["59408-5"].id, other_score.id
    await session.commit()
    await sign_in(client)
    token = csrf_of((await client.get(page_of(patient, score_id))).text)
    # Without the token: refused.
    r = await client.post(mark_url(patient, spo2_id), headers=htmx(None), data={"reason": REASON})
    assert r.status_code == 403
    # Another patient's score as the page, or another patient's reading through this patient.
    for url, shown in (
        (mark_url(patient, spo2_id), str(other_score_id)),
        (mark_url(other, spo2_id), str(other_score_id)),
        (mark_url(patient, spo2_id), "not-an-id"),
    ):
        r = await client.post(url, headers=htmx(token), data={"reason": REASON, "shown": shown})
        assert r.status_code == 404, (url, shown, r.text)
    assert (await client.get(page_of(patient, other_score_id))).status_code == 404
    assert (await fresh(session, spo2_id)).invalidated_at is None
    # Another organisation sees nothing.
    await sign_in(client, org=ORG_B)
    assert (await client.get(page_of(patient, score_id))).status_code == 404


def test_every_text_is_in_both_languages_and_every_key_used_exists():
    from rpm.api.web.texts import TEXTS
    from rpm.api.web.texts import score as score_texts

    assert set(score_texts.NB) == set(score_texts.EN)
    assert all(score_texts.NB[k] and score_texts.EN[k] for k in score_texts.NB)
    templates = Path(__file__).parents[2] / "api" / "web" / "templates"
    used: set[str] = set()
    for name in ("observation.html", "_observation.html", "_chart.html", "course.html"):
        used |= set(re.findall(r"""\bt\(["']([a-z_.0-9-]+)["']\)""", (templates / name).read_text()))
    used |= set(score_texts.NB)  # the chart's words and the messages, from Python
    assert "score.inputs_explained" in used
    for key in used:
        assert key in TEXTS["nb"] and key in TEXTS["en"], key


async def test_in_english(client, tokens, session):
    patient, score, _ = await scored(client, tokens, session)
    await sign_in(client)
    await client.get("/language", params={"to": "en", "next": "/"})
    page = html.unescape((await client.get(page_of(patient, score.id))).text)
    assert "The readings behind the score" in page and "mark that reading as entered in error" in page
    assert heading(page) == "NEWS2 score 6" and "Mark as entered in error</summary>" in page


async def test_a_news2_alert_s_page_links_each_score_to_its_page(client, tokens, session):
    patient, score, _ = await scored(client, tokens, session)
    alert = await news2_alert(session, patient)
    await sign_in(client)
    r = await client.get(f"/alerts/{alert.id}")
    assert r.status_code == 200, r.text
    evidence = r.text.split('id="alert-evidence"', 1)[1].split("</section>", 1)[0]
    assert f'href="{page_of(patient, score.id)}"' in evidence
    assert "Skåren og målingene" in evidence
