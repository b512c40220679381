"""The self-management plan on the staff page over ASGI: the alert page's "What to do" with the
action of its level (or why there is none), the worklist row's compact action, the plan's
section on the thresholds page and its own page with the history; a physician saves a new
version with a reason through the form (CSRF), a nurse sees it read-only and is refused (403),
another organisation 404; a refused save keeps the form with its message; both languages.
"""

from __future__ import annotations

import html
import re
import uuid
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select

from rpm.access.staff import Role, Staff
from rpm.action_plans import repository as plans_repository
from rpm.action_plans import service as plans
from rpm.action_plans.models import ActionPlan
from rpm.action_plans.schemas import ActionPlanChange, ActionsIn
from rpm.api.web.texts import TEXTS
from rpm.api.web.texts import action_plan as plan_texts
from rpm.audit.service import Actor
from tests.alerts.test_lifecycle import MINUTE, T0, enrol, new_organisation, send, the_alert
from tests.conftest import ORG_A, ORG_B

TEMPLATES = Path(__file__).parents[2] / "api" / "web" / "templates"
YELLOW = "Ta en ekstra dose vanndrivende og vei deg igjen i morgen"
RED = "Ring legevakt 116 117"


async def sign_in(client: httpx.AsyncClient, org: str = ORG_A, role: str = "nurse", sub: str = "kari") -> str:
    """Signed in through the development form; the session's CSRF token."""
    r = await client.post("/login/development", data={"organisation": org, "roles": [role], "sub": sub, "name": sub})
    assert r.status_code == 303, r.text
    found = re.search(r'"X-CSRF-Token": "([^"]+)"', (await client.get("/")).text)
    assert found
    return found.group(1)


def text_of(page: str) -> str:
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", page)).split())


def physician(orgnr: str) -> Actor:
    return Actor(staff=Staff(sub="dr-lege", name="Dr. Lege", hpr=None, orgnr=orgnr, roles=frozenset({Role.physician})))


async def patient_with_plan(session, orgnr: str = ORG_A) -> uuid.UUID:
    patient = await enrol(session, orgnr, conditions=["copd"])
    change = ActionPlanChange(reason="avtalt med fastlegen", actions=ActionsIn(yellow=YELLOW, red=RED))
    await plans.change_plan(session, physician(orgnr), patient.id, change)
    await send(session, patient, 85, at=T0)  # yellow
    await send(session, patient, 83, at=T0 + 10 * MINUTE)  # raised to red
    return patient.id


async def test_the_alert_page_says_what_to_do_in_both_languages(client, session):
    patient_id = await patient_with_plan(session)
    alert = await the_alert(session, patient_id)
    await sign_in(client)
    page = text_of((await client.get(f"/alerts/{alert.id}")).text)
    assert f"Hva skal gjøres {RED} Avtalt i egenbehandlingsplanen, versjon 1," in page
    assert YELLOW not in page  # raised to red: the red action
    assert f'href="/patients/{patient_id}/action-plan"' in (await client.get(f"/alerts/{alert.id}")).text
    r = await client.get("/language", params={"to": "en", "next": f"/alerts/{alert.id}"})
    assert r.status_code == 303
    assert f"What to do {RED} Agreed in the self-management plan, version 1," in text_of(
        (await client.get(f"/alerts/{alert.id}")).text
    )


async def test_an_alert_without_an_agreed_action_says_why(client, session):
    without_plan = await enrol(session, conditions=["copd"])
    await send(session, without_plan, 85, at=T0)
    red_only = await enrol(session, conditions=["copd"])
    await plans.change_plan(
        session, physician(ORG_A), red_only.id, ActionPlanChange(reason="r", actions=ActionsIn(red=RED))
    )
    await send(session, red_only, 85, at=T0)
    await sign_in(client)
    first = text_of((await client.get(f"/alerts/{(await the_alert(session, without_plan.id)).id}")).text)
    assert "Pasienten hadde ingen egenbehandlingsplan da varselet nådde dette nivået." in first
    second = text_of((await client.get(f"/alerts/{(await the_alert(session, red_only.id)).id}")).text)
    assert "Egenbehandlingsplanen (versjon 1) har ikke noe tiltak for dette nivået." in second
    assert RED not in second


async def test_the_worklist_row_shows_the_action(client, session):
    orgnr = await new_organisation(session)  # its worklist holds this test's patient alone
    await patient_with_plan(session, orgnr)
    await sign_in(client, org=orgnr)
    assert f"Tiltak: {RED}" in text_of((await client.get("/")).text)


async def test_a_physician_saves_a_new_version_from_the_thresholds_page(client, session):
    patient_id = await patient_with_plan(session)
    token = await sign_in(client, role="physician", sub="dr-2")
    thresholds = (await client.get(f"/patients/{patient_id}/thresholds")).text
    assert 'id="action-plan"' in thresholds and f'action="/patients/{patient_id}/action-plan"' in thresholds
    assert f">{RED}</textarea>" in thresholds  # the form filled in with the plan in force

    r = await client.post(
        f"/patients/{patient_id}/action-plan",
        headers={"X-CSRF-Token": token},
        data={"green": "", "yellow": "  Ring oppfølgingstjenesten ", "red": RED, "reason": "ny avtale"},
    )
    assert r.status_code == 303, r.text
    assert r.headers["location"] == f"/patients/{patient_id}/action-plan?saved=2"
    page = text_of((await client.get(r.headers["location"])).text)
    assert "Versjon 2 av planen er lagret." in page
    assert "ny avtale" in page and "avtalt med fastlegen" in page  # both versions in the history
    newest = await session.scalar(
        select(ActionPlan).where(ActionPlan.patient_id == patient_id).order_by(ActionPlan.version.desc()).limit(1)
    )
    assert (newest.version, newest.actions, newest.changed_by_sub) == (
        2,
        {"yellow": "Ring oppfølgingstjenesten", "red": RED},
        "dr-2",
    )


async def test_a_refused_save_keeps_the_form_and_says_why(client, session, monkeypatch):
    patient_id = await patient_with_plan(session)
    token = await sign_in(client, role="admin", sub="admin-1")
    url, headers = f"/patients/{patient_id}/action-plan", {"X-CSRF-Token": token}
    r = await client.post(url, headers=headers, data={"yellow": "skrevet", "reason": "  "})
    assert r.status_code == 422
    assert "Skriv en begrunnelse" in text_of(r.text) and ">skrevet</textarea>" in r.text
    r = await client.post(url, headers=headers, data={"green": "", "yellow": "", "red": "", "reason": "tom"})
    assert r.status_code == 422 and "Skriv et tiltak for minst ett nivå." in text_of(r.text)
    r = await client.post(url, headers=headers, data={"red": "x" * 501, "reason": "lang"})
    assert r.status_code == 422 and "Tiltaket for rød er for langt" in text_of(r.text)

    async def as_if_none_yet(session, patient_id):
        return None  # what this save saw a moment before another committed

    monkeypatch.setattr(plans_repository, "in_force", as_if_none_yet)
    r = await client.post(url, headers=headers, data={"red": "annet", "reason": "samtidig"})
    assert r.status_code == 409 and "endret av noen andre i samme øyeblikk" in text_of(r.text)
    assert ">annet</textarea>" in r.text
    monkeypatch.undo()
    versions = await session.scalars(select(ActionPlan.version).where(ActionPlan.patient_id == patient_id))
    assert list(versions) == [1]


async def test_a_nurse_reads_the_plan_and_is_refused_a_save(client, session):
    patient_id = await patient_with_plan(session)
    token = await sign_in(client, role="nurse")
    page = (await client.get(f"/patients/{patient_id}/action-plan")).text
    assert "Bare lege eller administrator kan endre planen." in text_of(page)
    assert "<textarea" not in page and RED in page
    r = await client.post(
        f"/patients/{patient_id}/action-plan", headers={"X-CSRF-Token": token}, data={"red": "x", "reason": "y"}
    )
    assert r.status_code == 403


async def test_another_organisation_gets_404_and_a_post_needs_the_csrf_token(client, session):
    patient_id = await patient_with_plan(session)
    token = await sign_in(client, org=ORG_B, role="physician", sub="dr-b")
    assert (await client.get(f"/patients/{patient_id}/action-plan")).status_code == 404
    data = {"red": "x", "reason": "y"}
    r = await client.post(f"/patients/{patient_id}/action-plan", headers={"X-CSRF-Token": token}, data=data)
    assert r.status_code == 404
    await sign_in(client, role="physician", sub="dr-a")
    assert (await client.post(f"/patients/{patient_id}/action-plan", data=data)).status_code == 403
    versions = await session.scalars(select(ActionPlan.version).where(ActionPlan.patient_id == patient_id))
    assert list(versions) == [1]


def test_every_plan_text_is_in_both_languages_and_every_key_used_exists():
    assert set(plan_texts.NB) == set(plan_texts.EN)
    used: set[str] = set()
    for name in ("_action_plan.html", "action_plan.html", "_alert_action.html", "_worklist_rows_body.html"):
        used |= set(re.findall(r't\("([a-z_.0-9-]+)"\)', (TEMPLATES / name).read_text()))
    dynamic = {f"plan.error.{k}" for k in ("reason", "none", "conflict")}
    dynamic |= {f"plan.error.long.{zone}" for zone in ("green", "yellow", "red")}
    assert "alert.action_title" in used and "plan.save" in used
    for key in used | dynamic:
        assert key in TEXTS["nb"] and key in TEXTS["en"], key


@pytest.mark.parametrize("language", ["nb", "en"])
def test_no_plan_text_is_empty(language: str):
    table = plan_texts.NB if language == "nb" else plan_texts.EN
    assert all(value.strip() for value in table.values())
