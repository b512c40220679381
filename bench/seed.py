"""Seed a benchmark database with a year of one health community's data, fast (PostgreSQL COPY).

Run from the project root:

    .venv/bin/python bench/seed.py --database rpm_seed                 # 10,000 patients, 20 organisations, 365 days
    .venv/bin/python bench/seed.py --database rpm_seed_small --patients 500 --organisations 4 --drop

Options: `--patients` (10000), `--organisations` (20), `--days` (365), `--seed` (1), `--drop` (drop and
recreate the database if it exists; without it an existing database is an error), `--jobs` (generator
processes, 2), `--end` (the instant the data ends, ISO 8601; default the start of the current hour, UTC:
pass the printed value to repeat a run exactly), `--check N` (Observations per job compared with the
service's own FHIR mapping, default 300).

What one run does
-----------------
1. Creates the database on postgresql://postgres@127.0.0.1:5432 and migrates it with `rpm migrate`
   (the schema comes only from the Alembic migrations).
2. Reads the definitions of the secondary indexes, unique and foreign-key constraints of the big tables
   (observations, alerts, alert_observations, alert_events, audit_records) from the catalogue
   (`pg_indexes.indexdef`, `pg_get_constraintdef`) and drops them; primary keys stay. They are recreated
   from those definitions after the load, so indexes added by later migrations are respected.
3. Writes the community (organisations, patients, care teams, measurement plans, devices and their
   assignments, threshold overrides, gateways) with COPY, in one transaction.
4. Observations: `--jobs` worker processes each simulate a share of the patients day by day (a
   per-patient `random.Random(f"{seed}/...")`, so the data does not depend on `--jobs`) and send each
   day's rows, ordered by arrival, to the main process, which interleaves the jobs day by day into ONE
   `COPY observations ... WITH (FREEZE)` after a TRUNCATE in the same transaction: the table fills in
   arrival order across all patients, as the ingest worker would fill it, and its pages are written
   frozen and all-visible, so neither the index builds nor VACUUM rewrite 10+ GB of pages to set hint
   bits. Each job then derives its patients' alerts from the readings it made (the rules' own judging,
   the one-active-alert-per-rule lifecycle, staff acknowledging and resolving, escalation deadlines,
   missing-measurement alerts from real gaps) and copies alerts and evidence over its own connection.
5. Alert events (the active alerts' opened/escalated/changed), gateway status, rejected readings
   (kept with the reason and detail the contract checks give), then the audit trail (queue searches,
   patient lists and views, alert actions, threshold changes by the organisations' staff), in time order.
6. Recreates the indexes and constraints (two sessions at a time, maintenance_work_mem 1GB), then
   `VACUUM ANALYZE`.

What it writes (defaults)
-------------------------
About 10 M Observations: conditions COPD, heart failure, diabetes, hypertension (1-2 each), plans of
1-4 reading types (blood-pressure readings with a pulse make a second, heart-rate Observation), 80-97 %
adherence (away periods and single misses), a morning routine 07:00-09:30 Oslo time and glucose twice a
day, values around each patient's own baseline, deterioration episodes and heart-failure weight gains
that leave the bands. `resource` is the FHIR R4 Observation the service builds (interpretation and
referenceRange judged against the patient's templates and overrides in force when the reading arrived),
made from per-shape JSON templates; the first `--check` rows of each job are compared byte for byte with
`rpm.fhir.observation.observation_resource` (and their breaches with `rpm.rules.evaluation`), and a
mismatch fails the run. Ids are UUIDv7 of the moment a row was recorded (as `rpm.db.new_id` makes them),
from the seeded generators.

How to read the output
----------------------
Progress goes to stderr. The report (stdout) gives the wall time of each phase, the rows written per
table (COPY's own row counts), the Observations COPY rate (rows/s and MB/s over the observations phase,
generation included), alert figures (by rule kind and status, share of active patients with an active
alert), the database size, and the peak RSS of the main process and of the largest job. Exit status 0
when everything was written and checked.
"""

from __future__ import annotations

import argparse
import heapq
import json
import math
import multiprocessing as mp
import os
import queue as queue_module
import random
import resource
import subprocess
import sys
import time
import traceback
from collections import Counter, defaultdict, deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import orjson
import psycopg

from rpm.fhir.codes import HEART_RATE, READING_TYPES, ReadingType
from rpm.fhir.observation import observation_resource
from rpm.observations.readings import (
    ObservationDraft,
    Rejection,
    reading_bytes,
    split_message,
    validate_reading,
)
from rpm.patients.identity import IdentifierKind, parse_identity_number
from rpm.rules.bands import GREEN, Band, Judgement, Level, judge, judge_gain
from rpm.rules.evaluation import NO_BANDS, judgements_for, threshold_breaches
from rpm.rules.templates import BODY_WEIGHT
from rpm.rules.thresholds import EffectiveThresholds, effective_thresholds
from rpm.units import to_canonical

PROJECT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(PROJECT))  # for tests.fixtures.identity

PG_HOST, PG_PORT = "127.0.0.1", 5432
PG_MAINTENANCE = f"postgresql://postgres@{PG_HOST}:{PG_PORT}/postgres"
RPM = Path(sys.executable).parent / "rpm"
OSLO = ZoneInfo("Europe/Oslo")
FIRST_ORGNR = "974600951"

SEC = 1_000_000  # microseconds: every instant in this script is an int of microseconds since the epoch
MINUTE = 60 * SEC
HOUR = 60 * MINUTE
DAY = 24 * HOUR
EPOCH_DATE = date(1970, 1, 1)
MISSING_GRACE = 2 * HOUR  # RPM_MISSING_GRACE_HOURS default
ESCALATE_RED = 15 * MINUTE  # RPM_ESCALATE_RED_MINUTES default
ESCALATE_YELLOW = 8 * HOUR  # RPM_ESCALATE_YELLOW_HOURS default
LATE_AFTER = 24 * HOUR  # rules.md: a reading more than 24 h old on arrival makes a late alert

# The tables filled with many rows: their secondary indexes and constraints are dropped for the load.
BULK_TABLES = ("observations", "alerts", "alert_observations", "alert_events", "audit_records")

OBSERVATION_COLUMNS = (
    "id, patient_id, device_id, reading_type, code, effective_at, value, components, unit, original_value,"
    " original_unit, gateway_id, reading_id, received_at, stored_at, resource"
)
ALERT_COLUMNS = [
    "id",
    "patient_id",
    "rule",
    "level",
    "status",
    "escalated",
    "escalated_at",
    "late",
    "opened_at",
    "raised_at",
    "last_reading_at",
    "occurrences",
    "value",
    "unit",
    "threshold",
    "thresholds_version",
    "acknowledged_by",
    "acknowledged_by_name",
    "acknowledged_at",
    "resolved_by",
    "resolved_by_name",
    "resolved_at",
    "note",
    "updated_at",
]

GIVEN_NAMES = (
    "Anne Inger Kari Marit Ingrid Liv Eva Berit Astrid Bjørg Hilde Anna Solveig Marianne Randi Ida Nina Elisabeth"
    " Kristin Bente Heidi Gerd Tone Wenche Turid Unni Ragnhild Gunn Aud Sigrid Else Jorunn Grete Reidun Torill"
    " Jan Per Bjørn Ole Lars Kjell Knut Arne Svein Thomas Hans Geir Tor Morten Terje Odd Erik Rune Trond Harald"
    " Olav Rolf Leif Jon Einar Gunnar Magne Sverre Arild Egil Steinar Roar Nils Asbjørn Sigurd Halvor Johannes"
).split()
FAMILY_NAMES = (
    "Hansen Johansen Olsen Larsen Andersen Pedersen Nilsen Kristiansen Jensen Karlsen Johnsen Pettersen Eriksen"
    " Berg Haugen Hagen Johannessen Andreassen Jacobsen Dahl Jørgensen Henriksen Lund Halvorsen Sørensen Jakobsen"
    " Moen Gundersen Iversen Strand Solberg Svendsen Eide Knutsen Martinsen Paulsen Bakken Kristoffersen Mathisen"
    " Lie Amundsen Nguyen Rasmussen Ali Lunde Solheim Berge Moe Nygård Bakke Kristensen Fredriksen Holm Lien"
    " Hauge Christensen Andresen Nielsen Knudsen Evensen Sæther Aas Myhre Hanssen Ahmed Haugland Thomassen Sivertsen"
    " Simonsen Danielsen Berntsen Sandvik Rønning Arnesen Antonsen Næss Vik Haug Ellingsen Thorsen Edvardsen Birkeland"
).split()
MUNICIPALITY_NAMES = (
    "Bergen Askøy Øygarden Alver Bjørnafjorden Voss Kvam Osterøy Stord Kvinnherad Sunnfjord Bømlo Vaksdal"
    " Samnanger Austevoll Tysnes Fitjar Sveio Etne Masfjorden Modalen Fedje Austrheim Gulen Ulvik Eidfjord"
    " Ullensvang Sogndal Luster Årdal"
).split()
# Hospital departments, by name, and the conditions whose patients they follow.
DEPARTMENTS = (
    ("Hjertemedisinsk", ("heart-failure", "hypertension")),
    ("Lungemedisinsk", ("copd",)),
    ("Endokrinologisk", ("diabetes",)),
    ("Medisinsk", ("copd", "heart-failure", "diabetes", "hypertension")),
)
# The mix of conditions (1-2 each) and its weights: COPD and heart failure lead in Norwegian home follow-up,
# diabetes mostly comes with hypertension.
CONDITION_MIX = (
    (("copd",), 20),
    (("heart-failure",), 14),
    (("diabetes",), 8),
    (("hypertension",), 10),
    (("heart-failure", "hypertension"), 12),
    (("diabetes", "hypertension"), 12),
    (("copd", "heart-failure"), 8),
    (("copd", "hypertension"), 6),
    (("heart-failure", "diabetes"), 6),
    (("copd", "diabetes"), 4),
)
# Devices per reading type: serial prefix, manufacturer, model, units the device may be set to send
# (besides the canonical one).
DEVICE_KINDS: dict[str, tuple[str, str, str, tuple[str, ...]]] = {
    "body-weight": ("UC352", "A&D", "UC-352BLE", ("[lb_av]", "g")),
    "blood-pressure": ("UA651", "A&D", "UA-651BLE", ("kPa",)),
    "spo2": ("N3230", "Nonin", "3230", ("1",)),
    "heart-rate": ("H10", "Polar", "H10", ("bpm",)),
    "respiratory-rate": ("RAD97", "Masimo", "Rad-97", ()),
    "blood-glucose": ("ACG", "Roche", "Accu-Chek Guide", ("mg/dL",)),
}
MORNING_ORDER = ("body-weight", "blood-pressure", "spo2", "heart-rate", "respiratory-rate", "blood-glucose")

RESOLVE_NOTES = (
    ("Ringt pasienten, føler seg bra. Ny måling innenfor målområdet.", "contacted-patient"),
    ("Snakket med pasienten, målte på nytt etter hvile: normal.", "contacted-patient"),
    ("Pasienten hadde målt feil. Veiledet i bruk av apparatet.", "advice-given"),
    ("Råd om væskeinntak og vanndrivende gitt etter avtale med fastlege.", "advice-given"),
    ("Kjent for oss, ingen tiltak nødvendig.", "no-action-needed"),
    ("Vurdert, innenfor det pasienten pleier å ha.", "no-action-needed"),
    ("Kontaktet fastlegen, som følger opp i morgen.", "referred-to-gp"),
    ("Fastlegen informert, time avtalt.", "referred-to-gp"),
    ("Pasienten hadde tungpust og ble sendt til legevakt.", "referred-to-emergency"),
)
ENDED_NOTE = ("Oppfølgingen er avsluttet.", "no-action-needed")
OVERRIDE_REASONS = (
    "Tilpasset pasientens vanlige nivå etter samtale med fastlege.",
    "Justert etter utskrivning fra sykehus.",
    "Kjent lav metning ved KOLS; grenser satt av lungelege.",
    "Strengere oppfølging etter medisinendring.",
    "For mange varsler uten klinisk betydning; grensene justert.",
)


def log(text: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------------------
# Small helpers: time, ids, COPY text
# --------------------------------------------------------------------------------------

_DAY_TEXT: dict[int, str] = {}


def _day_text(day: int) -> str:
    text = _DAY_TEXT.get(day)
    if text is None:
        text = _DAY_TEXT[day] = (EPOCH_DATE + timedelta(days=day)).isoformat()
    return text


def ts(us: int) -> str:
    """An instant as COPY text for timestamptz (UTC)."""
    seconds, micro = divmod(us, SEC)
    day, rest = divmod(seconds, 86_400)
    hour, rest = divmod(rest, 3600)
    minute, second = divmod(rest, 60)
    return f"{_day_text(day)} {hour:02d}:{minute:02d}:{second:02d}.{micro:06d}+00"


def iso(us: int) -> str:
    """An instant exactly as `datetime.isoformat()` writes an aware UTC datetime (FHIR `issued`)."""
    seconds, micro = divmod(us, SEC)
    day, rest = divmod(seconds, 86_400)
    hour, rest = divmod(rest, 3600)
    minute, second = divmod(rest, 60)
    fraction = f".{micro:06d}" if micro else ""
    return f"{_day_text(day)}T{hour:02d}:{minute:02d}:{second:02d}{fraction}+00:00"


def to_us(at: datetime) -> int:
    return (at - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1)


def from_us(us: int) -> datetime:
    return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=us)


def local_date(us: int) -> date:
    return from_us(us).astimezone(OSLO).date()


def uuid7(us: int, rng: random.Random) -> str:
    """A UUIDv7 as `rpm.db.new_id` makes it (the millisecond first, 74 random bits), as text."""
    value = (us // 1000) << 80 | rng.getrandbits(80)
    value = value & ~(0xF << 76 | 0x3 << 62) | 0x7 << 76 | 0x2 << 62
    h = f"{value:032x}"
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def uuid4(rng: random.Random) -> str:
    """A random UUID (version 4) from a seeded generator, as `gen_random_uuid()` makes them."""
    value = rng.getrandbits(128) & ~(0xF << 76 | 0x3 << 62) | 0x4 << 76 | 0x2 << 62
    h = f"{value:032x}"
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def esc(value: Any) -> str:
    """One field of a COPY text row."""
    if value is None:
        return "\\N"
    if isinstance(value, bool):
        return "t" if value else "f"
    text = value if isinstance(value, str) else str(value)
    if "\\" in text or "\t" in text or "\n" in text or "\r" in text:
        text = text.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")
    return text


def row(*values: Any) -> str:
    return "\t".join(esc(v) for v in values) + "\n"


def jsonb(value: Any) -> str:
    return orjson.dumps(value).decode()


def poisson(rng: random.Random, mean: float) -> int:
    if mean <= 0:
        return 0
    if mean > 30:
        return max(0, round(rng.gauss(mean, math.sqrt(mean))))
    limit, k, p = math.exp(-mean), 0, rng.random()
    while p > limit:
        k += 1
        p *= rng.random()
    return k


def db_url(name: str) -> str:
    return f"postgresql://postgres@{PG_HOST}:{PG_PORT}/{name}"


def rpm_env(database: str) -> dict[str, str]:
    """The environment for `rpm` subprocesses: no RPM_* from outside, everything local."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("RPM_")}
    env["RPM_ENVIRONMENT"] = "development"
    env["RPM_DATABASE_URL"] = db_url(database)
    return env


def run_rpm(args: list[str], env: dict[str, str], timeout: float = 300) -> str:
    done = subprocess.run(
        [str(RPM), *args], env=env, cwd=PROJECT, capture_output=True, text=True, timeout=timeout, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(f"rpm {' '.join(args)} failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return done.stdout.strip()


# --------------------------------------------------------------------------------------
# The community: organisations, staff, patients, devices (built in the main process)
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LocalDay:
    """One Oslo calendar day of the simulation."""

    text: str  # 2026-01-05
    midnight: int  # local midnight, as an instant
    offset: int  # UTC offset at noon, microseconds
    offset_text: str  # +01:00 / +02:00


@dataclass(frozen=True)
class Organisation:
    index: int
    id: str
    orgnr: str
    name: str
    kind: str
    created_at: int
    specialities: tuple[str, ...] = ()


@dataclass(frozen=True)
class Staff:
    index: int
    sub: str
    name: str
    hpr: str
    organisation: int  # index


@dataclass(frozen=True)
class Item:
    """A plan item with its device."""

    type: str
    every_hours: int
    device_id: str
    serial: str
    unit: str  # the unit the device sends
    sends_pulse: bool
    device_created_at: int
    assignment_id: str


@dataclass(frozen=True)
class OverrideVersion:
    id: str
    version: int
    changed_at: int
    bands: dict[str, Any]
    weight_gain: dict[str, Any] | None
    reason: str
    staff: int  # index


@dataclass(frozen=True)
class Episode:
    kind: str  # copd, hf, htn, hyper, tachy, gain
    start: int  # day index
    length: int  # days
    size: float  # 0-1 scale of the kind's effect


@dataclass(frozen=True)
class Profile:
    """What a patient's readings look like: their own levels and habits."""

    morning: int  # seconds after local midnight
    evening_gap: int  # seconds from the morning to the evening glucose reading
    jitter: int  # seconds either side
    away_share: float  # of days away from home (no readings)
    away_days: float  # mean length of an absence
    miss: float  # chance of skipping one planned reading
    late_days: float  # share of days the hub was offline and delivered the next day
    systolic: float
    diastolic: float
    bp_sd: float
    pulse: float
    bp_double: float  # chance of a second blood pressure reading in a session
    spo2: float
    spo2_sd: float
    heart_rate: float
    respiratory_rate: float
    weight: float
    glucose_morning: float
    glucose_evening: float
    glucose_sd: float  # of the logarithm
    hypos_per_year: float
    episodes: tuple[Episode, ...]


@dataclass(frozen=True)
class PatientSpec:
    index: int
    id: str
    identifier: str
    system: str
    name: str
    birth_date: date
    conditions: tuple[str, ...]
    created_at: int
    ended_at: int | None
    municipality: int
    gp: int | None
    hospital: int | None
    hospital_from: date | None
    hospital_to: date | None
    gateway: str
    gateway_registered: bool
    items: tuple[Item, ...]
    overrides: tuple[OverrideVersion, ...]
    profile: Profile


@dataclass
class World:
    start: int
    end: int
    days: list[LocalDay]
    organisations: list[Organisation]
    staff: list[Staff]
    staff_by_org: dict[int, list[int]]
    patients: list[PatientSpec]
    history: list[tuple[str, str, str, int, int]]  # assignment id, device id, patient id, from, to
    device_created: dict[str, int]


def orgnr_with_check(head: str) -> str | None:
    remainder = sum(int(d) * w for d, w in zip(head, (3, 2, 7, 6, 5, 4, 3, 2), strict=True)) % 11
    digit = (11 - remainder) % 11
    return None if digit == 10 else head + str(digit)


def local_days(start: int, end: int) -> list[LocalDay]:
    days = []
    day = local_date(start)
    while True:
        noon = datetime(day.year, day.month, day.day, 12, tzinfo=OSLO)
        offset = noon.utcoffset() or timedelta()
        midnight = to_us(datetime(day.year, day.month, day.day, tzinfo=UTC) - offset)
        if midnight >= end:
            return days
        minutes = offset // timedelta(minutes=1)
        days.append(
            LocalDay(day.isoformat(), midnight, offset // timedelta(microseconds=1), f"+{minutes // 60:02d}:00")
        )
        day += timedelta(days=1)


def pick_weighted(rng: random.Random, choices: Sequence[tuple[Any, float]]) -> Any:
    total = sum(w for _, w in choices)
    x = rng.random() * total
    for value, weight in choices:
        x -= weight
        if x < 0:
            return value
    return choices[-1][0]


def person_name(rng: random.Random) -> str:
    given = rng.choice(GIVEN_NAMES)
    if rng.random() < 0.2:
        given += " " + rng.choice(GIVEN_NAMES)
    return f"{given} {rng.choice(FAMILY_NAMES)}"


def build_organisations(count: int, start: int, rng: random.Random) -> list[Organisation]:
    municipalities = max(1, round(0.6 * count))
    gps = round(0.25 * count)
    hospitals = count - municipalities - gps
    numbers = {FIRST_ORGNR}
    orgs: list[Organisation] = []

    def orgnr() -> str:
        while True:
            number = orgnr_with_check(str(rng.choice((8, 9))) + f"{rng.randrange(10**7):07d}")
            if number is not None and number not in numbers:
                numbers.add(number)
                return number

    def add(orgnr_: str, name: str, kind: str, specialities: tuple[str, ...] = ()) -> None:
        created = start - rng.randint(400, 700) * DAY
        orgs.append(Organisation(len(orgs), uuid7(created, rng), orgnr_, name, kind, created, specialities))

    for n in range(municipalities):
        name = MUNICIPALITY_NAMES[n] if n < len(MUNICIPALITY_NAMES) else f"Kommune {n + 1}"
        add(FIRST_ORGNR if n == 0 else orgnr(), f"{name} kommune", "municipality")
    for n in range(gps):
        add(orgnr(), f"Legekontor {n + 1}", "gp-office")
    for n in range(hospitals):
        department, specialities = DEPARTMENTS[n % len(DEPARTMENTS)]
        add(orgnr(), f"{department} avdeling {n // len(DEPARTMENTS) + 1}", "hospital-department", specialities)
    return orgs


def make_profile(conditions: tuple[str, ...], days: int, rng: random.Random) -> Profile:
    """A patient's own levels, habits and episodes over the `days` of the data set."""
    copd, hf, dm, htn = (c in conditions for c in ("copd", "heart-failure", "diabetes", "hypertension"))
    if htn:
        systolic = min(150.0, max(118.0, rng.gauss(137, 7)))
        diastolic = min(90.0, max(70.0, rng.gauss(83, 4.5)))
    else:
        systolic = min(145.0, max(116.0, rng.gauss(127, 8)))
        diastolic = min(88.0, max(62.0, rng.gauss(77, 5)))
    episodes: list[Episode] = []

    def add(kind: str, per_year: float, shortest: int, longest: int) -> None:
        for _ in range(poisson(rng, per_year * days / 365)):
            episodes.append(Episode(kind, rng.randrange(days), rng.randint(shortest, longest), rng.random()))

    if copd:
        add("copd", 0.9, 5, 12)
    if hf:
        add("hf", 0.5, 7, 14)
        add("gain", 2.0, 5, 9)
    if htn:
        add("htn", 0.5, 2, 6)
    if dm:
        add("hyper", 0.6, 3, 7)
    add("tachy", 0.15, 1, 3)
    glucose_morning = min(10.0, max(5.0, rng.gauss(7.0, 1.1)))
    return Profile(
        morning=rng.randint(7 * 3600, 9 * 3600),
        evening_gap=rng.randint(11 * 3600, 12 * 3600),
        jitter=rng.randint(5 * 60, 25 * 60),
        away_share=rng.uniform(0.02, 0.14),
        away_days=rng.uniform(2.0, 6.0),
        miss=rng.uniform(0.005, 0.06),
        late_days=rng.uniform(0.003, 0.018),
        systolic=systolic,
        diastolic=diastolic,
        bp_sd=rng.uniform(5.0, 7.5),
        pulse=min(95.0, max(52.0, rng.gauss(72, 8))),
        bp_double=rng.choice((0.0, 0.05, 0.1, 0.6, 0.9)),
        spo2=rng.uniform(89.5, 95.0) if copd else min(99.0, max(94.5, rng.gauss(96.8, 1.0))),
        spo2_sd=rng.uniform(0.7, 1.1),
        heart_rate=min(95.0, max(52.0, rng.gauss(76 if copd else 72, 8))),
        respiratory_rate=rng.uniform(14.0, 17.5) if copd else rng.uniform(12.0, 16.0),
        weight=min(150.0, max(45.0, rng.gauss(84, 16))),
        glucose_morning=glucose_morning,
        glucose_evening=glucose_morning + rng.uniform(0.5, 2.5),
        glucose_sd=rng.uniform(0.08, 0.15),
        hypos_per_year=rng.choice((0.0, 0.0, 1.0, 3.0)) if dm else 0.0,
        episodes=tuple(sorted(episodes, key=lambda e: e.start)),
    )


def plan_for(conditions: tuple[str, ...], rng: random.Random) -> dict[str, int]:
    plan: dict[str, int] = {}
    if "copd" in conditions:
        plan["spo2"] = 24
        extra = rng.random()
        if extra < 0.55:
            plan["heart-rate"] = 24
        elif extra < 0.85:
            plan["respiratory-rate"] = 24
    if "heart-failure" in conditions:
        plan["body-weight"] = 24
        if rng.random() < 0.8:
            plan["blood-pressure"] = 24
    if "diabetes" in conditions:
        plan["blood-glucose"] = 12
    if "hypertension" in conditions:
        plan["blood-pressure"] = 24
    return plan


def override_versions(
    patient_rng: random.Random,
    conditions: tuple[str, ...],
    profile: Profile,
    moments: list[int],
    staff: list[int],
) -> list[tuple[int, dict[str, Any], dict[str, Any] | None, str, int]]:
    """Each version's complete set of overrides (as the API stores it: floats from pydantic)."""
    changes: list[tuple[str, dict[str, Any] | None]] = []
    if "copd" in conditions:
        low = float(min(90, max(84, round(profile.spo2) - 4)))
        changes.append(("59408-5", {"yellow": {"low": low}, "red": {"low": low - 2}}))
    if "hypertension" in conditions:
        high = 165.0 if profile.systolic > 140 else 150.0
        changes.append(("8480-6", {"yellow": {"high": high}, "red": {"high": high + 20}}))
    if "diabetes" in conditions:
        changes.append(("14743-9", {"yellow": {"low": 4.0, "high": 15.0}, "red": {"low": 3.0, "high": 20.0}}))
    if "heart-failure" in conditions:
        changes.append(("weight_gain", {"yellow": 1.5, "red": 3.0, "window_hours": 72}))
        changes.append(("8867-4", {"yellow": {"high": 100.0}, "red": {"low": 45.0, "high": 120.0}}))
    patient_rng.shuffle(changes)
    bands: dict[str, Any] = {}
    weight_gain: dict[str, Any] | None = None
    versions = []
    for number, at in enumerate(moments):
        code, value = changes[number % len(changes)]
        if number >= len(changes):  # a later change relaxes an earlier one a little
            value = json.loads(json.dumps(value))
            for band in ("yellow", "red"):
                for side, edge in (value or {}).get(band, {}).items():
                    value[band][side] = edge + (-1.0 if side == "low" else 2.0)
        if code == "weight_gain":
            weight_gain = value
        else:
            bands[code] = value
        versions.append(
            (at, dict(bands), weight_gain, patient_rng.choice(OVERRIDE_REASONS), patient_rng.choice(staff))
        )
    return versions


def build_world(args: argparse.Namespace, end: int) -> World:
    from tests.fixtures.identity import make_identity_number

    start = end - args.days * DAY
    rng = random.Random(f"{args.seed}/world")
    orgs = build_organisations(args.organisations, start, rng)
    municipalities = [o for o in orgs if o.kind == "municipality"]
    gps = [o for o in orgs if o.kind == "gp-office"]
    hospitals = [o for o in orgs if o.kind == "hospital-department"]
    order = list(range(args.patients))
    rng.shuffle(order)
    municipality_of = {patient: order_no % len(municipalities) for order_no, patient in enumerate(order)}
    per_org: Counter[int] = Counter(municipalities[m].index for m in municipality_of.values())

    # Patients: everything about patient i comes from its own generator.
    identifiers: set[str] = set()
    raw: list[dict[str, Any]] = []
    for index in range(args.patients):
        prng = random.Random(f"{args.seed}/patient/{index}")
        d_number = prng.random() < 0.03
        while True:
            born = date(int(prng.triangular(1930, 1982, 1950)), prng.randint(1, 12), prng.randint(1, 28))
            identifier = make_identity_number(born, prng.randint(0, 499), d_number=d_number)
            if identifier is not None and identifier not in identifiers:
                identifiers.add(identifier)
                break
        conditions = pick_weighted(prng, CONDITION_MIX)
        created = start - prng.randint(1, 364) * DAY - prng.randint(0, 6 * 3600) * SEC
        created = created - created % DAY + 7 * HOUR + prng.randint(0, 7 * 3600) * SEC  # office hours
        ended = start + prng.randint(30, max(31, args.days - 7)) * DAY + prng.randint(8, 15) * HOUR
        municipality = municipalities[municipality_of[index]]
        gp: Organisation | None = None
        if gps and prng.random() < 0.6:
            local = [g for n, g in enumerate(gps) if n % len(municipalities) == municipality_of[index] % len(gps)]
            gp = prng.choice(local or gps)
        hospital: Organisation | None = None
        hospital_from = hospital_to = None
        if hospitals and prng.random() < 0.15:
            fitting = [h for h in hospitals if set(h.specialities) & set(conditions)]
            hospital = prng.choice(fitting or hospitals)
            hospital_from = local_date(created) + timedelta(days=prng.randint(0, max(1, args.days)))
            hospital_from = min(hospital_from, local_date(end))
            if prng.random() < 0.4 and hospital_from + timedelta(days=15) < local_date(end):
                hospital_to = min(hospital_from + timedelta(days=prng.randint(14, 120)), local_date(end - DAY))
        raw.append(
            {
                "prng": prng,
                "identifier": identifier,
                "born": born,
                "d_number": d_number,
                "conditions": conditions,
                "created": created,
                "ended": ended if prng.random() < 0.03 else None,
                "municipality": municipality,
                "gp": gp,
                "hospital": hospital,
                "hospital_from": hospital_from,
                "hospital_to": hospital_to,
            }
        )

    # Staff: enough nurses for each municipality, a few physicians per GP office and department.
    gp_patients = Counter(r["gp"].index for r in raw if r["gp"] is not None)
    staff: list[Staff] = []
    staff_by_org: dict[int, list[int]] = defaultdict(list)
    for org in orgs:
        if org.kind == "municipality":
            roles = [("nurse", max(2, math.ceil(per_org[org.index] / 45)))]
        elif org.kind == "gp-office":
            roles = [("gp", max(2, math.ceil(gp_patients[org.index] / 250)))]
        else:
            roles = [("doctor", 3), ("nurse", 3)]
        for role, count in roles:
            for n in range(1, count + 1):
                member = Staff(len(staff), f"{role}-{org.orgnr}-{n}", person_name(rng), str(rng.randint(10**6, 10**7 - 1)), org.index)
                staff.append(member)
                staff_by_org[org.index].append(member.index)

    counters: Counter[str] = Counter()
    patients: list[PatientSpec] = []
    device_created: dict[str, int] = {}
    for index, r in enumerate(raw):
        prng: random.Random = r["prng"]
        created: int = r["created"]
        conditions = r["conditions"]
        profile = make_profile(conditions, args.days, random.Random(f"{args.seed}/profile/{index}"))
        items = []
        for reading_type, every in sorted(plan_for(conditions, prng).items(), key=lambda t: MORNING_ORDER.index(t[0])):
            prefix, _, _, aliases = DEVICE_KINDS[reading_type]
            counters[prefix] += 1
            device_at = created - prng.randint(1, 14) * DAY
            unit = READING_TYPES[reading_type].unit
            if aliases and prng.random() < 0.12:
                unit = prng.choice(aliases)
            device_id = uuid7(device_at, prng)
            device_created[device_id] = device_at
            items.append(
                Item(
                    reading_type,
                    every,
                    device_id,
                    f"{prefix}-{counters[prefix]:06d}",
                    unit,
                    reading_type == "blood-pressure" and prng.random() < 0.9,
                    device_at,
                    uuid7(created, prng),
                )
            )
        overrides: list[OverrideVersion] = []
        if prng.random() < 0.10:
            authors = [
                s
                for org in (r["gp"], r["hospital"], r["municipality"])
                if org is not None
                for s in staff_by_org[org.index]
            ][:8]
            count = prng.choice((1, 1, 1, 2, 2, 3))
            moments = sorted(start + prng.randint(5 * 24, (args.days - 1) * 24) * HOUR for _ in range(count))
            moments = [m + prng.randint(8 * 3600, 14 * 3600) * SEC - m % DAY for m in moments]
            for version, (at, bands, gain, reason, author) in enumerate(
                override_versions(prng, conditions, profile, moments, authors), start=1
            ):
                overrides.append(OverrideVersion(uuid7(at, prng), version, at, bands, gain, reason, author))
        name = person_name(prng)
        patient_id = uuid7(created, prng)
        patients.append(
            PatientSpec(
                index=index,
                id=patient_id,
                identifier=r["identifier"],
                system=str(IdentifierKind.dnr if r["d_number"] else IdentifierKind.fnr),
                name=name,
                birth_date=r["born"],
                conditions=conditions,
                created_at=created,
                ended_at=r["ended"],
                municipality=r["municipality"].index,
                gp=r["gp"].index if r["gp"] else None,
                hospital=r["hospital"].index if r["hospital"] else None,
                hospital_from=r["hospital_from"],
                hospital_to=r["hospital_to"],
                gateway=f"hub-{index + 1:05d}",
                gateway_registered=prng.random() < 0.5,
                items=tuple(items),
                overrides=tuple(overrides),
                profile=profile,
            )
        )

    # About 2 % of devices were lent to another, earlier enrolled patient before (device history).
    history = []
    by_created = sorted(patients, key=lambda p: p.created_at)
    for patient in patients:
        for item in patient.items:
            if rng.random() >= 0.02:
                continue
            earlier = [p for p in by_created[: len(by_created) // 2] if p.created_at < patient.created_at - 20 * DAY]
            if not earlier:
                continue
            other = rng.choice(earlier)
            begin = other.created_at + rng.randint(1, 5) * DAY
            finish = min(patient.created_at - DAY, begin + rng.randint(10, 120) * DAY)
            if finish <= begin:
                continue
            history.append((uuid7(begin, rng), item.device_id, other.id, begin, finish))
            device_created[item.device_id] = min(device_created[item.device_id], begin - rng.randint(1, 10) * DAY)
    return World(start, end, local_days(start, end), orgs, staff, staff_by_org, patients, history, device_created)


# --------------------------------------------------------------------------------------
# Schema: the bulk tables' secondary indexes and constraints, read from the catalogue
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Secondary:
    """An index or constraint dropped for the load, and how to make it again."""

    kind: str  # index, unique, exclusion, foreign-key
    table: str
    name: str
    definition: str  # CREATE INDEX ... or the constraint's definition
    index_definition: str | None = None  # for a unique constraint: its index


def read_secondaries(connection: psycopg.Connection[Any]) -> list[Secondary]:
    tables = list(BULK_TABLES)
    found: list[Secondary] = []
    constraint_indexes: set[str] = set()
    rows = connection.execute(
        """
        select c.conname, c.conrelid::regclass::text, c.contype, pg_get_constraintdef(c.oid),
               i.relname, pg_get_indexdef(c.conindid)
        from pg_constraint c
        left join pg_class i on i.oid = c.conindid and c.contype in ('p', 'u', 'x')
        where c.contype in ('p', 'u', 'x', 'f')
          and (c.conrelid = any(%(tables)s::regclass[]) or c.confrelid = any(%(tables)s::regclass[]))
        order by c.conname
        """,
        {"tables": tables},
    ).fetchall()
    for name, table, kind, definition, index_name, index_definition in rows:
        if index_name:
            constraint_indexes.add(index_name)
        if kind == "p":
            continue  # primary keys stay
        if kind == "u":
            found.append(Secondary("unique", table, name, definition, index_definition))
        elif kind == "x":
            found.append(Secondary("exclusion", table, name, definition))
        else:
            found.append(Secondary("foreign-key", table, name, definition))
    for name, table, definition in connection.execute(
        "select indexname, tablename, indexdef from pg_indexes"
        " where schemaname = 'public' and tablename = any(%(tables)s) order by indexname",
        {"tables": tables},
    ).fetchall():
        if name not in constraint_indexes:
            found.append(Secondary("index", table, name, definition))
    return found


def drop_secondaries(connection: psycopg.Connection[Any], secondaries: list[Secondary]) -> None:
    order = {"foreign-key": 0, "unique": 1, "exclusion": 1, "index": 2}
    for item in sorted(secondaries, key=lambda s: order[s.kind]):
        if item.kind == "index":
            connection.execute(f'drop index "{item.name}"')
        else:
            connection.execute(f'alter table "{item.table}" drop constraint "{item.name}"')


def recreate_secondaries(database: str, secondaries: list[Secondary], sizes: dict[str, int]) -> list[str]:
    """Indexes (and the unique constraints' indexes) two at a time, largest table first; then the
    unique, exclusion and foreign-key constraints. Returns what took how long."""
    report: list[str] = []

    def build(statement: str, label: str) -> None:
        began = time.perf_counter()
        with psycopg.connect(db_url(database), autocommit=True) as connection:
            connection.execute("set maintenance_work_mem = '1GB'")
            connection.execute("set max_parallel_maintenance_workers = 0")  # two builds share two cores
            connection.execute(statement)
        report.append(f"{label} {time.perf_counter() - began:.1f}s")
        log(f"  built {label} in {time.perf_counter() - began:.1f}s")

    builds = [(s.definition, s.name, s.table) for s in secondaries if s.kind == "index"]
    builds += [(s.index_definition or "", s.name, s.table) for s in secondaries if s.kind == "unique"]
    builds.sort(key=lambda b: -sizes.get(b[2], 0))
    with ThreadPoolExecutor(max_workers=2) as pool:
        for future in [pool.submit(build, statement, name) for statement, name, _ in builds]:
            future.result()
    with psycopg.connect(db_url(database), autocommit=True) as connection:
        connection.execute("set maintenance_work_mem = '1GB'")
        for item in secondaries:
            if item.kind == "unique":
                deferrable = " ".join(w for w in ("DEFERRABLE", "INITIALLY DEFERRED") if w in item.definition)
                connection.execute(
                    f'alter table "{item.table}" add constraint "{item.name}" unique using index "{item.name}"'
                    + (f" {deferrable}" if deferrable else "")
                )
        for item in secondaries:
            if item.kind in ("exclusion", "foreign-key"):
                began = time.perf_counter()
                connection.execute(f'alter table "{item.table}" add constraint "{item.name}" {item.definition}')
                report.append(f"{item.name} {time.perf_counter() - began:.1f}s")
    return report


# --------------------------------------------------------------------------------------
# FHIR resources from templates, checked against the service's own mapping
# --------------------------------------------------------------------------------------

# Sentinels put into observation_resource's output where each row's own values go.
_S_OBSERVATION = "00000000-0000-4000-8000-00000000aa01"
_S_PATIENT = "00000000-0000-4000-8000-00000000aa02"
_S_DEVICE = "00000000-0000-4000-8000-00000000aa03"
_S_PANEL = "00000000-0000-4000-8000-00000000aa04"
_S_IDENTIFIER = "IDENTIFIERSENTINEL"
_S_EFFECTIVE = "EFFECTIVESENTINEL"
_S_ISSUED = datetime(2001, 2, 3, 4, 5, 6, 789012, tzinfo=UTC)
_S_VALUES = (987654.25, 876543.25)
JUDGEMENTS = {
    "N": GREEN,
    "L": Judgement(Level.yellow, "low", None),
    "H": Judgement(Level.yellow, "high", None),
    "LL": Judgement(Level.red, "low", None),
    "HH": Judgement(Level.red, "high", None),
}


def kind_type(kind: str) -> ReadingType:
    return HEART_RATE if kind == "pulse" else READING_TYPES[kind]


class Templates:
    """The JSON text of `observation_resource` per shape (reading type or a blood pressure's pulse,
    interpretations, the patient's yellow bands), with {0}..{8} where each row's values go:
    id, identifier, patient, effective, issued, device, value(s), the panel a pulse derives from."""

    def __init__(self) -> None:
        self._templates: dict[tuple[Any, ...], str] = {}
        self._yellow: dict[tuple[int, str], tuple[Any, ...]] = {}

    def get(self, kind: str, interpretations: tuple[str, ...], thresholds: EffectiveThresholds) -> str:
        yellow = self._yellow.get((id(thresholds), kind))
        if yellow is None:
            codes = [q.code for q in kind_type(kind).components.values()]
            bands = [thresholds.yellow.get(code) for code in codes]
            # repr: 94 and 94.0 are one dict key in Python but two texts in JSON
            yellow = tuple((c, repr(b.low), repr(b.high)) if b else (c,) for c, b in zip(codes, bands, strict=True))
            self._yellow[(id(thresholds), kind)] = yellow
        key = (kind, interpretations, yellow)
        template = self._templates.get(key)
        if template is None:
            template = self._templates[key] = self._build(kind, interpretations, thresholds)
        return template

    @staticmethod
    def _build(kind: str, interpretations: tuple[str, ...], thresholds: EffectiveThresholds) -> str:
        reading_type = kind_type(kind)
        codes = [q.code for q in reading_type.components.values()]
        draft = ObservationDraft(
            reading_type,
            reading_type.code,
            dict(zip(codes, _S_VALUES, strict=False)),
            reading_type.unit,
            _S_IDENTIFIER,
            derived_from_panel=kind == "pulse",
        )
        resource = observation_resource(
            draft,
            observation_id=_uuid(_S_OBSERVATION),
            patient_id=_uuid(_S_PATIENT),
            device_id=_uuid(_S_DEVICE),
            effective=_S_EFFECTIVE,
            issued=_S_ISSUED,
            panel_id=_uuid(_S_PANEL) if kind == "pulse" else None,
            judgements={c: JUDGEMENTS[i] for c, i in zip(codes, interpretations, strict=True)},
            yellow_bands=thresholds.yellow,
        )
        text = orjson.dumps(resource).decode()
        if any(c in text for c in "\\\t\n\r"):
            raise ValueError("a resource template needs COPY escaping")
        text = text.replace("{", "{{").replace("}", "}}")
        sentinels = [_S_OBSERVATION, _S_IDENTIFIER, _S_PATIENT, _S_EFFECTIVE, _S_ISSUED.isoformat(), _S_DEVICE]
        sentinels += [repr(v) for v in _S_VALUES[: len(codes)]]
        if kind == "pulse":
            sentinels.append(_S_PANEL)
        for number, sentinel in enumerate(sentinels if kind == "pulse" else sentinels):
            position = 8 if sentinel == _S_PANEL else number
            if text.count(sentinel) != 1:
                raise ValueError(f"sentinel {sentinel} found {text.count(sentinel)} times in the {kind} template")
            text = text.replace(sentinel, f"{{{position}}}")
        return text


def _uuid(text: str) -> Any:
    import uuid

    return uuid.UUID(text)


@dataclass(slots=True)
class Breach:
    at: int  # when the rules ran: the reading's batch
    rule: str
    level: str
    value: float
    unit: str
    threshold: dict[str, Any]
    reading_at: int
    late: bool
    version: int
    evidence: tuple[tuple[str, float, int], ...]  # observation id, value, effective


class Checker:
    """Compares the first rows with what the service itself would build for the same inputs."""

    def __init__(self, limit: int) -> None:
        self.left = limit
        self.checked = 0

    def observation(
        self,
        *,
        kind: str,
        values: dict[str, float],
        identifier: str,
        ids: tuple[str, str, str, str | None],
        effective: str,
        issued: int,
        thresholds: EffectiveThresholds,
        resource_text: str,
        breaches: list[Breach],
        received: int,
        effective_at: int,
    ) -> None:
        observation_id, patient_id, device_id, panel_id = ids
        reading_type = kind_type(kind)
        draft = ObservationDraft(
            reading_type, reading_type.code, values, reading_type.unit, identifier, derived_from_panel=kind == "pulse"
        )
        judgements = judgements_for(draft.values, thresholds)
        expected = orjson.dumps(
            observation_resource(
                draft,
                observation_id=_uuid(observation_id),
                patient_id=_uuid(patient_id),
                device_id=_uuid(device_id),
                effective=effective,
                issued=from_us(issued),
                panel_id=_uuid(panel_id) if panel_id else None,
                judgements=judgements,
                yellow_bands=thresholds.yellow,
            )
        ).decode()
        if expected != resource_text:
            raise AssertionError(f"resource differs from observation_resource:\n{resource_text}\n{expected}")
        orjson.loads(resource_text)
        wanted = threshold_breaches(
            patient_id=_uuid(patient_id),
            observation_id=_uuid(observation_id),
            judgements=judgements,
            values=draft.values,
            unit=draft.unit,
            reading_at=from_us(effective_at),
            received_at=from_us(received),
            thresholds=thresholds,
        )
        got = [(b.rule, b.level, b.threshold, b.late, b.version, b.value) for b in breaches]
        want = [(b.rule, str(b.level), b.threshold, b.late, b.thresholds_version, b.value) for b in wanted]
        if got != want:
            raise AssertionError(f"breaches differ from rpm.rules.evaluation: {got} != {want}")
        self.left -= 1
        self.checked += 1


# --------------------------------------------------------------------------------------
# Simulation of one patient's readings (in the worker processes)
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class JobParams:
    seed: int
    database: str
    start: int
    end: int
    days: list[LocalDay]
    staff: list[Staff]
    staff_by_org: dict[int, list[int]]
    check: int
    alert_columns: list[str]


NO_EFFECT = (0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0)  # spo2, heart rate, resp. rate, sys, dia, kg, log glucose


def episode_effects(profile: Profile) -> dict[int, tuple[float, ...]]:
    effects: dict[int, list[float]] = {}
    for episode in profile.episodes:
        s = episode.size
        if episode.kind == "gain":  # a heart-failure patient's fluid: 1.5-3.2 kg in 2-3 days, then diuretics
            rise, fall = 2 + round(s), episode.length - 2 - round(s)
        else:
            rise, fall = max(1, round(episode.length * 0.4)), max(1, round(episode.length * 0.3))
        size = {
            "copd": (-(4 + 5 * s), 8 + 12 * s, 3 + 4 * s, 0.0, 0.0, 0.0, 0.0),
            "hf": (0.0, 5 + 10 * s, 0.0, -8 * s, -3 * s, 2.5 + 2 * s, 0.0),
            "gain": (0.0, 0.0, 0.0, 0.0, 0.0, 1.5 + 1.7 * s, 0.0),
            "htn": (0.0, 3.0, 0.0, 18 + 22 * s, 8 + 12 * s, 0.0, 0.0),
            "hyper": (0.0, 4.0, 0.0, 0.0, 0.0, 0.0, math.log(1.5 + 0.7 * s)),
            "tachy": (0.0, 25 + 20 * s, 0.0, 0.0, 0.0, 0.0, 0.0),
        }[episode.kind]
        for d in range(episode.length):
            intensity = min(1.0, (d + 1) / rise, (episode.length - d) / max(1, fall))
            totals = effects.setdefault(episode.start + d, [0.0] * 7)
            for n in range(7):
                totals[n] += size[n] * intensity
    return {day: tuple(v) for day, v in effects.items()}


class Tracker:
    """The missing-measurement rule for one planned reading type, fed in arrival order."""

    __slots__ = ("alerts", "every", "last", "pending")

    def __init__(self, every_hours: int) -> None:
        self.every = every_hours * HOUR
        self.pending: list[tuple[int, int]] = []  # (received, effective)
        self.last: int | None = None  # newest effective time received so far
        self.alerts: list[tuple[int, int | None, int | None]] = []  # opened, resolved (by a reading), last reading

    def settle(self, until: int, start: int, stop: int) -> None:
        while self.pending and self.pending[0][0] < until:
            received, effective = heapq.heappop(self.pending)
            due = (start if self.last is None else self.last) + self.every + MISSING_GRACE
            if received > due and due < stop:
                self.alerts.append((due, received, self.last))
            if self.last is None or effective > self.last:
                self.last = effective

    def finish(self, start: int, stop: int) -> None:
        self.settle(1 << 62, start, stop)
        due = (start if self.last is None else self.last) + self.every + MISSING_GRACE
        if due < stop:
            self.alerts.append((due, None, self.last))


class PatientSim:
    def __init__(self, spec: PatientSpec, params: JobParams, templates: Templates, checker: Checker) -> None:
        self.spec, self.params, self.templates, self.checker = spec, params, templates, checker
        self.rng = random.Random(f"{params.seed}/readings/{spec.index}")
        self.p = spec.profile
        self.stop = min(spec.ended_at or params.end, params.end)
        self.thresholds: list[tuple[int, EffectiveThresholds]] = [(-1, effective_thresholds(spec.conditions))]
        for version in spec.overrides:
            self.thresholds.append(
                (
                    version.changed_at,
                    effective_thresholds(spec.conditions, version.bands, version.weight_gain, version.version),
                )
            )
        self.items = [i for i in spec.items]
        self.glucose = next((i for i in spec.items if i.type == "blood-glucose"), None)
        self.trackers = {i.type: Tracker(i.every_hours) for i in spec.items}
        self.effects = episode_effects(self.p)
        self.hypo_chance = self.p.hypos_per_year / 365
        self.p_back = 1 / self.p.away_days
        self.p_leave = self.p.away_share / ((1 - self.p.away_share) * self.p.away_days)
        self.away = False
        self.drift = 0.0
        self.sequence = 0
        self.weights: deque[tuple[int, float, str]] = deque()
        self.breaches: list[Breach] = []
        self.last_received = 0
        self.rows = 0

    def thresholds_at(self, received: int) -> EffectiveThresholds:
        found = self.thresholds[0][1]
        for since, thresholds in self.thresholds:
            if since <= received:
                found = thresholds
        return found

    # -- one day ----------------------------------------------------------------------

    def day(self, number: int, day: LocalDay, emit: Callable[[int, str], None]) -> None:
        if day.midnight >= self.stop:
            return
        rng, p = self.rng, self.p
        if self.away:
            self.away = rng.random() >= self.p_back
        else:
            self.away = rng.random() < self.p_leave
        self.drift = 0.95 * self.drift + rng.gauss(0, 0.15)
        if self.away:
            return
        effect = self.effects.get(number, NO_EFFECT)
        # On about 1 % of days the hub is offline and delivers the day's readings the day after.
        deliver = day.midnight + DAY + rng.randint(7 * 3600, 21 * 3600) * SEC if rng.random() < p.late_days else 0
        morning = min(9 * 3600 + 1800, max(7 * 3600, p.morning + rng.randint(-p.jitter, p.jitter)))
        moment = morning
        for item in self.items:
            if rng.random() < p.miss:
                continue
            moment += rng.randint(30, 150)
            moment = self.take(item, day, moment, effect, deliver, evening=False)
        if self.glucose is not None and rng.random() >= p.miss:
            evening = morning + p.evening_gap + rng.randint(-1200, 1200)
            self.take(self.glucose, day, evening, effect, deliver, evening=True)

    def take(
        self, item: Item, day: LocalDay, moment: int, effect: tuple[float, ...], deliver: int, evening: bool
    ) -> int:
        """One reading of `item` at `moment` (seconds after local midnight); returns when it ended."""
        rng, p = self.rng, self.p
        count = 2 if item.type == "blood-pressure" and rng.random() < p.bp_double else 1
        for repeat in range(count):
            if repeat:
                moment += rng.randint(60, 150)
            effective = day.midnight + moment * SEC
            if effective < self.params.start or effective >= self.stop:
                continue
            if deliver:
                received = deliver + rng.randint(0, 4000) * 1000
            elif rng.random() < 0.03:  # the hub sends a batch a while later
                received = effective + rng.randint(2 * 60, 40 * 60) * SEC
            else:
                received = effective + int(rng.lognormvariate(2.0, 0.9) * SEC)
            if received > self.params.end:
                continue
            hh, rest = divmod(moment, 3600)
            text = f"{day.text}T{hh:02d}:{rest // 60:02d}:{rest % 60:02d}{day.offset_text}"
            self.reading(item, effective, text, received, effect, evening, repeat)
        return moment

    def reading(
        self,
        item: Item,
        effective: int,
        effective_text: str,
        received: int,
        effect: tuple[float, ...],
        evening: bool,
        repeat: int,
    ) -> None:
        rng, p, kind = self.rng, self.p, item.type
        pulse: int | None = None
        sent: Any
        if kind == "blood-pressure":
            noise = rng.gauss(0, p.bp_sd)
            systolic = round(p.systolic + effect[3] + noise - 3 * repeat)
            diastolic = round(p.diastolic + effect[4] + 0.6 * noise * 0.6 + rng.gauss(0, 3))
            systolic = min(260, max(70, systolic))
            diastolic = min(systolic - 15, max(40, diastolic))
            pulse = min(200, max(35, round(p.pulse + effect[1] + rng.gauss(0, 5)))) if item.sends_pulse else None
            if item.unit == "kPa":
                sent = {"systolic": round(systolic / 7.50062, 2), "diastolic": round(diastolic / 7.50062, 2)}
            else:
                sent = {"systolic": systolic, "diastolic": diastolic}
            if pulse is not None:
                sent["pulse"] = pulse
            values = [to_canonical(sent["systolic"], item.unit, "mm[Hg]")]
            values.append(to_canonical(sent["diastolic"], item.unit, "mm[Hg]"))
        elif kind == "body-weight":
            kilograms = p.weight + self.drift + effect[5] + rng.gauss(0, 0.25)
            if item.unit == "[lb_av]":
                sent = round(kilograms / 0.45359237, 1)
            elif item.unit == "g":
                sent = round(kilograms * 10) * 100
            else:
                sent = round(kilograms, 1)
            values = [to_canonical(sent, item.unit, "kg")]
        elif kind == "spo2":
            percent = min(100, max(70, round(p.spo2 + effect[0] + rng.gauss(0, p.spo2_sd))))
            sent = round(percent / 100, 2) if item.unit == "1" else percent
            values = [to_canonical(sent, item.unit, "%")]
        elif kind == "heart-rate":
            sent = min(200, max(35, round(p.heart_rate + effect[1] + rng.gauss(0, 5))))
            values = [to_canonical(sent, item.unit, "/min")]
        elif kind == "respiratory-rate":
            sent = min(40, max(6, round(p.respiratory_rate + effect[2] + rng.gauss(0, 1.0))))
            values = [to_canonical(sent, item.unit, "/min")]
        else:  # blood-glucose
            level = p.glucose_evening if evening else p.glucose_morning
            mmol = level * math.exp(effect[6] + rng.gauss(0, p.glucose_sd))
            if rng.random() < self.hypo_chance / 2:
                mmol = rng.uniform(2.6, 3.8)
            mmol = min(33.0, max(1.5, mmol))
            sent = round(mmol * 18.016) if item.unit == "mg/dL" else round(mmol, 1)
            values = [to_canonical(sent, item.unit, "mmol/L")]
        self.sequence += 1
        self.store(item, effective, effective_text, received, values, orjson.dumps(sent).decode(), pulse)

    # -- rows -------------------------------------------------------------------------

    def store(
        self,
        item: Item,
        effective: int,
        effective_text: str,
        received: int,
        values: list[float],
        original: str,
        pulse: int | None,
    ) -> None:
        rng, spec, emit = self.rng, self.spec, self.emit
        gateway, patient_id, device_id = spec.gateway, spec.id, item.device_id
        reading_id = f"r-{self.sequence:06d}"
        identifier = f"{gateway}/{reading_id}"
        issued = received + rng.randint(2_000, 200_000)
        stored = issued + rng.randint(300, 20_000)
        thresholds = self.thresholds_at(received)
        reading_type = READING_TYPES[item.type]
        observation_id = uuid7(issued, rng)
        issued_text, received_text, stored_text = iso(issued), ts(received), ts(stored)
        late = received - effective > LATE_AFTER
        breaches: list[Breach] = []
        codes = [q.code for q in reading_type.components.values()]
        judgements = []
        for code, value in zip(codes, values, strict=True):
            judgement = judge(value, thresholds.bands.get(code, NO_BANDS))
            judgements.append(judgement)
            if judgement is not GREEN and judgement.level is not Level.green:
                breaches.append(
                    Breach(
                        issued,
                        f"threshold:{code}:{judgement.side}",
                        str(judgement.level),
                        value,
                        reading_type.unit,
                        judgement.threshold or {},
                        effective,
                        late,
                        thresholds.version,
                        ((observation_id, value, effective),),
                    )
                )
        interpretations = tuple("N" if j is GREEN else j.interpretation for j in judgements)
        template = self.templates.get(item.type, interpretations, thresholds)
        texts = [repr(v) for v in values]
        resource = template.format(
            observation_id,
            identifier,
            patient_id,
            effective_text,
            issued_text,
            device_id,
            texts[0],
            texts[1] if len(texts) > 1 else "",
            "",
        )
        if reading_type.is_panel:
            value_text, components = "\\N", f'{{"{codes[0]}":{texts[0]},"{codes[1]}":{texts[1]}}}'
        else:
            value_text, components = texts[0], "\\N"
        emit(
            received,
            f"{observation_id}\t{patient_id}\t{device_id}\t{item.type}\t{reading_type.code}\t{effective_text}\t"
            f"{value_text}\t{components}\t{reading_type.unit}\t{original}\t{item.unit}\t{gateway}\t{reading_id}\t"
            f"{received_text}\t{stored_text}\t{resource}\n",
        )
        if self.checker.left > 0:
            self.checker.observation(
                kind=item.type,
                values=dict(zip(codes, values, strict=True)),
                identifier=identifier,
                ids=(observation_id, patient_id, device_id, None),
                effective=effective_text,
                issued=issued,
                thresholds=thresholds,
                resource_text=resource,
                breaches=breaches,
                received=received,
                effective_at=effective,
            )
        self.rows += 1
        self.breaches += breaches
        self.feed(item.type, received, effective)
        if item.type == "body-weight":
            self.weight_gain(values[0], observation_id, effective, received, thresholds)
        if pulse is None:
            return

        # The blood pressure's pulse: its own heart-rate Observation, derived from the panel.
        pulse_id = uuid7(issued, rng)
        value = float(pulse)
        judgement = judge(value, thresholds.bands.get(HEART_RATE.code, NO_BANDS))
        breaches = []
        if judgement is not GREEN and judgement.level is not Level.green:
            breaches.append(
                Breach(
                    issued,
                    f"threshold:{HEART_RATE.code}:{judgement.side}",
                    str(judgement.level),
                    value,
                    HEART_RATE.unit,
                    judgement.threshold or {},
                    effective,
                    late,
                    thresholds.version,
                    ((pulse_id, value, effective),),
                )
            )
        template = self.templates.get("pulse", ("N" if judgement is GREEN else judgement.interpretation,), thresholds)
        text = repr(value)
        resource = template.format(
            pulse_id, f"{identifier}/pulse", patient_id, effective_text, issued_text, device_id, text, "", observation_id
        )
        emit(
            received,
            f"{pulse_id}\t{patient_id}\t{device_id}\theart-rate\t{HEART_RATE.code}\t{effective_text}\t{text}\t\\N\t"
            f"{HEART_RATE.unit}\t{original}\t{item.unit}\t{gateway}\t{reading_id}\t{received_text}\t{stored_text}\t"
            f"{resource}\n",
        )
        if self.checker.left > 0:
            self.checker.observation(
                kind="pulse",
                values={HEART_RATE.code: value},
                identifier=f"{identifier}/pulse",
                ids=(pulse_id, patient_id, device_id, observation_id),
                effective=effective_text,
                issued=issued,
                thresholds=thresholds,
                resource_text=resource,
                breaches=breaches,
                received=received,
                effective_at=effective,
            )
        self.rows += 1
        self.breaches += breaches
        self.feed("heart-rate", received, effective)

    def emit(self, received: int, line: str) -> None:
        raise NotImplementedError  # replaced per job by the bucket writer

    def feed(self, reading_type: str, received: int, effective: int) -> None:
        tracker = self.trackers.get(reading_type)
        if tracker is not None:
            heapq.heappush(tracker.pending, (received, effective))
        if received > self.last_received:
            self.last_received = received

    def weight_gain(
        self, kilograms: float, observation_id: str, effective: int, received: int, thresholds: EffectiveThresholds
    ) -> None:
        """The trend rule, backwards: this reading against the lowest weight of the window before it."""
        rule = thresholds.weight_gain
        weights = self.weights
        if rule is not None:
            window = rule.window_hours * HOUR
            low: tuple[int, float, str] | None = None
            for entry in weights:
                if effective - window <= entry[0] < effective and (low is None or (entry[1], entry[0]) < (low[1], low[0])):
                    low = entry
            if low is not None:
                gain = round(kilograms - low[1], 3)
                level = judge_gain(gain, rule)
                if level is not Level.green:
                    limit = rule.red if level is Level.red else rule.yellow
                    self.breaches.append(
                        Breach(
                            received,
                            "trend:weight-gain",
                            str(level),
                            gain,
                            "kg",
                            {"gain": limit, "window_hours": rule.window_hours},
                            effective,
                            received - effective > LATE_AFTER,
                            thresholds.version,
                            ((low[2], low[1], low[0]), (observation_id, kilograms, effective)),
                        )
                    )
        weights.append((effective, kilograms, observation_id))
        while weights and weights[0][0] < effective - 15 * DAY:
            weights.popleft()
