"""Who is calling: staff identity from token claims, and the rules of what they may do."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from rpm.config import Settings
from rpm.errors import Forbidden, NotAuthenticated


class Role(StrEnum):
    nurse = "nurse"
    physician = "physician"
    admin = "admin"


@dataclass(frozen=True)
class Staff:
    sub: str
    name: str | None
    hpr: str | None
    orgnr: str
    roles: frozenset[Role]

    def require(self, *roles: Role) -> None:
        if not self.roles.intersection(roles):
            wanted = " or ".join(r.value for r in roles)
            raise Forbidden("forbidden", f"this needs the role {wanted}")


def staff_from_claims(claims: Mapping[str, Any], settings: Settings) -> Staff:
    """The caller's identity; the organisation is orgnr_child when present, else orgnr_parent."""
    sub = claims.get("sub")
    if not isinstance(sub, str) or not sub:
        raise NotAuthenticated("invalid_token", "the token has no subject")
    orgnr = claims.get(settings.claim_orgnr_child) or claims.get(settings.claim_orgnr_parent)
    if not isinstance(orgnr, str | int) or not str(orgnr).isdigit() or len(str(orgnr)) != 9:
        raise Forbidden("no_organisation", "the token names no 9-digit organisation number")
    raw_roles = claims.get(settings.claim_roles) or []
    if isinstance(raw_roles, str):
        raw_roles = raw_roles.split()
    roles = frozenset(Role(r) for r in raw_roles if r in Role.__members__)
    if not roles:
        # Reading patients' data and working their alerts is for nurses, physicians and
        # admins; a token of the organisation with some other role (or none) may do nothing.
        raise Forbidden("no_role", f"the token names none of the roles {', '.join(r.value for r in Role)}")
    hpr = claims.get(settings.claim_hpr)
    name = claims.get("name")
    return Staff(
        sub=sub,
        name=name if isinstance(name, str) else None,
        hpr=str(hpr) if hpr is not None else None,
        orgnr=str(orgnr),
        roles=roles,
    )
