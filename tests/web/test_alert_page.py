"""The alert page over ASGI: evidence, threshold and history; acknowledge by htmx; resolve with
a required note and outcome; access and audit as the API; Norwegian and English.

Signed in through the development form; the data is made in the test's rolled-back transaction
(the lifecycle tests' helpers, on their 2021 clock).
"""

from __future__ import annotations

import html
import re
import uuid
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select

from rpm.alerts.models import Alert, ResolutionOutcome
from rpm.api.web.texts import TEXTS
from rpm.api.web.texts import alert as alert_texts
from rpm.audit.models import AuditRecord
from tests.alerts.test_lifecycle import MINUTE, T0, Enrolled, enrol, send, the_alert
from tests.conftest import ORG_A, ORG_B

TEMPLATES = Path(__file__).parents[2] / "api" / "web" / "templates"


async def sign_in(client: httpx.AsyncClient, org: str = ORG_A, sub: str = "nurse-1", name: str = "Kari Sykepleier"):
    r = await client.post(
        "/login/development", data={"organisation": org, "roles": ["nurse"], "sub": sub, "name": name}
    )
    assert r.status_code == 303, r.text
    assert "rpm_session" in client.cookies


def csrf_of(page: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', page) or re.search(r'"X-CSRF-Token": "([^"]+)"', page)
    assert found, "no CSRF token on the page"
    return found.group(1)


def htmx(token: str | None) -> dict[str, str]:
    headers = {"HX-Request": "true"}
    if token is not None:
        headers["X-CSRF-Token"] = token
    return headers


async def red_alert(session) -> tuple[Enrolled, uuid.UUID, list[uuid.UUID]]:
    """SpO2 85 % (yellow) then 83 % (red): one alert raised from yellow to red, two readings.
    Its id, not the Alert: a refused request rolls the session back, which expires objects."""
    patient = await enrol(session, ORG_A)
    readings = [await send(session, patient, 85, at=T0), await send(session, patient, 83, at=T0 + 10 * MINUTE)]
    return patient, (await the_alert(session, patient.id)).id, readings


async def stored(session, alert_id: uuid.UUID) -> Alert:
    found = await session.scalar(select(Alert).where(Alert.id == alert_id).execution_options(populate_existing=True))
    assert found is not None
    return found


async def audited(session, alert_id: uuid.UUID) -> list[tuple[str, str]]:
    rows = await session.execute(
        select(AuditRecord.action, AuditRecord.resource_type)
        .where(AuditRecord.resource_id == str(alert_id))
        .order_by(AuditRecord.id)
    )
    return [tuple(row) for row in rows]


async def test_the_page_shows_the_patient_evidence_threshold_and_history(client, session):
    patient, alert_id, readings = await red_alert(session)
    await sign_in(client)
    r = await client.get(f"/alerts/{alert_id}")
    assert r.status_code == 200, r.text
    page = html.unescape(r.text)
    assert "<h1>Oksygenmetning for lav</h1>" in page
    assert f'<a href="/patients/{patient.id}">Test Pasient</a>' in page
    for observation in readings:
        assert f'<code class="observation">{observation}</code>' in page
    assert "85 %" in page and "83 %" in page
    assert "< 84 %" in page, "the red threshold crossed"
    assert re.search(r"Terskelversjon</dt>\s*<dd>0 ", page)
    assert "Åpent, ikke kvittert" in page
    history = page[page.index('id="alert-history"') :]
    assert [m for m in re.findall(r'<th scope="row">([^<]+)</th>', history)] == ["Åpnet", "Hevet fra gul til rød"]
    assert "01.06.2021 10:01" in history, "opened at T0 + 1 min, shown in Oslo time"
    # The level is told with a sign and a word, never colour alone.
    assert '<span class="level level-red"><span aria-hidden="true" class="sign">▲</span> Rød</span>' in page
    assert await audited(session, alert_id) == [("read", "Alert"), ("read", "AlertHistory")]


async def test_acknowledge_in_one_click_with_the_csrf_header(client, session):
    _, alert_id, _ = await red_alert(session)
    await sign_in(client, sub="nurse-kari", name="Kari Nordmann")
    token = csrf_of((await client.get(f"/alerts/{alert_id}")).text)

    refused = await client.post(f"/alerts/{alert_id}/acknowledge", headers=htmx(None))
    assert refused.status_code == 403
    refused = await client.post(f"/alerts/{alert_id}/acknowledge", headers=htmx("not-the-token"))
    assert refused.status_code == 403
    assert (await stored(session, alert_id)).status == "open"

    r = await client.post(f"/alerts/{alert_id}/acknowledge", headers=htmx(token))
    assert r.status_code == 200, r.text
    fragment = html.unescape(r.text)
    assert fragment.lstrip().startswith('<section id="alert-status"'), "the status part, swapped in place"
    assert "Status: Kvittert" in fragment and "Kvitter</button>" not in fragment
    assert '<section id="alert-history" class="card" aria-labelledby="history-title" hx-swap-oob="true">' in fragment
    assert re.search(r'<th scope="row">Kvittert</th>\s*<td>Kari Nordmann</td>', fragment)
    message = '<div id="alert-message" hx-swap-oob="innerHTML"><p class="message message-done">Varselet er kvittert.'
    assert message in fragment, "the message, into the live region that stays in the page"
    acknowledged = await stored(session, alert_id)
    assert (acknowledged.status, acknowledged.acknowledged_by, acknowledged.acknowledged_by_name) == (
        "acknowledged",
        "nurse-kari",
        "Kari Nordmann",
    )
    assert ("acknowledge", "Alert") in await audited(session, alert_id)

    # Without script: the form posts its hidden token and gets the page again by GET.
    again = await client.post(f"/alerts/{alert_id}/acknowledge", data={"csrf_token": token})
    assert (again.status_code, again.headers["location"]) == (303, f"/alerts/{alert_id}")


async def test_resolve_needs_a_note_and_an_outcome_and_happens_once(client, session):
    _, alert_id, _ = await red_alert(session)
    await sign_in(client, sub="nurse-ola", name="Ola Nordmann")
    page = (await client.get(f"/alerts/{alert_id}")).text
    token = csrf_of(page)
    assert re.search(r'<textarea id="note" name="note"[^>]* required', page), "required in the browser too"
    for outcome in ("contacted-patient", "advice-given", "referred-to-gp", "referred-to-emergency", "no-action-needed"):
        assert f'<option value="{outcome}">' in page
    assert "Henvist til fastlege" in page, "outcomes in words"

    refused = await client.post(
        f"/alerts/{alert_id}/resolve", headers=htmx(token), data={"note": "   ", "outcome": "advice-given"}
    )
    assert refused.status_code == 422
    fragment = html.unescape(refused.text)
    assert '<span id="note-error" class="error-text">Skriv et notat om hva som ble gjort.</span>' in fragment
    assert re.search(
        r'<textarea id="note"[^>]*aria-describedby="note-hint note-error"[^>]*aria-invalid="true"', fragment
    )
    assert '<option value="advice-given" selected>' in fragment, "the choice is kept"
    assert '<p class="message message-error">Varselet ble ikke løst: se feltene som mangler.</p>' in fragment
    refused = await client.post(f"/alerts/{alert_id}/resolve", headers=htmx(token), data={"note": "Ringte"})
    assert refused.status_code == 422
    assert "Velg et utfall." in html.unescape(refused.text)
    assert 'value="Ringte"' not in refused.text and ">Ringte</textarea>" in refused.text, "the note is kept"
    assert (await stored(session, alert_id)).status == "open"

    note = "Ringte pasienten.\nNy måling 93 %, <ingen> tiltak."
    r = await client.post(
        f"/alerts/{alert_id}/resolve", headers=htmx(token), data={"note": note, "outcome": "referred-to-gp"}
    )
    assert r.status_code == 200, r.text
    resolved = await stored(session, alert_id)
    assert (resolved.status, resolved.note, resolved.outcome, resolved.resolved_by) == (
        "resolved",
        note,
        "referred-to-gp",
        "nurse-ola",
    )
    assert "&lt;ingen&gt;" in r.text, "the note is escaped"
    fragment = html.unescape(r.text)
    assert "Status: Løst" in fragment and "Henvist til fastlege" in fragment and note in fragment
    assert re.search(r'<th scope="row">Løst</th>\s*<td>Ola Nordmann</td>', fragment)
    assert '<form class="resolve' not in fragment
    assert ("resolve", "Alert") in await audited(session, alert_id)

    # The whole page shows the note and the outcome afterwards.
    page = html.unescape((await client.get(f"/alerts/{alert_id}")).text)
    assert note in page and "Henvist til fastlege" in page

    twice = await client.post(
        f"/alerts/{alert_id}/resolve", headers=htmx(token), data={"note": "igjen", "outcome": "advice-given"}
    )
    assert twice.status_code == 409
    assert "Varselet er allerede løst" in html.unescape(twice.text)
    assert (await stored(session, alert_id)).note == note
    late = await client.post(f"/alerts/{alert_id}/acknowledge", headers=htmx(token))
    assert late.status_code == 409 and "allerede løst" in html.unescape(late.text)


async def test_without_script_a_missing_note_answers_the_whole_page_with_the_message(client, session):
    _, alert_id, _ = await red_alert(session)
    await sign_in(client)
    token = csrf_of((await client.get(f"/alerts/{alert_id}")).text)
    r = await client.post(f"/alerts/{alert_id}/resolve", data={"csrf_token": token, "note": "", "outcome": ""})
    assert r.status_code == 422
    page = html.unescape(r.text)
    assert "<h1>Oksygenmetning for lav</h1>" in page
    assert "Skriv et notat om hva som ble gjort." in page and "Velg et utfall." in page
    ok = await client.post(
        f"/alerts/{alert_id}/resolve",
        data={"csrf_token": token, "note": "Fulgt opp", "outcome": "no-action-needed"},
    )
    assert (ok.status_code, ok.headers["location"]) == (303, f"/alerts/{alert_id}")
    assert (await stored(session, alert_id)).outcome == "no-action-needed"


async def test_another_organisations_alert_is_the_not_found_page(client, session):
    _, alert_id, _ = await red_alert(session)
    await sign_in(client, org=ORG_B, sub="nurse-b")
    token = csrf_of((await client.get("/")).text)
    for response in (
        await client.get(f"/alerts/{alert_id}"),
        await client.get(f"/alerts/{uuid.uuid4()}"),
        await client.post(f"/alerts/{alert_id}/acknowledge", headers=htmx(token)),
        await client.post(
            f"/alerts/{alert_id}/resolve", headers=htmx(token), data={"note": "ikke min", "outcome": "advice-given"}
        ),
    ):
        assert response.status_code == 404
        assert "Finnes ikke, eller du har ikke tilgang." in html.unescape(response.text)
        assert "Test Pasient" not in response.text
    untouched = await stored(session, alert_id)
    assert (untouched.status, untouched.acknowledged_by, untouched.note) == ("open", None, None)
    assert await audited(session, alert_id) == []
    assert (await client.get("/alerts/not-an-alert")).status_code == 404


async def test_a_signed_out_browser_is_sent_to_sign_in(client, session):
    _, alert_id, _ = await red_alert(session)
    r = await client.get(f"/alerts/{alert_id}")
    assert r.status_code == 303 and r.headers["location"] == f"/login?next=/alerts/{alert_id}"


async def test_english_and_norwegian_texts_both_render(client, session):
    _, alert_id, _ = await red_alert(session)
    await sign_in(client)
    norwegian = html.unescape((await client.get(f"/alerts/{alert_id}")).text)
    assert '<html lang="nb">' in norwegian and "Hevet fra gul til rød" in norwegian

    r = await client.get("/language", params={"to": "en", "next": f"/alerts/{alert_id}"})
    assert r.status_code == 303
    english = html.unescape((await client.get(f"/alerts/{alert_id}")).text)
    assert '<html lang="en">' in english
    assert "<h1>SpO2 too low</h1>" in english
    for words in (
        "Raised from yellow to red",
        "Acknowledge</button>",
        "The readings that raised the alert",
        "Referred to the GP",
        "Thresholds version",
        "Open, not acknowledged",
    ):
        assert words in english, words
    token = csrf_of(english)
    refused = await client.post(f"/alerts/{alert_id}/resolve", headers=htmx(token), data={"outcome": "advice-given"})
    assert "Write a note on what was done." in html.unescape(refused.text)


def test_every_alert_text_is_in_both_languages_and_every_key_used_exists():
    assert set(alert_texts.NB) == set(alert_texts.EN)
    assert all(alert_texts.NB[k] and alert_texts.EN[k] for k in alert_texts.NB)
    used: set[str] = set()
    for name in ("alert.html", "_alert_status.html", "_alert_history.html", "_alert_changed.html"):
        used |= set(re.findall(r't\("([a-z_.0-9-]+)"\)', (TEMPLATES / name).read_text()))
    assert "alert.resolve" in used
    dynamic = {f"alert.outcome.{o.value}" for o in ResolutionOutcome}
    dynamic |= {f"alert.status.{s}" for s in ("open", "acknowledged", "resolved")}
    dynamic |= {f"alert.history.{k}" for k in ("opened", "raised", "acknowledged", "escalated", "resolved")}
    for key in used | dynamic:
        assert key in TEXTS["nb"] and key in TEXTS["en"], key


@pytest.mark.parametrize("outcome", ["", "nonsense"])
async def test_an_unknown_outcome_is_refused(client, session, outcome):
    _, alert_id, _ = await red_alert(session)
    await sign_in(client)
    token = csrf_of((await client.get(f"/alerts/{alert_id}")).text)
    r = await client.post(f"/alerts/{alert_id}/resolve", headers=htmx(token), data={"note": "ok", "outcome": outcome})
    assert r.status_code == 422 and "Velg et utfall." in html.unescape(r.text)
    assert (await stored(session, alert_id)).status == "open"
