"""Where a deployment's API key comes from, and who may use which source.

- `api_key_secret`: a secret of the alias's owner in the secrets store (a tenant's alias reads its tenant's
  secrets, a platform alias the platform's: never across).
- `api_key`: given inline with the alias (stored encrypted, never shown).
- `api_key_env`: an environment variable, for platform aliases only, named in the operator's
  `ALP_SECRET_ENV_ALLOW`, and never one of the platform's own `ALP_*` settings.
- none of these: the operator's `ALP_OPENAI_API_KEY` / `ALP_ANTHROPIC_API_KEY`, and only when the deployment
  keeps the operator's base URL, so that the key goes nowhere the operator did not choose.
"""

from __future__ import annotations

import os
import time

from agent_lightning.core.config import Settings
from agent_lightning.core.errors import AppError, Invalid
from agent_lightning.core.tenancy import PLATFORM
from agent_lightning.models.schemas import Deployment
from agent_lightning.secrets.schemas import SecretResolver

SECRET_CACHE_S = 10.0
"""A revealed secret is reused this long, so that a changed secret takes effect within it."""


class CredentialError(Exception):
    """No usable key for a deployment: the deployment is unavailable, for the reason given."""


class Credentials:
    def __init__(self, settings: Settings, secrets: SecretResolver | None = None) -> None:
        self.settings = settings
        self.secrets = secrets
        self._cache: dict[tuple[str, str], tuple[float, str]] = {}

    def env_allowed(self, name: str, owner: str) -> bool:
        return (
            owner == PLATFORM
            and not name.upper().startswith("ALP_")
            and name in self.settings.secret_env_allow
        )

    def check(self, deployment: Deployment, owner: str) -> None:
        """Refuse, when an alias is registered, a key source its owner may not use."""
        if deployment.api_key_env and not self.env_allowed(deployment.api_key_env, owner):
            raise Invalid(
                f"api_key_env {deployment.api_key_env!r} is not allowed: only platform aliases may read "
                "environment variables, and only those in ALP_SECRET_ENV_ALLOW. Store the key with PUT "
                "/secrets/{name} and name it in api_key_secret.",
                code="api_key_env_not_allowed",
                details={"api_key_env": deployment.api_key_env},
            )
        if deployment.api_key_secret and self.secrets is None:
            raise Invalid("This process has no secrets store.", code="secrets_unavailable")

    async def key(self, deployment: Deployment, owner: str) -> str | None:
        """The key to send; raises `CredentialError` when the configured source cannot give one."""
        if deployment.api_key_secret:
            return await self._secret(deployment.api_key_secret, owner)
        if deployment.api_key is not None:
            return deployment.api_key.get_secret_value()
        if deployment.api_key_env:
            if not self.env_allowed(deployment.api_key_env, owner):
                raise CredentialError(
                    f"api_key_env {deployment.api_key_env!r} is not allowed (ALP_SECRET_ENV_ALLOW)"
                )
            return os.environ.get(deployment.api_key_env)
        if deployment.base_url is None:
            if deployment.provider == "openai" and self.settings.openai_api_key:
                return self.settings.openai_api_key.get_secret_value()
            if deployment.provider == "anthropic" and self.settings.anthropic_api_key:
                return self.settings.anthropic_api_key.get_secret_value()
        return None

    def cached(self, deployment: Deployment) -> bool:
        """Whether a provider built for this deployment may be kept (its key cannot change under it)."""
        return not deployment.api_key_secret

    async def _secret(self, name: str, owner: str) -> str:
        if self.secrets is None:
            raise CredentialError("no secrets store in this process")
        hit = self._cache.get((owner, name))
        if hit is not None and hit[0] > time.monotonic():
            return hit[1]
        try:
            value = await self.secrets.reveal(name, tenant_id=owner)
        except AppError as exc:
            raise CredentialError(exc.message) from exc
        self._cache[(owner, name)] = (time.monotonic() + SECRET_CACHE_S, value)
        return value
