"""The ingest pipeline: gateway messages become Observations, kept rejections and alerts.

`record_messages` runs its steps in order, in the caller's transaction:
1. check: the contract's checks that need no database (topic, JSON, schema, units, time);
2. link: each reading to the patient its device was assigned to at the reading's time;
3. judge: each Observation-to-be against the patient's thresholds, for its interpretation;
4. store: the new Observations (a redelivered reading is a duplicate), the kept rejections
   and the gateways' statuses;
5. rules: the rules engine (rpm.rules.engine) over the new Observations; what it finds lands
   on the alert queue.

Takes a session and never commits: the ingest worker commits a whole batch, then
acknowledges. Everything a message produces is in that one transaction, so an
acknowledgement always means "durably recorded".
"""

from __future__ import annotations

import logging
import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import orjson
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession

from rpm.alerts import service as alerts
from rpm.db import new_id
from rpm.devices import repository as devices
from rpm.fhir.observation import observation_resource
from rpm.gateways import repository as gateways
from rpm.observations import repository as observations
from rpm.observations.readings import (
    Reason,
    Rejection,
    ValidReading,
    parse_status,
    parse_topic,
    split_message,
    validate_reading,
)
from rpm.rejections import repository as rejections
from rpm.rules import engine
from rpm.rules.bands import Judgement
from rpm.rules.interface import Batch
from rpm.rules.service import thresholds_for
from rpm.rules.threshold import interpret
from rpm.rules.thresholds import EffectiveThresholds

log = logging.getLogger("rpm.ingest")


@dataclass(frozen=True)
class IncomingMessage:
    topic: str
    payload: bytes
    received_at: datetime
    # Known already when a kept rejection is processed again; otherwise read from the topic.
    gateway_id: str | None = None


@dataclass
class MessageOutcome:
    """What became of one message: the ack results, in the order the readings came."""

    gateway_id: str | None  # None when the topic named no valid gateway
    answered: bool = True  # whether the gateway gets acks: measurements do, status messages don't
    results: list[dict[str, Any]] = field(default_factory=list)
    accepted: list[ValidReading] = field(default_factory=list)
    rejected: list[Rejection] = field(default_factory=list)
    duplicates: int = 0


@dataclass
class RulesReport:
    """What the rules did with a batch, for the worker's metrics."""

    errors: int = 0
    opened: list[str] = field(default_factory=list)  # rule keys of alerts opened


@dataclass
class _Pending:
    outcome: MessageOutcome
    message: IncomingMessage
    index: int  # position in outcome.results
    reading: ValidReading
    patient_id: uuid.UUID | None = None
    device_id: uuid.UUID | None = None


async def record_messages(
    session: AsyncSession,
    messages: Sequence[IncomingMessage],
    *,
    now: datetime,
    topic_root: str = "rpm/v1",
    keep_rejections: bool = True,
    rules: bool = True,
    news2_window: timedelta = timedelta(hours=1),
    report: RulesReport | None = None,
) -> list[MessageOutcome]:
    """Check, link, judge and store every reading of `messages`; keep every rejection; run the
    rules over what is new.

    `keep_rejections=False` is for reprocessing, where the rejection is already kept.
    A failure of the rules never costs a reading: judging a reading that fails stores it
    without interpretation, the rules run in a savepoint, and each error is logged and
    counted in `report`.
    """
    report = report if report is not None else RulesReport()
    recorder = _Recorder(session, now, topic_root)
    recorder.check(messages)
    linked = await recorder.link()

    thresholds: dict[uuid.UUID, EffectiveThresholds] = {}
    if rules and linked:
        thresholds = await thresholds_for(session, {item.patient_id for item in linked if item.patient_id})
    rows_of: list[list[observations.ObservationRow]] = []
    judgements: dict[uuid.UUID, dict[str, Judgement]] = {}
    for item in linked:
        assert item.patient_id is not None
        try:
            in_force = thresholds.get(item.patient_id)
            rows, judged = observation_rows(item, in_force.at(item.reading.time) if in_force else None, now)
        except Exception:
            log.exception(
                "judging reading %s/%s failed; it is stored without interpretation",
                item.reading.gateway_id,
                item.reading.reading_id,
            )
            report.errors += 1
            rows, judged = observation_rows(item, None, now)
        rows_of.append(rows)
        judgements.update(judged)

    # In key order, so two batches inserting the same redelivered readings lock them in the
    # same order and cannot deadlock.
    inserted = await observations.insert_new(
        session, sorted((r for rows in rows_of for r in rows), key=lambda r: (r.gateway_id, r.reading_id, r.code))
    )
    new: list[observations.ObservationRow] = []
    for item, rows in zip(linked, rows_of, strict=True):
        if rows[0].id not in inserted:
            item.outcome.results[item.index] = _result(item.reading.reading_id, status="duplicate")
            item.outcome.duplicates += 1
            continue
        item.outcome.results[item.index] = _result(item.reading.reading_id)
        item.outcome.accepted.append(item.reading)
        new += rows
    for gateway, status, at in recorder.statuses:
        await gateways.set_status(session, gateway, status, at)
    if keep_rejections:
        await rejections.add_all(session, recorder.rejection_rows)

    if rules and new:
        try:
            async with session.begin_nested():
                findings = await engine.judge_batch(session, Batch(new, thresholds, judgements, news2_window))
                report.opened += await alerts.land_findings(session, findings, now)
        except Exception as error:
            if isinstance(error, DBAPIError) and error.connection_invalidated:
                raise  # the database is gone: the worker retries the whole batch
            log.exception("the rules failed on a batch of %d readings; the readings are stored", len(new))
            report.errors += 1
    return recorder.outcomes


async def run_clock_rules(session: AsyncSession, now: datetime, grace: timedelta) -> int:
    """The rules that judge what did not happen (a measurement that did not come), at `now`.
    Returns how many alerts they opened."""
    return await alerts.open_findings(session, await engine.judge_clock(session, now, grace), now)


# -- the steps --------------------------------------------------------------------------


def _result(reading_id: str | None, rejection: Rejection | None = None, status: str = "accepted") -> dict[str, Any]:
    if rejection is None:
        return {"id": reading_id, "status": status}
    result: dict[str, Any] = {"id": reading_id, "status": "rejected", "reason": str(rejection.reason)}
    if rejection.detail:
        result["detail"] = rejection.detail
    return result


def _storable(text: str | None) -> str | None:
    """PostgreSQL text cannot hold U+0000; the raw payload (bytes) keeps the original."""
    return text.replace("\x00", "\ufffd") if text else text


# A serial as a payload names it, read from the raw bytes: a message that is not JSON, or too
# large to parse, still shows which devices' readings it carries.
_SERIAL = re.compile(rb'"serial"\s*:\s*"((?:[^"\\]|\\.){1,128})"')
MAX_MENTIONED = 1000


def mentioned_serials(payload: bytes) -> list[str]:
    """The device serials a raw payload names (at most MAX_MENTIONED, each once)."""
    found: dict[str, None] = {}
    for match in _SERIAL.finditer(payload):
        try:  # as JSON reads it, escapes and all
            serial = str(orjson.loads(b'"' + match.group(1) + b'"'))
        except orjson.JSONDecodeError:
            serial = match.group(1).decode("utf-8", errors="replace")
        serial = serial.replace("\x00", "\ufffd")
        found[serial] = None
        if len(found) >= MAX_MENTIONED:
            break
    return list(found)


def _rejection_row(message: IncomingMessage, gateway: str | None, rejection: Rejection) -> dict[str, Any]:
    return {
        "id": new_id(),
        "received_at": message.received_at,
        "topic": message.topic,
        "gateway_id": gateway,
        "reading_id": _storable(rejection.reading_id),
        "device_serial": _storable(rejection.device_serial),
        "reason": str(rejection.reason),
        "detail": rejection.detail,
        "payload": rejection.payload,
        # A whole message kept as one rejection may carry readings of several organisations'
        # devices: the serials it names decide who may see it (rejections.repository.owned_by).
        "mentioned_serials": mentioned_serials(rejection.payload) if rejection.device_serial is None else None,
    }


class _Recorder:
    """The steps of recording one batch; `record_messages` below runs them in order."""

    def __init__(self, session: AsyncSession, now: datetime, topic_root: str) -> None:
        self.session, self.now, self.topic_root = session, now, topic_root
        self.outcomes: list[MessageOutcome] = []
        self.pending: list[_Pending] = []
        self.rejection_rows: list[dict[str, Any]] = []
        self.statuses: list[tuple[str, str, datetime]] = []

    def reject(self, item: _Pending | tuple[MessageOutcome, IncomingMessage], rejection: Rejection) -> None:
        outcome, message = (item.outcome, item.message) if isinstance(item, _Pending) else item
        outcome.rejected.append(rejection)
        self.rejection_rows.append(_rejection_row(message, outcome.gateway_id, rejection))
        if isinstance(item, _Pending):
            outcome.results[item.index] = _result(rejection.reading_id, rejection)
        else:
            outcome.results.append(_result(rejection.reading_id, rejection))

    def check(self, messages: Sequence[IncomingMessage]) -> None:
        """The contract's checks that need no database."""
        for message in messages:
            parsed = (
                (message.gateway_id, "measurements")
                if message.gateway_id
                else parse_topic(message.topic, self.topic_root)
            )
            outcome = MessageOutcome(
                gateway_id=parsed[0] if parsed else None, answered=parsed is not None and parsed[1] == "measurements"
            )
            self.outcomes.append(outcome)
            if parsed is None:
                self.reject(
                    (outcome, message),
                    Rejection(Reason.bad_topic, f"topic {message.topic[:200]!r} breaks the contract", message.payload),
                )
                continue
            gateway, kind = parsed
            if kind == "status":  # no acks on status; a bad one is kept like any message
                status = parse_status(message.payload)
                if isinstance(status, Rejection):
                    self.reject((outcome, message), status)
                else:
                    self.statuses.append((gateway, status, message.received_at))
                continue
            readings = split_message(message.payload)
            if isinstance(readings, Rejection):
                self.reject((outcome, message), readings)
                continue
            for reading in readings:
                checked = validate_reading(reading, gateway, self.now)
                if isinstance(checked, Rejection):
                    self.reject((outcome, message), checked)
                else:
                    outcome.results.append({})  # filled in once the device is known
                    self.pending.append(_Pending(outcome, message, len(outcome.results) - 1, checked))

    async def link(self) -> list[_Pending]:
        """Each reading to the patient its device was assigned to at the reading's time."""
        known = await devices.with_assignments(self.session, {p.reading.device_serial for p in self.pending})
        linked: list[_Pending] = []
        seen: set[tuple[str, str]] = set()
        for item in self.pending:
            reading = item.reading
            device = known.get(reading.device_serial)
            if device is None:
                self.reject(
                    item,
                    Rejection(
                        Reason.unknown_device,
                        f"device.serial {reading.device_serial!r} is not registered",
                        reading.payload,
                        reading.reading_id,
                        reading.device_serial,
                    ),
                )
                continue
            item.device_id, item.patient_id = device[0], devices.patient_at(device[1], reading.time)
            if item.patient_id is None:
                self.reject(
                    item,
                    Rejection(
                        Reason.device_not_assigned,
                        f"device {reading.device_serial!r} was assigned to no patient at {reading.time_text}",
                        reading.payload,
                        reading.reading_id,
                        reading.device_serial,
                    ),
                )
                continue
            key = (reading.gateway_id, reading.reading_id)
            if key in seen:  # the same reading twice in one batch: the first one counts
                item.outcome.results[item.index] = _result(reading.reading_id, status="duplicate")
                item.outcome.duplicates += 1
                continue
            seen.add(key)
            linked.append(item)
        return linked


def observation_rows(
    item: _Pending, thresholds: EffectiveThresholds | None, now: datetime
) -> tuple[list[observations.ObservationRow], dict[uuid.UUID, dict[str, Judgement]]]:
    """The Observations of one linked reading (a panel's components in one), each judged
    against the patient's thresholds when there are any: the judgements become the stored
    resource's interpretation, and the threshold rule's input."""
    assert item.patient_id is not None and item.device_id is not None
    reading, rows, judged, panel_id = item.reading, [], {}, None
    for draft in reading.drafts:
        observation_id = new_id()
        judgements = interpret(draft.values, thresholds) if thresholds else None
        if judgements is not None:
            judged[observation_id] = judgements
        resource = observation_resource(
            draft,
            observation_id=observation_id,
            patient_id=item.patient_id,
            device_id=item.device_id,
            effective=reading.time_text,
            issued=now,
            panel_id=panel_id,
            judgements=judgements,
            yellow_bands=thresholds.yellow if thresholds else None,
        )
        rows.append(
            observations.ObservationRow(
                id=observation_id,
                patient_id=item.patient_id,
                device_id=item.device_id,
                reading_type=draft.reading_type.name,
                code=draft.code,
                effective_at=reading.time,
                value=draft.value,
                components=draft.values if draft.reading_type.is_panel else None,
                unit=draft.unit,
                original_value=reading.original_value,
                original_unit=reading.original_unit,
                gateway_id=reading.gateway_id,
                reading_id=reading.reading_id,
                received_at=item.message.received_at,
                resource=resource,
            )
        )
        panel_id = panel_id or observation_id
    return rows, judged
