"""Applying the rules: thresholds in force for patients, their changes, and judging readings."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Collection
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from rpm.access import service as access
from rpm.access.staff import Role
from rpm.audit.service import Actor, record
from rpm.errors import Conflict, NotFound
from rpm.rules import repository
from rpm.rules.bands import Level
from rpm.rules.baselines import propose
from rpm.rules.models import ThresholdOverride, ThresholdProposal
from rpm.rules.preview import counts, simulate
from rpm.rules.schemas import (
    AlertCounts,
    EffectiveThresholdsOut,
    OverrideChange,
    PreviewAlert,
    ProposedQuantity,
    ThresholdProposalDecision,
    ThresholdProposalOut,
    ThresholdsChange,
    ThresholdsPreviewIn,
    ThresholdsPreviewOut,
    ThresholdsRecord,
    ThresholdsVersion,
)
from rpm.rules.thresholds import (
    WEIGHT_GAIN_KEY,
    EffectiveThresholds,
    changed_overrides,
    effective_thresholds,
    override_changes,
    with_start_period,
)
from rpm.versions import add_version

log = logging.getLogger("rpm.rules")


async def thresholds_for(
    session: AsyncSession, patient_ids: Collection[uuid.UUID]
) -> dict[uuid.UUID, EffectiveThresholds]:
    if not patient_ids:
        return {}
    return {
        inputs.patient_id: with_start_period(
            effective_thresholds(inputs.conditions, inputs.bands, inputs.weight_gain, inputs.version or 0),
            inputs.start_period_ends_at,
        )
        for inputs in await repository.threshold_inputs(session, patient_ids)
    }


async def read_thresholds(session: AsyncSession, actor: Actor, patient_id: uuid.UUID) -> dict[str, Any]:
    await access.require_patient(session, actor.staff, patient_id)
    thresholds = (await thresholds_for(session, [patient_id]))[patient_id]
    await record(session, actor, "read", "Thresholds", str(patient_id), [patient_id])
    return thresholds.as_dict()


async def thresholds_record(session: AsyncSession, actor: Actor, patient_id: uuid.UUID) -> ThresholdsRecord:
    """The thresholds in force with their sources, and the history of the patient's overrides:
    who changed what, when and why, version by version."""
    await access.require_patient(session, actor.staff, patient_id)
    (inputs,) = await repository.threshold_inputs(session, [patient_id])
    history = await repository.override_history(session, patient_id)
    versions: list[ThresholdsVersion] = []
    set_in: dict[str, int] = {}
    before_bands: dict[str, Any] | None = None
    before_weight_gain: dict[str, Any] | None = None
    for row in history:
        changes = override_changes(before_bands, before_weight_gain, row.bands, row.weight_gain)
        for key, _, after in changes:
            if after is None:
                set_in.pop(key, None)
            else:
                set_in[key] = row.version
        versions.append(
            ThresholdsVersion(
                version=row.version,
                changed_at=row.changed_at,
                changed_by_sub=row.changed_by_sub,
                changed_by_name=row.changed_by_name,
                changed_by_hpr=row.changed_by_hpr,
                changed_by_org=row.changed_by_org,
                reason=row.reason,
                changes=[OverrideChange(key=key, before=before, after=after) for key, before, after in changes],
            )
        )
        before_bands, before_weight_gain = row.bands, row.weight_gain
    current = effective_thresholds(inputs.conditions, inputs.bands, inputs.weight_gain, inputs.version or 0)
    overridden = set(current.overridden) | ({WEIGHT_GAIN_KEY} if current.weight_gain_source == "override" else set())
    await record(session, actor, "read", "Thresholds", str(patient_id), [patient_id])
    return ThresholdsRecord(
        thresholds=EffectiveThresholdsOut.model_validate(current.as_dict()),
        templates=EffectiveThresholdsOut.model_validate(effective_thresholds(inputs.conditions).as_dict()),
        set_in={key: version for key, version in set_in.items() if key in overridden},
        history=versions[::-1],
    )


async def version_in_force(session: AsyncSession, patient_id: uuid.UUID) -> int:
    """The version of the patient's overrides in force (0: templates only)."""
    current = (await repository.latest_overrides(session, [patient_id])).get(patient_id)
    return current.version if current else 0


async def change_thresholds(
    session: AsyncSession, actor: Actor, patient_id: uuid.UUID, change: ThresholdsChange
) -> dict[str, Any]:
    """A new version of the patient's overrides; it applies to readings that arrive afterwards."""
    await access.require_care_team(session, actor.staff, patient_id)
    actor.staff.require(Role.physician, Role.admin)
    current = (await repository.latest_overrides(session, [patient_id])).get(patient_id)
    bands, weight_gain = changed_overrides(
        current.bands if current else None,
        current.weight_gain if current else None,
        {code: None if b is None else b.model_dump(exclude_none=True) for code, b in change.bands.items()},
        change.weight_gain.model_dump() if change.weight_gain is not None else None,
    )
    await add_version(
        session,
        ThresholdOverride(
            patient_id=patient_id, version=(current.version if current else 0) + 1, bands=bands, weight_gain=weight_gain
        ),
        actor.staff,
        change.reason,
        Conflict("thresholds_changed", "the thresholds were changed at the same moment; try again"),
    )
    await record(session, actor, "update", "Thresholds", str(patient_id), [patient_id])
    thresholds = (await thresholds_for(session, [patient_id])).get(patient_id)
    if thresholds is None:
        raise NotFound("not_found", "no such patient")
    return thresholds.as_dict()


async def preview_thresholds(
    session: AsyncSession, actor: Actor, patient_id: uuid.UUID, proposal: ThresholdsPreviewIn, now: datetime
) -> ThresholdsPreviewOut:
    """The alerts the proposed thresholds would have raised on the patient's readings of the
    last `days` days, judged by the live rules (rules.preview). Nothing is stored."""
    await access.require_patient(session, actor.staff, patient_id)
    (inputs,) = await repository.threshold_inputs(session, [patient_id])
    bands, weight_gain = changed_overrides(
        inputs.bands,
        inputs.weight_gain,
        {code: None if b is None else b.model_dump(exclude_none=True) for code, b in proposal.bands.items()},
        proposal.weight_gain.model_dump() if proposal.weight_gain is not None else None,
    )
    current = effective_thresholds(inputs.conditions, inputs.bands, inputs.weight_gain, inputs.version or 0)
    proposed = effective_thresholds(inputs.conditions, bands, weight_gain, (inputs.version or 0) + 1)
    start = now - timedelta(days=proposal.days)
    # The weight-gain trend looks back from the first day's weights.
    history = max((t.weight_gain.window_hours for t in (current, proposed) if t.weight_gain), default=0)
    readings = await repository.readings_since(session, patient_id, start - timedelta(hours=history))
    raised = simulate(patient_id, readings, proposed, start)
    await record(session, actor, "preview", "Thresholds", str(patient_id), [patient_id])
    return ThresholdsPreviewOut(
        days=proposal.days,
        from_=start,
        to=now,
        readings=sum(1 for r in readings if r.effective_at >= start),
        **counts(raised),
        alerts=[
            PreviewAlert(
                rule=a.rule,
                level="red" if a.level is Level.red else "yellow",
                at=a.opened_at,
                last_reading_at=a.last_reading_at,
                occurrences=a.occurrences,
                value=a.value,
                unit=a.unit,
                threshold=a.threshold,
                observations=[f"Observation/{o}" for o in a.observations],
            )
            for a in raised
        ],
        current=AlertCounts(**counts(simulate(patient_id, readings, current, start))),
        thresholds=EffectiveThresholdsOut.model_validate(proposed.as_dict()),
    )


# -- the start period's proposal (rules.baselines) ------------------------------------------------

PROPOSALS_PER_CHECK = 100  # patients whose start period ended, per periodic check


async def propose_due(session: AsyncSession, now: datetime) -> int:
    """Propose bands to the patients whose start period has ended and who have no proposal.
    Safe while other workers do the same. Returns how many proposals were made."""
    made = 0
    for due in await repository.due_a_proposal(session, now, PROPOSALS_PER_CHECK):
        in_force = (await thresholds_for(session, [due.patient_id]))[due.patient_id]
        values = await repository.values_in_period(session, due.patient_id, due.period_from, due.period_to)
        proposed = propose(values, in_force.bands)
        made += await repository.add_proposal(
            session,
            {
                "patient_id": due.patient_id,
                "proposed_at": now,
                "period_from": due.period_from,
                "period_to": due.period_to,
                "bands": {code: p.bands.as_dict() for code, p in proposed.items()},
                "basis": {code: p.basis.as_dict() for code, p in proposed.items()},
                "status": "proposed",
            },
        )
    return made


def _proposal_out(proposal: ThresholdProposal) -> ThresholdProposalOut:
    return ThresholdProposalOut(
        patient=str(proposal.patient_id),
        proposed_at=proposal.proposed_at,
        period_from=proposal.period_from,
        period_to=proposal.period_to,
        status=proposal.status,  # type: ignore[arg-type]
        bands={
            code: ProposedQuantity(**bands, **proposal.basis[code])
            for code, bands in proposal.bands.items()
            if code in proposal.basis
        },
        decided_at=proposal.decided_at,
        decided_by=proposal.decided_by_sub,
        decided_by_name=proposal.decided_by_name,
        decision_reason=proposal.decision_reason,
        thresholds_version=proposal.thresholds_version,
    )


async def read_proposal(session: AsyncSession, actor: Actor, patient_id: uuid.UUID) -> ThresholdProposalOut:
    await access.require_patient(session, actor.staff, patient_id)
    proposal = await repository.proposal_of(session, patient_id)
    if proposal is None:
        raise NotFound(
            "no_proposal",
            "no thresholds have been proposed for this patient: the start period has not ended, or there is none",
        )
    await record(session, actor, "read", "ThresholdProposal", str(patient_id), [patient_id])
    return _proposal_out(proposal)


async def decide_proposal(
    session: AsyncSession, actor: Actor, patient_id: uuid.UUID, decision: ThresholdProposalDecision, now: datetime
) -> ThresholdProposalOut:
    """Accept (as proposed or edited) or reject the proposal. Accepting makes a new version of
    the patient's overrides with the proposed bands, the reason saying where they came from."""
    await access.require_care_team(session, actor.staff, patient_id)
    actor.staff.require(Role.physician, Role.admin)
    proposal = await repository.proposal_of(session, patient_id, for_update=True)
    if proposal is None:
        raise NotFound("no_proposal", "no thresholds have been proposed for this patient")
    if proposal.status != "proposed":
        raise Conflict("proposal_decided", f"the proposal was already {proposal.status}")
    if decision.decision == "accept":
        bands: dict[str, Any] = dict(proposal.bands)
        edits = {code: b.model_dump(exclude_none=True) if b else None for code, b in (decision.bands or {}).items()}
        edited = any(bands.get(code) != band for code, band in edits.items())
        for code, band in edits.items():
            if band is None:
                bands.pop(code, None)
            else:
                bands[code] = band
        status = "edited" if edited else "accepted"
        change = ThresholdsChange.model_validate(
            {"reason": f"Start-period proposal {status}: {decision.reason}", "bands": bands}
        )
        await change_thresholds(session, actor, patient_id, change)
        proposal.thresholds_version = await version_in_force(session, patient_id)
    else:
        status = "rejected"
    proposal.status, proposal.decided_at, proposal.decision_reason = status, now, decision.reason
    proposal.decided_by_sub, proposal.decided_by_name = actor.staff.sub, actor.staff.name
    proposal.decided_by_hpr, proposal.decided_by_org = actor.staff.hpr, actor.staff.orgnr
    await session.flush()
    await record(session, actor, "decide", "ThresholdProposal", str(patient_id), [patient_id])
    return _proposal_out(proposal)
