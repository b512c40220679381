"""Ingest throughput benchmark: gateway -> MQTT -> `rpm ingest` -> PostgreSQL -> ack.

Run from the project root:

    .venv/bin/python bench/ingest.py              # ~100,000 batched readings + 20,000 single messages
    .venv/bin/python bench/ingest.py --quick      # ~10,000 batched readings + 2,000 single messages
    .venv/bin/python bench/ingest.py --readings 50000 --messages 5000

What one run does
-----------------
1. Creates a scratch database `rpm_bench_<random>` on postgresql://127.0.0.1:5432, migrates it
   (`rpm migrate`), adds an organisation (`rpm organisations add`) and inserts 200 patients
   (conditions round robin: none, copd, heart failure, diabetes, hypertension, both of the
   last two), each with a care-team membership and one device (eight reading types, round
   robin) assigned from 60 days ago.
2. Starts the worker (`rpm ingest`; `--workers N` starts N sharing one shared subscription)
   as a subprocess with metrics off and a unique topic root, client id and share group, and
   samples its RSS (process + children) every 50 ms.
3. "batched": messages of 50 readings, spread over 20 gateway ids, QoS 1. Readings are valid,
   with unique ids, mixed types and units (25% in an accepted alias unit), taken over the
   last 30 days, no blood-pressure pulse (so one row per reading). Each patient's values sit
   steadily inside their threshold bands, except `--breach-share` (default 2%) that are
   outside, so the alert rules do the work they would on real data. At most `--window`
   messages (default 500) await their ack on `{root}/gateways/{id}/acks` at any time, as a
   gateway would; mosquitto's default max_queued_messages (1000) would otherwise drop
   messages. Figure: readings/s from the first publish to the last ack.
4. "single": one reading per message, same window. Figure: messages/s, publish to ack.
5. Baseline "broker RT": the same payloads, same window, answered by a plain paho subscriber
   in a second process that replies at once on the acks topic: what the broker and the
   benchmark's own client manage on this machine. The worker cannot beat it.
6. Baseline "COPY": the rows the worker stored for the batched scenario (so the same count
   and the real FHIR resources) are copied with psycopg `cursor.copy()` into a fresh
   `like observations including all` table (same columns, defaults, indexes and unique key),
   in one transaction: once as raw COPY text (the database's own ceiling for these rows) and
   once through `write_row` (psycopg adapting Python values, as a Python writer would).
7. Stops the worker with SIGTERM (it drains and must exit 0), then checks correctness: rows
   in `observations` equal the readings accepted in acks, every result of every ack is
   `accepted`, no rejected readings.
8. Removes the worker's persistent broker session and drops the scratch database (also on
   failure or Ctrl-C).

How to read the output
----------------------
- `measured`: the worker's throughput. `baseline`: the same load against the broker-only echo
  and, for batched, against COPY. `ratio` = measured / baseline, the share of that ceiling
  the worker reaches; a low ratio to broker RT means the worker (or the database) is the
  bottleneck, not MQTT or the load generator.
- `target` and PASS/FAIL: batched >= 10,000 readings/s, single >= 2,000 messages/s, worker
  peak RSS < 300 MB, correctness exact.
- The second table gives per scenario the wall time, publish-to-ack latency (p50/p99) and
  the CPU time of each party as % of one core over the scenario's wall time: the worker(s),
  postgres (its shared processes and the backends of the scratch database), mosquitto, this
  process, the echo, and "other" (everything else on the machine, e.g. someone's test run
  against other databases: a busy neighbour makes the figures unreliable). Compare the sum with
  100% x the number of CPUs to see whether the machine was saturated.

Options: `--readings`, `--messages`, `--batch-size`, `--window`, `--gateways`, `--patients`,
`--workers`, `--breach-share`, `--timeout` (per scenario), `--worker-env RPM_X=value`
(e.g. RPM_INGEST_BATCH_READINGS=5000 or RPM_RULES_ENABLED=false; repeatable), `--database`,
`--compare-empty` (below).

Against a seeded database (issue 7: throughput with 10 M rows within 20 % of an empty table)
------------------------------------------------------------------------------------------
    .venv/bin/python bench/ingest.py --database rpm_seed                  # made by bench/seed.py
    .venv/bin/python bench/ingest.py --database rpm_seed --compare-empty  # empty table, then rpm_seed

`--database NAME` runs everything above against that existing database instead of a scratch
one. It must exist and carry the schema (an `alembic_version` table); it is neither created nor
dropped. The run:
- migrates it (`rpm migrate`, a no-op when current) and uses the organisation 974600951 (adds
  it only if missing);
- enrols its own 200 patients and devices as above, whose identity numbers skip every
  `patients.identifier` already there, and whose device serials (`BENCH-<token>-...`), gateway
  ids (`bench-<token>-gw-NN`) and patient names (`Bench Patient <token> N`) carry the run's
  random token; the topic root, client ids and share group are unique per run as always;
- gives the worker settings under which its periodic checks still run their queries but change
  nothing: RPM_MISSING_GRACE_HOURS=100000, RPM_ESCALATE_RED_MINUTES=10000000,
  RPM_ESCALATE_YELLOW_HOURS=100000. With the defaults, the worker's first check would open
  missing-measurement alerts for the seeded patients whose data has ended (nearly all, a few
  hours after seeding) and escalate their open alerts: rows of the seeded community no clean-up
  could tell from the seed's. The benchmark's own patients have no measurement plan, and an
  escalation takes 15 minutes, so this changes nothing for its readings. `--worker-env`
  overrides these;
- restricts every check and count to its own rows: rows in `observations` and rejected
  readings by its gateway ids, alerts and their evidence by its patients, the COPY baseline's
  source rows by its gateway ids (COPY still goes into a fresh, empty
  `like observations including all` table: the database's ceiling for these rows, the same
  yardstick whatever the table holds). The header gives the rows `observations` held before the
  run (pg_class.reltuples, or count(*) when never analysed);
- afterwards (also on failure or Ctrl-C) deletes what it added where the schema allows: its
  observations, its patients' alerts with their evidence and events, rejected readings and
  gateway_status rows of its gateways, then VACUUMs those tables, so the next run meets the same
  table. Patients and devices cannot be deleted (a trigger refuses it): its 200 patients and
  devices, with their care-team memberships and device assignments, stay, as the output says.

`--compare-empty` (needs `--database`) makes two complete runs with the same seed, options and
naming conventions (tokens, inert periodic checks): first against a fresh scratch database,
then against `--database`, each with its full report; then a comparison of the batched figure:
empty, seeded, seeded/empty against the target >= 0.80 (PASS/FAIL), each run's raw COPY text
baseline, and the ratio of the two runs' batched/COPY ratios, which cancels the machine's speed
changing between the runs (if the two ratios disagree, the machine was not steady: repeat).
The exit status is 0 when both runs and the comparison PASS.

The exit status is 0 when every line PASSes, 1 otherwise. Everything talks to 127.0.0.1 only;
every wait has a timeout.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Collection, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import paho.mqtt.client as mqtt
import psutil
import psycopg
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from psycopg import sql

PROJECT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(PROJECT))  # for tests.fixtures.identity

# Everything is local; these are deliberately not options.
# The local servers, unless a test session that runs a benchmark names its own (on a machine
# without them it starts an embedded PostgreSQL and a mosquitto of its own).
PG_MAINTENANCE = os.environ.get("BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
PG_HOST, PG_PORT = urlsplit(PG_MAINTENANCE).hostname or "localhost", urlsplit(PG_MAINTENANCE).port or 5432
BROKER_HOST, BROKER_PORT = (
    urlsplit(os.environ.get("BENCH_MQTT_URL", "mqtt://127.0.0.1:1883")).hostname or "127.0.0.1",
    urlsplit(os.environ.get("BENCH_MQTT_URL", "mqtt://127.0.0.1:1883")).port or 1883,
)

RPM = Path(sys.executable).parent / "rpm"
ORGNR = "974600951"
CET = timezone(timedelta(hours=1))
FNR_SYSTEM = "urn:oid:2.16.578.1.12.4.1.4.1"

# The benchmark sets these for the worker itself (local servers, unique names per run).
RESERVED_WORKER_ENV = {
    "RPM_DATABASE_URL",
    "RPM_MQTT_URL",
    "RPM_MQTT_CLIENT_ID",
    "RPM_MQTT_SHARE_GROUP",
    "RPM_MQTT_TOPIC_ROOT",
    "RPM_METRICS_PORT",
    "RPM_ENVIRONMENT",
}

TARGET_BATCHED = 10_000  # readings/s
TARGET_SINGLE = 2_000  # messages/s
TARGET_RSS_MB = 300
TARGET_SEEDED_RATIO = 0.80  # --compare-empty: seeded / empty batched throughput ("within 20 %")

DEVICE_KINDS = [  # (reading type, serial prefix, manufacturer, model)
    ("blood-pressure", "BP", "A&D", "UA-651BLE"),
    ("heart-rate", "HR", "Polar", "H10"),
    ("spo2", "OX", "Nonin", "3230"),
    ("body-weight", "SC", "A&D", "UC-352BLE"),
    ("body-temperature", "TH", "Braun", "IRT6520"),
    ("blood-glucose", "GL", "Roche", "Accu-Chek Guide"),
    ("respiratory-rate", "RR", "Masimo", "Rad-97"),
    ("peak-flow", "PF", "Vitalograph", "asma-1"),
]


def log(text: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------------------
# Phase 1: scratch database
# --------------------------------------------------------------------------------------


# Patients' conditions, round robin: they choose the threshold templates the alert rules apply
# (heart failure adds the weight-gain rule, which queries earlier weights per body-weight reading).
CONDITIONS = [[], ["copd"], ["heart-failure"], ["diabetes"], ["hypertension"], ["heart-failure", "hypertension"]]
READINGS_SPREAD = timedelta(days=30)  # readings are taken over the last 30 days (late data is normal)


@dataclass(frozen=True)
class BenchDevice:
    serial: str
    kind: str
    manufacturer: str
    model: str
    level: float  # where in the normal range this patient's values sit (0-1), so each series is steady


def db_url(name: str) -> str:
    base, _, query = PG_MAINTENANCE.partition("?")
    return base.rsplit("/", 1)[0] + "/" + name + (f"?{query}" if query else "")


def rpm_env(database: str, extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment for `rpm` subprocesses: no RPM_* from outside, everything local."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("RPM_")}
    env["RPM_ENVIRONMENT"] = "development"
    env["RPM_DATABASE_URL"] = db_url(database)
    env.update(extra or {})
    return env


def run_rpm(args: list[str], env: dict[str, str], timeout: float = 120) -> str:
    done = subprocess.run(
        [str(RPM), *args], env=env, cwd=PROJECT, capture_output=True, text=True, timeout=timeout, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(f"rpm {' '.join(args)} failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return done.stdout.strip()


def identity_numbers(count: int, rng: random.Random, taken: Collection[str] = ()) -> Iterator[tuple[str, date]]:
    """`count` distinct identity numbers with their birth dates, none of them in `taken`."""
    from tests.fixtures.identity import make_identity_number

    seen: set[str] = set()
    while len(seen) < count:
        born = date(rng.randint(1930, 1995), rng.randint(1, 12), rng.randint(1, 28))
        number = make_identity_number(born, rng.randint(0, 499))
        if number is not None and number not in seen and number not in taken:
            seen.add(number)
            yield number, born


@dataclass(frozen=True)
class Names:
    """What a run calls its gateways, device serials and patients. With a token (an existing
    database, and both runs of --compare-empty) they cannot meet what is there already."""

    gateway_prefix: str = "bench-gw"
    serial_prefix: str = "BENCH"
    patient_prefix: str = "Bench Patient"

    @classmethod
    def tagged(cls, token: str) -> Names:
        return cls(f"bench-{token}-gw", f"BENCH-{token}", f"Bench Patient {token}")

    def gateway(self, number: int) -> str:
        return f"{self.gateway_prefix}-{number:02d}"


@dataclass
class Setup:
    """Where a run goes and what it enrolled: its checks and its clean-up touch only these."""

    database: str
    existing: bool  # --database: neither created nor dropped; the run removes its own rows
    names: Names
    gateway_ids: list[str]  # every gateway id the run publishes as (probe and warm-up included)
    created: bool = False  # a scratch database that exists now and must be dropped
    patient_ids: list[uuid.UUID] = field(default_factory=list)
    devices: list[BenchDevice] = field(default_factory=list)
    observations_before: int | None = None  # existing database: rows in observations before the run


def add_organisation(env: dict[str, str]) -> uuid.UUID:
    return uuid.UUID(
        run_rpm(
            ["organisations", "add", "--orgnr", ORGNR, "--name", "Bench kommune", "--kind", "municipality"], env
        ).splitlines()[-1]
    )


def create_database(setup: Setup) -> uuid.UUID:
    """A migrated scratch database with the bench organisation; returns the organisation's id."""
    log(f"creating database {setup.database}")
    with psycopg.connect(PG_MAINTENANCE, autocommit=True, connect_timeout=5) as connection:
        connection.execute(f'create database "{setup.database}"')
    setup.created = True
    env = rpm_env(setup.database)
    run_rpm(["migrate"], env)
    return add_organisation(env)


def check_existing_database(database: str) -> str | None:
    """Why `database` cannot serve --database (it must exist and carry the schema), or None."""
    with psycopg.connect(PG_MAINTENANCE, autocommit=True, connect_timeout=5) as connection:
        if connection.execute("select 1 from pg_database where datname = %s", [database]).fetchone() is None:
            return f"no database {database!r} on {PG_HOST}:{PG_PORT} (see psql -h {PG_HOST} -U postgres -l)"
    with psycopg.connect(db_url(database), connect_timeout=5) as connection:
        found = connection.execute("select to_regclass('public.alembic_version') is not null").fetchone()
        if not (found and found[0]):
            return f"database {database!r} has no alembic_version table: not an rpm database (seed it first)"
    return None


def observations_estimate(connection: psycopg.Connection[Any]) -> int:
    """Rows in observations: pg_class.reltuples, or count(*) when the table was never analysed."""
    found = connection.execute("select reltuples::bigint from pg_class where oid = 'public.observations'::regclass")
    estimate = int((found.fetchone() or [-1])[0])
    return estimate if estimate >= 0 else count(connection, "observations")


def open_database(setup: Setup) -> tuple[uuid.UUID, set[str]]:
    """An existing database (--database), migrated (a no-op when current): the bench
    organisation's id (added only if missing) and the identity numbers already enrolled."""
    env = rpm_env(setup.database)
    run_rpm(["migrate"], env)
    with psycopg.connect(db_url(setup.database), connect_timeout=5) as connection:
        found = connection.execute("select id from organisations where orgnr = %s", [ORGNR]).fetchone()
        taken = {row[0] for row in connection.execute("select identifier from patients")}
        setup.observations_before = observations_estimate(connection)
    log(
        f"using the existing database {setup.database}: ~{setup.observations_before:,} rows in observations, "
        f"{len(taken):,} patients, organisation {ORGNR} {'found' if found else 'missing: adding it'}"
    )
    return (found[0] if found else add_organisation(env)), taken


def enrol(
    database: str,
    org_id: uuid.UUID,
    enrolments: list[tuple[str, date, list[str], BenchDevice]],
    *,
    patient_prefix: str = "Bench Patient",
    analyze: str = "analyze",
) -> list[uuid.UUID]:
    """Patients (identifier, birth date, conditions), each with one device assigned well before
    the readings' window, inserted directly (much faster than the API for hundreds); their ids."""
    now = datetime.now(UTC)
    patient_rows, care_rows, device_rows, assignment_rows = [], [], [], []
    for number, (identifier, born, conditions, device) in enumerate(enrolments):
        patient_id, device_id = uuid.uuid4(), uuid.uuid4()
        patient_rows.append(
            (patient_id, identifier, FNR_SYSTEM, f"{patient_prefix} {number}", born, conditions, "active")
        )
        care_rows.append((uuid.uuid4(), patient_id, org_id, (now - 3 * READINGS_SPREAD).date()))
        device_rows.append((device_id, device.serial, device.kind, device.manufacturer, device.model, org_id))
        assignment_rows.append((uuid.uuid4(), device_id, patient_id, now - 2 * READINGS_SPREAD))
    with psycopg.connect(db_url(database), connect_timeout=5) as connection, connection.cursor() as cursor:
        cursor.executemany(
            "insert into patients (id, identifier, identifier_system, name, birth_date, conditions, status)"
            " values (%s, %s, %s, %s, %s, %s::varchar[], %s)",
            patient_rows,
        )
        cursor.executemany(
            "insert into care_team_members (id, patient_id, organisation_id, period_from) values (%s, %s, %s, %s)",
            care_rows,
        )
        cursor.executemany(
            "insert into devices (id, serial, type, manufacturer, model, organisation_id)"
            " values (%s, %s, %s, %s, %s, %s)",
            device_rows,
        )
        cursor.executemany(
            "insert into device_assignments (id, device_id, patient_id, valid_from) values (%s, %s, %s, %s)",
            assignment_rows,
        )
        cursor.execute(analyze)
    return [row[0] for row in patient_rows]


def setup_database(setup: Setup, patients: int, rng: random.Random) -> None:
    """A scratch database (created and migrated) or the existing one, with the run's patients
    and devices enrolled (recorded in `setup`)."""
    if setup.existing:
        org_id, taken = open_database(setup)
        analyze = "analyze patients, care_team_members, devices, device_assignments"  # not the big tables
    else:
        org_id, taken, analyze = create_database(setup), set(), "analyze"
    enrolments = []
    for number, (identifier, born) in enumerate(identity_numbers(patients, rng, taken)):
        kind, prefix, manufacturer, model = DEVICE_KINDS[number % len(DEVICE_KINDS)]
        device = BenchDevice(
            f"{setup.names.serial_prefix}-{prefix}-{number:05d}", kind, manufacturer, model, rng.random()
        )
        setup.devices.append(device)
        enrolments.append((identifier, born, CONDITIONS[number % len(CONDITIONS)], device))
    setup.patient_ids = enrol(
        setup.database, org_id, enrolments, patient_prefix=setup.names.patient_prefix, analyze=analyze
    )
    log(
        f"database ready: {'the existing' if setup.existing else '1'} organisation, {patients} patients "
        f"(conditions round robin), {patients} devices"
    )


def drop_database(database: str) -> None:
    with psycopg.connect(PG_MAINTENANCE, autocommit=True, connect_timeout=5) as connection:
        connection.execute(f'drop database if exists "{database}" with (force)')
    log(f"dropped database {database}")


# What a run added to an existing database and may delete (in this order, for the foreign keys).
# Patients and devices stay: a trigger refuses their deletion (and with them their care-team
# memberships and device assignments). Evidence and events go first, found both ways (by the run's
# alerts and by its observations), so nothing can refer to the alerts and observations deleted
# after them.
REMOVABLE = [
    (
        "alert evidence rows",
        "alert_observations",
        "delete from alert_observations where alert_id in (select id from alerts where patient_id = any(%(patients)s))"
        " or observation_id in (select id from observations where gateway_id = any(%(gateways)s))",
    ),
    (
        "alert events",
        "alert_events",
        "delete from alert_events where patient_id = any(%(patients)s)"
        " or alert_id in (select id from alerts where patient_id = any(%(patients)s))",
    ),
    ("alerts", "alerts", "delete from alerts where patient_id = any(%(patients)s)"),
    ("observations", "observations", "delete from observations where gateway_id = any(%(gateways)s)"),
    ("rejected readings", "rejected_readings", "delete from rejected_readings where gateway_id = any(%(gateways)s)"),
    ("gateway status rows", "gateway_status", "delete from gateway_status where gateway_id = any(%(gateways)s)"),
]


def remove_run_rows(setup: Setup) -> str:
    """Delete what the run added to an existing database where the schema allows (one
    transaction), VACUUM those tables (so the next run meets the same table, not this run's dead
    rows), and say what was removed and what had to stay."""
    started = time.perf_counter()
    removed: list[str] = []
    with psycopg.connect(db_url(setup.database), connect_timeout=5) as connection:
        # No index leads with alert_observations.observation_id (nor alert_events.alert_id): with the
        # foreign-key triggers on, every deleted observation would scan all the evidence rows (hours
        # for 100,000 readings on a seeded database). Nothing refers to the rows deleted once the
        # evidence and events above are gone, so the checks are switched off for this transaction.
        connection.execute("set local session_replication_role = replica")
        for label, _, statement in REMOVABLE:
            cursor = connection.execute(statement, {"patients": setup.patient_ids, "gateways": setup.gateway_ids})
            removed.append(f"{cursor.rowcount:,} {label}")
        connection.commit()
        patients_now = count(connection, "patients")
    deleted = time.perf_counter() - started
    with psycopg.connect(db_url(setup.database), autocommit=True, connect_timeout=5) as connection:
        connection.execute("vacuum " + ", ".join(table for _, table, _ in REMOVABLE))
    vacuumed = time.perf_counter() - started - deleted
    enrolled = len(setup.patient_ids)
    return (
        f"clean-up of {setup.database}: removed {', '.join(removed)} ({deleted:.1f}s, VACUUM {vacuumed:.1f}s). "
        f"Left: this run's {enrolled} patients ('{setup.names.patient_prefix} N') and {len(setup.devices)} devices "
        f"('{setup.names.serial_prefix}-...'), with their care-team memberships and device assignments: the "
        f"schema refuses deleting patients and devices ({enrolled} of the {patients_now:,} patients now there)."
    )


# --------------------------------------------------------------------------------------
# Load: gateway messages
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Message:
    topic: str
    key: str  # id of its first reading: how its ack is recognised
    payload: bytes
    readings: int


def reading_body(device: BenchDevice, rng: random.Random, breach: bool) -> dict[str, Any]:
    """Valid values for the device's type, in the canonical unit or (25%) an accepted alias.

    Normally inside every threshold band (general NEWS2 and the condition templates), steady
    around the patient's own level; with `breach`, outside the bands where the type has any.
    """
    kind, level, alias = device.kind, device.level, rng.random() < 0.25

    def around(low: float, high: float, noise: float) -> float:
        return low + (high - low) * level + rng.uniform(-noise, noise)

    if kind == "blood-pressure":
        systolic = 88 if breach else round(around(115, 145, 5))  # yellow 101-159, red < 91
        diastolic = 55 if breach else round(around(70, 85, 4))
        if alias:
            return {
                "values": {"systolic": round(systolic / 7.50062, 2), "diastolic": round(diastolic / 7.50062, 2)},
                "unit": "kPa",
            }
        return {"values": {"systolic": systolic, "diastolic": diastolic}, "unit": "mm[Hg]"}  # no pulse: 1 row
    if kind == "heart-rate":
        return {"value": 125 if breach else round(around(58, 92, 4)), "unit": "bpm" if alias else "/min"}
    if kind == "spo2":
        value = 91 if breach else min(100, round(around(95.5, 99, 0.5)))  # yellow < 94, red < 92
        return {"value": value / 100, "unit": "1"} if alias else {"value": value, "unit": "%"}
    if kind == "body-weight":
        kilograms = around(55, 105, 0.4) + (3.0 if breach else 0.0)  # heart failure: > 2 kg in 72 h
        return (
            {"value": round(kilograms / 0.45359237, 1), "unit": "[lb_av]"}
            if alias
            else {"value": round(kilograms, 1), "unit": "kg"}
        )
    if kind == "body-temperature":
        celsius = 39.6 if breach else around(36.4, 37.2, 0.2)  # yellow > 39
        return (
            {"value": round(celsius * 9 / 5 + 32, 1), "unit": "[degF]"}
            if alias
            else {"value": round(celsius, 1), "unit": "Cel"}
        )
    if kind == "blood-glucose":
        mmol = 3.4 if breach else around(5.0, 8.0, 0.7)  # diabetes: yellow < 3.9
        return (
            {"value": round(mmol * 18.016), "unit": "mg/dL"} if alias else {"value": round(mmol, 1), "unit": "mmol/L"}
        )
    if kind == "respiratory-rate":
        return {"value": 26 if breach else round(around(12, 18, 1)), "unit": "/min"}  # red > 24
    if kind == "peak-flow":
        return {"value": round(around(300, 550, 20)), "unit": "L/min"}  # no rule
    raise ValueError(kind)


def make_reading(
    reading_id: str, device: BenchDevice, now: datetime, rng: random.Random, breach_share: float
) -> dict[str, Any]:
    taken = now - timedelta(seconds=rng.uniform(60, READINGS_SPREAD.total_seconds()))
    reading: dict[str, Any] = {
        "id": reading_id,
        "device": {"serial": device.serial, "manufacturer": device.manufacturer, "model": device.model},
        "type": device.kind,
        "time": taken.astimezone(CET).isoformat(timespec="seconds"),
    }
    reading.update(reading_body(device, rng, rng.random() < breach_share))
    return reading


def make_messages(
    prefix: str,
    total_readings: int,
    per_message: int,
    *,
    root: str,
    gateways: int,
    devices: list[BenchDevice],
    rng: random.Random,
    breach_share: float = 0.0,
    names: Names = Names(),
) -> list[Message]:
    """`total_readings` readings in messages of `per_message` (1 = a bare reading object), sent
    round robin as `gateways` gateway ids (`names.gateway(0)` ...)."""
    now = datetime.now(UTC)
    messages: list[Message] = []
    sequence = 0
    while sequence < total_readings:
        count = min(per_message, total_readings - sequence)
        readings = [
            make_reading(f"{prefix}-{sequence + i:08d}", rng.choice(devices), now, rng, breach_share)
            for i in range(count)
        ]
        sequence += count
        gateway = names.gateway(len(messages) % gateways)
        document: Any = (
            readings[0]
            if per_message == 1
            else {"sent_at": now.astimezone(CET).isoformat(timespec="seconds"), "readings": readings}
        )
        payload = json.dumps(document, separators=(",", ":")).encode()
        messages.append(Message(f"{root}/gateways/{gateway}/measurements", readings[0]["id"], payload, count))
    return messages


def retarget(messages: list[Message], old_root: str, new_root: str) -> list[Message]:
    """The same payloads on another topic root (for the broker round-trip baseline)."""
    return [Message(new_root + m.topic[len(old_root) :], m.key, m.payload, m.readings) for m in messages]


# --------------------------------------------------------------------------------------
# The gateway side: publish with a bounded window, collect acks
# --------------------------------------------------------------------------------------


@dataclass
class RunStats:
    name: str
    messages: int
    readings: int
    completed: bool = False
    acked_messages: int = 0
    acked_readings: int = 0  # readings of the acked messages
    elapsed: float = 0.0  # first publish -> last ack
    statuses: Counter[str] = field(default_factory=Counter)
    wrong_result_counts: int = 0  # acks whose result count differs from the message's readings
    latencies: list[float] = field(default_factory=list)
    cpu: dict[str, float] = field(default_factory=dict)  # party -> % of one core
    error: str | None = None

    @property
    def readings_per_s(self) -> float:
        return self.acked_readings / self.elapsed if self.elapsed > 0 else 0.0

    @property
    def messages_per_s(self) -> float:
        return self.acked_messages / self.elapsed if self.elapsed > 0 else 0.0

    def latency(self, q: float) -> float:
        if not self.latencies:
            return float("nan")
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def mqtt_client(client_id: str) -> mqtt.Client:
    client = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
    client.max_inflight_messages_set(65535)  # the window below is the only limit
    client.max_queued_messages_set(0)
    return client


def connect_properties() -> Properties:
    properties = Properties(PacketTypes.CONNECT)
    properties.ReceiveMaximum = 65535  # let the broker push acks without a 20-message limit
    return properties


class Gateways:
    """One MQTT connection that publishes for many gateway ids and collects their acks.

    Driven from the calling thread only (`client.loop()`), with no network thread: with paho's
    network thread and publishing from the main thread, a round trip at window 1 took ~90 ms
    here (a PUBACK then a PUBLISH from two threads meet Nagle + delayed ACK on loopback), and
    the broker baseline was 3x lower.
    """

    def __init__(self, root: str, label: str) -> None:
        self.root = root
        self.client = mqtt_client(f"bench-{label}-{uuid.uuid4().hex[:8]}")
        self.client.on_connect = self._on_connect
        self.client.on_subscribe = self._on_subscribe
        self.client.on_message = self._on_message
        self._subscribed = False
        self._outstanding: dict[str, tuple[float, int]] = {}  # key -> (sent at, readings)
        self._stats: RunStats | None = None
        self.total_accepted = 0  # over every ack ever received, late or not
        self.stray_acks = 0

    def connect(self, timeout: float = 10) -> None:
        self.client.connect(BROKER_HOST, BROKER_PORT, keepalive=30, clean_start=True, properties=connect_properties())
        deadline = time.monotonic() + timeout
        while not self._subscribed:
            if time.monotonic() > deadline:
                raise TimeoutError(f"no SUBACK for {self.root}/gateways/+/acks within {timeout}s")
            self.client.loop(0.1)

    def pump(self, seconds: float) -> None:
        """Serve the connection (late acks, keepalive) for a while."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            self.client.loop(0.05)

    def close(self) -> None:
        with suppress(Exception):
            self.client.disconnect()
            self.client.loop(0.1)

    def _on_connect(self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, properties: Any) -> None:
        if not reason.is_failure:
            client.subscribe(f"{self.root}/gateways/+/acks", qos=1)

    def _on_subscribe(self, client: mqtt.Client, userdata: Any, mid: int, reasons: Any, properties: Any) -> None:
        self._subscribed = True

    def _on_message(self, client: mqtt.Client, userdata: Any, message: mqtt.MQTTMessage) -> None:
        arrived = time.perf_counter()
        results = json.loads(message.payload)["results"]
        self.total_accepted += sum(1 for r in results if r.get("status") == "accepted")
        key = str(results[0].get("id")) if results else ""
        entry = self._outstanding.pop(key, None)
        stats = self._stats
        if entry is None or stats is None:
            self.stray_acks += 1
            return
        sent, readings = entry
        stats.acked_messages += 1
        stats.acked_readings += readings
        stats.latencies.append(arrived - sent)
        stats.elapsed = arrived  # absolute for now; made relative at the end
        stats.statuses.update(str(r.get("status")) for r in results)
        if len(results) != readings:
            stats.wrong_result_counts += 1

    def run(
        self,
        name: str,
        messages: list[Message],
        *,
        window: int,
        timeout: float,
        alive: Callable[[], str | None] = lambda: None,
    ) -> RunStats:
        """Publish every message (QoS 1) keeping at most `window` un-acked; wait for all acks.

        `alive` returns a reason to give up (e.g. the worker died), or None.
        """
        stats = RunStats(name, len(messages), sum(m.readings for m in messages))
        self._outstanding.clear()
        self._stats = stats
        deadline = time.monotonic() + timeout
        next_check = 0.0
        started = time.perf_counter()
        pending = iter(messages)
        remaining = len(messages)
        try:
            while stats.acked_messages < stats.messages:
                while remaining and len(self._outstanding) < window:
                    message = next(pending)
                    remaining -= 1
                    self._outstanding[message.key] = (time.perf_counter(), message.readings)
                    info = self.client.publish(message.topic, message.payload, qos=1)
                    if info.rc != mqtt.MQTT_ERR_SUCCESS:
                        raise RuntimeError(f"publish failed: {mqtt.error_string(info.rc)}")
                rc = self.client.loop(0.05)
                if rc != mqtt.MQTT_ERR_SUCCESS:
                    raise RuntimeError(f"lost the broker: {mqtt.error_string(rc)}")
                now = time.monotonic()
                if now >= next_check:  # cheap enough, but not on every packet
                    next_check = now + 0.5
                    problem = alive() or ("timed out" if now > deadline else None)
                    if problem:
                        raise TimeoutError(problem)
            stats.completed = True
        except (TimeoutError, RuntimeError) as error:
            stats.error = f"{error}; {stats.acked_messages}/{stats.messages} messages acked"
        finally:
            self._stats = None
            stats.elapsed = stats.elapsed - started if stats.acked_messages else 0.0
        return stats


# --------------------------------------------------------------------------------------
# Phase 2: the worker, its memory and everyone's CPU
# --------------------------------------------------------------------------------------


class PeakRss:
    """Samples RSS of a process and its children every `interval` seconds; keeps the peak."""

    def __init__(self, pid: int, interval: float = 0.05) -> None:
        self.process = psutil.Process(pid)
        self.interval = interval
        self.peak = 0
        self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rss", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                total = self.process.memory_info().rss
                for child in self.process.children(recursive=True):
                    with suppress(psutil.Error):
                        total += child.memory_info().rss
            except psutil.Error:
                return  # the process is gone
            self.peak = max(self.peak, total)
            self.samples += 1
            self._stop.wait(self.interval)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2)

    @property
    def peak_mb(self) -> float:
        return self.peak / 1e6


class CpuMeter:
    """CPU seconds by party (worker, postgres, mosquitto, bench, echo) between two snapshots."""

    def __init__(self, trees: list[tuple[str, int]], database: str) -> None:
        self.trees = trees  # (party, pid whose process tree counts; the bench: itself only)
        self.database = database

    def server_party(self, name: str, title: str) -> str | None:
        """mosquitto; postgres: the server's own processes and the backends of our database;
        None (left to "other") for backends serving other databases."""
        if name == "mosquitto":
            return "mosquitto"
        if name != "postgres":
            return None
        if f" {self.database} " in title:
            return "postgres"
        is_backend = "127.0.0.1(" in title or "[local]" in title or "::1(" in title
        return None if is_backend else "postgres"

    def snapshot(self) -> dict[int, tuple[str, float]]:
        found: dict[int, tuple[str, float]] = {}
        for name, pid in self.trees:
            with suppress(psutil.Error):
                root = psutil.Process(pid)
                tree = [root] if pid == os.getpid() else [root, *root.children(recursive=True)]
                for process in tree:
                    with suppress(psutil.Error):
                        times = process.cpu_times()
                        found.setdefault(process.pid, (name, times.user + times.system))
        for process in psutil.process_iter(["name", "cmdline"]):
            party = self.server_party(process.info["name"] or "", " ".join(process.info["cmdline"] or []))
            if party and process.pid not in found:
                with suppress(psutil.Error):
                    times = process.cpu_times()
                    found[process.pid] = (party, times.user + times.system)
        return found

    @staticmethod
    def machine_busy() -> float:
        times = psutil.cpu_times()
        return sum(times) - times.idle - getattr(times, "iowait", 0.0)

    @contextmanager
    def measure(self, into: dict[str, float]) -> Iterator[None]:
        """Fills `into` with % of one core per party, plus "other": everything else on the machine."""
        before, busy, started = self.snapshot(), self.machine_busy(), time.perf_counter()
        yield
        after, wall = self.snapshot(), time.perf_counter() - started
        busy = self.machine_busy() - busy
        used: dict[str, float] = {}
        for pid, (party, seconds) in after.items():
            used[party] = used.get(party, 0.0) + seconds - before.get(pid, (party, 0.0))[1]
        into.clear()
        into.update({party: 100 * seconds / wall for party, seconds in used.items()})
        into["other"] = max(0.0, 100 * (busy - sum(used.values())) / wall)


class Worker:
    """`rpm ingest` as a subprocess, with its log in a file."""

    def __init__(
        self,
        database: str,
        client_id: str,
        share_group: str,
        root: str,
        log_path: Path,
        extra: dict[str, str],
        command: list[str] | None = None,
    ) -> None:
        self.client_id = client_id
        self.log_path = log_path
        self.env = rpm_env(
            database,
            {
                "RPM_MQTT_URL": f"mqtt://{BROKER_HOST}:{BROKER_PORT}",
                "RPM_MQTT_CLIENT_ID": client_id,
                "RPM_MQTT_SHARE_GROUP": share_group,
                "RPM_MQTT_TOPIC_ROOT": root,
                "RPM_METRICS_PORT": "0",
                **extra,
            },
        )
        self._log = self.log_path.open("wb")
        self.process = subprocess.Popen(
            command or [str(RPM), "ingest"], env=self.env, cwd=PROJECT, stdout=self._log, stderr=subprocess.STDOUT
        )
        self.rss = PeakRss(self.process.pid)

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace")

    def problem(self) -> str | None:
        code = self.process.poll()
        return None if code is None else f"the worker exited with {code}"

    def wait_connected(self, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while "connected to" not in self.log_text():
            if self.problem():
                raise RuntimeError(f"{self.problem()}:\n{self.log_text()[-3000:]}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"the worker did not connect to the broker within {timeout}s")
            time.sleep(0.1)

    def stop(self, timeout: float = 60) -> int | None:
        """SIGTERM, wait for the drain; kill if it does not exit in time. Returns the exit code."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                log(f"worker did not exit within {timeout}s of SIGTERM; killing it")
                self.process.kill()
                self.process.wait(10)
                self.rss.stop()
                self._log.close()
                return None
        self.rss.stop()
        self._log.close()
        return self.process.returncode


def forget_broker_session(client_id: str) -> None:
    """Remove the worker's persistent session (clean start, expiry 0) so the broker keeps nothing."""
    client = mqtt_client(client_id)
    properties = Properties(PacketTypes.CONNECT)
    properties.SessionExpiryInterval = 0
    connected = threading.Event()
    client.on_connect = lambda *args: connected.set()
    with suppress(Exception):
        client.connect(BROKER_HOST, BROKER_PORT, keepalive=10, clean_start=True, properties=properties)
        client.loop_start()
        connected.wait(5)
        client.disconnect()
        client.loop_stop()


def start_workers(
    count: int,
    database: str,
    run_id: str,
    root: str,
    log_dir: Path,
    extra: dict[str, str],
    commands: dict[int, list[str]] | None = None,
) -> list[Worker]:
    """`count` workers sharing the load through one shared subscription, as in production;
    `commands`: another command line than `rpm ingest` for some of them, by number."""
    workers = []
    for number in range(count):
        client_id = f"rpm-bench-{run_id}-{number}"
        command = (commands or {}).get(number)
        workers.append(
            Worker(database, client_id, f"bench-{run_id}", root, log_dir / f"{client_id}.log", extra, command)
        )
        log(f"worker {client_id} pid {workers[-1].process.pid} started (log {workers[-1].log_path})")
    return workers


def any_problem(workers: list[Worker]) -> str | None:
    return next((problem for w in workers if (problem := w.problem())), None)


def warm_up(
    gateways: Gateways,
    workers: list[Worker],
    devices: list[BenchDevice],
    *,
    root: str,
    gateway_count: int,
    rng: random.Random,
    names: Names,
    timeout: float = 60,
) -> None:
    """Wait until a reading makes the round trip, then push a little load through once."""
    for worker in workers:
        worker.wait_connected()
    deadline = time.monotonic() + timeout
    attempt = 0

    def alive() -> str | None:
        return any_problem(workers)

    while True:
        probe = make_messages(f"warmup{attempt}", 1, 1, root=root, gateways=1, devices=devices, rng=rng, names=names)
        if gateways.run("probe", probe, window=1, timeout=5, alive=alive).completed:
            break
        if alive() or time.monotonic() > deadline:
            raise RuntimeError(f"no ack for a probe reading within {timeout}s:\n{workers[0].log_text()[-3000:]}")
        attempt += 1
    load = make_messages(
        "warmupload", 1000, 50, root=root, gateways=gateway_count, devices=devices, rng=rng, names=names
    )
    stats = gateways.run("warm-up", load, window=50, timeout=60, alive=alive)
    if not stats.completed:
        raise RuntimeError(f"warm-up failed: {stats.error}")
    log(f"{len(workers)} worker(s) up and warm")


# --------------------------------------------------------------------------------------
# Phase 5: broker round-trip baseline (an echo in a second process)
# --------------------------------------------------------------------------------------


def echo_server(root: str) -> int:
    """Entry point of the echo process: answer every measurements message at once on acks."""
    client = mqtt_client(f"bench-echo-{uuid.uuid4().hex[:8]}")
    prefix = f"{root}/gateways/"

    def on_connect(c: mqtt.Client, userdata: Any, flags: Any, reason: Any, properties: Any) -> None:
        c.subscribe(f"{root}/gateways/+/measurements", qos=1)

    def on_subscribe(*args: Any) -> None:
        print("ready", flush=True)

    def on_message(c: mqtt.Client, userdata: Any, message: mqtt.MQTTMessage) -> None:
        payload = message.payload
        start = payload.find(b'"id":"') + 6
        reading_id = payload[start : payload.find(b'"', start)]
        gateway = message.topic[len(prefix) : -len("/measurements")]
        c.publish(f"{prefix}{gateway}/acks", b'{"results":[{"id":"' + reading_id + b'","status":"accepted"}]}', qos=1)

    client.on_connect, client.on_subscribe, client.on_message = on_connect, on_subscribe, on_message
    client.connect(BROKER_HOST, BROKER_PORT, keepalive=30, clean_start=True, properties=connect_properties())
    signal.signal(signal.SIGTERM, lambda *args: client.disconnect())
    client.loop_forever()
    return 0


@contextmanager
def echo_process(root: str) -> Iterator[subprocess.Popen[str]]:
    process = subprocess.Popen(
        [sys.executable, __file__, "--echo-server", root], cwd=PROJECT, stdout=subprocess.PIPE, text=True
    )
    try:
        ready = threading.Event()

        def wait_ready() -> None:
            assert process.stdout is not None
            if process.stdout.readline() == "ready\n":
                ready.set()

        threading.Thread(target=wait_ready, daemon=True).start()
        if not ready.wait(15):
            raise TimeoutError("the echo subscriber did not subscribe within 15s")
        yield process
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)


# --------------------------------------------------------------------------------------
# Phase 6: raw COPY baseline
# --------------------------------------------------------------------------------------


@dataclass
class CopyResult:
    rows: int
    text_rows_per_s: float  # pre-formatted COPY text: the database's own ceiling
    write_row_rows_per_s: float  # psycopg adapting Python values row by row
    resource_bytes: float  # mean size of the resource JSON, to show the rows are the real ones


def copy_baseline(database: str, reading_prefix: str, gateway_ids: list[str]) -> CopyResult:
    """COPY the rows the worker stored for one scenario (its reading ids, from this run's
    gateways: on an existing database nothing else) into fresh, empty copies of the observations
    table (`like observations including all`: same columns, defaults, indexes and unique key),
    each in one transaction, twice: as raw COPY text, and with psycopg's `write_row`."""
    where = (
        sql.SQL("reading_id like {} and gateway_id = any({}::text[])")
        .format(sql.Literal(f"{reading_prefix}-%"), sql.Literal(gateway_ids))
        .as_string(None)
    )
    with psycopg.connect(db_url(database), connect_timeout=5) as connection:
        with connection.cursor() as cursor:
            # Every column, whatever the schema is today; json(b) travels as text for write_row.
            found = cursor.execute(
                "select column_name, data_type from information_schema.columns"
                " where table_schema = 'public' and table_name = 'observations' order by ordinal_position"
            ).fetchall()
            columns = ", ".join(name for name, _ in found)
            as_text = ", ".join(f"{name}::text" if kind in {"json", "jsonb"} else name for name, kind in found)
            text = bytearray()
            with cursor.copy(f"copy (select {columns} from observations where {where}) to stdout") as copy:
                for chunk in copy:
                    text += chunk
            rows = cursor.execute(f"select {as_text} from observations where {where}").fetchall()
            mean = cursor.execute(f"select avg(octet_length(resource::text)) from observations where {where}")
            resource_bytes = float((mean.fetchone() or [0])[0] or 0)
        connection.commit()

        def timed_copy(table: str, write: Callable[[psycopg.Copy], None]) -> float:
            connection.execute(f"create table {table} (like observations including all)")
            connection.commit()
            started = time.perf_counter()
            with connection.cursor() as cursor, cursor.copy(f"copy {table} ({columns}) from stdin") as copy:
                write(copy)
            connection.commit()
            elapsed = time.perf_counter() - started
            stored = count(connection, table)
            connection.execute(f"drop table {table}")
            connection.commit()
            if stored != len(rows):
                raise RuntimeError(f"COPY into {table} stored {stored} rows, expected {len(rows)}")
            return len(rows) / elapsed

        def write_text(copy: psycopg.Copy) -> None:
            view = memoryview(text)
            for start in range(0, len(view), 1 << 20):
                copy.write(view[start : start + (1 << 20)])

        def write_rows(copy: psycopg.Copy) -> None:
            for row in rows:
                copy.write_row(row)

        text_rate = timed_copy("bench_copy_text", write_text)
        row_rate = timed_copy("bench_copy_rows", write_rows)
    return CopyResult(len(rows), text_rate, row_rate, resource_bytes)


# --------------------------------------------------------------------------------------
# Phase 7: correctness and the report
# --------------------------------------------------------------------------------------


def count(connection: psycopg.Connection[Any], table: str) -> int:
    found = connection.execute(f"select count(*) from {table}").fetchone()
    return int(found[0]) if found else 0


def count_where(connection: psycopg.Connection[Any], query: str, values: list[Any]) -> int:
    found = connection.execute(query, [values]).fetchone()
    return int(found[0]) if found else 0


def check_database(setup: Setup, expected_rows: int) -> tuple[bool, str, str, str]:
    """(ok, rows found, rows expected, what the alert rules did), once the worker has stopped.

    Counts only this run's rows (its gateways' observations and rejections, its patients'
    alerts), so they are exact on a database that holds millions of others."""
    gateways, patients = setup.gateway_ids, setup.patient_ids
    with psycopg.connect(db_url(setup.database), connect_timeout=5) as connection:
        rows = count_where(connection, "select count(*) from observations where gateway_id = any(%s)", gateways)
        rejected = count_where(
            connection, "select count(*) from rejected_readings where gateway_id = any(%s)", gateways
        )
        alerts = count_where(connection, "select count(*) from alerts where patient_id = any(%s)", patients)
        evidence = count_where(
            connection,
            "select count(*) from alert_observations e join alerts a on a.id = e.alert_id where a.patient_id = any(%s)",
            patients,
        )
    ok = rows == expected_rows and rejected == 0
    return (
        ok,
        f"{rows:,} observations, {rejected} rejected",
        f"{expected_rows:,} accepted in acks (incl. warm-up)",
        f"{alerts:,} alerts open, {evidence:,} readings as alert evidence",
    )


def verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def fmt_rate(value: float, unit: str) -> str:
    return f"{value:,.0f} {unit}/s"


def print_report(
    *,
    args: argparse.Namespace,
    batched: RunStats,
    single: RunStats,
    echo_batched: RunStats | None,
    echo_single: RunStats | None,
    copy: CopyResult | None,
    peak_mb: float,
    rss_samples: int,
    correctness: tuple[bool, str, str, str],
    worker_exit: int | None,
    setup: Setup,
    worker_env: dict[str, str],
) -> bool:
    lines: list[tuple[str, ...]] = []
    header = ("scenario", "measured", "baseline", "ratio", "target", "result")
    b_ok = batched.completed and batched.readings_per_s >= TARGET_BATCHED
    s_ok = single.completed and single.messages_per_s >= TARGET_SINGLE
    e_b = echo_batched.readings_per_s if echo_batched and echo_batched.completed else None
    e_s = echo_single.messages_per_s if echo_single and echo_single.completed else None
    lines.append(
        (
            f"batched ({args.batch_size}/msg, {batched.readings:,} readings)",
            fmt_rate(batched.readings_per_s, "readings"),
            f"{fmt_rate(e_b, 'readings')} broker RT" if e_b else "n/a",
            f"{batched.readings_per_s / e_b:.2f}" if e_b else "-",
            f">= {TARGET_BATCHED:,}/s",
            verdict(b_ok),
        )
    )
    if copy is not None:
        for label, rate in (("raw COPY text", copy.text_rows_per_s), ("COPY write_row", copy.write_row_rows_per_s)):
            lines.append(("", "", f"{fmt_rate(rate, 'rows')} {label}", f"{batched.readings_per_s / rate:.2f}", "", ""))
    lines.append(
        (
            f"single (1/msg, {single.messages:,} messages)",
            fmt_rate(single.messages_per_s, "msgs"),
            f"{fmt_rate(e_s, 'msgs')} broker RT" if e_s else "n/a",
            f"{single.messages_per_s / e_s:.2f}" if e_s else "-",
            f">= {TARGET_SINGLE:,}/s",
            verdict(s_ok),
        )
    )
    rss_ok = 0 < peak_mb < TARGET_RSS_MB
    lines.append(
        (
            "worker peak RSS" + (" (largest worker)" if args.workers > 1 else ""),
            f"{peak_mb:.1f} MB",
            f"{rss_samples} samples @50ms",
            "-",
            f"< {TARGET_RSS_MB} MB",
            verdict(rss_ok),
        )
    )
    statuses = batched.statuses + single.statuses
    acks_ok = (
        batched.completed
        and single.completed
        and set(statuses) == {"accepted"}
        and statuses["accepted"] == batched.readings + single.readings
        and batched.wrong_result_counts == 0
        and single.wrong_result_counts == 0
    )
    lines.append(
        (
            "acks: every result accepted",
            f"{statuses['accepted']:,}/{batched.readings + single.readings:,}",
            ", ".join(f"{k}={v}" for k, v in sorted(statuses.items())),
            "-",
            "all accepted",
            verdict(acks_ok),
        )
    )
    lines.append(("rows == readings accepted", correctness[1], correctness[2], "-", "equal", verdict(correctness[0])))
    lines.append(("worker exit on SIGTERM", str(worker_exit), "", "-", "0", verdict(worker_exit == 0)))

    widths = [max(len(row[i]) for row in [header, *lines]) for i in range(len(header))]
    rule = "-+-".join("-" * w for w in widths)
    print()
    print(
        f"Ingest benchmark  ({args.workers} worker(s), window {args.window} messages, {args.gateways} gateways, "
        f"{args.patients} patients/devices, breach share {args.breach_share:.0%}, {os.cpu_count()} CPUs"
        + (f", worker env {' '.join(f'{k}={v}' for k, v in worker_env.items())}" if worker_env else "")
        + ")"
    )
    if setup.existing:
        print(
            f"database: {setup.database}, existing, ~{setup.observations_before or 0:,} rows in observations "
            "before the run (estimate); checks and counts below are of this run's rows only"
        )
    else:
        print(f"database: scratch {setup.database} (empty tables; dropped afterwards)")
    print(" | ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)))
    print(rule)
    for row in lines:
        print(" | ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)))

    runs = [r for r in (batched, single, echo_batched, echo_single) if r is not None]
    parties = ["worker", "postgres", "mosquitto", "bench", "echo", "other"]
    print()
    print("Per scenario: wall time, publish-to-ack latency and CPU (% of one core)")
    head = f"{'scenario':<18} {'wall s':>7} {'p50 ms':>7} {'p99 ms':>7} " + " ".join(f"{p:>9}" for p in parties)
    print(head)
    print("-" * len(head))
    for run in runs:
        cpu = " ".join(f"{run.cpu[p]:>8.0f}%" if p in run.cpu else f"{'-':>9}" for p in parties)
        print(
            f"{run.name:<18} {run.elapsed:>7.2f} {run.latency(0.5) * 1000:>7.1f} {run.latency(0.99) * 1000:>7.1f} {cpu}"
        )
        if run.error:
            print(f"  ! {run.error}")
    busy = [f"{run.name} {run.cpu['other']:.0f}%" for run in runs if run.cpu.get("other", 0) > 25]
    if busy:
        print(
            f"WARNING: other processes on this machine used CPU during: {', '.join(busy)} (% of one core, "
            f"{os.cpu_count()} cores); the figures understate what the worker does on a quiet machine"
        )
    print(f"alert rules: {correctness[3]}")
    if copy is not None:
        print(
            f"COPY baseline: the {copy.rows:,} rows the worker stored for the batched scenario "
            f"(resource JSON {copy.resource_bytes:,.0f} bytes on average), into `like observations including all`"
        )
    all_ok = b_ok and s_ok and rss_ok and acks_ok and correctness[0] and worker_exit == 0
    print()
    print(f"overall: {verdict(all_ok)}")
    return all_ok


# --------------------------------------------------------------------------------------
# Main
# --------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="small run: 10,000 readings, 2,000 single messages")
    parser.add_argument("--readings", type=int, help="readings in the batched scenario (default 100,000)")
    parser.add_argument("--messages", type=int, help="messages in the single scenario (default 20,000)")
    parser.add_argument("--batch-size", type=int, default=50, help="readings per batched message")
    parser.add_argument("--window", type=int, default=500, help="most messages awaiting their ack at once")
    parser.add_argument("--gateways", type=int, default=20)
    parser.add_argument(
        "--workers", type=int, default=1, help="ingest workers sharing one shared subscription (default 1)"
    )
    parser.add_argument("--patients", type=int, default=200)
    parser.add_argument("--timeout", type=float, default=600, help="seconds each scenario may take")
    parser.add_argument(
        "--breach-share",
        type=float,
        default=0.02,
        help="share of readings outside the patient's threshold bands (alerts), default 0.02",
    )
    parser.add_argument("--seed", type=int, default=20261123)
    parser.add_argument(
        "--worker-env",
        action="append",
        default=[],
        metavar="RPM_X=value",
        help="extra setting for the worker, e.g. RPM_INGEST_BATCH_READINGS=5000 or "
        "RPM_RULES_ENABLED=false (repeatable)",
    )
    parser.add_argument(
        "--database",
        metavar="NAME",
        help="run against this existing, migrated (e.g. seeded) database instead of a scratch one; "
        "the run removes its own rows afterwards, except its patients and devices, which cannot be deleted",
    )
    parser.add_argument(
        "--compare-empty",
        action="store_true",
        help="with --database: run against a fresh scratch database first, then against --database, "
        "and compare the batched figures (target: seeded/empty >= 0.80)",
    )
    parser.add_argument("--echo-server", metavar="ROOT", help=argparse.SUPPRESS)  # internal: the echo process
    args = parser.parse_args(argv)
    args.readings = args.readings or (10_000 if args.quick else 100_000)
    args.messages = args.messages or (2_000 if args.quick else 20_000)
    if args.compare_empty and not args.database:
        parser.error("--compare-empty needs --database NAME (the seeded database to compare with)")
    if args.window > 900:
        parser.error("--window above ~900 risks mosquitto's max_queued_messages (1000) dropping messages")
    for item in args.worker_env:
        name = item.split("=", 1)[0]
        if "=" not in item or not name.startswith("RPM_") or name in RESERVED_WORKER_ENV:
            parser.error(f"--worker-env takes RPM_*=value, except {', '.join(sorted(RESERVED_WORKER_ENV))}")
    return args


# On an existing database (and in both runs of --compare-empty) the worker's periodic checks
# still run their queries but change nothing: with the defaults, they would open missing-measurement
# alerts for seeded patients whose data has ended and escalate the seeded open alerts. The run's own
# patients have no measurement plan and their alerts escalate after 15 minutes at the earliest.
INERT_CHECKS_ENV = {
    "RPM_MISSING_GRACE_HOURS": "100000",
    "RPM_ESCALATE_RED_MINUTES": "10000000",
    "RPM_ESCALATE_YELLOW_HOURS": "100000",
}


@dataclass
class Outcome:
    """What one run measured, for --compare-empty."""

    setup: Setup
    batched: RunStats
    copy: CopyResult | None
    ok: bool


def run_benchmark(args: argparse.Namespace, database: str | None, *, tagged: bool) -> Outcome:
    """One complete run with its report: against a fresh scratch database (`database` None) or
    the existing `database`. `tagged`: the run's names carry its token and the worker's periodic
    checks are inert (always so on an existing database)."""
    rng = random.Random(args.seed)
    run_id = uuid.uuid4().hex[:10]
    names = Names.tagged(run_id) if tagged else Names()
    setup = Setup(
        database or f"rpm_bench_{run_id}",
        existing=database is not None,
        names=names,
        gateway_ids=[names.gateway(number) for number in range(args.gateways)],
    )
    root = f"bench-{run_id}/rpm/v1"
    echo_root = f"bench-{run_id}-echo/rpm/v1"
    log_dir = Path(tempfile.mkdtemp(prefix="rpm-bench-"))
    workers: list[Worker] = []
    gateways: Gateways | None = None
    worker_exit: int | None = None
    try:
        setup_database(setup, args.patients, rng)
        devices = setup.devices

        log(f"generating {args.readings:,} batched readings and {args.messages:,} single messages")
        batched_msgs = make_messages(
            "b",
            args.readings,
            args.batch_size,
            root=root,
            gateways=args.gateways,
            devices=devices,
            rng=rng,
            breach_share=args.breach_share,
            names=names,
        )
        single_msgs = make_messages(
            "s",
            args.messages,
            1,
            root=root,
            gateways=args.gateways,
            devices=devices,
            rng=rng,
            breach_share=args.breach_share,
            names=names,
        )

        extra = dict(INERT_CHECKS_ENV) if tagged else {}
        extra.update(dict(item.split("=", 1) for item in args.worker_env))
        workers = start_workers(args.workers, setup.database, run_id, root, log_dir, extra)
        gateways = Gateways(root, "gw")
        gateways.connect()
        warm_up(gateways, workers, devices, root=root, gateway_count=args.gateways, rng=rng, names=names)

        def alive() -> str | None:
            return any_problem(workers)

        meter = CpuMeter([*(("worker", w.process.pid) for w in workers), ("bench", os.getpid())], setup.database)
        cpu: dict[str, float] = {}
        log(f"scenario batched: {len(batched_msgs):,} messages, {args.readings:,} readings")
        with meter.measure(cpu):
            batched = gateways.run("batched", batched_msgs, window=args.window, timeout=args.timeout, alive=alive)
        batched.cpu = dict(cpu)
        log(f"  {batched.readings_per_s:,.0f} readings/s in {batched.elapsed:.2f}s {batched.error or ''}")
        log(f"scenario single: {len(single_msgs):,} messages")
        with meter.measure(cpu):
            single = gateways.run("single", single_msgs, window=args.window, timeout=args.timeout, alive=alive)
        single.cpu = dict(cpu)
        log(f"  {single.messages_per_s:,.0f} messages/s in {single.elapsed:.2f}s {single.error or ''}")

        log("stopping the worker(s) (SIGTERM)")
        exits = [w.stop() for w in workers]
        worker_exit = next((code for code in exits if code != 0), 0)
        gateways.pump(0.5)  # late acks of the drain, if any
        correctness = check_database(setup, gateways.total_accepted)
        gateways.close()
        gateways = None

        echo_batched = echo_single = None
        log("baseline: broker round trip through an echo subscriber")
        with echo_process(echo_root) as echo:
            echo_gateways = Gateways(echo_root, "echo-gw")
            echo_gateways.connect()
            try:
                meter = CpuMeter([("echo", echo.pid), ("bench", os.getpid())], setup.database)
                with meter.measure(cpu):
                    echo_batched = echo_gateways.run(
                        "broker RT batched",
                        retarget(batched_msgs, root, echo_root),
                        window=args.window,
                        timeout=args.timeout,
                    )
                echo_batched.cpu = dict(cpu)
                with meter.measure(cpu):
                    echo_single = echo_gateways.run(
                        "broker RT single",
                        retarget(single_msgs, root, echo_root),
                        window=args.window,
                        timeout=args.timeout,
                    )
                echo_single.cpu = dict(cpu)
            finally:
                echo_gateways.close()
        log(f"  batched {echo_batched.readings_per_s:,.0f} readings/s, single {echo_single.messages_per_s:,.0f} msgs/s")

        log("baseline: COPY of the batched scenario's stored rows into a copy of the observations table")
        copy = copy_baseline(setup.database, "b", setup.gateway_ids)
        log(
            f"  {copy.text_rows_per_s:,.0f} rows/s as COPY text, {copy.write_row_rows_per_s:,.0f} rows/s with write_row"
        )

        ok = print_report(
            args=args,
            batched=batched,
            single=single,
            echo_batched=echo_batched,
            echo_single=echo_single,
            copy=copy,
            peak_mb=max(w.rss.peak_mb for w in workers),
            rss_samples=min(w.rss.samples for w in workers),
            correctness=correctness,
            worker_exit=worker_exit,
            setup=setup,
            worker_env=extra,
        )
        return Outcome(setup, batched, copy, ok)
    finally:
        if gateways is not None:
            gateways.close()
        for worker in workers:
            if worker.process.poll() is None:
                worker.stop()
            forget_broker_session(worker.client_id)
        failed = [w for w in workers if w.process.returncode != 0]
        for worker in failed:
            log(f"worker log tail ({worker.log_path}, kept):\n{worker.log_text()[-2000:]}")
        if not failed:
            shutil.rmtree(log_dir, ignore_errors=True)
        if setup.created:
            drop_database(setup.database)
        elif setup.existing and setup.patient_ids:
            log(f"removing this run's rows from {setup.database}")
            try:
                print(remove_run_rows(setup), flush=True)
            except Exception as error:  # do not hide the run's own failure, if any
                log(f"clean-up of {setup.database} failed: {error!r}; this run's gateways: {setup.gateway_ids}")


def print_comparison(empty: Outcome, seeded: Outcome) -> bool:
    """Issue 7: the batched figure against the seeded database within 20 % of an empty one."""
    before = seeded.setup.observations_before or 0
    header = (
        "batched scenario",
        "empty table",
        f"{seeded.setup.database} (~{before:,} rows)",
        "seeded/empty",
        "target",
        "result",
    )

    def ratio(a: float | None, b: float | None) -> float | None:
        return a / b if a and b else None

    def figure(outcome: Outcome) -> float | None:
        return outcome.batched.readings_per_s if outcome.batched.completed else None

    def copy_rate(outcome: Outcome) -> float | None:
        return outcome.copy.text_rows_per_s if outcome.copy else None

    direct = ratio(figure(seeded), figure(empty))
    empty_share, seeded_share = ratio(figure(empty), copy_rate(empty)), ratio(figure(seeded), copy_rate(seeded))
    normalised = ratio(seeded_share, empty_share)
    target = TARGET_SEEDED_RATIO

    def show(value: float | None, pattern: str) -> str:
        return "n/a" if value is None else pattern.format(value)

    def judged(value: float | None) -> str:
        return verdict(value is not None and value >= target)

    ok = direct is not None and direct >= target
    lines = [
        (
            "readings/s (the figure)",
            show(figure(empty), "{:,.0f}"),
            show(figure(seeded), "{:,.0f}"),
            show(direct, "{:.2f}"),
            f">= {target:.2f}",
            judged(direct),
        ),
        (
            "raw COPY text, rows/s (baseline)",
            show(copy_rate(empty), "{:,.0f}"),
            show(copy_rate(seeded), "{:,.0f}"),
            show(ratio(copy_rate(seeded), copy_rate(empty)), "{:.2f}"),
            "",
            "",
        ),
        (
            "readings/s per COPY row/s",
            show(empty_share, "{:.3f}"),
            show(seeded_share, "{:.3f}"),
            show(normalised, "{:.2f}"),
            f">= {target:.2f}",
            f"({judged(normalised)})",
        ),
    ]
    widths = [max(len(row[i]) for row in [header, *lines]) for i in range(len(header))]
    print()
    print(
        f"Seeded vs empty table (issue 7: ingest throughput with {seeded.setup.database}'s observations within "
        f"20 % of an empty table; empty: scratch {empty.setup.database}, {empty.batched.readings:,} readings each)"
    )
    print(" | ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)))
    print("-+-".join("-" * w for w in widths))
    for row in lines:
        print(" | ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)))
    print(
        "The verdict is the readings/s ratio. The last line divides each run's figure by its own raw COPY "
        "baseline (its result in brackets, for reading), which cancels the machine's speed changing between "
        "the runs; if the two ratios disagree, the machine was not steady: repeat."
    )
    busy = [
        f"{name} {outcome.batched.cpu['other']:.0f}%"
        for name, outcome in (("empty", empty), ("seeded", seeded))
        if outcome.batched.cpu.get("other", 0) > 25
    ]
    if busy:
        print(
            f"WARNING: other processes on this machine used CPU during the batched scenario ({', '.join(busy)} of "
            "one core): these figures say little; repeat on a quiet machine"
        )
    print()
    print(f"comparison: {verdict(ok)}; empty run {verdict(empty.ok)}, seeded run {verdict(seeded.ok)}")
    return ok


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.echo_server:
        return echo_server(args.echo_server)

    def terminate(signum: int, frame: Any) -> None:
        raise SystemExit(128 + signum)  # run the clean-up below

    signal.signal(signal.SIGTERM, terminate)
    if args.database:
        problem = check_existing_database(args.database)
        if problem:
            log(f"--database: {problem}")
            return 2
    if not args.compare_empty:
        return 0 if run_benchmark(args, args.database, tagged=args.database is not None).ok else 1
    log("--compare-empty: run 1 of 2, against an empty scratch database")
    empty = run_benchmark(args, None, tagged=True)
    log(f"--compare-empty: run 2 of 2, against {args.database}")
    seeded = run_benchmark(args, args.database, tagged=True)
    ok = print_comparison(empty, seeded)
    return 0 if ok and empty.ok and seeded.ok else 1


if __name__ == "__main__":
    sys.exit(main())
