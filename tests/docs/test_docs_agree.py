"""The user documentation (docs/*.md) says what the code does.

Each test reads a table or a passage of a document and compares it with the code's own tables
(reason codes, reading types, units, plausible ranges, templates, settings, routes, error codes),
in both directions where a list is closed: a change on either side that the other does not follow
fails here, instead of drifting silently. Nothing here starts a server or touches a database.
"""

from __future__ import annotations

import json
import re
import string
import typing
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from annotated_types import Ge, Le, MaxLen, MinLen
from fastapi import FastAPI
from fastapi.routing import iter_route_contexts

from rpm.access.staff import Role
from rpm.alerts.models import AlertStatus, ResolutionOutcome
from rpm.alerts.schemas import AlertItem, ResolveIn
from rpm.api.app import create_app
from rpm.api.fhir.search import CONTROL_PARAMETERS, RESOURCES, BadSearch
from rpm.api.pagination import LimitParam
from rpm.config import Settings
from rpm.errors import Conflict, DomainError, Forbidden, InvalidInput, NotAuthenticated, NotFound, ServiceUnavailable
from rpm.fhir.codes import CODES_BY_LOINC, READING_TYPES
from rpm.fhir.observation import INTERPRETATION_DISPLAY
from rpm.observations.readings import (
    GATEWAY_ID,
    MAX_BATCH_READINGS,
    MAX_FUTURE,
    MAX_OFFSET,
    MAX_PAYLOAD_BYTES,
    Reason,
    Rejection,
    parse_topic,
    validate_reading,
)
from rpm.organisations.models import OrganisationKind
from rpm.patients.identity import WEIGHTS_FIRST, WEIGHTS_SECOND, IdentifierKind
from rpm.patients.schemas import CONDITIONS, PatientOut, PlanItem
from rpm.rejections.schemas import ReprocessOut
from rpm.rules.bands import QuantityBands
from rpm.rules.interface import LATE_AFTER
from rpm.rules.schemas import ThresholdsChange, ThresholdsPreviewIn, WeightGainIn
from rpm.rules.templates import CONDITION_ORDER, CONDITION_TEMPLATES, GENERAL, WEIGHT_GAIN_TEMPLATES
from rpm.rules.thresholds import effective_thresholds
from rpm.units import CONVERSIONS, DECIMALS, to_canonical
from tests.docs.markdown import (
    DOCS,
    ROOT,
    anchors,
    code_spans,
    links,
    read,
    section,
    sections,
    table_with,
    tables,
)

GATEWAY = "gateway-contract.md"
RULES = "rules.md"
STAFF_API = "staff-api.md"
OURS = (GATEWAY, RULES, STAFF_API)
DASH = "—"
# The documents write ranges and arithmetic in typographic signs (en dash, times, divided by, minus).
EN_DASH, TIMES, DIVIDED_BY, MINUS = "\u2013", "\u00d7", "\u00f7", "\u2212"


def flat(text: str) -> str:
    """Text with its line breaks and runs of spaces as single spaces, for phrase checks."""
    return " ".join(text.split())


def bounds(model: Any, name: str) -> tuple[float | None, float | None]:
    """The ge/le (or min/max length) bounds of a pydantic field."""
    low = high = None
    for item in model.model_fields[name].metadata:
        if isinstance(item, Ge | MinLen):
            low = item.ge if isinstance(item, Ge) else item.min_length
        if isinstance(item, Le | MaxLen):
            high = item.le if isinstance(item, Le) else item.max_length
    return low, high


def is_link_folder(path: Path) -> bool:
    """src/rpm/api, ingest, simulator are links to the top-level folders, read there instead."""
    relative = path.relative_to(ROOT / "src" / "rpm")
    return (ROOT / "src" / "rpm" / relative.parts[0]).is_symlink()


def source_files(*, web: bool) -> list[Path]:
    """The project's Python sources: the core, the API (with or without the staff page), the worker."""
    files = [p for p in (ROOT / "src" / "rpm").rglob("*.py") if not is_link_folder(p)]
    files += [p for p in (ROOT / "api").rglob("*.py") if web or "web" not in p.relative_to(ROOT / "api").parts]
    return files + list((ROOT / "ingest").rglob("*.py"))


# -- gateway-contract.md ---------------------------------------------------------------------


def test_every_reason_code_is_in_the_table_with_what_to_do() -> None:
    table = table_with(read(GATEWAY), "reason", "what it means", "what to do")
    documented = [code_spans(cell) for cell in table.cells("reason")]
    assert all(len(codes) == 1 for codes in documented), documented
    assert sorted(codes[0] for codes in documented) == sorted(r.value for r in Reason)
    assert all(table.cells("what to do")), "every reason says what to do"
    assert all(table.cells("what it means"))


def test_ack_statuses_are_those_of_the_code() -> None:
    # Reprocessing counts each ack status of its readings under its name: the same three words.
    table = table_with(read(GATEWAY), "status", "meaning", "your gateway")
    assert {code_spans(cell)[0] for cell in table.cells("status")} == set(ReprocessOut.model_fields)


def test_reading_types_table_has_each_type_code_unit_and_plausible_range() -> None:
    table = table_with(read(GATEWAY), "type", "LOINC code", "canonical unit", "also accepted")
    rows = {code_spans(row[0])[0]: dict(zip(table.header, row, strict=True)) for row in table.rows}
    assert set(rows) == set(READING_TYPES)
    for name, reading_type in READING_TYPES.items():
        row = rows[name]
        assert code_spans(row["value field"]) == ["values" if reading_type.is_panel else "value"], name
        codes = set(re.findall(r"\b\d{4,5}-\d\b", row["LOINC code"]))
        expected = {reading_type.code, *(q.code for q in reading_type.components.values())}
        expected |= {code for code, _ in reading_type.extra_codings}
        assert codes == expected, name
        assert code_spans(row["canonical unit"]) == [reading_type.unit], name
        assert set(code_spans(row["also accepted"])) == set(CONVERSIONS[reading_type.unit]) - {reading_type.unit}, name
        ranges = re.findall(rf"([\d.]+){EN_DASH}([\d.]+)", row["plausible range (canonical unit)"])
        assert sorted((float(a), float(b)) for a, b in ranges) == sorted(
            (float(q.plausible[0]), float(q.plausible[1])) for q in reading_type.components.values()
        ), name


def test_observation_display_names_are_those_stored() -> None:
    text = flat(read(GATEWAY))
    for reading_type in READING_TYPES.values():
        assert reading_type.display in text, reading_type.name
        for code, display in reading_type.extra_codings:
            assert f'{code} "{display}"' in text, code


def test_vital_signs_category_is_as_documented() -> None:
    text = flat(read(GATEWAY))
    not_vital = sorted(name for name, t in READING_TYPES.items() if not t.vital_signs)
    assert f"{' and '.join(f'`{n}`' for n in not_vital)} are not vital signs" in text


def conversion(expression: str) -> Any:
    """A documented conversion, such as value times 7.50062, as a function of the value."""
    python = expression.replace(TIMES, "*").replace(DIVIDED_BY, "/").replace(MINUS, "-").replace("value", "v")
    assert re.fullmatch(r"[v0-9.()*/+\- ]+", python), f"not a plain arithmetic conversion: {expression!r}"
    return lambda v: eval(python, {"__builtins__": {}}, {"v": v})


def test_unit_conversions_are_the_code_s_conversions() -> None:
    table = table_with(read(GATEWAY), "sent unit", "for types", "canonical unit", "value stored")
    documented = {}
    for row in table.rows:
        cells = dict(zip(table.header, row, strict=True))
        (sent,), (canonical,) = code_spans(cells["sent unit"]), code_spans(cells["canonical unit"])
        documented[(sent, canonical)] = cells
        types = {name for name, t in READING_TYPES.items() if t.unit == canonical}
        assert set(code_spans(cells["for types"])) == types, sent
        convert = conversion(cells["value stored"])
        for value in (0.5, 1.0, 37.5, 98.6, 180.0):
            assert round(convert(value), DECIMALS) == to_canonical(value, sent, canonical), (sent, value)
    aliases = {(sent, canonical) for canonical, units in CONVERSIONS.items() for sent in units if sent != canonical}
    assert set(documented) == aliases
    assert f"rounded to {DECIMALS} decimals" in flat(read(GATEWAY))


def test_topics_are_those_the_worker_reads_and_writes() -> None:
    root = Settings().mqtt_topic_root
    table = table_with(read(GATEWAY), "topic", "direction", "what", under="Topics")
    documented = {code_spans(cell)[0] for cell in table.cells("topic")}
    assert documented == {f"{root}/gateways/{{gateway_id}}/{kind}" for kind in ("measurements", "acks", "status")}
    # What gateways publish on, as the worker parses topics; acks are the worker's own.
    assert parse_topic(f"{root}/gateways/g-1/measurements") == ("g-1", "measurements")
    assert parse_topic(f"{root}/gateways/g-1/status") == ("g-1", "status")
    assert parse_topic(f"{root}/gateways/g-1/acks") is None


def documented_gateway_id(text: str) -> re.Pattern[str]:
    """The gateway id rule as the limits table states it: "1-64 characters of `A-Z a-z ...`"."""
    row = next(r for r in table_with(text, "limit", "value").rows if "`gateway_id`" in r[0])
    match = re.fullmatch(r"(\d+)-(\d+) characters of `([^`]+)`", row[1])
    assert match, row
    low, high, characters = match.groups()
    ranges = "".join(re.escape(part) if len(part) == 1 else part for part in characters.split())
    return re.compile(f"[{ranges}]{{{low},{high}}}")


def test_gateway_id_rule_is_the_worker_s() -> None:
    documented = documented_gateway_id(read(GATEWAY))
    for character in string.printable + "æøå":
        assert bool(documented.fullmatch(character)) == bool(GATEWAY_ID.fullmatch(character)), repr(character)
    for length in (0, 1, 64, 65):
        assert bool(documented.fullmatch("a" * length)) == bool(GATEWAY_ID.fullmatch("a" * length)), length


def limit(text: str, name: str) -> str:
    return next(r[1] for r in table_with(text, "limit", "value").rows if r[0] == name)


def test_message_limits_are_the_worker_s() -> None:
    text = read(GATEWAY)
    assert limit(text, "message size") == f"{MAX_PAYLOAD_BYTES // 1024} KiB ({MAX_PAYLOAD_BYTES:,} bytes)"
    assert limit(text, "readings in one batch") == f"1 to {MAX_BATCH_READINGS:,}"
    minutes = MAX_FUTURE.total_seconds() / 60
    assert limit(text, "`time` ahead of the service's clock") == f"at most {minutes:g} minutes"
    assert limit(text, "`time` offset") == f"within ±{int(MAX_OFFSET.total_seconds() // 3600):02d}:00"


@pytest.mark.parametrize("field", ["id", "serial"])
def test_reading_id_and_serial_lengths_are_the_worker_s(field: str) -> None:
    match = re.fullmatch(r"(\d+)-(\d+) characters", limit(read(GATEWAY), "reading `id`, `device.serial`"))
    assert match
    low, high = int(match[1]), int(match[2])

    def checked(length: int) -> Rejection | Any:
        reading = {
            "id": "r-1",
            "device": {"serial": "SC-1"},
            "type": "body-weight",
            "time": "2026-11-23T07:58:02+01:00",
            "value": 81.4,
            "unit": "kg",
        }
        if field == "id":
            reading["id"] = "x" * length
        else:
            reading["device"] = {"serial": "x" * length}
        return validate_reading(reading, "gw-1", datetime(2026, 11, 23, 8, tzinfo=UTC))

    for length in (low, high):
        assert not isinstance(checked(length), Rejection), length
    for length in (low - 1, high + 1):
        outcome = checked(length)
        assert isinstance(outcome, Rejection) and outcome.reason is Reason.schema, length


# -- rules.md ----------------------------------------------------------------------------------


def band(cell: str) -> dict[str, float]:
    """ "low 41, high 130" -> {"low": 41.0, "high": 130.0}; "—" -> {}."""
    if cell == DASH:
        return {}
    assert re.fullmatch(r"(low|high) [\d.]+(, (low|high) [\d.]+)?", cell), f"not a band: {cell!r}"
    return {side: float(value) for side, value in re.findall(r"(low|high) ([\d.]+)", cell)}


def green(cell: str) -> tuple[float | None, float | None]:
    """ "≥ 94", "≤ 99" or "41" EN_DASH "110" -> the green range, edges included."""
    if match := re.fullmatch(r"≥ ([\d.]+)", cell):
        return float(match[1]), None
    if match := re.fullmatch(r"≤ ([\d.]+)", cell):
        return None, float(match[1])
    match = re.fullmatch(rf"([\d.]+){EN_DASH}([\d.]+)", cell)
    assert match, f"not a green range: {cell!r}"
    return float(match[1]), float(match[2])


def green_of(bands: QuantityBands) -> tuple[float | None, float | None]:
    lows = [b for b in (bands.yellow.low, bands.red.low) if b is not None]
    highs = [b for b in (bands.yellow.high, bands.red.high) if b is not None]
    return (max(lows) if lows else None, min(highs) if highs else None)


def test_general_template_table_is_the_code_s() -> None:
    table = table_with(read(RULES), "LOINC code", "yellow band", "red band", under="`general`")
    rows = {row[table.column("LOINC code")]: dict(zip(table.header, row, strict=True)) for row in table.rows}
    assert set(rows) == set(GENERAL)
    for code, bands in GENERAL.items():
        assert band(rows[code]["yellow band"]) == bands.yellow.as_dict(), code
        assert band(rows[code]["red band"]) == bands.red.as_dict(), code
        assert rows[code]["unit"] == CODES_BY_LOINC[code].unit, code
        assert green(rows[code]["green"]) == green_of(bands), code


def test_condition_template_tables_are_the_code_s() -> None:
    table = table_with(read(RULES), "condition", "LOINC code", "yellow band", "red band")
    documented = {}
    for row in table.rows:
        cells = dict(zip(table.header, row, strict=True))
        documented[(code_spans(cells["condition"])[0], cells["LOINC code"])] = cells
    expected = {(condition, code) for condition, bands in CONDITION_TEMPLATES.items() for code in bands}
    assert set(documented) == expected
    for (condition, code), cells in documented.items():
        template = CONDITION_TEMPLATES[condition][code]
        assert band(cells["yellow band"]) == template.yellow.as_dict(), (condition, code)
        assert band(cells["red band"]) == template.red.as_dict(), (condition, code)
        in_force = effective_thresholds([condition]).bands[code]
        assert green(cells["green with `general`"]) == green_of(in_force), (condition, code)


def test_conditions_and_their_order_are_the_code_s() -> None:
    text = flat(read(RULES))
    assert set(CONDITIONS) == set(CONDITION_TEMPLATES) == set(CONDITION_ORDER)
    order = ", ".join(f"`{c}`" for c in CONDITION_ORDER)
    assert f"applied in the order {order}" in text
    assert f"({order})" in text  # the list of conditions under Templates


def test_weight_gain_table_is_the_code_s() -> None:
    table = table_with(read(RULES), "condition", "rule key", "window")
    documented = {code_spans(row[0])[0]: dict(zip(table.header, row, strict=True)) for row in table.rows}
    assert set(documented) == set(WEIGHT_GAIN_TEMPLATES)

    def kilograms(cell: str) -> float | None:
        if cell == DASH:
            return None
        match = re.fullmatch(r"([\d.]+) kg", cell)
        assert match, cell
        return float(match[1])

    for condition, rule in WEIGHT_GAIN_TEMPLATES.items():
        cells = documented[condition]
        assert code_spans(cells["rule key"]) == ["trend:weight-gain"]
        assert kilograms(cells["yellow when the gain is more than"]) == rule.yellow
        assert kilograms(cells["red when the gain is more than"]) == rule.red
        assert cells["window"] == f"{rule.window_hours} hours"


def test_interpretation_codes_are_the_code_s() -> None:
    table = table_with(read(RULES), "code", "meaning", "level")
    documented = {code_spans(row[0])[0]: row[1] for row in table.rows}
    assert documented == INTERPRETATION_DISPLAY


def test_late_and_escalation_times_are_the_code_s() -> None:
    text = read(RULES)
    settings = Settings()
    assert f"more than **{LATE_AFTER.total_seconds() / 3600:g} hours**" in flat(section(text, "Late readings").body)
    escalation = flat(section(text, "Escalation").body)
    assert f"**{settings.escalate_red_minutes:g} minutes** of service time" in escalation
    assert f"**{settings.escalate_yellow_hours:g} hours** of service time since it opened" in escalation
    missing = flat(section(text, "Missing measurements").body)
    assert f"grace period of {settings.missing_grace_hours:g} hours" in missing
    low, high = bounds(PlanItem, "every_hours")
    assert f"from {low:g} hour to {high:g} hours" in missing


def test_overridable_codes_are_the_measured_quantities() -> None:
    tuning = section(read(RULES), "Tuning a patient's thresholds").body
    paragraph = tuning[tuning.index("**What you can set**") :].split("\n\n")[0]
    assert set(re.findall(r"\b\d{4,5}-\d\b", paragraph)) == set(CODES_BY_LOINC)


def test_preview_and_weight_gain_bounds_are_the_code_s() -> None:
    days = ThresholdsPreviewIn.model_fields["days"].default
    low, high = bounds(ThresholdsPreviewIn, "days")
    assert f"({low} to {high}, default {days})" in flat(read(RULES))
    assert f"({low}-{high}, default {days})" in flat(read(STAFF_API))
    window = WeightGainIn.model_fields["window_hours"]
    low, high = bounds(WeightGainIn, "window_hours")
    assert f"`window_hours` {low} to {high}, default {window.default}" in flat(read(RULES))
    low, high = bounds(ThresholdsChange, "reason")
    assert f"a reason ({low}-{high} characters)" in flat(read(STAFF_API))
    low, high = bounds(ResolveIn, "note")
    assert f"`note` is required ({low}-{high} characters)" in flat(read(STAFF_API))


def test_alert_statuses_and_outcomes_are_the_code_s() -> None:
    for name in (RULES, STAFF_API):
        text = flat(read(name))
        outcomes = ", ".join(f"`{o.value}`" for o in ResolutionOutcome)
        assert outcomes in text, name
        statuses = ", ".join(f"`{s.value}`" for s in AlertStatus)
        assert statuses in text, name


def test_news2_is_documented_as_the_rule_computes_it() -> None:
    from rpm.rules import baselines, early_warning, news2

    body = flat(section(read(RULES), "NEWS2").body)
    assert f"`{early_warning.RULE}`" in body
    assert f"SNOMED CT {news2.NEWS2_TOTAL_CODE}" in body
    assert "at least three parameters" in body and news2.MINIMUM_PARAMETERS == 3
    assert "red edge at 84 %" in body and early_warning.SCALE_2_RED_LOW == 84
    assert "`RPM_NEWS2_WINDOW_MINUTES`" in body and Settings.model_fields["news2_window_minutes"].default == 60
    for edge in ('`{"total": 7}`', '`{"total": 5}`', '`{"parameter": 3}`'):
        assert edge in body
    start = flat(section(read(RULES), "Start period and the patient's own normal values").body)
    assert f"at least {baselines.MIN_READINGS} readings" in start
    assert "SpO2 1 %, pulse 5 /min, blood pressure 5 mmHg, temperature 0.3 °C, respiratory rate 2 /min" in start
    assert baselines.MARGINS["59408-5"] == 1.0


# -- staff-api.md ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def app() -> FastAPI:
    # Building the app needs no database: the lifespan, which is not run here, connects.
    return create_app(Settings(database_url="postgresql://unused@127.0.0.1/unused", dev_auth=False))


def normalised(path: str) -> str:
    return re.sub(r"\{[^}]+\}", "{}", path)


def app_routes(app: FastAPI) -> set[tuple[str, str]]:
    found = set()
    for route in iter_route_contexts(app.routes):
        for method in route.methods or ():
            if method != "HEAD":
                found.add((method, normalised(route.path or "")))
    return found


ENDPOINT = re.compile(r"^(GET|POST|PUT|PATCH|DELETE) (/\S*)$")


def test_every_api_and_fhir_route_has_its_section_and_no_other(app: FastAPI) -> None:
    routes = {(m, p) for m, p in app_routes(app) if p.startswith(("/api/v1/", "/fhir/"))}
    headed = set()
    for s in sections(read(STAFF_API)):
        spans = code_spans(s.title)
        if len(spans) == 1 and (match := ENDPOINT.match(spans[0])) and s.title == f"`{spans[0]}`":
            headed.add((match[1], normalised(match[2])))
    assert routes - headed == set(), "routes without a section in docs/staff-api.md"
    assert headed - routes == set(), "sections of docs/staff-api.md for routes that do not exist"


def test_every_endpoint_the_documents_name_exists(app: FastAPI) -> None:
    routes = app_routes(app)
    for name in OURS:
        for span in code_spans(read(name)):
            match = ENDPOINT.match(span)
            if match and not match[2].startswith("/..."):
                path = normalised(match[2].split("?")[0])
                assert (match[1], path) in routes, f"{name} names {span!r}, which is not a route"


def endpoint_sections() -> dict[tuple[str, str], str]:
    found = {}
    for s in sections(read(STAFF_API)):
        spans = code_spans(s.title)
        if len(spans) == 1 and (match := ENDPOINT.match(spans[0])):
            found[(match[1], normalised(match[2]))] = s.body
    return found


def mentioned(name: str, spans: list[str], *, header: bool) -> bool:
    if header:
        return any(s.lower() == name.lower() or s.lower().startswith(name.lower() + ":") for s in spans)
    return any(s == name or s.startswith(name + "=") for s in spans)


def test_each_endpoint_section_names_its_parameters(app: FastAPI) -> None:
    bodies = endpoint_sections()
    for path, operations in app.openapi()["paths"].items():
        for method, operation in operations.items():
            key = (method.upper(), normalised(path))
            if key not in bodies:
                continue  # /healthz and the like: the Operations table
            spans = code_spans(bodies[key])
            for parameter in operation.get("parameters", []):
                if parameter["in"] in ("query", "header"):
                    assert mentioned(parameter["name"], spans, header=parameter["in"] == "header"), (
                        f"{method.upper()} {path}: parameter {parameter['name']!r} is not in its section"
                    )


def test_fhir_search_parameters_are_those_implemented() -> None:
    bodies = endpoint_sections()
    for resource, (interactions, parameters) in RESOURCES.items():
        assert ("GET", f"/fhir/{resource}") in bodies and "search-type" in interactions
        spans = code_spans(bodies[("GET", f"/fhir/{resource}")])
        for parameter in parameters:
            assert parameter in spans or any(s.startswith(f"{parameter} ") for s in spans), (resource, parameter)
    facade = code_spans(section(read(STAFF_API), "The FHIR facade").body)
    assert CONTROL_PARAMETERS <= set(facade)


def test_list_limits_are_the_api_s(app: FastAPI) -> None:
    query = typing.get_args(LimitParam)[1]
    low = next(m.ge for m in query.metadata if isinstance(m, Ge))
    high = next(m.le for m in query.metadata if isinstance(m, Le))
    defaults = {
        p["schema"].get("default")
        for operations in app.openapi()["paths"].values()
        for operation in operations.values()
        for p in operation.get("parameters", [])
        if p["name"] == "limit"
    }
    assert len(defaults) == 1
    assert f"`limit`: items per page, {low} to {high}, default {defaults.pop()}." in flat(read(STAFF_API))


ERROR_CLASSES: dict[str, type[DomainError]] = {
    c.__name__: c for c in (NotFound, Forbidden, Conflict, InvalidInput, NotAuthenticated, ServiceUnavailable)
}
ERROR_CLASSES["BadSearch"] = BadSearch
RAISED = re.compile(r"\b(" + "|".join(ERROR_CLASSES) + r")\(\s*\"([a-z_]+)\"")
RENDERED = re.compile(r"render\(request, (\d{3}), \"([a-z_]+)\"")
HTTP_ERRORS = re.compile(r"\{([^}]*)\}\.get\(error\.status_code, \"([a-z_]+)\"\)")
# Codes in the code that no API request can meet: the commands' and the start-up's, and the
# staff page's own.
NOT_FROM_THE_API = {
    "database_unreachable": "the API and the worker refuse to start",
    "database_not_migrated": "the API and the worker refuse to start",
    "dev_auth_off": "rpm token",
    "organisation_exists": "rpm organisations add",
    "invalid_orgnr": "rpm organisations add",
    "invalid_kind": "rpm organisations add",
    "invalid_name": "rpm organisations add",
    "invalid_reference": "the staff page's charts",
}
OTHER_HTTP = "other 4xx"


def error_codes_in_the_code() -> dict[str, set[str]]:
    """Every error code the API can answer, with its statuses ("other 4xx" for http_error)."""
    found: dict[str, set[str]] = {}
    for path in source_files(web=False):
        text = path.read_text(encoding="utf-8")
        for kind, code in RAISED.findall(text):
            found.setdefault(code, set()).add(str(ERROR_CLASSES[kind].status))
        for status, code in RENDERED.findall(text):
            found.setdefault(code, set()).add(status)
        for mapping, fallback in HTTP_ERRORS.findall(text):
            for status, code in re.findall(r"(\d{3}): \"([a-z_]+)\"", mapping):
                found.setdefault(code, set()).add(status)
            found.setdefault(fallback, set()).add(OTHER_HTTP)
    return found


def test_error_table_lists_every_code_with_its_status() -> None:
    in_code = error_codes_in_the_code()
    assert set(NOT_FROM_THE_API) <= set(in_code), "a code listed as not from the API no longer exists"
    expected = {code: statuses for code, statuses in in_code.items() if code not in NOT_FROM_THE_API}
    table = table_with(read(STAFF_API), "`error`", "status", "when")
    documented: dict[str, set[str]] = {}
    for row in table.rows:
        (code,) = code_spans(row[0])
        status = row[1] if row[1] == OTHER_HTTP else re.fullmatch(r"\d{3}", row[1]) and row[1]
        assert status, f"status of {code}: {row[1]!r}"
        documented.setdefault(code, set()).add(status)
    assert set(documented) == set(expected)
    for code, statuses in expected.items():
        assert documented[code] == statuses, code


def test_audit_actions_are_those_recorded() -> None:
    recorded = set()
    for path in source_files(web=True):
        recorded |= set(re.findall(r"record\(\s*session,\s*actor,\s*\"([a-z_]+)\"", path.read_text(encoding="utf-8")))
    body = flat(section(read(STAFF_API), "Audit").body)
    listed = body[body.index("Actions:") :].split(".")[0]
    assert set(code_spans(listed)) == recorded


def test_roles_organisation_kinds_and_identifiers_are_the_code_s() -> None:
    text = read(STAFF_API)
    table = table_with(text, "what", "nurse", "physician", "admin")
    assert set(table.header[1:]) == {r.value for r in Role}
    flowing = flat(text)
    kinds = [k.value for k in OrganisationKind]
    assert f"{', '.join(f'`{k}`' for k in kinds[:-1])} or `{kinds[-1]}`" in flowing
    for kind in IdentifierKind:
        assert f"`{kind.value}`" in flowing
    assert " ".join(map(str, WEIGHTS_FIRST)) in flowing and " ".join(map(str, WEIGHTS_SECOND)) in flowing


def first_json(body: str) -> Any:
    block = re.search(r"```json\n(.*?)\n```", body, re.DOTALL)
    assert block, "no JSON example"
    return json.loads(block[1])


def test_payload_examples_have_exactly_the_fields_of_the_api() -> None:
    text = read(STAFF_API)
    assert set(first_json(section(text, "Alerts").body)) == set(AlertItem.model_fields)
    patient = PatientOut.model_fields
    assert set(first_json(section(text, "Patients").body)) == set(patient)


# -- every document ----------------------------------------------------------------------------


def test_settings_tables_give_the_defaults_of_the_code() -> None:
    fields = Settings.model_fields
    checked = 0
    for name in OURS:
        for table in tables(read(name)):
            if "default" not in table.header:
                continue
            for row in table.rows:
                spans = code_spans(row[0])
                if not spans or not spans[0].startswith("RPM_"):
                    continue
                field = spans[0].removeprefix("RPM_").lower()
                assert field in fields, f"{name}: {spans[0]} is not a setting"
                default = fields[field].default
                cell = row[table.column("default")].strip("`")
                if default is None:
                    assert cell == "", (name, spans[0])
                elif isinstance(default, bool):
                    assert cell == str(default).lower(), (name, spans[0])
                elif isinstance(default, int | float):
                    assert float(cell) == float(default), (name, spans[0])
                else:
                    assert cell == str(default), (name, spans[0])
                checked += 1
    assert checked >= 10


def test_every_setting_the_documents_name_exists() -> None:
    for name in OURS:
        for setting in set(re.findall(r"\bRPM_[A-Z_]+\b", read(name))):
            assert setting.removeprefix("RPM_").lower() in Settings.model_fields, f"{name}: {setting}"


def test_relative_links_and_their_anchors_resolve() -> None:
    broken = []
    for document in sorted(DOCS.glob("*.md")):
        for line, target in links(document.read_text(encoding="utf-8")):
            if re.match(r"[a-z]+:", target):
                continue  # https:, mailto:
            path, _, anchor = target.partition("#")
            linked = (document.parent / path).resolve() if path else document
            if not linked.exists():
                broken.append(f"{document.name}:{line}: {target} names no file")
            elif anchor and linked.suffix == ".md" and anchor not in anchors(linked.read_text(encoding="utf-8")):
                broken.append(f"{document.name}:{line}: {target} names no heading")
    assert broken == []
