"""Shopper JWTs are pinned like operator ones: EdDSA only, shopper aud and typ, exp required."""

from __future__ import annotations

import base64
import json
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
    SHOPPER_TYP,
    Role,
    SigningKey,
    TokenRejected,
    load_or_create,
    mint_operator,
    mint_shopper,
    verify_operator,
    verify_shopper,
)


@pytest.fixture
def key(tmp_path: Path) -> SigningKey:
    return load_or_create(tmp_path, None)


def claims(**overrides: object) -> dict[str, object]:
    now = int(time.time())
    base: dict[str, object] = {
        "iss": ISSUER,
        "aud": SHOPPER_AUDIENCE,
        "sub": "shopper:42",
        "pid": 7,
        "iat": now,
        "exp": now + 60,
    }
    base.update(overrides)
    return {k: v for k, v in base.items() if v is not None}


def sign(key: SigningKey, payload: dict[str, object], **headers: str) -> str:
    return jwt.encode(
        payload,
        key.private_key,
        algorithm="EdDSA",
        headers={"kid": key.kid, "typ": SHOPPER_TYP, **headers},
    )


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def refused(token: str, key: SigningKey) -> str:
    with pytest.raises(TokenRejected) as rejection:
        verify_shopper(token, {key.kid: key})
    return rejection.value.code


def test_a_minted_shopper_token_verifies(key: SigningKey) -> None:
    token = mint_shopper(key, shopper_id=42, partner_id=7, ttl_s=300)
    verified = verify_shopper(token, {key.kid: key})
    assert (verified.shopper_id, verified.partner_id) == (42, 7)
    header = jwt.get_unverified_header(token)
    assert (header["alg"], header["typ"], header["kid"]) == ("EdDSA", SHOPPER_TYP, key.kid)


def test_alg_none_is_refused(key: SigningKey) -> None:
    header = {"alg": "none", "typ": SHOPPER_TYP, "kid": key.kid}
    token = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(claims()).encode())}."
    assert refused(token, key) == "token_invalid"


def test_an_hmac_token_keyed_with_the_public_key_is_refused(key: SigningKey) -> None:
    public = key.jwk()["x"].encode()
    token = jwt.encode(
        claims(), public, algorithm="HS256", headers={"kid": key.kid, "typ": SHOPPER_TYP}
    )
    assert refused(token, key) == "token_invalid"


def test_an_operator_token_is_not_a_shopper_token(key: SigningKey) -> None:
    operator = mint_operator(key, subject="ops", role=Role.ADMIN, ttl_s=60)
    assert refused(operator, key) == "token_invalid"
    # Nor the reverse: a shopper token opens no operator route.
    shopper = mint_shopper(key, shopper_id=42, partner_id=7, ttl_s=60)
    with pytest.raises(TokenRejected):
        verify_operator(shopper, {key.kid: key})


def test_the_wrong_audience_is_refused_even_with_the_shopper_typ(key: SigningKey) -> None:
    assert refused(sign(key, claims(aud=OPERATOR_AUDIENCE)), key) == "token_invalid"


def test_the_wrong_typ_is_refused_even_with_the_shopper_audience(key: SigningKey) -> None:
    assert refused(sign(key, claims(), typ=OPERATOR_TYP), key) == "token_invalid"
    assert refused(sign(key, claims(), typ="JWT"), key) == "token_invalid"


def test_an_expired_token_is_refused(key: SigningKey) -> None:
    now = int(time.time())
    token = sign(key, claims(iat=now - 3600, exp=now - 600))
    assert refused(token, key) == "token_expired"


def test_a_token_without_exp_is_refused(key: SigningKey) -> None:
    assert refused(sign(key, claims(exp=None)), key) == "token_invalid"


def test_another_key_with_the_same_kid_is_refused(key: SigningKey) -> None:
    forged = SigningKey(Ed25519PrivateKey.generate(), key.kid)
    assert refused(sign(forged, claims()), key) == "token_invalid"


def test_a_subject_that_names_no_shopper_is_refused(key: SigningKey) -> None:
    assert refused(sign(key, claims(sub="ops-alice")), key) == "token_invalid"
    assert refused(sign(key, claims(sub="shopper:abc")), key) == "token_invalid"
    assert refused(sign(key, claims(pid=None)), key) == "token_invalid"


def test_the_lifetime_is_bounded(key: SigningKey) -> None:
    with pytest.raises(AssertionError):
        mint_shopper(key, shopper_id=1, partner_id=1, ttl_s=24 * 3600)
