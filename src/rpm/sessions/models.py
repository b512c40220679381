"""Signed-in staff sessions and sign-ins under way, kept server-side (backend for frontend).

The browser holds only a random token in an HttpOnly cookie; the database holds its SHA-256,
so a copy of the table signs nobody in. No bearer token ever reaches the browser.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import String, Text, func
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from rpm.db import Base


class WebSession(Base):
    __tablename__ = "web_sessions"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)  # sha256 of the cookie's token, hex
    staff: Mapped[dict[str, Any]] = mapped_column(JSONB)  # sub, name, hpr, orgnr, roles
    csrf_token: Mapped[str] = mapped_column(String(64))
    language: Mapped[str] = mapped_column(String(2))
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())
    last_seen_at: Mapped[datetime]
    expires_at: Mapped[datetime]  # a working day after sign-in, whatever the activity


class WebSignIn(Base):
    """An OpenID Connect sign-in between the redirect to the issuer and its return."""

    __tablename__ = "web_sign_ins"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)  # sha256 of `state`, hex
    browser: Mapped[str] = mapped_column(String(64))  # sha256 of the cookie that binds it to the browser
    code_verifier: Mapped[str] = mapped_column(String(128))  # PKCE
    nonce: Mapped[str] = mapped_column(String(64))
    return_to: Mapped[str] = mapped_column(Text)
    expires_at: Mapped[datetime]
