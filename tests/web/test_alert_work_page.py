"""Working an alert on the staff page, over ASGI: assign it (to me, to a colleague, to nobody),
comment on it, snooze it with a reason for at most 24 hours and wake it; the history tells
each; the worklist shows the assignee and the snooze, hides snoozed alerts by default and
filters on "mine". Refusals are messages next to their field (422), a resolved alert 409,
another organisation's alert 404, a change without the CSRF token 403.

Signed in through the development form; the data is made in the test's rolled-back transaction
(the lifecycle tests' helpers, on their 2021 clock); snoozes run on the real clock.
"""

from __future__ import annotations

import html
import re
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
from sqlalchemy import update

from rpm.api.web.texts import TEXTS
from rpm.api.web.texts import alert_work as work_texts
from rpm.norway import OSLO
from rpm.organisations.models import Organisation
from rpm.staff.models import StaffMember
from tests.alerts.test_lifecycle import MINUTE, T0, enrol, new_organisation, send, the_alert
from tests.conftest import ORG_B
from tests.web.test_alert_page import audited, csrf_of, htmx, sign_in, stored

TEMPLATES = Path(__file__).parents[2] / "api" / "web" / "templates"


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


async def red_alert(session, orgnr: str) -> tuple[uuid.UUID, uuid.UUID]:
    """A patient of `orgnr` with SpO2 85 % then 83 %: one open red alert. (patient id, alert id)."""
    patient = await enrol(session, orgnr)
    await send(session, patient, 85, at=T0)
    await send(session, patient, 83, at=T0 + 10 * MINUTE)
    return patient.id, (await the_alert(session, patient.id)).id


async def colleague(session, orgnr: str, name: str) -> str:
    """A staff member the directory knows (as if they had signed in once): their sub."""
    sub, now = unique("nurse"), datetime.now(UTC)
    session.add(
        StaffMember(sub=sub, orgnr=orgnr, name=name, hpr=None, roles=["nurse"], first_seen_at=now, last_seen_at=now)
    )
    await session.flush()
    return sub


async def signed_in(client: httpx.AsyncClient, orgnr: str, alert_id: uuid.UUID, **who: str) -> tuple[str, str]:
    """Signed in as a nurse of `orgnr`: the alert page and its CSRF token."""
    await sign_in(client, orgnr, **who)
    page = (await client.get(f"/alerts/{alert_id}")).text
    return html.unescape(page), csrf_of(page)


def history_kinds(fragment: str) -> list[str]:
    history = fragment[fragment.index('id="alert-history"') :]
    return re.findall(r'<th scope="row">([^<]+)</th>', history)


async def test_what_to_do_comes_before_the_status_and_the_work_part_follows(client, session):
    orgnr = await new_organisation(session)
    _, alert_id = await red_alert(session, orgnr)
    page, _ = await signed_in(client, orgnr, alert_id)
    order = [page.index(f'id="{part}"') for part in ("alert-action", "alert-status", "alert-work", "alert-comments")]
    assert order == sorted(order), "what to do, then the status, who has it and the snooze, then comments"
    assert "Ansvar og utsettelse" in page and "Tildel meg</button>" in page and "Ikke utsatt." in page
    assert "Ingen kommentarer ennå." in page
    for minutes in ("60", "240", "1440"):
        assert f'name="duration" value="{minutes}" required' in page
    assert await audited(session, alert_id) == [("read", "Alert"), ("read", "AlertHistory")], "no comments: none read"


async def test_assign_to_me_to_a_colleague_and_to_nobody(client, session):
    orgnr = await new_organisation(session)
    _, alert_id = await red_alert(session, orgnr)
    per = await colleague(session, orgnr, "Per Pleier")
    outsider = await colleague(session, ORG_B, "Ola Utenfor")
    page, token = await signed_in(client, orgnr, alert_id, sub="nurse-kari", name="Kari Nordmann")
    assert f'<option value="{per}">Per Pleier</option>' in page, "a colleague of the care team"
    assert outsider not in page, "another organisation's staff cannot be assigned the patient's alerts"

    r = await client.post(f"/alerts/{alert_id}/assignment", headers=htmx(token), data={"to": "me"})
    assert r.status_code == 200, r.text
    fragment = html.unescape(r.text)
    assert fragment.lstrip().startswith('<section id="alert-status"'), "the status part, swapped in place"
    assert (
        '<section id="alert-work" class="card alert-work" aria-labelledby="work-title" hx-swap-oob="true">' in fragment
    )
    assert re.search(r"<strong>Kari Nordmann</strong> <span class=\"muted\">\(deg\)</span>", fragment)
    assert "Tildel meg</button>" not in fragment and "Fjern tildelingen</button>" in fragment
    assert "Varselet er tildelt." in fragment
    assert re.search(
        r'<th scope="row">Tildelt</th>\s*<td>Kari Nordmann</td>\s*<td>\s*til <strong>Kari Nordmann</strong>', fragment
    )
    assert (await stored(session, alert_id)).assigned_to == "nurse-kari"
    assert ("assign", "Alert") in await audited(session, alert_id)

    r = await client.post(
        f"/alerts/{alert_id}/assignment", headers=htmx(token), data={"to": "colleague", "colleague": per}
    )
    assert r.status_code == 200, r.text
    assert "<strong>Per Pleier</strong>" in html.unescape(r.text)
    assert (await stored(session, alert_id)).assigned_to_name == "Per Pleier"

    for chosen, error in ((outsider, "Denne personen kan ikke tildeles varselet."), ("", "Velg en kollega.")):
        refused = await client.post(
            f"/alerts/{alert_id}/assignment", headers=htmx(token), data={"to": "colleague", "colleague": chosen}
        )
        assert refused.status_code == 422, refused.text
        fragment = html.unescape(refused.text)
        assert f'<span id="colleague-error" class="error-text">{error}' in fragment
        assert re.search(r'<select id="colleague" name="colleague" required aria-invalid="true"', fragment)
        assert "Varselet ble ikke tildelt: se feltet." in fragment
        assert (await stored(session, alert_id)).assigned_to == per

    r = await client.post(f"/alerts/{alert_id}/assignment", headers=htmx(token), data={"to": "nobody"})
    assert r.status_code == 200 and "Tildelingen er fjernet." in html.unescape(r.text)
    assert (await stored(session, alert_id)).assigned_to is None
    assert history_kinds(html.unescape(r.text))[-3:] == ["Tildelt", "Tildelt", "Tildeling fjernet"]

    # Without script: the form posts its hidden token and gets the page again by GET.
    r = await client.post(f"/alerts/{alert_id}/assignment", data={"csrf_token": token, "to": "me"})
    assert (r.status_code, r.headers["location"]) == (303, f"/alerts/{alert_id}#alert-work")
    page = html.unescape((await client.get(f"/alerts/{alert_id}")).text)
    assert "<strong>Kari Nordmann</strong>" in page


async def test_comments_are_listed_oldest_first_with_who_and_when(client, session):
    orgnr = await new_organisation(session)
    _, alert_id = await red_alert(session, orgnr)
    _, token = await signed_in(client, orgnr, alert_id, sub="nurse-kari", name="Kari Nordmann")

    refused = await client.post(f"/alerts/{alert_id}/comments", headers=htmx(token), data={"text": "  "})
    assert refused.status_code == 422
    fragment = html.unescape(refused.text)
    assert '<span id="comment-error" class="error-text">Skriv en kommentar.</span>' in fragment
    assert re.search(
        r'<textarea id="comment-text"[^>]*aria-describedby="comment-hint comment-error"[^>]*aria-invalid="true"',
        fragment,
    )
    assert "Kommentaren ble ikke lagret: se feltet." in fragment
    too_long = "x" * 4001
    refused = await client.post(f"/alerts/{alert_id}/comments", headers=htmx(token), data={"text": too_long})
    assert refused.status_code == 422 and "Kommentaren er for lang" in html.unescape(refused.text)
    assert f">{too_long}</textarea>" in refused.text, "the text is kept"
    assert (await stored(session, alert_id)).comments == 0

    first = "Ringte pasienten, <ingen> svar."
    r = await client.post(f"/alerts/{alert_id}/comments", headers=htmx(token), data={"text": first})
    assert r.status_code == 200, r.text
    assert "&lt;ingen&gt;" in r.text, "the comment is escaped"
    fragment = html.unescape(r.text)
    assert (
        '<section id="alert-comments" class="card alert-comments" aria-labelledby="comments-title" hx-swap-oob="true">'
        in fragment
    )
    assert "Kommentaren er lagret." in fragment
    assert history_kinds(fragment)[-1] == "Kommentert"
    await client.post(f"/alerts/{alert_id}/comments", data={"csrf_token": token, "text": "Ny måling i kveld."})
    page = html.unescape((await client.get(f"/alerts/{alert_id}")).text)
    comments = page[page.index('id="alert-comments"') : page.index('id="alert-history"')]
    assert comments.index(first) < comments.index("Ny måling i kveld."), "oldest first"
    assert comments.count("<strong>Kari Nordmann</strong>") == 2
    assert 'Kommentarer <span class="muted">(2)</span>' in comments
    assert (await stored(session, alert_id)).comments == 2
    assert ("read", "AlertComment") in await audited(session, alert_id)


async def test_snooze_needs_a_reason_and_at_most_24_hours_and_wake_ends_it(client, session):
    orgnr = await new_organisation(session)
    patient_id, alert_id = await red_alert(session, orgnr)
    _, token = await signed_in(client, orgnr, alert_id, sub="nurse-kari", name="Kari Nordmann")

    for data, field, error in (
        ({"duration": "60", "reason": " "}, "snooze-reason-error", "Skriv hvorfor varselet kan vente."),
        ({"duration": "1500", "reason": "Venter"}, "duration-error", "Et varsel kan utsettes i høyst 24 timer."),
        ({"duration": "", "reason": "Venter"}, "duration-error", "Velg hvor lenge varselet skal utsettes."),
        ({"duration": "soon", "reason": "Venter"}, "duration-error", "Velg hvor lenge varselet skal utsettes."),
        ({"duration": "60", "reason": "x" * 501}, "snooze-reason-error", "Grunnen er for lang (høyst 500 tegn)."),
    ):
        refused = await client.post(f"/alerts/{alert_id}/snooze", headers=htmx(token), data=data)
        assert refused.status_code == 422, (data, refused.text)
        fragment = html.unescape(refused.text)
        assert f'<span id="{field}" class="error-text">{error}</span>' in fragment, data
        assert "Varselet ble ikke utsatt: se feltene." in fragment
    assert (await stored(session, alert_id)).snoozed_until is None

    reason = "Pasienten sover, måler igjen kl. 08."
    before = datetime.now(UTC)
    r = await client.post(f"/alerts/{alert_id}/snooze", headers=htmx(token), data={"duration": "240", "reason": reason})
    assert r.status_code == 200, r.text
    snoozed = await stored(session, alert_id)
    assert snoozed.snoozed_until is not None
    assert before + timedelta(hours=4) <= snoozed.snoozed_until <= datetime.now(UTC) + timedelta(hours=4)
    assert (snoozed.status, snoozed.acknowledged_by, snoozed.snooze_reason) == ("acknowledged", "nurse-kari", reason)
    fragment = html.unescape(r.text)
    assert "Status: Kvittert" in fragment, "snoozing acknowledges"
    until = snoozed.snoozed_until.astimezone(OSLO).strftime("%d.%m.%Y %H:%M")
    assert re.search(rf"Utsatt til</dt>\s*<dd><strong><time[^>]*>{until}</time>", fragment)
    assert re.search(r"Utsatt av</dt>\s*<dd>Kari Nordmann", fragment)
    assert f'<dd class="note">{reason}</dd>' in fragment
    assert "Vekk nå</button>" in fragment and "Endre utsettelsen</button>" in fragment
    assert "Varselet er utsatt." in fragment
    assert history_kinds(fragment)[-2:] == ["Kvittert", "Utsatt"]
    assert ("snooze", "Alert") in await audited(session, alert_id)

    # The worklist hides it by default: the row is no longer red, and says when it wakes.
    rows = html.unescape((await client.get("/worklist/rows")).text)
    row = rows[rows.index(f'data-patient="{patient_id}"') :]
    assert 'class="row-red"' not in rows and f"/alerts/{alert_id}" not in rows
    clock = snoozed.snoozed_until.astimezone(OSLO).strftime("%H:%M")
    assert re.search(
        rf'class="small worklist-snoozed"[^>]*><span aria-hidden="true">⏸</span> Utsatt varsel til [0-9.]*\s?{clock}',
        row,
    )
    shown = html.unescape((await client.get("/worklist/rows", params={"snoozed": "include"})).text)
    assert 'class="row-red"' in shown and f"/alerts/{alert_id}" in shown and "Utsatt varsel til" in shown
    only = html.unescape((await client.get("/worklist/rows", params={"snoozed": "only"})).text)
    assert f'data-patient="{patient_id}"' in only

    r = await client.post(f"/alerts/{alert_id}/wake", headers=htmx(token))
    assert r.status_code == 200, r.text
    fragment = html.unescape(r.text)
    assert "Varselet er vekket og vises igjen i arbeidslisten." in fragment and "Ikke utsatt." in fragment
    assert history_kinds(fragment)[-1] == "Vekket"
    assert (await stored(session, alert_id)).snoozed_until is None
    rows = html.unescape((await client.get("/worklist/rows")).text)
    assert 'class="row-red"' in rows and "worklist-snoozed" not in rows
    only = html.unescape((await client.get("/worklist/rows", params={"snoozed": "only"})).text)
    assert f'data-patient="{patient_id}"' not in only

    # Without script: a refusal is the whole page with the message; a snooze, the page by GET.
    r = await client.post(f"/alerts/{alert_id}/snooze", data={"csrf_token": token, "duration": "60", "reason": ""})
    assert r.status_code == 422 and "<h1>Oksygenmetning for lav</h1>" in html.unescape(r.text)
    assert "Skriv hvorfor varselet kan vente." in html.unescape(r.text)
    r = await client.post(
        f"/alerts/{alert_id}/snooze", data={"csrf_token": token, "duration": "60", "reason": "Venter"}
    )
    assert (r.status_code, r.headers["location"]) == (303, f"/alerts/{alert_id}#alert-work")


async def test_the_snooze_until_the_service_opens_is_offered_when_within_24_hours(client, session):
    orgnr = await new_organisation(session)
    _, alert_id = await red_alert(session, orgnr)
    # Open a few minutes after every midnight: the next opening is always within 24 hours.
    await session.execute(
        update(Organisation)
        .where(Organisation.orgnr == orgnr)
        .values(service_hours={"days": [1, 2, 3, 4, 5, 6, 7], "start": "00:00", "end": "00:30", "holidays": True})
    )
    page, token = await signed_in(client, orgnr, alert_id)
    now = datetime.now(OSLO)
    opens = datetime.combine(now.date() + timedelta(days=1), datetime.min.time(), OSLO)
    if now.hour == 0 and now.minute == 0:  # pragma: no cover - the very minute of opening
        return
    assert f"Til tjenesten åpner, {opens.strftime('%d.%m.%Y %H:%M')}" in page
    r = await client.post(
        f"/alerts/{alert_id}/snooze", headers=htmx(token), data={"duration": "service", "reason": "Til dagvakten"}
    )
    assert r.status_code == 200, r.text
    assert (await stored(session, alert_id)).snoozed_until == opens.astimezone(UTC)


async def test_the_snooze_until_the_service_opens_is_refused_beyond_24_hours(client, session):
    orgnr = await new_organisation(session)
    _, alert_id = await red_alert(session, orgnr)
    # Open only on today's weekday, from midnight: the next opening is a week away.
    today = datetime.now(OSLO).isoweekday()
    await session.execute(
        update(Organisation)
        .where(Organisation.orgnr == orgnr)
        .values(service_hours={"days": [today], "start": "00:00", "end": "00:01", "holidays": True})
    )
    page, token = await signed_in(client, orgnr, alert_id)
    assert 'value="service"' not in page
    refused = await client.post(
        f"/alerts/{alert_id}/snooze", headers=htmx(token), data={"duration": "service", "reason": "Til dagvakten"}
    )
    assert refused.status_code == 422
    assert "Tjenesten åpner ikke innen 24 timer. Velg en annen tid." in html.unescape(refused.text)
    assert (await stored(session, alert_id)).snoozed_until is None


async def test_a_resolved_alert_is_not_assigned_or_snoozed_but_takes_comments(client, session):
    orgnr = await new_organisation(session)
    _, alert_id = await red_alert(session, orgnr)
    _, token = await signed_in(client, orgnr, alert_id)
    r = await client.post(
        f"/alerts/{alert_id}/resolve", headers=htmx(token), data={"note": "Fulgt opp", "outcome": "advice-given"}
    )
    assert r.status_code == 200
    fragment = html.unescape(r.text)
    assert "Tildel meg</button>" not in fragment and "Utsett varselet</button>" not in fragment
    for path, data in (("assignment", {"to": "me"}), ("snooze", {"duration": "60", "reason": "Venter"})):
        refused = await client.post(f"/alerts/{alert_id}/{path}", headers=htmx(token), data=data)
        assert refused.status_code == 409, path
        assert "Varselet er allerede løst" in html.unescape(refused.text)
    r = await client.post(f"/alerts/{alert_id}/comments", headers=htmx(token), data={"text": "Etterpå: alt vel."})
    assert r.status_code == 200 and "Etterpå: alt vel." in html.unescape(r.text)
    found = await stored(session, alert_id)
    assert (found.assigned_to, found.snoozed_until, found.comments) == (None, None, 1)


async def test_another_organisations_alert_is_not_found_and_changes_need_the_csrf_token(client, session):
    orgnr = await new_organisation(session)
    _, alert_id = await red_alert(session, orgnr)
    changes = (
        ("assignment", {"to": "me"}),
        ("snooze", {"duration": "60", "reason": "Venter"}),
        ("wake", {}),
        ("comments", {"text": "Ikke min"}),
    )
    await sign_in(client, ORG_B, sub="nurse-b")
    token = csrf_of((await client.get("/")).text)
    for path, data in changes:
        response = await client.post(f"/alerts/{alert_id}/{path}", headers=htmx(token), data=data)
        assert response.status_code == 404, path
        assert "Finnes ikke, eller du har ikke tilgang." in html.unescape(response.text)
    refused = await client.post(
        f"/alerts/{alert_id}/snooze", headers=htmx(token), data={"duration": "1500", "reason": ""}
    )
    assert refused.status_code == 404, "a refused form of another organisation's alert tells nothing either"

    client.cookies.clear()
    _, token = await signed_in(client, orgnr, alert_id)
    for path, data in changes:
        for headers in (htmx(None), htmx("not-the-token")):
            assert (await client.post(f"/alerts/{alert_id}/{path}", headers=headers, data=data)).status_code == 403
        assert (await client.post(f"/alerts/{alert_id}/{path}", data=data)).status_code == 403, (
            "a form without its token"
        )
    untouched = await stored(session, alert_id)
    assert (untouched.assigned_to, untouched.snoozed_until, untouched.comments) == (None, None, 0)
    assert [a for a, _ in await audited(session, alert_id) if a not in ("read",)] == []


async def test_the_worklist_shows_the_assignee_and_filters_on_mine(client, session):
    orgnr = await new_organisation(session)
    mine_patient, mine = await red_alert(session, orgnr)
    other_patient, other = await red_alert(session, orgnr)
    per = await colleague(session, orgnr, "Per Pleier")
    _, token = await signed_in(client, orgnr, mine, sub="nurse-kari", name="Kari Nordmann")
    await client.post(f"/alerts/{mine}/assignment", headers=htmx(token), data={"to": "me"})
    await client.post(f"/alerts/{other}/assignment", headers=htmx(token), data={"to": "colleague", "colleague": per})

    raw = (await client.get("/")).text
    assert 'hx-get="/worklist/rows?condition=&amp;organisation=&amp;mine=&amp;snoozed=hide"' in raw, "the rows' filters"
    page = html.unescape(raw)
    assert 'name="mine" value="1">' in page and "Bare varsler tildelt meg" in page
    assert '<option value="hide" selected>Skjul</option>' in page
    rows = html.unescape((await client.get("/worklist/rows")).text)
    assert "Tildelt deg" in rows and "Tildelt Per Pleier" in rows
    mine_rows = html.unescape((await client.get("/worklist/rows", params={"mine": "1"})).text)
    assert f'data-patient="{mine_patient}"' in mine_rows and f'data-patient="{other_patient}"' not in mine_rows
    page = html.unescape((await client.get("/", params={"mine": "1", "snoozed": "include"})).text)
    assert re.search(r'name="mine" value="1" checked', page)
    assert "mine=1&snoozed=include" in page

    # Snoozed, my alert is not "mine" on the default view: it waits.
    await client.post(f"/alerts/{mine}/snooze", headers=htmx(token), data={"duration": "60", "reason": "Venter"})
    mine_rows = html.unescape((await client.get("/worklist/rows", params={"mine": "1"})).text)
    assert f'data-patient="{mine_patient}"' not in mine_rows
    mine_rows = html.unescape((await client.get("/worklist/rows", params={"mine": "1", "snoozed": "include"})).text)
    assert f'data-patient="{mine_patient}"' in mine_rows
    assert (await client.get("/worklist/rows", params={"snoozed": "later"})).status_code == 422


async def test_english_texts_render(client, session):
    orgnr = await new_organisation(session)
    _, alert_id = await red_alert(session, orgnr)
    await sign_in(client, orgnr)
    await client.get("/language", params={"to": "en", "next": f"/alerts/{alert_id}"})
    page = html.unescape((await client.get(f"/alerts/{alert_id}")).text)
    for words in (
        "Assignment and snooze",
        "Assign to me</button>",
        "Snooze the alert</button>",
        "No comments yet.",
        "4 hours",
    ):
        assert words in page, words
    token = csrf_of(page)
    refused = await client.post(f"/alerts/{alert_id}/snooze", headers=htmx(token), data={"duration": "60"})
    assert "Write why the alert can wait." in html.unescape(refused.text)
    rows = html.unescape((await client.get("/")).text)
    assert "Only alerts assigned to me" in rows and "Snoozed alerts" in rows


def test_every_text_of_working_an_alert_is_in_both_languages_and_used():
    assert set(work_texts.NB) == set(work_texts.EN)
    assert all(work_texts.NB[k].strip() and work_texts.EN[k].strip() for k in work_texts.NB)
    used: set[str] = set()
    for name in (
        "_alert_work.html",
        "_alert_comments.html",
        "_alert_history.html",
        "worklist.html",
        "_worklist_rows_body.html",
    ):
        used |= set(re.findall(r't\("([a-z_.0-9-]+)"\)', (TEMPLATES / name).read_text()))
    dynamic = {f"alert.history.{k}" for k in ("assigned", "unassigned", "snoozed", "woke", "commented")}
    dynamic |= {f"alert.snooze.{m}" for m in ("60", "240", "1440")} | {
        f"worklist.snoozed.{s}" for s in ("hide", "include", "only")
    }
    for key in used | dynamic:
        assert key in TEXTS["nb"] and key in TEXTS["en"], key
    handlers = (Path(__file__).parents[2] / "api" / "web" / "pages" / "alerts.py").read_text()
    messages = {m for m in re.findall(r'"(alert\.[a-z_]+)"', handlers) if m != "alert.html"}
    assert messages and messages - set(TEXTS["nb"]) == set(), "every message a page handler names has a text"
