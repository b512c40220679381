"""What a simulated cohort measures over time. Pure: no clock, no broker; all from arguments.

A reading's value is the patient's usual value (baseline, slow drift, daily rhythm), moved
towards the height of a deterioration episode when one is under way, plus device noise.
Drift and noise are functions of (seed, patient, quantity, time) alone, so any stretch of
time can be simulated on its own and still joins the stretch before it.

Realism that matters to the rules (rules.md):
- On a good day readings stay inside the templates' bands: usual values sit away from the
  band edges, and noise is a normal truncated at 2.5 standard deviations (a device's error
  and a moment's variation are bounded; a wild value is a fault, simulated separately).
  What does cross a band outside an episode is an artefact: a cold finger on the oximeter,
  a cuff put on badly; the patient measures again a few minutes later. These are the
  false alarms a clinical yardstick should see, a few per patient-year.
- During an episode, values travel to a height well beyond the band edges and stay there
  for at least a day, with the noise narrowed (a sustained change is what a patient
  notices), and the patient measures an extra time when it peaks. So every episode
  crosses the bands its `expected_rules` name, by construction.
"""

from __future__ import annotations

import json
import math
import random
from collections.abc import Collection, Iterable, Iterator
from dataclasses import dataclass, field, replace
from datetime import date, datetime, time, timedelta
from typing import Any

from rpm.norway import OSLO
from rpm.simulator.cohort import SimDevice, SimPatient

COPD_EXACERBATION = "copd-exacerbation"
FLUID_RETENTION = "fluid-retention"
HYPOGLYCAEMIA = "hypoglycaemia"
FEVER = "fever"
MISSED_DAY = "missed-day"
GATEWAY_OFFLINE = "gateway-offline"
CLINICAL_KINDS: tuple[str, ...] = (COPD_EXACERBATION, FLUID_RETENTION, HYPOGLYCAEMIA, FEVER)

# Rule-key prefixes (rules.md) that an episode of each kind trips.
EXPECTED_RULES: dict[str, tuple[str, ...]] = {
    COPD_EXACERBATION: ("threshold:59408-5", "threshold:8867-4"),  # SpO2 low, pulse high
    FLUID_RETENTION: ("trend:weight-gain",),
    HYPOGLYCAEMIA: ("threshold:14743-9",),
    FEVER: ("threshold:8310-5", "threshold:9279-1"),  # temperature high, breathing fast
    MISSED_DAY: ("missing:",),  # only where the missing-measurement check runs at the time
    GATEWAY_OFFLINE: (),
}

# Expected per patient-year, besides the clinical episodes (an argument of `simulate`).
OFFLINE_PER_HUB_YEAR = 3.0
ARTEFACTS_PER_PATIENT_YEAR = 2.0
FAULTS_PER_PATIENT_YEAR = 6.0
DUPLICATES_PER_PATIENT_YEAR = 8.0
# Time between two clinical episodes of a patient: the last one's alerts have been dealt with
# and its readings have left the weight-gain window.
EPISODE_GAP = timedelta(days=10)
# A patient whose episode begins at the start of a run notices it at once (the live demo).
ONSET_AT_START = timedelta(minutes=20)

NOISE_LIMIT = 2.5  # standard deviations: device noise is bounded
YEAR_DAYS = 365.25


@dataclass(frozen=True)
class Variation:
    noise: float  # standard deviation of device noise and moment-to-moment change
    drift: float  # the most the usual value wanders over weeks
    multiplicative: bool = False  # glucose varies in proportion to its level


VARIATION: dict[str, Variation] = {
    "spo2": Variation(noise=1.0, drift=1.0),
    "heart-rate": Variation(noise=4.0, drift=3.0),
    "systolic": Variation(noise=6.0, drift=3.0),
    "diastolic": Variation(noise=4.0, drift=2.0),
    "body-temperature": Variation(noise=0.15, drift=0.1),
    "respiratory-rate": Variation(noise=1.0, drift=0.8),
    "body-weight": Variation(noise=0.15, drift=0.5),
    "blood-glucose": Variation(noise=0.12, drift=0.05, multiplicative=True),
}
DRIFT_PERIODS_DAYS = (13.0, 37.0, 97.0)
DRIFT_WEIGHTS = (0.5, 0.3, 0.2)  # sum to 1: |drift| never exceeds Variation.drift

# Decimals of a value in its canonical unit, as a device shows it.
CANONICAL_DECIMALS: dict[str, int] = {
    "spo2": 0,
    "heart-rate": 0,
    "systolic": 0,
    "diastolic": 0,
    "body-temperature": 1,
    "respiratory-rate": 0,
    "body-weight": 1,
    "blood-glucose": 1,
}


@dataclass(frozen=True)
class Episode:
    """Ground truth: something that happened to a patient between `start` and `end`.

    Clinical kinds rise from `start` to their height (`height_from`), hold it until
    `height_until`, and recover by `end`. `height` gives the values at the height by
    quantity (canonical units; for body weight, the kilograms gained)."""

    patient: str
    kind: str
    start: datetime
    end: datetime
    expected_rules: tuple[str, ...]
    height_from: datetime | None = None
    height_until: datetime | None = None
    height: tuple[tuple[str, float], ...] = ()
    gateway_id: str | None = None  # gateway-offline: the gateway that was offline

    @property
    def clinical(self) -> bool:
        return self.kind in CLINICAL_KINDS

    def covers(self, moment: datetime) -> bool:
        return self.start <= moment <= self.end

    def strength(self, moment: datetime) -> float:
        """0 before and after, 1 at the height, linear in between."""
        if self.height_from is None or self.height_until is None or not self.covers(moment):
            return 0.0
        if moment < self.height_from:
            return (moment - self.start) / (self.height_from - self.start)
        if moment <= self.height_until:
            return 1.0
        return (self.end - moment) / (self.end - self.height_until)


@dataclass(frozen=True)
class SimReading:
    patient: str
    gateway_id: str
    id: str
    device: SimDevice
    type: str
    time: datetime  # aware
    value: float | None  # canonical unit, at the device's precision
    values: dict[str, float] | None  # blood pressure: systolic, diastolic (mm[Hg]), pulse (/min)
    unit: str  # the unit the device sends
    episode: str | None = None  # the kind of clinical episode under way, if any

    def to_contract(self) -> dict[str, Any]:
        """The reading object of mqtt.md, its value in the device's unit."""
        body: dict[str, Any] = {
            "id": self.id,
            "device": {
                "serial": self.device.serial,
                "manufacturer": self.device.manufacturer,
                "model": self.device.model,
            },
            "type": self.type,
            "time": contract_time(self.time),
        }
        if self.values is not None:
            sent = {k: in_unit(v, self.unit) for k, v in self.values.items() if k != "pulse"}
            if "pulse" in self.values:
                sent["pulse"] = round(self.values["pulse"])  # always /min
            body["values"] = sent
        else:
            assert self.value is not None
            body["value"] = in_unit(self.value, self.unit)
        body["unit"] = self.unit
        return body


@dataclass(frozen=True)
class Fault:
    """A message sent on purpose that the backend must answer in a known way: a reading sent
    again (`duplicate`), or a bad message (`kind` is then the contract's reason code)."""

    gateway_id: str
    patient: str
    time: datetime  # when it is sent (simulated)
    kind: str  # "duplicate", or the rejection reason the ack must give
    reading_id: str | None  # the id the ack names; None for a message that is not JSON
    reading: dict[str, Any] | None = None  # the reading object as sent
    raw: bytes | None = None  # bad_json: the bytes as sent
    original: SimReading | None = None  # duplicate: the reading sent again

    def payload(self, stamp: datetime | None = None) -> bytes:
        """The message; `stamp` replaces the reading's time (live runs publish in wall-clock time)."""
        if self.raw is not None:
            return self.raw
        assert self.reading is not None
        reading = dict(self.reading)
        if stamp is not None:
            if self.kind == "time_without_offset":
                reading["time"] = stamp.astimezone(OSLO).replace(tzinfo=None).isoformat(timespec="seconds")
            else:
                reading["time"] = contract_time(stamp)
        return json.dumps({"sent_at": contract_time(stamp or self.time), "readings": [reading]}).encode()


@dataclass
class Timeline:
    start: datetime
    end: datetime
    readings: list[SimReading]  # by time
    episodes: list[Episode]  # by start: clinical episodes, missed days, gateways offline
    faults: list[Fault] = field(default_factory=list)  # by time

    def clinical_episodes(self) -> list[Episode]:
        return [e for e in self.episodes if e.clinical]

    def offline_windows(self) -> list[Episode]:
        return [e for e in self.episodes if e.kind == GATEWAY_OFFLINE]


# -- units ----------------------------------------------------------------------------------

# From the canonical unit to a unit a device may send (the inverse of mqtt.md's conversions),
# and the decimals that device shows.
FROM_CANONICAL: dict[str, tuple[float, float, int]] = {  # unit: (factor, offset, decimals)
    "mm[Hg]": (1.0, 0.0, 0),
    "kPa": (1 / 7.50062, 0.0, 2),
    "/min": (1.0, 0.0, 0),
    "bpm": (1.0, 0.0, 0),
    "%": (1.0, 0.0, 0),
    "1": (0.01, 0.0, 2),
    "Cel": (1.0, 0.0, 1),
    "[degF]": (9 / 5, 32.0, 1),
    "kg": (1.0, 0.0, 1),
    "g": (1000.0, 0.0, 0),
    "[lb_av]": (1 / 0.45359237, 0.0, 1),
    "mmol/L": (1.0, 0.0, 1),
    "mg/dL": (18.016, 0.0, 0),
    "L/min": (1.0, 0.0, 0),
}


def in_unit(canonical: float, unit: str) -> float | int:
    factor, offset, decimals = FROM_CANONICAL[unit]
    value = round(canonical * factor + offset, decimals)
    return int(value) if decimals == 0 else value


def contract_time(moment: datetime) -> str:
    """RFC 3339 with the Norwegian offset, to the second: "2026-11-23T07:59:41+01:00"."""
    return moment.astimezone(OSLO).isoformat(timespec="seconds")


# -- which episodes can happen to whom -------------------------------------------------------


def episode_kinds(patient: SimPatient) -> tuple[str, ...]:
    """Clinical episodes the patient's conditions make likely and the devices make visible."""
    kinds = []
    if "copd" in patient.conditions and patient.measures("spo2") and patient.measures("heart-rate"):
        kinds.append(COPD_EXACERBATION)
    if "copd" in patient.conditions and patient.measures("body-temperature") and patient.measures("respiratory-rate"):
        kinds.append(FEVER)
    if "heart-failure" in patient.conditions and patient.measures("body-weight"):
        kinds.append(FLUID_RETENTION)
    if "diabetes" in patient.conditions and patient.measures("blood-glucose"):
        kinds.append(HYPOGLYCAEMIA)
    return tuple(kinds)


# Onset, height and recovery, in hours (low, high), and what the height looks like.
COURSE_HOURS: dict[str, tuple[tuple[float, float], tuple[float, float], tuple[float, float]]] = {
    COPD_EXACERBATION: ((24, 72), (48, 96), (72, 120)),
    FEVER: ((6, 12), (24, 48), (24, 48)),
    FLUID_RETENTION: ((24, 40), (24, 72), (72, 120)),
    HYPOGLYCAEMIA: ((1, 2), (12, 36), (3, 6)),
}
# Kinds that show within the first hour, preferred for an episode at the start of a run.
QUICK_KINDS = (HYPOGLYCAEMIA, COPD_EXACERBATION, FEVER, FLUID_RETENTION)


def _height(kind: str, patient: SimPatient, rng: random.Random) -> tuple[tuple[str, float], ...]:
    """Values at the height, chosen so that even with the narrowed noise they stay beyond the
    band edge (COPD SpO2 yellow low 86, pulse yellow high 110, temperature yellow high 39.0,
    respiratory rate yellow high 20, glucose yellow low 3.9) and weight gains more than 2 kg
    within 3 days."""
    usual = patient.baseline
    if kind == COPD_EXACERBATION:
        return (
            ("spo2", float(rng.randint(79, 84))),  # below 84 is red
            ("heart-rate", rng.uniform(117, 128)),
            ("respiratory-rate", usual.respiratory_rate + 5),
            ("body-temperature", usual.temperature + 0.4),
        )
    if kind == FEVER:
        return (
            ("body-temperature", rng.uniform(39.4, 40.2)),
            ("respiratory-rate", rng.uniform(23, 27)),
            ("heart-rate", usual.heart_rate + 15),
            ("spo2", usual.spo2 - 2),
        )
    if kind == FLUID_RETENTION:
        # Kilograms gained. The extra weighing within 3 h of the height looks back 72 h, to at
        # least 29 h before the episode (the onset takes at most 40 h): past the last weighing
        # before it (at most 25.5 h before). So the gain it sees is at least 3.4 less the
        # scale's noise (2 x 0.375) and three days of drift (0.46): more than 2.0.
        return (("body-weight", rng.uniform(3.4, 4.8)),)
    if kind == HYPOGLYCAEMIA:
        return (("blood-glucose", rng.uniform(2.5, 3.5)),)  # some below 3.0: red
    raise ValueError(f"not a clinical episode kind: {kind}")


def _course(patient: SimPatient, kind: str, start: datetime, rng: random.Random, *, at_start: bool = False) -> Episode:
    onset, height, recovery = (timedelta(hours=rng.uniform(*hours)) for hours in COURSE_HOURS[kind])
    if at_start:
        onset = ONSET_AT_START
    return Episode(
        patient=patient.key,
        kind=kind,
        start=start,
        end=start + onset + height + recovery,
        expected_rules=EXPECTED_RULES[kind],
        height_from=start + onset,
        height_until=start + onset + height,
        height=_height(kind, patient, rng),
    )


def _moved(episode: Episode, start: datetime) -> Episode:
    """The same course, beginning at `start`."""
    assert episode.height_from is not None and episode.height_until is not None
    by = start - episode.start
    return replace(
        episode,
        start=start,
        end=episode.end + by,
        height_from=episode.height_from + by,
        height_until=episode.height_until + by,
    )


def _poisson(rng: random.Random, mean: float) -> int:
    """Knuth's method: the means here are small."""
    limit, count, product = math.exp(-mean), 0, rng.random()
    while product > limit:
        count += 1
        product *= rng.random()
    return count


def _overlaps(start: datetime, end: datetime, others: Iterable[Episode], margin: timedelta) -> bool:
    return any(start < other.end + margin and other.start < end + margin for other in others)


def _clinical_episodes(
    patient: SimPatient, start: datetime, end: datetime, rng: random.Random, per_year: float, at_start: bool
) -> list[Episode]:
    kinds = episode_kinds(patient)
    if not kinds:
        return []
    episodes: list[Episode] = []
    # Successive episodes go round the patient's kinds, so a patient with several shows each.
    order = list(kinds)
    rng.shuffle(order)
    if at_start:
        quick = next(k for k in QUICK_KINDS if k in kinds)
        order.remove(quick)
        order.insert(0, quick)
        episodes.append(_course(patient, quick, start, rng, at_start=True))
    wanted = _poisson(rng, per_year * (end - start) / timedelta(days=YEAR_DAYS))
    for number in range(len(episodes), len(episodes) + wanted):
        kind = order[number % len(order)]
        for _ in range(20):  # a few tries to fit it between the others
            course = _course(patient, kind, start, rng)
            room = (end - start) - (course.end - course.start) - timedelta(days=1)
            if room <= timedelta(0):
                break
            candidate = _moved(course, start + timedelta(days=1) + room * rng.random())
            if not _overlaps(candidate.start, candidate.end, episodes, EPISODE_GAP):
                episodes.append(candidate)
                break
    return sorted(episodes, key=lambda e: e.start)


def _offline_windows(
    patient: SimPatient, start: datetime, end: datetime, rng: random.Random, avoid: list[Episode], per_year: float
) -> list[Episode]:
    """A home hub loses its connection for about a day now and then (a vendor cloud does not)."""
    if not patient.gateway_id.startswith("hub-"):
        return []
    windows: list[Episode] = []
    for _ in range(_poisson(rng, per_year * (end - start) / timedelta(days=YEAR_DAYS))):
        length = timedelta(hours=rng.uniform(18, 30))
        room = (end - start) - length
        if room <= timedelta(0):
            break
        begin = start + room * rng.random()
        if _overlaps(begin, begin + length, avoid + windows, timedelta(days=1)):
            continue
        windows.append(Episode(patient.key, GATEWAY_OFFLINE, begin, begin + length, (), gateway_id=patient.gateway_id))
    return windows


# -- values ---------------------------------------------------------------------------------


def _truncated_normal(rng: random.Random) -> float:
    while True:
        z = rng.gauss(0.0, 1.0)
        if abs(z) <= NOISE_LIMIT:
            return z


class _Patient:
    """One patient's usual values over time, for one seed."""

    def __init__(self, patient: SimPatient, seed: int) -> None:
        self.patient, self.seed = patient, seed
        self._phases: dict[str, tuple[float, ...]] = {}

    def drift(self, quantity: str, moment: datetime) -> float:
        """A smooth wander within +-Variation.drift: a few slow waves with the patient's own phases."""
        phases = self._phases.get(quantity)
        if phases is None:
            rng = random.Random(f"{self.seed}:{self.patient.key}:{quantity}:drift")
            phases = self._phases[quantity] = tuple(rng.uniform(0, 2 * math.pi) for _ in DRIFT_PERIODS_DAYS)
        days = moment.timestamp() / 86400
        wave = sum(
            w * math.sin(2 * math.pi * days / period + phase)
            for w, period, phase in zip(DRIFT_WEIGHTS, DRIFT_PERIODS_DAYS, phases, strict=True)
        )
        return VARIATION[quantity].drift * wave

    def usual(self, quantity: str, moment: datetime) -> float:
        """Baseline, drift and the daily rhythm: pressure higher in the morning, pulse and
        temperature higher in the evening, glucose higher at bedtime."""
        b = self.patient.baseline
        hour = moment.astimezone(OSLO).hour
        morning = hour < 12
        drift = self.drift(quantity, moment)
        if quantity == "blood-glucose":
            meal = 0.95 if hour < 10 else 1.15 if hour >= 21 else 1.0
            return b.glucose * meal * (1 + drift)
        base, rhythm = {
            "spo2": (b.spo2, -0.5 if morning else 0.0),
            "heart-rate": (b.heart_rate, 0.0 if morning else 3.0),
            "systolic": (b.systolic, 3.0 if morning else -2.0),
            "diastolic": (b.diastolic, 2.0 if morning else -1.0),
            "body-temperature": (b.temperature, 0.0 if morning else 0.3),
            "respiratory-rate": (b.respiratory_rate, 0.0),
            "body-weight": (b.weight, 0.0),
        }[quantity]
        return base + rhythm + drift

    def value(self, quantity: str, moment: datetime, episode: Episode | None) -> float:
        """The value a device shows (canonical unit, its precision)."""
        variation = VARIATION[quantity]
        rng = random.Random(f"{self.seed}:{self.patient.key}:{quantity}:{moment.timestamp():.0f}")
        z = _truncated_normal(rng)
        usual = self.usual(quantity, moment)
        strength = episode.strength(moment) if episode is not None else 0.0
        height = dict(episode.height).get(quantity) if episode is not None else None
        if height is None:
            strength = 0.0
        narrowing = 1.0 - 0.75 * strength
        if quantity == "body-weight":  # fluid adds to the weight; the scale's noise stays
            value = usual + strength * (height or 0.0) + variation.noise * z
        elif variation.multiplicative:
            level = math.exp((1 - strength) * math.log(usual) + strength * math.log(height or usual))
            value = level * math.exp(variation.noise * z * narrowing)
        else:
            value = (1 - strength) * usual + strength * (height or 0.0) + variation.noise * z * narrowing
        return round(value, CANONICAL_DECIMALS[quantity])


# -- the timeline -----------------------------------------------------------------------------


def _quantity(reading_type: str) -> str:
    """The quantity a single-valued reading type measures (a blood pressure's pulse: heart rate)."""
    return "heart-rate" if reading_type == "blood-pressure" else reading_type


def reading_id(device: SimDevice, reading_type: str, moment: datetime) -> str:
    """Unique per gateway (serials are unique; one device takes one reading of a type at a
    time) and the same in every run of the seed, so a repeated run is answered `duplicate`."""
    return f"{device.serial}-{reading_type}-{moment.astimezone(OSLO).strftime('%Y%m%dT%H%M%S')}"


class _Builder:
    """The readings of one patient in [start, end)."""

    def __init__(self, patient: SimPatient, seed: int, start: datetime, end: datetime) -> None:
        self.patient, self.seed, self.start, self.end = patient, seed, start, end
        self.model = _Patient(patient, seed)
        self.clinical: list[Episode] = []
        self.readings: list[SimReading] = []
        self._ids: set[str] = set()

    def episode_at(self, moment: datetime) -> Episode | None:
        return next((e for e in self.clinical if e.covers(moment)), None)

    def reading(self, reading_type: str, moment: datetime, *, shift: dict[str, float] | None = None) -> SimReading:
        """A reading at `moment`; `shift` adds to quantities (artefacts)."""
        patient, device = self.patient, self.patient.device_for(reading_type)
        while (rid := reading_id(device, reading_type, moment)) in self._ids:
            moment += timedelta(seconds=1)
        self._ids.add(rid)
        episode = self.episode_at(moment)
        shift = shift or {}
        value, values = None, None

        def shown(quantity: str) -> float:
            measured = self.model.value(quantity, moment, episode) + shift.get(quantity, 0.0)
            return round(measured, CANONICAL_DECIMALS[quantity])

        if reading_type == "blood-pressure":
            values = {"systolic": shown("systolic"), "diastolic": shown("diastolic"), "pulse": shown("heart-rate")}
        else:
            value = shown(reading_type)
        return SimReading(
            patient=patient.key,
            gateway_id=patient.gateway_id,
            id=rid,
            device=device,
            type=reading_type,
            time=moment,
            value=value,
            values=values,
            unit=device.unit_for(reading_type),
            episode=episode.kind if episode is not None else None,
        )

    def measuring_time(self, day: date, reading_type: str, slot: int, hour: float) -> datetime:
        """The habitual hour, give or take a quarter of an hour (at most 45 minutes)."""
        rng = random.Random(f"{self.seed}:{self.patient.key}:{reading_type}:{day.isoformat()}:{slot}")
        minutes = max(-45.0, min(45.0, 15.0 * rng.gauss(0.0, 1.0)))
        midnight = datetime.combine(day, time(0), tzinfo=OSLO)
        # Arithmetic on an aware datetime is on the wall clock: the hour stays local also on the
        # days the clocks change.
        return midnight + timedelta(hours=hour, minutes=minutes, seconds=rng.randrange(60))

    def days(self) -> Iterator[date]:
        day = self.start.astimezone(OSLO).date()
        last = self.end.astimezone(OSLO).date()
        while day <= last:
            yield day
            day += timedelta(days=1)

    def scheduled(self, missed: set[date]) -> None:
        for day in self.days():
            if day in missed:
                continue
            for reading_type, hours in self.patient.schedule:
                for slot, hour in enumerate(hours):
                    moment = self.measuring_time(day, reading_type, slot, hour)
                    if self.start <= moment < self.end:
                        self.readings.append(self.reading(reading_type, moment))

    def when_unwell(self, rng: random.Random) -> None:
        """A patient who feels worse measures again: once soon after the height is reached, and
        each afternoon while it lasts."""
        for episode in self.clinical:
            assert episode.height_from is not None and episode.height_until is not None
            sudden = episode.height_from - episode.start < timedelta(hours=1)  # noticed at once
            soon = timedelta(minutes=rng.uniform(5, 15)) if sudden else timedelta(hours=rng.uniform(1, 3))
            moments = [episode.height_from + soon]
            day = episode.height_from.astimezone(OSLO).date()
            while (afternoon := datetime.combine(day, time(15), tzinfo=OSLO)) < episode.height_until:
                if afternoon > moments[0]:
                    moments.append(afternoon + timedelta(minutes=rng.uniform(-60, 60)))
                day += timedelta(days=1)
            quantities = dict(episode.height)
            for reading_type, _ in self.patient.schedule:
                if _quantity(reading_type) not in quantities:
                    continue
                for moment in moments:
                    if self.start <= moment < min(self.end, episode.height_until):
                        self.readings.append(self.reading(reading_type, moment))

    def artefacts(self, rng: random.Random, quiet: list[Episode]) -> None:
        """Now and then a reading is off for a reason outside the patient (a cold finger, a
        badly placed cuff); the patient measures again a few minutes later."""
        years = (self.end - self.start) / timedelta(days=YEAR_DAYS)
        kinds = [t for t in ("spo2", "blood-pressure") if self.patient.measures(t)]
        if not kinds:
            return
        for _ in range(_poisson(rng, ARTEFACTS_PER_PATIENT_YEAR * years)):
            reading_type = rng.choice(kinds)
            candidates = [
                r
                for r in self.readings
                if r.type == reading_type and not _overlaps(r.time, r.time, quiet, timedelta(days=1))
            ]
            if not candidates:
                return
            original = rng.choice(candidates)
            if reading_type == "spo2":
                shift = {"spo2": -rng.uniform(6, 9)}
            else:
                shift = {"systolic": rng.uniform(22, 32), "diastolic": rng.uniform(8, 14)}
            index = self.readings.index(original)
            self._ids.discard(original.id)
            self.readings[index] = self.reading(reading_type, original.time, shift=shift)
            again = original.time + timedelta(minutes=rng.uniform(2, 5))
            if again < self.end:
                self.readings.append(self.reading(reading_type, again))


def simulate(
    cohort: list[SimPatient],
    start: datetime,
    end: datetime,
    seed: int,
    *,
    episodes_per_patient_year: float = 4.0,
    faults: bool = True,
    episode_at_start: Collection[str] = (),
    faults_per_patient_year: float = FAULTS_PER_PATIENT_YEAR,
    duplicates_per_patient_year: float = DUPLICATES_PER_PATIENT_YEAR,
    offline_per_hub_year: float = OFFLINE_PER_HUB_YEAR,
) -> Timeline:
    """Readings, episodes and faults of `cohort` in [start, end); the same for the same arguments.

    `episode_at_start`: patient keys whose first episode begins at `start`, reaching its height
    within `ONSET_AT_START` (the live demo uses it to show alerts within a minute). The rates of
    bad messages, duplicates and offline hubs can be raised to exercise a backend in a short run."""
    if start.tzinfo is None or end.tzinfo is None:
        raise ValueError("start and end: need a time zone")
    if end <= start:
        raise ValueError("end: must be after start")
    readings: list[SimReading] = []
    episodes: list[Episode] = []
    fault_list: list[Fault] = []
    years = (end - start) / timedelta(days=YEAR_DAYS)
    for patient in cohort:
        rng = random.Random(f"{seed}:{patient.key}:{start.isoformat()}:{end.isoformat()}")
        builder = _Builder(patient, seed, start, end)
        builder.clinical = _clinical_episodes(
            patient, start, end, rng, episodes_per_patient_year, patient.key in episode_at_start
        )
        offline = _offline_windows(patient, start, end, rng, builder.clinical, offline_per_hub_year)
        missed = _missed_days(patient, seed, builder, offline)
        builder.scheduled(set(missed))
        builder.when_unwell(rng)
        builder.artefacts(rng, builder.clinical)
        builder.readings.sort(key=lambda r: r.time)
        readings += builder.readings
        episodes += builder.clinical + offline
        episodes += [
            Episode(
                patient.key,
                MISSED_DAY,
                datetime.combine(day, time(0), tzinfo=OSLO),
                datetime.combine(day + timedelta(days=1), time(0), tzinfo=OSLO),
                EXPECTED_RULES[MISSED_DAY],
            )
            for day in missed
        ]
        if faults:
            rates = (faults_per_patient_year * years, duplicates_per_patient_year * years)
            fault_list += _faults(patient, builder.readings, rng, rates, offline, end)
    readings.sort(key=lambda r: (r.time, r.gateway_id, r.id))
    episodes.sort(key=lambda e: (e.start, e.patient, e.kind))
    fault_list.sort(key=lambda f: (f.time, f.gateway_id))
    return Timeline(start=start, end=end, readings=readings, episodes=episodes, faults=fault_list)


def _missed_days(patient: SimPatient, seed: int, builder: _Builder, offline: list[Episode]) -> list[date]:
    """Days the patient measured nothing; never next to an episode, where it would hide it."""
    missed = []
    for day in builder.days():
        midnight = datetime.combine(day, time(0), tzinfo=OSLO)
        if not (builder.start <= midnight and midnight + timedelta(days=1) <= builder.end):
            continue
        if random.Random(f"{seed}:{patient.key}:{day.isoformat()}:missed").random() >= patient.missed_day_chance:
            continue
        if _overlaps(midnight, midnight + timedelta(days=1), builder.clinical + offline, timedelta(days=1)):
            continue
        missed.append(day)
    return missed


# -- faults -----------------------------------------------------------------------------------

FAULT_KINDS: tuple[str, ...] = (
    "bad_json",
    "unknown_type",
    "implausible_value",
    "time_without_offset",
    "bad_unit",
    "schema",
    "unknown_device",
)


def _faults(
    patient: SimPatient,
    readings: list[SimReading],
    rng: random.Random,
    expected: tuple[float, float],  # bad messages, duplicates
    offline: list[Episode],
    end: datetime,
) -> list[Fault]:
    """Bad messages and readings sent twice, each a message of its own so that no good reading
    shares its fate; never while the gateway is offline."""
    found: list[Fault] = []
    sendable = [r for r in readings if not _overlaps(r.time, r.time, offline, timedelta(hours=2))]
    if not sendable:
        return found
    for _ in range(_poisson(rng, expected[1])):
        original = rng.choice(sendable)
        when = original.time + timedelta(minutes=rng.uniform(2, 90))
        if when < end and not _overlaps(when, when, offline, timedelta(hours=2)):
            found.append(
                Fault(
                    patient.gateway_id,
                    patient.key,
                    when,
                    "duplicate",
                    original.id,
                    reading=original.to_contract(),
                    original=original,
                )
            )
    for number in range(_poisson(rng, expected[0])):
        template = rng.choice(sendable)
        when = template.time + timedelta(minutes=rng.uniform(1, 30))
        if when >= end or _overlaps(when, when, offline, timedelta(hours=2)):
            continue
        found.append(_bad_message(patient, template, rng.choice(FAULT_KINDS), when, number))
    return found


# Values a device sends when something is wrong with it, by reading type (canonical units).
IMPLAUSIBLE: dict[str, float] = {
    "spo2": 0.0,  # no finger in the probe
    "heart-rate": 0.0,
    "body-temperature": 20.0,  # measured the room
    "respiratory-rate": 0.0,
    "body-weight": 0.4,  # stepped off too early
    "blood-glucose": 0.0,  # no blood on the strip
}
NOT_UCUM = {"spo2": "percent", "heart-rate": "beats", "body-temperature": "C", "respiratory-rate": "breaths",
            "body-weight": "lbs", "blood-glucose": "mmol", "blood-pressure": "mmHg"}  # fmt: skip


def _bad_message(patient: SimPatient, template: SimReading, kind: str, when: datetime, number: int) -> Fault:
    body = template.to_contract()
    body["id"] = f"{template.id}-{kind}-{number}"
    body["time"] = contract_time(when)
    if kind == "bad_json":
        text = json.dumps({"sent_at": contract_time(when), "readings": [body]})
        return Fault(patient.gateway_id, patient.key, when, kind, None, raw=text[: len(text) * 2 // 3].encode())
    if kind == "unknown_type":
        body["type"] = "blood-sugar"  # an older firmware's name
    elif kind == "implausible_value":
        if template.values is not None:
            body["values"] = {**body["values"], "systolic": in_unit(400.0, template.unit)}  # a cuff error
        else:
            body["value"] = in_unit(IMPLAUSIBLE[template.type], template.unit)
    elif kind == "time_without_offset":
        body["time"] = when.astimezone(OSLO).replace(tzinfo=None).isoformat(timespec="seconds")
    elif kind == "bad_unit":
        body["unit"] = NOT_UCUM[template.type]
    elif kind == "schema":  # the value as text
        if template.values is not None:
            body["values"] = {**body["values"], "systolic": str(body["values"]["systolic"])}
        else:
            body["value"] = str(body["value"])
    elif kind == "unknown_device":  # a replacement device nobody registered yet
        body["device"] = {**body["device"], "serial": f"{template.device.serial}-NEW"}
    return Fault(patient.gateway_id, patient.key, when, kind, body["id"], reading=body)
