"""The alert queue item (api.md): field names are part of the contract."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Literal

from pydantic import AliasChoices, AwareDatetime, BaseModel, ConfigDict, Field, field_validator

from rpm.alerts.models import AlertStatus, ResolutionOutcome


class AlertItem(BaseModel):
    """Built from an Alert or a row with the same column names (`from_attributes`); the
    references to its newest triggering Observations come from `observations` when the row
    has them, else they are filled in by the service."""

    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    patient: uuid.UUID = Field(validation_alias=AliasChoices("patient_id", "patient"))
    rule: str
    level: Literal["yellow", "red"]
    status: AlertStatus
    escalated: bool
    late: bool
    opened_at: datetime
    last_reading_at: datetime | None
    occurrences: int
    value: float | None
    unit: str | None
    threshold: dict[str, Any] | None
    observations: list[str] = Field(default_factory=list)
    acknowledged_by: str | None
    acknowledged_at: datetime | None
    resolved_by: str | None
    resolved_at: datetime | None
    note: str | None
    outcome: ResolutionOutcome | None = None
    escalated_at: datetime | None
    thresholds_version: int
    # What the patient's self-management plan says to do at the alert's level, as agreed when
    # the alert reached that level (null: no plan, or no action for the level), and its version.
    action: str | None = None
    action_plan_version: int | None = None
    # Opened or raised to red outside the service hours of the patient's care team, and then
    # handed over to that team's out-of-hours partner organisation (its organisation number;
    # null: not handed over) at `handed_over_at`; the partner sees the patient while the alert
    # is active.
    outside_service_hours: bool = False
    handed_over_to: str | None = Field(
        default=None, validation_alias=AliasChoices("handed_over_to_orgnr", "handed_over_to")
    )
    handed_over_at: datetime | None = None
    # The staff member working the alert (sub and name; null: nobody), and who last changed the
    # assignment and when (on unassigning: who took it off). Only a staff member of an
    # organisation that may see the patient is assigned (docs/staff-api.md).
    assigned_to: str | None = None
    assigned_to_name: str | None = None
    assigned_by: str | None = None
    assigned_at: datetime | None = None
    # Snoozed until (null: not snoozed): out of the queue's default view, at most 24 hours;
    # who snoozed it, when and why stay as the last snooze's after it ends.
    snoozed_until: datetime | None = None
    snoozed_at: datetime | None = None
    snoozed_by: str | None = None
    snoozed_by_name: str | None = None
    snooze_reason: str | None = None
    # Who woke the alert before its snooze ran out (null: it ran out, or the alert rose to red).
    woken_by: str | None = None
    woken_by_name: str | None = None
    comments: int = 0  # how many comments staff wrote on the alert

    @field_validator("handed_over_to", mode="before")
    @classmethod
    def _partner_orgnr(cls, value: Any) -> Any:
        """An Alert's own column holds the partner's internal id: never shown; the service
        fills in the organisation number."""
        return None if isinstance(value, uuid.UUID) else value


class EnteredInError(BaseModel):
    """Staff marked the reading as a mistake: when, who (sub and name) and why."""

    at: datetime
    by: str | None
    by_name: str | None = None
    reason: str | None


class EvidenceItem(BaseModel):
    observation: str
    value: float | None
    effective_at: datetime
    # Set in an alert's detail when staff marked the reading entered in error.
    entered_in_error: EnteredInError | None = None


class AlertDetail(AlertItem):
    evidence: list[EvidenceItem] = Field(default_factory=list)


HistoryKind = Literal[
    "opened",
    "raised",
    "acknowledged",
    "escalated",
    "assigned",
    "unassigned",
    "snoozed",
    "woke",
    "commented",
    "resolved",
]


class HistoryEntry(BaseModel):
    """One step of an alert's life: who did it (a staff member's sub, "system" for the rules,
    None for the rules' own steps), when, and the alert's level and value after it."""

    kind: HistoryKind
    at: datetime
    level: Literal["yellow", "red"]
    value: float | None = None
    unit: str | None = None
    by: str | None = None
    by_name: str | None = None
    note: str | None = None
    outcome: ResolutionOutcome | None = None
    # assigned: to whom; snoozed: until when and why; commented: the comment.
    assigned_to: str | None = None
    assigned_to_name: str | None = None
    until: datetime | None = None
    reason: str | None = None
    text: str | None = None


class ResolveIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    note: str = Field(min_length=1, max_length=4000)
    outcome: ResolutionOutcome | None = None


class AssignIn(BaseModel):
    """A staff member's `sub` (GET /api/v1/staff lists who may be assigned), or null to take the
    alert off whoever has it."""

    model_config = ConfigDict(extra="forbid")

    assignee: str | None = Field(min_length=1, max_length=256)


# The longest a snooze may last (docs/staff-api.md): by then somebody looks at the alert again.
MAX_SNOOZE_HOURS = 24


class SnoozeIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    until: AwareDatetime = Field(description=f"after now, at most {MAX_SNOOZE_HOURS} hours ahead")
    reason: str = Field(min_length=1, max_length=500)


class CommentIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    text: str = Field(min_length=1, max_length=4000)


class CommentOut(BaseModel):
    """A comment on an alert: who wrote it (sub and name), when, and what."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    at: datetime
    by: str = Field(validation_alias=AliasChoices("by_sub", "by"))
    by_name: str | None
    text: str
