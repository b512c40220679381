"""The packaging tests' broker: a real Mosquitto with the repository's ACL."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.fixtures.servers import free_port
from tests.packaging.broker import ACL_BROKER_CONF, ACL_FILE, USERS, running_mosquitto, write_passwords


@pytest.fixture(scope="session")
def acl_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    """The port of a mosquitto that knows USERS and enforces the repository's ACL."""
    folder = tmp_path_factory.mktemp("acl-broker")
    passwords = write_passwords(folder / "passwords", USERS)
    port = free_port()
    config = ACL_BROKER_CONF.format(port=port, passwords=passwords, acl=ACL_FILE)
    with running_mosquitto(config, folder, [port]):
        yield port
