"""Payloads of the gateway endpoints (api.md)."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from rpm.gateways.models import GATEWAY_ID_PATTERN


class GatewayCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str = Field(pattern=GATEWAY_ID_PATTERN, description="the gateway id of its MQTT topics")
    name: str = Field(min_length=1, max_length=200)


class GatewayOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    name: str
    organisation: str  # organisation number
    registered_at: datetime
    status: Literal["online", "offline"] | None  # the last status it announced, if any
    status_changed_at: datetime | None
    last_message_at: datetime | None  # of any message on its topics, as the workers last recorded it
