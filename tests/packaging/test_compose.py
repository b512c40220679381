"""compose.yaml against the Compose specification's JSON schema, and what the deployment needs
of it: migrations once before anything else, two ingest workers sharing the readings with
stable identities, production settings with secrets from outside, healthchecks, no root."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from rpm.config import Settings

REPO = Path(__file__).resolve().parents[2]
SCHEMA = json.loads((Path(__file__).parent / "compose-spec.json").read_text())
RAW = (REPO / "compose.yaml").read_text()
COMPOSE: dict[str, Any] = yaml.safe_load(RAW)
SERVICES: dict[str, dict[str, Any]] = COMPOSE["services"]
RPM_SERVICES = {name: service for name, service in SERVICES.items() if service.get("command", [""])[0] == "rpm"}
INGEST = {name: service for name, service in RPM_SERVICES.items() if service["command"] == ["rpm", "ingest"]}


def schema_errors(document: dict[str, Any]) -> list[str]:
    validator = jsonschema.Draft7Validator(SCHEMA)
    return [f"{'/'.join(map(str, error.path))}: {error.message}" for error in validator.iter_errors(document)]


def test_the_compose_file_follows_the_compose_specification():
    assert schema_errors(COMPOSE) == []


@pytest.mark.parametrize(
    "breakage",
    [
        lambda c: c["services"]["api"]["depends_on"]["migrate"].update(condition="service_finished"),
        lambda c: c["services"]["postgres"]["healthcheck"].update(interval=10),
        lambda c: c["services"]["ingest-1"].update(restart_policy="always"),
    ],
    ids=["unknown condition", "interval not a duration", "unknown key"],
)
def test_the_schema_check_catches_a_broken_compose_file(breakage):
    broken = copy.deepcopy(COMPOSE)
    breakage(broken)
    assert schema_errors(broken)


def test_the_image_runs_api_migrate_and_two_ingest_workers():
    commands = sorted(" ".join(service["command"][:2]) for service in RPM_SERVICES.values())
    assert commands == ["rpm api", "rpm ingest", "rpm ingest", "rpm migrate"]
    images = {service["image"] for service in RPM_SERVICES.values()}
    assert len(images) == 1, "one image for every rpm process"
    assert all(service["build"] == "." for service in RPM_SERVICES.values())
    assert SERVICES["api"]["command"][-2:] == ["--port", "8000"]
    assert any(port.endswith(":8000:8000") for port in SERVICES["api"]["ports"])


def test_migrations_run_once_and_before_the_api_and_the_workers():
    migrate = SERVICES["migrate"]
    assert migrate["command"] == ["rpm", "migrate"]
    assert migrate["restart"] == "no"
    assert migrate["depends_on"]["postgres"] == {"condition": "service_healthy"}
    for name, service in RPM_SERVICES.items():
        if name != "migrate":
            assert service["depends_on"]["migrate"] == {"condition": "service_completed_successfully"}, name


def test_two_ingest_workers_share_the_readings_with_stable_identities():
    assert sorted(INGEST) == ["ingest-1", "ingest-2"]
    environments = [service["environment"] for service in INGEST.values()]
    client_ids = [environment["RPM_MQTT_CLIENT_ID"] for environment in environments]
    assert sorted(client_ids) == ["rpm-ingest-1", "rpm-ingest-2"]
    groups = {environment["RPM_MQTT_SHARE_GROUP"] for environment in environments}
    assert groups == {"rpm-ingest"}
    # The workers' broker user is the one the ACL lets read every gateway's readings.
    acl_users = re.findall(r"^user (\S+)", (REPO / "deploy" / "mosquitto" / "acl").read_text(), flags=re.M)
    assert {environment["RPM_MQTT_USERNAME"] for environment in environments} == set(acl_users) == {"rpm-ingest"}
    assert all(environment["RPM_MQTT_URL"] == "mqtt://mosquitto:1883" for environment in environments)


def test_every_rpm_process_runs_in_production_with_secrets_from_outside():
    settings = Settings.model_fields
    for name, service in RPM_SERVICES.items():
        environment = service["environment"]
        assert environment["RPM_ENVIRONMENT"] == "production", name
        for key, value in environment.items():
            if key.startswith("RPM_"):
                assert key[4:].lower() in settings, f"{name}: {key} is no setting of rpm.config.Settings"
            assert not key.startswith("RPM_DEV_"), f"{name}: development setting {key}"
            if "PASSWORD" in key or "SECRET" in key:
                assert re.fullmatch(r"\$\{\w+:[?-][^}]*\}", value), f"{name}: {key} is written in the file"
        # Without these the service has no one to trust; compose refuses to start unless they are set.
        for required in ("RPM_OIDC_ISSUER", "RPM_OIDC_JWKS_URL"):
            assert re.fullmatch(r"\$\{" + required + r":\?[^}]+\}", environment[required]), f"{name}: {required}"
        assert "mqtt" not in environment.get("RPM_DATABASE_URL", "")
    assert "RPM_MQTT_PASSWORD" not in SERVICES["api"]["environment"], "the API does not need the broker password"
    assert re.fullmatch(r"\$\{POSTGRES_PASSWORD:\?[^}]+\}", SERVICES["postgres"]["environment"]["POSTGRES_PASSWORD"])


@pytest.mark.parametrize("name", ["compose.yaml", "deploy/env.example", "docs/operations.md", "Dockerfile"])
def test_every_rpm_variable_named_in_the_deployment_files_is_a_setting(name):
    named = set(re.findall(r"\bRPM_[A-Z0-9_]+\b", (REPO / name).read_text()))
    assert named, name
    assert sorted(n for n in named if n.removeprefix("RPM_").lower() not in Settings.model_fields) == []


def test_every_variable_the_compose_file_reads_is_in_the_example_environment():
    used = set(re.findall(r"\$\{(\w+)", RAW))
    example = REPO / "deploy" / "env.example"
    listed = set(re.findall(r"^(\w+)=", example.read_text(), flags=re.M))
    assert used == listed


def test_healthchecks_for_the_database_and_the_workers():
    assert SERVICES["postgres"]["healthcheck"]["test"][:2] == ["CMD", "pg_isready"]
    for name, service in INGEST.items():
        probe = " ".join(service["healthcheck"]["test"])
        port = Settings.model_fields["metrics_port"].default
        assert f"http://127.0.0.1:{port}/readyz" in probe, name
        assert "RPM_METRICS_PORT" not in service["environment"], "the healthcheck asks the default port"
    # The API has the image's HEALTHCHECK (tests/packaging/test_image_files.py).
    assert "healthcheck" not in SERVICES["api"]


def test_no_service_of_the_image_runs_as_root():
    for name, service in RPM_SERVICES.items():
        assert service.get("user") in (None, "10001", "10001:10001"), name
        assert not service.get("privileged"), name


def test_the_database_and_the_broker_keep_their_data_in_volumes():
    assert "postgres-data:/var/lib/postgresql/data" in SERVICES["postgres"]["volumes"]
    assert "mosquitto-data:/mosquitto/data" in SERVICES["mosquitto"]["volumes"]
    assert set(COMPOSE["volumes"]) == {"postgres-data", "mosquitto-data"}
