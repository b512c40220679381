"""The FastAPI application factory and its lifespan (engine, token verifier, HTTP client)."""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import httpx
from fastapi import FastAPI, Request, Response
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from pydantic import BaseModel
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from rpm.access.tokens import TokenVerifier
from rpm.api import errors, security
from rpm.api.fhir.router import router as fhir_router
from rpm.api.openapi import document_errors
from rpm.api.routers import (
    action_plans,
    alerts,
    audit,
    course,
    devices,
    gateways,
    observations,
    organisations,
    patients,
    rejected,
    staff,
    thresholds,
)
from rpm.api.stream import EventHub
from rpm.api.web import router as web
from rpm.api.web.oidc import OidcClient
from rpm.config import Settings
from rpm.db import create_engine, database_url, require_migrated, session_factory

log = logging.getLogger("rpm.api")


class Health(BaseModel):
    status: str


class Readiness(BaseModel):
    status: str
    database: str


class ApiMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "rpm_api_requests", "Requests by route and status", ["route", "status"], registry=self.registry
        )
        self.latency = Histogram(
            "rpm_api_request_seconds", "Request duration by route", ["route"], registry=self.registry
        )


def create_app(settings: Settings, *, engine: AsyncEngine | None = None) -> FastAPI:
    """`engine` lets tests hand in theirs; otherwise the lifespan makes and disposes one."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        own = engine is None
        url = database_url(settings)
        app.state.engine = engine or create_engine(settings, "rpm-api", url=url)
        hub = None
        try:
            await require_migrated(app.state.engine)
            app.state.sessions = session_factory(app.state.engine)
            app.state.hub = hub = EventHub(url, app.state.sessions, settings.sse_queue_events)
            await hub.start()
            async with httpx.AsyncClient() as http:
                app.state.verifier = TokenVerifier(settings, http)
                app.state.oidc = OidcClient(settings, http)
                yield
        finally:
            if hub is not None:
                await hub.stop()
            if own:
                await app.state.engine.dispose()

    app = FastAPI(title="Remote patient monitoring", version="1", lifespan=lifespan)
    app.state.settings = settings
    # The staff identities this process has written down (api.deps.remember_staff).
    app.state.staff_seen = set()
    app.state.metrics = metrics = ApiMetrics()
    errors.install(app)
    # Added before the middleware below, so it runs inside it: a refused body still gets the
    # request id and the security headers.
    app.add_middleware(security.BodyLimit, limit=settings.api_max_body_bytes)

    @app.middleware("http")
    async def request_id_and_metrics(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        incoming = request.headers.get("x-request-id", "")
        request.state.request_id = incoming[:64] if incoming else uuid.uuid4().hex
        started = time.perf_counter()
        if "\x00" in request.url.path or any("\x00" in v for _, v in request.query_params.multi_items()):
            # PostgreSQL text cannot hold NUL: refused here, once, for every route.
            response: Response = errors.render(request, 422, "invalid_request", "the request holds a NUL character")
        else:
            response = await call_next(request)
        route = getattr(request.scope.get("route"), "path", "unmatched")
        metrics.requests.labels(route, str(response.status_code)).inc()
        metrics.latency.labels(route).observe(time.perf_counter() - started)
        response.headers["X-Request-ID"] = request.state.request_id
        security.add_headers(request, response, settings)
        return response

    if settings.cors_origin_list:
        # Outermost, so a preflight is answered before anything else; only the named origins.
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origin_list,
            allow_methods=["GET", "POST", "PUT", "PATCH", "DELETE"],
            allow_headers=["Authorization", "Content-Type", "Last-Event-ID", "X-Request-ID"],
            expose_headers=["X-Request-ID"],
        )

    app.include_router(patients.router)
    app.include_router(course.router)
    app.include_router(thresholds.router)
    app.include_router(action_plans.router)
    app.include_router(devices.router)
    app.include_router(gateways.router)
    app.include_router(alerts.router)
    app.include_router(observations.router)
    app.include_router(rejected.router)
    app.include_router(audit.router)
    app.include_router(organisations.router)
    app.include_router(staff.router)
    app.include_router(fhir_router)
    web.install(app)

    @app.get("/healthz", tags=["operations"], response_model=Health)
    async def healthz() -> Health:
        return Health(status="ok")

    @app.get(
        "/readyz",
        tags=["operations"],
        response_model=Readiness,
        responses={503: {"model": Readiness, "description": "the database cannot be reached"}},
    )
    async def readyz(request: Request) -> JSONResponse:
        try:
            async with request.app.state.engine.connect() as connection:
                await connection.execute(text("select 1"))
        except Exception as error:  # any failure to reach the database means not ready
            return JSONResponse(Readiness(status="not ready", database=str(error)[:200]).model_dump(), 503)
        return JSONResponse(Readiness(status="ready", database="ok").model_dump())

    @app.get("/metrics", tags=["operations"], include_in_schema=False)
    async def prometheus() -> Response:
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    document_errors(app)
    return app
