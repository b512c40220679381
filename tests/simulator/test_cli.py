"""`rpm simulate` as an operator runs it: enrol, history, live, ground truth; a clear exit code
when readings are refused; Ctrl-C stops it cleanly."""

from __future__ import annotations

import asyncio
import json
import signal
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select

from rpm.observations.models import Observation
from rpm.simulator.cohort import make_cohort
from rpm.simulator.physiology import CLINICAL_KINDS
from tests.simulator.conftest import running_worker

pytestmark = pytest.mark.slow


class Simulate:
    """`python -m rpm simulate ...` with its output read while the test's loop serves the worker."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process
        self.lines: list[str] = []

    @classmethod
    async def start(cls, *args: str) -> Simulate:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "rpm", "simulate", *args,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        )  # fmt: skip
        return cls(process)

    async def wait_for_line(self, text: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not any(text in line for line in self.lines):
            remaining = deadline - time.monotonic()
            assert remaining > 0, f"no line with {text!r} in {timeout:.0f} s:\n" + self.output()
            assert self.process.stdout is not None
            try:
                line = await asyncio.wait_for(self.process.stdout.readline(), remaining)
            except TimeoutError:
                continue
            if not line:
                raise AssertionError(f"exited before a line with {text!r}:\n" + self.output())
            self.lines.append(line.decode().rstrip())

    async def finish(self, timeout: float) -> int:
        assert self.process.stdout is not None
        rest = await asyncio.wait_for(self.process.stdout.read(), timeout)
        self.lines += rest.decode().splitlines()
        return await asyncio.wait_for(self.process.wait(), 10)

    def output(self) -> str:
        return "\n".join(self.lines[-60:])


def common(settings, *more: str) -> list[str]:  # type: ignore[no-untyped-def]
    return ["--mqtt-url", settings.mqtt_url, "--topic-root", settings.mqtt_topic_root, "--resend-after", "5", *more]


async def test_simulate_enrols_publishes_history_then_live_and_writes_the_ground_truth(
    settings, live_api, admin_token, organisation, committed, unique, tmp_path: Path
):
    truth = tmp_path / "truth.jsonl"
    async with running_worker(settings):
        run = await Simulate.start(
            *common(settings, "--patients", "8", "--seed", "41", "--days", "30", "--speed", "3600", "--duration", "8"),
            "--ground-truth", str(truth), "--enrol-api", str(live_api.base_url), "--token", admin_token,
            "--organisation", organisation, "--serial-prefix", unique,
        )  # fmt: skip
        status = await run.finish(180)
    assert status == 0, run.output()
    assert "enrolled 8 patients" in run.output() and "unexpected answers 0" in run.output()
    lines = [json.loads(line) for line in truth.read_text().splitlines()]
    assert {line["phase"] for line in lines} == {"history", "live"}
    identifiers = {p.key: p.identifier for p in make_cohort(8, 41)}
    assert all(identifiers[line["patient"]] == line["identifier"] for line in lines)
    live = [line for line in lines if line["phase"] == "live" and line["kind"] in CLINICAL_KINDS]
    assert live and all(
        datetime.fromisoformat(line["start"]) > datetime.now(UTC) - timedelta(minutes=5) for line in live
    )
    async with committed() as session:
        stored = (
            await session.execute(
                select(func.count(), func.max(Observation.effective_at)).where(
                    Observation.reading_id.like(f"{unique}-%")
                )
            )
        ).one()
        live_readings = await session.scalar(
            select(func.count()).where(Observation.reading_id.like(f"{unique}-%-L%"))
        )  # fmt: skip
    assert stored[0] > 20 and live_readings
    assert datetime.now(UTC) - stored[1] < timedelta(minutes=5)  # live readings carry the wall clock


async def test_simulate_without_enrolment_exits_1_and_says_what_to_do(settings, unique):
    async with running_worker(settings):
        run = await Simulate.start(
            *common(settings, "--patients", "2", "--seed", "42", "--days", "1", "--duration", "0"),
            "--serial-prefix", unique,
        )  # fmt: skip
        status = await run.finish(120)
    assert status == 1
    assert "unknown_device" in run.output() and "enrol the cohort first" in run.output()


async def test_simulate_stops_cleanly_on_ctrl_c(settings, live_api, admin_token, organisation, unique):
    async with running_worker(settings):
        run = await Simulate.start(
            *common(settings, "--patients", "3", "--seed", "43", "--days", "0", "--speed", "600"),
            "--enrol-api", str(live_api.base_url), "--token", admin_token, "--organisation", organisation,
            "--serial-prefix", unique,
        )  # fmt: skip
        await run.wait_for_line("publishing live", 60)
        run.process.send_signal(signal.SIGINT)
        status = await run.finish(60)
    assert status == 0, run.output()
    assert "stopping" in run.output() and "pending 0" in run.output()


async def test_simulate_says_when_the_broker_cannot_be_reached(settings):
    from tests.fixtures.servers import free_port

    run = await Simulate.start("--mqtt-url", f"mqtt://127.0.0.1:{free_port()}", "--days", "1", "--duration", "0")
    assert await run.finish(60) == 1
    assert "cannot reach the MQTT broker" in run.output()


async def test_simulate_says_when_enrolment_is_refused(settings, live_api, unique):
    run = await Simulate.start(
        *common(settings, "--patients", "1", "--seed", "44", "--days", "1", "--duration", "0"),
        "--enrol-api", str(live_api.base_url), "--token", "not-a-token", "--organisation", "974600951",
        "--serial-prefix", unique,
    )  # fmt: skip
    assert await run.finish(60) == 1
    assert "enrolment failed" in run.output() and "401" in run.output()


@pytest.mark.parametrize(
    ("arguments", "says"),
    [
        (["--enrol-api", "http://127.0.0.1:9"], "--enrol-api needs --token and --organisation"),
        (["--speed", "0"], "--speed must be positive"),
    ],
)
async def test_simulate_refuses_options_that_cannot_work(settings, arguments, says):
    run = await Simulate.start(*common(settings, "--days", "0", "--duration", "0", *arguments))
    assert await run.finish(60) == 1
    assert says in run.output()
