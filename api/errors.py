"""One place that turns errors into responses: JSON under /api, OperationOutcome under /fhir."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from sqlalchemy.exc import DBAPIError
from starlette.exceptions import HTTPException as StarletteHTTPException

from rpm.errors import DomainError, NotAuthenticated

log = logging.getLogger("rpm.api")
FHIR_JSON = "application/fhir+json"

_ISSUE_CODES = {
    400: "invalid",
    401: "login",
    403: "forbidden",
    404: "not-found",
    405: "not-supported",
    409: "conflict",
    422: "invalid",
    503: "transient",
}


def operation_outcome(status: int, code: str, detail: str) -> dict[str, Any]:
    return {
        "resourceType": "OperationOutcome",
        "issue": [
            {
                "severity": "error",
                "code": _ISSUE_CODES.get(status, "exception"),
                "details": {"text": detail, "coding": [{"system": "urn:rpm:error", "code": code}]},
                "diagnostics": detail,
            }
        ],
    }


# Everything else is the staff page, which answers in HTML.
NOT_PAGES = ("/api/", "/fhir", "/healthz", "/readyz", "/metrics", "/docs", "/redoc", "/openapi.json", "/static/")


def is_page(request: Request) -> bool:
    return not request.url.path.startswith(NOT_PAGES)


def render(request: Request, status: int, code: str, detail: str) -> Response:
    if is_page(request):
        from rpm.api.web.errors import render_page  # the page's templates load only where pages are asked for

        return render_page(request, status, code, detail)
    headers = {"WWW-Authenticate": 'Bearer error="invalid_token"'} if status == 401 else None
    if request.url.path.startswith("/fhir"):
        return JSONResponse(operation_outcome(status, code, detail), status, headers=headers, media_type=FHIR_JSON)
    return JSONResponse({"error": code, "detail": detail}, status, headers=headers)


class BodyTooLarge(StarletteHTTPException):
    """A request body over RPM_API_MAX_BODY_BYTES (api.security.BodyLimit), noticed while it is
    read: an HTTPException, so FastAPI's body parsing passes it on rather than calling it a
    malformed body."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"the request body is larger than {limit} bytes (RPM_API_MAX_BODY_BYTES)")


def _field(location: tuple[Any, ...]) -> str:
    parts = [str(p) for p in location if p not in ("body", "query", "path")]
    return ".".join(parts) or "request"


def install(app: FastAPI) -> None:
    @app.exception_handler(DomainError)
    async def domain_error(request: Request, error: DomainError) -> Response:
        if isinstance(error, NotAuthenticated):
            return render(request, 401, error.code, error.detail)
        return render(request, error.status, error.code, error.detail)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, error: RequestValidationError) -> Response:
        problems = "; ".join(f"{_field(e['loc'])}: {e['msg']}" for e in error.errors())
        return render(request, 422, "invalid_request", problems)

    @app.exception_handler(BodyTooLarge)
    async def body_too_large(request: Request, error: BodyTooLarge) -> Response:
        return render(request, 413, "payload_too_large", str(error.detail))

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, error: StarletteHTTPException) -> Response:
        code = {404: "not_found", 405: "method_not_allowed"}.get(error.status_code, "http_error")
        return render(request, error.status_code, code, str(error.detail))

    @app.exception_handler(DBAPIError)
    async def database_error(request: Request, error: DBAPIError) -> Response:
        # A value the database cannot hold (SQLSTATE class 22: out of range, bad encoding) is the
        # request's fault; the checks at the edge should have caught it, this says so anyway.
        if str(getattr(error.orig, "sqlstate", "") or "").startswith("22"):
            log.warning("a request value the database refused on %s: %s", request.url.path, error.orig)
            return render(request, 422, "invalid_request", "a value in the request is out of range")
        return await unexpected(request, error)

    @app.exception_handler(Exception)
    async def unexpected(request: Request, error: Exception) -> Response:
        # The caller learns nothing of the error itself (no trace, no message, which may hold
        # data), only the request id to quote, which the log line carries too.
        request_id = getattr(request.state, "request_id", "")
        log.exception("unhandled error on %s %s (request %s)", request.method, request.url.path, request_id)
        detail = f"an unexpected error occurred; it has been logged (request {request_id})"
        response = render(request, 500, "internal_error", detail)
        # This answer is made outside the app's middleware (Starlette's last resort), which
        # would otherwise add these.
        from rpm.api.security import add_headers

        response.headers["X-Request-ID"] = request_id
        add_headers(request, response, request.app.state.settings)
        return response
