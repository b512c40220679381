"""The staff page's routes, found in api.web.pages, and its static files (with the vendored
htmx and uPlot)."""

from __future__ import annotations

import importlib
import pkgutil

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from rpm.api.web import pages
from rpm.api.web.render import STATIC


def install(app: FastAPI) -> None:
    for module in sorted(pkgutil.iter_modules(pages.__path__), key=lambda m: m.name):
        app.include_router(importlib.import_module(f"{pages.__name__}.{module.name}").router)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
