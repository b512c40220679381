"""The broker exactly as compose.yaml runs it: deploy/mosquitto/mosquitto.conf with the files
compose mounts into the container, the container's paths mapped to a folder here.

Gateways reach it over TLS only, on the published port; the ingest workers on the plain listener
inside the compose network; anonymous clients nowhere.
"""

from __future__ import annotations

import datetime
import ipaddress
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.fixtures.servers import free_port
from tests.packaging.broker import INGEST_USER, REPO, SHARE_GROUP, USERS, Client, Received, running_mosquitto
from tests.packaging.broker import write_passwords as make_password_file

CONF = REPO / "deploy" / "mosquitto" / "mosquitto.conf"


@dataclass
class ComposeBroker:
    gateway_port: int  # the TLS listener compose publishes
    internal_port: int  # the plain listener of the compose network
    ca: Path


def self_signed_certificate(folder: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = folder / "fullchain.pem", folder / "privkey.pem"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return cert_path, key_path


def mosquitto_mounts() -> dict[str, str]:
    """Container path -> what compose mounts there (a path in the repository or a volume name)."""
    service = yaml.safe_load((REPO / "compose.yaml").read_text())["services"]["mosquitto"]
    mounts = {}
    for volume in service["volumes"]:
        source, target = volume.split(":")[:2]
        mounts[target] = source
    return mounts


@pytest.fixture(scope="module")
def compose_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ComposeBroker]:
    folder = tmp_path_factory.mktemp("compose-broker")
    certs = folder / "certs"
    certs.mkdir()
    cert, _ = self_signed_certificate(certs)
    data = folder / "data"
    data.mkdir()
    made_by_the_operator = {
        "./deploy/mosquitto/passwords": make_password_file(folder / "passwords", USERS),
        "./deploy/mosquitto/certs": certs,
        "mosquitto-data": data,
    }
    text = CONF.read_text()
    mounts = mosquitto_mounts()
    for path in re.findall(r"/mosquitto/\S*", text):
        assert any(path.startswith(target) for target in mounts), f"mosquitto.conf names {path}, compose mounts no such"
    for target, source in sorted(mounts.items(), key=lambda item: -len(item[0])):
        local = made_by_the_operator.get(source) or REPO / source
        assert Path(local).exists(), f"compose mounts {source}, which is not there"
        text = text.replace(target, str(local))
    gateway_port, internal_port = free_port(), free_port()
    text = re.sub(r"^listener 8883$", f"listener {gateway_port} 127.0.0.1", text, flags=re.M)
    text = re.sub(r"^listener 1883$", f"listener {internal_port} 127.0.0.1", text, flags=re.M)
    with running_mosquitto(text, folder, [gateway_port, internal_port]):
        yield ComposeBroker(gateway_port, internal_port, cert)


def test_compose_publishes_only_the_tls_listener():
    ports = yaml.safe_load((REPO / "compose.yaml").read_text())["services"]["mosquitto"]["ports"]
    assert [str(port).split(":")[-1] for port in ports] == ["8883"]
    listeners = re.findall(r"^listener (\S+)", CONF.read_text(), flags=re.M)
    assert listeners == ["1883", "8883"]


def test_a_gateway_publishes_over_tls_and_the_workers_read_on_the_internal_listener(compose_broker):
    ingest = Client(compose_broker.internal_port, INGEST_USER, USERS[INGEST_USER]).signed_in()
    gateway = Client(compose_broker.gateway_port, "gw-a", USERS["gw-a"], tls_ca=compose_broker.ca).signed_in()
    try:
        ingest.subscribe(f"$share/{SHARE_GROUP}/rpm/v1/gateways/+/measurements")
        gateway.subscribe("rpm/v1/gateways/gw-a/acks")
        gateway.publish("rpm/v1/gateways/gw-a/measurements", b"{}")
        assert ingest.next_message() == Received("rpm/v1/gateways/gw-a/measurements", b"{}")
        ingest.publish("rpm/v1/gateways/gw-a/acks", b"ack")
        assert gateway.next_message() == Received("rpm/v1/gateways/gw-a/acks", b"ack")
    finally:
        ingest.close()
        gateway.close()


def test_the_gateway_port_refuses_plain_mqtt_and_both_refuse_anonymous_clients(compose_broker):
    plain = Client(compose_broker.gateway_port, "gw-a", USERS["gw-a"])
    try:
        # The broker reads the plain CONNECT as a broken TLS handshake and closes the connection.
        assert plain.dropped.wait(5), "the TLS port kept a plain MQTT connection open"
        assert plain.received.empty() and plain.connack_now() is None
    finally:
        plain.close()
    anonymous_inside = Client(compose_broker.internal_port, None)
    anonymous_gateway = Client(compose_broker.gateway_port, None, tls_ca=compose_broker.ca)
    try:
        assert anonymous_inside.connack().is_failure
        assert anonymous_gateway.connack().is_failure
    finally:
        anonymous_inside.close()
        anonymous_gateway.close()
