"""One Settings class for every process, read from `RPM_` environment variables."""

from __future__ import annotations

from enum import StrEnum
from functools import lru_cache
from pathlib import Path
from typing import Annotated
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Environment(StrEnum):
    development = "development"
    production = "production"


class MqttProtocol(StrEnum):
    v5 = "5"
    v311 = "3.1.1"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="RPM_", extra="ignore")

    environment: Environment = Environment.development

    # Database: a postgresql:// URL, or unset for the embedded server under data_dir.
    database_url: str | None = None
    data_dir: Path = Path(".rpm-data")
    db_pool_size: Annotated[int, Field(ge=1, le=100)] = 10

    # MQTT
    mqtt_url: str = "mqtt://127.0.0.1:1883"
    mqtt_protocol: MqttProtocol = MqttProtocol.v5
    mqtt_client_id: Annotated[str, Field(min_length=1, max_length=64)] = "rpm-ingest-1"
    # Empty means a plain subscription: one worker only, on a broker without shared
    # subscriptions (the demo's embedded broker).
    mqtt_share_group: Annotated[str, Field(pattern=r"^[A-Za-z0-9._-]{0,64}$")] = "rpm-ingest"
    # The broker's password file and ACL name the workers' user (deploy/mosquitto/).
    mqtt_username: str | None = None
    mqtt_password: SecretStr | None = None
    # The contract's topics start with rpm/v1; a prefix lets several test or staging
    # deployments share one broker without seeing each other's gateways.
    mqtt_topic_root: str = "rpm/v1"
    # How long the broker keeps a worker's session (and the readings queued in it) after the
    # worker went away without retiring it. Shorter than the gateways' first resend timeout (60 s
    # in the contract), so a reading stranded in a dead worker's session is resent after the
    # broker dropped that session, and the resend reaches a live worker; a restart within it
    # finds its session and the readings queued meanwhile (docs/operations.md#scaling-out).
    mqtt_session_expiry_seconds: Annotated[int, Field(ge=0, le=2**32 - 1)] = 30
    # On SIGTERM, hand the session back: leave the share group, record what the broker still
    # holds for this worker, then end the session. For a worker stopped for good.
    mqtt_retire_on_stop: bool = False
    mqtt_receive_maximum: Annotated[int, Field(ge=1, le=65535)] = 1000

    # Ingest batching: a batch closes at this many readings; otherwise as soon as the queue is
    # empty and the database idle, and at most flush_ms after its first message while the
    # batch before it is still being recorded.
    ingest_batch_readings: Annotated[int, Field(ge=1, le=20000)] = 2000
    ingest_flush_ms: Annotated[int, Field(ge=1, le=10000)] = 50
    ingest_batches_in_flight: Annotated[int, Field(ge=1, le=8)] = 3
    ingest_queue_messages: Annotated[int, Field(ge=1)] = 5000
    ingest_drain_seconds: Annotated[float, Field(ge=0)] = 10.0
    metrics_port: Annotated[int, Field(ge=0, le=65535)] = 9464
    # 0.0.0.0 in a container, so Prometheus beside it can scrape the worker.
    metrics_host: str = "127.0.0.1"
    # How often a worker writes down when each gateway last sent a message.
    gateway_activity_seconds: Annotated[float, Field(gt=0, le=300)] = 10.0

    # How often `rpm api` and `rpm ingest` hand the memory their C allocator keeps free back to
    # the system (glibc's malloc_trim; 0: never). Without it their RSS creeps up for a while.
    memory_return_seconds: Annotated[float, Field(ge=0, le=3600)] = 60.0

    # Rules (rules.md). The periodic checks run at least once a minute.
    rules_enabled: bool = True
    rules_check_seconds: Annotated[float, Field(gt=0, le=60)] = 60.0
    missing_grace_hours: Annotated[float, Field(ge=0)] = 2.0
    # A newly enrolled patient's start period, unless the enrolment names one (docs/rules.md).
    start_period_days: Annotated[int, Field(ge=0, le=90)] = 14
    # NEWS2 scores the newest value of each parameter measured within this window (rules.md).
    news2_window_minutes: Annotated[int, Field(ge=5, le=24 * 60)] = 60
    escalate_red_minutes: Annotated[float, Field(gt=0)] = 15.0
    escalate_yellow_hours: Annotated[float, Field(gt=0)] = 8.0
    # The alert stream sends a comment this often so proxies keep it open.
    sse_heartbeat_seconds: Annotated[float, Field(gt=0, le=300)] = 15.0
    # Alert events waiting to be sent to one stream; a stream whose client falls this far behind
    # is dropped (it resumes from its Last-Event-ID), so a slow client costs bounded memory.
    sse_queue_events: Annotated[int, Field(ge=10, le=1_000_000)] = 10000

    # Authentication
    dev_auth: bool = False
    dev_key_path: Path | None = None
    dev_issuer: str = "rpm-dev"
    oidc_issuer: str | None = None
    oidc_audience: str = "rpm-api"
    oidc_jwks_url: str | None = None
    claim_hpr: str = "helseid://claims/hpr/hpr_number"
    claim_orgnr_parent: str = "helseid://claims/client/claims/orgnr_parent"
    claim_orgnr_child: str = "helseid://claims/client/claims/orgnr_child"
    claim_roles: str = "rpm_roles"
    # The staff web page signs in with the authorisation code flow and PKCE; the endpoints come
    # from the issuer's discovery document unless given.
    oidc_client_id: str | None = None
    oidc_client_secret: SecretStr | None = None  # never shown in a repr or a log line
    oidc_authorization_url: str | None = None
    oidc_token_url: str | None = None
    oidc_scopes: str = "openid profile"
    # The address staff reach the service at, for the sign-in's return (default: as requested).
    public_url: str | None = None

    # The staff API: the largest request body taken (larger ones get 413 before they are read
    # whole), and the browser origins allowed to call it from other sites (CORS). Empty: no
    # CORS at all, the staff page is served by the API itself; "*" is refused in production.
    api_max_body_bytes: Annotated[int, Field(ge=1024, le=64 * 1024 * 1024)] = 1024 * 1024
    cors_origins: str | None = None

    # Web page sessions: a working day from sign-in, ended sooner when idle.
    web_session_hours: Annotated[float, Field(gt=0, le=24)] = 12.0
    web_idle_minutes: Annotated[float, Field(gt=0, le=24 * 60)] = 60.0
    # The session cookie is Secure in production always, elsewhere when the request came over HTTPS.
    web_cookie_secure: bool | None = None

    @field_validator("database_url")
    @classmethod
    def _postgres_only(cls, value: str | None) -> str | None:
        if value is None or value == "":
            return None
        scheme = urlsplit(value).scheme
        if scheme not in {"postgresql", "postgres", "postgresql+asyncpg"}:
            raise ValueError("RPM_DATABASE_URL must be a postgresql:// URL; PostgreSQL is the only database")
        return value

    @field_validator("mqtt_url")
    @classmethod
    def _mqtt_url(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme != "mqtt" or not parts.hostname:
            raise ValueError("RPM_MQTT_URL must look like mqtt://host:port")
        return value

    @field_validator("cors_origins")
    @classmethod
    def _origins(cls, value: str | None) -> str | None:
        for origin in (o.strip().rstrip("/") for o in (value or "").split(",") if o.strip()):
            parts = urlsplit(origin)
            if origin != "*" and (parts.scheme not in ("http", "https") or not parts.netloc or parts.path):
                raise ValueError(f"RPM_CORS_ORIGINS: {origin!r} is not an origin like https://portal.example.no")
        return value

    @model_validator(mode="after")
    def _no_dev_key_in_production(self) -> Settings:
        if self.environment is Environment.production and self.dev_auth:
            raise ValueError("RPM_DEV_AUTH=true is refused outside development: configure the OIDC issuer")
        if self.environment is Environment.production and not self.oidc_jwks_url:
            raise ValueError("production needs RPM_OIDC_ISSUER and RPM_OIDC_JWKS_URL")
        if self.environment is Environment.production and "*" in self.cors_origin_list:
            raise ValueError("RPM_CORS_ORIGINS=* (any site) is refused in production: name the origins")
        return self

    @property
    def cors_origin_list(self) -> list[str]:
        """RPM_CORS_ORIGINS, comma-separated: `https://portal.example.no,https://other.example`."""
        return [origin.strip().rstrip("/") for origin in (self.cors_origins or "").split(",") if origin.strip()]

    @property
    def mqtt_host(self) -> str:
        return urlsplit(self.mqtt_url).hostname or "127.0.0.1"

    @property
    def mqtt_port(self) -> int:
        return urlsplit(self.mqtt_url).port or 1883

    @property
    def dev_key_file(self) -> Path:
        return self.dev_key_path or self.data_dir / "dev-issuer-key.pem"


@lru_cache
def get_settings() -> Settings:
    return Settings()
