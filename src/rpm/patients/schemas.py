"""Payloads of enrolment (api.md): field names are part of the contract."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Literal, get_args

from pydantic import AliasChoices, AliasPath, BaseModel, ConfigDict, Field, field_validator, model_validator

from rpm.fhir.codes import known_reading_type
from rpm.patients.identity import InvalidIdentityNumber, parse_identity_number

Condition = Literal["copd", "heart-failure", "diabetes", "hypertension"]
CONDITIONS: tuple[Condition, ...] = get_args(Condition)


class CareTeamEntry(BaseModel):
    model_config = ConfigDict(populate_by_name=True, extra="forbid")

    organisation: str = Field(pattern=r"^[0-9]{9}$", description="organisation number")
    from_: date = Field(alias="from")
    to: date | None = None

    @model_validator(mode="after")
    def _ordered(self) -> CareTeamEntry:
        if self.to is not None and self.to < self.from_:
            raise ValueError("to: must not be before from")
        return self


class PlanItem(BaseModel):
    model_config = ConfigDict(extra="forbid")

    type: str
    every_hours: int = Field(ge=1, le=24 * 31)

    _known_type = field_validator("type")(known_reading_type)


def _unique_types(plan: list[PlanItem] | None) -> list[PlanItem] | None:
    if plan is not None and len({p.type for p in plan}) != len(plan):
        raise ValueError("each reading type at most once")
    return plan


class PatientCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    identifier: str
    name: str = Field(min_length=1, max_length=200)
    birth_date: date
    conditions: list[Condition] = Field(default_factory=list)
    care_team: list[CareTeamEntry] = Field(min_length=1)
    measurement_plan: list[PlanItem] = Field(default_factory=list)
    # Days from enrolment in which readings alert only on the red edges, after which the service
    # proposes the patient's own bands (rules.md); 0 for none; unset: RPM_START_PERIOD_DAYS.
    start_period_days: int | None = Field(default=None, ge=0, le=90)

    @field_validator("identifier")
    @classmethod
    def _identity_number(cls, value: str) -> str:
        try:
            parse_identity_number(value)
        except InvalidIdentityNumber as error:
            raise ValueError(f"not a valid national identity number or D-number: {error}") from None
        return value

    @model_validator(mode="after")
    def _birth_date_matches(self) -> PatientCreate:
        if parse_identity_number(self.identifier).birth_date != self.birth_date:
            raise ValueError("birth_date: does not match the date in identifier")
        return self

    _plan = field_validator("measurement_plan")(_unique_types)


class PatientPatch(BaseModel):
    """Any subset of the enrolment; `status: "ended"` ends the follow-up."""

    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(default=None, min_length=1, max_length=200)
    conditions: list[Condition] | None = None
    care_team: list[CareTeamEntry] | None = Field(default=None, min_length=1)
    measurement_plan: list[PlanItem] | None = None
    status: Literal["active", "ended"] | None = None

    _plan = field_validator("measurement_plan")(_unique_types)


class CareTeamOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    organisation: str = Field(validation_alias=AliasChoices(AliasPath("organisation", "orgnr"), "organisation"))
    from_: date = Field(validation_alias=AliasChoices("period_from", "from_"), serialization_alias="from")
    to: date | None = Field(validation_alias=AliasChoices("period_to", "to"))


class PlanItemOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    type: str = Field(validation_alias=AliasChoices("reading_type", "type"))
    every_hours: int


class PatientOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    identifier: str
    identifier_system: str
    name: str
    birth_date: date
    conditions: list[str]
    care_team: list[CareTeamOut]
    measurement_plan: list[PlanItemOut]
    status: Literal["active", "ended"]
    follow_up_ended_at: datetime | None
    start_period_days: int | None = Field(description="null: no start period")
    created_at: datetime = Field(description="enrolment; the start period counts from it")


Priority = Literal["red", "yellow", "missing", "green"]
PatientSort = Literal["priority", "name", "last_reading", "-last_reading"]


class PlanStatus(BaseModel):
    """One reading type of the measurement plan: when it was last measured, whether it is
    overdue by the missing-measurement rule, and the last 7 days' adherence."""

    type: str
    every_hours: int
    last_reading_at: datetime | None
    missing: bool
    received: int  # intervals of the last 7 days with at least one reading
    expected: int  # intervals of the last 7 days since enrolment


class Adherence(BaseModel):
    """Over the last 7 days, all planned types together: intervals with a reading / intervals."""

    received: int
    expected: int
    ratio: float | None  # None while nothing is expected yet (enrolled today)


class NewestAlert(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    rule: str
    level: Literal["yellow", "red"]
    status: str
    opened_at: datetime
    last_reading_at: datetime | None
    value: float | None
    unit: str | None
    action: str | None = None  # the self-management plan's action at the alert's level
    # Who works the alert (sub and name; null: nobody), and until when it is snoozed (null: not
    # snoozed; a time passed: the worker's clock has yet to end the snooze).
    assigned_to: str | None = None
    assigned_to_name: str | None = None
    snoozed_until: datetime | None = None


class PatientSummary(PatientOut):
    """A row of the nurse's worklist (GET /patients)."""

    priority: Priority
    worst_alert_level: Literal["yellow", "red"] | None
    active_alerts: int
    unacknowledged_since: datetime | None  # the oldest unacknowledged alert of the priority's level
    newest_alert: NewestAlert | None
    # What the action plan says to do for the most urgent active alert (the oldest of the worst
    # level): the newest alert may be a yellow one beside a red.
    action: str | None = None
    last_reading: datetime | None  # of any type
    last_reading_at: dict[str, datetime]  # by reading type of the measurement plan
    plan: list[PlanStatus]
    adherence: Adherence
