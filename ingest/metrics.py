"""Prometheus metrics of the ingest worker, and the small HTTP server that exposes them."""

from __future__ import annotations

import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest


class IngestMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.accepted = Counter("rpm_readings_accepted", "Readings stored as Observations", registry=self.registry)
        self.duplicates = Counter("rpm_readings_duplicate", "Readings already stored", registry=self.registry)
        self.rejected = Counter(
            "rpm_readings_rejected", "Readings or messages rejected, by reason", ["reason"], registry=self.registry
        )
        self.batch_readings = Histogram(
            "rpm_ingest_batch_readings",
            "Readings per committed batch",
            buckets=(1, 10, 50, 100, 250, 500, 1000, 2000, 5000, 10000),
            registry=self.registry,
        )
        self.lag = Histogram(
            "rpm_ingest_lag_seconds",
            "From a reading's time to the commit that stored it",
            buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 3600, 86400),
            registry=self.registry,
        )
        self.batch_failures = Counter(
            "rpm_ingest_batch_failures", "Batches whose transaction failed and was retried", registry=self.registry
        )
        self.rule_errors = Counter(
            "rpm_rule_errors",
            "Readings stored although judging them against the rules failed",
            registry=self.registry,
        )
        self.alerts_opened = Counter(
            "rpm_alerts_opened", "Alerts opened by the rules", ["rule"], registry=self.registry
        )
        self.alerts_escalated = Counter(
            "rpm_alerts_escalated", "Alerts escalated unacknowledged", registry=self.registry
        )
        self.session_present = Gauge(
            "rpm_ingest_session_present",
            "1 when the broker had kept this worker's session at its last connect (readings queued while away)",
            registry=self.registry,
        )
        self.session_expiry = Gauge(
            "rpm_ingest_session_expiry_seconds",
            "How long the broker keeps this worker's session after a disconnect without retiring",
            registry=self.registry,
        )
        self.message_failures = Counter(
            "rpm_ingest_message_failures",
            "Failed tries of a message recorded on its own (it stays unacknowledged and is tried again later)",
            registry=self.registry,
        )


def serve(metrics: IngestMetrics, port: int, ready: Callable[[], bool], host: str = "127.0.0.1") -> ThreadingHTTPServer:
    """Serve /metrics, /healthz and /readyz on `port` from a daemon thread."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path == "/metrics":
                status, body, kind = 200, generate_latest(metrics.registry), CONTENT_TYPE_LATEST
            elif self.path == "/healthz":
                status, body, kind = 200, b'{"status":"ok"}', "application/json"
            elif self.path == "/readyz":
                ok = ready()
                status, kind = (200 if ok else 503), "application/json"
                body = b'{"status":"ready"}' if ok else b'{"status":"not ready"}'
            else:
                status, body, kind = 404, b'{"error":"not_found"}', "application/json"
            self.send_response(status)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer((host, port), Handler)
    threading.Thread(target=server.serve_forever, name="metrics", daemon=True).start()
    return server
