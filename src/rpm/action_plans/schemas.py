"""Payloads of the action-plan endpoints: the self-management plan's action per level."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, StringConstraints, model_validator

Zone = Literal["green", "yellow", "red"]
ZONES: tuple[Zone, ...] = ("green", "yellow", "red")
ACTION_LENGTH = 500
REASON_LENGTH = 2000  # as a thresholds change's

ActionText = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=ACTION_LENGTH)]


class Actions(BaseModel):
    """What to do in each zone, as agreed with the GP; `null` (or left out): no action agreed
    for that level."""

    model_config = ConfigDict(extra="forbid")

    green: str | None = None
    yellow: str | None = None
    red: str | None = None


class ActionsIn(Actions):
    """Actions of a change: each 1-500 characters (surrounding spaces dropped) or `null`; at
    least one level has an action."""

    green: ActionText | None = None
    yellow: ActionText | None = None
    red: ActionText | None = None

    @model_validator(mode="after")
    def _at_least_one(self) -> ActionsIn:
        if all(getattr(self, zone) is None for zone in ZONES):
            raise ValueError("at least one level needs an action")
        return self


class ActionPlanChange(BaseModel):
    """The whole plan of the new version (a level left out has no action), and why."""

    model_config = ConfigDict(extra="forbid")

    reason: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=REASON_LENGTH)]
    actions: ActionsIn


class ActionPlanVersion(BaseModel):
    """A version of the patient's plan: its actions, who made it, when and why."""

    version: int
    actions: Actions
    reason: str
    changed_at: datetime
    changed_by_sub: str
    changed_by_name: str | None
    changed_by_hpr: str | None
    changed_by_org: str


class ActionPlanRecord(BaseModel):
    """The plan in force (`null`: the patient has none, and alerts carry no action) and every
    version, newest first."""

    in_force: ActionPlanVersion | None
    history: list[ActionPlanVersion]
