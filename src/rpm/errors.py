"""The one error type of the domain. Each error carries a code; `api/` renders it."""

from __future__ import annotations


class DomainError(Exception):
    """Base of every error the core raises on purpose. `status` is the HTTP meaning."""

    status = 400

    def __init__(self, code: str, detail: str) -> None:
        super().__init__(detail)
        self.code = code
        self.detail = detail


class InvalidInput(DomainError):
    """Well-formed request whose content breaks a domain rule (an impossible identity number)."""

    status = 422


class NotAuthenticated(DomainError):
    status = 401


class Forbidden(DomainError):
    status = 403


class NotFound(DomainError):
    status = 404


class Conflict(DomainError):
    status = 409


class ServiceUnavailable(DomainError):
    status = 503
