"""The follow-up of issue 11 in chromium, against the real worker, broker, API and database: a
morning round whose NEWS2 is 7 turns into a red alert that tells the nurse what the patient's
action plan says to do; the course shows the score and what it left out; a physician accepts
the bands proposed at the end of the start period. Writes the screenshots alert-news2,
course-news2 and thresholds-proposal to docs/screenshots/."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from playwright.async_api import Page, expect

from rpm.action_plans.models import ActionPlan
from rpm.rules.models import ThresholdProposal
from tests.browser import harness
from tests.browser.harness import accepted, add_patient, publish_reading, row_of

RED_ACTION = "Ring legevakten på 116 117 og si at NEWS2 er 7 eller mer."


async def test_a_news2_of_7_brings_the_red_action_and_the_course_shows_the_score(
    page: Page, organisation: str, committed, worker, gateway, screenshot
):
    eva = await add_patient(
        committed,
        organisation,
        "Eva Hansen",
        devices=("respiratory-rate", "spo2", "blood-pressure", "body-temperature"),
    )
    async with committed() as session, session.begin():
        session.add(
            ActionPlan(
                patient_id=eva.id,
                version=1,
                actions={"yellow": "Ring oppfølgingstjenesten samme dag.", "red": RED_ACTION},
                reason="Avtalt med fastlegen",
                changed_by_sub="dr-1",
                changed_by_name="Fastlege Lund",
                changed_by_org=organisation,
            )
        )
    start = datetime.now(UTC) - timedelta(minutes=10)
    for minutes, (kind, value) in enumerate(
        [
            ("respiratory-rate", 24),
            ("spo2", 95),
            ("blood-pressure", {"systolic": 105, "diastolic": 70, "pulse": 115}),
            ("body-temperature", 38.5),
        ]
    ):
        await accepted(
            gateway, "hub-1", publish_reading(gateway, eva, kind, value, at=start + timedelta(minutes=minutes))
        )

    await harness.sign_in(page, organisation, "nurse", sub="nurse-1", name="Nina Sykepleier")
    await expect(row_of(page, eva.id)).to_contain_text(RED_ACTION)
    await page.goto(f"/patients/{eva.id}")
    latest = page.locator("table.latest tbody tr", has_text="NEWS2")
    await expect(latest).to_contain_text("7")
    await expect(latest).to_contain_text("ikke skåret: luft eller oksygen, bevissthet")
    await screenshot(page, "course-news2")

    await page.get_by_role("link", name="NEWS2-skår").click()
    await page.wait_for_url(re.compile(r"/alerts/[0-9a-f-]+$"))
    await expect(page.get_by_role("heading", level=1)).to_have_text("NEWS2-skår")
    await expect(page.locator("body")).to_contain_text(RED_ACTION)
    await screenshot(page, "alert-news2")


async def test_the_physician_accepts_the_start_period_proposal(page: Page, organisation: str, committed, screenshot):
    kari = await add_patient(committed, organisation, "Kari Start", devices=("spo2",))
    now = datetime.now(UTC)
    async with committed() as session, session.begin():
        session.add(
            ThresholdProposal(
                patient_id=kari.id,
                proposed_at=now,
                period_from=now - timedelta(days=14),
                period_to=now,
                bands={"59408-5": {"yellow": {"low": 93.0}, "red": {"low": 92.0}}},
                basis={"59408-5": {"readings": 14, "p5": 94.0, "p95": 97.0, "margin": 1.0}},
                status="proposed",
            )
        )
    await harness.sign_in(page, organisation, "physician", sub="dr-1", name="Henrik Aas")
    await page.goto(f"/patients/{kari.id}/thresholds")
    proposal = page.locator("section.proposal")
    await expect(proposal).to_contain_text("Venter på beslutning")
    await expect(proposal).to_contain_text("14 målinger")
    await screenshot(page, "thresholds-proposal")
    await proposal.get_by_label("Begrunnelse for beslutningen").fill("Avtalt med fastlegen")
    await proposal.get_by_role("button", name="Godta forslaget").click()
    await page.wait_for_url(re.compile(r"decided=accepted$"))
    await expect(page.locator("section.proposal")).to_contain_text("Godtatt av Henrik Aas")
