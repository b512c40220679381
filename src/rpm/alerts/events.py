"""Alert events for the live stream, stored so a client can resume with Last-Event-ID.

Event ids must follow commit order, or a reader that has seen id 11 could miss id 10
committed a moment later. Every writer therefore takes one transaction-level advisory
lock before inserting events, as the last step of its transaction: ids are handed out
in lock order, the lock is released by the commit, so id order is commit order. The
NOTIFY is delivered by PostgreSQL on commit, to listeners in any process.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession

from rpm.alerts.models import AlertEvent

CHANNEL = "rpm_alert_events"
EVENTS_LOCK = 7345002


# One round trip: the lock, the rows, the notification. The lock is taken before any row
# exists to take an id from the sequence (the rows are joined to it).
_APPEND = text(
    """
    with locked as (select pg_advisory_xact_lock(:key)),
    stored as (
        insert into alert_events (alert_id, patient_id, kind, at, alert)
        select e.alert_id, e.patient_id, e.kind, :now, cast(e.alert as jsonb)
        from locked, unnest(cast(:alert_ids as uuid[]), cast(:patient_ids as uuid[]), cast(:kinds as text[]),
                            cast(:alerts as text[])) as e(alert_id, patient_id, kind, alert)
        returning id
    )
    select pg_notify(:channel, '') from (select count(*) from stored) as done
    """
)


async def append(session: AsyncSession, events: Sequence[tuple[str, dict[str, Any]]], now: datetime) -> None:
    """Store (kind, queue item) events and notify; call as the last write of the transaction."""
    if not events:
        return
    await session.execute(
        _APPEND,
        {
            "key": EVENTS_LOCK,
            "channel": CHANNEL,
            "now": now,
            "alert_ids": [uuid.UUID(str(item["id"])) for _, item in events],
            "patient_ids": [uuid.UUID(str(item["patient"])) for _, item in events],
            "kinds": [kind for kind, _ in events],
            "alerts": [orjson.dumps(item).decode() for _, item in events],
        },
    )


async def since(session: AsyncSession, after_id: int, patient_scope: Any, limit: int = 1000) -> list[AlertEvent]:
    statement = select(AlertEvent).where(AlertEvent.id > after_id)
    if patient_scope is not None:
        statement = statement.where(AlertEvent.patient_id.in_(patient_scope))
    return list(await session.scalars(statement.order_by(AlertEvent.id).limit(limit)))


async def last_id(session: AsyncSession) -> int:
    return int(await session.scalar(select(AlertEvent.id).order_by(AlertEvent.id.desc()).limit(1)) or 0)
