"""Bearer tokens: checking them against an issuer's JWKS, and the development issuer.

The development issuer signs with a local ES256 key kept in the data folder. The API
trusts that key only when RPM_DEV_AUTH=true, which the settings refuse in production.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import httpx
import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from jwt import PyJWK

from rpm.config import Settings
from rpm.errors import Forbidden, NotAuthenticated, ServiceUnavailable

ALGORITHMS = ["RS256", "ES256"]
DEV_KID = "rpm-dev-1"


def load_or_create_dev_key(path: Path) -> ec.EllipticCurvePrivateKey:
    if path.exists():
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
        assert isinstance(key, ec.EllipticCurvePrivateKey)
        return key
    key = ec.generate_private_key(ec.SECP256R1())
    path.parent.mkdir(parents=True, exist_ok=True)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    path.touch(mode=0o600)
    path.write_bytes(pem)
    return key


def dev_jwks(settings: Settings) -> dict[str, Any]:
    public = load_or_create_dev_key(settings.dev_key_file).public_key()
    jwk = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(public))
    jwk.update({"kid": DEV_KID, "alg": "ES256", "use": "sig"})
    return {"keys": [jwk]}


def mint_dev_token(
    settings: Settings,
    *,
    sub: str,
    orgnr: str,
    roles: list[str],
    hpr: str | None = None,
    name: str | None = None,
    ttl_seconds: int = 3600,
    now: float | None = None,
) -> str:
    if not settings.dev_auth:
        raise Forbidden("dev_auth_off", "development tokens need RPM_DEV_AUTH=true (never in production)")
    issued = int(now if now is not None else time.time())
    claims: dict[str, Any] = {
        "iss": settings.dev_issuer,
        "aud": settings.oidc_audience,
        "sub": sub,
        "iat": issued,
        "nbf": issued,
        "exp": issued + ttl_seconds,
        settings.claim_orgnr_child: orgnr,
        settings.claim_roles: roles,
    }
    if hpr:
        claims[settings.claim_hpr] = hpr
    if name:
        claims["name"] = name
    key = load_or_create_dev_key(settings.dev_key_file)
    return jwt.encode(claims, key, algorithm="ES256", headers={"kid": DEV_KID})


class TokenVerifier:
    """Checks signature, iss, aud, exp and nbf. JWKS are cached and refetched on an unknown kid."""

    def __init__(self, settings: Settings, http: httpx.AsyncClient | None = None) -> None:
        self.settings = settings
        self.http = http
        self._keys: dict[str, tuple[str, PyJWK]] = {}  # kid -> (issuer, key)
        self._fetched_at = float("-inf")  # never fetched: the first unknown kid fetches at once
        if settings.dev_auth:
            for jwk in dev_jwks(settings)["keys"]:
                self._keys[jwk["kid"]] = (settings.dev_issuer, PyJWK(jwk))

    async def _refresh(self) -> None:
        url = self.settings.oidc_jwks_url
        # At most one refetch every 30 s, so a flood of made-up kids cannot hammer the issuer.
        if not url or self.http is None or time.monotonic() - self._fetched_at < 30:
            return
        self._fetched_at = time.monotonic()
        try:
            response = await self.http.get(url, timeout=5)
            response.raise_for_status()
            document = response.json()
        except (httpx.HTTPError, ValueError) as error:
            raise ServiceUnavailable("jwks_unreachable", f"cannot fetch the issuer's keys: {error}") from error
        for jwk in document.get("keys", []):
            if "kid" in jwk:
                self._keys[jwk["kid"]] = (self.settings.oidc_issuer or "", PyJWK(jwk))

    async def verify(self, token: str, *, audience: str | None = None) -> dict[str, Any]:
        """The token's claims; `audience` other than the API's is for an ID token (the client's)."""
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as error:
            raise NotAuthenticated("invalid_token", f"not a JWT: {error}") from error
        kid = header.get("kid")
        if kid not in self._keys:
            await self._refresh()
        if kid not in self._keys:
            raise NotAuthenticated("invalid_token", "the token's key is not one of the trusted issuers'")
        issuer, key = self._keys[kid]
        try:
            return jwt.decode(
                token,
                key=key,
                algorithms=ALGORITHMS,
                audience=audience or self.settings.oidc_audience,
                issuer=issuer,
                options={"require": ["exp", "iss", "aud", "sub"]},
            )
        except jwt.ExpiredSignatureError as error:
            raise NotAuthenticated("invalid_token", "the token has expired") from error
        except jwt.PyJWTError as error:
            raise NotAuthenticated("invalid_token", f"the token was refused: {error}") from error
