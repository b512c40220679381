"""The web page's OpenID Connect client: authorisation code flow with PKCE (RFC 7636).

The page is the client (backend for frontend): the browser only ever carries the code from
the issuer back to the service; the tokens stay here, and the browser gets a session cookie.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

import httpx

from rpm.config import Settings
from rpm.errors import ServiceUnavailable


class OidcClient:
    def __init__(self, settings: Settings, http: httpx.AsyncClient) -> None:
        self.settings = settings
        self.http = http
        self._endpoints: tuple[str, str] | None = None

    @property
    def configured(self) -> bool:
        return bool(self.settings.oidc_issuer and self.settings.oidc_client_id)

    async def endpoints(self) -> tuple[str, str]:
        """(authorisation, token) endpoints: from the settings, else the issuer's discovery."""
        if self._endpoints is None:
            authorize, token = self.settings.oidc_authorization_url, self.settings.oidc_token_url
            if not authorize or not token:
                document = await self._get(
                    f"{(self.settings.oidc_issuer or '').rstrip('/')}/.well-known/openid-configuration"
                )
                authorize = authorize or document["authorization_endpoint"]
                token = token or document["token_endpoint"]
            self._endpoints = (str(authorize), str(token))
        return self._endpoints

    async def _get(self, url: str) -> dict[str, Any]:
        try:
            response = await self.http.get(url, timeout=5)
            response.raise_for_status()
            return dict(response.json())
        except (httpx.HTTPError, ValueError) as error:
            raise ServiceUnavailable("issuer_unreachable", f"cannot reach the sign-in service: {error}") from error

    async def authorisation_url(self, *, redirect_uri: str, state: str, challenge: str, nonce: str) -> str:
        authorize, _ = await self.endpoints()
        query = {
            "response_type": "code",
            "client_id": self.settings.oidc_client_id,
            "redirect_uri": redirect_uri,
            "scope": self.settings.oidc_scopes,
            "state": state,
            "nonce": nonce,
            "code_challenge": challenge,
            "code_challenge_method": "S256",
        }
        return f"{authorize}?{urlencode(query)}"

    async def exchange(self, *, code: str, redirect_uri: str, verifier: str) -> dict[str, Any]:
        """The issuer's token response for the code: access_token and id_token."""
        _, token_url = await self.endpoints()
        form = {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": redirect_uri,
            "code_verifier": verifier,
            "client_id": self.settings.oidc_client_id or "",
        }
        secret = self.settings.oidc_client_secret.get_secret_value() if self.settings.oidc_client_secret else None
        try:
            if secret:  # a confidential client authenticates; a public one has only PKCE
                auth = httpx.BasicAuth(self.settings.oidc_client_id or "", secret)
                response = await self.http.post(token_url, data=form, auth=auth, timeout=10)
            else:
                response = await self.http.post(token_url, data=form, timeout=10)
        except httpx.HTTPError as error:
            raise ServiceUnavailable("issuer_unreachable", f"cannot reach the sign-in service: {error}") from error
        if response.status_code != 200:
            raise ServiceUnavailable(
                "sign_in_refused", f"the sign-in service refused the code ({response.status_code})"
            )
        return dict(response.json())
