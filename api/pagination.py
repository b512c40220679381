"""Cursor pagination of JSON lists: `{"items": [...], "next": "<cursor or null>"}`."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Sequence
from typing import Annotated, Any

from fastapi import Query
from pydantic import BaseModel

from rpm.errors import InvalidInput

LimitParam = Annotated[int, Query(ge=1, le=500)]
CursorParam = Annotated[str | None, Query()]


def encode_cursor(position: Any) -> str:
    return base64.urlsafe_b64encode(json.dumps(position, default=str).encode()).decode().rstrip("=")


def decode_cursor(cursor: str | None) -> Any:
    if cursor is None:
        return None
    try:
        return json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except (ValueError, TypeError) as error:
        raise InvalidInput("invalid_cursor", "cursor: not a cursor this API gave out") from error


def page(items: Sequence[BaseModel], limit: int, position_of: Callable[[Any], Any]) -> dict[str, Any]:
    """The list answer. `items` was fetched with limit + 1 rows: the extra one says whether there
    is more, and `position_of` the last item shown gives the next page's cursor."""
    more = len(items) > limit
    shown = items[:limit]
    return {
        "items": [item.model_dump(mode="json", by_alias=True) for item in shown],
        "next": encode_cursor(position_of(shown[-1])) if more and shown else None,
    }
