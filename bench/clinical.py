"""Clinical yardstick: the simulator's cohort through the real worker and rules, judged against its ground truth.

Run from the project root:

    .venv/bin/python bench/clinical.py                        # 200 patients, 90 simulated days
    .venv/bin/python bench/clinical.py --patients 24 --days 30 --seed 1 --json figures.json

What one run does
-----------------
1. Makes the simulator's cohort (`--patients`, `--seed`) and its timeline over a fixed stretch of
   the past: `--days` days ending 2026-11-01 00:00 Oslo time, so a seed gives the same readings
   and episodes in every run. Creates a scratch database `rpm_bench_clinical_<random>` (`rpm
   migrate`, `rpm organisations add`), starts `rpm api` (dev auth) and one `rpm ingest` (the real
   worker with the real rules) on the local broker 127.0.0.1:1883 under a topic root of its own,
   and enrols the cohort through the staff API (patients with their conditions and measurement
   plans, devices, gateways).
2. Publishes the timeline with the simulator's reference gateways (`backfill`): a simulated day
   per step, each day's readings acknowledged by the worker before the next day is sent, with
   the readings' own historical times; bad messages, duplicates and hubs that are offline for a
   day included.
3. At the end of each simulated day:
   - The nurse: every active threshold or trend alert is resolved through the API
     (`POST /api/v1/alerts/{id}/resolve`, note and outcome). ASSUMPTION: the care team works
     its worklist daily. Without it one open alert would absorb every later breach of the same
     patient and rule (at most one active alert per patient and rule), hiding both catches and
     false alerts. With it, breaches of one patient and rule within the same day still fold into
     one alert, as they would on a worklist read once a day.
   - The missing-measurement check (`rpm.pipeline.run_clock_rules`), run in this process at
     the simulated midnight. The worker runs it every minute on the wall clock, which means
     nothing for readings from the past, so the worker's own check is made inert
     (RPM_MISSING_GRACE_HOURS=100000) and the patients' enrolment time is set back to the day
     before the timeline (the check counts from enrolment). A check at each midnight is a sample
     of the minute-by-minute check: it raises nothing the real check would not, and it sees every
     missed day (at the midnight that ends it, the last reading of every planned type is older
     than its interval plus the 2 h grace), but it misses most gateway-offline windows, which
     close before a midnight.
4. Stops the worker and the API (each must exit 0) and measures from the database (psycopg) and
   the ground truth, per clinical episode (COPD exacerbation, fluid retention, hypoglycaemia,
   fever) of a patient:
   - caught: an alert whose rule key starts with one of the episode's expected rules and that
     has a triggering reading (alert_observations -> observations) inside [start, end];
   - readings to the first alert: the patient's readings of the episode's quantities (the
     codes its expected rules name) from the episode's start up to and including the first
     alerting one;
   - readings to the first out-of-band value: the same count up to the first reading whose
     stored interpretation is not N (weight gain: more than 2.0 kg above the lowest weight of
     the 72 h before, the trend rule's condition). Caught "within one reading" when the first
     alert comes at most one reading after it;
   - false alerts: threshold and trend alerts that opened on a reading outside every clinical
     episode of that patient, per patient-week outside those episodes (the opening reading is
     the earliest triggering reading; of a weight-gain alert, the earliest one that is itself
     a gain of more than 2.0 kg, not the low point it is measured from).
   Missing-measurement alerts are counted apart, against the missed days and offline windows.
5. Baseline, measured in the same run: the same readings in the same batches (a batch per
   gateway per day) answered by a plain echo subscriber instead of the worker (bench/ingest.py's
   broker round trip): what the broker and the gateways' client manage on this machine.
6. Removes the broker sessions and drops the scratch database (unless `--keep`), also on failure.

How to read the output
----------------------
One table by condition and in total. A condition's row is the sub-cohort of patients with that
condition: a patient with two conditions counts under each, with all his episodes and alerts
(hypertension has no episode kind of its own: its episodes are its patients' other conditions').
A second table gives the episodes by kind. Targets (issue 9): every episode caught within one
reading of its first out-of-band value; fewer than 0.5 false alerts per patient-week outside
episodes; judged for every row. The episode table also says in how many episodes each of the
expected rules alerted (COPD: SpO2 and pulse; fever: temperature and breathing rate), which the
targets do not ask. Exit status 0 when every row meets both targets, 1 otherwise, and also when
the run was not clean (an answer from the worker other than the simulator expected, or the
worker or API not exiting 0 on SIGTERM: then the figures cannot be trusted) or failed.
`--json FILE` writes the figures, with every episode's own and every false alert.

Helpers (scratch database, the worker and API subprocesses, the echo) come from bench/ingest.py
and bench/alerts.py, loaded by file path because `ingest` is also the project's own package.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
import shutil
import signal
import statistics
import sys
import tempfile
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx
import psycopg
from sqlalchemy.ext.asyncio import create_async_engine

from rpm.config import Settings
from rpm.db import async_url, session_factory
from rpm.norway import OSLO
from rpm.pipeline import run_clock_rules
from rpm.simulator.cohort import CONDITIONS, SimPatient, make_cohort
from rpm.simulator.gateway import Fleet, GatewayStats, batches, unique_client_prefix
from rpm.simulator.physiology import CLINICAL_KINDS, GATEWAY_OFFLINE, MISSED_DAY, Episode, Timeline, simulate
from rpm.simulator.run import backfill, enrol_sync, gateway_ids


def _load(name: str, file: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, Path(__file__).with_name(file))
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up here
    spec.loader.exec_module(module)
    return module


ba = _load("bench_alerts", "alerts.py")  # loads bench/ingest.py as its `bi`: one copy for both
bi = ba.bi
log = bi.log

# A fixed stretch of the past: the same seed gives the same episodes in every run, and no
# reading is in the future (the contract rejects those).
END = datetime(2026, 11, 1, tzinfo=OSLO)
TARGET_WITHIN = 1  # readings after the first out-of-band value
TARGET_FALSE_PER_PATIENT_WEEK = 0.5
WEIGHT = "29463-7"
WEIGHT_GAIN_KG, WEIGHT_GAIN_WINDOW = 2.0, timedelta(hours=72)  # rules.md: the heart-failure template
MISSING_GRACE = timedelta(hours=Settings.model_fields["missing_grace_hours"].default)
NURSE_NOTE = "Patient contacted (the clinical yardstick's nurse, at the end of the simulated day)."
NURSE_OUTCOME = "contacted-patient"
WEEK = timedelta(days=7)
TTL = str(24 * 3600)  # the nurse's token outlasts the longest run

ASSUMPTIONS = (
    "Nurse: at the end of every simulated day every active threshold/trend alert is resolved through the API "
    "(otherwise one open alert absorbs every later breach of that patient and rule, hiding catches and false "
    "alerts); breaches of one patient and rule within a day fold into one alert.",
    "Missing-measurement check: run in-process at each simulated midnight (the worker's wall-clock check is made "
    "inert; enrolment times are set back to the day before the timeline). It catches missed days; most "
    "gateway-offline windows close before a midnight and are not seen.",
    "Rows by condition are sub-cohorts: a patient with two conditions counts under each, with all his episodes.",
)


# --------------------------------------------------------------------------------------
# The run: services, enrolment, publishing with the day-end work
# --------------------------------------------------------------------------------------


class Nurse:
    """Works the worklist through the staff API: resolves every active threshold/trend alert."""

    def __init__(self, base: str, token: str) -> None:
        self.http = httpx.Client(base_url=base, headers={"Authorization": f"Bearer {token}"}, timeout=30)
        self.resolved = 0
        self.seconds = 0.0

    def round(self) -> int:
        started = time.perf_counter()
        due: list[str] = []
        cursor: str | None = None
        while True:
            params: dict[str, Any] = {"limit": 500} | ({"cursor": cursor} if cursor else {})
            page = self.http.get("/api/v1/alerts", params=params)
            page.raise_for_status()
            body = page.json()
            due += [a["id"] for a in body["items"] if a["rule"].startswith(("threshold:", "trend:"))]
            cursor = body.get("next")
            if not cursor:
                break
        for alert_id in due:
            answer = self.http.post(
                f"/api/v1/alerts/{alert_id}/resolve", json={"note": NURSE_NOTE, "outcome": NURSE_OUTCOME}
            )
            if answer.status_code != 200:
                raise RuntimeError(f"resolving alert {alert_id}: {answer.status_code} {answer.text[:300]}")
        self.resolved += len(due)
        self.seconds += time.perf_counter() - started
        return len(due)

    def close(self) -> None:
        self.http.close()


class MissingCheck:
    """The worker's missing-measurement check, run here at simulated times."""

    def __init__(self, database: str) -> None:
        self.runner = asyncio.Runner()
        target, connect_args = async_url(bi.db_url(database))
        self.engine = create_async_engine(target, connect_args=connect_args, pool_size=1)
        self.sessions = session_factory(self.engine)
        self.opened = 0
        self.seconds = 0.0

    def at(self, now: datetime) -> int:
        started = time.perf_counter()

        async def once() -> int:
            async with self.sessions() as session, session.begin():
                return await run_clock_rules(session, now, MISSING_GRACE)

        opened = self.runner.run(once())
        self.opened += opened
        self.seconds += time.perf_counter() - started
        return opened

    def close(self) -> None:
        self.runner.run(self.engine.dispose())
        self.runner.close()


def day_end_work(nurse: Nurse, missing: MissingCheck, start: datetime) -> Callable[[datetime, GatewayStats], None]:
    def at_day_end(day_end: datetime, stats: GatewayStats) -> None:
        missing.at(day_end)
        nurse.round()
        if (day_end - start).days % 7 == 0:
            log(f"  up to {day_end:%Y-%m-%d}: {stats.summary()}; alerts resolved by the nurse {nurse.resolved}, "
                f"missing-measurement alerts {missing.opened}")  # fmt: skip

    return at_day_end


def clear_statuses(root: str, gateways: Iterable[str]) -> None:
    """The gateways leave `offline` retained on their status topics: removed, so that runs do not
    pile up retained messages on the local broker."""
    client = bi.mqtt_client(f"bench-clinical-clear-{uuid.uuid4().hex[:8]}")
    client.connect(bi.BROKER_HOST, bi.BROKER_PORT, keepalive=30, clean_start=True)
    client.loop_start()
    try:
        sent = [client.publish(f"{root}/gateways/{g}/status", b"", qos=1, retain=True) for g in gateways]
        for info in sent:
            info.wait_for_publish(10)
    finally:
        client.disconnect()
        client.loop_stop()


def set_back_enrolment(database: str, patient_ids: Iterable[str], enrolled: datetime) -> None:
    """The check counts from enrolment: the cohort was enrolled before the timeline, not today."""
    with psycopg.connect(bi.db_url(database), connect_timeout=5) as connection:
        connection.execute(
            "update patients set created_at = %s where id = any(%s::uuid[])", [enrolled, list(patient_ids)]
        )


# --------------------------------------------------------------------------------------
# Measuring: stored readings and alerts against the ground truth
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Stored:
    """A stored Observation of a quantity some episode is judged on."""

    id: str
    code: str
    at: datetime
    value: float | None
    interpretation: str | None


@dataclass
class StoredAlert:
    id: str
    patient: str
    rule: str
    opened_at: datetime
    triggers: list[tuple[str, datetime]] = field(default_factory=list)  # (observation id, effective time)
    alerting: list[datetime] = field(default_factory=list)  # triggering readings that breach themselves

    @property
    def opened_on(self) -> datetime:
        """The reading the alert opened on."""
        return min(self.alerting)


@dataclass
class Database:
    readings: dict[str, list[Stored]]  # patient id -> by time
    alerts: dict[str, list[StoredAlert]]  # patient id -> alerts
    gains: dict[str, float]  # weight observation id -> kg above the lowest of the 72 h before
    observations: int


def codes_of(episode: Episode) -> set[str]:
    """The LOINC codes an episode's expected rules judge."""
    return {WEIGHT if rule == "trend:weight-gain" else rule.split(":")[1] for rule in episode.expected_rules}


def weight_gains(readings: list[Stored]) -> dict[str, float]:
    """The trend rule's condition per weight: kg above the lowest weight in the 72 h before it."""
    weights = [r for r in readings if r.code == WEIGHT and r.value is not None]
    gains: dict[str, float] = {}
    for number, reading in enumerate(weights):
        before = [w.value for w in weights[:number] if reading.at - WEIGHT_GAIN_WINDOW <= w.at < reading.at]
        if before:
            gains[reading.id] = round(float(reading.value or 0) - float(min(v for v in before if v is not None)), 3)
    return gains


def load(database: str, codes: set[str]) -> Database:
    with psycopg.connect(bi.db_url(database), connect_timeout=5) as connection:
        rows = connection.execute(
            "select id::text, patient_id::text, code, effective_at, value,"
            " resource -> 'interpretation' -> 0 -> 'coding' -> 0 ->> 'code'"
            " from observations where code = any(%s) order by patient_id, effective_at, code",
            [sorted(codes)],
        ).fetchall()
        alerts = connection.execute("select id::text, patient_id::text, rule, opened_at from alerts").fetchall()
        triggers = connection.execute(
            "select alert_id::text, observation_id::text, effective_at from alert_observations"
        ).fetchall()
        observations = bi.count(connection, "observations")
    readings: dict[str, list[Stored]] = defaultdict(list)
    for observation_id, patient_id, code, at, value, interpretation in rows:
        readings[patient_id].append(Stored(observation_id, code, at, value, interpretation))
    gains: dict[str, float] = {}
    for patient_readings in readings.values():
        gains |= weight_gains(patient_readings)
    by_id = {a[0]: StoredAlert(*a) for a in alerts}
    for alert_id, observation_id, at in triggers:
        by_id[alert_id].triggers.append((observation_id, at))
    by_patient: dict[str, list[StoredAlert]] = defaultdict(list)
    for alert in by_id.values():
        if alert.rule == "trend:weight-gain":
            # Its triggers come in pairs (the low point, the gain); the gain is what alerted.
            alert.alerting = [at for o, at in alert.triggers if gains.get(o, 0.0) > WEIGHT_GAIN_KG]
            alert.alerting = alert.alerting or [max(at for _, at in alert.triggers)]
        else:
            alert.alerting = [at for _, at in alert.triggers] or [alert.opened_at]
        by_patient[alert.patient].append(alert)
    return Database(dict(readings), dict(by_patient), gains, observations)


@dataclass
class EpisodeResult:
    patient: str  # the cohort's key
    kind: str
    start: str
    end: str
    expected_rules: list[str]
    caught: bool
    rules_caught: list[str]
    readings_to_first_alert: int | None  # counting the alerting reading itself
    readings_to_first_out_of_band: int | None
    within_one: bool


def judge_episode(episode: Episode, patient_id: str, stored: Database) -> EpisodeResult:
    codes = codes_of(episode)
    window = [r for r in stored.readings.get(patient_id, []) if r.code in codes and episode.covers(r.at)]

    def out_of_band(reading: Stored) -> bool:
        if reading.code == WEIGHT:
            return stored.gains.get(reading.id, 0.0) > WEIGHT_GAIN_KG
        return reading.interpretation not in (None, "N")

    alerting: list[tuple[datetime, str]] = []
    for alert in stored.alerts.get(patient_id, []):
        prefix = next((p for p in episode.expected_rules if alert.rule.startswith(p)), None)
        if prefix is not None:
            alerting += [(at, prefix) for at in alert.alerting if episode.covers(at)]
    first_alert = min(alerting)[0] if alerting else None
    first_out = next((r.at for r in window if out_of_band(r)), None)

    def readings_until(moment: datetime | None) -> int | None:
        return None if moment is None else sum(1 for r in window if r.at <= moment)

    to_alert, to_out = readings_until(first_alert), readings_until(first_out)
    return EpisodeResult(
        patient=episode.patient,
        kind=episode.kind,
        start=episode.start.isoformat(),
        end=episode.end.isoformat(),
        expected_rules=list(episode.expected_rules),
        caught=first_alert is not None,
        rules_caught=sorted({prefix for _, prefix in alerting}),
        readings_to_first_alert=to_alert,
        readings_to_first_out_of_band=to_out,
        within_one=to_alert is not None and to_out is not None and to_alert - to_out <= TARGET_WITHIN,
    )


def episode_figures(results: list[EpisodeResult]) -> dict[str, Any]:
    counts = [r.readings_to_first_alert for r in results if r.readings_to_first_alert is not None]
    return {
        "episodes": len(results),
        "caught": sum(r.caught for r in results),
        "caught_within_one": sum(r.within_one for r in results),
        "every_expected_rule": sum(set(r.rules_caught) == set(r.expected_rules) for r in results),
        "readings_to_first_alert_median": statistics.median(counts) if counts else None,
        "readings_to_first_alert_max": max(counts) if counts else None,
    }


@dataclass
class Figures:
    """One row of the table: a sub-cohort (or all), its episodes and its false alerts."""

    patients: int = 0
    episodes: int = 0
    caught: int = 0
    caught_within_one: int = 0
    every_expected_rule: int = 0  # episodes in which each of the expected rules alerted
    readings_to_first_alert_median: float | None = None
    readings_to_first_alert_max: int | None = None
    patient_weeks_outside: float = 0.0
    false_alerts: int = 0
    false_alerts_per_patient_week: float = 0.0
    every_episode_caught_within_one: bool = False
    false_alerts_below_target: bool = False
    met: bool = False

    @classmethod
    def of(cls, results: list[EpisodeResult], patients: int, weeks_outside: float, false_alerts: int) -> Figures:
        row = cls(
            patients=patients,
            **episode_figures(results),
            patient_weeks_outside=round(weeks_outside, 2),
            false_alerts=false_alerts,
            false_alerts_per_patient_week=false_alerts / weeks_outside if weeks_outside else 0.0,
        )
        row.every_episode_caught_within_one = row.caught_within_one == row.episodes
        row.false_alerts_below_target = row.false_alerts_per_patient_week < TARGET_FALSE_PER_PATIENT_WEEK
        row.met = row.every_episode_caught_within_one and row.false_alerts_below_target
        return row


def inside(moment: datetime, episodes: Iterable[Episode]) -> bool:
    return any(e.covers(moment) for e in episodes)


def time_outside(episodes: list[Episode], start: datetime, end: datetime) -> timedelta:
    """The patient's time in [start, end) outside these (non-overlapping) episodes."""
    covered = sum((min(e.end, end) - max(e.start, start) for e in episodes if e.end > start and e.start < end),
                  timedelta())  # fmt: skip
    return (end - start) - covered


@dataclass
class Measurement:
    total: Figures
    conditions: dict[str, Figures]
    kinds: dict[str, dict[str, Any]]
    episodes: list[EpisodeResult]
    missing: dict[str, Any]
    false_alerts: list[dict[str, Any]]


def measure(cohort: list[SimPatient], ids: dict[str, str], timeline: Timeline, stored: Database) -> Measurement:
    clinical: dict[str, list[Episode]] = defaultdict(list)
    for episode in timeline.clinical_episodes():
        clinical[episode.patient].append(episode)
    results = {key: [judge_episode(e, ids[key], stored) for e in eps] for key, eps in clinical.items()}
    weeks = {p.key: time_outside(clinical[p.key], timeline.start, timeline.end) / WEEK for p in cohort}
    false_alerts: dict[str, list[StoredAlert]] = {
        p.key: [
            a
            for a in stored.alerts.get(ids[p.key], [])
            if a.rule.startswith(("threshold:", "trend:")) and not inside(a.opened_on, clinical[p.key])
        ]
        for p in cohort
    }

    def row(patients: list[SimPatient]) -> Figures:
        return Figures.of(
            [r for p in patients for r in results.get(p.key, [])],
            len(patients),
            sum(weeks[p.key] for p in patients),
            sum(len(false_alerts[p.key]) for p in patients),
        )

    return Measurement(
        total=row(cohort),
        conditions={c: row([p for p in cohort if c in p.conditions]) for c in CONDITIONS},
        kinds={k: episode_figures([r for rs in results.values() for r in rs if r.kind == k]) for k in CLINICAL_KINDS},
        episodes=[r for key in sorted(results) for r in results[key]],
        missing=measure_missing(cohort, ids, timeline, stored, len(cohort) * (timeline.end - timeline.start) / WEEK),
        false_alerts=[
            {"patient": key, "rule": a.rule, "reading_at": a.opened_on.isoformat(), "conditions": conditions}
            for key, conditions in ((p.key, list(p.conditions)) for p in cohort)
            for a in false_alerts[key]
        ],
    )


def measure_missing(
    cohort: list[SimPatient], ids: dict[str, str], timeline: Timeline, stored: Database, patient_weeks: float
) -> dict[str, Any]:
    """Missing-measurement alerts (opened at the simulated midnight of a check) against the
    missed days (expected) and the offline windows (allowed, not expected).

    A missed day is caught when a missing alert of the patient opened after the start of the
    run of consecutive days the patient missed and by the day's end: nothing arrives during the
    run, so that alert is still active (and no second one opens beside it)."""
    missed = sorted((e for e in timeline.episodes if e.kind == MISSED_DAY), key=lambda e: (e.patient, e.start))
    run_start: dict[int, datetime] = {}
    for number, day in enumerate(missed):
        before = missed[number - 1] if number else None
        joined = before is not None and before.patient == day.patient and before.end == day.start
        run_start[number] = run_start[number - 1] if joined else day.start
    offline = [e for e in timeline.episodes if e.kind == GATEWAY_OFFLINE]
    alerts = {p.key: [a for a in stored.alerts.get(ids[p.key], []) if a.rule.startswith("missing:")] for p in cohort}
    explained = {p.key: [e for e in missed + offline if e.patient == p.key] for p in cohort}
    unexplained = sum(1 for key, found in alerts.items() for a in found if not inside(a.opened_at, explained[key]))
    return {
        "missed_days": len(missed),
        "missed_days_caught": sum(
            1
            for number, e in enumerate(missed)
            if any(run_start[number] < a.opened_at <= e.end for a in alerts[e.patient])
        ),
        "offline_windows": len(offline),
        "offline_windows_seen": sum(1 for e in offline if any(e.covers(a.opened_at) for a in alerts[e.patient])),
        "alerts": sum(len(found) for found in alerts.values()),
        "alerts_outside_missed_days_and_offline": unexplained,
        "outside_per_patient_week": unexplained / patient_weeks if patient_weeks else 0.0,
    }


# --------------------------------------------------------------------------------------
# Baseline: the same batches through an echo instead of the worker
# --------------------------------------------------------------------------------------


def baseline_messages(timeline: Timeline, root: str) -> list[Any]:
    """The timeline's readings as the backfill sends them: per simulated day, a batch per gateway."""
    messages: list[Any] = []
    by_day: dict[tuple[Any, str], list[dict[str, Any]]] = defaultdict(list)
    for reading in timeline.readings:
        by_day[(reading.time.astimezone(OSLO).date(), reading.gateway_id)].append(reading.to_contract())
    for (_, gateway), bodies in by_day.items():
        for payload, members in batches(bodies, datetime.now(OSLO).isoformat(timespec="seconds")):
            messages.append(bi.Message(f"{root}/gateways/{gateway}/measurements", members[0]["id"], payload,
                                       len(members)))  # fmt: skip
    return messages


def broker_round_trip(timeline: Timeline, run_id: str, window: int) -> Any:
    echo_root = f"bench-{run_id}-echo/rpm/v1"
    messages = baseline_messages(timeline, echo_root)
    with bi.echo_process(echo_root):
        gateways = bi.Gateways(echo_root, "clinical-echo")
        gateways.connect()
        try:
            return gateways.run("broker round trip", messages, window=window, timeout=600)
        finally:
            gateways.close()


# --------------------------------------------------------------------------------------
# Report
# --------------------------------------------------------------------------------------


def verdict(ok: bool) -> str:
    return "met" if ok else "NOT MET"


def table(rows: Sequence[tuple[str, ...]]) -> str:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join(
        "  ".join(cell.ljust(w) if i == 0 else cell.rjust(w) for i, (cell, w) in enumerate(zip(r, widths, strict=True)))
        for r in rows
    )


def median_max(median: float | None, largest: int | None) -> str:
    return "-" if median is None else f"{median:g} / {largest}"


def report(args: argparse.Namespace, run: dict[str, Any], result: Measurement) -> str:
    lines = [
        f"Clinical yardstick: {args.patients} patients, {args.days} simulated days "
        f"({run['start'][:10]} to {run['end'][:10]}), seed {args.seed}; the real worker and rules",
        "",
    ]
    header = ("condition", "patients", "episodes", "caught", "within 1 reading", "readings to 1st alert (median/max)",
              "false alerts", "per patient-week", "targets")  # fmt: skip
    rows = [header]
    for name, row in [*result.conditions.items(), ("total", result.total)]:
        rows.append(
            (
                name,
                str(row.patients),
                str(row.episodes),
                str(row.caught),
                str(row.caught_within_one),
                median_max(row.readings_to_first_alert_median, row.readings_to_first_alert_max),
                str(row.false_alerts),
                f"{row.false_alerts_per_patient_week:.3f}",
                verdict(row.met),
            )
        )
    lines += [table(rows), ""]
    lines.append(
        f"Targets: every episode caught within {TARGET_WITHIN} reading of its first out-of-band value; "
        f"< {TARGET_FALSE_PER_PATIENT_WEEK} false alerts per patient-week outside episodes "
        "(threshold and trend alerts opened on a reading outside every clinical episode of the patient)."
    )
    lines.append(
        f"Total: episodes caught within one reading {result.total.caught_within_one}/{result.total.episodes} "
        f"({verdict(result.total.every_episode_caught_within_one)}); false alerts "
        f"{result.total.false_alerts_per_patient_week:.3f} per patient-week over "
        f"{result.total.patient_weeks_outside:,.0f} patient-weeks outside episodes "
        f"({verdict(result.total.false_alerts_below_target)})."
    )
    lines.append("")
    kinds = [("episode kind", "episodes", "caught", "within 1 reading", "readings to 1st alert (median/max)",
              "every expected rule alerted")]  # fmt: skip
    kinds += [
        (kind, str(row["episodes"]), str(row["caught"]), str(row["caught_within_one"]),
         median_max(row["readings_to_first_alert_median"], row["readings_to_first_alert_max"]),
         str(row["every_expected_rule"]))
        for kind, row in result.kinds.items()
    ]  # fmt: skip
    lines += [table(kinds), ""]
    late = [e for e in result.episodes if not e.within_one]
    for episode in late:
        lines.append(
            f"  not caught within one reading: {episode.patient} {episode.kind} {episode.start[:16]} - "
            f"{episode.end[:16]}: rules caught {episode.rules_caught or 'none'}, readings to the first alert "
            f"{episode.readings_to_first_alert}, to the first out-of-band value {episode.readings_to_first_out_of_band}"
        )
    missing = result.missing
    lines.append(
        f"Missing measurements (checked at each simulated midnight; no target): missed days caught "
        f"{missing['missed_days_caught']}/{missing['missed_days']}; gateway-offline windows seen "
        f"{missing['offline_windows_seen']}/{missing['offline_windows']} (not expected at a midnight check); "
        f"missing alerts outside missed days and offline windows {missing['alerts_outside_missed_days_and_offline']} "
        f"({missing['outside_per_patient_week']:.3f} per patient-week)."
    )
    lines.append("")
    b = run["baseline"]
    lines.append(
        f"Run time {run['seconds']:.0f} s; publishing {run['readings']:,} readings through the worker with the "
        f"day-end work took {run['backfill_seconds']:.1f} s ({run['readings_per_s']:,.0f} readings/s; nurse "
        f"{run['nurse_seconds']:.1f} s, missing check {run['missing_seconds']:.1f} s)."
    )
    if b["readings_per_s"]:
        lines.append(
            f"Baseline, same run: the same {b['messages']:,} daily batches answered by a broker echo instead of the "
            f"worker: {b['seconds']:.1f} s ({b['readings_per_s']:,.0f} readings/s); ratio worker/echo "
            f"{run['readings_per_s'] / b['readings_per_s']:.2f}."
        )
    else:
        lines.append(f"Baseline, same run: the broker echo failed: {b['error']}")
    lines.append(f"Gateways: {run['gateways']}")
    lines.append("")
    lines += [f"Assumption: {text}" for text in ASSUMPTIONS]
    return "\n".join(lines)


# --------------------------------------------------------------------------------------
# Main
# --------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--patients", type=int, default=200, help="cohort size (default 200)")
    parser.add_argument("--days", type=int, default=90, help="simulated days, ending 2026-11-01 (default 90)")
    parser.add_argument("--seed", type=int, default=1, help="the simulator's seed (default 1)")
    parser.add_argument("--keep", action="store_true", help="keep the scratch database (its name is printed)")
    parser.add_argument("--json", type=Path, help="write the figures to this file")
    parser.add_argument("--settle-timeout", type=float, default=120.0, help="seconds a day's readings may take")
    args = parser.parse_args(argv)
    if args.patients < 1:
        parser.error("--patients: at least 1")
    if not 2 <= args.days <= 3650:
        parser.error("--days: 2 to 3650")
    return args


def episode_counts(timeline: Timeline) -> dict[str, int]:
    counts = Counter(e.kind for e in timeline.episodes)
    return {kind: counts[kind] for kind in (*CLINICAL_KINDS, MISSED_DAY, GATEWAY_OFFLINE)}


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)

    def terminate(signum: int, frame: Any) -> None:
        raise SystemExit(128 + signum)  # run the clean-up below

    signal.signal(signal.SIGTERM, terminate)
    began = time.monotonic()
    run_id = uuid.uuid4().hex[:10]
    start = END - timedelta(days=args.days)
    cohort = make_cohort(args.patients, args.seed, serial_prefix="CLIN")
    timeline = simulate(cohort, start, END, args.seed)
    counts = episode_counts(timeline)
    log(f"cohort of {len(cohort)} (seed {args.seed}), {start:%Y-%m-%d} to {END:%Y-%m-%d}: {len(timeline.readings):,} "
        f"readings, {len(timeline.faults)} bad messages and duplicates; episodes {counts}")  # fmt: skip

    setup = bi.Setup(f"rpm_bench_clinical_{run_id}", existing=False, names=bi.Names(), gateway_ids=[])
    tmp = Path(tempfile.mkdtemp(prefix="rpm-bench-clinical-"))
    auth = {"RPM_DEV_AUTH": "true", "RPM_DEV_KEY_PATH": str(tmp / "dev-key.pem")}
    root = f"bench-{run_id}/rpm/v1"
    api: Any = None
    worker: Any = None
    fleet: Fleet | None = None
    nurse: Nurse | None = None
    missing: MissingCheck | None = None
    exits: dict[str, int | None] = {}
    finished = False  # the logs in `tmp` are kept when the run breaks off
    try:
        bi.create_database(setup)
        # No start period: the yardstick measures the bands in force from the first day (with one,
        # the first two weeks would alert only on red edges, by design).
        api = ba.Api(bi.rpm_env(setup.database, {**auth, "RPM_START_PERIOD_DAYS": "0"}), tmp / "api.log")
        api.wait_ready()
        token = bi.run_rpm(
            ["token", "--sub", "bench-nurse", "--org", bi.ORGNR, "--role", "admin", "--role", "nurse", "--ttl", TTL],
            bi.rpm_env(setup.database, auth),
        ).splitlines()[-1]
        enrolled_on = (start - timedelta(days=1)).date()
        enrol_began = time.monotonic()
        ids = enrol_sync(api.base, token, cohort, [bi.ORGNR], enrolled_on)
        set_back_enrolment(setup.database, ids.values(), start - timedelta(days=1))
        log(f"enrolled {len(ids)} patients through the API in {time.monotonic() - enrol_began:.1f} s")

        client_id = f"rpm-bench-clinical-{run_id}"
        worker = bi.Worker(setup.database, client_id, f"bench-clinical-{run_id}", root, tmp / "worker.log",
                           {**auth, "RPM_MISSING_GRACE_HOURS": "100000"})  # fmt: skip
        worker.wait_connected()
        fleet = Fleet.from_url(f"mqtt://{bi.BROKER_HOST}:{bi.BROKER_PORT}", gateway_ids(cohort), topic_root=root,
                               client_id_prefix=unique_client_prefix())  # fmt: skip
        fleet.connect()
        nurse, missing = Nurse(api.base, token), MissingCheck(setup.database)
        log(f"publishing {args.days} days, a day per step (worker log {worker.log_path})")
        stats = backfill(fleet, timeline, settle_timeout=args.settle_timeout,
                         progress=day_end_work(nurse, missing, start))  # fmt: skip
        if worker.problem():
            raise RuntimeError(f"{worker.problem()}:\n{worker.log_text()[-3000:]}")
        log(f"published in {stats.seconds:.1f} s: {stats.gateways.summary()}")
        fleet.close(forget_sessions=True)
        fleet = None
        exits["worker"], exits["API"] = worker.stop(), api.stop()

        log("baseline: the same batches through a broker echo")
        echo = broker_round_trip(timeline, run_id, window=len(set(gateway_ids(cohort))))
        stored = load(setup.database, {c for e in timeline.clinical_episodes() for c in codes_of(e)} | {WEIGHT})
        result = measure(cohort, ids, timeline, stored)
        run = {
            "patients": args.patients,
            "days": args.days,
            "seed": args.seed,
            "start": start.isoformat(),
            "end": END.isoformat(),
            "database": setup.database,
            "episode_counts": counts,
            "seconds": time.monotonic() - began,
            "readings": stats.readings,
            "observations_stored": stored.observations,
            "backfill_seconds": stats.seconds,
            "readings_per_s": stats.readings / stats.seconds if stats.seconds else 0.0,
            "nurse_seconds": nurse.seconds,
            "nurse_resolved": nurse.resolved,
            "missing_seconds": missing.seconds,
            "gateways": stats.gateways.summary(),
            "unexpected_answers": len(stats.gateways.unexpected),
            "exits": exits,
            "baseline": {
                "messages": echo.messages,
                "readings": echo.readings,
                "seconds": echo.elapsed,
                "readings_per_s": echo.readings_per_s if echo.completed else 0.0,
                "error": echo.error,
            },
        }
        print(report(args, run, result), flush=True)
        clean = not run["unexpected_answers"] and all(code == 0 for code in exits.values())
        if not clean:
            print(f"The run was not clean (answers other than expected: {run['unexpected_answers']}, exits {exits}): "
                  "the figures cannot be trusted.", flush=True)  # fmt: skip
        met = all(row.met for row in [result.total, *result.conditions.values()]) and result.total.episodes > 0
        if args.json:
            figures = {
                "run": run,
                "assumptions": list(ASSUMPTIONS),
                "targets": {
                    "within_readings": TARGET_WITHIN,
                    "false_alerts_per_patient_week_below": TARGET_FALSE_PER_PATIENT_WEEK,
                    "met": met and clean,
                },
                "total": asdict(result.total),
                "conditions": {c: asdict(row) for c, row in result.conditions.items()},
                "kinds": result.kinds,
                "missing": result.missing,
                "episodes": [asdict(e) for e in result.episodes],
                "false_alerts": result.false_alerts,
            }
            args.json.write_text(json.dumps(figures, indent=2, default=str) + "\n", encoding="utf-8")
        finished = True
        return 0 if met and clean else 1
    finally:
        if fleet is not None:
            fleet.close(forget_sessions=True)
        try:
            clear_statuses(root, gateway_ids(cohort))
        except Exception as error:  # tidiness only: it must not hide the run's own outcome
            log(f"could not remove the retained gateway statuses under {root}: {error!r}")
        if nurse is not None:
            nurse.close()
        if missing is not None:
            missing.close()
        for name, process in (("worker", worker), ("API", api)):
            if process is not None and process.process.poll() is None:
                process.stop()
            if process is not None and process.process.returncode not in (0, None):
                tail = process.log_text() if name == "worker" else process.log_tail()
                log(f"{name} log tail:\n{tail[-2000:]}")
        if worker is not None:
            bi.forget_broker_session(worker.client_id)
        if setup.created and not args.keep:
            bi.drop_database(setup.database)
        elif setup.created:
            log(f"kept the database {setup.database}")
        if finished:
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            log(f"logs kept in {tmp}")


if __name__ == "__main__":
    sys.exit(main())
