"""An organisation's follow-up service settings (GET/PUT /api/v1/organisations/{orgnr}/service)."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

Orgnr = Annotated[str, Field(pattern=r"^[0-9]{9}$")]
Clock = Annotated[str, Field(pattern=r"^[0-9]{2}:[0-9]{2}$", examples=["08:00"])]


class ServiceHoursModel(BaseModel):
    """When the service is staffed: ISO days of the week (1 Monday ... 7 Sunday), wall-clock
    start and end (HH:MM, end after start) in `timezone`, and whether on Norwegian public
    holidays too."""

    model_config = ConfigDict(extra="forbid")

    days: list[Annotated[int, Field(ge=1, le=7)]] = Field(min_length=1, max_length=7)
    start: Clock
    end: Clock
    timezone: str = Field(default="Europe/Oslo", max_length=64)
    holidays: bool = False


class ServiceSettingsIn(BaseModel):
    """The whole of the settings (PUT): a field left out or null takes its default."""

    model_config = ConfigDict(extra="forbid")

    service_hours: ServiceHoursModel | None = None
    escalate_red_minutes: Annotated[int, Field(ge=1, le=1440)] | None = None
    out_of_hours_partner: Orgnr | None = None


class ServiceSettingsOut(BaseModel):
    """The settings in force, defaults filled in; `*_default` says where a default applies."""

    organisation: str
    service_hours: ServiceHoursModel
    service_hours_default: bool
    escalate_red_minutes: float
    escalate_red_minutes_default: bool
    out_of_hours_partner: str | None
    out_of_hours_partner_name: str | None
