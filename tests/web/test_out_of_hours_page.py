"""The staff page and the out-of-hours hand-over: the alert page and the worklist row say
"outside service hours" and "handed over to <partner>" (both languages); the partner's worklist
lists the handed-over patient while the alert is active, and only then; a red alert handed over
at closing time shows the hand-over without the outside-hours mark.

Signed in through the development form; data in the test's rolled-back transaction, on the
lifecycle tests' 2021 clock (a Saturday).
"""

from __future__ import annotations

import html
from datetime import UTC, datetime, timedelta

from rpm.alerts import service
from rpm.api.web.texts import TEXTS
from tests.alerts.test_lifecycle import enrol, send, the_alert
from tests.alerts.test_service_hours import with_partner
from tests.web.test_alert_page import csrf_of, sign_in

SATURDAY = datetime(2021, 6, 5, 8, 0, tzinfo=UTC)


def text(language: str, key: str, **values: str) -> str:
    found = TEXTS[language][key]
    for name, value in values.items():
        found = found.replace("{" + name + "}", value)
    return html.escape(found, quote=False)


async def test_the_alert_page_and_both_worklists_show_the_hand_over(client, session):
    own, partner = await with_partner(session)
    patient = await enrol(session, own)
    await send(session, patient, 83, at=SATURDAY - timedelta(minutes=1), received_at=SATURDAY)
    alert = await the_alert(session, patient.id)
    await session.commit()  # kept when a request rolls back
    partner_name = f"Org {partner}"

    await sign_in(client, own, sub="nurse-own")
    page = (await client.get(f"/alerts/{alert.id}")).text
    assert text("nb", "alert.outside_service_hours") in page
    assert text("nb", "alert.handed_over_to", partner=partner_name) in page
    rows = (await client.get("/worklist/rows")).text
    assert text("nb", "worklist.handed_over_to", partner=partner_name) in rows
    await client.get("/language", params={"to": "en", "next": "/"})
    page = (await client.get(f"/alerts/{alert.id}")).text
    assert text("en", "alert.handed_over_to", partner=partner_name) in page

    client.cookies.clear()
    await sign_in(client, partner, sub="legevakt-1")
    rows = (await client.get("/worklist/rows")).text
    assert f'data-patient="{patient.id}"' in rows
    assert (await client.get(f"/alerts/{alert.id}")).status_code == 200

    client.cookies.clear()
    await sign_in(client, own, sub="nurse-own")
    page = (await client.get(f"/alerts/{alert.id}")).text
    token = csrf_of(page)
    r = await client.post(
        f"/alerts/{alert.id}/resolve",
        data={"note": "Seen at the emergency room", "outcome": "referred-to-emergency", "csrf_token": token},
    )
    assert r.status_code == 303, r.text

    client.cookies.clear()
    await sign_in(client, partner, sub="legevakt-1")
    rows = (await client.get("/worklist/rows")).text
    assert f'data-patient="{patient.id}"' not in rows
    assert (await client.get(f"/alerts/{alert.id}")).status_code == 404


async def test_no_flag_without_the_mark(client, session):
    own, _ = await with_partner(session)
    patient = await enrol(session, own)
    await send(session, patient, 83, at=SATURDAY + timedelta(days=3), received_at=SATURDAY + timedelta(days=3))
    alert = await the_alert(session, patient.id)  # Tuesday 10:00 in Oslo: in service hours
    await session.commit()
    await sign_in(client, own)
    page = (await client.get(f"/alerts/{alert.id}")).text
    assert text("nb", "alert.outside_service_hours") not in page
    assert TEXTS["nb"]["alert.handed_over_to"].split("{")[0].strip() not in page


async def test_a_red_alert_handed_over_at_closing_time_says_so_without_the_outside_hours_mark(client, session):
    own, partner = await with_partner(session)
    patient = await enrol(session, own)
    closing = datetime(2021, 6, 4, 13, 30, tzinfo=UTC)  # Friday 15:30 in Oslo
    await send(session, patient, 83, at=closing - timedelta(minutes=6), received_at=closing - timedelta(minutes=5))
    assert await service.hand_over_at_closing(session, closing + timedelta(minutes=1)) == 1
    alert = await the_alert(session, patient.id)
    await session.commit()
    partner_name = f"Org {partner}"

    await sign_in(client, own, sub="nurse-own")
    page = (await client.get(f"/alerts/{alert.id}")).text
    assert text("nb", "alert.handed_over_to", partner=partner_name) in page
    assert text("nb", "alert.outside_service_hours") not in page
    rows = (await client.get("/worklist/rows")).text
    assert text("nb", "worklist.handed_over_to", partner=partner_name) in rows
    client.cookies.clear()
    await sign_in(client, partner, sub="legevakt-1")
    assert f'data-patient="{patient.id}"' in (await client.get("/worklist/rows")).text
