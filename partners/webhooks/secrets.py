"""Standard Webhooks signing secrets: `whsec_` + base64 of 32 random bytes, sealed at rest."""

from __future__ import annotations

import base64
import secrets

from partners.keybox import KeyBox

SECRET_PREFIX = "whsec_"  # noqa: S105 (a prefix, not a secret)
SECRET_BYTES = 32  # the spec asks for at least 24
SECRET_ID_PREFIX = "whs_"  # noqa: S105
PUBLIC_ID_CHARS = 24
ROTATION_OVERLAP_S = 24 * 3600  # an old secret keeps signing this long after a rotation


def new_public_id(prefix: str) -> str:
    """`prefix` + lower-case letters and digits, as the schema's CHECKs require."""
    alphabet = "abcdefghijklmnopqrstuvwxyz0123456789"
    return prefix + "".join(secrets.choice(alphabet) for _ in range(PUBLIC_ID_CHARS))


def new_secret() -> str:
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode()


def key_bytes(secret: str) -> bytes:
    """The HMAC key a `whsec_` secret stands for (what `standardwebhooks` decodes too)."""
    assert secret.startswith(SECRET_PREFIX), "not a webhook secret"
    return base64.b64decode(secret[len(SECRET_PREFIX) :])


def seal(box: KeyBox, secret_id: str, secret: str) -> bytes:
    return box.seal(secret_id, secret)


def open_sealed(box: KeyBox, secret_id: str, sealed: bytes) -> str:
    return box.open(secret_id, sealed)
