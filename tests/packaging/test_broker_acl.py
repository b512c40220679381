"""The broker's ACL (deploy/mosquitto/acl, the file compose.yaml mounts) in a real Mosquitto.

Each gateway signs in with its gateway id as username: it may publish only its own readings and
status and read only its own acks; the ingest workers' user reads every gateway's readings through
the shared subscription and answers with acks; nobody gets in without a password.

"Not delivered" is shown without waiting out a timeout: after the forbidden message, the same
publisher sends a permitted one to the same subscriber. Mosquitto handles one connection's
packets in order and queues each subscriber's messages in order, so once the permitted message
has arrived, the forbidden one would have arrived before it.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator

import pytest

from tests.fixtures.servers import free_port
from tests.packaging.broker import (
    ACL_BROKER_CONF,
    ACL_FILE,
    INGEST_USER,
    SHARE_GROUP,
    USERS,
    Client,
    Received,
    mosquitto_passwd,
    running_mosquitto,
    write_passwords,
)


class SignedIn(dict[str, Client]):
    """Clients by username, each signed in with its password when first used."""

    def __init__(self, port: int) -> None:
        super().__init__()
        self.port = port

    def __missing__(self, username: str) -> Client:
        client = self[username] = Client(self.port, username, USERS[username]).signed_in()
        return client


@pytest.fixture
def clients(acl_broker: int) -> Iterator[SignedIn]:
    signed_in = SignedIn(acl_broker)
    yield signed_in
    for client in signed_in.values():
        client.close()


def measurements(gateway: str) -> str:
    return f"rpm/v1/gateways/{gateway}/measurements"


def acks(gateway: str) -> str:
    return f"rpm/v1/gateways/{gateway}/acks"


def ingest_subscribed(clients: dict[str, Client]) -> Client:
    ingest = clients[INGEST_USER]
    for topic in ("measurements", "status"):
        reasons = ingest.subscribe(f"$share/{SHARE_GROUP}/rpm/v1/gateways/+/{topic}")
        assert not any(r.is_failure for r in reasons), reasons
    return ingest


def test_without_a_password_nobody_gets_in(acl_broker: int):
    anonymous = Client(acl_broker, None)
    wrong_password = Client(acl_broker, "gw-a", "not-its-password")
    try:
        assert anonymous.connack().is_failure
        assert wrong_password.connack().is_failure
    finally:
        anonymous.close()
        wrong_password.close()


def test_a_gateways_readings_and_status_reach_the_ingest_workers_through_the_shared_subscription(clients):
    ingest = ingest_subscribed(clients)
    gateway = clients["gw-a"]
    gateway.publish(measurements("gw-a"), b'{"readings": []}')
    assert ingest.next_message() == Received(measurements("gw-a"), b'{"readings": []}')
    gateway.publish("rpm/v1/gateways/gw-a/status", b"online")
    assert ingest.next_message() == Received("rpm/v1/gateways/gw-a/status", b"online")


def test_a_gateway_cannot_publish_under_another_gateways_id(clients):
    ingest = ingest_subscribed(clients)
    gateway = clients["gw-a"]
    gateway.publish(measurements("gw-b"), b"forged")
    gateway.publish("rpm/v1/gateways/gw-b/status", b"offline")
    gateway.publish(measurements("gw-a"), b"its own")
    assert ingest.next_message() == Received(measurements("gw-a"), b"its own")


def test_a_username_with_a_wildcard_is_no_key_to_every_gateways_topics(clients):
    ingest = ingest_subscribed(clients)
    clients["+"].publish(measurements("gw-b"), b"forged")
    clients["gw-b"].publish(measurements("gw-b"), b"its own")
    assert ingest.next_message() == Received(measurements("gw-b"), b"its own")


def test_a_gateway_reads_its_own_acks_and_no_other_gateways(clients):
    ingest = ingest_subscribed(clients)
    gateway = clients["gw-a"]
    gateway.subscribe(acks("gw-b"))
    gateway.subscribe("rpm/v1/gateways/+/acks")
    gateway.subscribe(acks("gw-a"))
    ingest.publish(acks("gw-b"), b"for b")
    ingest.publish(acks("gw-a"), b"for a")
    first = gateway.next_message()
    assert first == Received(acks("gw-a"), b"for a")
    # Its own ack matches two of its subscriptions; whatever else arrived must be that one too.
    while not gateway.received.empty():
        assert gateway.received.get_nowait().topic == acks("gw-a")


def test_a_gateway_cannot_forge_its_own_acks_nor_read_other_gateways_readings(clients):
    ingest = ingest_subscribed(clients)
    gateway = clients["gw-a"]
    gateway.subscribe(acks("gw-a"))
    gateway.subscribe("rpm/v1/gateways/+/measurements")
    gateway.publish(acks("gw-a"), b"forged ack")
    clients["gw-b"].publish(measurements("gw-b"), b"b's reading")
    assert ingest.next_message() == Received(measurements("gw-b"), b"b's reading")
    ingest.publish(acks("gw-a"), b"real ack")
    assert gateway.next_message() == Received(acks("gw-a"), b"real ack")


def test_the_ingest_user_answers_every_gateway(clients):
    ingest_subscribed(clients)
    for name in ("gw-a", "gw-b"):
        clients[name].subscribe(acks(name))
        clients[INGEST_USER].publish(acks(name), f"for {name}".encode())
        assert clients[name].next_message() == Received(acks(name), f"for {name}".encode())


def signs_in_within(port: int, username: str, password: str, seconds: float = 5) -> Client:
    """The broker rereads its files on SIGHUP in its next loop: try until it admits the user."""
    deadline = time.monotonic() + seconds
    while True:
        client = Client(port, username, password)
        if not client.connack().is_failure:
            return client
        client.close()
        assert time.monotonic() < deadline, f"{username} was not admitted within {seconds} s of the reload"
        time.sleep(0.05)


def test_a_gateway_user_added_with_mosquitto_passwd_signs_in_after_sighup_and_a_removed_one_is_cut_off(tmp_path):
    passwords = write_passwords(tmp_path / "passwords", {INGEST_USER: USERS[INGEST_USER]})
    port = free_port()
    config = ACL_BROKER_CONF.format(port=port, passwords=passwords, acl=ACL_FILE)
    with running_mosquitto(config, tmp_path, [port]) as broker:
        stranger = Client(port, "hub-0042", "its-secret")
        assert stranger.connack().is_failure
        stranger.close()

        mosquitto_passwd("-b", str(passwords), "hub-0042", "its-secret")
        broker.send_signal(signal.SIGHUP)
        gateway = signs_in_within(port, "hub-0042", "its-secret")
        ingest = Client(port, INGEST_USER, USERS[INGEST_USER]).signed_in()
        try:
            ingest.subscribe(f"$share/{SHARE_GROUP}/rpm/v1/gateways/+/measurements")
            gateway.publish(measurements("hub-0042"), b"{}")
            assert ingest.next_message() == Received(measurements("hub-0042"), b"{}")

            mosquitto_passwd("-D", str(passwords), "hub-0042")
            broker.send_signal(signal.SIGHUP)
            assert gateway.dropped.wait(5), "the removed gateway stayed connected after the reload"
            again = Client(port, "hub-0042", "its-secret")
            assert again.connack().is_failure
            again.close()
        finally:
            gateway.close()
            ingest.close()
