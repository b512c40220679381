"""Marking a reading entered in error, as the API takes and answers it."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, StringConstraints

REASON_MAX = 500


class EnteredInErrorIn(BaseModel):
    """Why the reading is wrong ("the patient forgot the cuff", "a child stood on the scale")."""

    model_config = ConfigDict(extra="forbid")

    reason: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=REASON_MAX)]


class EnteredInErrorOut(BaseModel):
    """The reading marked, the Observations derived from it that were marked with it, and the
    alerts the system resolved because no valid reading was left behind them."""

    observation: str  # "Observation/<id>"
    invalidated_at: datetime
    by: str  # the staff member's sub
    by_name: str | None
    reason: str
    also_invalidated: list[str]  # derived Observations: a panel's pulse, a NEWS2 score
    alerts_resolved: list[uuid.UUID]
