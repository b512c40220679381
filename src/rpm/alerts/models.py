"""Alerts, the Observations that triggered them, and the events of the live stream."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Double,
    ForeignKey,
    Identity,
    Index,
    Integer,
    String,
    Text,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from rpm.db import Base, uuid_pk


class AlertStatus(StrEnum):
    """open -> acknowledged -> resolved; open -> resolved is allowed (rules.md)."""

    open = "open"
    acknowledged = "acknowledged"
    resolved = "resolved"


class ResolutionOutcome(StrEnum):
    """What was done, recorded when an alert is resolved (api.md)."""

    contacted_patient = "contacted-patient"
    advice_given = "advice-given"
    referred_to_gp = "referred-to-gp"
    referred_to_emergency = "referred-to-emergency"
    no_action_needed = "no-action-needed"


# Active alerts: at most one per patient and rule.
ACTIVE = (AlertStatus.open, AlertStatus.acknowledged)
_ACTIVE_SQL = "status in ('open', 'acknowledged')"


class Alert(Base):
    __tablename__ = "alerts"
    __table_args__ = (
        CheckConstraint("level in ('yellow', 'red')", name="level_known"),
        CheckConstraint(f"status in {tuple(s.value for s in AlertStatus)}", name="status_known"),
        CheckConstraint("status <> 'resolved' or note is not null", name="resolved_with_note"),
        CheckConstraint(
            f"outcome is null or outcome in {tuple(o.value for o in ResolutionOutcome)}", name="outcome_known"
        ),
        # At most one active alert per patient and rule, whichever worker evaluates.
        Index(
            "uq_alerts_active_rule",
            "patient_id",
            "rule",
            unique=True,
            postgresql_where=text(_ACTIVE_SQL),
        ),
        Index("ix_alerts_queue", "status", "level", "escalated", "opened_at"),
        Index("ix_alerts_patient", "patient_id", "status"),
        Index(
            "ix_alerts_handed_over_to",
            "handed_over_to",
            postgresql_where=text(f"handed_over_to is not null and {_ACTIVE_SQL}"),
        ),
        # "My alerts": the active ones assigned to a staff member.
        Index(
            "ix_alerts_assigned_to", "assigned_to", postgresql_where=text(f"assigned_to is not null and {_ACTIVE_SQL}")
        ),
        CheckConstraint("snoozed_until is null or snooze_reason is not null", name="snoozed_with_reason"),
        CheckConstraint("comments >= 0", name="comments_counted"),
    )

    id: Mapped[uuid.UUID] = uuid_pk()
    patient_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("patients.id"))
    rule: Mapped[str] = mapped_column(String(64))
    level: Mapped[str] = mapped_column(String(8))
    status: Mapped[AlertStatus] = mapped_column(String(16), default=AlertStatus.open)
    escalated: Mapped[bool] = mapped_column(Boolean, default=False)
    escalated_at: Mapped[datetime | None]
    late: Mapped[bool] = mapped_column(Boolean, default=False)
    opened_at: Mapped[datetime]
    raised_at: Mapped[datetime]  # when the alert reached its current level (escalation clock)
    last_reading_at: Mapped[datetime | None]
    occurrences: Mapped[int] = mapped_column(Integer, default=1)
    value: Mapped[float | None] = mapped_column(Double)
    unit: Mapped[str | None] = mapped_column(String(16))
    threshold: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    thresholds_version: Mapped[int] = mapped_column(Integer, default=0)
    # What the patient's action plan says to do at the alert's level, as agreed when the alert
    # reached that level (action_plans), and the plan's version.
    action: Mapped[str | None] = mapped_column(Text)
    action_plan_version: Mapped[int | None] = mapped_column(Integer)
    # Opened (or raised to red) outside the service hours of the patient's follow-up service;
    # a red one is then handed over to its out-of-hours partner organisation, whose staff see
    # the patient while the alert is active.
    outside_service_hours: Mapped[bool] = mapped_column(default=False, server_default=text("false"))
    handed_over_to: Mapped[uuid.UUID | None]  # the partner organisation's id
    handed_over_at: Mapped[datetime | None]
    # The staff member working the alert (their sub and name), who assigned it and when; null:
    # nobody. Only a staff member the service knows (staff.models.StaffMember) is assigned.
    assigned_to: Mapped[str | None] = mapped_column(Text)
    assigned_to_name: Mapped[str | None] = mapped_column(Text)
    assigned_by: Mapped[str | None] = mapped_column(Text)
    assigned_at: Mapped[datetime | None]
    # Snoozed: out of the queue's default view until `snoozed_until` (at most 24 hours after
    # `snoozed_at`), with who and why. Cleared when the snooze ends (the worker's clock, staff
    # waking it, or the alert rising to red); the reason and who stay as the last snooze's.
    snoozed_until: Mapped[datetime | None]
    snoozed_at: Mapped[datetime | None]
    snoozed_by: Mapped[str | None] = mapped_column(Text)
    snoozed_by_name: Mapped[str | None] = mapped_column(Text)
    snooze_reason: Mapped[str | None] = mapped_column(Text)
    # Who ended the last snooze before its time (null: it ran out, or the alert rose to red).
    woken_by: Mapped[str | None] = mapped_column(Text)
    woken_by_name: Mapped[str | None] = mapped_column(Text)
    comments: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))  # how many AlertComments
    acknowledged_by: Mapped[str | None] = mapped_column(Text)
    acknowledged_by_name: Mapped[str | None] = mapped_column(Text)
    acknowledged_at: Mapped[datetime | None]
    resolved_by: Mapped[str | None] = mapped_column(Text)
    resolved_by_name: Mapped[str | None] = mapped_column(Text)
    resolved_at: Mapped[datetime | None]
    note: Mapped[str | None] = mapped_column(Text)
    outcome: Mapped[str | None] = mapped_column(String(32))  # ResolutionOutcome
    updated_at: Mapped[datetime]


class AlertObservation(Base):
    """Evidence: an Observation that triggered (or re-triggered) the alert, with its value."""

    __tablename__ = "alert_observations"
    __table_args__ = (Index("ix_alert_observations_alert_time", "alert_id", "effective_at"),)

    alert_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("alerts.id"), primary_key=True)
    observation_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("observations.id"), primary_key=True)
    value: Mapped[float | None] = mapped_column(Double)
    effective_at: Mapped[datetime]


class AlertComment(Base):
    """A staff member's note on an alert, in order; never changed or removed."""

    __tablename__ = "alert_comments"
    __table_args__ = (
        Index("ix_alert_comments_alert_id", "alert_id", "id"),
        CheckConstraint("length(text) between 1 and 4000", name="text_length"),
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    alert_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("alerts.id"))
    at: Mapped[datetime]
    by_sub: Mapped[str] = mapped_column(Text)
    by_name: Mapped[str | None] = mapped_column(Text)
    by_org: Mapped[str] = mapped_column(String(9))
    text: Mapped[str] = mapped_column(Text)


class AlertEvent(Base):
    """What the live stream sends. Ids follow commit order (see alerts.events)."""

    __tablename__ = "alert_events"
    __table_args__ = (Index("ix_alert_events_patient", "patient_id", "id"),)

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    alert_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("alerts.id"))
    patient_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("patients.id"))
    kind: Mapped[str] = mapped_column(String(16))  # opened, changed, escalated, resolved
    at: Mapped[datetime]
    alert: Mapped[dict[str, Any]] = mapped_column(JSONB)  # the queue item as it was
