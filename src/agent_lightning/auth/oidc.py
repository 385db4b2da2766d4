"""Login through an OpenID Connect identity provider: the authorization-code flow with PKCE (Authlib's OAuth 2
client) and ID tokens checked with joserfc against the provider's published keys (JWKS): signature, issuer,
audience, expiry and the nonce of this login.

`start()` gives the provider's authorization URL and the state to keep in the browser (a short-lived token
the server signed, set as a cookie by the API); `finish()` checks the callback against it, exchanges the code
and returns the verified claims."""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass
from typing import Any

import httpx
from authlib.integrations.httpx_client import AsyncOAuth2Client
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet

from agent_lightning.core.auth import sign, verify
from agent_lightning.core.config import Settings
from agent_lightning.core.errors import Unauthenticated, Unavailable

FLOW_TTL_S = 600
METADATA_TTL_S = 3600.0
ALGORITHMS = ["RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"]
LEEWAY_S = 60


@dataclass(frozen=True)
class Started:
    url: str
    flow: str  # the signed state, nonce and PKCE verifier of this login, kept by the browser


class OIDCLogin:
    """One configured provider (`ALP_OIDC_*`)."""

    def __init__(self, settings: Settings, signing_secret: str) -> None:
        if not (settings.oidc_issuer and settings.oidc_client_id and settings.oidc_redirect_uri):
            raise ValueError("OIDC needs ALP_OIDC_ISSUER, ALP_OIDC_CLIENT_ID and ALP_OIDC_REDIRECT_URI")
        self.issuer = settings.oidc_issuer.rstrip("/")
        self.client_id = settings.oidc_client_id
        self.client_secret = (
            settings.oidc_client_secret.get_secret_value() if settings.oidc_client_secret else None
        )
        self.redirect_uri = settings.oidc_redirect_uri
        self.scopes = settings.oidc_scopes
        self._secret = signing_secret
        self._metadata: tuple[float, dict[str, Any]] | None = None

    @staticmethod
    def configured(settings: Settings) -> bool:
        return bool(settings.oidc_issuer and settings.oidc_client_id and settings.oidc_redirect_uri)

    def _client(self) -> AsyncOAuth2Client:
        return AsyncOAuth2Client(
            client_id=self.client_id,
            client_secret=self.client_secret,
            scope=self.scopes,
            redirect_uri=self.redirect_uri,
            code_challenge_method="S256",
            timeout=10,
        )

    async def metadata(self) -> dict[str, Any]:
        """The provider's discovery document (cached for an hour)."""
        if self._metadata is not None and self._metadata[0] > time.monotonic():
            return self._metadata[1]
        url = f"{self.issuer}/.well-known/openid-configuration"
        try:
            async with httpx.AsyncClient(timeout=10) as client:
                response = await client.get(url)
                response.raise_for_status()
                document = response.json()
        except (httpx.HTTPError, ValueError) as exc:
            raise Unavailable(
                f"The identity provider's discovery document ({url}) cannot be read.", code="oidc_unavailable"
            ) from exc
        if document.get("issuer", "").rstrip("/") != self.issuer:
            raise Unavailable(
                "The identity provider names another issuer than ALP_OIDC_ISSUER.",
                code="oidc_misconfigured",
                details={"issuer": document.get("issuer")},
            )
        self._metadata = (time.monotonic() + METADATA_TTL_S, document)
        return document

    async def start(self) -> Started:
        state, nonce, verifier = (secrets.token_urlsafe(24) for _ in range(3))
        endpoint = (await self.metadata())["authorization_endpoint"]
        async with self._client() as client:
            url, _ = client.create_authorization_url(
                endpoint, state=state, nonce=nonce, code_verifier=verifier
            )
        flow = sign(
            {"sub": "oidc-login", "state": state, "nonce": nonce, "verifier": verifier},
            self._secret,
            FLOW_TTL_S,
        )
        return Started(url=url, flow=flow)

    async def finish(self, *, code: str, state: str, flow: str | None) -> dict[str, Any]:
        """The verified ID-token claims of a callback; raises `Unauthenticated` on any mismatch."""
        if not flow:
            raise Unauthenticated(
                "This login was not started here (no login cookie); start again.", code="oidc_state_mismatch"
            )
        try:
            started = verify(flow, self._secret)
        except Unauthenticated as exc:
            raise Unauthenticated(
                "This login expired or its cookie is invalid; start again.", code="oidc_state_mismatch"
            ) from exc
        if not secrets.compare_digest(str(started.get("state", "")), state):
            raise Unauthenticated(
                "The login's state does not match (a forged callback?).", code="oidc_state_mismatch"
            )
        metadata = await self.metadata()
        try:
            async with self._client() as client:
                token = await client.fetch_token(
                    metadata["token_endpoint"], code=code, code_verifier=started["verifier"]
                )
        except (
            Exception
        ) as exc:  # Authlib raises OAuthError, httpx its own: the code was refused or unreachable
            raise Unauthenticated(
                "The identity provider refused the login code.", code="oidc_code_refused"
            ) from exc
        id_token = token.get("id_token")
        if not id_token:
            raise Unauthenticated("The identity provider sent no ID token.", code="oidc_invalid_id_token")
        return await self._claims(id_token, metadata, nonce=started["nonce"])

    async def _claims(self, id_token: str, metadata: dict[str, Any], *, nonce: str) -> dict[str, Any]:
        try:
            async with httpx.AsyncClient(timeout=10) as client:
                response = await client.get(metadata["jwks_uri"])
                response.raise_for_status()
                keys = KeySet.import_key_set(response.json())
        except (httpx.HTTPError, ValueError, KeyError) as exc:
            raise Unavailable(
                "The identity provider's keys (JWKS) cannot be read.", code="oidc_unavailable"
            ) from exc
        try:
            decoded = jwt.decode(id_token, keys, algorithms=ALGORITHMS)
            jwt.JWTClaimsRegistry(
                leeway=LEEWAY_S,
                iss={"essential": True, "value": metadata["issuer"]},
                aud={"essential": True, "value": self.client_id},
                sub={"essential": True},
                exp={"essential": True},
                nonce={"essential": True, "value": nonce},
            ).validate(decoded.claims)
        except (JoseError, ValueError) as exc:
            raise Unauthenticated(
                f"The ID token is not valid for this login ({type(exc).__name__}).",
                code="oidc_invalid_id_token",
            ) from exc
        return dict(decoded.claims)
