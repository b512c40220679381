"""A patient's thresholds: the bands in force with their source (templates, or an override by
whom, when and why), the version history, and for a physician or an administrator an edit
form whose change is previewed on the patient's past readings (which would have alerted, drawn
on the charts with the proposed bands) before it is saved with a reason."""

from __future__ import annotations

import math
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import ValidationError
from pydantic_core import ErrorDetails
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.datastructures import FormData

from rpm.access import service as access
from rpm.access.staff import Role, Staff
from rpm.action_plans import service as action_plans
from rpm.api.deps import SessionDep
from rpm.api.web import charts, present
from rpm.api.web.deps import WebActor, attempt
from rpm.api.web.pages.action_plan import plan_context
from rpm.api.web.pages.course import chart_trend, language_of, period, texts_of
from rpm.api.web.render import page
from rpm.audit.service import Actor
from rpm.errors import Conflict, InvalidInput, NotFound
from rpm.fhir.codes import CODES_BY_LOINC, READING_TYPES
from rpm.patients import service as patients
from rpm.rules import service as rules
from rpm.rules.schemas import (
    QuantityBandsIn,
    QuantityThresholds,
    ThresholdProposalDecision,
    ThresholdProposalOut,
    ThresholdsChange,
    ThresholdsPreviewIn,
    ThresholdsPreviewOut,
    ThresholdsRecord,
    ThresholdsVersion,
    WeightGainIn,
    WeightGainThresholds,
)
from rpm.rules.thresholds import WEIGHT_GAIN_KEY
from rpm.trends import service as trends

router = APIRouter(tags=["staff page"], include_in_schema=False)

CHANGERS = (Role.physician, Role.admin)
EN_DASH = "\u2013"
PREVIEW_DAYS = (7, 30, 90)
DEFAULT_DAYS = 30
SIDES = (("yellow", "low"), ("yellow", "high"), ("red", "low"), ("red", "high"))
PREVIEW_ALERTS_SHOWN = 50
REASON_LENGTH = 2000  # as the API's ThresholdsChange
# Every quantity of every reading type, in the table's order: the rows of the form.
QUANTITY_ORDER = [(t.name, q.code) for t in READING_TYPES.values() for q in t.components.values()]


def may_change(staff: Staff) -> bool:
    return bool(staff.roles.intersection(CHANGERS))


@dataclass
class QuantityRow:
    """One quantity of the form (or of the read-only table)."""

    code: str
    unit: str
    current: QuantityThresholds | None
    template: QuantityThresholds | None
    set_in: ThresholdsVersion | None  # the version that set the override in force
    values: dict[str, str]  # the inputs' text by "yellow.low" ...
    errors: list[str] = field(default_factory=list)
    reset: bool = False


@dataclass
class WeightGainRow:
    current: WeightGainThresholds | None
    template: WeightGainThresholds | None
    set_in: ThresholdsVersion | None
    values: dict[str, str]
    errors: list[str] = field(default_factory=list)


@dataclass
class Form:
    """The form as shown: rows with their values, and what was wrong with the last attempt."""

    rows: list[QuantityRow]
    weight_gain: WeightGainRow | None
    days: int = DEFAULT_DAYS
    reason: str = ""
    errors: list[str] = field(default_factory=list)  # about the whole form: reason, nothing changed
    bands: dict[str, QuantityBandsIn | None] = field(default_factory=dict)  # the proposal
    proposed_weight_gain: WeightGainIn | None = None
    # Filled in from the start period's proposal: saving it decides the proposal (accepted,
    # or accepted with the changes made in the form).
    from_proposal: bool = False

    @property
    def invalid(self) -> bool:
        return bool(self.errors or any(r.errors for r in self.rows) or (self.weight_gain and self.weight_gain.errors))

    @property
    def changed(self) -> bool:
        return bool(self.bands) or self.proposed_weight_gain is not None


def band_text(band: dict[str, float] | None, num: Any, none: str) -> str:
    """A band as the values it lets through: "86\u2013159", "≥ 86", "≤ 159", or `none`."""
    low, high = (band or {}).get("low"), (band or {}).get("high")
    if low is not None and high is not None:
        return f"{num(low)}{EN_DASH}{num(high)}"
    if low is not None:
        return f"≥ {num(low)}"
    if high is not None:
        return f"≤ {num(high)}"
    return none


def _shown(value: float | None, language: str) -> str:
    if value is None:
        return ""
    text = f"{value:.10g}"
    return text.replace(".", ",") if language == "nb" else text


def _number(text: str) -> float | None:
    """A limit as typed: empty is no limit; a decimal comma or point."""
    cleaned = text.strip().replace("\u2212", "-").replace(" ", "").replace(",", ".")
    if not cleaned:
        return None
    value = float(cleaned)  # ValueError for anything else
    if not math.isfinite(value):
        raise ValueError(text)
    return value


def _error(detail: ErrorDetails, t: charts.Text) -> str:
    """A validation error of the rules' schemas in the caller's words."""
    message = str(detail.get("msg", ""))
    where = [str(part) for part in detail.get("loc", ())]
    band = f"{t('level.' + where[0])}: " if where and where[0] in ("yellow", "red") else ""
    if "red.low must not be above yellow.low" in message:
        return t("thresholds.error.red_low_inside")
    if "red.high must not be below yellow.high" in message:
        return t("thresholds.error.red_high_inside")
    if "low must not be above high" in message:
        return band + t("thresholds.error.low_above_high")
    if detail.get("type") == "greater_than":
        return band + t("thresholds.error.positive")
    return band + message


def blank_form(record: ThresholdsRecord, types: list[str], language: str) -> Form:
    """The form filled in with the thresholds in force."""
    thresholds, templates = record.thresholds.root, record.templates.root
    versions = {v.version: v for v in record.history}
    wanted = {code for code, entry in thresholds.items() if isinstance(entry, QuantityThresholds)}
    wanted |= {code for reading_type, code in QUANTITY_ORDER if reading_type in types}
    rows = []
    for _, code in QUANTITY_ORDER:
        if code not in wanted:
            continue
        current = thresholds.get(code)
        template = templates.get(code)
        current = current if isinstance(current, QuantityThresholds) else None
        values = {
            f"{colour}.{side}": _shown(getattr(current, colour).get(side) if current else None, language)
            for colour, side in SIDES
        }
        rows.append(
            QuantityRow(
                code=code,
                unit=charts.unit(CODES_BY_LOINC[code].unit),
                current=current,
                template=template if isinstance(template, QuantityThresholds) else None,
                set_in=versions.get(record.set_in.get(code, -1)),
                values=values,
            )
        )
    weight_gain = None
    current_gain = thresholds.get(WEIGHT_GAIN_KEY)
    if isinstance(current_gain, WeightGainThresholds):
        template_gain = templates.get(WEIGHT_GAIN_KEY)
        weight_gain = WeightGainRow(
            current=current_gain,
            template=template_gain if isinstance(template_gain, WeightGainThresholds) else None,
            set_in=versions.get(record.set_in.get(WEIGHT_GAIN_KEY, -1)),
            values={"yellow": _shown(current_gain.yellow, language), "red": _shown(current_gain.red, language)},
        )
    return Form(rows=rows, weight_gain=weight_gain)


def read_form(form: Form, submitted: FormData, t: charts.Text) -> Form:
    """The submitted values into `form`: a proposal of the quantities whose limits differ from
    those in force (or are set back to the templates), and what is wrong with them."""
    resets = set(submitted.getlist("reset"))
    for row in form.rows:
        # A field not sent at all keeps its value; an empty one is no limit.
        row.values = {f"{c}.{s}": str(submitted.get(f"{row.code}.{c}.{s}", row.values[f"{c}.{s}"])) for c, s in SIDES}
        row.reset = row.code in resets and row.current is not None and row.current.source == "override"
        if row.reset:
            form.bands[row.code] = None
            continue
        proposed: dict[str, dict[str, float]] = {"yellow": {}, "red": {}}
        for colour, side in SIDES:
            try:
                value = _number(row.values[f"{colour}.{side}"])
            except ValueError:
                row.errors.append(f"{t('level.' + colour)} {t('thresholds.' + side)}: {t('thresholds.error.number')}")
                continue
            if value is not None:
                proposed[colour][side] = value
        if row.errors:
            continue
        current = {"yellow": row.current.yellow, "red": row.current.red} if row.current else {"yellow": {}, "red": {}}
        if proposed == {c: {s: float(v) for s, v in current[c].items()} for c in current}:
            continue
        try:
            form.bands[row.code] = QuantityBandsIn.model_validate(proposed)
        except ValidationError as error:
            row.errors += [_error(detail, t) for detail in error.errors()]
    gain = form.weight_gain
    if gain is not None and gain.current is not None:
        gain.values = {
            level: str(submitted.get(f"weight_gain.{level}", gain.values[level])) for level in ("yellow", "red")
        }
        parsed: dict[str, float | None] = {}
        for level in ("yellow", "red"):
            try:
                parsed[level] = _number(gain.values[level])
            except ValueError:
                gain.errors.append(f"{t('level.' + level)}: {t('thresholds.error.number')}")
        if not gain.errors and (parsed["yellow"], parsed["red"]) != (gain.current.yellow, gain.current.red):
            try:
                form.proposed_weight_gain = WeightGainIn.model_validate(
                    {**parsed, "window_hours": gain.current.window_hours}
                )
            except ValidationError as error:
                gain.errors += [_error(detail, t) for detail in error.errors()]
    days = str(submitted.get("days", DEFAULT_DAYS))
    form.days = int(days) if days.isdigit() and int(days) in PREVIEW_DAYS else DEFAULT_DAYS
    form.reason = str(submitted.get("reason", ""))
    form.from_proposal = submitted.get("proposal") == "1"
    return form


async def _charts(
    session: AsyncSession,
    actor: Actor,
    patient_id: uuid.UUID,
    types: list[str],
    days: int,
    now: datetime,
    t: charts.Text,
    current: dict[str, Any],
    preview: ThresholdsPreviewOut | None,
) -> list[charts.Chart]:
    """Each reading type's readings of the last `days` days with the bands in force, or with a
    preview's proposed bands (those in force as dashed lines) and the readings that would have
    alerted marked."""
    start, end, bucket = period(days, now)
    marks: list[charts.Mark] = []
    proposed: dict[str, Any] = {}
    if preview is not None:
        proposed = {code: entry.model_dump() for code, entry in preview.thresholds.root.items()}
        references = sorted({o for a in preview.alerts for o in a.observations})
        points = {(p.observation, p.code): p for p in await trends.readings_of(session, actor, patient_id, references)}
        for alert in preview.alerts:
            code = trends.quantity_of_rule(alert.rule)
            for reference in alert.observations:
                point = points.get((reference, code or ""))
                if point is not None:
                    marks.append(
                        charts.Mark(code=point.code, at=point.effective_at, value=point.value, level=alert.level)
                    )
    found = []
    for reading_type in charts.type_order(types):
        trend = await chart_trend(session, actor, patient_id, reading_type, start, end, bucket)
        in_force = charts.single_period(trend, current)
        found.append(
            charts.build(
                trend,
                reading_type,
                marks,
                t,
                days=days,
                bands=charts.single_period(trend, proposed) if preview is not None else in_force,
                compare=in_force if preview is not None else None,
                id_prefix="preview",
            )
        )
    return found


async def _editor(
    request: Request,
    session: AsyncSession,
    actor: Actor,
    patient_id: uuid.UUID,
    submitted: FormData | None,
    *,
    preview: bool,
) -> tuple[Form, ThresholdsRecord, list[str], ThresholdsPreviewOut | None, list[charts.Chart]]:
    """The form (as in force, or as submitted), the record, and the charts: previewed when
    asked and the proposal is valid."""
    t = texts_of(request)
    language = language_of(request)
    record = await rules.thresholds_record(session, actor, patient_id)
    types = await trends.reading_types_of(session, actor, patient_id)
    form = blank_form(record, types, language)
    if submitted is not None:
        read_form(form, submitted, t)
    now = datetime.now(UTC)
    outcome = None
    if preview and not form.invalid:
        outcome = await rules.preview_thresholds(
            session,
            actor,
            patient_id,
            ThresholdsPreviewIn(days=form.days, bands=form.bands, weight_gain=form.proposed_weight_gain),
            now,
        )
    current = {code: entry.model_dump() for code, entry in record.thresholds.root.items()}
    found = await _charts(session, actor, patient_id, types, form.days, now, t, current, outcome)
    return form, record, types, outcome, found


def _context(
    patient_id: uuid.UUID,
    actor: Actor,
    form: Form,
    record: ThresholdsRecord,
    outcome: ThresholdsPreviewOut | None,
    found: list[charts.Chart],
) -> dict[str, Any]:
    return {
        "proposal_fields": proposal_fields,
        "patient_id": patient_id,
        "form": form,
        "record": record,
        "preview": outcome,
        "preview_alerts": outcome.alerts[:PREVIEW_ALERTS_SHOWN] if outcome else [],
        "charts": found,
        "editable": may_change(actor.staff),
        "preview_days": PREVIEW_DAYS,
        "present": present,
        "unit": charts.unit,
        "reason_length": REASON_LENGTH,
        "band_text": band_text,
    }


async def _whole_page(
    request: Request,
    session: AsyncSession,
    actor: Actor,
    patient_id: uuid.UUID,
    editor: tuple[Form, ThresholdsRecord, list[str], ThresholdsPreviewOut | None, list[charts.Chart]],
    *,
    status: int = 200,
    saved: int | None = None,
    decided: str | None = None,
) -> HTMLResponse:
    form, record, _, outcome, found = editor
    patient = await patients.read(session, actor, patient_id)
    plan = plan_context(await action_plans.plan_record(session, actor, patient_id), actor.staff)
    try:
        proposal: ThresholdProposalOut | None = await rules.read_proposal(session, actor, patient_id)
    except NotFound:
        proposal = None
    start_period_ends = (
        patient.created_at + timedelta(days=patient.start_period_days) if patient.start_period_days else None
    )
    return page(
        request,
        "thresholds.html",
        status,
        patient=patient,
        saved=saved,
        **plan,
        decided=decided,
        proposal=proposal,
        start_period_ends=start_period_ends if start_period_ends and start_period_ends > datetime.now(UTC) else None,
        **_context(patient_id, actor, form, record, outcome, found),
    )


@router.get("/patients/{patient_id}/thresholds", response_class=HTMLResponse)
async def thresholds_page(
    request: Request,
    patient_id: uuid.UUID,
    session: SessionDep,
    actor: WebActor,
    saved: Annotated[int | None, Query(ge=1, le=1_000_000)] = None,
    decided: Annotated[Literal["accepted", "edited", "rejected"] | None, Query()] = None,
) -> HTMLResponse:
    editor = await _editor(request, session, actor, patient_id, None, preview=False)
    return await _whole_page(request, session, actor, patient_id, editor, saved=saved, decided=decided)


@router.post("/patients/{patient_id}/thresholds/preview", response_class=HTMLResponse)
async def preview_change(request: Request, patient_id: uuid.UUID, session: SessionDep, actor: WebActor) -> HTMLResponse:
    """What the proposal would have raised on the last 7, 30 or 90 days; nothing is stored."""
    submitted = await request.form()
    form, record, _, outcome, found = editor = await _editor(
        request, session, actor, patient_id, submitted, preview=True
    )
    if not request.headers.get("hx-request"):
        return await _whole_page(request, session, actor, patient_id, editor, status=422 if form.invalid else 200)
    return page(
        request, "_thresholds_editor.html", fragment=True, **_context(patient_id, actor, form, record, outcome, found)
    )


@router.post("/patients/{patient_id}/thresholds", response_class=HTMLResponse)
async def save_change(request: Request, patient_id: uuid.UUID, session: SessionDep, actor: WebActor) -> Response:
    """A new version of the overrides with its reason (physician or administrator)."""
    await access.require_care_team(session, actor.staff, patient_id)
    actor.staff.require(*CHANGERS)
    submitted = await request.form()
    t = texts_of(request)
    record = await rules.thresholds_record(session, actor, patient_id)
    types = await trends.reading_types_of(session, actor, patient_id)
    language = language_of(request)
    form = read_form(blank_form(record, types, language), submitted, t)
    reason = form.reason.strip()
    if not reason:
        form.errors.append(t("thresholds.error.reason_required"))
    elif len(reason) > REASON_LENGTH:
        form.errors.append(t("thresholds.error.reason_long"))
    if not form.invalid and not form.changed and not form.from_proposal:
        form.errors.append(t("thresholds.error.no_change"))
    now = datetime.now(UTC)
    if not form.invalid:
        try:
            async with attempt(session):  # a save at the same moment by someone else is refused
                if form.from_proposal:
                    decision = {"decision": "accept", "reason": reason, "bands": form.bands}
                    await rules.decide_proposal(
                        session, actor, patient_id, ThresholdProposalDecision.model_validate(decision), now
                    )
                else:
                    await rules.change_thresholds(
                        session,
                        actor,
                        patient_id,
                        ThresholdsChange(reason=reason, bands=form.bands, weight_gain=form.proposed_weight_gain),
                    )
        except (InvalidInput, Conflict) as error:
            form.errors.append(error.detail)
        else:
            version = await rules.version_in_force(session, patient_id)
            target = f"/patients/{patient_id}/thresholds?saved={version}"
            if request.headers.get("hx-request"):
                return Response(status_code=200, headers={"HX-Redirect": target})
            return RedirectResponse(target, 303)
    current = {code: entry.model_dump() for code, entry in record.thresholds.root.items()}
    found = await _charts(session, actor, patient_id, types, form.days, now, t, current, None)
    if not request.headers.get("hx-request"):
        editor = (form, record, types, None, found)
        return await _whole_page(request, session, actor, patient_id, editor, status=422)
    return page(
        request, "_thresholds_editor.html", fragment=True, **_context(patient_id, actor, form, record, None, found)
    )


def proposal_fields(proposal: ThresholdProposalOut, language: str) -> dict[str, str]:
    """The proposal as the form's fields: what its preview button sends."""
    return {
        f"{code}.{colour}.{side}": _shown(getattr(bands, colour).get(side), language)
        for code, bands in proposal.bands.items()
        for colour, side in SIDES
    }


@router.post("/patients/{patient_id}/thresholds/proposal", response_class=HTMLResponse)
async def decide_proposal(request: Request, patient_id: uuid.UUID, session: SessionDep, actor: WebActor) -> Response:
    """Accept the start period's proposal as it is, or reject it, with a reason (physician or
    administrator). Accepting it with changes goes through the form (`proposal=1`)."""
    await access.require_care_team(session, actor.staff, patient_id)
    actor.staff.require(*CHANGERS)
    submitted = await request.form()
    t = texts_of(request)
    reason = str(submitted.get("reason", "")).strip()
    choice = submitted.get("decision")
    if not reason or len(reason) > REASON_LENGTH or choice not in ("accept", "reject"):
        raise InvalidInput("invalid_decision", t("proposal.error.reason_required"))
    decision = ThresholdProposalDecision(decision="accept" if choice == "accept" else "reject", reason=reason)
    async with attempt(session):
        out = await rules.decide_proposal(session, actor, patient_id, decision, datetime.now(UTC))
    target = f"/patients/{patient_id}/thresholds?decided={out.status}"
    if request.headers.get("hx-request"):
        return Response(status_code=200, headers={"HX-Redirect": target})
    return RedirectResponse(target, 303)
