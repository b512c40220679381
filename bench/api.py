"""Staff API latency on a year of data, beside the same queries run directly in SQL.

Run from the project root, against a database written by bench/seed.py:

    .venv/bin/python bench/seed.py --database rpm_seed            # once: ~10 M Observations
    .venv/bin/python bench/api.py --database rpm_seed             # 500 requests per scenario
    .venv/bin/python bench/api.py --database rpm_seed --requests 1000 --orgnr 974600951

What one run does
-----------------
1. Migrates the database (a no-op when current) and picks its inputs: the organisations with
   their patients, and for `--orgnr` (default 974600951, the seed's first municipality) up to
   100 of its active patients with readings, each with one of its planned reading types.
2. Starts `rpm api` as a subprocess on a free port (development tokens, a key in a temporary
   folder) and mints bearer tokens for a nurse of each organisation.
3. Per scenario, sends `--requests` GET requests one after another (after 20 to warm up),
   rotating through the inputs, and takes p50 and p99 of the wall time per request, as the
   client sees it (HTTP, token check, queries, audit record, commit, JSON):
   - alert queue, first page (`/api/v1/alerts`), rotating over the organisations: < 50 ms;
   - patient overview, first page of 50 with statuses (`/api/v1/patients`): < 100 ms;
   - dashboard (`/api/v1/patients/{id}/dashboard`): < 100 ms;
   - trends over 90 days in daily buckets (`/trends?bucket=1d`): < 50 ms;
   - FHIR Observation search, first page (`/fhir/Observation?patient=...`): < 100 ms;
   and, without a target, the overview for the organisation with the most patients and the
   FHIR search across all of an organisation's patients.
4. Baseline "SQL": the same statements, with the same parameters, run directly on one
   connection. They are recorded by calling the same service function in this process once
   per input (the statements SQLAlchemy hands to asyncpg), then replayed `--requests` times in
   a transaction that is rolled back (the audit insert included). The difference between the
   two columns is the cost of the API around its queries; the SQL column says what the
   database needs on this machine today.

How to read the output: one line per scenario, p50/p99 of the API and of the SQL baseline,
the target and PASS/FAIL on the API's p99. Absolute times on a shared machine are noise;
compare a run's API column with its SQL column. The exit status is 0 when every target is met.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import psycopg
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncSession

PROJECT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(PROJECT))

from rpm.access.staff import Role, Staff  # noqa: E402
from rpm.access.tokens import mint_dev_token  # noqa: E402
from rpm.alerts import service as alerts  # noqa: E402
from rpm.audit.service import Actor  # noqa: E402
from rpm.config import Settings  # noqa: E402
from rpm.db import create_engine, session_factory  # noqa: E402
from rpm.observations import service as observations  # noqa: E402
from rpm.patients import service as patients  # noqa: E402
from rpm.trends import service as trends  # noqa: E402

PG_HOST, PG_PORT = "127.0.0.1", 5432
RPM = Path(sys.executable).parent / "rpm"
GRACE = timedelta(hours=2)  # the default missing-measurement grace, as the API uses it
PAGE_ROWS = 500  # the staff page's worklist shows up to this many patients at once (api.web.pages.worklist)
WARM_UP = 20


def log(text: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)


def db_url(name: str) -> str:
    return f"postgresql://postgres@{PG_HOST}:{PG_PORT}/{name}"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


@dataclass
class Inputs:
    orgnrs: list[str]  # every organisation, for the queue and the overview
    largest: str  # the organisation that follows the most patients
    patients: list[tuple[uuid.UUID, str]]  # of --orgnr: (patient id, a planned reading type's LOINC code)
    observations_estimate: int


PLAN_CODES = {
    "blood-pressure": "85354-9",
    "heart-rate": "8867-4",
    "spo2": "59408-5",
    "respiratory-rate": "9279-1",
    "body-temperature": "8310-5",
    "body-weight": "29463-7",
    "blood-glucose": "14743-9",
    "peak-flow": "19935-6",
}


def pick_inputs(database: str, orgnr: str, count: int, rng: random.Random) -> Inputs:
    with psycopg.connect(db_url(database), connect_timeout=5) as connection:
        rows = connection.execute(
            """
            select o.orgnr, count(distinct c.patient_id)
            from organisations o join care_team_members c on c.organisation_id = o.id
            where c.period_from <= current_date and (c.period_to is null or c.period_to >= current_date)
            group by o.orgnr order by 2 desc
            """
        ).fetchall()
        if not rows:
            raise SystemExit(f"database {database} has no patients: run bench/seed.py first")
        followed = connection.execute(
            """
            select p.id, m.reading_type from patients p
            join care_team_members c on c.patient_id = p.id
            join organisations o on o.id = c.organisation_id
            join measurement_plan_items m on m.patient_id = p.id
            where o.orgnr = %s and p.status = 'active'
              and c.period_from <= current_date and (c.period_to is null or c.period_to >= current_date)
            """,
            (orgnr,),
        ).fetchall()
        estimate = connection.execute(
            "select reltuples::bigint from pg_class where relname = 'observations'"
        ).fetchone()
    if not followed:
        raise SystemExit(f"organisation {orgnr} follows no active patient with a plan in {database}")
    by_patient: dict[uuid.UUID, list[str]] = {}
    for patient_id, reading_type in followed:
        by_patient.setdefault(patient_id, []).append(reading_type)
    chosen = rng.sample(sorted(by_patient), min(count, len(by_patient)))
    return Inputs(
        orgnrs=[r[0] for r in rows],
        largest=rows[0][0],
        patients=[(p, PLAN_CODES[rng.choice(sorted(by_patient[p]))]) for p in chosen],
        observations_estimate=int(estimate[0]) if estimate else 0,
    )


class ApiProcess:
    """`rpm api` on a free port, with development tokens."""

    def __init__(self, database: str, key_path: Path, log_path: Path) -> None:
        self.port = free_port()
        self.log_path = log_path
        env = {k: v for k, v in os.environ.items() if not k.startswith("RPM_")}
        env.update(
            RPM_ENVIRONMENT="development",
            RPM_DATABASE_URL=db_url(database),
            RPM_DEV_AUTH="true",
            RPM_DEV_KEY_PATH=str(key_path),
        )
        self.log_file = log_path.open("w")
        self.process = subprocess.Popen(
            [str(RPM), "api", "--host", "127.0.0.1", "--port", str(self.port)],
            env=env,
            cwd=PROJECT,
            stdout=self.log_file,
            stderr=subprocess.STDOUT,
        )
        self.base = f"http://127.0.0.1:{self.port}"

    def wait_ready(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"rpm api exited: {self.log_path.read_text()[-2000:]}")
            try:
                if httpx.get(f"{self.base}/readyz", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise RuntimeError("rpm api did not become ready")

    def stop(self) -> int | None:
        self.process.terminate()
        try:
            return self.process.wait(30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return None
        finally:
            self.log_file.close()


@dataclass
class Scenario:
    name: str
    target_ms: float | None
    # Per input: the request's path, the caller's organisation, and the service call it makes.
    requests: list[tuple[str, str, Callable[[AsyncSession, Actor], Awaitable[Any]]]]
    page: bool = False  # the staff page, signed in with a session cookie instead of a bearer token
    api_ms: list[float] = field(default_factory=list)
    sql_ms: list[float] = field(default_factory=list)


def scenarios(inputs: Inputs, orgnr: str, now: datetime) -> list[Scenario]:
    since = (now - timedelta(days=90)).isoformat()

    def queue(session: AsyncSession, actor: Actor) -> Awaitable[Any]:
        return alerts.queue(session, actor, limit=50)

    def overview(session: AsyncSession, actor: Actor) -> Awaitable[Any]:
        return patients.worklist(session, actor, now=now, grace=GRACE, limit=50)

    def page_worklist(session: AsyncSession, actor: Actor) -> Awaitable[Any]:
        return patients.worklist(session, actor, now=now, grace=GRACE, limit=PAGE_ROWS, status="active")

    def dashboard(patient: uuid.UUID) -> Callable[[AsyncSession, Actor], Awaitable[Any]]:
        return lambda session, actor: trends.dashboard(session, actor, patient, now=now, grace=GRACE)

    def trend(patient: uuid.UUID, code: str) -> Callable[[AsyncSession, Actor], Awaitable[Any]]:
        return lambda session, actor: trends.trend(
            session, actor, patient, code=code, start=now - timedelta(days=90), end=now, bucket="1d"
        )

    def fhir(patient: uuid.UUID | None) -> Callable[[AsyncSession, Actor], Awaitable[Any]]:
        return lambda session, actor: observations.search_observations(
            session, actor, patient_id=patient, codes=None, dates=[], newest_first=True, after=None, limit=50
        )

    quoted = since.replace("+", "%2B")
    return [
        Scenario("alert queue, first page", 50, [("/api/v1/alerts", o, queue) for o in inputs.orgnrs]),
        Scenario("patient overview, first page of 50", 100, [("/api/v1/patients", o, overview) for o in inputs.orgnrs]),
        Scenario(
            "dashboard",
            100,
            [(f"/api/v1/patients/{p}/dashboard", orgnr, dashboard(p)) for p, _ in inputs.patients],
        ),
        Scenario(
            "trends, 90 days in daily buckets",
            50,
            [
                (f"/api/v1/patients/{p}/trends?code={c}&bucket=1d&from={quoted}", orgnr, trend(p, c))
                for p, c in inputs.patients
            ],
        ),
        Scenario(
            "FHIR Observation search, first page",
            100,
            [(f"/fhir/Observation?patient={p}", orgnr, fhir(p)) for p, _ in inputs.patients],
        ),
        Scenario(
            f"overview, largest organisation ({inputs.largest})",
            None,
            [("/api/v1/patients", inputs.largest, overview)],
        ),
        Scenario("FHIR search across the organisation", None, [("/fhir/Observation", orgnr, fhir(None))]),
        Scenario(
            f"staff page: worklist of {PAGE_ROWS} patients (HTML)",
            300,
            [("/", orgnr, page_worklist)],
            page=True,
        ),
    ]


def signed_in(base: str, orgnr: str) -> httpx.Client:
    """A client with a staff page session (the development sign-in) of a nurse of `orgnr`."""
    client = httpx.Client(base_url=base, timeout=30)
    response = client.post("/login/development", data={"organisation": orgnr, "roles": "nurse", "sub": "bench-page"})
    if response.status_code != 303 or "rpm_session" not in client.cookies:
        raise RuntimeError(f"the development sign-in failed: {response.status_code} {response.text[:300]}")
    return client


def run_api(scenario: Scenario, base: str, tokens: dict[str, str], count: int) -> None:
    pages = {orgnr: signed_in(base, orgnr) for _, orgnr, _ in scenario.requests} if scenario.page else {}
    with httpx.Client(base_url=base, timeout=30) as api:
        for number in range(WARM_UP + count):
            path, orgnr, _ = scenario.requests[number % len(scenario.requests)]
            client = pages.get(orgnr, api)
            headers = {} if scenario.page else {"Authorization": f"Bearer {tokens[orgnr]}"}
            started = time.perf_counter()
            response = client.get(path, headers=headers)
            elapsed = (time.perf_counter() - started) * 1000
            if response.status_code != 200:
                raise RuntimeError(f"{scenario.name}: {path} answered {response.status_code}: {response.text[:500]}")
            if number >= WARM_UP:
                scenario.api_ms.append(elapsed)
    for client in pages.values():
        client.close()


CHROMIUM = os.environ.get("RPM_TEST_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def first_paint(base: str, orgnr: str, loads: int) -> list[float] | None:
    """First contentful paint of the worklist in Debian's chromium, in ms, `loads` times (after
    a warm-up load); None when there is no chromium here."""
    if not Path(CHROMIUM).exists():
        return None
    from playwright.sync_api import sync_playwright

    paints = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.goto(f"{base}/login")
        page.select_option("#organisation", orgnr)
        page.click("form[action='/login/development'] button[type=submit]")
        page.wait_for_selector("table.worklist")
        for _ in range(loads):
            page.goto(f"{base}/", wait_until="load")
            paint = page.evaluate(
                "performance.getEntriesByName('first-contentful-paint').map(e => e.startTime)[0] || null"
            )
            if paint is not None:
                paints.append(float(paint))
        browser.close()
    return paints


Statement = tuple[str, Any, bool]  # statement, parameters, executemany


async def run_sql(scenario: Scenario, settings: Settings, count: int) -> None:
    """Record each input's statements once, then replay them `count` times, rolled back."""
    engine = create_engine(settings, "rpm-bench-sql")
    recorded: list[Statement] = []

    def remember(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, executemany: bool) -> None:
        recorded.append((statement, parameters, executemany))

    try:
        sessions = session_factory(engine)
        replays: list[list[Statement]] = []
        for _, orgnr, call in scenario.requests:
            actor = Actor(Staff(sub="bench-nurse", name=None, hpr=None, orgnr=orgnr, roles=frozenset({Role.nurse})))
            recorded.clear()
            event.listen(engine.sync_engine, "before_cursor_execute", remember)
            try:
                async with sessions() as session:
                    await call(session, actor)
                    await session.rollback()
            finally:
                event.remove(engine.sync_engine, "before_cursor_execute", remember)
            replays.append(list(recorded))
        async with engine.connect() as connection:
            for number in range(WARM_UP + count):
                statements = replays[number % len(replays)]
                started = time.perf_counter()
                transaction = await connection.begin()
                for statement, parameters, _ in statements:
                    await connection.exec_driver_sql(statement, parameters)
                await transaction.rollback()
                elapsed = (time.perf_counter() - started) * 1000
                if number >= WARM_UP:
                    scenario.sql_ms.append(elapsed)
    finally:
        await engine.dispose()


def report(results: list[Scenario], inputs: Inputs, count: int, database: str, paints: list[float] | None) -> bool:
    print()
    print(
        f"Staff API latency, {count} requests per scenario, database {database} "
        f"(about {inputs.observations_estimate:,} Observations), {datetime.now(UTC):%Y-%m-%d %H:%M} UTC"
    )
    header = f"{'scenario':48} {'API p50':>9} {'API p99':>9} {'SQL p50':>9} {'SQL p99':>9} {'target':>9}  result"
    print(header)
    print("-" * len(header))
    ok = True
    for s in results:
        api50, api99 = percentile(s.api_ms, 0.5), percentile(s.api_ms, 0.99)
        sql50, sql99 = percentile(s.sql_ms, 0.5), percentile(s.sql_ms, 0.99)
        if s.target_ms is None:
            verdict, target = "(no target)", "-"
        else:
            met = api99 < s.target_ms
            ok &= met
            verdict, target = ("PASS" if met else "FAIL"), f"< {s.target_ms:.0f} ms"
        print(f"{s.name:48} {api50:7.1f}ms {api99:7.1f}ms {sql50:7.1f}ms {sql99:7.1f}ms {target:>9}  {verdict}")
    if paints is not None and paints:
        met = percentile(paints, 0.99) < 1000
        ok &= met
        print(
            f"{'staff page: first paint of the worklist (chromium)':48} {percentile(paints, 0.5):7.1f}ms "
            f"{percentile(paints, 0.99):7.1f}ms {'':>9} {'':>9} {'< 1000 ms':>9}  {'PASS' if met else 'FAIL'}"
        )
    elif paints is None:
        print(f"{'staff page: first paint of the worklist':48} (no chromium at {CHROMIUM}: not measured)")
    print()
    print(
        "API: wall time per request as the client sees it (HTTP, token, queries, audit, commit, JSON), one at a time."
    )
    print("SQL: the same statements with the same parameters, replayed on one connection and rolled back.")
    mean_api = statistics.fmean(percentile(s.api_ms, 0.5) for s in results)
    log(f"mean API p50 over the scenarios: {mean_api:.1f} ms")
    return ok


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database", default="rpm_seed", help="a database written by bench/seed.py")
    parser.add_argument("--requests", type=int, default=500, help="timed requests per scenario (at least 500)")
    parser.add_argument("--orgnr", default="974600951", help="the organisation whose patients the scenarios use")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--only", default=None, help="run the scenarios whose name contains this text")
    args = parser.parse_args(argv)
    rng = random.Random(args.seed)
    env = {k: v for k, v in os.environ.items() if not k.startswith("RPM_")}
    env.update(RPM_ENVIRONMENT="development", RPM_DATABASE_URL=db_url(args.database))
    subprocess.run([str(RPM), "migrate"], env=env, cwd=PROJECT, check=True, capture_output=True)
    inputs = pick_inputs(args.database, args.orgnr, 100, rng)
    log(
        f"{len(inputs.orgnrs)} organisations; {len(inputs.patients)} patients of {args.orgnr}; "
        f"about {inputs.observations_estimate:,} Observations"
    )
    folder = Path(tempfile.mkdtemp(prefix="rpm-bench-api-"))
    key_path = folder / "dev-key.pem"
    settings = Settings(
        environment="development", database_url=db_url(args.database), dev_auth=True, dev_key_path=key_path
    )
    tokens = {
        orgnr: mint_dev_token(settings, sub=f"bench-{orgnr}", orgnr=orgnr, roles=["nurse"], ttl_seconds=3600)
        for orgnr in {*inputs.orgnrs, args.orgnr}
    }
    api = ApiProcess(args.database, key_path, folder / "api.log")
    now = datetime.now(UTC)
    results = [s for s in scenarios(inputs, args.orgnr, now) if args.only is None or args.only in s.name]
    paints: list[float] | None = []
    try:
        api.wait_ready()
        for scenario in results:
            log(f"{scenario.name}: {args.requests} requests")
            run_api(scenario, api.base, tokens, args.requests)
            asyncio.run(run_sql(scenario, settings, args.requests))
            log(
                f"  API p99 {percentile(scenario.api_ms, 0.99):.1f} ms, "
                f"SQL p99 {percentile(scenario.sql_ms, 0.99):.1f} ms"
            )
        if not args.only:
            log("staff page: first paint of the worklist, 50 loads in chromium")
            paints = first_paint(api.base, args.orgnr, 50)
    finally:
        code = api.stop()
        if code not in (0, None):
            log(f"rpm api exited with {code}; its log: {api.log_path}")
    return 0 if report(results, inputs, args.requests, args.database, paints) else 1


if __name__ == "__main__":
    sys.exit(main())
