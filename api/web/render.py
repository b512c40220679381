"""Rendering the staff page: one Jinja environment, its filters, and the page context."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse
from jinja2 import Environment, FileSystemLoader, select_autoescape

from rpm.api.web.texts import DEFAULT_LANGUAGE, text
from rpm.norway import OSLO

TEMPLATES = Path(__file__).parent / "templates"
STATIC = Path(__file__).parent / "static"
NOTHING = "\u2013"  # an en dash: no value

environment = Environment(
    loader=FileSystemLoader(TEMPLATES), autoescape=select_autoescape(["html"]), trim_blocks=True, lstrip_blocks=True
)


def local(moment: datetime | None, pattern: str = "%d.%m.%Y %H:%M") -> str:
    """A time as staff in Norway read it."""
    return moment.astimezone(OSLO).strftime(pattern) if moment is not None else NOTHING


def iso(moment: datetime | None) -> str:
    return moment.astimezone(OSLO).isoformat() if moment is not None else ""


# Pages show patient data: never kept by a browser or proxy cache (the back button after signing
# out on a shared tablet). That they are never framed, run only the service's own scripts and
# send no address elsewhere, every response says (api.security).
PAGE_HEADERS = {"Cache-Control": "no-store"}

UNITS = {"nb": ("min", "t", "d"), "en": ("min", "h", "d")}


def since(moment: datetime | None, language: str = DEFAULT_LANGUAGE, now: datetime | None = None) -> str:
    """How long ago, to the minute under an hour and to the hour under two days: "3 t 5 min"."""
    if moment is None:
        return NOTHING
    minutes = max(0, int(((now or datetime.now(UTC)) - moment).total_seconds() // 60))
    minute, hour, day = UNITS.get(language, UNITS["nb"])
    if minutes < 60:
        return f"{minutes} {minute}"
    if minutes < 48 * 60:
        return f"{minutes // 60} {hour} {minutes % 60} {minute}"
    return f"{minutes // (24 * 60)} {day} {minutes % (24 * 60) // 60} {hour}"


def number(value: float | None, language: str = DEFAULT_LANGUAGE, decimals: int = 1) -> str:
    """A measured value with at most `decimals` decimals, with a decimal comma in Norwegian."""
    if value is None:
        return NOTHING
    shown = f"{value:.{decimals}f}".rstrip("0").rstrip(".") if decimals else f"{value:.0f}"
    return shown.replace(".", ",") if language == "nb" else shown


def clock(moment: datetime | None, now: datetime | None = None) -> str:
    """A time soon to come or just gone, as staff read it: "14:30" today, "02.12. 08:00" on
    another day."""
    if moment is None:
        return NOTHING
    shown, today = moment.astimezone(OSLO), (now or datetime.now(UTC)).astimezone(OSLO).date()
    return shown.strftime("%H:%M" if shown.date() == today else "%d.%m. %H:%M")


environment.filters.update(local=local, iso=iso, clock=clock)


def page(request: Request, template: str, status: int = 200, **context: Any) -> HTMLResponse:
    """A page or fragment, with the texts of the caller's language and the session's CSRF token."""
    signed = getattr(request.state, "signed", None)
    language = signed.language if signed is not None else request.cookies.get("rpm_lang", DEFAULT_LANGUAGE)
    if language not in ("nb", "en"):
        language = DEFAULT_LANGUAGE
    html = environment.get_template(template).render(
        request=request,
        language=language,
        t=lambda key: text(language, key),
        since=lambda moment: since(moment, language),
        num=lambda value, decimals=1: number(value, language, decimals),
        signed=signed,
        staff=signed.staff if signed is not None else None,
        csrf_token=signed.csrf_token if signed is not None else "",
        **context,
    )
    return HTMLResponse(html, status, headers={"Content-Language": language, **PAGE_HEADERS})
