"""What every page shares: texts in both languages, the frame's links, the static files.

- Every text key a template names literally exists in Norwegian and English, and both
  languages have the same keys; keys made of a prefix and a value (`"type." ~ name`) exist for
  every value the service has (reading types, conditions, levels, roles, LOINC codes).
- The language link keeps the page's query, so a filtered worklist stays filtered.
- The vendored assets are the files VENDORED.md lists, byte for byte (sha256), with their licences.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

from rpm.access.staff import Role
from rpm.api.web.render import STATIC, TEMPLATES
from rpm.api.web.texts import TEXTS
from rpm.fhir.codes import CODES_BY_LOINC, READING_TYPES
from tests.api.helpers import new_organisation

LITERAL = re.compile(r"""\bt\(\s*["']([a-z0-9_.-]+)["']\s*\)""")


def test_both_languages_have_the_same_keys():
    assert set(TEXTS["nb"]) == set(TEXTS["en"])
    assert all(TEXTS["nb"][k].strip() and TEXTS["en"][k].strip() for k in TEXTS["nb"])


def test_every_key_a_template_names_exists():
    named = {key for path in TEMPLATES.glob("*.html") for key in LITERAL.findall(path.read_text())}
    assert named, "no t(...) calls found: the pattern is out of date"
    assert sorted(named - set(TEXTS["nb"])) == []


def test_every_value_behind_a_prefixed_key_has_a_text():
    wanted = (
        {f"type.{name}" for name in READING_TYPES}
        | {f"code.{code}" for code in CODES_BY_LOINC}
        | {f"code.{t.code}" for t in READING_TYPES.values()}
        | {f"condition.{c}" for c in ("copd", "heart-failure", "diabetes", "hypertension")}
        | {f"level.{level}" for level in ("red", "yellow", "missing", "green")}
        | {f"role.{role.value}" for role in Role}
    )
    assert sorted(wanted - set(TEXTS["nb"])) == []


async def test_the_language_link_keeps_the_query(client, session):
    org = await new_organisation(session)
    r = await client.post("/login/development", data={"organisation": org, "roles": ["nurse"], "sub": "nurse-1"})
    assert r.status_code == 303
    page = (await client.get("/", params={"condition": "copd"})).text
    assert 'href="/language?to=en&amp;next=/%3Fcondition%3Dcopd"' in page


async def test_the_favicon_and_vendored_assets_are_served(client):
    assert (await client.get("/static/favicon.svg")).status_code == 200
    assert (await client.get("/static/vendor/htmx-2.0.11.min.js")).status_code == 200


def test_vendored_files_are_those_listed_with_their_licences():
    vendor = STATIC / "vendor"
    listed = re.findall(
        r"\| `([^`]+)` \| [^|]+ \| [^(]+\(`([^`]+)`\) \| ([0-9a-f]{64}) \|", (vendor / "VENDORED.md").read_text()
    )
    assert {name for name, _, _ in listed} == {p.name for p in vendor.iterdir() if p.suffix in (".js", ".css")}
    for name, licence, digest in listed:
        assert hashlib.sha256((vendor / name).read_bytes()).hexdigest() == digest, name
        assert Path(vendor / licence).read_text().strip(), licence


async def test_a_worklist_longer_than_a_screen_says_it_shows_the_first(client, tokens, session, monkeypatch):
    from rpm.api.web.pages import worklist
    from tests.api.helpers import enrol

    org = await new_organisation(session)
    for _ in range(2):
        await enrol(client, tokens(org, "admin"), org)
    monkeypatch.setattr(worklist, "ROWS", 1)
    await client.post("/login/development", data={"organisation": org, "roles": ["nurse"], "sub": "nurse-1"})
    page = (await client.get("/")).text
    assert page.count('<tr class="row-') == 1
    assert "Viser de 1 første etter prioritet." in page
