"""A small but real OpenID Connect provider for the OIDC login tests: discovery, an authorization endpoint
that logs in `user` at once, a token endpoint checking the client secret, the redirect URI and PKCE (S256),
RS256 ID tokens signed with joserfc, and the JWKS. Served by uvicorn on a loopback port in a thread.

Knobs for the negative tests: `audience`, `nonce` and `issuer` override those claims; `signing_key` signs
with another key than the published one."""

from __future__ import annotations

import base64
import hashlib
import secrets
import threading
import time
from typing import Any

import uvicorn
from fastapi import FastAPI, Form, Header, HTTPException, Query
from fastapi.responses import JSONResponse, RedirectResponse
from joserfc import jwt
from joserfc.jwk import KeySet, RSAKey
from support import free_port

CLIENT_ID = "agent-lightning"
CLIENT_SECRET = "provider-side-secret-0123456789"


class OIDCProvider:
    def __init__(self, redirect_uri: str) -> None:
        self.port = free_port()
        self.issuer = f"http://127.0.0.1:{self.port}"
        self.redirect_uri = redirect_uri
        self.key = RSAKey.generate_key(2048, parameters={"kid": "main"})
        self.signing_key = self.key
        self.user: dict[str, Any] = {
            "sub": "u-1001",
            "preferred_username": "grace",
            "email": "grace@example.com",
        }
        self.audience: str | None = None
        self.nonce: str | None = None
        self.issued_claims: dict[str, Any] | None = None
        self.codes: dict[str, dict[str, Any]] = {}
        self.token_requests = 0
        self._server = uvicorn.Server(
            uvicorn.Config(self._app(), host="127.0.0.1", port=self.port, log_level="error")
        )
        self._thread = threading.Thread(target=self._server.run, daemon=True)

    def start(self) -> OIDCProvider:
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            assert time.monotonic() < deadline, "the OIDC provider did not start"
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(5)

    def _app(self) -> FastAPI:
        app = FastAPI()

        @app.get("/.well-known/openid-configuration")
        def discovery() -> dict[str, Any]:
            return {
                "issuer": self.issuer,
                "authorization_endpoint": f"{self.issuer}/authorize",
                "token_endpoint": f"{self.issuer}/token",
                "jwks_uri": f"{self.issuer}/jwks",
                "response_types_supported": ["code"],
                "subject_types_supported": ["public"],
                "id_token_signing_alg_values_supported": ["RS256"],
                "code_challenge_methods_supported": ["S256"],
            }

        @app.get("/authorize")
        def authorize(
            client_id: str,
            redirect_uri: str,
            state: str,
            nonce: str,
            code_challenge: str,
            code_challenge_method: str,
            response_type: str = Query("code"),
            scope: str = Query(""),
        ):
            if client_id != CLIENT_ID or redirect_uri != self.redirect_uri or response_type != "code":
                raise HTTPException(400, "unknown client or redirect URI")
            if code_challenge_method != "S256" or "openid" not in scope.split():
                raise HTTPException(400, "PKCE S256 and the openid scope are required")
            code = secrets.token_urlsafe(16)
            self.codes[code] = {"nonce": nonce, "challenge": code_challenge, "user": dict(self.user)}
            return RedirectResponse(f"{redirect_uri}?code={code}&state={state}", status_code=302)

        @app.post("/token")
        def token(
            grant_type: str = Form(),
            code: str = Form(),
            redirect_uri: str = Form(),
            code_verifier: str = Form(),
            authorization: str = Header(""),
        ):
            self.token_requests += 1
            expected = "Basic " + base64.b64encode(f"{CLIENT_ID}:{CLIENT_SECRET}".encode()).decode()
            if authorization != expected:
                return JSONResponse({"error": "invalid_client"}, status_code=401)
            grant = self.codes.pop(code, None)  # a code is used once
            challenge = (
                base64.urlsafe_b64encode(hashlib.sha256(code_verifier.encode()).digest())
                .rstrip(b"=")
                .decode()
            )
            if (
                grant is None
                or grant_type != "authorization_code"
                or redirect_uri != self.redirect_uri
                or challenge != grant["challenge"]
            ):
                return JSONResponse({"error": "invalid_grant"}, status_code=400)
            now = int(time.time())
            claims = {
                **grant["user"],
                "iss": self.issuer,
                "aud": self.audience or CLIENT_ID,
                "iat": now,
                "exp": now + 300,
                "nonce": self.nonce or grant["nonce"],
            }
            self.issued_claims = claims
            id_token = jwt.encode({"alg": "RS256", "kid": "main"}, claims, self.signing_key)
            return {
                "access_token": secrets.token_urlsafe(16),
                "token_type": "Bearer",
                "expires_in": 300,
                "id_token": id_token,
            }

        @app.get("/jwks")
        def jwks() -> dict[str, Any]:
            return KeySet([self.key]).as_dict(private=False)

        return app
