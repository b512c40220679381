"""Errors on the staff page: a page in the caller's language, or the way to sign in."""

from __future__ import annotations

from urllib.parse import quote, urlsplit

from fastapi import Request
from fastapi.responses import RedirectResponse, Response

from rpm.api.web.render import page

MESSAGES = {401: "sign_in.expired", 403: "error.forbidden", 404: "error.not_found"}


def render_page(request: Request, status: int, code: str, detail: str) -> Response:
    if status == 401 and code == "sign_in_failed" and request.method == "GET":
        # The issuer's return went wrong: the sign-in page says so and offers to try again.
        return RedirectResponse("/login?failed=1", 303)
    if status == 401:
        target = "/login?next=" + quote(request.url.path + (f"?{request.url.query}" if request.url.query else ""))
        if request.headers.get("hx-request"):
            # htmx follows HX-Redirect with a full page load; a 3xx it would follow itself. After
            # signing in, back to the page the browser showed, not to the fragment it asked for.
            shown = urlsplit(request.headers.get("hx-current-url", ""))
            back = (shown.path or "/") + (f"?{shown.query}" if shown.query else "")
            return Response(status_code=401, headers={"HX-Redirect": "/login?next=" + quote(back)})
        if request.method == "GET":
            return RedirectResponse(target, 303)
    message = MESSAGES.get(status)
    return page(request, "error.html", status, status_code=status, code=code, detail=detail, message=message)
