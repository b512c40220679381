"""Health, readiness and Prometheus metrics of the API process."""

from __future__ import annotations

import httpx
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy.ext.asyncio import create_async_engine

from rpm.api.app import create_app
from tests.conftest import ORG_A


async def test_healthz(client):
    r = await client.get("/healthz")
    assert r.status_code == 200
    assert r.json() == {"status": "ok"}


async def test_readyz(client):
    r = await client.get("/readyz")
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "ready"


async def test_readyz_is_503_without_database(settings, engine):
    app = create_app(settings, engine=engine)
    async with app.router.lifespan_context(app):
        unreachable = create_async_engine("postgresql+asyncpg://nobody@127.0.0.1:1/none")
        app.state.engine = unreachable
        try:
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://rpm.test") as http:
                r = await http.get("/readyz")
        finally:
            await unreachable.dispose()
    assert r.status_code == 503
    assert r.json()["status"] == "not ready"


async def test_metrics_are_prometheus_text(client, tokens):
    await client.get("/healthz")
    await client.get("/api/v1/patients", headers=tokens(ORG_A))
    await client.get("/api/v1/patients")  # 401
    r = await client.get("/metrics")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/plain")
    families = {f.name: f for f in text_string_to_metric_families(r.text)}
    assert "rpm_api_requests" in families and "rpm_api_request_seconds" in families
    counts = {
        (s.labels["route"], s.labels["status"]): s.value
        for s in families["rpm_api_requests"].samples
        if s.name == "rpm_api_requests_total"
    }
    assert counts[("/healthz", "200")] == 1
    assert counts[("/api/v1/patients", "200")] == 1
    assert counts[("/api/v1/patients", "401")] == 1


def test_rpm_api_stops_cleanly_on_sigterm(database_url, dev_key):
    """An operator's `kill` (or an orchestrator's stop) ends `rpm api` with exit code 0."""
    import os
    import signal
    import subprocess
    import sys
    import time
    import urllib.request

    from tests.fixtures.servers import free_port

    port = free_port()
    env = {
        **os.environ,
        "RPM_DATABASE_URL": database_url,
        "RPM_DEV_AUTH": "true",
        "RPM_DEV_KEY_PATH": str(dev_key),
        "RPM_ENVIRONMENT": "development",
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "rpm.cli", "api", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=1) as response:
                    assert response.status == 200
                    break
            except OSError:
                assert time.monotonic() < deadline and process.poll() is None, "rpm api did not start"
                time.sleep(0.1)
        process.send_signal(signal.SIGTERM)
        assert process.wait(20) == 0
    finally:
        if process.poll() is None:
            process.kill()
