"""What every response says about itself to browsers, and the cap on request bodies.

Pages get a Content-Security-Policy that lets only the service's own files run (every script
and style is served from /static; htmx is told not to inject styles nor evaluate attributes).
The API and FHIR answers are data: nothing on them may load or run anything, and nothing is
kept by a cache. FastAPI's /docs and /redoc pages load Swagger UI and ReDoc from their CDN with
an inline script: they keep only the framing rule.
"""

from __future__ import annotations

from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from rpm.api import errors
from rpm.config import Environment, Settings

PAGE_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
DATA_POLICY = "default-src 'none'; frame-ancestors 'none'"
DOCUMENTATION = ("/docs", "/redoc")
HSTS = "max-age=31536000; includeSubDomains"


def add_headers(request: Request, response: Response, settings: Settings) -> None:
    path = request.url.path
    headers = response.headers
    headers["X-Content-Type-Options"] = "nosniff"
    headers["Referrer-Policy"] = "no-referrer"
    headers["X-Frame-Options"] = "DENY"
    if path.startswith(DOCUMENTATION):
        headers["Content-Security-Policy"] = "frame-ancestors 'none'"
    elif errors.is_page(request):
        headers["Content-Security-Policy"] = PAGE_POLICY
    else:
        headers["Content-Security-Policy"] = DATA_POLICY
    if path.startswith(("/api/", "/fhir")) and "cache-control" not in headers:
        headers["Cache-Control"] = "no-store"  # patient data: never kept by a browser or proxy
    if settings.environment is Environment.production:
        headers["Strict-Transport-Security"] = HSTS


class BodyLimit:
    """At most `limit` bytes of request body: a declared larger one is refused before it is
    read, a chunked one (no Content-Length) as soon as it has grown past the limit."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = Headers(scope=scope).get("content-length", "")
        if declared.isdigit() and int(declared) > self.limit:
            refusal = errors.BodyTooLarge(self.limit)
            response = errors.render(Request(scope), 413, "payload_too_large", str(refusal.detail))
            await response(scope, receive, send)
            return
        received = 0

        async def limited() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.limit:
                    raise errors.BodyTooLarge(self.limit)
            return message

        await self.app(scope, limited, send)
