"""Encryption at rest of the secrets the platform must read back (provider keys, TOTP seeds): Fernet
(AES-128-CBC + HMAC-SHA256, from `cryptography`).

The key comes from the operator, never from the API: `ALP_SECRETS_KEY` (one or more Fernet keys,
comma-separated; the first encrypts, every one decrypts, so keys can be rotated), else the file
`ALP_SECRETS_KEY_FILE` (default `<data dir>/secrets.key`), created with mode 0600 on first use. Processes
that share a database must share the key (set `ALP_SECRETS_KEY` in each).
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from agent_lightning.core.config import Settings
from agent_lightning.core.errors import AppError


class SecretUnreadable(AppError):
    """A stored secret that the configured key cannot decrypt (the key changed or was lost)."""

    status = 503
    code = "secret_unreadable"


class SecretCipher:
    """Encrypts and decrypts short strings; the key is loaded (or the key file created) on first use."""

    def __init__(self, keys: list[str] | None = None, key_file: Path | None = None) -> None:
        if not keys and key_file is None:
            raise ValueError("A SecretCipher needs keys or a key file.")
        self._keys = keys or []
        self._key_file = key_file
        self._fernet: MultiFernet | None = None
        self._lock = threading.Lock()

    def _cipher(self) -> MultiFernet:
        if self._fernet is None:
            with self._lock:
                if self._fernet is None:
                    keys = self._keys or [_key_from_file(self._key_file)]
                    try:
                        self._fernet = MultiFernet([Fernet(key.strip().encode()) for key in keys])
                    except ValueError as exc:
                        raise ValueError(
                            "ALP_SECRETS_KEY must be Fernet keys (32 url-safe base64 bytes), "
                            "e.g. from `python -c 'from cryptography.fernet import Fernet; "
                            "print(Fernet.generate_key().decode())'`."
                        ) from exc
        return self._fernet

    def encrypt(self, plain: str) -> str:
        return self._cipher().encrypt(plain.encode()).decode()

    def decrypt(self, token: str) -> str:
        try:
            return self._cipher().decrypt(token.encode()).decode()
        except InvalidToken as exc:
            raise SecretUnreadable(
                "A stored secret cannot be decrypted with the configured ALP_SECRETS_KEY."
            ) from exc


def _key_from_file(path: Path | None) -> str:
    if path is None:
        raise ValueError("no key file configured")
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_text().strip()
    with os.fdopen(fd, "w") as handle:
        handle.write(Fernet.generate_key().decode())
    return path.read_text().strip()


def cipher_from_settings(settings: Settings) -> SecretCipher:
    """The cipher of ALP_SECRETS_KEY, else of ALP_SECRETS_KEY_FILE (default `<data dir>/secrets.key`)."""
    if settings.secrets_key is not None:
        keys = [k for k in settings.secrets_key.get_secret_value().split(",") if k.strip()]
        if keys:
            return SecretCipher(keys)
    return SecretCipher(key_file=settings.secrets_key_file or settings.data_dir / "secrets.key")
