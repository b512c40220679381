"""A stand-in for HelseID in the tests: an OpenID Connect issuer with the authorisation code
flow and PKCE (RFC 7636), as strict as a real one about what the client sends, and with
switches to misbehave (an error, a wrong nonce, a key nobody trusts, a refused code).

It signs the person in at once (the tests are not about its login screen) as `identity`, and
keeps every token it hands out so a test can look for them where they must never be.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import secrets
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import Route

from rpm.config import Settings

KID = "fake-helseid-1"
VERIFIER = re.compile(r"[A-Za-z0-9\-._~]{43,128}")  # RFC 7636 section 4.1


@dataclass
class Identity:
    """Whom the issuer signs in: the claims HelseID gives a health worker of an organisation."""

    sub: str = "helseid-sub-7f3a"
    name: str = "Nina Sykepleier"
    orgnr: str = "974600951"
    roles: list[str] = field(default_factory=lambda: ["nurse"])
    hpr: str | None = "9144889"


@dataclass
class Grant:
    client_id: str
    redirect_uri: str
    challenge: str
    nonce: str


def s256(verifier: str) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(verifier.encode("ascii")).digest()).decode().rstrip("=")


class FakeIssuer:
    def __init__(self, *, client_id: str, audience: str, settings: Settings) -> None:
        self.client_id = client_id
        self.audience = audience
        self.settings = settings
        self.url = ""  # set once served
        self.redirect_uris: set[str] = set()
        self.identity = Identity()
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.impostor = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.codes: dict[str, Grant] = {}
        self.authorisations: list[dict[str, str]] = []  # what the client asked for
        self.token_requests: list[dict[str, str]] = []
        self.issued: list[str] = []  # every token handed out
        # Switches to misbehave.
        self.error: str | None = None  # /authorize answers with this error
        self.nonce: str | None = None  # the ID token says this nonce instead of the client's
        self.signing_key: rsa.RSAPrivateKey | None = None  # sign with this instead (same kid)
        self.kid = KID
        self.refuse_code = False
        self.id_audience: str | None = None
        self.access_audience: str | None = None
        self.app = Starlette(
            routes=[
                Route("/.well-known/openid-configuration", self.discovery),
                Route("/authorize", self.authorize),
                Route("/token", self.token, methods=["POST"]),
                Route("/jwks", self.jwks),
            ]
        )

    async def discovery(self, request: Request) -> Response:
        return JSONResponse(
            {
                "issuer": self.url,
                "authorization_endpoint": f"{self.url}/authorize",
                "token_endpoint": f"{self.url}/token",
                "jwks_uri": f"{self.url}/jwks",
                "response_types_supported": ["code"],
                "code_challenge_methods_supported": ["S256"],
                "id_token_signing_alg_values_supported": ["RS256"],
            }
        )

    async def jwks(self, request: Request) -> Response:
        jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(self.key.public_key()))
        jwk.update({"kid": KID, "alg": "RS256", "use": "sig"})
        return JSONResponse({"keys": [jwk]})

    async def authorize(self, request: Request) -> Response:
        query = dict(request.query_params)
        self.authorisations.append(query)
        redirect_uri = query.get("redirect_uri", "")
        # An unknown client or return address is never redirected to: that is how codes leak.
        if query.get("client_id") != self.client_id or redirect_uri not in self.redirect_uris:
            return PlainTextResponse("unknown client or redirect_uri", 400)
        state = query.get("state", "")
        problem = None
        if query.get("response_type") != "code":
            problem = "unsupported_response_type"
        elif "openid" not in query.get("scope", "").split():
            problem = "invalid_scope"
        elif query.get("code_challenge_method") != "S256" or len(query.get("code_challenge", "")) != 43:
            problem = "invalid_request"
        elif not state or not query.get("nonce"):
            problem = "invalid_request"
        elif self.error:
            problem = self.error
        if problem:
            return RedirectResponse(f"{redirect_uri}?{urlencode({'error': problem, 'state': state})}", 302)
        code = secrets.token_urlsafe(24)
        self.codes[code] = Grant(self.client_id, redirect_uri, query["code_challenge"], query["nonce"])
        return RedirectResponse(f"{redirect_uri}?{urlencode({'code': code, 'state': state})}", 302)

    async def token(self, request: Request) -> Response:
        form = {k: str(v) for k, v in (await request.form()).items()}
        self.token_requests.append(form)
        grant = self.codes.pop(form.get("code", ""), None)  # a code is good once
        verifier = form.get("code_verifier", "")
        if (
            self.refuse_code
            or grant is None
            or form.get("grant_type") != "authorization_code"
            or form.get("client_id") != grant.client_id
            or form.get("redirect_uri") != grant.redirect_uri
            or not VERIFIER.fullmatch(verifier)
            or not secrets.compare_digest(s256(verifier), grant.challenge)
        ):
            return JSONResponse({"error": "invalid_grant"}, 400)
        now = int(time.time())
        person = self.identity
        id_token = self._sign(
            {
                "iss": self.url,
                "sub": person.sub,
                "aud": self.id_audience or self.client_id,
                "iat": now,
                "exp": now + 300,
                "auth_time": now,
                "nonce": self.nonce or grant.nonce,
                "name": person.name,
            }
        )
        claims: dict[str, Any] = {
            "iss": self.url,
            "sub": person.sub,
            "aud": self.access_audience or self.audience,
            "iat": now,
            "nbf": now,
            "exp": now + 600,
            "client_id": self.client_id,
            "scope": "openid profile",
            "name": person.name,
            self.settings.claim_orgnr_child: person.orgnr,
            self.settings.claim_roles: person.roles,
        }
        if person.hpr:
            claims[self.settings.claim_hpr] = person.hpr
        access_token = self._sign(claims)
        return JSONResponse(
            {"access_token": access_token, "id_token": id_token, "token_type": "Bearer", "expires_in": 600}
        )

    def _sign(self, claims: dict[str, Any]) -> str:
        token = jwt.encode(claims, self.signing_key or self.key, algorithm="RS256", headers={"kid": self.kid})
        self.issued.append(token)
        return token
