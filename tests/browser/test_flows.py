"""The staff page's flows beyond the worklist, in chromium against the real API, ingest worker,
MQTT broker and database, on a ward of patients with weeks of readings (tests/browser/ward.py):

- the nurse: a breaching reading turns the row red, she opens the alert, acknowledges it in one
  click and resolves it with a note and an outcome; the patient is no longer red;
- the nurse, again: she assigns an alert to herself, comments on it and snoozes it with a
  reason; it leaves the worklist until she shows snoozed alerts, and she wakes it;
- the patient's course: the chart of the breaching type with its bands and the alert marked,
  redrawn for 7, 30 and 90 days without a reload, and its table view;
- the physician: a change of a patient's thresholds previewed on the past month and saved with a
  reason; a nurse sees the thresholds read-only;
- the administrator: a gateway, an unknown device's rejected reading, enrolling the patient (the
  identity number checked as it is typed), registering and assigning the device, reprocessing.

Each writes the screenshots of its pages to docs/screenshots/ (alert, alert-resolved, alert-work,
course, thresholds-preview, admin-enrol, admin-devices, admin-rejected).
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from playwright.async_api import Browser, Locator, Page, Request, Response, expect

from rpm.norway import OSLO
from tests.browser import harness
from tests.browser.harness import Site, accepted, expect_level, publish_reading, row_of
from tests.browser.ward import add_ward
from tests.fixtures.identity import fresh_identity

NO_LIMIT = "\u2013"  # an en dash where a band has no limit on that side
UUID = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"


async def chart_data(page: Page, chart_id: str) -> dict[str, Any]:
    """The JSON a chart is drawn from (embedded beside it by the server)."""
    data = json.loads(await page.locator(f"#{chart_id}-data").text_content() or "null")
    assert isinstance(data, dict), data
    return data


async def expect_drawn(chart: Locator) -> None:
    """uPlot has drawn the chart: one canvas, sized, with something painted on it."""
    await expect(chart).to_have_attribute("data-drawn", "1")
    canvas = chart.locator("canvas")
    await expect(canvas).to_have_count(1)
    painted = await canvas.evaluate(
        """c => {
            const pixels = c.getContext("2d").getImageData(0, 0, c.width, c.height).data;
            let n = 0;
            for (let i = 3; i < pixels.length; i += 4) if (pixels[i] > 0) n++;
            return {width: c.width, height: c.height, painted: n};
        }"""
    )
    assert painted["width"] > 200 and painted["height"] > 100, painted
    assert painted["painted"] > 1_000, f"the chart's canvas is blank: {painted}"


def charts_of(patient_id: uuid.UUID, days: int) -> Callable[[Response], bool]:
    """The answer to the request for the patient's charts over `days` days."""
    wanted = f"/patients/{patient_id}/charts?days={days}"
    return lambda response: wanted in response.url


def near(seconds: float, moment: datetime) -> bool:
    return abs(seconds - moment.timestamp()) < 1


# -- the nurse -----------------------------------------------------------------------------


async def test_the_nurse_opens_the_red_alert_acknowledges_it_and_resolves_it_with_a_note(
    page: Page, organisation: str, committed, worker, gateway, screenshot
):
    """Done means, continued: the row turned red; the alert opens from it, is acknowledged in
    one click and resolved with a note and an outcome without the page reloading; back on the
    worklist the patient is no longer red."""
    ward = await add_ward(committed, organisation)
    kari = ward.kari
    await harness.sign_in(page, organisation, "nurse", sub="nurse-1", name="Nina Sykepleier")
    await expect(page.locator("#rows tr[data-patient]")).to_have_count(len(ward.patients))
    await expect_level(page, kari.id, "yellow", "Gul")  # 85 % three hours ago
    await expect_level(page, ward.ola.id, "yellow", "Gul")
    await expect_level(page, ward.bjorg.id, "yellow", "Gul")
    await expect_level(page, ward.astrid.id, "missing", "Mangler måling")
    for green in (ward.ingrid, ward.per, ward.magnus):
        await expect_level(page, green.id, "green", "Grønn")
    await harness.stream_opened(page)
    await harness.mark_no_reload(page)

    publish_reading(gateway, kari, "spo2", 83)
    await expect_level(page, kari.id, "red", "Rød", timeout=2_000)
    await harness.assert_no_reload(page)
    order = await page.locator("#rows tr").evaluate_all("rows => rows.map(r => r.dataset.patient)")
    assert order[0] == str(kari.id), "red comes first"
    await screenshot(page, "worklist")  # the ward: the README's picture of the start page

    # The alert, opened from the row.
    await row_of(page, kari.id).get_by_role("link", name=re.compile("Åpne varselet")).click()
    await page.wait_for_url(re.compile(rf"/alerts/{UUID}$"))
    await expect(page.get_by_role("heading", level=1)).to_have_text("Oksygenmetning for lav")
    title = page.locator("#status-title")
    status = page.locator("#alert-status")
    history = page.locator("#alert-history tbody tr")
    await expect(title).to_have_text("Status: Åpent, ikke kvittert")
    await expect(status.locator(".level").first).to_contain_text("Rød")
    await expect(page.locator(".alert-patient")).to_contain_text("Kari Nordmann")
    evidence = page.locator("table.evidence tbody tr")
    await expect(evidence).to_have_count(2)  # 83 % just now, newest first, then 85 %
    await expect(evidence.first).to_contain_text("83 %")
    await expect(evidence.last).to_contain_text("85 %")
    await expect(history).to_have_count(2)
    await expect(history.nth(0)).to_contain_text("Åpnet")
    await expect(history.nth(1)).to_contain_text("Hevet fra gul til rød")
    await harness.mark_no_reload(page)

    # Acknowledged in one click: the status and the history change in place.
    await page.get_by_role("button", name="Kvitter").click()
    await expect(title).to_have_text("Status: Kvittert")
    await expect(page.locator("#alert-message")).to_have_text("Varselet er kvittert.")
    await expect(status).to_contain_text("Kvittert av")
    await expect(status).to_contain_text("Nina Sykepleier")
    await expect(history).to_have_count(3)
    await expect(history.last).to_contain_text("Kvittert")
    await expect(history.last).to_contain_text("Nina Sykepleier")
    await expect(page.get_by_role("button", name="Kvitter")).to_have_count(0)
    await expect(title).to_be_focused()  # where the page changed
    await harness.assert_no_reload(page)
    await screenshot(page, "alert")

    # Resolving needs a note: an empty one the browser holds back (nothing is sent), one of
    # blanks the server refuses, with its message next to the field.
    posts: list[str] = []

    def note_post(request: Request) -> None:
        if request.method == "POST" and request.url.endswith("/resolve"):
            posts.append(request.url)

    page.on("request", note_post)
    note = page.get_by_label("Notat", exact=True)
    await page.get_by_label("Utfall").select_option("contacted-patient")
    resolve = page.get_by_role("button", name="Løs varselet")
    await resolve.click()
    assert await note.evaluate("field => field.validity.valueMissing")
    await note.fill("   ")
    async with page.expect_response(lambda r: r.url.endswith("/resolve")) as refused:
        await resolve.click()
    assert (await refused.value).status == 422
    assert len(posts) == 1, f"the empty note was sent: {posts}"
    error = page.locator("#note-error")
    await expect(error).to_have_text("Skriv et notat om hva som ble gjort.")
    await expect(note).to_have_attribute("aria-invalid", "true")
    await expect(note).to_have_attribute("aria-describedby", re.compile(r"\bnote-error\b"))
    await expect(note).to_be_focused()
    await expect(page.locator("#alert-message")).to_have_text("Varselet ble ikke løst: se feltene som mangler.")
    await expect(page.get_by_label("Utfall")).to_have_value("contacted-patient")  # kept
    await expect(title).to_have_text("Status: Kvittert")

    text = "Ringte Kari. SpO2 88 % etter hvile og inhalasjon. Avtalt ny måling i kveld."
    await note.fill(text)
    await resolve.click()
    await expect(title).to_have_text("Status: Løst")
    await expect(page.locator("#alert-message")).to_have_text("Varselet er løst.")
    resolution = page.locator(".resolution")
    await expect(resolution).to_contain_text(text)
    await expect(resolution).to_contain_text("Kontaktet pasienten")
    await expect(resolution).to_contain_text("Nina Sykepleier")
    await expect(history).to_have_count(4)
    await expect(history.last).to_contain_text("Løst")
    await expect(history.last).to_contain_text("Kontaktet pasienten")
    await expect(history.last.locator(".note")).to_have_text(text)
    await expect(page.get_by_role("button", name="Løs varselet")).to_have_count(0)
    await harness.assert_no_reload(page)
    await screenshot(page, "alert-resolved")

    await page.get_by_role("navigation", name="Du er her").get_by_role("link", name="Arbeidsliste").click()
    await page.wait_for_url(lambda url: url.endswith("/"))
    await expect_level(page, kari.id, "green", "Grønn")
    await expect(row_of(page, kari.id).get_by_role("link", name=re.compile("Åpne varselet"))).to_have_count(0)


async def test_the_nurse_takes_the_alert_comments_snoozes_it_off_the_worklist_and_wakes_it(
    page: Page, organisation: str, committed, screenshot
):
    """Issue 11: Ola's weight gain is hers to follow up. She assigns the alert to herself, writes
    what she did, and snoozes it for four hours with a reason, all without a reload; back on the
    worklist the alert has left his row (green, with when it wakes) until she asks to see
    snoozed alerts; she wakes it and it is back, still hers."""
    ward = await add_ward(committed, organisation)
    ola = ward.ola
    await harness.sign_in(page, organisation, "nurse", sub="nurse-1", name="Nina Sykepleier")
    await expect_level(page, ola.id, "yellow", "Gul")
    await row_of(page, ola.id).get_by_role("link", name=re.compile("Åpne varselet")).click()
    await page.wait_for_url(re.compile(rf"/alerts/{UUID}$"))
    # What to do comes first, then the status, then who has the alert and whether it waits.
    parts = await page.locator("main section.card").evaluate_all("parts => parts.map(p => p.id)")
    assert parts.index("alert-action") < parts.index("alert-status") < parts.index("alert-work"), parts
    work = page.locator("#alert-work")
    message = page.locator("#alert-message")
    await expect(work.locator(".assignee")).to_have_text("Ingen")
    await harness.mark_no_reload(page)

    await page.get_by_role("button", name="Tildel meg").click()
    await expect(message).to_have_text("Varselet er tildelt.")
    await expect(work.locator(".assignee")).to_contain_text("Nina Sykepleier (deg)")
    await expect(page.get_by_role("button", name="Tildel meg")).to_have_count(0)
    await expect(page.locator("#work-title")).to_be_focused()  # where the page changed

    note = "Ringte Ola: ingen tung pust, bena litt hovne. Tar ekstra vanndrivende i dag etter avtale med fastlegen."
    await page.get_by_label("Ny kommentar").fill(note)
    await page.get_by_role("button", name="Lagre kommentaren").click()
    await expect(message).to_have_text("Kommentaren er lagret.")
    comments = page.locator("#alert-comments ol.comments li")
    await expect(comments).to_have_count(1)
    await expect(comments.first).to_contain_text("Nina Sykepleier")
    await expect(comments.first.locator(".note")).to_have_text(note)
    await expect(page.get_by_label("Ny kommentar")).to_have_value("")

    # A snooze needs a reason: the browser holds an empty one back.
    snooze = page.get_by_role("button", name="Utsett varselet")
    reason = page.get_by_label("Grunn", exact=True)
    await page.get_by_label("4 timer", exact=True).check()
    await snooze.click()
    assert await reason.evaluate("field => field.validity.valueMissing")
    await reason.fill("Venter på ny veiing i morgen tidlig, etter vanndrivende.")
    await snooze.click()
    await expect(message).to_have_text("Varselet er utsatt.")
    await expect(page.locator("#status-title")).to_have_text("Status: Kvittert")  # snoozing acknowledges
    snoozed = work.locator("dl.snoozed")
    await expect(snoozed).to_contain_text("Utsatt til")
    await expect(snoozed).to_contain_text("Nina Sykepleier")
    await expect(snoozed).to_contain_text("Venter på ny veiing i morgen tidlig")
    await expect(page.get_by_role("button", name="Vekk nå")).to_be_visible()
    history = page.locator("#alert-history tbody tr")
    await expect(history.locator("th")).to_contain_text(["Åpnet", "Tildelt", "Kommentert", "Kvittert", "Utsatt"])
    await harness.assert_no_reload(page)
    await screenshot(page, "alert-work")

    # Snoozed, the alert leaves the worklist: Ola's row is green and says when it wakes.
    await page.get_by_role("navigation", name="Du er her").get_by_role("link", name="Arbeidsliste").click()
    await page.wait_for_url(lambda url: url.endswith("/"))
    row = row_of(page, ola.id)
    await expect_level(page, ola.id, "green", "Grønn")
    await expect(row.get_by_role("link", name=re.compile("Åpne varselet"))).to_have_count(0)
    await expect(row.locator(".worklist-snoozed")).to_have_text(
        re.compile(r"Utsatt varsel til (\d\d\.\d\d\. )?\d\d:\d\d")
    )
    # Asked for, snoozed alerts are shown; "mine" leaves only Ola.
    await page.get_by_label("Utsatte varsler").select_option("include")
    await page.get_by_label("Bare varsler tildelt meg").check()
    await page.get_by_role("button", name="Filtrer").click()
    await page.wait_for_url(re.compile(r"\?.*snoozed=include.*&mine=1"))
    await expect(page.locator("#rows tr[data-patient]")).to_have_count(1)
    await expect_level(page, ola.id, "yellow", "Gul")
    await expect(row.locator(".worklist-assignee")).to_have_text("Tildelt deg")

    await row.get_by_role("link", name=re.compile("Åpne varselet")).click()
    await page.wait_for_url(re.compile(rf"/alerts/{UUID}$"))
    await page.get_by_role("button", name="Vekk nå").click()
    await expect(message).to_have_text("Varselet er vekket og vises igjen i arbeidslisten.")
    await expect(work).to_contain_text("Ikke utsatt.")
    await expect(history.last).to_contain_text("Vekket")

    await page.get_by_role("navigation", name="Du er her").get_by_role("link", name="Arbeidsliste").click()
    await page.wait_for_url(lambda url: url.endswith("/"))
    await expect_level(page, ola.id, "yellow", "Gul")
    await expect(row.locator(".worklist-snoozed")).to_have_count(0)
    await expect(row.locator(".worklist-assignee")).to_have_text("Tildelt deg")


# -- the patient's course ------------------------------------------------------------------


async def test_the_course_charts_the_breach_with_its_bands_and_redraws_for_another_range(
    page: Page, organisation: str, committed, worker, gateway, screenshot
):
    ward = await add_ward(committed, organisation)
    kari = ward.kari
    taken = datetime.now(UTC).replace(microsecond=0)
    await accepted(gateway, "hub-1", publish_reading(gateway, kari, "spo2", 83, at=taken))
    await harness.sign_in(page, organisation, "nurse", name="Nina Sykepleier")
    await expect_level(page, kari.id, "red", "Rød")

    await row_of(page, kari.id).get_by_role("link", name="Kari Nordmann").click()
    await page.wait_for_url(f"**/patients/{kari.id}")
    await expect(page.get_by_role("heading", level=1)).to_have_text("Kari Nordmann")
    latest = page.locator("table.latest tbody tr", has_text="Oksygenmetning")
    await expect(latest).to_contain_text("83 %")
    await expect(latest).to_contain_text("Rød")
    await expect(page.locator("ul.alerts li")).to_have_count(1)
    await expect(page.locator("ul.alerts li")).to_contain_text("Oksygenmetning for lav")

    chart = page.locator("#chart-spo2")
    await expect_drawn(chart)
    data = await chart_data(page, "chart-spo2")
    assert data["bucket"] == "raw"
    [spo2] = data["series"]
    points = dict(zip(data["x"], spo2["y"], strict=True))
    assert any(near(x, taken) and y == 83 for x, y in points.items()), "the breaching reading is not on the chart"
    assert len(points) > 50, "a month of readings twice a day"
    assert spo2["bands"], "no band periods behind the line"
    assert spo2["bands"][-1]["yellow"] == {"low": 86} and spo2["bands"][-1]["red"] == {"low": 84}  # KOLS
    assert any(near(m["x"], taken) and m["y"] == 83 and m["level"] == "red" for m in data["marks"]), data["marks"]
    assert {m["y"] for m in data["marks"]} >= {85, 83}, "the month's earlier alerts are marked too"
    await expect(chart).to_have_attribute("aria-label", re.compile(r"Oksygenmetning, siste 30 dager"))
    await expect_drawn(page.locator("#chart-heart-rate"))

    await harness.mark_no_reload(page)
    for days in (7, 30, 90):
        await chart.locator("canvas").evaluate("c => { window.__oldCanvas = c; }")
        async with page.expect_response(charts_of(kari.id, days)):
            await page.get_by_role("button", name=f"{days} dager").click()
        await expect(page.get_by_role("button", name=f"{days} dager")).to_have_attribute("aria-pressed", "true")
        await expect(page).to_have_url(re.compile(rf"/patients/{kari.id}\?days={days}$"))
        await expect(page.locator("#range-status")).to_have_text(f"Viser de siste {days} dagene.")
        await expect_drawn(chart)
        assert await chart.locator("canvas").evaluate("c => c !== window.__oldCanvas"), "the chart was not redrawn"
        data = await chart_data(page, "chart-spo2")
        assert data["bucket"] == ("raw" if days <= 30 else "1d")
        # The last `days` days (a long range from midnight, in whole days; an hour for summer time).
        assert (days - 1) * 86400 - 3600 <= data["to"] - data["from"] <= days * 86400 + 3600
        assert any(m["y"] == 83 and m["level"] == "red" for m in data["marks"]), data["marks"]
        await expect(chart).to_have_attribute("aria-label", re.compile(rf"siste {days} dager"))
        if days == 30:
            await screenshot(page, "course")
            # The table view lists the same readings.
            figure = page.locator("figure", has=chart)
            await figure.locator("details.table-view > summary").click()
            rows = figure.locator("details.table-view tbody tr")
            await expect(rows).to_have_count(len(data["x"]))
            breach = rows.filter(has=page.locator(f"time[datetime='{taken.astimezone(OSLO).isoformat()}']"))
            await expect(breach).to_have_count(1)
            await expect(breach).to_contain_text("83")
            await expect(breach).to_contain_text("Rød")
            await expect(breach.get_by_role("link", name="Varsel")).to_have_attribute("href", re.compile("/alerts/"))
        if days == 90:
            assert "min" in data["series"][0] and "max" in data["series"][0]  # a day's lowest and highest
            assert min(v for v in data["series"][0]["min"] if v is not None) == 83
    await harness.assert_no_reload(page)


# -- the physician's threshold change ------------------------------------------------------


async def test_the_physician_previews_a_threshold_change_and_saves_it_and_a_nurse_reads_it(
    browser: Browser, page: Page, site: Site, organisation: str, committed, screenshot
):
    """Kari's SpO2 runs at 85-91 % and alerts often with the KOLS template (yellow below 86, red
    below 84): her physician lowers the limits to 85 and 82 after seeing the last month."""
    ward = await add_ward(committed, organisation)
    kari = ward.kari
    await harness.sign_in(
        page, organisation, "physician", sub="physician-1", name="Henrik Aas", next=f"/patients/{kari.id}"
    )
    await page.get_by_role("link", name="Grenseverdier").click()
    await page.wait_for_url(f"**/patients/{kari.id}/thresholds")
    await expect(page.get_by_role("heading", level=1)).to_have_text("Grenseverdier: Kari Nordmann")
    yellow_low = page.locator("#f-59408-5-yellow-low")
    red_low = page.locator("#f-59408-5-red-low")
    await expect(yellow_low).to_have_value("86")
    await expect(red_low).to_have_value("84")
    await expect(page.locator("#thresholds-form tbody tr", has_text="Oksygenmetning")).to_contain_text(
        "Mal: Generell (NEWS2), KOLS"
    )
    await expect_drawn(page.locator("#preview-spo2"))

    await yellow_low.fill("85")
    await red_low.fill("82")
    await harness.mark_no_reload(page)
    async with page.expect_response(f"**/patients/{kari.id}/thresholds/preview") as previewed:
        await page.get_by_role("button", name="Forhåndsvis").click()
    assert (await previewed.value).status == 200
    counts = page.locator("#preview .counts")
    await expect(counts).to_be_visible()
    # Under the proposal the 85 % readings are within the band and the 83 % dip only yellow.
    await expect(counts).to_contain_text(re.compile(r"Med de nye grensene\s+▲ Rød 0\s+● Gul 1"))
    await expect(counts).to_contain_text(re.compile(r"Med gjeldende grenser\s+▲ Rød 1\s+● Gul 3"))
    await expect(counts).to_contain_text("Ingenting er lagret.")
    await expect(page.locator("#preview-status")).to_contain_text("Med de nye grensene: rød 0, gul 1.")
    chart = page.locator("#preview-spo2")
    await expect_drawn(chart)
    data = await chart_data(page, "preview-spo2")
    [spo2] = data["series"]
    assert spo2["bands"][0]["yellow"] == {"low": 85} and spo2["bands"][0]["red"] == {"low": 82}  # proposed
    assert spo2["compare"][0]["yellow"] == {"low": 86} and spo2["compare"][0]["red"] == {"low": 84}  # in force
    assert [(m["y"], m["level"]) for m in data["marks"]] == [(83, "yellow")], data["marks"]
    await expect(yellow_low).to_have_value("85")  # the form keeps the proposal
    await harness.assert_no_reload(page)
    await screenshot(page, "thresholds-preview")

    reason = "Stabil KOLS med habituell SpO2 85-88 %. Færre varsler uten klinisk betydning."
    await page.get_by_label(re.compile("^Begrunnelse")).fill(reason)
    await page.get_by_role("button", name="Lagre nye grenser").click()
    await page.wait_for_url(f"**/patients/{kari.id}/thresholds?saved=1")
    saved_at = datetime.now(UTC)
    await expect(page.locator("p.saved")).to_have_text(
        "Grensene er lagret som versjon 1. De gjelder for målinger som kommer fra nå."
    )
    versions = page.locator("section.history tbody tr")
    await expect(versions).to_have_count(1)
    version = versions.first
    await expect(version.locator("th")).to_have_text("1")
    await expect(version).to_contain_text("Henrik Aas")
    await expect(version).to_contain_text(reason)
    await expect(version).to_contain_text(re.compile(r"Oksygenmetning:\s+malen → Gul ≥ 85, Rød ≥ 82"))
    when = datetime.fromisoformat(await version.locator("time").get_attribute("datetime") or "")
    assert timedelta(0) <= saved_at - when < timedelta(minutes=1), when
    await expect(version.locator("time")).to_have_text(when.astimezone(OSLO).strftime("%d.%m.%Y %H:%M"))
    await expect(yellow_low).to_have_value("85")
    source = page.locator("#thresholds-form tbody tr", has_text="Oksygenmetning").locator("td.source")
    await expect(source).to_contain_text("Individuell")
    await expect(source).to_contain_text("versjon 1: Henrik Aas")
    await expect(source).to_contain_text(reason)

    # A nurse sees the same thresholds, and cannot change them.
    nurse = await harness.open_tab(browser, site.url)
    try:
        await harness.sign_in(
            nurse.page, organisation, "nurse", name="Nina Sykepleier", next=f"/patients/{kari.id}/thresholds"
        )
        await expect(nurse.page.get_by_role("heading", level=1)).to_have_text("Grenseverdier: Kari Nordmann")
        await expect(nurse.page.get_by_text("Bare lege eller administrator kan endre grensene.")).to_be_visible()
        await expect(nurse.page.get_by_role("button", name="Lagre nye grenser")).to_have_count(0)
        await expect(nurse.page.get_by_role("button", name="Forhåndsvis")).to_have_count(0)
        await expect(nurse.page.locator("#thresholds-form input")).to_have_count(0)
        row = nurse.page.locator("#thresholds-form tbody tr", has_text="Oksygenmetning")
        await expect(row.locator("td.number")).to_have_text(["85", NO_LIMIT, "82", NO_LIMIT])
        await expect(nurse.page.locator("section.history tbody tr")).to_contain_text(reason)
    finally:
        await nurse.context.close()
    assert not nurse.errors, nurse.errors


# -- the administrator ---------------------------------------------------------------------


async def test_the_admin_enrols_a_patient_registers_and_assigns_the_device_and_reprocesses_its_reading(
    page: Page, organisation: str, committed, worker, gateway, screenshot
):
    """A new patient's pulse oximeter sends before anyone registered it: its reading is kept as
    rejected (the gateway is the organisation's). The admin enrols the patient, the identity
    number checked as it is typed, registers the device, assigns it, and reprocesses."""
    ward = await add_ward(committed, organisation)
    hub = f"hjem-{organisation[-6:]}"
    serial = f"NONIN-3230-{uuid.uuid4().int % 10**8:08d}"
    await harness.sign_in(page, organisation, "admin", sub="admin-1", name="Siri Dahl")
    await page.get_by_role("link", name="Administrasjon").click()
    await expect(page.get_by_role("heading", level=1)).to_have_text("Administrasjon")

    # The gateway is the organisation's; the unknown device's reading comes through it.
    await page.get_by_role("link", name="Gatewayer").first.click()
    await page.get_by_label("Gateway-id").fill(hub)
    await page.get_by_label("Navn", exact=True).fill("Solveig Haugens gateway")
    await page.get_by_role("button", name="Registrer").click()
    await expect(page.get_by_role("status")).to_contain_text(f"Gatewayen er registrert: {hub}")
    taken = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=20)
    reading_id = f"r-{uuid.uuid4().hex[:12]}"
    gateway.publish(
        hub,
        {
            "sent_at": datetime.now(UTC).isoformat(),
            "readings": [
                {
                    "id": reading_id,
                    "device": {"serial": serial},
                    "type": "spo2",
                    "time": taken.isoformat(),
                    "unit": "%",
                    "value": 91,
                }
            ],
        },
    )
    result = await harness.answered(gateway, hub, reading_id)
    assert (result["status"], result["reason"]) == ("rejected", "unknown_device"), result
    # And, as on any ward, a reading no oximeter could have taken.
    implausible = publish_reading(gateway, ward.kari, "spo2", 130)
    assert (await harness.answered(gateway, "hub-1", implausible))["reason"] == "implausible_value"

    await page.get_by_role("navigation", name="Administrasjon").get_by_role("link", name="Avviste målinger").click()
    await expect(page.get_by_role("heading", level=1)).to_have_text("Avviste målinger")
    rejected = page.locator("#rejected-rows tr", has_text=serial)
    await expect(rejected).to_contain_text("Ukjent enhet")
    await expect(rejected).to_contain_text(hub)
    await expect(rejected.get_by_role("button", name=f"Behandle på nytt {serial}")).to_be_visible()
    await expect(page.locator("#rejected-rows tr").first).to_contain_text("Usannsynlig verdi")  # newest first
    await rejected.locator("summary").click()
    await expect(rejected.locator("pre")).to_contain_text(f'"device":{{"serial":"{serial}"}}')
    await screenshot(page, "admin-rejected")

    # Enrolment: the identity number is checked as it is typed.
    await page.get_by_role("navigation", name="Administrasjon").get_by_role("link", name="Skriv inn pasient").click()
    await expect(page.get_by_role("heading", level=1)).to_have_text("Skriv inn pasient")
    identifier = page.get_by_label("Fødselsnummer eller D-nummer")
    check = page.locator("#identifier-check")
    await identifier.press_sequentially("12345678901")
    await expect(check).to_have_text(re.compile(r"Ikke gyldig: .+"))
    number, born = fresh_identity()
    await identifier.fill("")
    await identifier.press_sequentially(number)
    await expect(check).to_have_text(f"✓ Gyldig fødselsnummer. Født {born.strftime('%d.%m.%Y')}.")
    await expect(page.get_by_label("Fødselsdato")).to_have_value(born.isoformat())
    await page.get_by_label("Navn", exact=True).fill("Solveig Haugen")
    await page.get_by_label("KOLS").check()
    await page.get_by_label("Hjertesvikt").check()
    await page.get_by_label("Oksygenmetning", exact=True).check()
    await page.get_by_label("Antall timer mellom målinger av oksygenmetning").fill("12")
    await page.get_by_label("Vekt", exact=True).check()
    await screenshot(page, "admin-enrol")
    await page.get_by_role("button", name="Skriv inn pasienten").click()
    await page.wait_for_url(re.compile(rf"/patients/{UUID}$"))
    patient_id = page.url.rsplit("/", 1)[1]
    await expect(page.get_by_role("heading", level=1)).to_have_text("Solveig Haugen")
    await expect(page.locator(".patient-head")).to_contain_text(born.strftime("%d.%m.%Y"))
    await expect(page.locator(".patient-head")).to_contain_text("KOLS, Hjertesvikt")
    plan = page.locator("table.plan tbody tr")
    await expect(plan).to_have_count(2)
    await expect(plan.filter(has_text="Oksygenmetning")).to_contain_text("hver 12 t")
    await expect(page.locator(".latest-card")).to_contain_text("Ingen målinger ennå.")

    # The device: from the rejected reading to the devices page, registered and assigned.
    await page.goto("/admin/rejected")
    await rejected.get_by_role("link", name=f"Registrer enheten {serial}").click()
    await expect(page.get_by_role("heading", level=1)).to_have_text("Enheter")
    register = page.locator("form[action='/admin/devices']")
    await expect(register.get_by_label("Serienummer")).to_have_value(serial)
    await register.get_by_label("Måletype").select_option("spo2")
    await register.get_by_label(re.compile("^Produsent")).fill("Nonin")
    await register.get_by_label(re.compile("^Modell")).fill("3230 Bluetooth")
    await register.get_by_role("button", name="Registrer").click()
    await expect(page.locator("p.notice")).to_have_text(f"✓ Enheten er registrert: {serial}")
    assign = page.locator("form[action='/admin/devices/assignment']")
    await expect(assign.get_by_label("Serienummer")).to_have_value(serial)
    await page.get_by_label("Finn pasient").press_sequentially("Solveig")
    choice = assign.get_by_label("Pasient", exact=True)
    await expect(choice).to_have_value(patient_id)
    await expect(choice.locator("option")).to_have_text([f"Solveig Haugen · {number} · {born.strftime('%d.%m.%Y')}"])
    # Handed out an hour before its first reading.
    start = (taken - timedelta(hours=1)).astimezone(OSLO).strftime("%Y-%m-%dT%H:%M")
    await assign.get_by_label("Fra (norsk tid)").fill(start)
    await assign.get_by_role("button", name="Tildel").click()
    await expect(page.locator("p.notice")).to_have_text(f"✓ Enheten er tildelt: {serial}")
    device = page.locator("#device-rows tr", has_text=serial)
    await expect(device).to_contain_text("Oksygenmetning")
    await expect(device).to_contain_text("Nonin 3230 Bluetooth")
    await expect(device.get_by_role("link", name="Solveig Haugen")).to_have_attribute("href", f"/patients/{patient_id}")
    await expect(page.locator("#device-rows tr")).to_have_count(12)  # the ward's eleven and this one
    await expect(page.locator("#device-rows tr", has_text="Kari Nordmann")).to_have_count(2)
    await screenshot(page, "admin-devices")

    # Reprocessed, the reading is stored as the patient's.
    await page.get_by_role("navigation", name="Administrasjon").get_by_role("link", name="Avviste målinger").click()
    await rejected.get_by_role("button", name=f"Behandle på nytt {serial}").click()
    await expect(page.get_by_role("status")).to_contain_text(
        f"Behandlet på nytt for {serial}: 1 lagret, 0 fantes fra før, 0 fortsatt avvist."
    )
    await expect(rejected).to_have_count(0)
    await page.goto(f"/patients/{patient_id}")
    latest = page.locator("table.latest tbody tr", has_text="Oksygenmetning")
    await expect(latest).to_contain_text("91 %")
    await expect(latest).to_contain_text("Grønn")
