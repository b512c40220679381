"""The thresholds page over ASGI: the bands in force with their source (templates, or an override
with who, when and why), the version history with what each version changed; a preview of a
proposal by htmx (counts, with those of the thresholds in force, and the readings that would
have alerted marked on the charts with the proposed bands) that stores nothing; saving with a
required reason as a new version; a nurse sees the page read-only and is refused a save (403);
errors (red inside yellow, not a number, no reason) shown with the form, not as an error page;
another organisation 404; CSRF; weight gain for heart failure; back to the template; audit as
the API's.
"""

from __future__ import annotations

import html
import json
import re
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from rpm.alerts.models import Alert
from rpm.audit.models import AuditRecord
from rpm.rules import repository as rules_repository
from rpm.rules.models import ThresholdOverride
from tests.api.helpers import assign, enrol, ingest, message, reading, register
from tests.conftest import ORG_A, ORG_B, Tokens

SPO2, WEIGHT = "59408-5", "29463-7"
UNITS = {"spo2": "%", "body-weight": "kg"}
HOUR, DAY = timedelta(hours=1), timedelta(days=1)
NONE = "\u2013"  # no limit


async def sign_in(
    client: httpx.AsyncClient, role: str = "physician", org: str = ORG_A, sub: str = "dr-1", name: str = "Dr. Lege"
) -> str:
    """Signed in; the CSRF token of the session."""
    r = await client.post("/login/development", data={"organisation": org, "roles": [role], "sub": sub, "name": name})
    assert r.status_code == 303, r.text
    page = (await client.get("/")).text
    found = re.search(r'"X-CSRF-Token": "([^"]+)"', page)
    assert found
    return found.group(1)


def htmx(token: str) -> dict[str, str]:
    return {"HX-Request": "true", "X-CSRF-Token": token}


def now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


async def patient_with(
    client: httpx.AsyncClient, tokens: Tokens, session: AsyncSession, kind: str, conditions: list[str], taken: list[Any]
) -> str:
    admin = tokens(ORG_A, "admin")
    patient = (await enrol(client, admin, conditions=conditions, name="Ola Nordmann"))["id"]
    device = await register(client, admin, type=kind)
    await assign(client, admin, device["serial"], patient, "2025-01-01T00:00:00+01:00")
    for at, value in taken:
        body = reading(device["serial"], at.isoformat(), type=kind, value=value, unit=UNITS[kind])
        [outcome] = await ingest(session, message([body]))
        assert [r["status"] for r in outcome.results] == ["accepted"], outcome.results
    return str(patient)


def spo2_fields(yellow_low: str = "", red_low: str = "", **more: str) -> dict[str, str]:
    return {
        f"{SPO2}.yellow.low": yellow_low,
        f"{SPO2}.yellow.high": "",
        f"{SPO2}.red.low": red_low,
        f"{SPO2}.red.high": "",
        **more,
    }


def chart_data(page: str, reading_type: str) -> dict[str, Any]:
    found = re.search(rf'<script type="application/json" id="preview-{reading_type}-data">(.*?)</script>', page, re.S)
    assert found, f"no chart data for {reading_type}"
    return dict(json.loads(found.group(1)))


def text_of(fragment: str) -> str:
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", fragment)).split())


async def versions(session: AsyncSession, patient: str) -> list[ThresholdOverride]:
    rows = await session.scalars(
        select(ThresholdOverride)
        .where(ThresholdOverride.patient_id == uuid.UUID(patient))
        .order_by(ThresholdOverride.version)
        .execution_options(populate_existing=True)
    )
    return list(rows)


async def test_sources_and_history_read_only_for_a_nurse(client, tokens, session):
    patient = await patient_with(client, tokens, session, "spo2", ["copd"], [(now() - HOUR, 90)])
    for reason, yellow, red in (("habitual 88-92", 88, 85), ("after discharge", 87, 84)):
        r = await client.put(
            f"/api/v1/patients/{patient}/thresholds",
            headers=tokens(ORG_A, "physician", sub="dr-9", hpr="7654321"),
            json={"reason": reason, "bands": {SPO2: {"yellow": {"low": yellow}, "red": {"low": red}}}},
        )
        assert r.status_code == 200, r.text
    await sign_in(client, "nurse", sub="nurse-1")
    r = await client.get(f"/patients/{patient}/thresholds")
    assert r.status_code == 200, r.text
    page = r.text
    # Read-only: no form, no save button, and the reason why.
    assert 'id="thresholds-form"' in page and '<form id="thresholds-form"' not in page
    assert "Lagre nye grenser" not in page and 'name="reason"' not in page
    assert "Bare lege eller administrator kan endre grensene." in page
    rows = {text_of(row.split("</th>", 1)[0]): text_of(row) for row in page.split('<th scope="row">')[1:8]}
    spo2 = rows["Oksygenmetning (%)"]
    assert spo2.startswith(f"Oksygenmetning (%) 87 {NONE} 84 {NONE}")
    assert "Individuell , versjon 2: dr-9" in spo2 and "«after discharge»" in spo2
    assert "Malen: Gul ≥ 86, Rød ≥ 84" in spo2
    assert "Mal: Generell (NEWS2)" in rows["Puls (/min)"]
    history = text_of(page.split('id="history-title"', 1)[1].split("</section>", 1)[0])
    assert "2 " in history and "after discharge" in history and "habitual 88-92" in history
    assert "HPR 7654321" in history
    assert "Oksygenmetning: Gul ≥ 88, Rød ≥ 85 → Gul ≥ 87, Rød ≥ 84" in history
    assert "Oksygenmetning: malen → Gul ≥ 88, Rød ≥ 85" in history
    # A chart of the readings with the bands in force.
    [series] = chart_data(page, "spo2")["series"]
    assert [(p["yellow"], p["red"]) for p in series["bands"]] == [({"low": 87.0}, {"low": 84.0})]


async def test_preview_counts_and_marks_without_storing(client, tokens, session):
    t = now()
    taken = [(t - 40 * HOUR, 95), (t - 30 * HOUR, 91), (t - 20 * HOUR, 96), (t - 10 * HOUR, 89), (t - 2 * HOUR, 96)]
    patient = await patient_with(client, tokens, session, "spo2", [], taken)
    alerts_before = await session.scalar(select(func.count()).where(Alert.patient_id == uuid.UUID(patient)))
    token = await sign_in(client)
    page = (await client.get(f"/patients/{patient}/thresholds")).text
    assert '<form id="thresholds-form"' in page and "Lagre nye grenser" in page

    r = await client.post(
        f"/patients/{patient}/thresholds/preview",
        headers=htmx(token),
        data=spo2_fields("92", "90", days="7", reason=""),
    )
    assert r.status_code == 200, r.text
    fragment = r.text
    assert "<html" not in fragment
    assert '<div id="editor">' in fragment
    counts = text_of(fragment.split('class="counts card"', 1)[1].split("</div>\n  </div>", 1)[0])
    # Proposed yellow 92 / red 90: 91 yellow, 89 red; in force (94 / 92): both red. 96 between
    # them ends the first episode.
    assert "Med de nye grensene ▲ Rød 1 ● Gul 1" in counts
    assert "Med gjeldende grenser ▲ Rød 2 ● Gul 0" in counts
    assert "5 målinger fra de siste 7 dagene vurdert" in counts
    data = chart_data(fragment, "spo2")
    [series] = data["series"]
    assert [(p["yellow"], p["red"]) for p in series["bands"]] == [({"low": 92.0}, {"low": 90.0})]
    assert [(p["yellow"], p["red"]) for p in series["compare"]] == [({"low": 94}, {"low": 92})]
    assert sorted((m["x"], m["y"], m["level"]) for m in data["marks"]) == [
        ((t - 30 * HOUR).timestamp(), 91, "yellow"),
        ((t - 10 * HOUR).timestamp(), 89, "red"),
    ]
    # The form keeps what was typed.
    assert f'name="{SPO2}.yellow.low" value="92"' in fragment
    # Nothing stored: no version, no alert; the preview audited as the API's.
    assert await versions(session, patient) == []
    assert await session.scalar(select(func.count()).where(Alert.patient_id == uuid.UUID(patient))) == alerts_before
    actions = set(
        await session.execute(
            select(AuditRecord.action, AuditRecord.resource_type).where(
                AuditRecord.patient_id == uuid.UUID(patient), AuditRecord.actor_sub == "dr-1"
            )
        )
    )
    assert {("read", "Thresholds"), ("preview", "Thresholds")} <= {tuple(a) for a in actions}


async def test_save_with_reason_makes_a_new_version(client, tokens, session):
    patient = await patient_with(client, tokens, session, "spo2", ["copd"], [(now() - HOUR, 90)])
    token = await sign_in(client)
    r = await client.post(
        f"/patients/{patient}/thresholds",
        headers=htmx(token),
        data=spo2_fields("88", "85", days="30", reason="Habitual SpO2 88-92 %"),
    )
    assert r.status_code == 200, r.text
    assert r.headers["HX-Redirect"] == f"/patients/{patient}/thresholds?saved=1"
    [version] = await versions(session, patient)
    assert (version.version, version.reason, version.changed_by_sub, version.changed_by_name) == (
        1,
        "Habitual SpO2 88-92 %",
        "dr-1",
        "Dr. Lege",
    )
    # Only the quantity changed became an override.
    assert version.bands == {SPO2: {"yellow": {"low": 88.0}, "red": {"low": 85.0}}}
    page = (await client.get(f"/patients/{patient}/thresholds?saved=1")).text
    assert "Grensene er lagret som versjon 1." in page
    assert ("update", "Thresholds") in {
        tuple(a)
        for a in await session.execute(
            select(AuditRecord.action, AuditRecord.resource_type).where(AuditRecord.patient_id == uuid.UUID(patient))
        )
    }

    # Back to the template: the override removed in version 2.
    r = await client.post(
        f"/patients/{patient}/thresholds",
        headers=htmx(token),
        data=spo2_fields("88", "85", days="30", reason="discharged", reset=SPO2),
    )
    assert r.headers["HX-Redirect"] == f"/patients/{patient}/thresholds?saved=2"
    assert [v.bands for v in await versions(session, patient)] == [version.bands, {}]

    # A plain form (no JavaScript) is redirected.
    r = await client.post(
        f"/patients/{patient}/thresholds", data=spo2_fields("89", "86", reason="again", csrf_token=token)
    )
    assert (r.status_code, r.headers["location"]) == (303, f"/patients/{patient}/thresholds?saved=3")


async def test_a_nurse_cannot_save(client, tokens, session):
    patient = await patient_with(client, tokens, session, "spo2", [], [(now() - HOUR, 95)])
    token = await sign_in(client, "nurse", sub="nurse-1")
    r = await client.post(
        f"/patients/{patient}/thresholds", headers=htmx(token), data=spo2_fields("92", "90", reason="why not")
    )
    assert r.status_code == 403
    assert await versions(session, patient) == []


async def test_a_missing_reason_is_refused_with_a_message(client, tokens, session):
    patient = await patient_with(client, tokens, session, "spo2", [], [(now() - HOUR, 95)])
    token = await sign_in(client)
    r = await client.post(
        f"/patients/{patient}/thresholds", headers=htmx(token), data=spo2_fields("92", "90", reason="   ")
    )
    assert r.status_code == 200 and "HX-Redirect" not in r.headers
    errors = text_of(r.text.split('id="form-errors"', 1)[1].split("</div>", 1)[0])
    assert "Skriv en begrunnelse for endringen." in errors
    assert 'id="f-reason" name="reason"' in r.text and 'aria-invalid="true"' in r.text
    assert f'name="{SPO2}.yellow.low" value="92"' in r.text
    assert await versions(session, patient) == []
    # Without htmx: the whole page with the message, 422.
    r = await client.post(f"/patients/{patient}/thresholds", data=spo2_fields("92", "90", csrf_token=token))
    assert r.status_code == 422 and "Skriv en begrunnelse for endringen." in r.text and "<html" in r.text
    # Nothing changed is refused too.
    r = await client.post(f"/patients/{patient}/thresholds", headers=htmx(token), data={"reason": "no change"})
    assert "Ingen grenser er endret." in r.text
    assert await versions(session, patient) == []


async def test_invalid_limits_are_shown_with_the_form(client, tokens, session):
    patient = await patient_with(client, tokens, session, "spo2", [], [(now() - HOUR, 95)])
    token = await sign_in(client)
    # Red low above yellow low; then a limit that is not a number.
    for fields, expected in (
        (spo2_fields("90", "92", days="7"), "rød nedre grense kan ikke være over gul nedre grense"),
        (spo2_fields("9x", "90", days="7"), "Gul nedre: ikke et tall"),
    ):
        r = await client.post(f"/patients/{patient}/thresholds/preview", headers=htmx(token), data=fields)
        assert r.status_code == 200, r.text
        assert expected in text_of(r.text.split('id="form-errors"', 1)[1].split("</div>", 1)[0])
        assert f'aria-describedby="err-{SPO2}"' in r.text
        assert 'class="counts card"' not in r.text  # no preview of an invalid proposal
        r = await client.post(
            f"/patients/{patient}/thresholds", headers=htmx(token), data={**fields, "reason": "valid reason"}
        )
        assert r.status_code == 200 and expected in text_of(r.text)
    assert await versions(session, patient) == []


async def test_weight_gain_for_heart_failure(client, tokens, session):
    t = now()
    patient = await patient_with(
        client, tokens, session, "body-weight", ["heart-failure"], [(t - 40 * HOUR, 80.0), (t - 2 * HOUR, 81.6)]
    )
    token = await sign_in(client)
    page = (await client.get(f"/patients/{patient}/thresholds")).text
    assert 'name="weight_gain.yellow" value="2"' in page and 'name="weight_gain.red" value=""' in page
    # +1.6 kg: nothing with the template (more than 2 kg); yellow with more than 1.5.
    r = await client.post(
        f"/patients/{patient}/thresholds/preview",
        headers=htmx(token),
        data={"weight_gain.yellow": "1,5", "weight_gain.red": "", "days": "7"},
    )
    counts = text_of(r.text.split('class="counts card"', 1)[1].split("</div>\n  </div>", 1)[0])
    assert "Med de nye grensene ▲ Rød 0 ● Gul 1" in counts and "Med gjeldende grenser ▲ Rød 0 ● Gul 0" in counts
    marks = chart_data(r.text, "body-weight")["marks"]
    assert sorted(m["y"] for m in marks) == [80.0, 81.6]
    r = await client.post(
        f"/patients/{patient}/thresholds",
        headers=htmx(token),
        data={"weight_gain.yellow": "0", "weight_gain.red": "", "reason": "x"},
    )
    assert "Vektøkning" in r.text and "må være større enn 0" in r.text
    r = await client.post(
        f"/patients/{patient}/thresholds",
        headers=htmx(token),
        data={"weight_gain.yellow": "1,5", "weight_gain.red": "3", "reason": "sensitive"},
    )
    assert "HX-Redirect" in r.headers
    [version] = await versions(session, patient)
    assert version.weight_gain == {"yellow": 1.5, "red": 3.0, "window_hours": 72}
    assert version.bands == {}


async def test_another_organisation_and_csrf(client, tokens, session):
    patient = await patient_with(client, tokens, session, "spo2", [], [(now() - HOUR, 95)])
    token = await sign_in(client, org=ORG_B, sub="dr-b")
    assert (await client.get(f"/patients/{patient}/thresholds")).status_code == 404
    r = await client.post(f"/patients/{patient}/thresholds/preview", headers=htmx(token), data=spo2_fields("92", "90"))
    assert r.status_code == 404
    r = await client.post(
        f"/patients/{patient}/thresholds", headers=htmx(token), data=spo2_fields("92", "90", reason="x")
    )
    assert r.status_code == 404
    token = await sign_in(client)
    r = await client.post(
        f"/patients/{patient}/thresholds",
        headers={"HX-Request": "true"},
        data=spo2_fields("92", "90", reason="no token"),
    )
    assert r.status_code == 403
    assert await versions(session, patient) == []


async def test_a_save_that_collides_with_another_is_refused_with_a_message(client, tokens, session, monkeypatch):
    """Two physicians saving at the same moment: the later one's version is taken already. The
    page says so with the form kept; it does not fail."""
    patient = await patient_with(client, tokens, session, "spo2", ["copd"], [(now() - HOUR, 90)])
    token = await sign_in(client)
    first = await client.post(
        f"/patients/{patient}/thresholds", headers=htmx(token), data=spo2_fields("88", "85", reason="first")
    )
    assert first.headers["HX-Redirect"].endswith("saved=1")

    async def as_if_none_yet(session: AsyncSession, patient_ids: Any) -> dict[Any, Any]:
        return {}  # what the second physician's save saw a moment before the first committed

    monkeypatch.setattr(rules_repository, "latest_overrides", as_if_none_yet)
    r = await client.post(
        f"/patients/{patient}/thresholds", headers=htmx(token), data=spo2_fields("89", "86", reason="second")
    )
    assert r.status_code == 200, r.text  # htmx swaps the form in, with its message
    assert "changed at the same moment" in text_of(r.text)
    assert 'value="89"' in r.text  # the form as typed
    monkeypatch.undo()
    assert [v.reason for v in await versions(session, patient)] == ["first"]
