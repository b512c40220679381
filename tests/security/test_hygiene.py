"""Security hygiene of the API and the page (issue 10, item 5).

- Request bodies are capped (RPM_API_MAX_BODY_BYTES): a larger one is answered 413 in the
  error format, whether it declares its length or comes chunked, over ASGI and over a socket.
- Every response carries the security headers; pages a Content-Security-Policy that runs only
  the service's own scripts (and the pages have no inline script it would block); production
  adds Strict-Transport-Security.
- An unexpected exception in a route answers a generic 500 with the request id: no trace, no
  exception text.
- CORS: none unless origins are named; `*` refused in production, like the development key.
- Secrets come from the environment only; production never touches the development key.
- A token or page session with none of the roles is refused (403), not let in as a reader.
"""

from __future__ import annotations

import asyncio
import re
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from rpm.access.staff import Role, Staff, staff_from_claims
from rpm.access.tokens import TokenVerifier, mint_dev_token
from rpm.api.app import create_app
from rpm.api.deps import get_session
from rpm.config import Settings
from rpm.errors import Forbidden
from rpm.sessions import service as web_sessions
from tests.api.helpers import assert_error, enrol, enrolment, new_organisation
from tests.conftest import ORG_A
from tests.fixtures.servers import free_port

LIMIT = 4096
PRODUCTION = {
    "environment": "production",
    "dev_auth": False,
    "oidc_issuer": "https://helseid.example",
    "oidc_jwks_url": "https://helseid.example/jwks",
}


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"api_max_body_bytes": LIMIT})


@pytest.fixture
async def quiet_client(
    settings: Settings, engine: AsyncEngine, session: AsyncSession
) -> AsyncIterator[httpx.AsyncClient]:
    """The `client` fixture's app, answering an app error as a server does instead of raising it
    into the test."""
    app = create_app(settings, engine=engine)

    async def test_session() -> AsyncIterator[AsyncSession]:
        try:
            yield session
            await session.commit()
        except BaseException:
            await session.rollback()
            raise

    app.dependency_overrides[get_session] = test_session
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://rpm.test") as http:
            yield http


async def chunks(total: int, size: int = 1000) -> AsyncIterator[bytes]:
    """A JSON body of `total` bytes sent in pieces, without a Content-Length."""
    body = b'{"note": "' + b"x" * (total - 12) + b'"}'
    for start in range(0, len(body), size):
        yield body[start : start + size]


def assert_too_large(response: httpx.Response) -> None:
    body = assert_error(response, 413)
    assert body["error"] == "payload_too_large"
    assert str(LIMIT) in body["detail"]
    assert response.headers["x-request-id"]
    assert response.headers["x-content-type-options"] == "nosniff"


# -- body size ------------------------------------------------------------------------------


async def test_a_declared_body_over_the_limit_is_413(client, tokens):
    big = enrolment(name="K" * LIMIT)
    r = await client.post("/api/v1/patients", headers=tokens(ORG_A, "admin"), json=big)
    assert_too_large(r)


async def test_a_chunked_body_over_the_limit_is_413(client, tokens):
    alert = uuid.uuid4()
    headers = {**tokens(ORG_A, "nurse"), "Content-Type": "application/json"}
    r = await client.post(f"/api/v1/alerts/{alert}/resolve", headers=headers, content=chunks(LIMIT * 3))
    assert "content-length" not in r.request.headers
    assert_too_large(r)


async def test_a_body_under_the_limit_reaches_the_route(client, tokens):
    """The same requests, smaller: the route answers (validation, not the cap)."""
    r = await client.post("/api/v1/patients", headers=tokens(ORG_A, "admin"), json=enrolment(name="K" * 300))
    assert_error(r, 422, "name")
    headers = {**tokens(ORG_A, "nurse"), "Content-Type": "application/json"}
    r = await client.post(f"/api/v1/alerts/{uuid.uuid4()}/resolve", headers=headers, content=chunks(LIMIT // 2))
    assert_error(r, 404)


async def test_a_page_form_over_the_limit_is_413(client, session):
    org = await new_organisation(session)
    r = await client.post("/login/development", data={"organisation": org, "roles": ["admin"], "sub": "a" * LIMIT})
    assert r.status_code == 413
    assert r.headers["content-type"].startswith("text/html")


async def test_the_limit_holds_over_a_socket_for_a_chunked_body(settings: Settings, engine: AsyncEngine, tokens):
    """uvicorn in front: the body streams in, and the answer comes before it is all sent."""
    app = create_app(settings, engine=engine)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=free_port(), log_level="warning"))
    task = asyncio.create_task(server.serve())
    try:
        async with asyncio.timeout(30):
            while not server.started:
                assert not task.done(), "the server did not start"
                await asyncio.sleep(0.02)
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{server.config.port}", timeout=30) as http:
            headers = {**tokens(ORG_A, "nurse"), "Content-Type": "application/json"}
            r = await http.post(f"/api/v1/alerts/{uuid.uuid4()}/resolve", headers=headers, content=chunks(LIMIT * 50))
            assert r.request.headers["transfer-encoding"] == "chunked"
            assert_too_large(r)
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 15)


def test_the_limit_is_a_setting_within_bounds():
    assert Settings().api_max_body_bytes == 1024 * 1024
    with pytest.raises(ValidationError):
        Settings(api_max_body_bytes=10)


# -- security headers -----------------------------------------------------------------------


def assert_common_headers(response: httpx.Response) -> None:
    headers = response.headers
    assert headers["x-content-type-options"] == "nosniff", response.url
    assert headers["referrer-policy"] == "no-referrer", response.url
    assert headers["x-frame-options"] == "DENY", response.url
    assert "frame-ancestors 'none'" in headers["content-security-policy"], response.url
    assert "strict-transport-security" not in headers, "HSTS only in production"


async def test_every_kind_of_response_carries_the_headers(client, tokens, session):
    nurse = tokens(ORG_A, "nurse")
    data = [
        await client.get("/api/v1/patients", headers=nurse),
        await client.get("/api/v1/patients"),  # 401
        await client.get(f"/api/v1/patients/{uuid.uuid4()}", headers=nurse),  # 404
        await client.get("/api/v1/nothing-here"),
        await client.get("/fhir/metadata"),
        await client.get("/fhir/Patient", headers=nurse, params={"identifier": "x"}),
        await client.get("/healthz"),
        await client.get("/openapi.json"),
    ]
    for response in data:
        assert_common_headers(response)
        assert response.headers["content-security-policy"] == "default-src 'none'; frame-ancestors 'none'"
    for response in data[:6]:
        assert response.headers["cache-control"] == "no-store", response.url
    static = await client.get("/static/app.js")
    assert_common_headers(static)
    docs = await client.get("/docs")  # Swagger UI from its CDN: only the framing rule
    assert_common_headers(docs)
    assert docs.headers["content-security-policy"] == "frame-ancestors 'none'"

    org = await new_organisation(session)
    pages = [await client.get("/login"), await client.get("/", follow_redirects=False)]
    await client.post("/login/development", data={"organisation": org, "roles": ["admin"], "sub": "admin-1"})
    pages += [await client.get("/"), await client.get("/admin"), await client.get(f"/patients/{uuid.uuid4()}")]
    for response in pages:
        assert_common_headers(response)
        policy = response.headers["content-security-policy"]
        assert "script-src 'self';" in policy and "unsafe" not in policy and "default-src 'self'" in policy
    assert [r.status_code for r in pages] == [200, 303, 200, 200, 404]


async def test_pages_have_no_script_the_policy_would_block(client, tokens, session):
    """Every <script> names a file of ours, or is data (type=application/json); no inline
    handlers; htmx is told neither to inject styles nor to evaluate attributes."""
    org = await new_organisation(session)
    await client.post("/login/development", data={"organisation": org, "roles": ["admin"], "sub": "admin-1"})
    patient = await enrol(client, tokens(org, "admin"), org)
    shown = []
    for path in (
        "/",
        "/admin",
        "/admin/devices",
        "/admin/patients/new",
        f"/patients/{patient['id']}",
        f"/patients/{patient['id']}/thresholds",
    ):
        r = await client.get(path)
        assert r.status_code == 200, path
        shown.append(r.text)
    await client.post("/logout", data={"csrf_token": csrf(shown[0])})
    shown.append((await client.get("/login")).text)
    for html in shown:
        for tag in re.findall(r"<script\b[^>]*>", html):
            assert re.search(r'\bsrc="/static/', tag) or 'type="application/json"' in tag, tag
        assert not re.search(r"\son[a-z]+=", html), "an inline event handler"
        assert "javascript:" not in html
        assert not re.search(r'\sstyle="', html), "an inline style attribute"
    assert '"allowEval": false' in shown[0] and '"includeIndicatorStyles": false' in shown[0]


def csrf(html: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert found
    return found.group(1)


async def test_production_adds_strict_transport_security(database_url: str, engine: AsyncEngine):
    production = Settings(database_url=database_url, **PRODUCTION)
    app = create_app(production, engine=engine)
    async with app.router.lifespan_context(app):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="https://rpm.test") as http:
            for path in ("/healthz", "/login", "/api/v1/patients"):
                r = await http.get(path)
                assert r.headers["strict-transport-security"] == "max-age=31536000; includeSubDomains", path


# -- no stack traces ------------------------------------------------------------------------

SECRET = "Kari Nordmann 13097248022 at db.internal:5432"


def boom(*args: Any, **kwargs: Any) -> Any:
    raise RuntimeError(SECRET)


def assert_generic_500(response: httpx.Response, body_text: str) -> str:
    assert response.status_code == 500, response.text
    request_id = response.headers["x-request-id"]
    assert request_id and request_id in body_text, "the caller can quote the request id"
    for leak in ("Traceback", "RuntimeError", SECRET, 'File "', ".py"):
        assert leak not in response.text, leak
    assert_common_headers(response)
    return request_id


async def test_an_unexpected_error_is_a_generic_500_with_the_request_id(quiet_client, tokens, monkeypatch, caplog):
    from rpm.patients import service as patients

    monkeypatch.setattr(patients, "read", boom)
    monkeypatch.setattr(patients, "read_model", boom)
    nurse = tokens(ORG_A, "nurse")
    r = await quiet_client.get(f"/api/v1/patients/{uuid.uuid4()}", headers=nurse)
    body = r.json()
    assert set(body) == {"error", "detail"} and body["error"] == "internal_error"
    request_id = assert_generic_500(r, body["detail"])
    assert any(request_id in m and record.exc_info for record in caplog.records for m in [record.getMessage()]), (
        "the log has the trace, under the same request id"
    )

    r = await quiet_client.get(f"/fhir/Patient/{uuid.uuid4()}", headers={**nurse, "X-Request-ID": "trace-me-42"})
    assert r.headers["content-type"].startswith("application/fhir+json")
    outcome = r.json()
    assert outcome["resourceType"] == "OperationOutcome"
    assert assert_generic_500(r, outcome["issue"][0]["diagnostics"]) == "trace-me-42"


async def test_an_unexpected_error_on_a_page_is_a_generic_page(quiet_client, session, monkeypatch):
    from rpm.api.web.pages import worklist

    monkeypatch.setattr(worklist, "_rows", boom)
    org = await new_organisation(session)
    await quiet_client.post("/login/development", data={"organisation": org, "roles": ["nurse"], "sub": "n-1"})
    r = await quiet_client.get("/")
    assert r.headers["content-type"].startswith("text/html")
    assert_generic_500(r, r.text)


# -- CORS -----------------------------------------------------------------------------------

PORTAL = "https://portal.example.no"


def preflight(origin: str) -> dict[str, str]:
    return {"Origin": origin, "Access-Control-Request-Method": "GET", "Access-Control-Request-Headers": "authorization"}


async def test_no_cors_unless_origins_are_named(client, tokens):
    r = await client.options("/api/v1/patients", headers=preflight(PORTAL))
    assert "access-control-allow-origin" not in r.headers
    r = await client.get("/api/v1/patients", headers={**tokens(ORG_A), "Origin": PORTAL})
    assert r.status_code == 200 and "access-control-allow-origin" not in r.headers


async def test_named_origins_only(settings: Settings, engine: AsyncEngine, tokens):
    app = create_app(settings.model_copy(update={"cors_origins": f"{PORTAL}, https://other.example/"}), engine=engine)
    async with app.router.lifespan_context(app):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://rpm.test") as http:
            r = await http.options("/api/v1/patients", headers=preflight(PORTAL))
            assert r.status_code == 200 and r.headers["access-control-allow-origin"] == PORTAL
            assert "access-control-allow-credentials" not in r.headers, "bearer tokens, never cookies"
            r = await http.options("/api/v1/patients", headers=preflight("https://evil.example"))
            assert r.status_code == 400 and "access-control-allow-origin" not in r.headers
            r = await http.get("/api/v1/patients", headers={**tokens(ORG_A), "Origin": "https://other.example"})
            assert r.headers["access-control-allow-origin"] == "https://other.example"


def test_production_refuses_any_origin_and_the_development_key(monkeypatch):
    assert Settings(**PRODUCTION, cors_origins=PORTAL).cors_origin_list == [PORTAL]
    with pytest.raises(ValidationError, match="RPM_CORS_ORIGINS"):
        Settings(**PRODUCTION, cors_origins=f"{PORTAL},*")
    with pytest.raises(ValidationError, match="RPM_DEV_AUTH"):
        Settings(**{**PRODUCTION, "dev_auth": True})
    assert Settings(cors_origins="*").cors_origin_list == ["*"], "development may"
    for wrong in ("portal.example.no", "https://portal.example.no/path", "ftp://x.example"):
        with pytest.raises(ValidationError, match="RPM_CORS_ORIGINS"):
            Settings(cors_origins=wrong)
    for name, value in PRODUCTION.items():
        monkeypatch.setenv(f"RPM_{name.upper()}", str(value))
    monkeypatch.setenv("RPM_CORS_ORIGINS", "*")
    with pytest.raises(ValidationError, match="RPM_CORS_ORIGINS"):
        Settings()


# -- secrets --------------------------------------------------------------------------------


def test_settings_come_from_the_environment_only():
    assert Settings.model_config.get("env_file") is None, "no .env or secrets file is read"
    assert Settings.model_config.get("secrets_dir") is None
    shown = repr(Settings(oidc_client_secret="client-s3cret", mqtt_password="broker-s3cret"))
    assert "client-s3cret" not in shown and "broker-s3cret" not in shown


async def test_production_never_reads_or_makes_the_development_key(tmp_path: Path):
    key = tmp_path / "dev-key.pem"
    production = Settings(**PRODUCTION, dev_key_path=key)
    TokenVerifier(production)
    assert not key.exists()
    with pytest.raises(Forbidden):
        mint_dev_token(production, sub="x", orgnr=ORG_A, roles=["admin"])
    assert not key.exists()


# -- callers without a role -----------------------------------------------------------------


@pytest.mark.parametrize("roles", [[], ["receptionist"], "", None], ids=["empty", "unknown", "blank", "absent"])
def test_a_token_without_a_known_role_is_refused(settings: Settings, roles: Any):
    claims = {"sub": "s", settings.claim_orgnr_child: ORG_A, settings.claim_roles: roles}
    with pytest.raises(Forbidden) as refused:
        staff_from_claims(claims, settings)
    assert refused.value.code == "no_role"
    assert staff_from_claims({**claims, settings.claim_roles: ["receptionist", "nurse"]}, settings).roles == {
        Role.nurse
    }


async def test_no_role_is_403_on_the_api_and_the_page(client, tokens, settings, session):
    patient = await enrol(client, tokens(ORG_A, "admin"))
    headers = {"Authorization": "Bearer " + mint_dev_token(settings, sub="x", orgnr=ORG_A, roles=["receptionist"])}
    for path in ("/api/v1/patients", f"/api/v1/patients/{patient['id']}", "/api/v1/alerts"):
        assert assert_error(await client.get(path, headers=headers), 403)["error"] == "no_role"
    # A page session with no role (made before sign-in refused such people) is refused too.
    token, _ = await web_sessions.start(
        session, Staff(sub="x", name=None, hpr=None, orgnr=ORG_A, roles=frozenset()), now=datetime.now(UTC), hours=1
    )
    await session.commit()  # kept when a refused request rolls its changes back
    client.cookies.set("rpm_session", token)
    assert (await client.get("/")).status_code == 403
    assert (await client.get(f"/patients/{patient['id']}")).status_code == 403
