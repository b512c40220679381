"""Running the simulator: enrolment through the staff API, history, live publishing, `rpm simulate`.

In-process use (the demo, the clinical yardstick):

    cohort = make_cohort(200, seed=7, serial_prefix="BENCH")
    patient_ids = enrol_sync(api_url, admin_token, cohort, [orgnr], enrolled_on)
    timeline = simulate(cohort, start, end, seed=7)
    with Fleet.from_url(mqtt_url, gateway_ids(cohort), topic_root=root) as fleet:
        stats = backfill(fleet, timeline)  # day by day, each day acknowledged before the next
        run_live(fleet, cohort, seed=7, speed=60, stop=stop_event)  # until stop is set
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import socket
import threading
import time
from collections.abc import Callable, Collection, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from typing import IO, Any

import httpx

from rpm.norway import OSLO
from rpm.simulator.cohort import (
    SimPatient,
    assignment,
    device_registration,
    enrolment,
    gateway_registration,
    gateways_of,
    make_cohort,
)
from rpm.simulator.gateway import Fleet, GatewayStats, mqtt_address
from rpm.simulator.physiology import (
    QUICK_KINDS,
    Episode,
    SimReading,
    Timeline,
    contract_time,
    episode_kinds,
    simulate,
)

log = logging.getLogger("rpm.simulator")

FNR_SYSTEM = "urn:oid:2.16.578.1.12.4.1.4.1"
API_PREFIX = "/api/v1"


def gateway_ids(cohort: list[SimPatient]) -> list[str]:
    return list(gateways_of(cohort))


def demo_cohort(size: int, seed: int) -> list[SimPatient]:
    return make_cohort(size, seed, serial_prefix="DEMO")


# -- enrolment through the staff API -------------------------------------------------------


class EnrolmentError(RuntimeError):
    """The staff API refused something the cohort needs; the message says what and why."""


def _roots(api_url: str) -> tuple[str, str]:
    """The JSON API root and the FHIR root, from either the service's address or its /api/v1."""
    base = api_url.rstrip("/").removesuffix(API_PREFIX)
    return base + API_PREFIX, base + "/fhir"


async def enrol(
    api_url: str,
    token: str,
    cohort: list[SimPatient],
    orgnrs: list[str],
    enrolled_on: date,
    *,
    concurrency: int = 8,
) -> dict[str, str]:
    """Enrol the cohort (patients, devices from the start of `enrolled_on`, gateways) with an
    admin's token of the first organisation; returns patient key -> patient id. Idempotent:
    what exists already (409) is looked up and kept."""
    api, fhir = _roots(api_url)
    headers = {"Authorization": f"Bearer {token}"}
    assigned_from = datetime.combine(enrolled_on, datetime.min.time(), tzinfo=OSLO)
    limit = asyncio.Semaphore(concurrency)
    async with httpx.AsyncClient(headers=headers, timeout=30) as http:
        for gateway_id, patients in gateways_of(cohort).items():
            response = await http.post(f"{api}/gateways", json=gateway_registration(gateway_id, patients))
            _expect(response, {201, 409}, f"registering gateway {gateway_id}")

        async def one(patient: SimPatient) -> tuple[str, str]:
            async with limit:
                return patient.key, await _enrol_patient(http, api, fhir, patient, orgnrs, enrolled_on, assigned_from)

        return dict(await asyncio.gather(*(one(p) for p in cohort)))


def enrol_sync(
    api_url: str, token: str, cohort: list[SimPatient], orgnrs: list[str], enrolled_on: date
) -> dict[str, str]:
    return asyncio.run(enrol(api_url, token, cohort, orgnrs, enrolled_on))


async def _enrol_patient(
    http: httpx.AsyncClient,
    api: str,
    fhir: str,
    patient: SimPatient,
    orgnrs: list[str],
    enrolled_on: date,
    assigned_from: datetime,
) -> str:
    response = await http.post(f"{api}/patients", json=enrolment(patient, orgnrs, enrolled_on))
    _expect(response, {201, 409}, f"enrolling {patient.key}")
    if response.status_code == 201:
        patient_id = str(response.json()["id"])
    else:
        found = await http.get(f"{fhir}/Patient", params={"identifier": f"{FNR_SYSTEM}|{patient.identifier}"})
        _expect(found, {200}, f"looking up {patient.key}, enrolled before")
        entries = found.json().get("entry") or []
        if not entries:
            raise EnrolmentError(
                f"{patient.key} ({patient.identifier}) is enrolled already, but not followed by this organisation"
            )
        patient_id = str(entries[0]["resource"]["id"])
    for device in patient.devices:
        response = await http.post(f"{api}/devices", json=device_registration(device))
        _expect(response, {201, 409}, f"registering device {device.serial}")
        response = await http.put(
            f"{api}/devices/{device.serial}/assignment", json=assignment(patient_id, assigned_from)
        )
        if response.status_code == 409:  # assigned before: fine if to this patient
            current = await http.get(f"{api}/devices/{device.serial}")
            _expect(current, {200}, f"reading device {device.serial}")
            if not any(a.get("patient") == patient_id for a in current.json().get("assignments", [])):
                raise EnrolmentError(f"device {device.serial} is assigned to another patient than {patient.key}")
        else:
            _expect(response, {200}, f"assigning device {device.serial} to {patient.key}")
    return patient_id


def _expect(response: httpx.Response, statuses: set[int], what: str) -> None:
    if response.status_code not in statuses:
        raise EnrolmentError(f"{what}: {response.request.method} {response.request.url} answered "
                             f"{response.status_code}: {response.text[:500]}")  # fmt: skip


# -- history ---------------------------------------------------------------------------------


class BackfillStalled(RuntimeError):
    """Readings got no ack in time: no ingest worker listens on this broker and topic root,
    or it cannot keep up."""


@dataclass
class BackfillStats:
    steps: int = 0
    readings: int = 0
    faults: int = 0
    seconds: float = 0.0
    gateways: GatewayStats = field(default_factory=GatewayStats)
    complete: bool = False  # False when stopped before the end


def backfill(
    fleet: Fleet,
    timeline: Timeline,
    until: datetime | None = None,
    *,
    step: timedelta = timedelta(days=1),
    settle_timeout: float = 120.0,
    stop: threading.Event | None = None,
    progress: Callable[[datetime, GatewayStats], None] | None = None,
) -> BackfillStats:
    """Publish the timeline up to `until` with the readings' own (historical) times, as fast as
    acks allow: step by step (a day by default), each step's readings acknowledged before the
    next step is sent, so the rules see each patient's readings in time order. A hub offline
    for a day keeps that day's readings and sends them as one batch when it returns. The
    deliberate bad messages and duplicates of a step go out with the next step, once the
    readings they repeat are stored.

    Raises BackfillStalled when a step is not acknowledged within `settle_timeout` seconds."""
    began = time.monotonic()
    until = min(until or timeline.end, timeline.end)
    stats = BackfillStats()
    readings = [r for r in timeline.readings if r.time < until]
    faults = [f for f in timeline.faults if f.time < until]
    transitions = sorted(
        [(w.start, 1, w.gateway_id or "") for w in timeline.offline_windows() if w.start < until]
        + [(w.end, 0, w.gateway_id or "") for w in timeline.offline_windows() if w.end < until]
    )
    next_reading = next_fault = next_transition = 0
    cursor = timeline.start
    while cursor < until:
        if stop is not None and stop.is_set():
            break
        step_end = min(cursor + step, until)
        while next_fault < len(faults) and faults[next_fault].time < cursor:  # the step before's
            fleet.send_fault(faults[next_fault])
            stats.faults += 1
            next_fault += 1
        events: list[tuple[datetime, int, Any]] = []
        while next_reading < len(readings) and readings[next_reading].time < step_end:
            events.append((readings[next_reading].time, 2, readings[next_reading]))
            next_reading += 1
        while next_transition < len(transitions) and transitions[next_transition][0] < step_end:
            moment, going_offline, gateway_id = transitions[next_transition]
            events.append((moment, going_offline, gateway_id))
            next_transition += 1
        events.sort(key=lambda e: (e[0], e[1]))
        _publish_in_order(fleet, events, settle_timeout)
        stats.readings += sum(1 for e in events if e[1] == 2)
        _settle(fleet, settle_timeout, stop, f"the readings before {step_end.isoformat()}")
        stats.steps += 1
        cursor = step_end
        if progress is not None:
            progress(cursor, fleet.stats())
    else:
        for gateway in fleet.gateways.values():  # an offline window running past `until`
            if not gateway.online:
                gateway.come_online()
        for fault in faults[next_fault:]:
            fleet.send_fault(fault)
            stats.faults += 1
        _settle(fleet, settle_timeout, stop, "the last readings", include_offline=True)
        stats.complete = True
    stats.seconds = time.monotonic() - began
    stats.gateways = fleet.stats()
    return stats


def _publish_in_order(fleet: Fleet, events: list[tuple[datetime, int, Any]], settle_timeout: float | None) -> None:
    """Readings batched per gateway; a gateway going offline or coming back splits its batch.

    With `settle_timeout`, a gateway's readings are acknowledged before it goes offline: in the
    compressed time of a backfill the hub was online long enough for that. (Acks that reach a
    gateway through its session after it returns are tested on their own; some brokers, such
    as the demo's embedded one, drop them, and the resend would then cost a timeout per hub.)"""
    waiting: dict[str, list[SimReading]] = {}
    for _, kind, item in events:
        if kind == 2:
            waiting.setdefault(item.gateway_id, []).append(item)
            continue
        gateway = fleet[item]
        gateway.send(waiting.pop(item, []))
        if kind == 1:
            if settle_timeout is not None and not gateway.wait_until_settled(settle_timeout):
                raise BackfillStalled(
                    f"gateway {item}: {gateway.pending()} readings have no ack after {settle_timeout:.0f} s: "
                    "is an ingest worker subscribed to this broker and topic root?"
                )
            gateway.go_offline()
        else:
            gateway.come_online()
    for gateway_id, group in waiting.items():
        fleet[gateway_id].send(group)


def _settle(
    fleet: Fleet, timeout: float, stop: threading.Event | None, what: str, *, include_offline: bool = False
) -> None:
    if fleet.wait_until_settled(timeout, include_offline=include_offline, stop=stop):
        return
    if stop is not None and stop.is_set():
        return
    raise BackfillStalled(
        f"{fleet.pending()} readings of {what} have no ack after {timeout:.0f} s: is an ingest worker "
        "subscribed to this broker and topic root?"
    )


# -- live -------------------------------------------------------------------------------------


@dataclass
class LiveEpisode:
    """An episode of a live run, with the wall-clock times its readings were stamped with."""

    episode: Episode
    start: datetime  # wall clock
    end: datetime


@dataclass
class LiveResult:
    readings: int = 0
    faults: int = 0
    episodes: list[LiveEpisode] = field(default_factory=list)
    gateways: GatewayStats = field(default_factory=GatewayStats)


def default_live_starters(cohort: list[SimPatient]) -> list[str]:
    """One patient for each kind of episode the cohort can show, each starting at once: the
    demo's worklist gets its alerts within a minute."""
    chosen: list[str] = []
    for kind in QUICK_KINDS:
        for patient in cohort:
            kinds = episode_kinds(patient)
            # An episode at the start is the patient's quickest kind (see physiology).
            if kinds and next(k for k in QUICK_KINDS if k in kinds) == kind and patient.key not in chosen:
                chosen.append(patient.key)
                break
    return chosen


def run_live(
    fleet: Fleet,
    cohort: list[SimPatient],
    seed: int,
    speed: float,
    stop: threading.Event,
    *,
    start: datetime | None = None,
    duration: float | None = None,
    episode_at_start: Collection[str] | None = None,
    episodes_per_patient_year: float = 4.0,
    faults: bool = True,
    window: timedelta = timedelta(days=30),
    on_episode: Callable[[LiveEpisode], None] | None = None,
) -> LiveResult:
    """Publish the cohort's readings as they happen, simulated time running `speed` times faster
    than the wall clock from `start` (default now), until `stop` is set or `duration` seconds pass.

    Readings are stamped with the wall-clock time at which they are taken, so the backend takes
    them as current; their values follow the accelerated course. Ids carry a tag of this run, so
    a second run of the same seed is not answered `duplicate`. `episode_at_start`: patient keys
    whose first episode begins at once (default: `default_live_starters`)."""
    if speed <= 0:
        raise ValueError("speed: must be positive")
    wall_start = time.time()
    simulated_start = start or datetime.now(UTC)
    run_tag = f"L{int(wall_start):x}"
    deadline = None if duration is None else wall_start + duration
    starters = default_live_starters(cohort) if episode_at_start is None else list(episode_at_start)
    result = LiveResult()
    sent: dict[str, dict[str, Any]] = {}  # live reading bodies by simulated id, for duplicates

    def wall_of(moment: datetime) -> float:
        return wall_start + (moment - simulated_start).total_seconds() / speed

    def stamp_of(moment: datetime) -> datetime:
        return datetime.fromtimestamp(wall_of(moment), UTC)

    window_start, first = simulated_start, True
    while not stop.is_set():
        timeline = simulate(
            cohort,
            window_start,
            window_start + window,
            seed,
            episodes_per_patient_year=episodes_per_patient_year,
            faults=faults,
            episode_at_start=starters if first else (),
        )
        first = False
        for episode in timeline.episodes:
            live = LiveEpisode(episode, stamp_of(episode.start), stamp_of(episode.end))
            result.episodes.append(live)
            if on_episode is not None:
                on_episode(live)
        events = _live_events(timeline)
        index = 0
        while index < len(events) and not stop.is_set():
            wait = wall_of(events[index][0]) - time.time()
            if deadline is not None:
                wait = min(wait, deadline - time.time())
            if wait > 0 and stop.wait(wait):
                break
            now = time.time()
            if deadline is not None and now >= deadline:
                stop.set()
                break
            due = []
            while index < len(events) and wall_of(events[index][0]) <= now:
                due.append(events[index])
                index += 1
            stamp = datetime.now(UTC)
            _publish_live(fleet, due, stamp, run_tag, sent, result)
        window_start += window
    result.gateways = fleet.stats()
    return result


def _live_events(timeline: Timeline) -> list[tuple[datetime, int, Any]]:
    events: list[tuple[datetime, int, Any]] = [(r.time, 2, r) for r in timeline.readings]
    events += [(f.time, 3, f) for f in timeline.faults]
    for window in timeline.offline_windows():
        events += [(window.start, 1, window.gateway_id), (window.end, 0, window.gateway_id)]
    return sorted(events, key=lambda e: (e[0], e[1]))


def _publish_live(
    fleet: Fleet,
    due: list[tuple[datetime, int, Any]],
    stamp: datetime,
    run_tag: str,
    sent: dict[str, dict[str, Any]],
    result: LiveResult,
) -> None:
    readings: list[tuple[datetime, int, Any]] = []
    for moment, kind, item in due:
        if kind == 2:
            live = replace(item, id=f"{item.id}-{run_tag}", time=stamp)
            sent[item.id] = live.to_contract()
            readings.append((moment, 2, live))
            result.readings += 1
        elif kind == 3:
            _publish_in_order(fleet, readings, None)
            readings = []
            if item.kind == "duplicate":
                body = sent.get(item.reading_id)
                if body is not None:  # the original went out in this run
                    payload = json.dumps({"sent_at": contract_time(stamp), "readings": [body]}).encode()
                    fleet[item.gateway_id].send_raw(payload, "duplicate", body["id"])
                    result.faults += 1
            else:
                fleet.send_fault(item, stamp)
                result.faults += 1
        else:
            readings.append((moment, kind, item))
    _publish_in_order(fleet, readings, None)
    if len(sent) > 50_000:  # keep recent ones only: a duplicate follows its original within hours
        for key in list(sent)[:25_000]:
            del sent[key]


# -- for rpm demo ------------------------------------------------------------------------------


@contextmanager
def fleet(env: Mapping[str, str], cohort: list[SimPatient], **options: Any) -> Iterator[Fleet]:
    """The cohort's gateways, connected to the broker the RPM_ settings in `env` name."""
    host, port = mqtt_address(env.get("RPM_MQTT_URL", "mqtt://127.0.0.1:1883"))
    options.setdefault("topic_root", env.get("RPM_MQTT_TOPIC_ROOT", "rpm/v1"))
    options.setdefault("protocol", env.get("RPM_MQTT_PROTOCOL", "5"))
    gateways = Fleet(host, port, gateway_ids(cohort), **options)
    gateways.connect()
    try:
        yield gateways
    finally:
        gateways.close()


@dataclass
class History:
    timeline: Timeline
    stats: BackfillStats


def publish_history(
    fleet: Fleet,
    cohort: list[SimPatient],
    seed: int,
    start: datetime,
    end: datetime,
    stop: threading.Event | None = None,
    *,
    step: timedelta = timedelta(days=7),
) -> History:
    """The history of `cohort` between `start` and `end`, a week per step (the demo's year takes
    seconds; `backfill`'s default, a day per step, is for when alerts are measured)."""
    timeline = simulate(cohort, start, end, seed)
    stats = backfill(fleet, timeline, step=step, stop=stop)
    log.info("history published in %.1f s: %s", stats.seconds, stats.gateways.summary())
    return History(timeline, stats)


# -- ground truth -----------------------------------------------------------------------------


def ground_truth_line(
    episode: Episode, patient: SimPatient, *, phase: str, wall: tuple[datetime, datetime] | None = None
) -> str:
    """One JSON line: the patient (key and identity number), kind, start, end and the rule-key
    prefixes that should fire. Live episodes give wall-clock times, and the simulated ones."""
    start, end = wall or (episode.start, episode.end)
    line: dict[str, Any] = {
        "patient": episode.patient,
        "identifier": patient.identifier,
        "kind": episode.kind,
        "start": start.astimezone(OSLO).isoformat(),
        "end": end.astimezone(OSLO).isoformat(),
        "expected_rules": list(episode.expected_rules),
        "phase": phase,
    }
    if wall is not None:
        line["simulated_start"] = episode.start.astimezone(OSLO).isoformat()
        line["simulated_end"] = episode.end.astimezone(OSLO).isoformat()
    if episode.gateway_id:
        line["gateway"] = episode.gateway_id
    return json.dumps(line, ensure_ascii=False)


# -- rpm simulate --------------------------------------------------------------------------------


@dataclass
class SimulateOptions:
    mqtt_url: str
    topic_root: str = "rpm/v1"
    protocol: str = "5"
    patients: int = 25
    seed: int = 1
    days: float = 90.0
    speed: float = 60.0
    duration: float | None = None
    ground_truth: str | None = None
    enrol_api: str | None = None
    token: str | None = None
    organisations: list[str] = field(default_factory=list)
    serial_prefix: str = "SIM"
    resend_after: float = 60.0


def main(options: SimulateOptions) -> int:
    """`rpm simulate`: enrol (optionally), backfill the history, then publish live until Ctrl-C,
    SIGTERM or `duration`. Exit 0 when every reading was answered as expected, 1 otherwise, with
    a line that says why."""
    stop = threading.Event()
    logging.getLogger("httpx").setLevel(logging.WARNING)  # a line per enrolment request is noise here

    def request_stop(signum: int, frame: object) -> None:
        print("\nstopping: closing the gateways ...", flush=True)
        stop.set()
        signal.signal(signum, signal.SIG_DFL)  # a second Ctrl-C ends at once

    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)
    if options.speed <= 0 or options.patients < 0:
        print("rpm simulate: --speed must be positive and --patients not negative", flush=True)
        return 1
    cohort = make_cohort(options.patients, options.seed, serial_prefix=options.serial_prefix)
    now = datetime.now(UTC).replace(microsecond=0)
    history_start = now - timedelta(days=options.days)
    try:
        host, port = mqtt_address(options.mqtt_url)
        socket.create_connection((host, port), timeout=5).close()
    except (ValueError, OSError) as error:
        print(f"rpm simulate: cannot reach the MQTT broker at {options.mqtt_url}: {error}", flush=True)
        return 1
    if options.enrol_api:
        if not options.token or not options.organisations:
            print("rpm simulate: --enrol-api needs --token and --organisation", flush=True)
            return 1
        enrolled_on = (history_start.astimezone(OSLO) - timedelta(days=1)).date()
        try:
            ids = enrol_sync(options.enrol_api, options.token, cohort, options.organisations, enrolled_on)
        except (EnrolmentError, httpx.HTTPError) as error:
            print(f"rpm simulate: enrolment failed: {error}", flush=True)
            return 1
        print(f"enrolled {len(ids)} patients with their devices at {options.enrol_api}", flush=True)
    gateways = Fleet(
        host, port, gateway_ids(cohort),
        topic_root=options.topic_root, protocol=options.protocol, resend_after=options.resend_after,
    )  # fmt: skip
    status = 0
    truth = open(options.ground_truth, "w", encoding="utf-8") if options.ground_truth else None
    try:
        gateways.connect()
        print(f"{len(gateways.gateways)} gateways connected to {options.mqtt_url} under {options.topic_root}")
        _publish(gateways, cohort, options, history_start, now, stop, truth)
        # What is still without an ack gets a moment to settle before the gateways close.
        gateways.wait_until_settled(min(10.0, options.resend_after), include_offline=True)
    except (BackfillStalled, TimeoutError) as error:
        print(f"rpm simulate: {error}", flush=True)
        status = 1
    finally:
        gateways.close()
        if truth:
            truth.close()
    final = gateways.stats()
    print(final.summary(), flush=True)
    if final.unexpected:
        reasons = sorted({answer for _, _, answer in final.unexpected})
        print(f"rpm simulate: {len(final.unexpected)} answers other than expected ({', '.join(reasons)}); "
              f"first: {final.unexpected[0]}", flush=True)  # fmt: skip
        if "unknown_device" in reasons or "device_not_assigned" in reasons:
            print("rpm simulate: enrol the cohort first (--enrol-api URL --token TOKEN --organisation ORGNR)")
        status = status or 1
    return status


def _publish(
    gateways: Fleet,
    cohort: list[SimPatient],
    options: SimulateOptions,
    history_start: datetime,
    now: datetime,
    stop: threading.Event,
    truth: IO[str] | None,
) -> None:
    """The history, then live; each episode injected goes to the ground truth as it is planned."""
    by_key = {p.key: p for p in cohort}
    if options.days > 0 and not stop.is_set():
        timeline = simulate(cohort, history_start, now, options.seed)
        if truth:
            for episode in timeline.episodes:
                truth.write(ground_truth_line(episode, by_key[episode.patient], phase="history") + "\n")
            truth.flush()
        print(f"publishing {options.days:g} days of history: {len(timeline.readings)} readings ...", flush=True)
        stats = backfill(gateways, timeline, stop=stop, progress=_weekly_progress(history_start))
        print(f"history {'published' if stats.complete else 'stopped'} in {stats.seconds:.1f} s", flush=True)
    if stop.is_set() or (options.duration is not None and options.duration <= 0):
        return
    print(f"publishing live at {options.speed:g}x; Ctrl-C stops", flush=True)

    def write(live: LiveEpisode) -> None:
        if truth:
            patient = by_key[live.episode.patient]
            truth.write(ground_truth_line(live.episode, patient, phase="live", wall=(live.start, live.end)) + "\n")
            truth.flush()

    run_live(
        gateways, cohort, options.seed, options.speed, stop, start=now, duration=options.duration, on_episode=write
    )


def _weekly_progress(start: datetime) -> Callable[[datetime, GatewayStats], None]:
    def report(day: datetime, stats: GatewayStats) -> None:
        if (day - start).days % 7 == 0:
            print(f"  history up to {day.astimezone(OSLO):%Y-%m-%d}: {stats.summary()}", flush=True)

    return report


def options_from_env(**given: Any) -> SimulateOptions:
    """Defaults from the RPM_ settings where the command line gave none."""
    given.setdefault("mqtt_url", os.environ.get("RPM_MQTT_URL", "mqtt://127.0.0.1:1883"))
    given.setdefault("topic_root", os.environ.get("RPM_MQTT_TOPIC_ROOT", "rpm/v1"))
    given.setdefault("protocol", os.environ.get("RPM_MQTT_PROTOCOL", "5"))
    return SimulateOptions(**{k: v for k, v in given.items() if v is not None})
