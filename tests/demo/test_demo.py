"""`rpm demo` as a new user runs it: on embedded services, printing what works as printed,
showing patients and alerts, and stopping on Ctrl-C with nothing left running."""

from __future__ import annotations

import os
import re
import shlex
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import psutil
import pytest

from tests.fixtures.servers import free_port

pytestmark = pytest.mark.slow


class DemoProcess:
    """`python -m rpm demo` with its output collected line by line."""

    def __init__(self, argv: list[str], env: dict[str, str], cwd: Path) -> None:
        self.lines: list[str] = []
        self._changed = threading.Condition()
        self.process = subprocess.Popen(
            argv, env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            with self._changed:
                self.lines.append(line.rstrip("\n"))
                self._changed.notify_all()

    def wait_for_line(self, pattern: str, seconds: float) -> re.Match[str]:
        deadline = time.monotonic() + seconds
        with self._changed:
            seen = 0
            while True:
                for line in self.lines[seen:]:
                    if match := re.search(pattern, line):
                        return match
                seen = len(self.lines)
                remaining = deadline - time.monotonic()
                if remaining <= 0 or (self.process.poll() is not None and seen == len(self.lines)):
                    raise AssertionError(f"no line matching {pattern!r} in {seconds:.0f} s:\n" + self.output())
                self._changed.wait(min(remaining, 0.5))

    def output(self) -> str:
        with self._changed:
            return "\n".join(self.lines[-80:])


def _wait_until(condition, what: str, seconds: float):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + seconds
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {seconds:.0f} s")
        time.sleep(0.5)


def _processes_under(folder: Path) -> list[psutil.Process]:
    """Processes whose command line names the demo's folder: its database server, broker, API, worker."""
    found = []
    for process in psutil.process_iter(["cmdline"]):
        try:
            if any(str(folder) in part for part in process.info["cmdline"] or []):
                found.append(process)
        except psutil.Error:
            continue
    return found


@pytest.mark.parametrize("broker", ["embedded", "auto"])
def test_the_demo_runs_on_embedded_services_and_stops_on_ctrl_c(tmp_path: Path, broker: str) -> None:
    # Nothing configured: no RPM_DATABASE_URL, no RPM_MQTT_URL.
    demo_env = {k: v for k, v in os.environ.items() if not k.startswith("RPM_")}
    port = free_port()
    data_dir = tmp_path / "demo-data"
    started = time.monotonic()
    demo = DemoProcess(
        [
            sys.executable,
            "-m",
            "rpm",
            "demo",
            "--port",
            str(port),
            "--patients",
            "12",
            "--data-dir",
            str(data_dir),
            "--broker",
            broker,
        ],
        demo_env,
        tmp_path,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        _wait_until(lambda: _answers(f"{base}/healthz"), "/healthz", 120)
        demo.wait_for_line(r"Staff web page:\s+http://127\.0\.0\.1:\d+/login", 120)
        nurse = demo.wait_for_line(r"^\s*NURSE=(\S+)$", 5).group(1)
        banner_at = time.monotonic()
        started_processes = psutil.Process(demo.process.pid).children(recursive=True) + _processes_under(data_dir)
        assert len(started_processes) >= 3  # at least the database server, the API and the worker

        # The curl lines work exactly as printed.
        curls = [line.strip() for line in demo.lines if line.strip().startswith("curl ")]
        assert len(curls) == 3
        for line in curls:
            argv = shlex.split(line)
            assert argv[0] == "curl"
            headers = dict(a.split(": ", 1) for a in argv if a.startswith("Authorization: "))
            url = argv[-1]
            response = httpx.get(url, headers=headers, timeout=10)
            assert response.status_code == 200, (line, response.text)

        headers = {"Authorization": f"Bearer {nurse}"}
        patients = httpx.get(f"{base}/api/v1/patients", params={"limit": 100}, headers=headers, timeout=10).json()
        assert len(patients["items"]) >= 10

        def alerts_now() -> list[dict]:
            return httpx.get(f"{base}/api/v1/alerts", headers=headers, timeout=10).json()["items"]

        live = _wait_until(alerts_now, "an alert on the queue", 90 - (time.monotonic() - banner_at))
        assert live[0]["level"] in {"yellow", "red"}
        # The web page's development sign-in is there.
        assert httpx.get(f"{base}/login", timeout=10).status_code == 200
        assert time.monotonic() - started < 300
    finally:
        if demo.process.poll() is None:
            demo.process.send_signal(signal.SIGINT)
        try:
            code = demo.process.wait(60)
        except subprocess.TimeoutExpired:
            demo.process.kill()
            raise AssertionError("the demo did not stop within 60 s of Ctrl-C:\n" + demo.output()) from None
    assert code == 0, demo.output()
    assert "nothing of the demo is running" in demo.output()
    _wait_until(lambda: not any(p.is_running() for p in started_processes), "every process of the demo stopped", 15)
    assert not _processes_under(data_dir)
    assert not _answers(f"http://127.0.0.1:{port}/healthz")


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.HTTPError:
        return False
