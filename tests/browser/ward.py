"""A ward for the browser tests of the flows: patients with Norwegian names, several conditions
and weeks of readings, at different levels on the worklist, so pages (and the screenshots in
docs/screenshots/) look as they would on a real ward.

The readings go through the ingest path (rpm.observations.service.record_messages, as the
worker stores them), each received a minute after it was taken and judged by the rules then:
the alerts they raised opened at that time. Alerts a colleague dealt with back then are
acknowledged and resolved through the alert services at that time too, in the order of events.

Who is where on the worklist (before a test makes something happen), each with the devices
of their plan (a maker's model and serial, handed out when they were enrolled six weeks ago):

- Kari Nordmann (KOLS): a month of SpO2 and pulse twice a day, her SpO2 habitually 86-91 %
  with dips that alerted and were resolved by a colleague (85 %, 83 %, 85 %); three hours ago
  85 % again, an open yellow alert. A test's reading below 84 % raises it to red.
- Ola Hansen (hjertesvikt): two weeks of morning weights, 2.6 kg up in two days: yellow
  (weight gain), unacknowledged for two hours.
- Bjørg Solberg (diabetes, høyt blodtrykk): blood sugar 14.6 mmol/L yesterday evening, yellow,
  acknowledged by a colleague.
- Astrid Berg (KOLS): no SpO2 for three days against a daily plan: missing measurement.
- Ingrid Johansen (diabetes), Per Olsen (høyt blodtrykk), Magnus Larsen (hjertesvikt): green.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from rpm.access.staff import Role, Staff
from rpm.alerts import service as alerts
from rpm.alerts.models import ResolutionOutcome
from rpm.audit.service import Actor
from rpm.devices.models import Device, DeviceAssignment
from rpm.norway import OSLO
from tests.api.helpers import ingest, message, reading
from tests.browser.harness import UNITS, TestPatient, add_patient

Value = float | dict[str, float]
# The devices a patient is handed, by reading type: maker, model, and how its serials begin.
MAKES = {
    "spo2": ("Nonin", "3230 Bluetooth", "NONIN-3230"),
    "heart-rate": ("Polar", "Verity Sense", "POLAR-VS"),
    "body-weight": ("A&D", "UC-352BLE", "AND-352"),
    "blood-glucose": ("Roche", "Accu-Chek Instant", "ACI"),
    "blood-pressure": ("Omron", "M7 Intelli IT", "OMRON-M7"),
}
# A colleague of the nurse in the tests, who dealt with the ward's earlier alerts.
COLLEAGUE_SUB, COLLEAGUE_NAME = "nurse-2", "Per Pleier"


@dataclass(frozen=True)
class Settled:
    """A colleague dealt with the patient's active alerts `at`: acknowledged them, and resolved
    them with `note` and `outcome` unless `note` is None."""

    at: datetime
    note: str | None = None
    outcome: ResolutionOutcome | None = None


@dataclass(frozen=True)
class Ward:
    kari: TestPatient
    ola: TestPatient
    bjorg: TestPatient
    astrid: TestPatient
    ingrid: TestPatient
    per: TestPatient
    magnus: TestPatient

    @property
    def patients(self) -> list[TestPatient]:
        return [self.kari, self.ola, self.bjorg, self.astrid, self.ingrid, self.per, self.magnus]


def at_clock(days_ago: int, hour: int, minute: int = 0) -> datetime:
    """That clock time in Norway `days_ago` days before today, in UTC."""
    day = datetime.now(OSLO).date() - timedelta(days=days_ago)
    return datetime.combine(day, time(hour, minute), OSLO).astimezone(UTC)


def schedule(days: int, clock: Sequence[tuple[int, int]], *, until: datetime) -> list[datetime]:
    """The times of a measurement plan kept at these clock times over the last `days` days,
    up to `until` (nothing in the future)."""
    times = [at_clock(day, hour, minute) for day in range(days, -1, -1) for hour, minute in clock]
    return [moment for moment in times if moment <= until]


def series(
    times: Sequence[datetime], value: Callable[[random.Random], Value], seed: str
) -> list[tuple[datetime, Value]]:
    """A reading at each time, the value drawn by `value` (the same every run: seeded)."""
    rng = random.Random(seed)
    return [(moment, value(rng)) for moment in times]


def around(centre: float, spread: float, digits: int = 0) -> Callable[[random.Random], float]:
    def draw(rng: random.Random) -> float:
        return round(centre + rng.uniform(-spread, spread), digits)

    return draw


def pressure(systolic: float, diastolic: float, pulse: float) -> Callable[[random.Random], dict[str, float]]:
    def draw(rng: random.Random) -> dict[str, float]:
        return {
            "systolic": float(round(systolic + rng.uniform(-8, 8))),
            "diastolic": float(round(diastolic + rng.uniform(-5, 5))),
            "pulse": float(round(pulse + rng.uniform(-6, 6))),
        }

    return draw


def replaced(readings: list[tuple[datetime, Value]], changes: Mapping[datetime, Value]) -> list[tuple[datetime, Value]]:
    """The readings with the values at some times changed (and readings added at new times)."""
    kept = {moment: value for moment, value in readings}
    kept.update(changes)
    return sorted(kept.items())


async def hand_out(sessions: async_sessionmaker[AsyncSession], patient: TestPatient, at: datetime) -> TestPatient:
    """The patient's devices as they would be: a maker's model and serial, registered and
    assigned to the patient when they were enrolled (`at`)."""
    serials = {}
    async with sessions() as session, session.begin():
        for kind, serial in patient.serials.items():
            maker, model, prefix = MAKES[kind]
            serials[kind] = f"{prefix}-{uuid.uuid4().int % 10**8:08d}"
            device_id = await session.scalar(select(Device.id).where(Device.serial == serial))
            await session.execute(
                update(Device)
                .where(Device.id == device_id)
                .values(serial=serials[kind], manufacturer=maker, model=model, created_at=at - timedelta(days=1))
            )
            await session.execute(
                update(DeviceAssignment).where(DeviceAssignment.device_id == device_id).values(valid_from=at)
            )
    return TestPatient(patient.id, patient.name, serials)


async def store_course(
    sessions: async_sessionmaker[AsyncSession],
    orgnr: str,
    patient: TestPatient,
    readings: dict[str, list[tuple[datetime, Value]]],
    settled: Sequence[Settled] = (),
    *,
    gateway_id: str = "hub-1",
) -> None:
    """The patient's readings of each type, and the colleague's handling of their alerts, in
    the order they happened, committed."""
    colleague = Actor(Staff(COLLEAGUE_SUB, COLLEAGUE_NAME, None, orgnr, frozenset({Role.nurse})))
    events: list[tuple[datetime, int, Any]] = [(s.at, 1, s) for s in settled]
    events += [(moment, 0, (kind, value)) for kind, taken in readings.items() for moment, value in taken]
    async with sessions() as session, session.begin():
        for moment, _, event in sorted(events, key=lambda e: (e[0], e[1])):
            if isinstance(event, Settled):
                await settle(session, colleague, patient, event)
                continue
            kind, value = event
            body = reading(patient.serials[kind], moment.isoformat(), type=kind, value=value, unit=UNITS[kind])
            received = moment + timedelta(minutes=1)
            [outcome] = await ingest(session, message([body], gateway_id, received_at=received), now=received)
            assert outcome.results[0]["status"] == "accepted", outcome.results


async def settle(session: AsyncSession, colleague: Actor, patient: TestPatient, settled: Settled) -> None:
    active = await alerts.queue(session, colleague, patient_id=patient.id)
    assert active, f"nothing to settle for {patient.name} at {settled.at}"
    for item in active:
        await alerts.acknowledge(session, colleague, item.id, settled.at)
        if settled.note is not None:
            later = settled.at + timedelta(minutes=25)
            await alerts.resolve(session, colleague, item.id, settled.note, later, settled.outcome)


async def add_ward(sessions: async_sessionmaker[AsyncSession], orgnr: str) -> Ward:
    """The ward described above, followed by `orgnr` (committed)."""
    now = datetime.now(UTC)

    async def enrol(name: str, conditions: list[str], plan: dict[str, int]) -> TestPatient:
        # Enrolled six weeks ago: their plans count from then, a month of readings fits in.
        enrolled = now - timedelta(weeks=6)
        patient = await add_patient(
            sessions, orgnr, name, conditions=conditions, devices=list(plan), plan=plan, enrolled_at=enrolled
        )
        return await hand_out(sessions, patient, enrolled)

    kari = await enrol("Kari Nordmann", ["copd"], {"spo2": 12, "heart-rate": 12})
    taken = schedule(30, ((8, 5), (20, 10)), until=now)
    dips = {at_clock(21, 20, 10): 85.0, at_clock(12, 8, 5): 83.0, at_clock(5, 20, 10): 85.0}
    dip = now - timedelta(hours=3)  # today's dip: still open
    await store_course(
        sessions,
        orgnr,
        kari,
        {
            "spo2": replaced(series(taken, around(89, 2.5), "kari-spo2"), dips | {dip: 85.0}),
            "heart-rate": replaced(series(taken, around(80, 8), "kari-hr"), {dip: 96.0}),
        },
        [
            Settled(
                at_clock(21, 21, 0),
                "Ringte Kari. SpO2 89 % etter hvile, ingen tegn til forverring.",
                ResolutionOutcome.contacted_patient,
            ),
            Settled(
                at_clock(12, 8, 40),
                "Økt tungpust siden i går. Fastlegen vurderer kur med prednisolon.",
                ResolutionOutcome.referred_to_gp,
            ),
            Settled(
                at_clock(5, 21, 0),
                "Målte igjen etter inhalasjon: 88 %. Råd om å ta kontakt ved forverring.",
                ResolutionOutcome.advice_given,
            ),
        ],
    )

    ola = await enrol("Ola Hansen", ["heart-failure"], {"body-weight": 24, "spo2": 24})
    weights = series(schedule(14, ((7, 30),), until=now - timedelta(hours=60)), around(84.0, 0.3, 1), "ola-weight")
    # The last three mornings: 2.6 kg up in two days, more than the 2 kg in three days allowed.
    weights += [(now - timedelta(hours=h), kg) for h, kg in ((50, 84.2), (26, 85.3), (2, 86.8))]
    oxygen = series([moment for moment, _ in weights], around(96, 1), "ola-spo2")
    await store_course(sessions, orgnr, ola, {"body-weight": weights, "spo2": oxygen})

    meals = schedule(14, ((7, 45), (12, 30), (18, 15)), until=now)
    mornings = schedule(14, ((8, 0),), until=now)
    bjorg = await enrol("Bjørg Solberg", ["diabetes", "hypertension"], {"blood-glucose": 12, "blood-pressure": 24})
    high = at_clock(1, 18, 15)
    glucose = replaced(series(meals, around(8.0, 2.0, 1), "bjorg-glucose"), {high: 14.6})
    pressures = series(mornings, pressure(142, 86, 74), "bjorg-bp")
    await store_course(
        sessions,
        orgnr,
        bjorg,
        {"blood-glucose": glucose, "blood-pressure": pressures},
        [Settled(high + timedelta(hours=1))],  # acknowledged, followed up
    )

    astrid = await enrol("Astrid Berg", ["copd"], {"spo2": 24})
    daily = [at_clock(day, 9, 30) for day in range(12, 2, -1)]  # nothing for three days
    await store_course(sessions, orgnr, astrid, {"spo2": series(daily, around(91, 2), "astrid-spo2")})

    ingrid = await enrol("Ingrid Johansen", ["diabetes"], {"blood-glucose": 12})
    await store_course(sessions, orgnr, ingrid, {"blood-glucose": series(meals, around(7.0, 2.0, 1), "ingrid-glucose")})

    per = await enrol("Per Olsen", ["hypertension"], {"blood-pressure": 24})
    await store_course(sessions, orgnr, per, {"blood-pressure": series(mornings, pressure(136, 84, 68), "per-bp")})

    magnus = await enrol("Magnus Larsen", ["heart-failure"], {"body-weight": 24, "heart-rate": 24})
    await store_course(
        sessions,
        orgnr,
        magnus,
        {
            "body-weight": series(mornings, around(92.5, 0.4, 1), "magnus-weight"),
            "heart-rate": series(mornings, around(66, 6), "magnus-hr"),
        },
    )
    return Ward(kari, ola, bjorg, astrid, ingrid, per, magnus)
