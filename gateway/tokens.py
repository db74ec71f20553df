"""JWT signing keys (Ed25519), the JWKS document, and operator / shopper tokens.

Algorithms, audiences and required claims are pinned at every decode: nothing is left to
library defaults.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import time
import uuid
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

ALGORITHM = "EdDSA"
ISSUER = "coalition"
OPERATOR_AUDIENCE = "coalition-operator"
SHOPPER_AUDIENCE = "coalition-shopper"
OPERATOR_TYP = "operator+jwt"
SHOPPER_TYP = "shopper+jwt"
TTL_S_MAX = 7 * 24 * 3600
LEEWAY_S = 30
KEY_FILE_NAME = "jwt-signing-key.pem"


class Role(StrEnum):
    ADMIN = "admin"
    FINANCE = "finance"
    SUPPORT = "support"
    AUDITOR = "auditor"


class TokenRejected(Exception):
    """A token failed verification; `code` says why (token_invalid or token_expired)."""

    def __init__(self, code: str, detail: str) -> None:
        super().__init__(detail)
        self.code = code


@dataclass(frozen=True)
class SigningKey:
    private_key: Ed25519PrivateKey
    kid: str

    @property
    def public_key(self) -> Ed25519PublicKey:
        return self.private_key.public_key()

    def jwk(self) -> dict[str, str]:
        return {
            "kty": "OKP",
            "crv": "Ed25519",
            "x": _raw_public_b64(self.public_key),
            "kid": self.kid,
            "alg": ALGORITHM,
            "use": "sig",
        }


@dataclass(frozen=True)
class OperatorClaims:
    subject: str
    role: Role
    token_id: str


@dataclass(frozen=True)
class ShopperClaims:
    shopper_id: int
    partner_id: int  # the partner whose app authenticated the shopper
    token_id: str


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _raw_public_b64(public_key: Ed25519PublicKey) -> str:
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return _b64url(raw)


def _thumbprint(public_key: Ed25519PublicKey) -> str:
    """RFC 7638 JWK thumbprint: a kid that changes exactly when the key does."""
    members = {"crv": "Ed25519", "kty": "OKP", "x": _raw_public_b64(public_key)}
    canonical = json.dumps(members, separators=(",", ":"), sort_keys=True).encode()
    return _b64url(hashlib.sha256(canonical).digest())


def key_from_pem(pem: bytes) -> SigningKey:
    private_key = serialization.load_pem_private_key(pem, password=None)
    if not isinstance(private_key, Ed25519PrivateKey):
        raise ValueError("the JWT signing key must be an Ed25519 private key")
    return SigningKey(private_key, _thumbprint(private_key.public_key()))


def load_or_create(data_dir: Path, configured_pem: str | None) -> SigningKey:
    """The configured key, else the one in the data dir, else a new one written there."""
    if configured_pem:
        return key_from_pem(configured_pem.encode())
    path = data_dir / KEY_FILE_NAME
    if path.exists():
        return key_from_pem(path.read_bytes())
    private_key = Ed25519PrivateKey.generate()
    pem = private_key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    data_dir.mkdir(parents=True, exist_ok=True)
    # Written owner-only and atomically so a concurrent start never reads half a key.
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(pem)
    try:
        os.link(tmp, path)  # another process may have won the race: then its key is used
    except FileExistsError:
        pass
    finally:
        tmp.unlink()
    return key_from_pem(path.read_bytes())


def jwks(keys: list[SigningKey]) -> dict[str, list[dict[str, str]]]:
    return {"keys": [key.jwk() for key in keys]}


def mint_operator(key: SigningKey, *, subject: str, role: Role, ttl_s: int) -> str:
    assert 0 < ttl_s <= TTL_S_MAX, ttl_s
    now = int(time.time())
    claims = {
        "iss": ISSUER,
        "aud": OPERATOR_AUDIENCE,
        "sub": subject,
        "role": role.value,
        "iat": now,
        "nbf": now,
        "exp": now + ttl_s,
        "jti": uuid.uuid4().hex,
    }
    return jwt.encode(
        claims, key.private_key, algorithm=ALGORITHM, headers={"kid": key.kid, "typ": OPERATOR_TYP}
    )


def _decode(token: str, keys: dict[str, SigningKey], *, audience: str, typ: str) -> dict[str, Any]:
    try:
        header = jwt.get_unverified_header(token)
    except jwt.PyJWTError:
        raise TokenRejected("token_invalid", "the token is not a JWT") from None
    if header.get("typ") != typ:
        raise TokenRejected("token_invalid", f"the token's typ must be {typ}")
    key = keys.get(str(header.get("kid")))
    if key is None:
        raise TokenRejected("token_invalid", "the token's kid is unknown")
    try:
        claims: dict[str, Any] = jwt.decode(
            token,
            key.public_key,
            algorithms=[ALGORITHM],
            audience=audience,
            issuer=ISSUER,
            leeway=LEEWAY_S,
            options={"require": ["exp", "iat", "sub", "aud", "iss"]},
        )
    except jwt.ExpiredSignatureError:
        raise TokenRejected("token_expired", "the token has expired") from None
    except jwt.PyJWTError as exc:
        raise TokenRejected("token_invalid", f"the token was refused: {exc}") from None
    return claims


def verify_operator(token: str, keys: dict[str, SigningKey]) -> OperatorClaims:
    claims = _decode(token, keys, audience=OPERATOR_AUDIENCE, typ=OPERATOR_TYP)
    try:
        role = Role(str(claims.get("role")))
    except ValueError:
        raise TokenRejected("token_invalid", "the token names no known role") from None
    return OperatorClaims(subject=str(claims["sub"]), role=role, token_id=str(claims.get("jti")))


SHOPPER_SUBJECT_PREFIX = "shopper:"
SHOPPER_TTL_S_MAX = 3600  # shopper sessions are short: a partner app mints a new one


def mint_shopper(key: SigningKey, *, shopper_id: int, partner_id: int, ttl_s: int) -> str:
    assert 0 < ttl_s <= SHOPPER_TTL_S_MAX, ttl_s
    now = int(time.time())
    claims = {
        "iss": ISSUER,
        "aud": SHOPPER_AUDIENCE,
        "sub": f"{SHOPPER_SUBJECT_PREFIX}{shopper_id}",
        "pid": partner_id,
        "iat": now,
        "nbf": now,
        "exp": now + ttl_s,
        "jti": uuid.uuid4().hex,
    }
    return jwt.encode(
        claims, key.private_key, algorithm=ALGORITHM, headers={"kid": key.kid, "typ": SHOPPER_TYP}
    )


def verify_shopper(token: str, keys: dict[str, SigningKey]) -> ShopperClaims:
    """Pinned like operator tokens: EdDSA only, shopper audience and typ, exp/iat/sub required."""
    claims = _decode(token, keys, audience=SHOPPER_AUDIENCE, typ=SHOPPER_TYP)
    subject = str(claims["sub"])
    number = subject.removeprefix(SHOPPER_SUBJECT_PREFIX)
    partner_id = claims.get("pid")
    if number == subject or not number.isdigit() or not isinstance(partner_id, int):
        raise TokenRejected("token_invalid", "the token names no shopper")
    return ShopperClaims(
        shopper_id=int(number), partner_id=partner_id, token_id=str(claims.get("jti"))
    )
