"""A staff member as the directory lists them: who may be assigned an alert."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class StaffMemberOut(BaseModel):
    """A staff member the service knows, of one organisation (a person working for two
    organisations is listed once for each)."""

    model_config = ConfigDict(from_attributes=True)

    sub: str
    name: str | None
    orgnr: str
    roles: list[str]
