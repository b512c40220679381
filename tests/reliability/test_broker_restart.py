"""The broker restarts during a burst: the worker reconnects to its session, subscribes again,
and every reading is stored exactly once and answered.

Real processes: `rpm ingest`, and a mosquitto of the test's own with persistence (as in
production), stopped with SIGTERM and started again on the same port while a reference
gateway keeps publishing.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from rpm.config import Settings
from tests.fixtures.waiting import wait_until
from tests.fixtures.world import enrol_with_devices
from tests.reliability.processes import Burst, RestartableBroker, start_worker, stored


async def test_a_broker_restart_mid_burst_loses_nothing_and_doubles_nothing(
    settings: Settings, committed, own_organisation, tmp_path: Path
):
    [scale] = await enrol_with_devices(committed, own_organisation, ["body-weight"])
    broker = RestartableBroker(tmp_path)
    broker.start()
    own = Settings.model_validate(settings.model_dump() | {"mqtt_url": broker.url})
    worker = burst = None
    try:
        worker = await asyncio.to_thread(start_worker, own, tmp_path / "worker.log")
        burst = Burst(broker.url, own.mqtt_topic_root, scale.serial)
        await asyncio.to_thread(burst.start)
        await wait_until(lambda: burst.answered() >= 500, "500 readings answered before the restart", 60)

        await asyncio.to_thread(broker.restart)
        assert burst.answered() < len(burst.readings), "the burst ended before the broker restarted"
        # The same worker process signs in again and subscribes (ready only after the SUBACK).
        await wait_until(worker.ready, "the worker subscribed again after the restart", 60)

        await asyncio.to_thread(burst.finish, 180)
        assert worker.process.poll() is None, "the worker exited instead of reconnecting"
        stats = burst.gateway.stats()
        assert stats.unexpected == [] and stats.rejected == {}, stats.summary()
        assert await asyncio.to_thread(worker.stop) == 0
    finally:
        if burst is not None:
            burst.close()
        if worker is not None:
            worker.kill()
        broker.stop()
    total, distinct = await stored(committed, scale.device_id)
    assert (total, distinct) == (len(burst.readings), len(burst.readings))
    # It came back to the session the broker kept on disk, not to a new one.
    sign_ins = [line for line in (tmp_path / "worker.log").read_text().splitlines() if "connected to" in line]
    assert len(sign_ins) >= 2 and "session present: True" in sign_ins[-1], sign_ins
