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
`rpm.fhir.observation.observation_resource` (and their breaches with `rpm.rules.threshold` and
`rpm.rules.weight_gain`), and a mismatch fails the run. Ids are UUIDv7 of the moment a row was
recorded (as `rpm.db.new_id` makes them), from the seeded generators; missing-measurement alerts get
random version-4 ids (nothing orders alerts by id).

Alerts follow the rules exactly, so with 80-97 % adherence most alerts are `missing:{type}` alerts
(opened every_hours + 2 h after the last reading, resolved by the system when the next one arrives):
about 12 % of active patients have an open one at the end, besides the ~5 % with an active threshold or
weight-gain alert. Patients whose follow-up ended (3 %) have their device assignments ended then, as
`patients.service` does. The audit trail comes to ~1.4 M records (a queue search or patient list page
records one row per patient shown, with one request id).

How to read the output
----------------------
Progress goes to stderr. The report (stdout) gives the wall time of each phase, the rows written per
table (COPY's own row counts), the Observations COPY rate (rows/s and MB/s over the observations phase,
generation included), alert figures (by rule kind and status, share of active patients with an active
alert), the database size, and the peak RSS of the main process and of the largest job. The line
"main process: Xs waiting for the jobs' rows, Ys in COPY writes" says which side limited the load (the
generators or the one COPY backend, whose own CPU is given), and how much CPU other processes on the
machine took meanwhile: on a busy machine the figures understate what the script does alone. Exit status
0 when everything was written and checked.

Measured 2026-12-01 on the 2-core machine (another session's test suite using ~60 % of a core meanwhile):
the defaults wrote 10.66 M Observations in 337 s (31,600 rows/s, COPY backend 166 s CPU, jobs 133 s
each), 428 s in all with index builds (69 s) and VACUUM ANALYZE (2 s); 16 GB.
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
import psutil
import psycopg

from rpm.alerts.breaches import Evidence
from rpm.fhir.codes import HEART_RATE, READING_TYPES, ReadingType
from rpm.fhir.observation import observation_resource
from rpm.observations.readings import (
    ObservationDraft,
    Rejection,
    split_message,
    validate_reading,
)
from rpm.patients.identity import IdentifierKind
from rpm.rules.bands import GREEN, Judgement, Level, judge, judge_gain
from rpm.rules.threshold import NO_BANDS, threshold_breaches
from rpm.rules.threshold import interpret as judgements_for
from rpm.rules.thresholds import EffectiveThresholds, effective_thresholds
from rpm.rules.weight_gain import weight_gain_breach
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


def stamps(received: int, issued: int, stored: int) -> tuple[str, str, str]:
    """COPY text of `received` and `stored`, and `issued` as isoformat(): three instants that are
    usually within one second, so the date and time are formatted once."""
    seconds, micro = divmod(received, SEC)
    day, rest = divmod(seconds, 86_400)
    hour, rest = divmod(rest, 3600)
    minute, second = divmod(rest, 60)
    day_text, clock = _day_text(day), f"{hour:02d}:{minute:02d}:{second:02d}"
    received_text = f"{day_text} {clock}.{micro:06d}+00"
    issued_seconds, issued_micro = divmod(issued, SEC)
    if issued_seconds == seconds and issued_micro:
        issued_text = f"{day_text}T{clock}.{issued_micro:06d}+00:00"
    else:
        issued_text = iso(issued)
    stored_seconds, stored_micro = divmod(stored, SEC)
    stored_text = f"{day_text} {clock}.{stored_micro:06d}+00" if stored_seconds == seconds else ts(stored)
    return received_text, issued_text, stored_text


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
    borderline: str | None  # the quantity kept close to a band edge, if any


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
        systolic = min(153.0, max(118.0, rng.gauss(139, 8)))
        diastolic = min(90.0, max(70.0, rng.gauss(83, 4.5)))
    else:
        systolic = min(145.0, max(116.0, rng.gauss(127, 8)))
        diastolic = min(88.0, max(62.0, rng.gauss(77, 5)))
    episodes: list[Episode] = []

    def add(kind: str, per_year: float, shortest: int, longest: int) -> None:
        for _ in range(poisson(rng, per_year * days / 365)):
            episodes.append(Episode(kind, rng.randrange(days), rng.randint(shortest, longest), rng.random()))

    if copd:
        add("copd", 1.2, 5, 12)
    if hf:
        add("hf", 0.7, 7, 14)
        add("gain", 2.0, 5, 9)
    if htn:
        add("htn", 0.9, 2, 6)
    if dm:
        add("hyper", 0.8, 3, 7)
    add("tachy", 0.3, 1, 3)
    glucose_morning = min(10.0, max(5.0, rng.gauss(7.0, 1.1)))
    glucose_evening = glucose_morning + rng.uniform(0.5, 2.5)
    spo2 = rng.uniform(89.5, 95.0) if copd else min(99.0, max(94.5, rng.gauss(96.8, 1.0)))
    pulse = min(95.0, max(52.0, rng.gauss(72, 8)))
    heart_rate = min(95.0, max(52.0, rng.gauss(76 if copd else 72, 8)))
    # A minority lives close to a band edge and makes most of the alerts (and most overrides).
    borderline = None
    if rng.random() < 0.15:
        borderline = rng.choice(
            [q for q, has in (("bp", htn), ("spo2", copd), ("glucose", dm)) if has] or ["heart-rate"]
        )
        if borderline == "bp":
            systolic = rng.uniform(149.0, 156.0)
        elif borderline == "spo2":
            spo2 = rng.uniform(88.0, 89.5)
        elif borderline == "glucose":
            glucose_evening = rng.uniform(10.5, 12.0)
        else:
            pulse = heart_rate = rng.uniform(96.0, 104.0)
    return Profile(
        morning=rng.randint(7 * 3600, 9 * 3600),
        evening_gap=rng.randint(11 * 3600, 12 * 3600),
        jitter=rng.randint(5 * 60, 25 * 60),
        away_share=rng.uniform(0.02, 0.15),
        away_days=rng.uniform(3.0, 10.0),
        miss=rng.uniform(0.002, 0.03),
        late_days=rng.uniform(0.003, 0.018),
        systolic=systolic,
        diastolic=diastolic,
        bp_sd=rng.uniform(5.0, 7.5),
        pulse=pulse,
        bp_double=rng.choice((0.0, 0.05, 0.1, 0.6, 0.9)),
        spo2=spo2,
        spo2_sd=rng.uniform(0.7, 1.1),
        heart_rate=heart_rate,
        respiratory_rate=rng.uniform(14.0, 17.5) if copd else rng.uniform(12.0, 16.0),
        weight=min(150.0, max(45.0, rng.gauss(84, 16))),
        glucose_morning=glucose_morning,
        glucose_evening=glucose_evening,
        glucose_sd=rng.uniform(0.08, 0.15),
        hypos_per_year=rng.choice((0.0, 0.0, 1.0, 3.0)) if dm else 0.0,
        episodes=tuple(sorted(episodes, key=lambda e: e.start)),
        borderline=borderline,
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
        high = float(max(110, round(max(profile.heart_rate, profile.pulse)) + 12))
        changes.append(("8867-4", {"yellow": {"high": high}, "red": {"low": 40.0, "high": high + 15}}))
    patient_rng.shuffle(changes)
    bands: dict[str, Any] = {}
    weight_gain: dict[str, Any] | None = None
    versions = []
    for number, at in enumerate(moments):
        code, value = changes[number % len(changes)]
        if number >= len(changes):  # a later change relaxes an earlier one a little
            value = json.loads(json.dumps(value))
            assert value is not None
            if code == "weight_gain":
                value["yellow"] += 0.5
            else:
                for band in ("yellow", "red"):
                    for side, edge in value.get(band, {}).items():
                        value[band][side] = edge + (-1.0 if side == "low" else 2.0)
        if code == "weight_gain":
            weight_gain = value
        else:
            bands[code] = value
        versions.append((at, dict(bands), weight_gain, patient_rng.choice(OVERRIDE_REASONS), patient_rng.choice(staff)))
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
        if gps and prng.random() < 0.6:  # mostly the GP office near the municipality
            gp = gps[municipality_of[index] % len(gps)] if prng.random() < 0.85 else prng.choice(gps)
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
                member = Staff(
                    len(staff),
                    f"{role}-{org.orgnr}-{n}",
                    person_name(rng),
                    str(rng.randint(10**6, 10**7 - 1)),
                    org.index,
                )
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
        if prng.random() < (0.35 if profile.borderline else 0.06):
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
        for number, sentinel in enumerate(sentinels):
            position = 8 if sentinel == _S_PANEL else number  # the panel a pulse derives from is {8}
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
            raise AssertionError(f"breaches differ from rpm.rules.threshold: {got} != {want}")
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
    def __init__(
        self,
        spec: PatientSpec,
        params: JobParams,
        templates: Templates,
        checker: Checker,
        emit: Callable[[int, str], None],
    ) -> None:
        self.spec, self.params, self.templates, self.checker, self.emit = spec, params, templates, checker, emit
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
        self.random = self.rng.random
        self.fixed = self.thresholds[0][1] if len(self.thresholds) == 1 else None
        self.kinds = {
            i.type: (READING_TYPES[i.type], tuple(q.code for q in READING_TYPES[i.type].components.values()))
            for i in spec.items
        }
        self.away = False
        self.drift = 0.0
        self.sequence = 0
        self.weights: deque[tuple[int, float, str]] = deque()
        self.breaches: list[Breach] = []
        self.last_received = 0
        self.rows = 0

    def between(self, low: int, high: int) -> int:
        """A whole number in [low, high]: random.randint's distribution at a fraction of its cost."""
        return low + int(self.random() * (high - low + 1))

    def thresholds_at(self, received: int) -> EffectiveThresholds:
        if self.fixed is not None:
            return self.fixed
        found = self.thresholds[0][1]
        for since, thresholds in self.thresholds:
            if since <= received:
                found = thresholds
        return found

    # -- one day ----------------------------------------------------------------------

    def day(self, number: int, day: LocalDay) -> None:
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
        deliver = day.midnight + DAY + self.between(7 * 3600, 21 * 3600) * SEC if rng.random() < p.late_days else 0
        morning = min(9 * 3600 + 1800, max(7 * 3600, p.morning + self.between(-p.jitter, p.jitter)))
        moment = morning
        for item in self.items:
            if rng.random() < p.miss:
                continue
            moment += self.between(30, 150)
            moment = self.take(item, day, moment, effect, deliver, evening=False)
        if self.glucose is not None and rng.random() >= p.miss:
            evening = morning + p.evening_gap + self.between(-1200, 1200)
            self.take(self.glucose, day, evening, effect, deliver, evening=True)

    def take(
        self, item: Item, day: LocalDay, moment: int, effect: tuple[float, ...], deliver: int, evening: bool
    ) -> int:
        """One reading of `item` at `moment` (seconds after local midnight); returns when it ended."""
        rng, p = self.rng, self.p
        count = 2 if item.type == "blood-pressure" and rng.random() < p.bp_double else 1
        for repeat in range(count):
            if repeat:
                moment += self.between(60, 150)
            effective = day.midnight + moment * SEC
            if effective < self.params.start or effective >= self.stop:
                continue
            if deliver:
                received = deliver + self.between(0, 4000) * 1000
            elif rng.random() < 0.03:  # the hub sends a batch a while later
                received = effective + self.between(2 * 60, 40 * 60) * SEC
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
            diastolic = round(p.diastolic + effect[4] + 0.5 * noise + rng.gauss(0, 3))
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
        issued = received + self.between(2_000, 200_000)
        stored = issued + self.between(300, 20_000)
        thresholds = self.thresholds_at(received)
        reading_type, codes = self.kinds[item.type]
        observation_id = uuid7(issued, rng)
        received_text, issued_text, stored_text = stamps(received, issued, stored)
        late = received - effective > LATE_AFTER
        breaches: list[Breach] = []
        judgements = []
        bands = thresholds.bands
        for code, value in zip(codes, values, strict=True):
            judgement = judge(value, bands.get(code, NO_BANDS))
            judgements.append(judgement)
            if judgement is not GREEN:
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
            self.weight_gain(values[0], observation_id, effective, received, issued, thresholds)
        if pulse is None:
            return

        # The blood pressure's pulse: its own heart-rate Observation, derived from the panel.
        pulse_id = uuid7(issued, rng)
        value = float(pulse)
        judgement = judge(value, thresholds.bands.get(HEART_RATE.code, NO_BANDS))
        breaches = []
        if judgement is not GREEN:
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
            pulse_id,
            f"{identifier}/pulse",
            patient_id,
            effective_text,
            issued_text,
            device_id,
            text,
            "",
            observation_id,
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

    def feed(self, reading_type: str, received: int, effective: int) -> None:
        tracker = self.trackers.get(reading_type)
        if tracker is not None:
            heapq.heappush(tracker.pending, (received, effective))
        if received > self.last_received:
            self.last_received = received

    def weight_gain(
        self,
        kilograms: float,
        observation_id: str,
        effective: int,
        received: int,
        issued: int,
        thresholds: EffectiveThresholds,
    ) -> None:
        """The trend rule (rules.weight_gain.weight_gain_breach), backwards only: this reading against
        the lowest weight of the window before it (a patient's readings are made in time order)."""
        rule = thresholds.weight_gain
        weights = self.weights
        breach: Breach | None = None
        if rule is not None:
            window = rule.window_hours * HOUR
            low: tuple[int, float, str] | None = None
            for entry in weights:
                if effective - window <= entry[0] < effective and (
                    low is None or (entry[1], entry[0]) < (low[1], low[0])
                ):
                    low = entry
            if low is not None:
                gain = round(kilograms - low[1], 3)
                level = judge_gain(gain, rule)
                if level is not Level.green:
                    limit = rule.red if level is Level.red else rule.yellow
                    breach = Breach(
                        issued,
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
                    self.breaches.append(breach)
            if self.checker.left > 0:
                expected = weight_gain_breach(
                    patient_id=_uuid(self.spec.id),
                    reading=Evidence(_uuid(observation_id), kilograms, from_us(effective)),
                    neighbours=[Evidence(_uuid(o), v, from_us(e)) for e, v, o in weights],
                    rule=rule,
                    received_at=from_us(received),
                    thresholds_version=thresholds.version,
                )
                got = breach and (breach.level, breach.value, breach.threshold, breach.late, breach.evidence[0][0])
                want = expected and (
                    str(expected.level),
                    expected.value,
                    expected.threshold,
                    expected.late,
                    str(expected.evidence[0].observation_id),
                )
                if got != want:
                    raise AssertionError(f"weight gain differs from rpm.rules.weight_gain: {got} != {want}")
        weights.append((effective, kilograms, observation_id))
        while weights and weights[0][0] < effective - 15 * DAY:
            weights.popleft()


# --------------------------------------------------------------------------------------
# Alerts: the lifecycle the rules and the staff would have given the readings
# --------------------------------------------------------------------------------------


@dataclass(slots=True)
class AlertState:
    id: str
    rule: str
    level: str
    opened: int
    raised: int
    red_since: int | None
    last_reading: int | None
    occurrences: int
    value: float | None
    unit: str | None
    threshold: dict[str, Any] | None
    version: int
    late: bool
    updated: int
    evidence: dict[str, tuple[float, int]]
    opening: dict[str, Any]  # the queue item's changing fields as the alert opened
    ack: int | None = None
    ack_staff: int | None = None
    resolve: int | None = None
    resolve_staff: int | None = None  # None: the system ("reading received")
    note: str | None = None
    outcome: str | None = None


@dataclass
class AlertSummary:
    """What the audit phase needs of an alert."""

    patient: int
    id: str
    level: str
    opened: int
    closed: int | None  # resolved (None: active at the end)
    ack: int | None
    ack_staff: int | None
    resolve: int | None
    resolve_staff: int | None
    observation: str | None  # its first triggering Observation


class Lifecycle:
    """Turns one patient's breaches and measurement gaps into alerts, as `alerts.repository.land`,
    the missing-measurement check, escalation and the staff (acknowledge, resolve) would have."""

    def __init__(self, sim: PatientSim, params: JobParams) -> None:
        self.sim, self.params, self.spec = sim, params, sim.spec
        self.rng = random.Random(f"{params.seed}/alerts/{sim.spec.index}")
        self.first_midnight = params.days[0].midnight

    def local_seconds(self, at: int) -> int:
        days = self.params.days
        index = min(len(days) - 1, max(0, (at - self.first_midnight) // DAY))
        return ((at + days[index].offset) % DAY) // SEC

    def working(self, at: int) -> int:
        """Home care works 07:30-22:00 every day; the first moment from `at` someone is at work."""
        tod = self.local_seconds(at)
        if 27_000 <= tod < 79_200:
            return at
        return at + ((86_400 - tod + 27_000) if tod >= 79_200 else (27_000 - tod)) * SEC

    def staff_at(self, at: int) -> int:
        spec, rng, by_org = self.spec, self.rng, self.params.staff_by_org
        x = rng.random()
        if spec.gp is not None and x < 0.1:
            return rng.choice(by_org[spec.gp])
        if spec.hospital is not None and x > 0.95 and spec.hospital_from is not None:
            day = local_date(at)
            if spec.hospital_from <= day and (spec.hospital_to is None or day <= spec.hospital_to):
                return rng.choice(by_org[spec.hospital])
        return rng.choice(by_org[spec.municipality])

    def plan(self, alert: AlertState, at: int) -> None:
        """When staff will acknowledge and resolve an alert opened (or raised to red) at `at`."""
        rng = self.rng
        if alert.level == "red":
            acknowledged = at + int((1 + rng.expovariate(1 / 12)) * MINUTE)
            resolved = acknowledged + int((20 + rng.expovariate(1 / 360)) * MINUTE)
        else:
            acknowledged = self.working(at) + int((3 + rng.expovariate(1 / 75)) * MINUTE)
            x = rng.random()
            if x < 0.3:  # settled by a phone call
                resolved = acknowledged + int((10 + rng.expovariate(1 / 180)) * MINUTE)
            else:  # followed up for a day or (35 %) several, then resolved in working hours
                later = 1 if x < 0.65 else rng.randint(2, 7)
                resolved = acknowledged + later * DAY - self.local_seconds(acknowledged) * SEC
                resolved += rng.randint(8 * 60, 15 * 60) * MINUTE
        if alert.ack is None or acknowledged < alert.ack:
            alert.ack, alert.ack_staff = acknowledged, self.staff_at(acknowledged)
        if alert.resolve is None or resolved > alert.resolve:
            alert.resolve, alert.resolve_staff = resolved, alert.ack_staff
        alert.note, alert.outcome = rng.choice(RESOLVE_NOTES)
        if alert.level == "yellow" and alert.outcome == "referred-to-emergency":
            alert.note, alert.outcome = RESOLVE_NOTES[0]

    def alerts(self) -> list[AlertState]:
        rng, sim = self.rng, self.sim
        found: list[AlertState] = []
        active: dict[str, AlertState] = {}
        for breach in sorted(sim.breaches, key=lambda b: (b.at, b.rule)):
            alert = active.get(breach.rule)
            if alert is not None and alert.resolve is not None and alert.resolve <= breach.at:
                found.append(alert)
                alert = None
            if alert is None:
                alert = AlertState(
                    id=uuid7(breach.at, rng),
                    rule=breach.rule,
                    level=breach.level,
                    opened=breach.at,
                    raised=breach.at,
                    red_since=breach.at if breach.level == "red" else None,
                    last_reading=breach.reading_at,
                    occurrences=1,
                    value=breach.value,
                    unit=breach.unit,
                    threshold=breach.threshold,
                    version=breach.version,
                    late=breach.late,
                    updated=breach.at,
                    evidence={},
                    opening={},
                )
                active[breach.rule] = alert
                self.plan(alert, breach.at)
                if rng.random() < 0.08:  # resolved without being acknowledged first
                    alert.resolve, alert.resolve_staff = alert.ack, alert.ack_staff
                    alert.ack = alert.ack_staff = None
            else:  # the upsert of alerts.repository.land
                alert.occurrences += 1
                if breach.level == "red" and alert.level == "yellow":
                    alert.raised = alert.red_since = breach.at
                    if alert.ack is None or alert.ack > breach.at:  # still open: a nurse reacts sooner
                        self.plan(alert, breach.at)
                if breach.level == "red" or alert.level == "yellow":
                    alert.threshold = breach.threshold
                alert.level = "red" if "red" in (alert.level, breach.level) else "yellow"
                if alert.last_reading is None or breach.reading_at >= alert.last_reading:
                    alert.value, alert.last_reading = breach.value, breach.reading_at
                alert.version = breach.version
                alert.updated = breach.at
            for observation_id, value, effective in breach.evidence:
                alert.evidence.setdefault(observation_id, (value, effective))
            if not alert.opening:
                alert.opening = {
                    "level": alert.level,
                    "value": alert.value,
                    "threshold": alert.threshold,
                    "last_reading": alert.last_reading,
                    "observations": [f"Observation/{o}" for o in alert.evidence],
                }
        found += active.values()

        # Missing measurements: opened by the periodic check, resolved by the reading that arrives.
        for reading_type, tracker in sim.trackers.items():
            for due, resolved, last in tracker.alerts:
                opened = due + rng.randint(0, 59) * SEC
                alert = AlertState(
                    id=uuid4(rng),
                    rule=f"missing:{reading_type}",
                    level="yellow",
                    opened=opened,
                    raised=opened,
                    red_since=None,
                    last_reading=last,
                    occurrences=1,
                    value=None,
                    unit=None,
                    threshold={"every_hours": tracker.every // HOUR, "grace_hours": MISSING_GRACE // HOUR},
                    version=0,
                    late=False,
                    updated=opened,
                    evidence={},
                    opening={},
                )
                if resolved is not None:
                    alert.resolve = resolved + rng.randint(2_000, 200_000)
                    alert.note = "reading received"
                if rng.random() < 0.35:
                    acknowledged = self.working(opened) + int((5 + rng.expovariate(1 / 120)) * MINUTE)
                    if alert.resolve is None or acknowledged < alert.resolve:
                        alert.ack, alert.ack_staff = acknowledged, self.staff_at(acknowledged)
                found.append(alert)

        # A patient whose follow-up ended: what was still active is closed by a nurse.
        ended = self.spec.ended_at
        if ended is not None:
            for alert in found:
                if alert.resolve is None or alert.resolve > ended:
                    alert.resolve = ended + rng.randint(60, 48 * 60) * MINUTE
                    alert.resolve_staff = self.staff_at(alert.resolve)
                    alert.note, alert.outcome = ENDED_NOTE
        return sorted(found, key=lambda a: a.opened)

    def columns(self, alert: AlertState) -> tuple[dict[str, Any], str, int | None]:
        """The alert's row as of the end of the data, its status, and when it escalated."""
        end, staff = self.params.end, self.params.staff
        resolved = alert.resolve is not None and alert.resolve <= end
        acknowledged = alert.ack is not None and alert.ack <= end
        status = "resolved" if resolved else "acknowledged" if acknowledged else "open"
        open_until = min(t for t in (alert.ack, alert.resolve, end) if t is not None)
        deadline = alert.opened + ESCALATE_YELLOW
        if alert.red_since is not None:
            deadline = min(deadline, alert.red_since + ESCALATE_RED)
        escalated_at = deadline + self.rng.randint(1, 59) * SEC
        escalated_at = escalated_at if escalated_at < open_until else None
        ack = staff[alert.ack_staff] if acknowledged and alert.ack_staff is not None else None
        system = alert.resolve_staff is None
        resolver = None if system else staff[alert.resolve_staff]  # type: ignore[index]
        updated = max(
            t
            for t in (
                alert.updated,
                escalated_at,
                alert.ack if acknowledged else None,
                alert.resolve if resolved else None,
            )
            if t
        )
        values = {
            "id": alert.id,
            "patient_id": self.spec.id,
            "rule": alert.rule,
            "level": alert.level,
            "status": status,
            "escalated": escalated_at is not None,
            "escalated_at": escalated_at,
            "late": alert.late,
            "opened_at": alert.opened,
            "raised_at": alert.raised,
            "last_reading_at": alert.last_reading,
            "occurrences": alert.occurrences,
            "value": alert.value,
            "unit": alert.unit,
            "threshold": alert.threshold,
            "thresholds_version": alert.version,
            "acknowledged_by": ack.sub if ack else None,
            "acknowledged_by_name": ack.name if ack else None,
            "acknowledged_at": alert.ack if acknowledged else None,
            "resolved_by": ("system" if system else resolver.sub) if resolved else None,  # type: ignore[union-attr]
            "resolved_by_name": ("rpm" if system else resolver.name) if resolved else None,  # type: ignore[union-attr]
            "resolved_at": alert.resolve if resolved else None,
            "note": alert.note if resolved else None,
            "updated_at": updated,
            "outcome": alert.outcome if resolved and not system else None,
        }
        return values, status, escalated_at


TIME_COLUMNS = {
    "escalated_at",
    "opened_at",
    "raised_at",
    "last_reading_at",
    "acknowledged_at",
    "resolved_at",
    "updated_at",
}


def alert_row(values: dict[str, Any], columns: list[str]) -> str:
    fields = []
    for column in columns:
        value = values[column]
        if value is None:
            fields.append("\\N")
        elif column in TIME_COLUMNS:
            fields.append(ts(value))
        elif column == "threshold":
            fields.append(esc(jsonb(value)))
        elif isinstance(value, float):
            fields.append(repr(value))
        else:
            fields.append(esc(value))
    return "\t".join(fields) + "\n"


def queue_item(values: dict[str, Any], observations: list[str], **changes: Any) -> dict[str, Any]:
    """The queue item (api.md) of an alert row, as `alerts.service.to_item` makes it."""
    from rpm.alerts.schemas import AlertItem

    item = {**values, **changes}
    data = {
        "id": item["id"],
        "patient": item["patient_id"],
        "observations": observations,
        **{k: item[k] for k in AlertItem.model_fields if k in item and k not in ("id", "patient", "observations")},
    }
    for key in TIME_COLUMNS:
        if key in data and data[key] is not None:
            data[key] = from_us(data[key])
    if "last_reading_at" not in data:
        data["last_reading_at"] = from_us(item["last_reading_at"]) if item["last_reading_at"] else None
    return AlertItem.model_validate(data).model_dump(mode="json")


# --------------------------------------------------------------------------------------
# The worker processes
# --------------------------------------------------------------------------------------


@dataclass
class JobResult:
    job: int
    observations: int = 0
    alerts: int = 0
    evidence: int = 0
    checked: int = 0
    cpu: float = 0.0
    rss_mb: float = 0.0
    last_received: dict[int, int] = field(default_factory=dict)
    summaries: list[AlertSummary] = field(default_factory=list)
    events: list[tuple[int, str, str, str, str]] = field(default_factory=list)  # at, alert, patient, kind, item
    stats: Counter[str] = field(default_factory=Counter)
    active_patients: dict[str, set[int]] = field(default_factory=lambda: defaultdict(set))


def job_main(number: int, specs: list[PatientSpec], params: JobParams, out: Any) -> None:
    """Simulate `specs` day by day; put each day's COPY text on `out`, then write the alerts."""
    try:
        result = JobResult(number)
        templates, checker = Templates(), Checker(params.check)
        first = params.days[0].midnight
        buckets: dict[int, list[tuple[int, str]]] = defaultdict(list)

        def emit(received: int, line: str) -> None:
            buckets[(received - first) // DAY].append((received, line))

        def chunk(limit: int) -> bytes:
            lines: list[tuple[int, str]] = []
            for bucket in sorted(b for b in buckets if b < limit):
                lines += buckets.pop(bucket)
            lines.sort(key=lambda entry: entry[0])
            return "".join(line for _, line in lines).encode()

        sims = [PatientSim(spec, params, templates, checker, emit) for spec in specs]
        for n, day in enumerate(params.days):
            for sim in sims:
                sim.day(n, day)
            frontier = params.days[n + 1].midnight if n + 1 < len(params.days) else params.end + DAY
            for sim in sims:
                for tracker in sim.trackers.values():
                    tracker.settle(frontier, params.start, sim.stop)
            out.put(("rows", chunk((frontier - first) // DAY)))
        out.put(("rows", chunk(1 << 40)))

        # Alerts and their evidence, over this job's own connection.
        alert_lines: list[str] = []
        evidence_lines: list[str] = []
        for sim in sims:
            for tracker in sim.trackers.values():
                tracker.finish(params.start, sim.stop)
            result.observations += sim.rows
            result.last_received[sim.spec.index] = sim.last_received
            lifecycle = Lifecycle(sim, params)
            for alert in lifecycle.alerts():
                values, status, escalated_at = lifecycle.columns(alert)
                alert_lines.append(alert_row(values, params.alert_columns))
                for observation_id, (value, effective) in alert.evidence.items():
                    evidence_lines.append(f"{alert.id}\t{observation_id}\t{value!r}\t{ts(effective)}\n")
                kind = alert.rule.split(":")[0]
                result.stats[f"alerts {kind} {status}"] += 1
                result.stats[f"alerts {kind} {values['level']}"] += 1
                if values["escalated"]:
                    result.stats[f"alerts {kind} escalated"] += 1
                if values["late"]:
                    result.stats[f"alerts {kind} late"] += 1
                observations = [f"Observation/{o}" for o in alert.evidence]
                result.summaries.append(
                    AlertSummary(
                        sim.spec.index,
                        alert.id,
                        alert.level,
                        alert.opened,
                        values["resolved_at"],
                        values["acknowledged_at"],
                        alert.ack_staff,
                        values["resolved_at"],
                        alert.resolve_staff,
                        next(iter(alert.evidence), None),
                    )
                )
                if status == "resolved":
                    continue
                if sim.spec.ended_at is None:
                    result.active_patients[kind].add(sim.spec.index)
                opening = alert.opening
                first_item = queue_item(
                    values,
                    opening.get("observations", []),
                    status="open",
                    escalated=False,
                    escalated_at=None,
                    occurrences=1,
                    updated_at=alert.opened,
                    acknowledged_by=None,
                    acknowledged_at=None,
                    level=opening.get("level", values["level"]),
                    value=opening.get("value", values["value"]),
                    threshold=opening.get("threshold", values["threshold"]),
                    last_reading_at=opening.get("last_reading", values["last_reading_at"]),
                )
                result.events.append((alert.opened, alert.id, sim.spec.id, "opened", jsonb(first_item)))
                newest = observations[-50:]
                if escalated_at is not None:
                    item = queue_item(values, newest, status="open", acknowledged_by=None, acknowledged_at=None)
                    result.events.append((escalated_at, alert.id, sim.spec.id, "escalated", jsonb(item)))
                if status == "acknowledged":
                    item = queue_item(values, newest)
                    result.events.append((values["acknowledged_at"], alert.id, sim.spec.id, "changed", jsonb(item)))
            result.stats["breaches"] += len(sim.breaches)
        with psycopg.connect(db_url(params.database)) as connection, connection.cursor() as cursor:
            connection.execute("set synchronous_commit = off")
            with cursor.copy(f"copy alerts ({', '.join(params.alert_columns)}) from stdin") as copy:
                for start in range(0, len(alert_lines), 5000):
                    copy.write("".join(alert_lines[start : start + 5000]))
            result.alerts = cursor.rowcount
            with cursor.copy(
                "copy alert_observations (alert_id, observation_id, value, effective_at) from stdin"
            ) as copy:
                for start in range(0, len(evidence_lines), 5000):
                    copy.write("".join(evidence_lines[start : start + 5000]))
            result.evidence = cursor.rowcount
        result.checked = checker.checked
        result.cpu = time.process_time()
        result.rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        out.put(("done", result))
    except BaseException:
        out.put(("error", traceback.format_exc()))
        raise


# --------------------------------------------------------------------------------------
# Main process: the community's tables
# --------------------------------------------------------------------------------------


def copy_lines(cursor: psycopg.Cursor[Any], table: str, columns: str, lines: Iterable[str]) -> int:
    with cursor.copy(f"copy {table} ({columns}) from stdin") as copy:
        batch: list[str] = []
        for line in lines:
            batch.append(line)
            if len(batch) >= 10_000:
                copy.write("".join(batch))
                batch.clear()
        if batch:
            copy.write("".join(batch))
    return cursor.rowcount


def load_community(connection: psycopg.Connection[Any], world: World, seed: int) -> dict[str, int]:
    rng = random.Random(f"{seed}/community")
    orgs, staff = world.organisations, world.staff
    counts: dict[str, int] = {}
    with connection.cursor() as cursor:
        counts["organisations"] = copy_lines(
            cursor,
            "organisations",
            "id, orgnr, name, kind, created_at",
            (row(o.id, o.orgnr, o.name, o.kind, ts(o.created_at)) for o in orgs),
        )
        counts["patients"] = copy_lines(
            cursor,
            "patients",
            "id, identifier, identifier_system, name, birth_date, conditions, status, follow_up_ended_at,"
            " created_at, updated_at",
            (
                row(
                    p.id,
                    p.identifier,
                    p.system,
                    p.name,
                    p.birth_date.isoformat(),
                    "{" + ",".join(p.conditions) + "}",
                    "ended" if p.ended_at else "active",
                    ts(p.ended_at) if p.ended_at else None,
                    ts(p.created_at),
                    ts(p.ended_at or p.created_at),
                )
                for p in world.patients
            ),
        )

        def care_team() -> Iterator[str]:
            for p in world.patients:
                enrolled = local_date(p.created_at).isoformat()
                yield row(uuid7(p.created_at, rng), p.id, orgs[p.municipality].id, enrolled, None)
                if p.gp is not None:
                    yield row(uuid7(p.created_at, rng), p.id, orgs[p.gp].id, enrolled, None)
                if p.hospital is not None and p.hospital_from is not None:
                    yield row(
                        uuid7(p.created_at, rng),
                        p.id,
                        orgs[p.hospital].id,
                        p.hospital_from.isoformat(),
                        p.hospital_to.isoformat() if p.hospital_to else None,
                    )

        counts["care_team_members"] = copy_lines(
            cursor, "care_team_members", "id, patient_id, organisation_id, period_from, period_to", care_team()
        )
        counts["measurement_plan_items"] = copy_lines(
            cursor,
            "measurement_plan_items",
            "patient_id, reading_type, every_hours",
            (row(p.id, i.type, i.every_hours) for p in world.patients for i in p.items),
        )
        counts["devices"] = copy_lines(
            cursor,
            "devices",
            "id, serial, type, manufacturer, model, organisation_id, created_at",
            (
                row(
                    i.device_id,
                    i.serial,
                    i.type,
                    DEVICE_KINDS[i.type][1],
                    DEVICE_KINDS[i.type][2],
                    orgs[p.municipality].id,
                    ts(world.device_created[i.device_id]),
                )
                for p in world.patients
                for i in p.items
            ),
        )

        def assignments() -> Iterator[str]:
            for assignment_id, device_id, patient_id, begin, finish in world.history:
                yield row(assignment_id, device_id, patient_id, ts(begin), ts(finish))
            for p in world.patients:
                for i in p.items:  # ending a follow-up ends its devices' assignments (patients.service)
                    yield row(
                        i.assignment_id, i.device_id, p.id, ts(p.created_at), ts(p.ended_at) if p.ended_at else None
                    )

        counts["device_assignments"] = copy_lines(
            cursor, "device_assignments", "id, device_id, patient_id, valid_from, valid_to", assignments()
        )
        counts["threshold_overrides"] = copy_lines(
            cursor,
            "threshold_overrides",
            "id, patient_id, version, bands, weight_gain, reason, changed_by_sub, changed_by_name, changed_by_hpr,"
            " changed_by_org, changed_at",
            (
                row(
                    v.id,
                    p.id,
                    v.version,
                    jsonb(v.bands),
                    jsonb(v.weight_gain) if v.weight_gain is not None else None,
                    v.reason,
                    staff[v.staff].sub,
                    staff[v.staff].name,
                    staff[v.staff].hpr,
                    orgs[staff[v.staff].organisation].orgnr,
                    ts(v.changed_at),
                )
                for p in world.patients
                for v in p.overrides
            ),
        )
        counts["gateways"] = copy_lines(
            cursor,
            "gateways",
            "id, name, organisation_id, registered_at, registered_by",
            (
                row(
                    p.gateway, f"Pasienthub {p.index + 1:05d}", orgs[p.municipality].id, ts(p.created_at + HOUR), "seed"
                )
                for p in world.patients
                if p.gateway_registered
            ),
        )
    return counts


# --------------------------------------------------------------------------------------
# Main process: Observations from the jobs, in one COPY FREEZE
# --------------------------------------------------------------------------------------


WAITS: Counter[str] = Counter()  # seconds the main process spent waiting for the jobs and in COPY writes


def receive(messages: Any, process: Any, job: int) -> tuple[str, Any]:
    while True:
        try:
            kind, payload = messages.get(timeout=5)
        except queue_module.Empty:
            if not process.is_alive():
                raise RuntimeError(f"job {job} died (exit code {process.exitcode})") from None
            continue
        if kind == "error":
            raise RuntimeError(f"job {job} failed:\n{payload}")
        return kind, payload


def load_observations(world: World, args: argparse.Namespace, params: JobParams) -> tuple[int, int, list[JobResult]]:
    context = mp.get_context("spawn")
    queues = [context.Queue(maxsize=8) for _ in range(args.jobs)]
    processes = [
        context.Process(
            target=job_main,
            args=(job, [p for p in world.patients if p.index % args.jobs == job], params, queues[job]),
            name=f"seed-job-{job}",
            daemon=True,
        )
        for job in range(args.jobs)
    ]
    machine, me = busy_seconds(), sum(psutil.Process().cpu_times()[:2])
    for process in processes:
        process.start()
    written = lines = 0
    began = time.perf_counter()
    try:
        with psycopg.connect(db_url(args.database)) as connection, connection.cursor() as cursor:
            connection.execute("set synchronous_commit = off")
            # FREEZE needs the table emptied in this transaction: its pages are then written frozen
            # and all-visible, and no later scan rewrites them to set hint bits.
            cursor.execute("truncate observations")
            backend = psutil.Process(connection.info.backend_pid)
            backend_cpu = sum(backend.cpu_times()[:2])
            with cursor.copy(f"copy observations ({OBSERVATION_COLUMNS}) from stdin with (freeze)") as copy:
                for step in range(len(world.days) + 1):
                    for job, messages in enumerate(queues):
                        waited = time.perf_counter()
                        _, payload = receive(messages, processes[job], job)
                        writing = time.perf_counter()
                        copy.write(payload)
                        WAITS["jobs"] += writing - waited
                        WAITS["copy"] += time.perf_counter() - writing
                        written += len(payload)
                        lines += payload.count(b"\n")
                    if step % 30 == 29:
                        elapsed = time.perf_counter() - began
                        log(
                            f"  day {step + 1}/{len(world.days)}: {lines:,} rows, {written / 2**20:,.0f} MB,"
                            f" {lines / elapsed:,.0f} rows/s"
                        )
            rows = cursor.rowcount
            WAITS["backend cpu"] = sum(backend.cpu_times()[:2]) - backend_cpu
        results = [receive(messages, processes[job], job)[1] for job, messages in enumerate(queues)]
    finally:
        for process in processes:
            process.join(timeout=60)
            if process.is_alive():
                process.terminate()
    mine = sum(psutil.Process().cpu_times()[:2]) - me + sum(r.cpu for r in results) + WAITS["backend cpu"]
    WAITS["other cpu"] = max(0.0, busy_seconds() - machine - mine)
    return rows, written, results


def busy_seconds() -> float:
    """CPU seconds the whole machine has been busy (all cores)."""
    times = psutil.cpu_times()
    return sum(times) - times.idle - getattr(times, "iowait", 0.0)


# --------------------------------------------------------------------------------------
# Main process: alert events, gateway status, rejected readings
# --------------------------------------------------------------------------------------


def load_events(cursor: psycopg.Cursor[Any], results: list[JobResult]) -> int:
    events = sorted((e for r in results for e in r.events), key=lambda e: (e[0], e[1]))
    return copy_lines(
        cursor,
        "alert_events",
        "alert_id, patient_id, kind, at, alert",
        (row(alert_id, patient_id, kind, ts(at), item) for at, alert_id, patient_id, kind, item in events),
    )


VENDOR_GATEWAYS = 12


def rejected_readings(world: World, seed: int) -> list[tuple[int, str, Rejection | None, str | None, str]]:
    """(received, gateway, rejection, serial, detail) for a few thousand readings the worker refused."""
    rng = random.Random(f"{seed}/rejected")
    count = max(20, round(0.3 * len(world.patients)))
    registered = [p for p in world.patients if p.gateway_registered] or world.patients
    ended = [p for p in world.patients if p.ended_at is not None and p.ended_at + 2 * DAY < world.end]
    vendors = [f"gw-{rng.getrandbits(32):08x}" for _ in range(VENDOR_GATEWAYS)]
    found = []
    reasons = (
        ("unknown_device", 35),
        ("device_not_assigned", 10),
        ("implausible_value", 15),
        ("bad_unit", 12),
        ("schema", 12),
        ("time_without_offset", 6),
        ("time_in_future", 4),
        ("bad_json", 6),
    )
    for number in range(count):
        reason = pick_weighted(rng, reasons)
        patient = rng.choice(registered)
        received = world.start + rng.randrange(world.end - world.start - HOUR)
        gateway = patient.gateway
        item = rng.choice(patient.items)
        serial = item.serial
        if reason == "unknown_device":
            prefix = rng.choice([v[0] for v in DEVICE_KINDS.values()])
            serial = f"{prefix}-9{rng.randrange(10**5):05d}"
            if rng.random() < 0.4:
                gateway = rng.choice(vendors)
        elif reason == "device_not_assigned" and ended:
            patient = rng.choice(ended)
            item, gateway = rng.choice(patient.items), patient.gateway
            serial = item.serial
            received = patient.ended_at + rng.randrange(DAY, max(2 * DAY, world.end - patient.ended_at - HOUR))
        effective = received - rng.randint(3, 90) * SEC
        at = from_us(effective).astimezone(OSLO)
        time_text = at.replace(microsecond=0).isoformat()
        reading: dict[str, Any] = {
            "id": f"r-x{number:05d}",
            "device": {"serial": serial},
            "type": item.type,
            "time": time_text,
        }
        if item.type == "blood-pressure":
            reading["values"] = {"systolic": rng.randint(115, 160), "diastolic": rng.randint(65, 95)}
        else:
            reading["value"] = {
                "body-weight": 81.4,
                "spo2": 95,
                "heart-rate": 71,
                "respiratory-rate": 16,
                "blood-glucose": 7.2,
            }[item.type]
        reading["unit"] = READING_TYPES[item.type].unit
        if reason == "implausible_value":
            if item.type == "blood-pressure":
                reading["values"]["systolic"] = rng.choice((0, 12, 400))
            else:
                reading["value"] = {"body-weight": 0.8, "spo2": 0, "heart-rate": 0, "respiratory-rate": 0}.get(
                    item.type, 0.0
                )
        elif reason == "bad_unit":
            reading["unit"] = {
                "blood-pressure": "mmHg",
                "body-weight": "lbs",
                "spo2": "%SpO2",
                "heart-rate": "beats/min",
                "respiratory-rate": "breaths/min",
                "blood-glucose": "mg/dl",
            }[item.type]
        elif reason == "schema":
            if item.type == "blood-pressure":
                del reading["values"]["diastolic"]
            else:
                reading["value"] = str(reading["value"]).replace(".", ",")
        elif reason == "time_without_offset":
            reading["time"] = time_text[:19]
        elif reason == "time_in_future":
            reading["time"] = (
                from_us(received + rng.randint(2, 30) * HOUR).astimezone(OSLO).replace(microsecond=0).isoformat()
            )
        now = from_us(received)
        if reason == "bad_json":
            message = json.dumps({"sent_at": time_text, "readings": [reading]}).encode()
            rejection = split_message(message[: rng.randint(20, len(message) - 5)])
            assert isinstance(rejection, Rejection)
            found.append((received, gateway, rejection, None, rejection.detail or ""))
            continue
        checked = validate_reading(reading, gateway, now)
        if isinstance(checked, Rejection):
            found.append((received, gateway, checked, checked.device_serial, checked.detail or ""))
        elif reason == "device_not_assigned" and ended:
            detail = f"device {serial!r} was assigned to no patient at {checked.time_text}"
            found.append(
                (
                    received,
                    gateway,
                    Rejection(
                        checked_reason("device_not_assigned"), detail, checked.payload, checked.reading_id, serial
                    ),
                    serial,
                    detail,
                )
            )
        else:  # unknown_device (also when no follow-up has ended to make device_not_assigned)
            detail = f"device.serial {serial!r} is not registered"
            found.append(
                (
                    received,
                    gateway,
                    Rejection(checked_reason("unknown_device"), detail, checked.payload, checked.reading_id, serial),
                    serial,
                    detail,
                )
            )
    return sorted(found, key=lambda r: r[0])


def checked_reason(name: str) -> Any:
    from rpm.observations.readings import Reason

    return Reason(name)


def load_rejected(cursor: psycopg.Cursor[Any], world: World, seed: int) -> tuple[int, dict[str, int], Counter[str]]:
    rng = random.Random(f"{seed}/rejected-ids")
    rejected = rejected_readings(world, seed)
    last_message: dict[str, int] = {}
    reasons: Counter[str] = Counter()
    lines = []
    for received, gateway, rejection, serial, detail in rejected:
        reasons[str(rejection.reason)] += 1
        last_message[gateway] = max(last_message.get(gateway, 0), received)
        lines.append(
            row(
                uuid7(received, rng),
                ts(received),
                f"rpm/v1/gateways/{gateway}/measurements",
                gateway,
                rejection.reading_id,
                serial,
                str(rejection.reason),
                detail,
                "\\x" + rejection.payload.hex(),
                None,
                None,
            )
        )
    count = copy_lines(
        cursor,
        "rejected_readings",
        "id, received_at, topic, gateway_id, reading_id, device_serial, reason, detail, payload, reprocessed_at,"
        " reprocess_outcome",
        lines,
    )
    return count, last_message, reasons


def load_gateway_status(
    cursor: psycopg.Cursor[Any], world: World, results: list[JobResult], rejected_last: dict[str, int], seed: int
) -> int:
    rng = random.Random(f"{seed}/gateway-status")
    last = {world.patients[i].gateway: at for r in results for i, at in r.last_received.items() if at}
    for gateway, at in rejected_last.items():
        last[gateway] = max(last.get(gateway, 0), at)
    ended = {p.gateway for p in world.patients if p.ended_at is not None}
    lines = []
    for gateway in sorted(last):
        at = last[gateway]
        if not gateway.startswith("hub-"):  # vendor gateways nobody registered: no status announced
            lines.append(row(gateway, None, None, ts(at)))
        elif gateway in ended or rng.random() < 0.07:
            lines.append(row(gateway, "offline", ts(min(world.end, at + rng.randint(1, 180) * MINUTE)), ts(at)))
        else:
            lines.append(row(gateway, "online", ts(at - rng.randint(0, 20 * 24 * 60) * MINUTE), ts(at)))
    return copy_lines(cursor, "gateway_status", "gateway_id, status, changed_at, last_message_at", lines)


# --------------------------------------------------------------------------------------
# Main process: the audit trail
# --------------------------------------------------------------------------------------

# (queue searches, patient list pages, patient views per visible patient) per day, by organisation kind
AUDIT_RATES = {
    "municipality": (3.0, 0.8, 0.045),
    "gp-office": (0.5, 0.3, 0.012),
    "hospital-department": (1.0, 0.5, 0.03),
}
PAGE = 50  # the API's default page: a queue search or patient list records up to 50 patients


def audit_records(world: World, summaries: list[AlertSummary], seed: int) -> list[tuple[Any, ...]]:
    """(at, staff, action, resource type, resource id, patient index, request) per record, in time order."""
    rng = random.Random(f"{seed}/audit")
    patients, orgs = world.patients, world.organisations
    records: list[tuple[Any, ...]] = []

    def request() -> int:
        return rng.getrandbits(128)

    def add(at: int, member: int, action: str, kind: str, resource_id: str | None, patients_: Iterable[int]) -> None:
        rid = request()
        for p in patients_:
            records.append((at, member, action, kind, resource_id, p, rid))

    # Staff actions on alerts and thresholds, at the times the alerts and overrides record.
    for s in summaries:
        if s.ack is not None and s.ack_staff is not None:
            add(s.ack - rng.randint(20, 300) * SEC, s.ack_staff, "read", "Alert", s.id, [s.patient])
            add(s.ack, s.ack_staff, "acknowledge", "Alert", s.id, [s.patient])
            if s.observation and rng.random() < 0.3:
                add(s.ack + rng.randint(10, 120) * SEC, s.ack_staff, "read", "Observation", s.observation, [s.patient])
        if s.resolve is not None and s.resolve_staff is not None:
            if s.ack_staff != s.resolve_staff:
                add(s.resolve - rng.randint(20, 300) * SEC, s.resolve_staff, "read", "Alert", s.id, [s.patient])
            add(s.resolve, s.resolve_staff, "resolve", "Alert", s.id, [s.patient])
    for p in patients:
        for v in p.overrides:
            add(v.changed_at - rng.randint(60, 900) * SEC, v.staff, "read", "Thresholds", p.id, [p.index])
            add(v.changed_at, v.staff, "update", "Thresholds", p.id, [p.index])

    # Who each organisation follows, and its patients' alerts (for queue searches).
    members: dict[int, list[PatientSpec]] = defaultdict(list)
    for p in patients:
        members[p.municipality].append(p)
        if p.gp is not None:
            members[p.gp].append(p)
        if p.hospital is not None:
            members[p.hospital].append(p)
    alerts_of: dict[int, list[AlertSummary]] = defaultdict(list)
    for s in summaries:
        alerts_of[s.patient].append(s)

    for org in orgs:
        if not members[org.index] or not world.staff_by_org[org.index]:
            continue
        queue_rate, list_rate, view_rate = AUDIT_RATES[org.kind]
        crew = world.staff_by_org[org.index]
        followed = sorted(members[org.index], key=lambda p: p.id)

        def visible(p: PatientSpec, day: date, org_index: int = org.index) -> bool:
            if p.hospital == org_index and p.municipality != org_index and p.gp != org_index:
                assert p.hospital_from is not None
                return p.hospital_from <= day and (p.hospital_to is None or day <= p.hospital_to)
            return True

        searches: list[int] = []
        for day in world.days:
            weekday = date.fromisoformat(day.text).weekday()
            office = org.kind != "municipality"
            if office and weekday >= 5:
                continue
            factor = 1.0 if weekday < 5 else 0.6
            first, last = (8 * 3600, 16 * 3600) if office else (7 * 3600 + 1800, 22 * 3600)

            def moment(day: LocalDay = day, first: int = first, last: int = last) -> int:
                return day.midnight + rng.randint(first, last) * SEC

            searches += [moment() for _ in range(poisson(rng, queue_rate * factor))]
            today = date.fromisoformat(day.text)
            seen = [p for p in followed if visible(p, today)]
            for _ in range(poisson(rng, list_rate * factor)):
                page = rng.randrange(max(1, math.ceil(len(seen) / PAGE))) if rng.random() < 0.3 else 0
                at = moment()
                if at < world.end:
                    add(
                        at,
                        rng.choice(crew),
                        "search",
                        "Patient",
                        None,
                        [p.index for p in seen[page * PAGE : (page + 1) * PAGE]],
                    )
            active = [p for p in seen if p.ended_at is None or p.ended_at > day.midnight]
            for _ in range(poisson(rng, view_rate * factor * len(active))):
                p, at, member = rng.choice(active), moment(), rng.choice(crew)
                if at + 5 * MINUTE >= world.end:
                    continue
                add(at, member, "read", "Patient", p.id, [p.index])
                add(at + rng.randint(2, 60) * SEC, member, "search", "Observation", None, [p.index])
                if rng.random() < 0.25:
                    add(at + rng.randint(60, 240) * SEC, member, "read", "Thresholds", p.id, [p.index])

        # Queue searches: the active alerts the organisation sees at that moment, red first, oldest first.
        changes: list[tuple[int, int, AlertSummary]] = []
        for p in followed:
            for s in alerts_of[p.index]:
                changes.append((s.opened, 1, s))
                if s.closed is not None:
                    changes.append((s.closed, 0, s))
        changes.sort(key=lambda c: (c[0], c[1]))
        active_alerts: dict[str, AlertSummary] = {}
        position = 0
        for at in sorted(a for a in searches if a < world.end):
            while position < len(changes) and changes[position][0] <= at:
                _, opening, s = changes[position]
                if opening:
                    active_alerts[s.id] = s
                else:
                    active_alerts.pop(s.id, None)
                position += 1
            today = local_date(at)
            shown = sorted(
                (s for s in active_alerts.values() if visible(patients[s.patient], today)),
                key=lambda s: (s.level != "red", s.opened),
            )[:PAGE]
            add(
                at,
                rng.choice(crew),
                "search",
                "Alert",
                None,
                sorted({s.patient for s in shown}, key=lambda i: patients[i].id),
            )
    records.sort(key=lambda r: r[0])
    return [r for r in records if r[0] <= world.end]


def load_audit(
    cursor: psycopg.Cursor[Any], world: World, summaries: list[AlertSummary], seed: int
) -> tuple[int, Counter[str]]:
    records = audit_records(world, summaries, seed)
    staff, orgs, patients = world.staff, world.organisations, world.patients
    actions: Counter[str] = Counter()

    def lines() -> Iterator[str]:
        for at, member, action, kind, resource_id, patient, request_id in records:
            s = staff[member]
            actions[f"{action} {kind}"] += 1
            yield (
                f"{ts(at)}\t{s.sub}\t{esc(s.name)}\t{s.hpr}\t{orgs[s.organisation].orgnr}\t{action}\t{kind}\t"
                f"{resource_id or chr(92) + 'N'}\t{patients[patient].id}\t{request_id:032x}\n"
            )

    count = copy_lines(
        cursor,
        "audit_records",
        "at, actor_sub, actor_name, actor_hpr, actor_org, action, resource_type, resource_id, patient_id, request_id",
        lines(),
    )
    return count, actions


# --------------------------------------------------------------------------------------
# Main
# --------------------------------------------------------------------------------------


class Phases:
    def __init__(self) -> None:
        self.times: list[tuple[str, float]] = []
        self.began = time.perf_counter()

    def run(self, name: str, action: Callable[[], Any]) -> Any:
        log(f"{name} ...")
        began = time.perf_counter()
        result = action()
        elapsed = time.perf_counter() - began
        self.times.append((name, elapsed))
        log(f"{name}: {elapsed:.1f}s")
        return result


def prepare_database(args: argparse.Namespace) -> None:
    with psycopg.connect(PG_MAINTENANCE, autocommit=True, connect_timeout=5) as connection:
        exists = connection.execute("select 1 from pg_database where datname = %s", (args.database,)).fetchone()
        if exists and not args.drop:
            raise SystemExit(f"database {args.database} exists; pass --drop to drop and recreate it")
        if exists:
            connection.execute(f'drop database "{args.database}" with (force)')
            log(f"dropped database {args.database}")
        connection.execute(f'create database "{args.database}"')
    print(run_rpm(["migrate"], rpm_env(args.database)), file=sys.stderr)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--database", required=True, help="name of the database to create (e.g. rpm_seed)")
    parser.add_argument("--patients", type=int, default=10_000)
    parser.add_argument("--organisations", type=int, default=20)
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--seed", type=int, default=1, help="random seed: the same seed and --end give the same data")
    parser.add_argument("--drop", action="store_true", help="drop and recreate the database if it exists")
    parser.add_argument("--jobs", type=int, default=2, help="generator processes (default 2)")
    parser.add_argument(
        "--end", help="when the data ends, ISO 8601 (default: the start of the current hour, UTC)", default=None
    )
    parser.add_argument(
        "--check", type=int, default=300, help="Observations per job compared with observation_resource (default 300)"
    )
    args = parser.parse_args(argv)
    if args.patients < 1 or args.organisations < 1 or args.days < 2 or args.jobs < 1:
        parser.error("--patients, --organisations and --jobs must be positive, --days at least 2")
    if not args.database.replace("_", "").isalnum():
        parser.error("--database: letters, digits and _ only")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.end:
        given = datetime.fromisoformat(args.end)
        end = to_us(given if given.tzinfo else given.replace(tzinfo=UTC))
    else:
        end = to_us(datetime.now(UTC).replace(minute=0, second=0, microsecond=0))
    phases = Phases()
    counts: dict[str, int] = {}

    phases.run("create and migrate the database", lambda: prepare_database(args))
    world: World = phases.run("build the community in memory", lambda: build_world(args, end))

    def drop() -> tuple[list[Secondary], list[str]]:
        with psycopg.connect(db_url(args.database)) as connection:
            secondaries = read_secondaries(connection)
            drop_secondaries(connection, secondaries)
            columns = {
                r[0]
                for r in connection.execute(
                    "select column_name from information_schema.columns where table_name = 'alerts'"
                ).fetchall()
            }
        return secondaries, [*ALERT_COLUMNS, *(["outcome"] if "outcome" in columns else [])]

    secondaries, alert_columns = phases.run("drop secondary indexes and constraints of the bulk tables", drop)
    log("  " + ", ".join(f"{s.kind} {s.name}" for s in secondaries))

    def community() -> None:
        with psycopg.connect(db_url(args.database)) as connection:
            counts.update(load_community(connection, world, args.seed))

    phases.run("organisations, patients, care teams, plans, devices, overrides, gateways", community)

    params = JobParams(
        seed=args.seed,
        database=args.database,
        start=world.start,
        end=world.end,
        days=world.days,
        staff=world.staff,
        staff_by_org=dict(world.staff_by_org),
        check=args.check,
        alert_columns=alert_columns,
    )
    observations_began = time.perf_counter()
    rows, written, results = phases.run(
        f"observations (+ alerts) in {args.jobs} jobs", lambda: load_observations(world, args, params)
    )
    observations_seconds = time.perf_counter() - observations_began
    counts["observations"] = rows
    counts["alerts"] = sum(r.alerts for r in results)
    counts["alert_observations"] = sum(r.evidence for r in results)
    summaries = sorted((s for r in results for s in r.summaries), key=lambda s: (s.patient, s.opened, s.id))

    rejected_reasons: Counter[str] = Counter()
    audit_actions: Counter[str] = Counter()

    def rest() -> None:
        with psycopg.connect(db_url(args.database)) as connection, connection.cursor() as cursor:
            connection.execute("set synchronous_commit = off")
            counts["alert_events"] = load_events(cursor, results)
            counts["rejected_readings"], last, reasons = load_rejected(cursor, world, args.seed)
            rejected_reasons.update(reasons)
            counts["gateway_status"] = load_gateway_status(cursor, world, results, last, args.seed)

    phases.run("alert events, rejected readings, gateway status", rest)

    def audit() -> None:
        with psycopg.connect(db_url(args.database)) as connection, connection.cursor() as cursor:
            connection.execute("set synchronous_commit = off")
            counts["audit_records"], actions = load_audit(cursor, world, summaries, args.seed)
            audit_actions.update(actions)

    phases.run("audit records", audit)

    def analyze() -> None:  # statistics first, so the foreign keys are validated with good plans
        with psycopg.connect(db_url(args.database), autocommit=True) as connection:
            connection.execute("analyze")

    phases.run("analyze", analyze)
    built = phases.run(
        "recreate indexes and constraints", lambda: recreate_secondaries(args.database, secondaries, counts)
    )

    def vacuum() -> None:
        with psycopg.connect(db_url(args.database), autocommit=True) as connection:
            connection.execute("vacuum analyze")

    phases.run("vacuum analyze", vacuum)
    with psycopg.connect(db_url(args.database), autocommit=True) as connection:
        size = connection.execute("select pg_size_pretty(pg_database_size(current_database()))").fetchone()
        table_sizes = connection.execute(
            "select relname, pg_size_pretty(pg_total_relation_size(oid)) from pg_class"
            " where relkind = 'r' and relnamespace = 'public'::regnamespace order by pg_total_relation_size(oid) desc"
        ).fetchall()

    report(
        args=args,
        world=world,
        phases=phases,
        counts=counts,
        results=results,
        observations_seconds=observations_seconds,
        written=written,
        size=size[0] if size else "?",
        table_sizes=dict(table_sizes),
        built=built,
        rejected_reasons=rejected_reasons,
        audit_actions=audit_actions,
    )
    return 0


def report(
    *,
    args: argparse.Namespace,
    world: World,
    phases: Phases,
    counts: dict[str, int],
    results: list[JobResult],
    observations_seconds: float,
    written: int,
    size: str,
    table_sizes: dict[str, str],
    built: list[str],
    rejected_reasons: Counter[str],
    audit_actions: Counter[str],
) -> None:
    total = time.perf_counter() - phases.began
    stats: Counter[str] = Counter()
    active: dict[str, set[int]] = defaultdict(set)
    for r in results:
        stats.update(r.stats)
        for kind, patients in r.active_patients.items():
            active[kind] |= patients
    active_patients = sum(1 for p in world.patients if p.ended_at is None)
    print()
    print(
        f"Seeded {args.database}: {args.patients:,} patients, {args.organisations} organisations, {args.days} days"
        f" up to {iso(world.end)} (--end to repeat), seed {args.seed}, {args.jobs} jobs, {os.cpu_count()} CPUs"
    )
    print()
    print(f"{'phase':<72} {'seconds':>8}")
    for name, seconds in phases.times:
        print(f"{name:<72} {seconds:>8.1f}")
    print(f"{'total':<72} {total:>8.1f}")
    print()
    print(f"{'table':<24} {'rows':>12}  {'size':>10}")
    for table, rows in sorted(counts.items(), key=lambda t: -t[1]):
        print(f"{table:<24} {rows:>12,}  {table_sizes.get(table, ''):>10}")
    print(f"database size: {size}")
    print()
    rate = counts["observations"] / observations_seconds
    print(
        f"observations COPY: {counts['observations']:,} rows, {written / 2**20:,.0f} MB of COPY text in"
        f" {observations_seconds:.1f}s = {rate:,.0f} rows/s, {written / 2**20 / observations_seconds:,.1f} MB/s"
        " (generation in the jobs included; one COPY FREEZE, rows in arrival order across all patients)"
    )
    print(
        f"main process: {WAITS['jobs']:.1f}s waiting for the jobs' rows, {WAITS['copy']:.1f}s in COPY writes"
        f" (the larger one is the bottleneck); the COPY backend used {WAITS['backend cpu']:.1f}s CPU; other"
        f" processes on this machine used {WAITS['other cpu'] / observations_seconds:.0%} of one core meanwhile"
        f" ({os.cpu_count()} cores)"
    )
    print(
        f"self-check: {sum(r.checked for r in results):,} Observations equal to observation_resource's, byte for byte"
    )
    print(
        f"job CPU {', '.join(f'{r.cpu:.0f}s' for r in results)}; peak RSS main"
        f" {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:,.0f} MB, largest job"
        f" {max(r.rss_mb for r in results):,.0f} MB"
    )
    print()
    kinds = ("threshold", "trend", "missing")
    print(f"alerts: {stats['breaches']:,} breaching readings")
    for kind in kinds:
        parts = [
            f"{s} {stats[f'alerts {kind} {s}']:,}"
            for s in ("open", "acknowledged", "resolved", "escalated", "late", "red")
        ]
        print(f"  {kind:<10} " + ", ".join(parts))
    rules = active["threshold"] | active["trend"]
    every = rules | active["missing"]
    print(
        f"  active patients with an active alert: {len(rules) / active_patients:.1%} threshold/trend,"
        f" {len(active['missing']) / active_patients:.1%} missing measurement, {len(every) / active_patients:.1%} any"
    )
    print("rejected readings: " + ", ".join(f"{k} {v}" for k, v in rejected_reasons.most_common()))
    print("audit records: " + ", ".join(f"{k} {v:,}" for k, v in audit_actions.most_common()))
    print("index and constraint builds: " + ", ".join(built))


if __name__ == "__main__":
    sys.exit(main())
