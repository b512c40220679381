"""Every mapped table, imported in one place so the metadata is complete (Alembic, tests)."""

from rpm.action_plans.models import ActionPlan
from rpm.alerts.models import Alert, AlertComment, AlertEvent, AlertObservation
from rpm.audit.models import AuditRecord
from rpm.db import Base
from rpm.devices.models import Device, DeviceAssignment
from rpm.gateways.models import Gateway, GatewayStatus
from rpm.observations.models import Observation
from rpm.organisations.models import Organisation
from rpm.patients.models import CareTeamMember, MeasurementPlanItem, Patient
from rpm.rejections.models import RejectedReading
from rpm.rules.models import ThresholdOverride, ThresholdProposal
from rpm.sessions.models import WebSession, WebSignIn
from rpm.staff.models import StaffMember

__all__ = [
    "ActionPlan",
    "Alert",
    "AlertComment",
    "AlertEvent",
    "AlertObservation",
    "AuditRecord",
    "Base",
    "CareTeamMember",
    "Device",
    "DeviceAssignment",
    "Gateway",
    "GatewayStatus",
    "MeasurementPlanItem",
    "Observation",
    "Organisation",
    "Patient",
    "RejectedReading",
    "StaffMember",
    "ThresholdOverride",
    "ThresholdProposal",
    "WebSession",
    "WebSignIn",
]
