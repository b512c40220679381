"""A simulated cohort: chronically ill patients at home, their devices, plans and usual values. Pure.

Everything here follows from `(size, seed)`: the same arguments give the same patients, so
a run can be repeated and a benchmark compared with the last one. The identity numbers are
generated to be valid (api.md), not taken from anyone; the names are common Norwegian first
and family names put together at random.

Coverage is arranged by position, not left to chance, so that even a small cohort shows
every condition template, both kinds of gateway and the accepted unit aliases: conditions
go round the four templates, every fifth patient sits behind the vendor cloud, every other
COPD patient has a thermometer and a respiratory-rate sensor (so fever can be simulated).
"""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

CONDITIONS: tuple[str, ...] = ("copd", "heart-failure", "diabetes", "hypertension")
# The second condition a patient with the first one most often also has.
COMORBIDITIES: dict[str, tuple[str, ...]] = {
    "copd": ("heart-failure", "hypertension"),
    "heart-failure": ("hypertension", "diabetes"),
    "diabetes": ("hypertension", "heart-failure"),
    "hypertension": ("diabetes", "heart-failure"),
}
SECOND_CONDITION_SHARE = 0.3

# A device vendor's cloud that forwards many patients' readings under one gateway id.
VENDOR_CLOUD = "vendor-cloud-1"
VENDOR_CLOUD_EVERY = 5  # patients 3, 8, 13, ... (1-based) sit behind it

CANONICAL_UNITS: dict[str, str] = {
    "blood-pressure": "mm[Hg]",
    "heart-rate": "/min",
    "spo2": "%",
    "respiratory-rate": "/min",
    "body-temperature": "Cel",
    "body-weight": "kg",
    "blood-glucose": "mmol/L",
    "peak-flow": "L/min",
}

FEMALE = (
    "Kari", "Ingrid", "Anne", "Solveig", "Astrid", "Liv", "Randi", "Berit", "Turid", "Marit",
    "Gunn", "Bjørg", "Eva", "Sigrid", "Aud", "Reidun", "Ragnhild", "Torill", "Wenche", "Grete",
)  # fmt: skip
MALE = (
    "Ola", "Per", "Arne", "Bjørn", "Knut", "Odd", "Terje", "Svein", "Geir", "Rolf",
    "Jan", "Kjell", "Tor", "Nils", "Harald", "Leif", "Egil", "Trond", "Asbjørn", "Magne",
)  # fmt: skip
FAMILY = (
    "Hansen", "Johansen", "Olsen", "Larsen", "Andersen", "Pedersen", "Nilsen", "Kristiansen",
    "Jensen", "Karlsen", "Berg", "Haugen", "Hagen", "Dahl", "Halvorsen", "Lund", "Bakken",
    "Solberg", "Strand", "Moen", "Lie", "Nygård", "Aasen", "Myhre", "Eide", "Sæther", "Vik",
)  # fmt: skip

# Manufacturer and model by device kind: the kind of equipment Norwegian home follow-up uses.
MODELS: dict[str, tuple[tuple[str, str], ...]] = {
    "oximeter": (("Nonin", "3230"), ("Masimo", "MightySat Rx")),
    "pulse": (("Polar", "H10"),),
    "thermometer": (("Withings", "Thermo SCT01"), ("Braun", "ThermoScan 7 IRT6520")),
    "breathing": (("Philips", "Biosensor BX100"),),
    "scale": (("A&D", "UC-352BLE"), ("Withings", "Body+")),
    "cuff": (("A&D", "UA-651BLE"), ("Omron", "M7 Intelli IT")),
    "glucometer": (("Roche", "Accu-Chek Guide"), ("Ascensia", "Contour Next One")),
}


@dataclass(frozen=True)
class SimDevice:
    """A home device: registered by serial for one reading type (`type`), sending in `unit`.

    A pulse oximeter also sends heart rate: `also` lists such further reading types with the
    unit it sends them in."""

    serial: str
    type: str
    unit: str
    manufacturer: str
    model: str
    also: tuple[tuple[str, str], ...] = ()

    @property
    def reading_types(self) -> tuple[str, ...]:
        return (self.type, *(t for t, _ in self.also))

    def unit_for(self, reading_type: str) -> str:
        if reading_type == self.type:
            return self.unit
        return dict(self.also)[reading_type]


@dataclass(frozen=True)
class Baseline:
    """A patient's usual values (canonical units) on a good day, before drift and daily rhythm."""

    spo2: float
    heart_rate: float
    systolic: float
    diastolic: float
    temperature: float
    respiratory_rate: float
    weight: float
    glucose: float  # the typical capillary glucose before a meal (mmol/L)


@dataclass(frozen=True)
class SimPatient:
    key: str  # "p-0001": stable within a cohort, used in reading ids and the ground truth
    name: str
    identifier: str  # fødselsnummer
    birth_date: date
    conditions: tuple[str, ...]
    gateway_id: str
    devices: tuple[SimDevice, ...]
    plan: tuple[tuple[str, int], ...]  # (reading type, every_hours): the measurement plan enrolled
    baseline: Baseline
    # When the patient habitually measures each reading type: local hours of the day.
    schedule: tuple[tuple[str, tuple[float, ...]], ...]
    missed_day_chance: float  # the chance that the patient measures nothing on a given day

    def device_for(self, reading_type: str) -> SimDevice:
        for device in self.devices:
            if reading_type in device.reading_types:
                return device
        raise KeyError(f"{self.key} has no device for {reading_type}")

    def measures(self, reading_type: str) -> bool:
        return any(reading_type in d.reading_types for d in self.devices)

    def hours_for(self, reading_type: str) -> tuple[float, ...]:
        return dict(self.schedule).get(reading_type, ())


# -- identity numbers ---------------------------------------------------------------------

WEIGHTS_FIRST = (3, 7, 6, 1, 8, 9, 4, 5, 2)
WEIGHTS_SECOND = (5, 4, 3, 2, 7, 6, 5, 4, 3, 2)


def _check_digit(digits: str, weights: tuple[int, ...]) -> int | None:
    digit = (11 - sum(int(d) * w for d, w in zip(digits, weights, strict=True)) % 11) % 11
    return None if digit == 10 else digit  # 10 is never valid: that individual number is unused


def identity_number(born: date, individual: int) -> str | None:
    """The fødselsnummer for a birth date (1900-1999) and individual number 0-499, or None
    where no valid check digit exists for that combination."""
    head = f"{born.day:02d}{born.month:02d}{born.year % 100:02d}{individual:03d}"
    first = _check_digit(head, WEIGHTS_FIRST)
    if first is None:
        return None
    second = _check_digit(head + str(first), WEIGHTS_SECOND)
    return None if second is None else f"{head}{first}{second}"


# -- the cohort ---------------------------------------------------------------------------


def make_cohort(size: int, seed: int, *, serial_prefix: str = "SIM") -> list[SimPatient]:
    """`size` patients, the same for the same seed; a smaller cohort of a seed is the start of
    a bigger one (each patient is drawn from the seed and its position).

    Serials are `<serial_prefix>-<kind>-<number>`: give each cohort enrolled in one database its
    own prefix (serials are unique across the service)."""
    if size < 0:
        raise ValueError("size: must not be negative")
    first_condition = random.Random(f"rpm-cohort:{seed}").randrange(len(CONDITIONS))
    counts: Counter[str] = Counter()  # devices of each kind so far: spreads the unit aliases
    identifiers: set[str] = set()
    patients = []
    for index in range(size):
        key = f"p-{index + 1:04d}"
        rng = random.Random(f"rpm-cohort:{seed}:{key}")
        primary = CONDITIONS[(first_condition + index) % len(CONDITIONS)]
        conditions = {primary}
        if rng.random() < SECOND_CONDITION_SHARE:
            conditions.add(rng.choice(COMORBIDITIES[primary]))
        ordered = tuple(c for c in CONDITIONS if c in conditions)
        female = rng.random() < 0.5
        name = f"{rng.choice(FEMALE if female else MALE)} {rng.choice(FAMILY)}"
        born, identifier = _birth_and_identifier(rng, identifiers)
        gateway_id = VENDOR_CLOUD if index % VENDOR_CLOUD_EVERY == 2 else f"hub-{key}"
        devices, schedule, plan = _equipment(rng, ordered, f"{serial_prefix}", index + 1, counts)
        patients.append(
            SimPatient(
                key=key,
                name=name,
                identifier=identifier,
                birth_date=born,
                conditions=ordered,
                gateway_id=gateway_id,
                devices=devices,
                plan=plan,
                baseline=_baseline(rng, ordered),
                schedule=schedule,
                missed_day_chance=rng.uniform(0.01, 0.05),
            )
        )
    return patients


def _birth_and_identifier(rng: random.Random, taken: set[str]) -> tuple[date, str]:
    while True:
        born = date(rng.randint(1932, 1966), rng.randint(1, 12), rng.randint(1, 28))
        number = identity_number(born, rng.randint(0, 499))
        if number is not None and number not in taken:
            taken.add(number)
            return born, number


def _baseline(rng: random.Random, conditions: tuple[str, ...]) -> Baseline:
    """Usual values chosen so that, with drift, daily rhythm and device noise, a patient on a
    good day stays inside the templates' bands (rules.md); only the edges of these ranges
    come near a band now and then."""
    copd, heart_failure = "copd" in conditions, "heart-failure" in conditions
    hypertension, diabetes = "hypertension" in conditions, "diabetes" in conditions
    if hypertension:
        systolic, diastolic = rng.uniform(126, 140), rng.uniform(72, 84)
    elif heart_failure:  # often on drugs that lower the pressure
        systolic, diastolic = rng.uniform(120, 134), rng.uniform(66, 78)
    else:
        systolic, diastolic = rng.uniform(118, 132), rng.uniform(66, 80)
    if copd:
        heart_rate = rng.uniform(72, 88)
    elif heart_failure:  # beta blockers
        heart_rate = rng.uniform(58, 76)
    else:
        heart_rate = rng.uniform(62, 80)
    return Baseline(
        # COPD: NEWS2 scale 2's target range 88-92 %; others breathe normally.
        spo2=rng.uniform(90, 93) if copd else rng.uniform(95, 98),
        heart_rate=heart_rate,
        systolic=systolic,
        diastolic=diastolic,
        temperature=rng.uniform(36.4, 36.9),
        respiratory_rate=rng.uniform(15, 17.5) if copd else rng.uniform(13, 16),
        weight=rng.uniform(64, 108) if heart_failure else rng.uniform(56, 104),
        glucose=rng.uniform(6.5, 8.3) if diabetes else rng.uniform(5.0, 5.8),
    )


def _device(
    rng: random.Random, kind: str, serial: str, reading_type: str, unit: str, also: tuple[tuple[str, str], ...] = ()
) -> SimDevice:
    manufacturer, model = rng.choice(MODELS[kind])
    return SimDevice(serial=serial, type=reading_type, unit=unit, manufacturer=manufacturer, model=model, also=also)


def _equipment(
    rng: random.Random, conditions: tuple[str, ...], prefix: str, number: int, counts: Counter[str]
) -> tuple[tuple[SimDevice, ...], tuple[tuple[str, tuple[float, ...]], ...], tuple[tuple[str, int], ...]]:
    """Devices, measuring hours and measurement plan that fit the conditions."""
    morning, evening = rng.uniform(6.75, 8.75), rng.uniform(19.25, 21.25)
    devices: list[SimDevice] = []
    hours: dict[str, tuple[float, ...]] = {}
    plan: dict[str, int] = {}

    def serial(kind: str) -> str:
        return f"{prefix}-{kind}-{number:04d}"

    def take(kind: str) -> int:
        counts[kind] += 1
        return counts[kind] - 1

    if "copd" in conditions:
        copd_index = take("copd")
        if copd_index % 5 == 3:  # a fingertip oximeter and a separate pulse strap
            devices.append(_device(rng, "oximeter", serial("SP"), "spo2", "%"))
            devices.append(_device(rng, "pulse", serial("HR"), "heart-rate", "bpm"))
        else:  # a pulse oximeter giving both
            fraction = take("oximeter") % 4 == 1
            pulse_unit = "bpm" if copd_index % 3 == 2 else "/min"
            devices.append(
                _device(
                    rng, "oximeter", serial("OX"), "spo2", "1" if fraction else "%", also=(("heart-rate", pulse_unit),)
                )
            )
        hours["spo2"] = hours["heart-rate"] = (morning, evening)
        plan["spo2"] = plan["heart-rate"] = 24
        if copd_index % 2 == 0:  # the respiratory kit: a thermometer and a breathing sensor
            temperature_unit = "[degF]" if take("thermometer") % 3 == 1 else "Cel"
            devices.append(_device(rng, "thermometer", serial("TH"), "body-temperature", temperature_unit))
            devices.append(_device(rng, "breathing", serial("RR"), "respiratory-rate", "/min"))
            hours["body-temperature"] = hours["respiratory-rate"] = (morning + 0.05,)
            plan["body-temperature"] = plan["respiratory-rate"] = 24
    if "heart-failure" in conditions:
        pounds = take("scale") % 8 == 2
        devices.append(_device(rng, "scale", serial("SC"), "body-weight", "[lb_av]" if pounds else "kg"))
        hours["body-weight"] = (morning - 0.25,)  # on waking, before breakfast
        plan["body-weight"] = 24
    if "heart-failure" in conditions or "hypertension" in conditions:
        kilopascal = take("cuff") % 4 == 1
        devices.append(_device(rng, "cuff", serial("BP"), "blood-pressure", "kPa" if kilopascal else "mm[Hg]"))
        hours["blood-pressure"] = (morning, evening) if "hypertension" in conditions else (morning,)
        plan["blood-pressure"] = 24
    if "diabetes" in conditions:
        milligrams = take("glucometer") % 3 == 2
        devices.append(_device(rng, "glucometer", serial("GL"), "blood-glucose", "mg/dL" if milligrams else "mmol/L"))
        # Before breakfast, lunch and dinner; most also at bedtime.
        meals = (morning + 0.25, rng.uniform(11.5, 12.5), rng.uniform(17.0, 18.0))
        four = rng.random() < 0.6
        hours["blood-glucose"] = (*meals, rng.uniform(21.75, 22.5)) if four else meals
        # The longest gap (overnight) must stay within the plan's interval plus the grace period.
        plan["blood-glucose"] = 12 if four else 24
    return tuple(devices), tuple(hours.items()), tuple(plan.items())


# -- staff API payloads (api.md) ----------------------------------------------------------


def enrolment(patient: SimPatient, orgnrs: list[str], enrolled_on: date) -> dict[str, Any]:
    """The body of `POST /api/v1/patients`: every organisation in `orgnrs` follows the patient.

    Without a start period: the cohort's history is published after the enrolment, and a start
    period counted from the enrolment would judge all of that history by the red edges alone."""
    return {
        "start_period_days": 0,
        "identifier": patient.identifier,
        "name": patient.name,
        "birth_date": patient.birth_date.isoformat(),
        "conditions": list(patient.conditions),
        "care_team": [{"organisation": orgnr, "from": enrolled_on.isoformat()} for orgnr in orgnrs],
        "measurement_plan": [{"type": t, "every_hours": hours} for t, hours in patient.plan],
    }


def device_registration(device: SimDevice) -> dict[str, Any]:
    """The body of `POST /api/v1/devices`."""
    return {"serial": device.serial, "type": device.type, "manufacturer": device.manufacturer, "model": device.model}


def assignment(patient_id: str, from_: datetime) -> dict[str, Any]:
    """The body of `PUT /api/v1/devices/{serial}/assignment`; `from_` must be aware."""
    if from_.tzinfo is None:
        raise ValueError("from_: needs a time zone")
    return {"patient": str(patient_id), "from": from_.isoformat()}


def gateway_registration(gateway_id: str, patients: list[SimPatient]) -> dict[str, Any]:
    """The body of `POST /api/v1/gateways`: a hub is named after its patient."""
    if gateway_id == VENDOR_CLOUD:
        name = "Leverandørsky (felles gateway)"
    else:
        name = f"Hjemmehub, {patients[0].name}" if patients else gateway_id
    return {"id": gateway_id, "name": name}


def gateways_of(cohort: list[SimPatient]) -> dict[str, list[SimPatient]]:
    """The cohort's gateways with the patients behind each, in cohort order."""
    found: dict[str, list[SimPatient]] = {}
    for patient in cohort:
        found.setdefault(patient.gateway_id, []).append(patient)
    return found
