"""Soak benchmark: does the service stay the same over a long run? Memory, alert latency, losses.

Run from the project root:
    .venv/bin/python bench/soak.py                    # 30 minutes in 5-minute windows (issue 10's run)
    .venv/bin/python bench/soak.py --minutes 6 --window-minutes 2

What one run does
-----------------
1. A scratch database with `--patients` (300) patients, each with one SpO2 device, every third
   with COPD (bench/alerts.py's setup); `rpm api`; two `rpm ingest` workers in one share group.
2. For `--minutes`: 1,000 readings/s of normal SpO2 readings (20 messages of 50 a second, QoS 1,
   each message's ack awaited), one breaching reading a second (SpO2 83 % for a COPD patient:
   red), a queue poll (`GET /api/v1/alerts`) every second, and `--sse-clients` (20) clients on
   the alert stream. Alert latency is publish -> the breach's event read by the first stream
   client, as in bench/alerts.py; the other clients only have to keep up.
3. Every `--window-minutes` (5): the RSS of each worker and of the API, the alert latency p50/p99
   of the window, the queue poll's p99, messages published and acked.
4. At the end: every published message acked, the database holds exactly the readings published,
   every breach's event arrived at every stream client; SIGTERM to all (exit 0); the scratch
   database dropped.

Baseline measured in the same run: the same breach messages are also published under a second
topic root, to a plain subscriber: the broker's own latency per window.

What the database was doing is sampled every two seconds (pg_stat_activity): each window lists
the autovacuum and autoanalyze runs and checkpoints seen in it, and how many of its breaches
slower than twice the first window's p99 arrived while one ran, so a slow window can be told
from the service's own slowness.

`--trace-memory` runs worker 1 through bench/trace_memory.py: what its memory holds per window
(Python objects by type, allocator blocks, the C allocator's free-but-kept bytes) against the
end of the first window; worker 2 stays plain as the control.

Targets (issue 10): RSS growth < 10 % from the first window to the last for each process; alert
p99 of every window within 2x of the first window's; 0 readings lost. Exit 0 when all are met.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import random
import sys
import tempfile
import threading
import time
import uuid
from collections import deque
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import paho.mqtt.client as mqtt
import psutil
import psycopg


def _load(name: str, file: str) -> Any:
    spec = importlib.util.spec_from_file_location(name, Path(__file__).with_name(file))
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up here
    spec.loader.exec_module(module)
    return module


ba = _load("bench_alerts", "alerts.py")  # loads bench/ingest.py as its `bi`: one copy for both
bi = ba.bi
log = bi.log

MSGS_PER_S, READINGS_PER_MSG = 20, 50  # 1,000 readings/s
BREACHES_PER_S = 1
CHUNK_SECONDS = 10  # background messages are made ten seconds at a time, not all up front
TARGET_RSS_GROWTH = 0.10
TARGET_P99_FACTOR = 2.0


@dataclass
class Window:
    number: int
    started: float
    messages: int = 0
    readings: int = 0
    breaches: list[Any] = field(default_factory=list)
    polls: list[float] = field(default_factory=list)
    rss_mb: dict[str, float] = field(default_factory=dict)
    # RSS split: anonymous (the heaps) / file-backed (code and libraries paged in), in MB.
    rss_split_mb: dict[str, tuple[float, float]] = field(default_factory=dict)

    def latencies_ms(self, arrivals: dict[Any, float]) -> list[float]:
        return [(arrivals[b.key] - b.sent) * 1000 for b in self.breaches if b.key in arrivals]

    def baseline_ms(self, arrivals: dict[str, float]) -> list[float]:
        return [(arrivals[b.reading_id] - b.baseline_sent) * 1000 for b in self.breaches if b.reading_id in arrivals]


class QueuePoller:
    """A nurse's screen without the stream: the queue's first page every second."""

    def __init__(self, base: str, token: str) -> None:
        self.durations: list[tuple[float, float]] = []  # (when, seconds)
        self.errors = 0
        self._stop = threading.Event()
        self._client = httpx.Client(base_url=base, headers={"Authorization": f"Bearer {token}"}, timeout=10)
        self._thread = threading.Thread(target=self._run, name="poll", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(1.0):
            began = time.perf_counter()
            try:
                ok = self._client.get("/api/v1/alerts").status_code == 200
            except httpx.HTTPError:
                ok = False
            self.durations.append((began, time.perf_counter() - began))
            self.errors += 0 if ok else 1

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=15)
        self._client.close()


class DatabaseActivity:
    """What PostgreSQL's background work was doing, every two seconds: autovacuum workers
    (`autovacuum: VACUUM public.observations`) and the checkpointer's count."""

    def __init__(self, database: str) -> None:
        self.samples: list[tuple[float, frozenset[str], int]] = []  # (when, maintenance running, checkpoints)
        self.failed: str | None = None
        self._stop = threading.Event()
        self._url = bi.db_url(database)
        self._thread = threading.Thread(target=self._run, name="db-activity", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            with psycopg.connect(self._url, autocommit=True) as connection:
                # PostgreSQL 17 moved the checkpoint counts to a view of their own.
                checkpoints_sql = (
                    "select num_timed + num_requested from pg_stat_checkpointer"
                    if connection.info.server_version >= 170000
                    else "select checkpoints_timed + checkpoints_req from pg_stat_bgwriter"
                )
                while not self._stop.wait(2.0):
                    running = connection.execute(
                        "select coalesce(array_agg(query), '{}') from pg_stat_activity"
                        " where backend_type = 'autovacuum worker' and datname = current_database()"
                    ).fetchone()
                    checkpoints = connection.execute(checkpoints_sql).fetchone()
                    maintenance = frozenset(running[0] if running else ())
                    self.samples.append((time.perf_counter(), maintenance, int(checkpoints[0] if checkpoints else 0)))
        except psycopg.Error as error:  # the report says so rather than showing an idle database
            self.failed = f"{type(error).__name__}: {error}"

    def between(self, started: float, ends: float) -> tuple[list[str], int]:
        """The maintenance runs seen and the checkpoints completed in [started, ends)."""
        inside = [s for s in self.samples if started <= s[0] < ends]
        if not inside:
            return [], 0
        before = [s for s in self.samples if s[0] < started]
        checkpoints = inside[-1][2] - (before[-1][2] if before else inside[0][2])
        seen = sorted({q.removeprefix("autovacuum: ") for s in inside for q in s[1]})
        return seen, checkpoints

    def running_at(self, moment: float) -> bool:
        """Whether maintenance ran in the sample interval holding `moment`."""
        for earlier, later in zip(self.samples, self.samples[1:], strict=False):
            if earlier[0] <= moment <= later[0]:
                return bool(earlier[1] or later[1])
        return False

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)


def rss_mb(pid: int) -> float:
    with suppress(psutil.Error):
        return psutil.Process(pid).memory_info().rss / 2**20
    return float("nan")


def rss_split_mb(pid: int) -> tuple[float, float]:
    """(RssAnon, RssFile) from /proc: growth of the first is the heaps', of the second code and
    libraries paged in as new paths run."""
    fields: dict[str, float] = {}
    with suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            name, _, value = line.partition(":")
            if name in ("RssAnon", "RssFile"):
                fields[name] = int(value.split()[0]) / 1024
    return fields.get("RssAnon", float("nan")), fields.get("RssFile", float("nan"))


class Publisher:
    """One MQTT connection of its own loop: background messages on schedule, breaches, acks."""

    def __init__(self, root: str) -> None:
        self.outstanding: dict[str, float] = {}
        self.statuses: dict[str, int] = {}
        self.client = bi.mqtt_client(f"bench-soak-gw-{uuid.uuid4().hex[:8]}")
        subscribed = threading.Event()
        self.client.on_connect = lambda c, *a: c.subscribe(f"{root}/gateways/+/acks", qos=1)
        self.client.on_subscribe = lambda *a: subscribed.set()
        self.client.on_message = self._on_ack
        self.client.connect(bi.BROKER_HOST, bi.BROKER_PORT, keepalive=30, clean_start=True,
                            properties=bi.connect_properties())  # fmt: skip
        deadline = time.monotonic() + 10
        while not subscribed.is_set():
            if time.monotonic() > deadline:
                raise TimeoutError("no SUBACK for the acks topic within 10 s")
            self.client.loop(0.05)

    def _on_ack(self, client: mqtt.Client, userdata: Any, message: mqtt.MQTTMessage) -> None:
        results = json.loads(message.payload)["results"]
        for result in results:
            status = str(result.get("status"))
            self.statuses[status] = self.statuses.get(status, 0) + 1
        if results:
            self.outstanding.pop(str(results[0].get("id")), None)

    def publish(self, message: Any, *, track: bool = True) -> float:
        sent = time.perf_counter()
        if track:
            self.outstanding[message.key] = sent
        info = self.client.publish(message.topic, message.payload, qos=1)
        if info.rc != mqtt.MQTT_ERR_SUCCESS:
            raise RuntimeError(f"publish failed: {mqtt.error_string(info.rc)}")
        return sent

    def pump(self) -> None:
        rc = self.client.loop(0.005)
        if rc != mqtt.MQTT_ERR_SUCCESS:
            raise RuntimeError(f"lost the broker: {mqtt.error_string(rc)}")

    def close(self) -> None:
        with suppress(Exception):
            self.client.disconnect()
            self.client.loop(0.1)


def soak(args: argparse.Namespace, publisher: Publisher, root: str, patients: list[Any], streams: list[Any],
         baseline: Any, workers: list[Any], api: Any, rng: random.Random) -> list[Window]:  # fmt: skip
    copd = [p for p in patients if p.copd]
    devices = [p.device for p in patients]
    window_seconds = args.window_minutes * 60
    total_seconds = args.minutes * 60
    started = time.perf_counter()
    windows = [Window(1, started)]
    background: deque[Any] = deque()
    chunk = sent_messages = breach_number = 0
    while True:
        now = time.perf_counter()
        elapsed = now - started
        if elapsed >= total_seconds:
            break
        if elapsed >= len(windows) * window_seconds:
            close_window(windows[-1], workers, api)
            log(summary(windows[-1], streams[0].arrivals, baseline.arrivals))
            windows.append(Window(len(windows) + 1, now))
        if sent_messages >= chunk * CHUNK_SECONDS * MSGS_PER_S:
            background += bi.make_messages(
                f"soak{chunk}", CHUNK_SECONDS * MSGS_PER_S * READINGS_PER_MSG, READINGS_PER_MSG,
                root=root, gateways=20, devices=devices, rng=rng,
            )  # fmt: skip
            chunk += 1
        while sent_messages < elapsed * MSGS_PER_S and background:
            message = background.popleft()
            publisher.publish(message)
            windows[-1].messages += 1
            windows[-1].readings += message.readings
            sent_messages += 1
        if breach_number < elapsed * BREACHES_PER_S:
            real, copy, breach = ba.breach_message(root, breach_number, copd[breach_number % len(copd)])
            breach.sent = publisher.publish(real)
            breach.baseline_sent = publisher.publish(copy, track=False)
            windows[-1].breaches.append(breach)
            breach_number += 1
        if problem := next((w.problem() for w in workers if w.problem()), None):
            raise RuntimeError(problem)
        if api.process.poll() is not None:
            raise RuntimeError(f"the API exited with {api.process.returncode}")
        publisher.pump()
    # The last acks and events.
    deadline = time.perf_counter() + args.settle
    breaches = [b for w in windows for b in w.breaches]
    while time.perf_counter() < deadline and (
        publisher.outstanding or not all(b.key in s.arrivals for s in streams for b in breaches)
    ):
        publisher.pump()
    close_window(windows[-1], workers, api)
    log(summary(windows[-1], streams[0].arrivals, baseline.arrivals))
    if publisher.outstanding:
        log(f"{len(publisher.outstanding)} messages without an ack after {args.settle:.0f} s")
    return windows


def close_window(window: Window, workers: list[Any], api: Any) -> None:
    processes = {f"worker {number}": worker.process.pid for number, worker in enumerate(workers, 1)}
    processes["api"] = api.process.pid
    for name, pid in processes.items():
        window.rss_mb[name] = rss_mb(pid)
        window.rss_split_mb[name] = rss_split_mb(pid)


def summary(window: Window, arrivals: dict[Any, float], baseline: dict[str, float]) -> str:
    latencies = window.latencies_ms(arrivals)
    rss = ", ".join(f"{name} {mb:.0f} MB" for name, mb in window.rss_mb.items())
    return (
        f"window {window.number}: {window.readings:,} readings, alert p99 {ba.percentile(latencies, 0.99):.0f} ms "
        f"(broker {ba.percentile(window.baseline_ms(baseline), 0.99):.0f} ms), RSS {rss}"
    )


def stored_readings(database: str) -> int:
    with psycopg.connect(bi.db_url(database)) as connection:
        row = connection.execute("select count(distinct (gateway_id, reading_id)) from observations").fetchone()
        return int(row[0]) if row else 0


def report(args: argparse.Namespace, windows: list[Window], streams: list[Any], baseline: Any,
           poller: QueuePoller, published: int, stored: int, unacked: int,
           exits: dict[str, int | None], activity: DatabaseActivity) -> bool:  # fmt: skip
    for window in windows:
        ends = window.started + args.window_minutes * 60
        window.polls = [d * 1000 for at, d in poller.durations if window.started <= at < ends]
    first = windows[0]
    first_p99 = ba.percentile(first.latencies_ms(streams[0].arrivals), 0.99)
    print(f"\nSoak: {args.minutes:g} min, {args.patients} patients, 2 workers, {len(streams)} stream clients, "
          f"{MSGS_PER_S * READINGS_PER_MSG:,} readings/s + {BREACHES_PER_S} breach/s, queue poll 1/s")  # fmt: skip
    names = list(first.rss_mb)
    header = (["window", "readings", "alert p50", "alert p99", "broker p99", "poll p99"]
              + [f"RSS {n}" for n in names])  # fmt: skip
    print(" | ".join(f"{h:>11}" for h in header))
    for window in windows:
        latencies = window.latencies_ms(streams[0].arrivals)
        broker = window.baseline_ms(baseline.arrivals)
        cells = [
            str(window.number), f"{window.readings:,}", f"{ba.percentile(latencies, 0.5):.0f} ms",
            f"{ba.percentile(latencies, 0.99):.0f} ms", f"{ba.percentile(broker, 0.99):.0f} ms",
            f"{ba.percentile(window.polls, 0.99):.0f} ms", *[f"{window.rss_mb[n]:.0f} MB" for n in names],
        ]  # fmt: skip
        print(" | ".join(f"{c:>11}" for c in cells))
    print("\nRSS anonymous / file-backed (MB): the heaps, and code and libraries paged in")
    for window in windows:
        split = ", ".join(f"{n} {a:.1f} / {f:.1f}" for n, (a, f) in window.rss_split_mb.items())
        print(f"  window {window.number}: {split}")
    print("\nWhat the database did in each window (sampled every 2 s), and the breaches slower than twice")
    print("the first window's p99 that arrived while an autovacuum ran:")
    if activity.failed:
        print(f"  (the sampler stopped: {activity.failed}; what follows covers only what it saw before)")
    for window in windows:
        ends = window.started + args.window_minutes * 60
        seen, checkpoints = activity.between(window.started, ends)
        slow = [b for b in window.breaches if b.key in streams[0].arrivals
                and (streams[0].arrivals[b.key] - b.sent) * 1000 > 2 * first_p99]  # fmt: skip
        during = sum(1 for b in slow if activity.running_at(streams[0].arrivals[b.key]))
        print(
            f"  window {window.number}: {checkpoints} checkpoints; {len(slow)} slow breaches, {during} during"
            f" maintenance; maintenance: {'; '.join(seen) or 'none'}"
        )
    last = windows[-1]
    growth = {n: last.rss_mb[n] / first.rss_mb[n] - 1 for n in names}
    worst_p99 = max(ba.percentile(w.latencies_ms(streams[0].arrivals), 0.99) for w in windows)
    breaches = [b for w in windows for b in w.breaches]
    missing_events = sum(1 for s in streams for b in breaches if b.key not in s.arrivals)
    checks = [
        ("RSS growth, first to last window", ", ".join(f"{n} {g:+.1%}" for n, g in growth.items()),
         f"< {TARGET_RSS_GROWTH:.0%} each", all(g < TARGET_RSS_GROWTH for g in growth.values())),
        ("alert p99, worst window / first", f"{worst_p99:.0f} / {first_p99:.0f} ms",
         f"<= {TARGET_P99_FACTOR:g}x", worst_p99 <= TARGET_P99_FACTOR * first_p99),
        ("readings published / stored", f"{published:,} / {stored:,}", "equal", published == stored),
        ("messages without an ack", str(unacked), "0", unacked == 0),
        ("breach events missed by a stream client", f"{missing_events} of {len(breaches) * len(streams):,}", "0",
         missing_events == 0),
        ("queue polls failed", f"{poller.errors} of {len(poller.durations)}", "0", poller.errors == 0),
        ("exits on SIGTERM", ", ".join(f"{k} {v}" for k, v in exits.items()), "0 each",
         all(v == 0 for v in exits.values())),
    ]  # fmt: skip
    print()
    for name, measured, target, ok in checks:
        print(f"{name:<42} {measured:<40} {target:<12} {'PASS' if ok else 'FAIL'}")
    ok = all(check[3] for check in checks)
    print(f"\noverall: {'PASS' if ok else 'FAIL'}")
    return ok


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0] if __doc__ else None)
    parser.add_argument("--minutes", type=float, default=30.0)
    parser.add_argument("--window-minutes", type=float, default=5.0)
    parser.add_argument("--patients", type=int, default=300)
    parser.add_argument("--sse-clients", type=int, default=20)
    parser.add_argument("--settle", type=float, default=30.0, help="seconds to wait for the last acks and events")
    parser.add_argument("--seed", type=int, default=20261201)
    parser.add_argument(
        "--trace-memory",
        action="store_true",
        help="run worker 1 through bench/trace_memory.py and report what its memory holds per window; "
        "worker 2 runs plain as the control",
    )
    parser.add_argument(
        "--memory-return-seconds",
        type=float,
        help="RPM_MEMORY_RETURN_SECONDS for the workers and the API (default: the service's, 60; 0: never)",
    )
    args = parser.parse_args(argv)
    if args.window_minutes <= 0 or args.minutes < args.window_minutes:
        parser.error("--minutes must hold at least one --window-minutes")
    if args.patients < 3 or args.sse_clients < 1:
        parser.error("--patients: at least 3; --sse-clients: at least 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    rng = random.Random(args.seed)
    run_id = uuid.uuid4().hex[:10]
    database = f"rpm_bench_soak_{run_id}"
    root = f"bench-soak-{run_id}/rpm/v1"
    tmp = Path(tempfile.mkdtemp(prefix="rpm-bench-soak-"))
    auth = {"RPM_DEV_AUTH": "true", "RPM_DEV_KEY_PATH": str(tmp / "dev-key.pem")}
    if args.memory_return_seconds is not None:
        auth["RPM_MEMORY_RETURN_SECONDS"] = f"{args.memory_return_seconds:g}"
    workers: list[Any] = []
    streams: list[Any] = []
    api = baseline = poller = publisher = activity = None
    exits: dict[str, int | None] = {}
    created = False
    try:
        patients = ba.setup_database(database, args.patients, rng)
        created = True
        api = ba.Api(bi.rpm_env(database, auth), tmp / "api.log")
        api.wait_ready()
        token = bi.run_rpm(
            ["token", "--sub", "bench-soak", "--org", bi.ORGNR, "--role", "nurse", "--ttl", "86400"],
            bi.rpm_env(database, auth),
        ).splitlines()[-1]
        traced = {}
        if args.trace_memory:  # worker 1 traced, worker 2 plain: the control
            memory_report = tmp / "worker-1-memory.txt"
            every = str(args.window_minutes * 60)
            traced = {0: [sys.executable, str(Path(__file__).with_name("trace_memory.py")), str(memory_report), every,
                          "ingest"]}  # fmt: skip
            log(f"worker 1 traces its memory; its report: {memory_report}")
        workers = bi.start_workers(2, database, run_id, root, tmp, auth, traced)
        for worker in workers:
            worker.wait_connected()
        streams = [ba.SseReader(f"{api.base}/api/v1/alerts/stream", token) for _ in range(args.sse_clients)]
        for stream in streams:
            if not stream.connected.wait(15) or stream.error:
                raise RuntimeError(f"an alert stream did not connect: {stream.error or 'timeout'}")
        baseline = ba.BrokerSubscriber(f"{root}-baseline")
        poller = QueuePoller(api.base, token)
        activity = DatabaseActivity(database)
        return_every = args.memory_return_seconds
        returning = "the service's default" if return_every is None else f"{return_every:g} s"
        log(f"soak: {args.minutes:g} minutes, windows of {args.window_minutes:g}; memory returned every: {returning}")
        publisher = Publisher(root)
        windows = soak(args, publisher, root, patients, streams, baseline, workers, api, rng)
        unacked = len(publisher.outstanding)
        publisher.close()
        poller.close()
        published = sum(w.readings for w in windows) + sum(len(w.breaches) for w in windows)
        stored = stored_readings(database)
        for stream in streams:
            stream.close()
        baseline.close()
        for worker in workers:
            exits[worker.client_id] = worker.stop()
        exits["api"] = api.stop()
        activity.close()
        ok = report(args, windows, streams, baseline, poller, published, stored, unacked, exits, activity)
        if args.trace_memory:
            print(f"\nWorker 1's memory ({memory_report}):")
            print(memory_report.read_text() if memory_report.exists() else "(no report)")
        return 0 if ok else 1
    finally:
        if publisher is not None:
            publisher.close()
        for stream in streams:
            stream.close()
        if baseline is not None:
            baseline.close()
        if poller is not None:
            poller.close()
        if activity is not None:
            activity.close()
        for worker in workers:
            if worker.process.poll() is None:
                worker.stop()
            bi.forget_broker_session(worker.client_id)
        if api is not None and api.process.poll() is None:
            api.stop()
        if created:
            bi.drop_database(database)


if __name__ == "__main__":
    sys.exit(main())
