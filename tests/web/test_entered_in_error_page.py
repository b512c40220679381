"""Marking a reading entered in error on the alert page (issue 11, items 6 and 7) over ASGI:
the form beside each reading, htmx and plain posts, the reason required, twice, a reading that
is not the alert's, the CSRF token, and the struck-through reading with its reason afterwards.
"""

from __future__ import annotations

import html
import re
import uuid

from sqlalchemy import select

from rpm.observations.models import Observation
from tests.alerts.test_lifecycle import T0, enrol, send, the_alert
from tests.conftest import ORG_A
from tests.web.test_alert_page import csrf_of, htmx, red_alert, sign_in, stored

REASON = "pasienten glemte mansjetten"


def url(alert_id: uuid.UUID, observation_id: uuid.UUID) -> str:
    return f"/alerts/{alert_id}/observations/{observation_id}/entered-in-error"


async def observation(session, observation_id: uuid.UUID) -> Observation:
    found = await session.scalar(
        select(Observation).where(Observation.id == observation_id).execution_options(populate_existing=True)
    )
    assert found is not None
    return found


def row_of(page: str, observation_id: uuid.UUID) -> str:
    """The evidence table's row of the reading."""
    at = page.index(f'<code class="observation">{observation_id}</code>')
    return page[page.rindex("<tr", 0, at) : page.index("</tr>", at)]


async def test_each_reading_has_a_form_and_a_marked_one_is_struck_through_with_its_reason(client, session):
    _, alert_id, (first, second) = await red_alert(session)
    await session.commit()
    await sign_in(client, sub="nurse-kari", name="Kari Nordmann")
    page = html.unescape((await client.get(f"/alerts/{alert_id}")).text)
    token = csrf_of(page)
    for reading in (first, second):
        row = row_of(page, reading)
        assert f'hx-post="{url(alert_id, reading)}"' in row and 'name="reason"' in row and "required" in row
        assert "<del>" not in row

    r = await client.post(url(alert_id, first), headers=htmx(token), data={"reason": REASON})

    assert r.status_code == 200, r.text
    fragment = html.unescape(r.text)
    assert fragment.lstrip().startswith('<section id="alert-status"')
    assert "Status: Åpent, ikke kvittert" in fragment, "the other reading still stands behind the alert"
    assert '<section id="alert-evidence" class="card" aria-labelledby="evidence-title" hx-swap-oob="true">' in fragment
    marked = row_of(fragment, first)
    assert '<tr class="entered-in-error">' in marked and "<del>" in marked
    assert "Feilmåling</strong>" in marked and "Kari Nordmann" in marked and REASON in marked
    assert 'name="reason"' not in marked
    assert 'name="reason"' in row_of(fragment, second)
    assert "Målingen er merket som feilmåling.</p>" in fragment
    assert (await observation(session, first)).invalidation_reason == REASON

    # The second reading was the last: the alert is resolved by the system, with the reason.
    r = await client.post(url(alert_id, second), headers=htmx(token), data={"reason": "barnet sto på vekta"})
    assert r.status_code == 200, r.text
    fragment = html.unescape(r.text)
    assert "Status: Løst" in fragment and "Systemet (målingen var feil)" in fragment
    assert "reading entered in error: barnet sto på vekta" in fragment
    assert "varselet er løst: ingen gyldig måling sto igjen." in fragment
    assert (await stored(session, alert_id)).status == "resolved"


async def test_a_plain_form_post_returns_to_the_page_by_get(client, session):
    _, alert_id, (first, _) = await red_alert(session)
    await session.commit()
    await sign_in(client)
    token = csrf_of((await client.get(f"/alerts/{alert_id}")).text)
    r = await client.post(url(alert_id, first), data={"reason": REASON, "csrf_token": token})
    assert r.status_code == 303 and r.headers["location"] == f"/alerts/{alert_id}"
    page = html.unescape((await client.get(f"/alerts/{alert_id}")).text)
    assert "<del>" in row_of(page, first) and REASON in row_of(page, first)


async def test_the_reason_is_required_and_a_second_mark_is_refused(client, session):
    _, alert_id, (first, _) = await red_alert(session)
    await session.commit()
    await sign_in(client)
    token = csrf_of((await client.get(f"/alerts/{alert_id}")).text)

    for reason, error in (("   ", "Skriv hvorfor målingen er feil."), ("x" * 501, "høyst 500 tegn")):
        r = await client.post(url(alert_id, first), headers=htmx(token), data={"reason": reason})
        assert r.status_code == 422, r.text
        fragment = html.unescape(r.text)
        assert "Målingen ble ikke merket: se begrunnelsen." in fragment
        row = row_of(fragment, first)
        assert error in row and 'aria-invalid="true"' in row and '<details class="entered-in-error-form" open>' in row
        assert (await observation(session, first)).invalidated_at is None

    assert (await client.post(url(alert_id, first), headers=htmx(token), data={"reason": REASON})).status_code == 200
    await session.commit()
    r = await client.post(url(alert_id, first), headers=htmx(token), data={"reason": "igjen"})
    assert r.status_code == 409, r.text
    assert "Målingen er allerede merket som feilmåling" in html.unescape(r.text)
    assert (await observation(session, first)).invalidation_reason == REASON


async def test_without_the_csrf_token_or_for_another_alert_s_reading_nothing_is_marked(client, session):
    _, alert_id, (first, _) = await red_alert(session)
    other = await enrol(session, ORG_A)
    elsewhere = await send(session, other, 83, at=T0)
    other_alert = (await the_alert(session, other.id)).id
    await session.commit()
    await sign_in(client)
    token = csrf_of((await client.get(f"/alerts/{alert_id}")).text)
    assert (await client.post(url(alert_id, first), headers=htmx(None), data={"reason": REASON})).status_code == 403
    # A reading of another alert, through this alert's address: not this alert's reading.
    r = await client.post(url(alert_id, elsewhere), headers=htmx(token), data={"reason": REASON})
    assert r.status_code == 404
    assert (await observation(session, first)).invalidated_at is None
    assert (await observation(session, elsewhere)).invalidated_at is None
    assert (await stored(session, other_alert)).status == "open"


async def test_in_english(client, session):
    _, alert_id, (first, _) = await red_alert(session)
    await session.commit()
    await sign_in(client)
    await client.get("/language", params={"to": "en", "next": "/"})
    page = html.unescape((await client.get(f"/alerts/{alert_id}")).text)
    assert "Mark as entered in error</summary>" in page and "Why is the reading wrong?" in page
    token = csrf_of(page)
    r = await client.post(url(alert_id, first), headers=htmx(token), data={"reason": "the cuff was off"})
    fragment = html.unescape(r.text)
    assert "The reading is marked as entered in error.</p>" in fragment
    assert re.search(r"Entered in error</strong>", row_of(fragment, first))
