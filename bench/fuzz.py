"""Bad input at volume: 100,000 generated messages through the real broker and `rpm ingest`.

Run from the project root:

    .venv/bin/python bench/fuzz.py                      # 100,000 messages
    .venv/bin/python bench/fuzz.py --messages 10000     # a quicker look

What one run does
-----------------
1. Creates a scratch database `rpm_fuzz_<random>` on the local PostgreSQL, migrates it, adds an
   organisation with one patient and a registered, assigned device of every reading type.
2. Draws the messages from hypothesis (tests/fuzz/messages.py: valid batches, readings broken
   in one known way each, JSON of every shape, text that is not JSON or not UTF-8, NaN and
   Infinity, huge numbers, deep nesting, odd Unicode, payloads around and beyond 256 KiB,
   batches beyond 1,000 readings, duplicate keys, topic abuse) into a file, so that both runs
   below send the same bytes and generation does not count in their time.
3. Baseline: the same messages, answered at once by a plain subscriber in another process
   (an echo): what the broker and this client manage on this machine.
4. The worker, as an `rpm ingest` process: the same messages, at most `--window` unanswered.
   Every ack is checked as it arrives against the oracle (tests/fuzz/messages.py); the RSS of
   the worker is read when it is ready, after each tenth of the messages and at the end.
   Then every row of rejected_readings is matched to a rejected result or a bad topic, by
   reason, reading id and payload bytes (the whole message byte for byte; a rejected reading
   of a batch by its JSON value), and the stored Observations are counted against the
   accepted results. The worker is stopped with SIGTERM and must exit 0.
5. Drops the database and the worker's broker session.

Figures: payloads sent by route and family, answers by status and reason, problems (each a
wrong or missing answer, a lost or unexpected kept row), worker exits, RSS, time and
messages/s next to the echo's.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import pickle
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import paho.mqtt.client as mqtt
import psycopg

PROJECT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(PROJECT))  # for tests.fuzz and tests.fixtures


from rpm.config import Settings  # noqa: E402
from rpm.db import create_engine, session_factory  # noqa: E402
from tests.fixtures.servers import free_port  # noqa: E402
from tests.fixtures.world import add_organisation, enrol_with_devices  # noqa: E402
from tests.fuzz.harness import FuzzPublisher, WorkerProcess  # noqa: E402
from tests.fuzz.messages import READING_TYPES, Devices, FuzzMessage, draw_messages  # noqa: E402


def _load(name: str, file: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, Path(__file__).with_name(file))
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


bi = _load("bench_ingest", "ingest.py")  # its servers, scratch databases and `rpm` runner
log = bi.log
TARGET_RSS_GROWTH = 0.10  # the worker's RSS at the end within 10 % of its RSS after the first tenth
# Below this the first tenth is still the worker's warm-up (pools, caches): growth says nothing.
RSS_JUDGED_FROM = 20_000


def setup_database(database: str) -> Devices:
    log(f"creating database {database}")
    with psycopg.connect(bi.PG_MAINTENANCE, autocommit=True, connect_timeout=5) as connection:
        connection.execute(f'create database "{database}"')
    bi.run_rpm(["migrate"], bi.rpm_env(database))

    async def enrol() -> Devices:
        engine = create_engine(Settings(database_url=bi.db_url(database)), "rpm-bench-fuzz")
        try:
            sessions = session_factory(engine)
            orgnr = await add_organisation(sessions, "Fuzz kommune")
            enrolled = await enrol_with_devices(sessions, orgnr, sorted(READING_TYPES))
        finally:
            await engine.dispose()
        return Devices({kind: device.serial for kind, device in zip(sorted(READING_TYPES), enrolled, strict=True)})

    return asyncio.run(enrol())


def generate(devices: Devices, count: int, seed_value: int, path: Path) -> float:
    """Draw `count` messages from hypothesis into `path`; the seconds it took."""
    started = time.perf_counter()
    with path.open("wb") as out:
        draw_messages(devices, count, seed_value, lambda message: pickle.dump(message, out))
    return time.perf_counter() - started


def replay(path: Path) -> Iterator[FuzzMessage]:
    with path.open("rb") as source:
        while True:
            try:
                yield pickle.load(source)
            except EOFError:
                return


def echo_server(root: str) -> int:
    """Entry point of the echo process: answer every measurements message at once."""
    client = bi.mqtt_client(f"fuzz-echo-{uuid.uuid4().hex[:8]}")

    def on_connect(c: mqtt.Client, userdata: Any, flags: Any, reason: Any, properties: Any) -> None:
        c.subscribe(f"{root}/gateways/+/measurements", qos=1)

    def on_message(c: mqtt.Client, userdata: Any, message: mqtt.MQTTMessage) -> None:
        c.publish(message.topic.rsplit("/", 1)[0] + "/acks", b'{"results":[]}', qos=1)

    client.on_connect, client.on_message = on_connect, on_message
    client.on_subscribe = lambda *args: print("ready", flush=True)
    client.connect(bi.BROKER_HOST, bi.BROKER_PORT, keepalive=30, clean_start=True, properties=bi.connect_properties())
    signal.signal(signal.SIGTERM, lambda *args: client.disconnect())
    client.loop_forever()
    return 0


def run_echo(path: Path, window: int) -> tuple[float, int]:
    root = f"fuzz-echo-{uuid.uuid4().hex[:8]}/rpm/v1"
    process = subprocess.Popen(
        [sys.executable, __file__, "--echo-server", root], cwd=PROJECT, stdout=subprocess.PIPE, text=True
    )
    try:
        assert process.stdout is not None
        if process.stdout.readline() != "ready\n":
            raise RuntimeError("the echo subscriber did not start")
        publisher = FuzzPublisher(bi.BROKER_HOST, bi.BROKER_PORT, root, window=window, check=False)
        publisher.connect()
        started = time.perf_counter()
        publisher.send_all(replay(path))
        publisher.wait_answered(600)
        elapsed = time.perf_counter() - started
        publisher.close()
        return elapsed, publisher.tally.answered_messages
    finally:
        process.terminate()
        process.wait(10)


def mb(value: int) -> str:
    return f"{value / 1e6:.1f} MB"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=int(time.time()))
    parser.add_argument("--window", type=int, default=300, help="unanswered messages at most (default 300)")
    parser.add_argument("--echo-server", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.echo_server:
        return echo_server(args.echo_server)

    def terminate(signum: int, frame: Any) -> None:
        raise SystemExit(128 + signum)  # run the clean-up below

    signal.signal(signal.SIGTERM, terminate)
    run_id = uuid.uuid4().hex[:8]
    database = f"rpm_fuzz_{run_id}"
    client_id = f"rpm-fuzz-{run_id}"
    root = f"fuzz-{run_id}/rpm/v1"
    folder = Path(tempfile.mkdtemp(prefix="rpm-fuzz-"))
    messages_file = folder / "messages.pickle"
    worker: WorkerProcess | None = None
    try:
        devices = setup_database(database)
        log(f"drawing {args.messages:,} messages from hypothesis (seed {args.seed})")
        generation = generate(devices, args.messages, args.seed, messages_file)
        log(f"drawn in {generation:.0f}s ({messages_file.stat().st_size / 1e6:.0f} MB, sizes of oversize ones aside)")

        log("baseline: the same messages against an echo subscriber")
        echo_seconds, echo_answered = run_echo(messages_file, args.window)
        log(f"echo: {echo_answered:,} answered in {echo_seconds:.1f}s")

        env = bi.rpm_env(
            database,
            {
                "RPM_MQTT_URL": f"mqtt://{bi.BROKER_HOST}:{bi.BROKER_PORT}",
                "RPM_MQTT_CLIENT_ID": client_id,
                "RPM_MQTT_TOPIC_ROOT": root,
            },
        )
        worker = WorkerProcess(env, free_port(), str(folder / "worker.log"))
        worker.wait_ready()
        rss = [("ready", worker.rss())]
        publisher = FuzzPublisher(bi.BROKER_HOST, bi.BROKER_PORT, root, window=args.window)
        publisher.connect()
        log(f"fuzzing the worker (pid {worker.process.pid}, log {folder / 'worker.log'})")
        started = time.perf_counter()
        tenth = max(1, args.messages // 10)
        for number, message in enumerate(replay(messages_file), start=1):
            publisher.send(message, worker.problem)
            if number % tenth == 0:
                rss.append((f"{number:,} sent", worker.rss()))
                log(f"{number:,} sent, worker RSS {mb(rss[-1][1])}")
        publisher.wait_answered(600, worker.problem)
        elapsed = time.perf_counter() - started
        rss.append(("all answered", worker.rss()))
        kept = publisher.check_kept(bi.db_url(database))
        publisher.close()
        code = worker.stop()
        worker = None
        return report(args, publisher, kept, rss, elapsed, echo_seconds, echo_answered, generation, code)
    finally:
        if worker is not None:
            worker.stop()
        bi.forget_broker_session(client_id)
        bi.drop_database(database)
        messages_file.unlink(missing_ok=True)
        log(f"the worker's log: {folder / 'worker.log'}")


def report(
    args: argparse.Namespace,
    publisher: FuzzPublisher,
    kept: dict[str, int],
    rss: list[tuple[str, int]],
    elapsed: float,
    echo_seconds: float,
    echo_answered: int,
    generation: float,
    exit_code: int,
) -> int:
    tally = publisher.tally
    sent = sum(tally.sent.values())
    own = tally.sent["own"]
    start_rss = rss[1][1] if len(rss) > 2 else rss[0][1]
    growth = rss[-1][1] / start_rss - 1
    judged = args.messages >= RSS_JUDGED_FROM
    flat = growth < TARGET_RSS_GROWTH or not judged
    answered_all = tally.answered_messages == own
    worker_rate, echo_rate = tally.answered_messages / elapsed, echo_answered / echo_seconds
    ok = answered_all and exit_code == 0 and tally.problem_count == 0 and kept["lost"] == kept["extra"] == 0 and flat
    lines = [
        "",
        f"bench/fuzz.py: {sent:,} generated messages (hypothesis seed {args.seed}, window {args.window})",
        "",
        "payloads sent",
        f"  by route: answered on their own gateway's acks {own:,}; bad topic (kept, unanswered) "
        f"{tally.sent['bad_topic']:,}; outside the subscription (no one receives them) {tally.sent['outside']:,}; "
        f"refused by the broker {tally.refused_by_broker:,} of {tally.sent['refused']:,}",
        "  by family: " + ", ".join(f"{name} {count:,}" for name, count in tally.families.most_common()),
        f"  bytes: {tally.bytes_sent / 1e6:.1f} MB",
        "",
        f"answers: {tally.answered_messages:,} of {own:,} messages, {tally.readings_answered:,} results",
        "  " + ", ".join(f"{status} {count:,}" for status, count in tally.statuses.most_common()),
        "",
        f"kept rejections: {kept['rows']:,} rows, {kept['expected']:,} expected; lost {kept['lost']}, "
        f"unexpected {kept['extra']}; Observations stored {kept['stored']:,} = accepted {tally.accepted:,}",
        f"problems (wrong, missing or doubled answers; rows lost or unexpected): {tally.problem_count}",
        *[f"  {text}" for text in tally.problems[:20]],
        f"worker crashes: {0 if exit_code == 0 else 1} (exit code after SIGTERM: {exit_code})",
        "",
        "worker RSS: " + "; ".join(f"{label} {mb(value)}" for label, value in rss),
        f"  after the first tenth {mb(start_rss)}, at the end {mb(rss[-1][1])}: {growth:+.1%} "
        f"(target < {TARGET_RSS_GROWTH:.0%}) "
        + (("PASS" if flat else "FAIL") if judged else f"not judged under {RSS_JUDGED_FROM:,} messages (warm-up)"),
        "",
        "| run | messages | seconds | messages/s |",
        "| --- | --- | --- | --- |",
        f"| worker (checked) | {tally.answered_messages:,} answered | {elapsed:.1f} | {worker_rate:,.0f} |",
        f"| baseline: broker echo | {echo_answered:,} answered | {echo_seconds:.1f} | {echo_rate:,.0f} |",
        f"  ratio worker / echo: {worker_rate / echo_rate:.2f}; "
        f"drawing the messages from hypothesis took {generation:.0f}s (not in either time)",
        "",
        f"result: {'PASS' if ok else 'FAIL'}",
    ]
    print("\n".join(lines))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
