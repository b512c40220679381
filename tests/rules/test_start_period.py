"""The start period and the patient's own normal values (issue 11, rules.md): readings alert
only on red edges for the first days, then the service proposes bands from the patient's own
readings, which a physician accepts (as they are or edited) or rejects, and all of it is kept."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from sqlalchemy import select, update

from rpm.access.staff import Role, Staff
from rpm.alerts.models import Alert
from rpm.audit.service import Actor
from rpm.errors import Conflict, Forbidden, NotFound
from rpm.patients.models import Patient
from rpm.rules import baselines, service
from rpm.rules.bands import Band, QuantityBands
from rpm.rules.models import ThresholdOverride, ThresholdProposal
from rpm.rules.schemas import ThresholdProposalDecision
from rpm.rules.templates import HEART_RATE, SPO2, TEMPERATURE
from rpm.rules.thresholds import effective_thresholds, start_period_thresholds, with_start_period
from tests.alerts.test_lifecycle import HOUR, ORG_A, T0, enrol, send, staff

DAY = timedelta(days=1)
GENERAL = effective_thresholds([]).bands


def physician(orgnr: str = ORG_A) -> Actor:
    return Actor(
        staff=Staff(sub="dr-lie", name="Lege Lie", hpr="7654321", orgnr=orgnr, roles=frozenset({Role.physician}))
    )


# -- the proposal, by hand ---------------------------------------------------------------------


def test_a_pulse_series_gives_its_percentiles_widened_by_the_margin():
    # 21 readings 60..80: the 5th percentile is at rank 0.05 x 20 = 1 (61), the 95th at 19 (79).
    [(code, proposed)] = baselines.propose({HEART_RATE: [float(v) for v in range(60, 81)]}, GENERAL).items()
    assert code == HEART_RATE
    assert (proposed.basis.p5, proposed.basis.p95, proposed.basis.readings) == (61.0, 79.0, 21)
    # 61 - 5 and 79 + 5; the red band in force (41-130) is kept.
    assert proposed.bands == QuantityBands(yellow=Band(low=56, high=84), red=Band(low=41, high=130))


def test_percentiles_between_ranks_are_interpolated_and_rounded_outwards():
    # 11 readings 36.0..37.0 Cel: ranks 0.5 and 9.5, so 36.05 and 36.95; minus 0.3 is 35.75,
    # rounded down to the tenth 35.7. The general template has no red edge above: the fever
    # edge in force (39.0) stays.
    values = [round(36.0 + n / 10, 1) for n in range(11)]
    proposed = baselines.propose({TEMPERATURE: values}, GENERAL)[TEMPERATURE]
    assert (proposed.basis.p5, proposed.basis.p95) == (36.05, 36.95)
    assert proposed.bands.yellow == Band(low=35.7, high=39.0)


def test_a_proposal_is_never_wider_than_the_red_band_in_force():
    # SpO2 around 86-90 % in the general template (red below 92): the yellow edge stops at 92.
    values = [86.0, 87.0, 88.0, 88.0, 89.0, 89.0, 90.0, 90.0, 90.0, 91.0]
    proposed = baselines.propose({SPO2: values}, GENERAL)[SPO2]
    assert proposed.bands.yellow == Band(low=92, high=None) and proposed.bands.red == Band(low=92)


def test_too_few_readings_or_a_quantity_without_bands_proposes_nothing():
    few = [95.0] * (baselines.MIN_READINGS - 1)
    assert baselines.propose({SPO2: few}, GENERAL) == {}
    assert baselines.propose({"29463-7": [80.0] * 30}, GENERAL) == {}  # body weight: the trend's
    assert SPO2 in baselines.propose({SPO2: [*few, 95.0]}, GENERAL)


# -- judging in the start period ------------------------------------------------------------------


def test_start_period_thresholds_keep_only_the_red_edges():
    thresholds = effective_thresholds(["heart-failure"])
    start = start_period_thresholds(thresholds)
    assert start.in_start_period and start.weight_gain is None
    assert start.bands[SPO2] == QuantityBands(yellow=Band(low=92), red=Band(low=92))
    within = with_start_period(thresholds, T0 + 14 * DAY)
    assert within.at(T0).in_start_period and not within.at(T0 + 14 * DAY).in_start_period
    assert with_start_period(thresholds, None) is thresholds


async def start_period_patient(session, days: int = 14, **kwargs):
    """A patient with the general template only (SpO2 red below 92, yellow below 94)."""
    patient = await enrol(session, created_at=T0, **{"conditions": (), **kwargs})
    await session.execute(update(Patient).where(Patient.id == patient.id).values(start_period_days=days))
    return patient


async def alerts_of(session, patient_id: uuid.UUID) -> list[tuple[str, str]]:
    rows = await session.execute(
        select(Alert.rule, Alert.level).where(Alert.patient_id == patient_id).order_by(Alert.opened_at)
    )
    return [tuple(row) for row in rows]


async def test_in_the_start_period_only_red_edges_alert(session):
    patient = await start_period_patient(session)
    await send(session, patient, 93, at=T0 + DAY)  # yellow by the template: quiet
    assert await alerts_of(session, patient.id) == []
    await send(session, patient, 91, at=T0 + 2 * DAY)  # red: alerts as ever
    assert await alerts_of(session, patient.id) == [("threshold:59408-5:low", "red")]


async def test_after_the_start_period_the_bands_in_force_alert_again(session):
    patient = await start_period_patient(session)
    await send(session, patient, 93, at=T0 + 14 * DAY + HOUR)
    assert await alerts_of(session, patient.id) == [("threshold:59408-5:low", "yellow")]


async def test_a_late_reading_from_the_start_period_is_judged_as_it_was_then(session):
    patient = await start_period_patient(session)
    await send(session, patient, 93, at=T0 + DAY, received_at=T0 + 20 * DAY)
    assert await alerts_of(session, patient.id) == []


async def test_the_weight_gain_trend_waits_for_the_end_of_the_start_period(session):
    patient = await start_period_patient(session, conditions=["heart-failure"], devices=("body-weight",))
    await send(session, patient, 80.0, at=T0 + DAY, reading_type="body-weight")
    await send(session, patient, 83.0, at=T0 + 2 * DAY, reading_type="body-weight")  # +3 kg in a day
    assert await alerts_of(session, patient.id) == []


# -- the proposal at the end, and the decision ------------------------------------------------


async def patient_with_a_finished_start_period(session, values=(94, 95, 96, 97, 95, 96, 95, 94, 96, 97, 95, 96)):
    patient = await start_period_patient(session)
    for day, value in enumerate(values):
        await send(session, patient, value, at=T0 + day * DAY + HOUR)
    return patient


async def proposal_of(session, patient_id: uuid.UUID) -> ThresholdProposal | None:
    return await session.scalar(
        select(ThresholdProposal)
        .where(ThresholdProposal.patient_id == patient_id)
        .execution_options(populate_existing=True)
    )


async def test_the_end_of_the_start_period_brings_one_proposal(session):
    patient = await patient_with_a_finished_start_period(session)
    ended = T0 + 14 * DAY
    assert (
        await service.propose_due(session, ended - timedelta(seconds=1)) == 0
        or await proposal_of(session, patient.id) is None
    )
    assert await proposal_of(session, patient.id) is None
    assert await service.propose_due(session, ended) >= 1
    proposal = await proposal_of(session, patient.id)
    assert proposal is not None and proposal.status == "proposed"
    assert (proposal.period_from, proposal.period_to) == (T0, ended)
    # 12 readings 94-97: p5 = 94, p95 = 97 (ranks 0.55 and 10.45 of the sorted values);
    # 94 - 1 = 93 within the red edge 92.
    assert proposal.bands == {SPO2: {"yellow": {"low": 93.0}, "red": {"low": 92.0}}}
    assert proposal.basis[SPO2]["readings"] == 12
    await service.propose_due(session, ended + DAY)
    assert (await proposal_of(session, patient.id)).id == proposal.id  # one per patient


async def test_patients_without_a_start_period_get_no_proposal(session):
    patient = await enrol(session, created_at=T0, conditions=())
    await send(session, patient, 95, at=T0 + HOUR)
    await service.propose_due(session, T0 + 60 * DAY)
    assert await proposal_of(session, patient.id) is None


async def test_a_physician_accepts_the_proposal_and_it_becomes_the_thresholds(session):
    patient = await patient_with_a_finished_start_period(session)
    await service.propose_due(session, T0 + 14 * DAY)
    out = await service.decide_proposal(
        session,
        physician(),
        patient.id,
        ThresholdProposalDecision(decision="accept", reason="Agreed with the GP"),
        T0 + 15 * DAY,
    )
    assert (out.status, out.decided_by, out.decision_reason, out.thresholds_version) == (
        "accepted",
        "dr-lie",
        "Agreed with the GP",
        1,
    )
    override = await session.scalar(select(ThresholdOverride).where(ThresholdOverride.patient_id == patient.id))
    assert override.bands == {SPO2: {"yellow": {"low": 93.0}, "red": {"low": 92.0}}}
    assert override.reason == "Start-period proposal accepted: Agreed with the GP"
    in_force = (await service.thresholds_for(session, [patient.id]))[patient.id]
    assert in_force.bands[SPO2].yellow == Band(low=93.0)
    with pytest.raises(Conflict):
        await service.decide_proposal(
            session, physician(), patient.id, ThresholdProposalDecision(decision="reject", reason="x"), T0
        )


async def test_an_edited_acceptance_and_a_rejection_are_kept_as_such(session):
    edited = await patient_with_a_finished_start_period(session)
    rejected = await patient_with_a_finished_start_period(session)
    await service.propose_due(session, T0 + 14 * DAY)
    out = await service.decide_proposal(
        session,
        physician(),
        edited.id,
        ThresholdProposalDecision.model_validate(
            {
                "decision": "accept",
                "reason": "Habitually 93",
                "bands": {SPO2: {"yellow": {"low": 92}, "red": {"low": 90}}},
            }
        ),
        T0 + 15 * DAY,
    )
    assert out.status == "edited"
    in_force = (await service.thresholds_for(session, [edited.id]))[edited.id]
    assert in_force.bands[SPO2] == QuantityBands(yellow=Band(low=92), red=Band(low=90))
    out = await service.decide_proposal(
        session, physician(), rejected.id, ThresholdProposalDecision(decision="reject", reason="Too unstable"), T0
    )
    assert (out.status, out.thresholds_version) == ("rejected", None)
    assert await session.scalar(select(ThresholdOverride).where(ThresholdOverride.patient_id == rejected.id)) is None


async def test_only_a_physician_or_admin_decides_and_only_on_their_patients(session):
    patient = await patient_with_a_finished_start_period(session)
    await service.propose_due(session, T0 + 14 * DAY)
    decision = ThresholdProposalDecision(decision="reject", reason="No")
    with pytest.raises(Forbidden):
        await service.decide_proposal(session, staff(), patient.id, decision, T0)
    with pytest.raises(NotFound):
        await service.decide_proposal(session, physician("999999999"), patient.id, decision, T0)
    assert (await service.read_proposal(session, staff(), patient.id)).status == "proposed"


async def test_reading_a_proposal_that_does_not_exist_is_not_found(session):
    patient = await enrol(session)
    with pytest.raises(NotFound) as raised:
        await service.read_proposal(session, staff(), patient.id)
    assert raised.value.code == "no_proposal"


def test_a_rejection_cannot_carry_edits():
    with pytest.raises(ValueError):
        ThresholdProposalDecision.model_validate(
            {"decision": "reject", "reason": "x", "bands": {SPO2: {"yellow": {"low": 92}}}}
        )
