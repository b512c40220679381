"""The one page model and the one cursor codec behind every list of the API.

A list answers `{"items": [...], "next": "<cursor or null>"}` (api.md). A cursor is the sort
key of the last item shown, as JSON in URL-safe base64; each list declares the type of its
key once (`Cursor(tuple[int, datetime, uuid.UUID])`), and decoding checks it against that
type, so a cursor from another list, or one a client made up, is refused with one clear error.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable, Sequence
from typing import Annotated, Any, Generic, Self, TypeVar

from fastapi import Query
from pydantic import BaseModel, TypeAdapter, ValidationError

from rpm.errors import InvalidInput

LimitParam = Annotated[int, Query(ge=1, le=500, description="items per page (default 50, at most 500)")]
CursorParam = Annotated[str | None, Query(description="the `next` of the page before")]

Item = TypeVar("Item")
Position = TypeVar("Position")


class Cursor(Generic[Position]):
    """Encodes and decodes the sort key of one list."""

    def __init__(self, position: Any, *, parameter: str = "cursor") -> None:
        self._adapter: TypeAdapter[Position] = TypeAdapter(position)
        self.parameter = parameter

    def encode(self, position: Position) -> str:
        return base64.urlsafe_b64encode(self._adapter.dump_json(position)).decode().rstrip("=")

    def decode(self, cursor: str | None) -> Position | None:
        if cursor is None or cursor == "":
            return None
        try:
            raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
            return self._adapter.validate_json(raw)
        except (ValueError, binascii.Error, ValidationError) as error:
            raise InvalidInput("invalid_cursor", f"{self.parameter}: not a cursor this API gave out") from error


class Page(BaseModel, Generic[Item]):
    items: list[Item]
    next: str | None = None

    @classmethod
    def of(
        cls, rows: Sequence[Item], limit: int, cursor: Cursor[Position], position_of: Callable[[Item], Position]
    ) -> Self:
        """The page of `rows`, fetched with limit + 1: the extra row only says there is more.
        Call it on the parametrised model (`Page[AlertItem].of(...)`)."""
        shown = list(rows[:limit])
        more = len(rows) > limit and bool(shown)
        return cls(items=shown, next=cursor.encode(position_of(shown[-1])) if more else None)
