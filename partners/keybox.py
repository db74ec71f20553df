"""API secrets sealed at rest with AES-256-GCM under the network's master key.

The master key comes from configuration (COALITION_MASTER_KEY: 32 bytes, base64 or hex); on a
development machine without one, a key is generated once in the data directory, owner-only.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import os
import secrets
from pathlib import Path

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

MASTER_KEY_BYTES = 32
GCM_NONCE_BYTES = 12
KEY_FILE_NAME = "master-key"


class MasterKeyInvalid(ValueError):
    """The configured master key is not 32 bytes in base64 or hex."""


def parse_master_key(text: str) -> bytes:
    text = text.strip()
    candidates: list[bytes] = []
    if len(text) == 2 * MASTER_KEY_BYTES:
        with contextlib.suppress(ValueError):
            candidates.append(bytes.fromhex(text))
    for decode in (base64.b64decode, base64.urlsafe_b64decode):
        with contextlib.suppress(binascii.Error, ValueError):
            candidates.append(decode(text + "=" * (-len(text) % 4)))
    for raw in candidates:
        if len(raw) == MASTER_KEY_BYTES:
            return raw
    raise MasterKeyInvalid(
        f"COALITION_MASTER_KEY must be {MASTER_KEY_BYTES} bytes, base64 or hex encoded"
    )


class KeyBox:
    """Seal and open API secrets; the key id is bound in as associated data."""

    def __init__(self, master_key: bytes) -> None:
        assert len(master_key) == MASTER_KEY_BYTES, "AES-256 needs a 32-byte key"
        self._aead = AESGCM(master_key)

    def seal(self, key_id: str, secret: str) -> bytes:
        nonce = os.urandom(GCM_NONCE_BYTES)
        return nonce + self._aead.encrypt(nonce, secret.encode(), key_id.encode())

    def open(self, key_id: str, sealed: bytes) -> str:
        nonce, ciphertext = sealed[:GCM_NONCE_BYTES], sealed[GCM_NONCE_BYTES:]
        return self._aead.decrypt(nonce, ciphertext, key_id.encode()).decode()

    def __repr__(self) -> str:  # never show key material
        return "KeyBox(***)"


def load_or_create(data_dir: Path, configured: str | None) -> KeyBox:
    """The configured master key, else the one in the data dir, else a new one written there."""
    if configured:
        return KeyBox(parse_master_key(configured))
    path = data_dir / KEY_FILE_NAME
    if not path.exists():
        data_dir.mkdir(parents=True, exist_ok=True)
        encoded = base64.b64encode(secrets.token_bytes(MASTER_KEY_BYTES))
        # Owner-only and atomic: a concurrent start either wins the link or reads the winner's.
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(encoded)
        try:
            os.link(tmp, path)
        except FileExistsError:
            pass
        finally:
            tmp.unlink()
    return KeyBox(parse_master_key(path.read_text()))
