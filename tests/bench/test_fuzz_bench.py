"""bench/fuzz.py runs end to end (its database, echo baseline, worker, checks and report), on a
few hundred messages instead of 100,000, against the test session's servers."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.fixtures.servers import postgres_server

PROJECT = Path(__file__).resolve().parents[2]


def test_the_fuzz_benchmark_reports_every_message_answered(broker: tuple[str, int]) -> None:
    host, port = broker
    with postgres_server() as maintenance:
        env = os.environ | {"BENCH_POSTGRES_URL": maintenance, "BENCH_MQTT_URL": f"mqtt://{host}:{port}"}
        done = subprocess.run(
            [sys.executable, str(PROJECT / "bench" / "fuzz.py"), "--messages", "300", "--seed", "1"],
            cwd=PROJECT, env=env, capture_output=True, text=True, timeout=240, check=False,
        )  # fmt: skip
    assert done.returncode == 0, f"{done.stdout}\n{done.stderr[-4000:]}"
    assert "bench/fuzz.py: 300 generated messages" in done.stdout
    assert "problems (wrong, missing or doubled answers; rows lost or unexpected): 0" in done.stdout
    assert "worker crashes: 0" in done.stdout and "result: PASS" in done.stdout
