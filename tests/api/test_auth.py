"""Authentication (bearer tokens) and organisation scoping of every read."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from types import SimpleNamespace
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from pydantic import ValidationError

from rpm.access import tokens as tokens_module
from rpm.access.tokens import DEV_KID, TokenVerifier, load_or_create_dev_key, mint_dev_token
from rpm.config import Settings
from rpm.errors import Forbidden, NotAuthenticated, ServiceUnavailable
from tests.api.fhir_checks import fhir_json, operation_outcome, validate_bundle
from tests.api.helpers import (
    FNR_SYSTEM,
    assert_error,
    assign,
    enrol,
    ingest,
    message,
    observations_of,
    reading,
    register,
)
from tests.conftest import ORG_A, ORG_B


def claims(settings: Settings, **overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    body: dict[str, Any] = {
        "iss": settings.dev_issuer,
        "aud": settings.oidc_audience,
        "sub": "staff-1",
        "iat": now,
        "nbf": now,
        "exp": now + 600,
        settings.claim_orgnr_child: ORG_A,
        settings.claim_roles: ["nurse"],
    }
    body.update(overrides)
    return {k: v for k, v in body.items() if v is not None}


def signed(settings: Settings, body: dict[str, Any], key: Any = None, kid: str = DEV_KID) -> dict:
    key = key or load_or_create_dev_key(settings.dev_key_file)
    token = jwt.encode(body, key, algorithm="ES256", headers={"kid": kid})
    return {"Authorization": f"Bearer {token}"}


async def _patient(client, tokens) -> dict[str, Any]:
    return await enrol(client, tokens(ORG_A, "admin"))


def assert_401(response) -> None:
    assert response.status_code == 401, response.text
    assert response.headers["www-authenticate"].startswith("Bearer")


async def test_no_token_is_401_with_challenge(client, tokens):
    patient = await _patient(client, tokens)
    for path in ("/api/v1/patients", f"/api/v1/patients/{patient['id']}"):
        r = await client.get(path)
        assert_401(r)
        assert_error(r, 401)
    r = await client.get("/api/v1/patients", headers={"Authorization": "Basic c3RhZmY6cHc="})
    assert_401(r)
    r = await client.get("/api/v1/patients", headers={"Authorization": "Bearer "})
    assert_401(r)


async def test_fhir_without_token_is_401_operation_outcome(client, tokens):
    patient = await _patient(client, tokens)
    r = await client.get(f"/fhir/Patient/{patient['id']}")
    assert_401(r)
    operation_outcome(r, 401)
    assert_401(await client.get("/fhir/Observation", params={"patient": patient["id"]}))


async def test_a_good_token_passes(client, tokens, settings):
    """The hand-made tokens below differ from this one in one thing each."""
    patient = await _patient(client, tokens)
    url = f"/api/v1/patients/{patient['id']}"
    headers = signed(settings, claims(settings))
    r = await client.get(url, headers=headers)
    assert r.status_code == 200, r.text
    # The scheme is case-insensitive (RFC 7235).
    lower = {"Authorization": headers["Authorization"].replace("Bearer ", "bearer ", 1)}
    assert (await client.get(url, headers=lower)).status_code == 200


async def test_garbage_token_is_401(client, tokens):
    patient = await _patient(client, tokens)
    for token in ("garbage", "a.b.c", "eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0."):
        r = await client.get(f"/api/v1/patients/{patient['id']}", headers={"Authorization": f"Bearer {token}"})
        assert_401(r)
        assert_error(r, 401)


async def test_expired_token_is_401(client, tokens, settings):
    patient = await _patient(client, tokens)
    token = mint_dev_token(settings, sub="staff-1", orgnr=ORG_A, roles=["nurse"], ttl_seconds=-10)
    r = await client.get(f"/api/v1/patients/{patient['id']}", headers={"Authorization": f"Bearer {token}"})
    assert_401(r)
    assert "expired" in r.json()["detail"]


async def test_token_signed_by_another_key_is_401(client, tokens, settings):
    patient = await _patient(client, tokens)
    other = ec.generate_private_key(ec.SECP256R1())
    r = await client.get(f"/api/v1/patients/{patient['id']}", headers=signed(settings, claims(settings), key=other))
    assert_401(r)


async def test_token_with_unknown_kid_is_401(client, tokens, settings):
    patient = await _patient(client, tokens)
    r = await client.get(f"/api/v1/patients/{patient['id']}", headers=signed(settings, claims(settings), kid="nope"))
    assert_401(r)


async def test_hs256_token_with_the_public_key_as_secret_is_401(client, tokens, settings):
    """Algorithm confusion: an HMAC token keyed with the published public key."""
    patient = await _patient(client, tokens)
    public = (
        load_or_create_dev_key(settings.dev_key_file)
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )

    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    head = b64(json.dumps({"alg": "HS256", "typ": "JWT", "kid": DEV_KID}).encode())
    body = b64(json.dumps(claims(settings)).encode())
    mac = hmac.new(public, f"{head}.{body}".encode(), hashlib.sha256).digest()
    token = f"{head}.{body}.{b64(mac)}"
    r = await client.get(f"/api/v1/patients/{patient['id']}", headers={"Authorization": f"Bearer {token}"})
    assert_401(r)


@pytest.mark.parametrize(
    "change",
    [
        {"aud": "another-api"},
        {"iss": "https://evil.example"},
        {"nbf": int(time.time()) + 3600, "exp": int(time.time()) + 7200},
        {"exp": None},
        {"sub": None},
    ],
    ids=["audience", "issuer", "not-yet-valid", "no-exp", "no-sub"],
)
async def test_token_with_wrong_claims_is_401(client, tokens, settings, change):
    patient = await _patient(client, tokens)
    r = await client.get(f"/api/v1/patients/{patient['id']}", headers=signed(settings, claims(settings, **change)))
    assert_401(r)


async def test_token_without_organisation_is_403(client, tokens, settings):
    body = claims(settings, **{settings.claim_orgnr_child: None})
    r = await client.get("/api/v1/patients", headers=signed(settings, body))
    assert_error(r, 403)


async def test_organisation_is_child_else_parent(client, tokens, settings):
    patient = await _patient(client, tokens)
    url = f"/api/v1/patients/{patient['id']}"
    child, parent = settings.claim_orgnr_child, settings.claim_orgnr_parent
    only_parent = claims(settings, **{child: None, parent: ORG_A})
    assert (await client.get(url, headers=signed(settings, only_parent))).status_code == 200
    child_wins = claims(settings, **{child: ORG_A, parent: ORG_B})
    assert (await client.get(url, headers=signed(settings, child_wins))).status_code == 200
    child_elsewhere = claims(settings, **{child: ORG_B, parent: ORG_A})
    assert_error(await client.get(url, headers=signed(settings, child_elsewhere)), 404)


async def test_dev_tokens_are_trusted_only_with_dev_auth(settings):
    token = mint_dev_token(settings, sub="staff-1", orgnr=ORG_A, roles=["nurse"])
    assert (await TokenVerifier(settings).verify(token))["sub"] == "staff-1"
    strict = settings.model_copy(update={"dev_auth": False})
    with pytest.raises(NotAuthenticated):
        await TokenVerifier(strict).verify(token)
    with pytest.raises(Forbidden):
        mint_dev_token(strict, sub="staff-1", orgnr=ORG_A, roles=["nurse"])


def test_production_refuses_dev_auth():
    with pytest.raises(ValidationError, match="RPM_DEV_AUTH"):
        Settings(
            environment="production",
            dev_auth=True,
            oidc_issuer="https://helseid.example",
            oidc_jwks_url="https://helseid.example/jwks",
        )
    # The same settings without the development issuer are fine.
    ok = Settings(
        environment="production",
        dev_auth=False,
        oidc_issuer="https://helseid.example",
        oidc_jwks_url="https://helseid.example/jwks",
    )
    assert ok.dev_auth is False


def test_production_refuses_dev_auth_from_the_environment(monkeypatch):
    monkeypatch.setenv("RPM_ENVIRONMENT", "production")
    monkeypatch.setenv("RPM_DEV_AUTH", "true")
    monkeypatch.setenv("RPM_OIDC_JWKS_URL", "https://helseid.example/jwks")
    with pytest.raises(ValidationError):
        Settings()


# --- organisation scoping -----------------------------------------------------------------


async def _org_a_patient_with_reading(client, tokens, session):
    admin = tokens(ORG_A, "admin")
    patient = await enrol(client, admin)
    device = await register(client, admin)
    await assign(client, admin, device["serial"], patient["id"])
    (outcome,) = await ingest(session, message([reading(device["serial"], "2026-11-20T08:00:00Z")]))
    assert outcome.results[0]["status"] == "accepted"
    (observation,) = await observations_of(session, patient["id"])
    return patient, device, observation


async def test_other_organisation_gets_404_for_the_patient(client, tokens, session):
    patient, device, observation = await _org_a_patient_with_reading(client, tokens, session)
    a, b = tokens(ORG_A, "nurse"), tokens(ORG_B, "nurse")
    pid = patient["id"]
    oid = observation.id  # a failed request rolls the session back and expires loaded objects
    # ORG_A sees everything, so the 404s below are about the organisation, not the ids.
    assert (await client.get(f"/api/v1/patients/{pid}", headers=a)).status_code == 200
    assert (await client.get(f"/fhir/Patient/{pid}", headers=a)).status_code == 200
    assert (await client.get(f"/fhir/Observation/{oid}", headers=a)).status_code == 200
    assert (await client.get(f"/fhir/Device/{device['id']}", headers=a)).status_code == 200

    unknown = assert_error(await client.get("/api/v1/patients/" + str(oid), headers=b), 404)
    hidden = assert_error(await client.get(f"/api/v1/patients/{pid}", headers=b), 404)
    assert hidden == unknown, "the answer must not reveal that the patient exists"
    assert_error(
        await client.patch(f"/api/v1/patients/{pid}", headers=tokens(ORG_B, "admin"), json={"name": "X Y"}),
        404,
    )
    operation_outcome(await client.get(f"/fhir/Patient/{pid}", headers=b), 404)
    operation_outcome(await client.get(f"/fhir/Observation/{oid}", headers=b), 404)
    operation_outcome(await client.get(f"/fhir/Device/{device['id']}", headers=b), 404)
    operation_outcome(await client.get("/fhir/Observation", headers=b, params={"patient": pid}), 404)


async def test_other_organisation_searches_find_nothing(client, tokens, session):
    patient, _, observation = await _org_a_patient_with_reading(client, tokens, session)
    params = {"code": "http://loinc.org|29463-7", "date": "2026-11-20", "_count": "500"}

    def ids(bundle: dict) -> set[str]:
        return {r["id"] for r in validate_bundle(bundle)}

    a = fhir_json(await client.get("/fhir/Observation", headers=tokens(ORG_A), params=params))
    assert str(observation.id) in ids(a)
    b = fhir_json(await client.get("/fhir/Observation", headers=tokens(ORG_B), params=params))
    assert str(observation.id) not in ids(b)
    assert all(r["subject"]["reference"] != f"Patient/{patient['id']}" for r in validate_bundle(b))

    by_identifier = {"identifier": f"{FNR_SYSTEM}|{patient['identifier']}"}
    found = fhir_json(await client.get("/fhir/Patient", headers=tokens(ORG_A), params=by_identifier))
    assert ids(found) == {patient["id"]}
    hidden = fhir_json(await client.get("/fhir/Patient", headers=tokens(ORG_B), params=by_identifier))
    assert validate_bundle(hidden) == []


async def test_other_organisation_list_excludes_the_patient(client, tokens):
    mine = await enrol(client, tokens(ORG_B, "admin"), ORG_B)
    theirs = await enrol(client, tokens(ORG_A, "admin"), ORG_A)

    async def all_ids(org: str) -> set[str]:
        found, params = set(), {"limit": 500}
        while True:
            body = (await client.get("/api/v1/patients", headers=tokens(org), params=params)).json()
            found |= {p["id"] for p in body["items"]}
            if body["next"] is None:
                return found
            params = {"limit": 500, "cursor": body["next"]}

    b = await all_ids(ORG_B)
    assert mine["id"] in b and theirs["id"] not in b
    a = await all_ids(ORG_A)
    assert theirs["id"] in a and mine["id"] not in a


# --- the issuer's JWKS -----------------------------------------------------------------------

ISSUER = "https://helseid.example"
JWKS_URL = f"{ISSUER}/jwks"


class Issuer:
    """A production-like OIDC issuer: RS256 keys published at a JWKS URL that counts fetches."""

    def __init__(self) -> None:
        self.keys: dict[str, Any] = {}
        self.fetches = 0
        self.down = False

    def add_key(self, kid: str) -> None:
        self.keys[kid] = rsa.generate_private_key(public_exponent=65537, key_size=2048)

    def jwks(self) -> dict[str, Any]:
        published = []
        for kid, key in self.keys.items():
            jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key()))
            jwk.update({"kid": kid, "alg": "RS256", "use": "sig"})
            published.append(jwk)
        return {"keys": published}

    def handler(self, request: httpx.Request) -> httpx.Response:
        assert str(request.url) == JWKS_URL
        self.fetches += 1
        if self.down:
            return httpx.Response(503)
        return httpx.Response(200, json=self.jwks())

    def token(self, kid: str, key: Any = None, **overrides: Any) -> str:
        now = int(time.time())
        body = {
            "iss": ISSUER,
            "aud": "rpm-api",
            "sub": "helseid-user",
            "iat": now,
            "nbf": now,
            "exp": now + 300,
            "helseid://claims/client/claims/orgnr_parent": ORG_A,
        }
        body.update(overrides)
        return jwt.encode(body, key or self.keys[kid], algorithm="RS256", headers={"kid": kid})


def production_settings() -> Settings:
    return Settings(dev_auth=False, oidc_issuer=ISSUER, oidc_jwks_url=JWKS_URL, oidc_audience="rpm-api")


@pytest.fixture
async def issuer():
    issuer = Issuer()
    issuer.add_key("k1")
    async with httpx.AsyncClient(transport=httpx.MockTransport(issuer.handler)) as http:
        issuer.http = http
        yield issuer


async def test_jwks_is_fetched_once_and_cached(issuer):
    verifier = TokenVerifier(production_settings(), issuer.http)
    assert (await verifier.verify(issuer.token("k1")))["sub"] == "helseid-user"
    assert (await verifier.verify(issuer.token("k1")))["sub"] == "helseid-user"
    assert issuer.fetches == 1


async def test_jwks_first_fetch_does_not_depend_on_the_clock(issuer, monkeypatch):
    """The first token after start must be checkable even if the monotonic clock is young
    (a machine booted seconds ago)."""
    young = SimpleNamespace(time=time.time, monotonic=lambda: 5.0)
    monkeypatch.setattr(tokens_module, "time", young)
    verifier = TokenVerifier(production_settings(), issuer.http)
    assert (await verifier.verify(issuer.token("k1")))["sub"] == "helseid-user"
    assert issuer.fetches == 1


async def test_jwks_is_refetched_for_a_new_kid_but_not_flooded(issuer):
    verifier = TokenVerifier(production_settings(), issuer.http)
    await verifier.verify(issuer.token("k1"))
    verifier._fetched_at -= 31  # the last fetch was more than 30 s ago
    issuer.add_key("k2")  # the issuer rotates its keys
    assert (await verifier.verify(issuer.token("k2")))["sub"] == "helseid-user"
    assert issuer.fetches == 2

    # Made-up kids right after: refused without hammering the issuer.
    for kid in ("made-up-1", "made-up-2", "made-up-3"):
        with pytest.raises(NotAuthenticated):
            await verifier.verify(issuer.token(kid, key=issuer.keys["k1"]))
    assert issuer.fetches == 2


async def test_production_tokens_are_checked(issuer):
    verifier = TokenVerifier(production_settings(), issuer.http)
    stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    bad = [
        issuer.token("k1", key=stranger),
        issuer.token("k1", aud="another-api"),
        issuer.token("k1", iss="rpm-dev"),
        issuer.token("k1", exp=int(time.time()) - 10),
    ]
    for token in bad:
        with pytest.raises(NotAuthenticated):
            await verifier.verify(token)


async def test_unreachable_jwks_is_503(issuer):
    issuer.down = True
    verifier = TokenVerifier(production_settings(), issuer.http)
    with pytest.raises(ServiceUnavailable):
        await verifier.verify(issuer.token("k1"))
