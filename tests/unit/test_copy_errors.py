"""The driver's errors from the COPY of a batch become the SQLAlchemy errors the ingest worker
tells apart: retry the batch, or record it message by message."""

from __future__ import annotations

import asyncpg
import pytest
from sqlalchemy.exc import DBAPIError, OperationalError

from rpm.observations.repository import as_sqlalchemy_error


@pytest.mark.parametrize(
    "error",
    [
        ConnectionResetError("reset by peer"),
        asyncpg.exceptions.ConnectionDoesNotExistError("connection was closed"),
        asyncpg.exceptions.InterfaceError("cannot perform operation: connection is closed"),
        asyncpg.exceptions.CannotConnectNowError("the database system is shutting down"),
    ],
)
def test_a_lost_connection_is_an_operational_error(error):
    translated = as_sqlalchemy_error("COPY observation_batch", error)
    assert isinstance(translated, OperationalError)
    assert translated.orig is error and translated.connection_invalidated


@pytest.mark.parametrize(
    "error",
    [
        asyncpg.exceptions.CharacterNotInRepertoireError("invalid byte sequence"),
        asyncpg.exceptions.StringDataRightTruncationError("value too long"),
    ],
)
def test_any_other_failure_is_a_dbapi_error_not_a_retry(error):
    translated = as_sqlalchemy_error("COPY observation_batch", error)
    assert isinstance(translated, DBAPIError) and not isinstance(translated, OperationalError)
    assert translated.orig is error
