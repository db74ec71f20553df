"""Operator JWTs: algorithms, audience, typ, expiry and kid are all pinned."""

from __future__ import annotations

import time
from pathlib import Path

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from gateway.tokens import (
    ISSUER,
    OPERATOR_AUDIENCE,
    OPERATOR_TYP,
    SHOPPER_AUDIENCE,
    Role,
    SigningKey,
    TokenRejected,
    load_or_create,
    mint_operator,
    verify_operator,
)


@pytest.fixture
def key(tmp_path: Path) -> SigningKey:
    return load_or_create(tmp_path, None)


def claims(**overrides: object) -> dict[str, object]:
    now = int(time.time())
    base: dict[str, object] = {
        "iss": ISSUER,
        "aud": OPERATOR_AUDIENCE,
        "sub": "mallory",
        "role": "admin",
        "iat": now,
        "exp": now + 60,
    }
    base.update(overrides)
    return base


def sign(key: SigningKey, payload: dict[str, object], **headers: str) -> str:
    return jwt.encode(
        payload,
        key.private_key,
        algorithm="EdDSA",
        headers={"kid": key.kid, "typ": OPERATOR_TYP, **headers},
    )


def test_a_minted_token_verifies_with_its_role(key: SigningKey) -> None:
    token = mint_operator(key, subject="ops", role=Role.AUDITOR, ttl_s=60)
    verified = verify_operator(token, {key.kid: key})
    assert (verified.subject, verified.role) == ("ops", Role.AUDITOR)


def test_the_key_is_reused_across_starts(tmp_path: Path) -> None:
    assert load_or_create(tmp_path, None).kid == load_or_create(tmp_path, None).kid
    assert (tmp_path / "jwt-signing-key.pem").stat().st_mode & 0o077 == 0


def test_alg_none_is_refused(key: SigningKey) -> None:
    unsigned: str = jwt.encode(
        claims(), "", algorithm="none", headers={"kid": key.kid, "typ": OPERATOR_TYP}
    )
    token = unsigned
    with pytest.raises(TokenRejected, match="refused"):
        verify_operator(token, {key.kid: key})


def test_hs256_signed_with_the_public_key_is_refused(key: SigningKey) -> None:
    public_raw = key.jwk()["x"].encode()
    token = jwt.encode(
        claims(), public_raw, algorithm="HS256", headers={"kid": key.kid, "typ": OPERATOR_TYP}
    )
    with pytest.raises(TokenRejected):
        verify_operator(token, {key.kid: key})


def test_a_token_signed_by_another_key_with_our_kid_is_refused(key: SigningKey) -> None:
    impostor = SigningKey(Ed25519PrivateKey.generate(), key.kid)
    with pytest.raises(TokenRejected):
        verify_operator(sign(impostor, claims()), {key.kid: key})


# Claims are built when the test runs, not when it is collected: a token minted at import
# would expire before a long session reaches it.
EXPIRED = {"exp": -3600}


@pytest.mark.parametrize(
    ("overrides", "dropped", "code"),
    [
        ({"aud": SHOPPER_AUDIENCE}, None, "token_invalid"),
        ({"iss": "someone-else"}, None, "token_invalid"),
        (EXPIRED, None, "token_expired"),
        ({"role": "overlord"}, None, "token_invalid"),
        ({}, "exp", "token_invalid"),
    ],
)
def test_bad_claims_are_refused(
    key: SigningKey, overrides: dict[str, object], dropped: str | None, code: str
) -> None:
    if overrides is EXPIRED:
        overrides = {"exp": int(time.time()) - 3600}
    payload = {k: v for k, v in claims(**overrides).items() if k != dropped}
    with pytest.raises(TokenRejected) as refused:
        verify_operator(sign(key, payload), {key.kid: key})
    assert refused.value.code == code


def test_a_shopper_typ_is_refused_as_operator(key: SigningKey) -> None:
    with pytest.raises(TokenRejected, match="typ"):
        verify_operator(sign(key, claims(), typ="shopper+jwt"), {key.kid: key})


def test_an_unknown_kid_is_refused(key: SigningKey) -> None:
    with pytest.raises(TokenRejected, match="kid"):
        verify_operator(sign(key, claims(), kid="nope"), {key.kid: key})
