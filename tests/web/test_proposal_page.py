"""The start period and its proposal on the thresholds page: the start period while it lasts;
the proposal beside the bands in force with what each rests on; a physician previews it in the
form, accepts it as it is, with changes, or rejects it; a nurse sees it read-only."""

from __future__ import annotations

import uuid
from datetime import timedelta

from sqlalchemy import select

from rpm.norway import OSLO
from rpm.rules.models import ThresholdOverride, ThresholdProposal
from tests.api.helpers import enrol
from tests.conftest import ORG_A
from tests.web.test_thresholds_page import SPO2, htmx, now, patient_with, sign_in, text_of, versions

DAY = timedelta(days=1)


async def with_proposal(client, tokens, session) -> str:
    patient = await patient_with(client, tokens, session, "spo2", [], [(now() - DAY, 95)])
    session.add(
        ThresholdProposal(
            patient_id=uuid.UUID(patient),
            proposed_at=now(),
            period_from=now() - 14 * DAY,
            period_to=now(),
            bands={SPO2: {"yellow": {"low": 93.0}, "red": {"low": 92.0}}},
            basis={SPO2: {"readings": 14, "p5": 94.0, "p95": 97.0, "margin": 1.0}},
            status="proposed",
        )
    )
    await session.flush()
    return patient


async def proposal_status(session, patient: str) -> str:
    return await session.scalar(
        select(ThresholdProposal.status)
        .where(ThresholdProposal.patient_id == uuid.UUID(patient))
        .execution_options(populate_existing=True)
    )


async def test_a_patient_in_the_start_period_is_shown_as_such(client, tokens, session):
    patient = await enrol(client, tokens(ORG_A, "admin"), start_period_days=14)
    assert patient["start_period_days"] == 14
    await sign_in(client, "nurse", sub="nurse-1")
    page = text_of((await client.get(f"/patients/{patient['id']}/thresholds")).text)
    ends = (now() + 14 * DAY).astimezone(OSLO).strftime("%d.%m.%Y")  # the page's date is Norway's
    assert f"Oppstartsperiode til {ends}" in page


async def test_the_proposal_is_shown_with_its_basis_and_a_nurse_cannot_decide(client, tokens, session):
    patient = await with_proposal(client, tokens, session)
    await sign_in(client, "nurse", sub="nurse-1")
    page = (await client.get(f"/patients/{patient}/thresholds")).text
    text = text_of(page)
    assert "Forslag fra pasientens egne målinger" in text and "Venter på beslutning" in text
    assert "14 målinger, 5.\u201395. persentil 94\u201397, margin 1" in text
    assert "Godta forslaget" not in text and 'action="/patients/' + patient + '/thresholds/proposal"' not in page


async def test_a_physician_accepts_the_proposal_as_it_is(client, tokens, session):
    patient = await with_proposal(client, tokens, session)
    token = await sign_in(client)
    page = (await client.get(f"/patients/{patient}/thresholds")).text
    assert "Godta forslaget" in page
    r = await client.post(
        f"/patients/{patient}/thresholds/proposal",
        data={"decision": "accept", "reason": "Agreed with the GP", "csrf_token": token},
    )
    assert (r.status_code, r.headers["location"]) == (303, f"/patients/{patient}/thresholds?decided=accepted")
    [version] = await versions(session, patient)
    assert version.bands == {SPO2: {"yellow": {"low": 93.0}, "red": {"low": 92.0}}}
    assert version.reason == "Start-period proposal accepted: Agreed with the GP"
    text = text_of((await client.get(f"/patients/{patient}/thresholds?decided=accepted")).text)
    assert "Godtatt av Dr. Lege" in text and "«Agreed with the GP»" in text
    # Decided once.
    r = await client.post(
        f"/patients/{patient}/thresholds/proposal", data={"decision": "reject", "reason": "x", "csrf_token": token}
    )
    assert r.status_code == 409


async def test_a_preview_fills_the_form_and_saving_it_with_a_change_accepts_it_edited(client, tokens, session):
    patient = await with_proposal(client, tokens, session)
    token = await sign_in(client)
    fields = {f"{SPO2}.yellow.low": "93", f"{SPO2}.red.low": "92", "proposal": "1", "days": "30"}
    r = await client.post(f"/patients/{patient}/thresholds/preview", headers=htmx(token), data=fields)
    assert r.status_code == 200
    assert 'name="proposal" value="1"' in r.text
    assert "Skjemaet viser forslaget fra oppstartsperioden" in text_of(r.text)
    r = await client.post(
        f"/patients/{patient}/thresholds",
        headers=htmx(token),
        data={**fields, f"{SPO2}.yellow.low": "92", f"{SPO2}.red.low": "90", "reason": "Habitually 92-93"},
    )
    assert r.status_code == 200, r.text
    assert await proposal_status(session, patient) == "edited"
    overrides = await session.scalars(
        select(ThresholdOverride).where(ThresholdOverride.patient_id == uuid.UUID(patient))
    )
    assert [o.bands for o in overrides] == [{SPO2: {"yellow": {"low": 92.0}, "red": {"low": 90.0}}}]


async def test_a_rejection_needs_a_reason_and_changes_no_threshold(client, tokens, session):
    patient = await with_proposal(client, tokens, session)
    token = await sign_in(client)
    r = await client.post(
        f"/patients/{patient}/thresholds/proposal", data={"decision": "reject", "reason": " ", "csrf_token": token}
    )
    assert r.status_code == 422
    assert await proposal_status(session, patient) == "proposed"
    r = await client.post(
        f"/patients/{patient}/thresholds/proposal",
        data={"decision": "reject", "reason": "Too unstable", "csrf_token": token},
    )
    assert r.status_code == 303
    assert await proposal_status(session, patient) == "rejected"
    assert await versions(session, patient) == []
