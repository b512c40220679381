"""What the staff page's forms have in common."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

from fastapi.responses import Response
from sqlalchemy.ext.asyncio import AsyncSession

from rpm.api.web.deps import attempt
from rpm.audit.service import Actor
from rpm.errors import Conflict
from rpm.observations import service as observations
from rpm.observations.schemas import REASON_MAX, EnteredInErrorOut


def written_text(value: str, longest: int, message: str) -> tuple[str, str | None]:
    """A text a staff member wrote in a form, without the blanks around it, and what is wrong
    with it: the message `{message}_required` when empty, `{message}_too_long` beyond `longest`
    characters, None when it may be kept."""
    value = value.strip()
    if not value:
        return value, f"{message}_required"
    if len(value) > longest:
        return value, f"{message}_too_long"
    return value, None


async def mark_from_form(
    session: AsyncSession,
    actor: Actor,
    observation_id: uuid.UUID,
    reason: str,
    answer: Callable[..., Awaitable[Response]],
    done: Callable[[EnteredInErrorOut], str],
) -> Response:
    """The entered-in-error form of a reading, from whichever page shows it: `answer(status,
    **changes)` renders that page. A missing or too long reason is 422 with the message beside
    the reading's field and the text kept, one marked before 409, else 200 with `done(marked)`."""
    reason, error = written_text(reason, REASON_MAX, "invalidation.reason")
    if error is not None:
        return await answer(
            422,
            message="invalidation.form_invalid",
            invalidation_errors={str(observation_id): error},
            invalidation_form={str(observation_id): reason},
        )
    try:
        async with attempt(session):
            marked = await observations.invalidate(session, actor, observation_id, reason, datetime.now(UTC))
    except Conflict:
        return await answer(409, message="invalidation.already")
    return await answer(200, message=done(marked))
