"""`rpm api`: check the database, then serve the app with uvicorn."""

from __future__ import annotations

import asyncio
import signal

import uvicorn

from rpm.api.app import create_app
from rpm.config import Settings
from rpm.db import create_engine, require_migrated
from rpm.runtime import FreeMemoryReturner, tune_garbage_collection


async def _check(settings: Settings) -> None:
    engine = create_engine(settings, "rpm-api")
    try:
        await require_migrated(engine)
    finally:
        await engine.dispose()


def serve(settings: Settings, *, host: str, port: int) -> int:
    # Fail with the clear message (run `rpm migrate`) before uvicorn starts.
    asyncio.run(_check(settings))
    # uvicorn shuts down gracefully on SIGTERM/SIGINT, then raises the signal again for the
    # handler that was there before it. A no-op handler lets a clean stop exit 0.
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: None)
    app = create_app(settings)
    tune_garbage_collection()
    returner = FreeMemoryReturner(settings.memory_return_seconds).start()
    try:
        uvicorn.run(app, host=host, port=port, log_level="info", proxy_headers=True)
    finally:
        returner.stop()
    return 0
