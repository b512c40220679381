"""The one page model and the one cursor codec behind every list of the API.

A list answers `{"items": [...], "next": "<cursor or null>"}` (api.md). A cursor is the sort
key of the last item shown, as JSON in URL-safe base64; each list declares the type of its
key once, with the list's name (`Cursor("alerts", tuple[int, int, Moment, uuid.UUID])`), and
decoding checks both, so a cursor from another list, or a malformed one, is refused with one
clear error. The parts of a key are bounded (`Moment`, `Key`, `RecordId`) so that nothing a
client writes into a cursor can reach the database as a value it cannot hold.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable, Sequence
from typing import Annotated, Any, Generic, Self, TypeVar

from fastapi import Query
from pydantic import AfterValidator, AwareDatetime, BaseModel, Field, TypeAdapter, ValidationError

from rpm.errors import InvalidInput
from rpm.norway import plausible_time


def _text(value: str) -> str:
    if "\x00" in value:
        raise ValueError("a NUL character")
    return value


Moment = Annotated[AwareDatetime, AfterValidator(plausible_time)]
Key = Annotated[str, Field(max_length=256), AfterValidator(_text)]
RecordId = Annotated[int, Field(ge=0, lt=2**63)]
Rank = Annotated[int, Field(ge=0, le=9)]

LimitParam = Annotated[int, Query(ge=1, le=500, description="items per page (default 50, at most 500)")]
CursorParam = Annotated[str | None, Query(description="the `next` of the page before")]

Item = TypeVar("Item")
Position = TypeVar("Position")


class Cursor(Generic[Position]):
    """Encodes and decodes the sort key of one list. The list's name travels in the cursor, so
    a cursor given out by another list is refused even where the two keys look alike."""

    def __init__(self, name: str, position: Any, *, parameter: str = "cursor") -> None:
        self.name = name
        self._adapter: TypeAdapter[tuple[str, Position]] = TypeAdapter(tuple[str, position])  # type: ignore[valid-type]
        self.parameter = parameter

    def encode(self, position: Position) -> str:
        return base64.urlsafe_b64encode(self._adapter.dump_json((self.name, position))).decode().rstrip("=")

    def decode(self, cursor: str | None) -> Position | None:
        if cursor is None or cursor == "":
            return None
        try:
            # validate: a character outside the URL-safe alphabet is refused, not skipped
            raw = base64.b64decode(cursor + "=" * (-len(cursor) % 4), altchars=b"-_", validate=True)
            name, position = self._adapter.validate_json(raw)
        except (ValueError, binascii.Error, ValidationError) as error:
            raise InvalidInput("invalid_cursor", f"{self.parameter}: not a cursor this API gave out") from error
        if name != self.name:
            raise InvalidInput("invalid_cursor", f"{self.parameter}: a cursor of another list")
        return position


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
