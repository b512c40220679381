"""Alert benchmark: breaching reading -> MQTT -> `rpm ingest` (rules) -> NOTIFY -> API -> SSE.

Run from the project root:

    .venv/bin/python bench/alerts.py               # 200 breaches, 20,000 readings per throughput run
    .venv/bin/python bench/alerts.py --quick       # 50 breaches, 5,000 readings per throughput run
    .venv/bin/python bench/alerts.py --breaches 500

What one run does
-----------------
1. Creates a scratch database `rpm_bench_alerts_<random>` (`rpm migrate`, `rpm organisations add`)
   with `--patients` (300) patients, each with a care-team membership and one SpO2 device;
   every third patient has COPD. Starts `rpm api` on a free port (dev auth, a temporary dev
   key) and mints a nurse token with `rpm token`.
2. Rules cost: `rpm ingest` with RPM_RULES_ENABLED=false, then another worker (same database,
   fresh client id and share group) with RPM_RULES_ENABLED=true, `--rounds` (3) times: off, on,
   off, on. Each worker gets a warm-up and then `--readings` SpO2 readings in messages of 50
   (2% of them below the general red band, so the rules open alerts as on real data), at most
   200 un-acked messages, as fast as the acks come back. Figure: readings/s from first publish
   to last ack; ratio = best on run / best off run (best = least disturbed by the machine).
   Each off run precedes its on run, so the on runs work against the bigger table (the order
   does not favour the rules).
3. Alert latency, with the rules-on worker: an SSE client (httpx, background thread) holds
   `GET /api/v1/alerts/stream` open. Background load: 20 messages/s of 50 normal SpO2
   readings (1,000 readings/s), QoS 1, each checked for its ack from the worker. Breaches:
   `--breaches` single-reading messages, 10 per second, SpO2 83 % for a COPD patient (red,
   `threshold:59408-5:low`), round robin over the COPD patients, each with its own reading
   time (ms precision). The first breach per patient gives an `opened` event, later ones
   `changed`. An event is matched to its breach by (patient, rule, `last_reading_at`).
   Latency = publish call -> the event's `data:` line read from the stream.
4. Baseline, measured at the same time under the same load: every breach message is also
   published to a second topic root that a plain paho subscriber (its own network thread in
   this process, like the SSE reader) listens to: the broker's own publish-to-receive time.
5. SIGTERMs the worker(s) and the API (each must exit 0), removes the workers' broker sessions
   and drops the scratch database (also on failure or Ctrl-C).

How to read the output
----------------------
One table: `measured`, `baseline`, `target`, PASS/FAIL. Alert latency p50/p99/max should be read
against the broker baseline next to it: the difference is what the worker (batching, flush
interval, rules, commit), PostgreSQL NOTIFY and the API's fan-out add. Targets: alert p99 < 500
ms, no breach without its event, every message acked and accepted, rules on/off >= 0.80,
clean exits. Exit status 0 when every line passes, 1 otherwise. Everything talks to 127.0.0.1
only; every wait has a timeout.

Helpers (database setup, the worker subprocess, the windowed publisher) come from
bench/ingest.py, loaded by file path because `ingest` is also the project's own package.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import random
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from contextlib import suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import paho.mqtt.client as mqtt

_spec = importlib.util.spec_from_file_location("bench_ingest", Path(__file__).with_name("ingest.py"))
assert _spec is not None and _spec.loader is not None
bi = importlib.util.module_from_spec(_spec)
sys.modules["bench_ingest"] = bi  # dataclasses look their module up here
_spec.loader.exec_module(bi)

log = bi.log
HOST = "127.0.0.1"
COPD_SPO2_RED = 83  # copd: SpO2 red below 84
BREACH_RULE = "threshold:59408-5:low"
BREACHES_PER_S = 10
BACKGROUND_MSGS_PER_S, BACKGROUND_BATCH = 20, 50  # 1,000 readings/s
THROUGHPUT_BATCH, THROUGHPUT_WINDOW = 50, 200
TARGET_P99_MS = 500
TARGET_RULES_RATIO = 0.80
RULE_MODES = (("rules-off", "false"), ("rules-on", "true"))


# --------------------------------------------------------------------------------------
# Setup: database with SpO2 patients, the API, a token
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Patient:
    id: str
    copd: bool
    device: Any  # bench_ingest.BenchDevice


def setup_database(database: str, count: int, rng: random.Random) -> list[Patient]:
    """Like bench/ingest.py's, but every patient has one SpO2 device and every third has COPD."""
    org_id = bi.create_database(bi.Setup(database, existing=False, names=bi.Names(), gateway_ids=[]))
    enrolments = []
    for number, (identifier, born) in enumerate(bi.identity_numbers(count, rng)):
        device = bi.BenchDevice(f"BENCH-OX-{number:05d}", "spo2", "Nonin", "3230", rng.random())
        enrolments.append((identifier, born, ["copd"] if number % 3 == 0 else [], device))
    ids = bi.enrol(database, org_id, enrolments)
    patients = [
        Patient(str(patient_id), bool(conditions), device)
        for patient_id, (_, _, conditions, device) in zip(ids, enrolments, strict=True)
    ]
    log(f"database ready: {count} patients with SpO2 devices, {sum(p.copd for p in patients)} with COPD")
    return patients


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


class Api:
    """`rpm api` as a subprocess, its log in a file."""

    def __init__(self, env: dict[str, str], log_path: Path) -> None:
        self.port = free_port()
        self.base = f"http://{HOST}:{self.port}"
        self.log_path = log_path
        self._log = log_path.open("wb")
        self.process = subprocess.Popen(
            [str(bi.RPM), "api", "--host", HOST, "--port", str(self.port)],
            env=env,
            cwd=bi.PROJECT,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )

    def wait_ready(self, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the API exited with {self.process.returncode}:\n{self.log_tail()}")
            with suppress(httpx.HTTPError):
                if httpx.get(f"{self.base}/readyz", timeout=2).status_code == 200:
                    return
            time.sleep(0.2)
        raise TimeoutError(f"the API was not ready within {timeout}s:\n{self.log_tail()}")

    def log_tail(self) -> str:
        return self.log_path.read_text(errors="replace")[-3000:]

    def stop(self, timeout: float = 30) -> int | None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                log(f"the API did not exit within {timeout}s of SIGTERM; killing it")
                self.process.kill()
                self.process.wait(10)
                self._log.close()
                return None
        self._log.close()
        return self.process.returncode


# --------------------------------------------------------------------------------------
# Receivers: the SSE stream and the broker baseline subscriber (both in background threads)
# --------------------------------------------------------------------------------------


class SseReader:
    """Reads the alert stream; keeps the arrival time of the first event per (patient, rule, reading time)."""

    def __init__(self, url: str, token: str) -> None:
        self.url, self.token = url, token
        self.arrivals: dict[tuple[str, str, datetime], float] = {}
        self.kinds: dict[str, int] = {}
        self.events = 0
        self.connected = threading.Event()
        self.error: str | None = None
        self._stop = threading.Event()
        self._socket: socket.socket | None = None
        self._client = httpx.Client(timeout=httpx.Timeout(5.0, read=60.0))  # heartbeat every 15 s
        self._thread = threading.Thread(target=self._run, name="sse", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        headers = {"Authorization": f"Bearer {self.token}", "Accept": "text/event-stream"}
        try:
            with self._client.stream("GET", self.url, headers=headers) as response:
                if response.status_code != 200:
                    self.error = f"stream answered {response.status_code}: {response.read()[:300]!r}"
                    self.connected.set()
                    return
                stream = response.extensions.get("network_stream")
                self._socket = stream.get_extra_info("socket") if stream is not None else None
                kind, data = "", ""
                for line in response.iter_lines():
                    arrived = time.perf_counter()
                    if self._stop.is_set():
                        return
                    if line.startswith(": connected"):
                        self.connected.set()
                    elif line.startswith("event:"):
                        kind = line[6:].strip()
                    elif line.startswith("data:"):
                        data = line[5:].strip()
                        alert = json.loads(data)
                        self.events += 1
                        self.kinds[kind] = self.kinds.get(kind, 0) + 1
                        key = (str(alert["patient"]), str(alert["rule"]), parse_time(alert["last_reading_at"]))
                        self.arrivals.setdefault(key, arrived)
        except Exception as error:  # reported in the table, not raised in a thread
            if not self._stop.is_set():
                self.error = f"{type(error).__name__}: {error}"
        finally:
            self.connected.set()

    def close(self) -> None:
        """Stop reading: shut the socket down so the thread's blocking read returns at once."""
        self._stop.set()
        if self._socket is not None:
            with suppress(OSError):
                self._socket.shutdown(socket.SHUT_RDWR)
        self._thread.join(timeout=5)
        self._client.close()


def parse_time(text: str) -> datetime:
    return datetime.fromisoformat(text).astimezone(UTC)


class BrokerSubscriber:
    """A plain paho subscriber with its own network thread: receive time per reading id."""

    def __init__(self, root: str) -> None:
        self.arrivals: dict[str, float] = {}
        self.subscribed = threading.Event()
        self.client = bi.mqtt_client(f"bench-baseline-{uuid.uuid4().hex[:8]}")
        self.client.on_connect = lambda c, *a: c.subscribe(f"{root}/gateways/+/measurements", qos=1)
        self.client.on_subscribe = lambda *a: self.subscribed.set()
        self.client.on_message = self._on_message
        self.client.connect(bi.BROKER_HOST, bi.BROKER_PORT, keepalive=30, clean_start=True)
        self.client.loop_start()
        if not self.subscribed.wait(10):
            raise TimeoutError("the baseline subscriber did not subscribe within 10s")

    def _on_message(self, client: mqtt.Client, userdata: Any, message: mqtt.MQTTMessage) -> None:
        arrived = time.perf_counter()
        self.arrivals.setdefault(str(json.loads(message.payload)["id"]), arrived)

    def close(self) -> None:
        with suppress(Exception):
            self.client.disconnect()
        self.client.loop_stop()


# --------------------------------------------------------------------------------------
# The latency phase: background load + spaced breaches, one MQTT connection, own loop
# --------------------------------------------------------------------------------------


@dataclass
class Breach:
    reading_id: str
    key: tuple[str, str, datetime]
    sent: float = 0.0
    baseline_sent: float = 0.0


@dataclass
class LatencyRun:
    breaches: list[Breach] = field(default_factory=list)
    background_messages: int = 0
    background_readings: int = 0
    outstanding: dict[str, float] = field(default_factory=dict)  # first reading id -> publish time
    statuses: dict[str, int] = field(default_factory=dict)
    elapsed: float = 0.0
    error: str | None = None


def breach_message(root: str, number: int, patient: Patient) -> tuple[Any, Any, Breach]:
    """A red SpO2 reading for a COPD patient, timed now (ms), plus its copy for the baseline root."""
    now = datetime.now(UTC)
    reading_id = f"alert-{number:06d}"
    reading = {
        "id": reading_id,
        "device": {"serial": patient.device.serial},
        "type": "spo2",
        "time": now.astimezone(bi.CET).isoformat(timespec="milliseconds"),
        "value": COPD_SPO2_RED,
        "unit": "%",
    }
    payload = json.dumps(reading, separators=(",", ":")).encode()
    gateway = f"bench-alert-gw-{number % 5}"
    breach = Breach(reading_id, (patient.id, BREACH_RULE, now.replace(microsecond=now.microsecond // 1000 * 1000)))
    real = bi.Message(f"{root}/gateways/{gateway}/measurements", reading_id, payload, 1)
    copy = bi.Message(f"{root}-baseline/gateways/{gateway}/measurements", reading_id, payload, 1)
    return real, copy, breach


def run_latency(
    args: argparse.Namespace,
    root: str,
    patients: list[Patient],
    sse: SseReader,
    baseline: BrokerSubscriber,
    worker: Any,
    rng: random.Random,
) -> LatencyRun:
    run = LatencyRun()
    copd = [p for p in patients if p.copd]
    duration = 2 + args.breaches / BREACHES_PER_S + 1  # alone for 2 s, under the breaches, 1 s after
    background = bi.make_messages(
        "bg",
        int(duration * BACKGROUND_MSGS_PER_S + 1) * BACKGROUND_BATCH,
        BACKGROUND_BATCH,
        root=root,
        gateways=20,
        devices=[p.device for p in patients],
        rng=rng,
    )
    client = bi.mqtt_client(f"bench-alert-gw-{uuid.uuid4().hex[:8]}")
    subscribed = threading.Event()
    client.on_connect = lambda c, *a: c.subscribe(f"{root}/gateways/+/acks", qos=1)
    client.on_subscribe = lambda *a: subscribed.set()

    def on_ack(c: mqtt.Client, userdata: Any, message: mqtt.MQTTMessage) -> None:
        results = json.loads(message.payload)["results"]
        for result in results:
            run.statuses[str(result.get("status"))] = run.statuses.get(str(result.get("status")), 0) + 1
        if results:
            run.outstanding.pop(str(results[0].get("id")), None)

    client.on_message = on_ack
    client.connect(bi.BROKER_HOST, bi.BROKER_PORT, keepalive=30, clean_start=True, properties=bi.connect_properties())
    deadline = time.monotonic() + 10
    while not subscribed.is_set():
        if time.monotonic() > deadline:
            raise TimeoutError("no SUBACK for the acks topic within 10s")
        client.loop(0.05)

    def publish(message: Any, track: bool) -> float:
        sent = time.perf_counter()
        if track:
            run.outstanding[message.key] = sent
        info = client.publish(message.topic, message.payload, qos=1)
        if info.rc != mqtt.MQTT_ERR_SUCCESS:
            raise RuntimeError(f"publish failed: {mqtt.error_string(info.rc)}")
        return sent

    started = time.perf_counter()
    first_breach_at = started + 2.0  # background load runs alone for 2 s first
    bg_index = breach_index = 0
    last_event_wait = None  # once everything is published: the deadline for the last acks and events
    try:
        while True:
            now = time.perf_counter()
            # Background: message k is due at started + k / 20.
            while bg_index < len(background) and started + bg_index / BACKGROUND_MSGS_PER_S <= now:
                publish(background[bg_index], track=True)
                run.background_messages += 1
                run.background_readings += background[bg_index].readings
                bg_index += 1
            if breach_index < args.breaches and first_breach_at + breach_index / BREACHES_PER_S <= now:
                real, copy, breach = breach_message(root, breach_index, copd[breach_index % len(copd)])
                breach.sent = publish(real, track=True)
                breach.baseline_sent = publish(copy, track=False)
                run.breaches.append(breach)
                breach_index += 1
            if breach_index == args.breaches and bg_index == len(background) and last_event_wait is None:
                last_event_wait = now + args.settle
            done = (
                last_event_wait is not None and not run.outstanding and all(b.key in sse.arrivals for b in run.breaches)
            )
            if done or (last_event_wait is not None and now > last_event_wait):
                break
            if worker.problem():
                raise RuntimeError(worker.problem())
            if sse.error:
                raise RuntimeError(f"alert stream: {sse.error}")
            rc = client.loop(0.005)
            if rc != mqtt.MQTT_ERR_SUCCESS:
                raise RuntimeError(f"lost the broker: {mqtt.error_string(rc)}")
    except (RuntimeError, TimeoutError) as error:
        run.error = str(error)
    finally:
        run.elapsed = time.perf_counter() - started
        with suppress(Exception):
            client.disconnect()
            client.loop(0.1)
    return run


# --------------------------------------------------------------------------------------
# Report
# --------------------------------------------------------------------------------------


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def print_report(
    args: argparse.Namespace,
    run: LatencyRun,
    sse: SseReader,
    baseline: BrokerSubscriber,
    offs: list[Any],
    ons: list[Any],
    exits: dict[str, int | None],
) -> bool:
    off = max(offs, key=lambda stats: stats.readings_per_s)  # best of the rounds: the least disturbed
    on = max(ons, key=lambda stats: stats.readings_per_s)
    latencies = [(sse.arrivals[b.key] - b.sent) * 1000 for b in run.breaches if b.key in sse.arrivals]
    missing = sum(1 for b in run.breaches if b.key not in sse.arrivals)
    base = [
        (baseline.arrivals[b.reading_id] - b.baseline_sent) * 1000
        for b in run.breaches
        if b.reading_id in baseline.arrivals
    ]
    base_missing = len(run.breaches) - len(base)
    p50, p99, top = percentile(latencies, 0.5), percentile(latencies, 0.99), max(latencies, default=float("nan"))
    b50, b99, btop = percentile(base, 0.5), percentile(base, 0.99), max(base, default=float("nan"))
    complete = run.error is None and len(run.breaches) == args.breaches
    acked_ok = complete and not run.outstanding and set(run.statuses) == {"accepted"}
    ratio = on.readings_per_s / off.readings_per_s if off.readings_per_s else 0.0
    thr_ok = all(stats.completed for stats in [*offs, *ons])

    rows: list[tuple[str, str, str, str, str]] = [
        (
            f"alert latency p50 ({len(run.breaches)} breaches)",
            f"{p50:.1f} ms",
            f"{b50:.1f} ms broker",
            "-",
            "",
        ),
        (
            "alert latency p99",
            f"{p99:.1f} ms",
            f"{b99:.1f} ms broker",
            f"< {TARGET_P99_MS} ms",
            verdict(complete and p99 < TARGET_P99_MS),
        ),
        ("alert latency max", f"{top:.1f} ms", f"{btop:.1f} ms broker", "-", ""),
        (
            "breaches without event",
            f"{missing}/{len(run.breaches)}",
            f"{base_missing} not received by broker sub",
            "0",
            verdict(complete and missing == 0 and len(run.breaches) > 0),
        ),
        (
            "background + breach msgs acked",
            f"{run.background_messages + len(run.breaches) - len(run.outstanding):,}/"
            f"{run.background_messages + len(run.breaches):,} msgs",
            ", ".join(f"{k}={v:,}" for k, v in sorted(run.statuses.items())),
            "all, accepted",
            verdict(acked_ok),
        ),
        (
            f"ingest rules on, best of {len(ons)} ({on.readings:,} readings)",
            f"{on.readings_per_s:,.0f} readings/s",
            f"{off.readings_per_s:,.0f} readings/s rules off",
            "-",
            verdict(thr_ok),
        ),
        (
            "  every run, readings/s",
            "on " + " ".join(f"{stats.readings_per_s:,.0f}" for stats in ons),
            "off " + " ".join(f"{stats.readings_per_s:,.0f}" for stats in offs),
            "",
            "",
        ),
        (
            "rules on / off",
            f"{ratio:.2f}",
            "1.00",
            f">= {TARGET_RULES_RATIO:.2f}",
            verdict(thr_ok and ratio >= TARGET_RULES_RATIO),
        ),
    ]
    workers = {name: code for name, code in exits.items() if name.startswith("worker")}
    rows.append(
        (
            f"{len(workers)} workers exit on SIGTERM",
            " ".join(str(code) for code in workers.values()),
            "",
            "0 each",
            verdict(bool(workers) and all(code == 0 for code in workers.values())),
        )
    )
    api_exit = exits.get("API")
    rows.append(("API exit on SIGTERM", str(api_exit), "", "0", verdict(api_exit == 0)))
    header = ("line", "measured", "baseline", "target", "result")
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    print()
    print(
        f"Alert benchmark ({args.patients} patients, background {BACKGROUND_MSGS_PER_S} msgs/s x {BACKGROUND_BATCH} "
        f"normal readings = {BACKGROUND_MSGS_PER_S * BACKGROUND_BATCH:,} readings/s, breaches {BREACHES_PER_S}/s as "
        f"single-reading messages, throughput runs {THROUGHPUT_BATCH}/msg window {THROUGHPUT_WINDOW})"
    )
    print(" | ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)))
    print("-+-".join("-" * w for w in widths))
    for row in rows:
        print(" | ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)))
    print(
        f"stream: {sse.events:,} events ({', '.join(f'{k} {v}' for k, v in sorted(sse.kinds.items()))}); "
        f"latency phase {run.elapsed:.1f}s; best runs' publish-to-ack p50/p99 rules off "
        f"{off.latency(0.5) * 1000:.0f}/{off.latency(0.99) * 1000:.0f} ms, on "
        f"{on.latency(0.5) * 1000:.0f}/{on.latency(0.99) * 1000:.0f} ms"
    )
    for problem in (run.error, *(stats.error for stats in [*offs, *ons]), sse.error):
        if problem:
            print(f"  ! {problem}")
    ok = all(r[4] != "FAIL" for r in rows)
    print()
    print(f"overall: {verdict(ok)}")
    return ok


# --------------------------------------------------------------------------------------
# Main
# --------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="50 breaches, 5,000 readings per throughput run")
    parser.add_argument("--breaches", type=int, help="breaching readings, 10/s (default 200)")
    parser.add_argument("--readings", type=int, help="readings per throughput run (default 20,000)")
    parser.add_argument("--patients", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=3, help="rules off/on throughput pairs (default 3)")
    parser.add_argument("--settle", type=float, default=10.0, help="seconds to wait for the last events and acks")
    parser.add_argument("--timeout", type=float, default=300, help="seconds each throughput run may take")
    parser.add_argument("--seed", type=int, default=20261123)
    args = parser.parse_args(argv)
    args.breaches = args.breaches or (50 if args.quick else 200)
    args.readings = args.readings or (5_000 if args.quick else 20_000)
    if args.rounds < 1:
        parser.error("--rounds: at least 1")
    if args.patients < 3:
        parser.error("--patients: at least 3 (every third has COPD)")
    return args


def throughput(
    name: str, worker: Any, root: str, patients: list[Patient], args: argparse.Namespace, rng: random.Random
) -> Any:
    """Warm the worker up, then push `--readings` readings through it with a bounded window."""
    gateways = bi.Gateways(root, name)
    try:
        gateways.connect()
        devices = [p.device for p in patients]
        bi.warm_up(gateways, [worker], devices, root=root, gateway_count=20, rng=rng, names=bi.Names())
        messages = bi.make_messages(
            name, args.readings, THROUGHPUT_BATCH, root=root, gateways=20, devices=devices, rng=rng, breach_share=0.02
        )
        log(f"throughput {name}: {len(messages):,} messages, {args.readings:,} readings")
        stats = gateways.run(name, messages, window=THROUGHPUT_WINDOW, timeout=args.timeout, alive=worker.problem)
        log(f"  {stats.readings_per_s:,.0f} readings/s {stats.error or ''}")
        return stats
    finally:
        gateways.close()


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)

    def terminate(signum: int, frame: Any) -> None:
        raise SystemExit(128 + signum)  # run the clean-up below

    signal.signal(signal.SIGTERM, terminate)
    rng = random.Random(args.seed)
    run_id = uuid.uuid4().hex[:10]
    database = f"rpm_bench_alerts_{run_id}"
    root = f"bench-{run_id}/rpm/v1"
    tmp = Path(tempfile.mkdtemp(prefix="rpm-bench-alerts-"))
    auth = {"RPM_DEV_AUTH": "true", "RPM_DEV_KEY_PATH": str(tmp / "dev-key.pem")}
    workers: list[Any] = []
    api: Api | None = None
    sse: SseReader | None = None
    baseline: BrokerSubscriber | None = None
    exits: dict[str, int | None] = {}
    database_created = False
    try:
        patients = setup_database(database, args.patients, rng)
        database_created = True
        api = Api(bi.rpm_env(database, auth), tmp / "api.log")
        api.wait_ready()
        token = bi.run_rpm(
            ["token", "--sub", "bench", "--org", bi.ORGNR, "--role", "nurse"], bi.rpm_env(database, auth)
        ).splitlines()[-1]
        log(f"API up on port {api.port} (log {api.log_path})")

        # Rules cost: off, on, off, on, ... (the last on run's worker also serves the latency phase).
        results: dict[str, list[Any]] = {"rules-off": [], "rules-on": []}
        plan = [(mode, enabled, r) for r in range(1, args.rounds + 1) for mode, enabled in RULE_MODES]
        for mode, enabled, r in plan:
            label = f"{mode}-{r}"
            client_id = f"rpm-bench-alerts-{run_id}-{label}"
            worker = bi.Worker(
                database,
                client_id,
                f"bench-{run_id}-{label}",
                root,
                tmp / f"{client_id}.log",
                {**auth, "RPM_RULES_ENABLED": enabled},
            )
            workers.append(worker)
            log(f"worker {label} pid {worker.process.pid} (log {worker.log_path})")
            results[mode].append(throughput(label, worker, root, patients, args, rng))
            if (mode, enabled, r) != plan[-1]:
                exits[f"worker {label}"] = worker.stop()
                bi.forget_broker_session(client_id)  # nothing queued for it while the next one runs

        log("latency: opening the alert stream and the broker baseline subscriber")
        sse = SseReader(f"{api.base}/api/v1/alerts/stream", token)
        if not sse.connected.wait(15) or sse.error:
            raise RuntimeError(f"alert stream did not connect: {sse.error or 'timeout'}")
        baseline = BrokerSubscriber(f"{root}-baseline")
        log(f"latency: {args.breaches} breaches at {BREACHES_PER_S}/s over 1,000 readings/s of background load")
        run = run_latency(args, root, patients, sse, baseline, workers[-1], rng)
        log(f"  done in {run.elapsed:.1f}s {run.error or ''}")
        sse.close()
        baseline.close()

        log("stopping the worker and the API (SIGTERM)")
        exits[f"worker rules-on-{args.rounds}"] = workers[-1].stop()
        exits["API"] = api.stop()
        ok = print_report(args, run, sse, baseline, results["rules-off"], results["rules-on"], exits)
        return 0 if ok else 1
    finally:
        if sse is not None:
            sse.close()
        if baseline is not None:
            baseline.close()
        for worker in workers:
            if worker.process.poll() is None:
                worker.stop()
            bi.forget_broker_session(worker.client_id)
            if worker.process.returncode not in (0, None):
                log(f"worker log tail ({worker.log_path}):\n{worker.log_text()[-2000:]}")
        if api is not None:
            if api.process.poll() is None:
                api.stop()
            if api.process.returncode not in (0, None):
                log(f"API log tail ({api.log_path}):\n{api.log_tail()}")
        if database_created:
            bi.drop_database(database)


if __name__ == "__main__":
    sys.exit(main())
