"""RFC 9421 request signing as partners do it: hmac-sha256, keyid, created, nonce.

The covered components are `@method`, `@target-uri` and, when there is a body,
`content-digest` (RFC 9530, sha-256). Any RFC 9421 library producing the same shape works;
this module is what the SDK uses.
"""

from __future__ import annotations

import datetime
import secrets
from collections.abc import MutableMapping
from dataclasses import dataclass

from http_message_signatures import HTTPMessageSigner, MappingKeyResolver, algorithms

ALGORITHM_ID = "hmac-sha256"
CREATED_SKEW_S_MAX = 300
COVERED_WITHOUT_BODY = ("@method", "@target-uri")
NONCE_BYTES = 16
SIGNATURE_LABEL = "coalition"


@dataclass
class _Message:
    """The view the signer reads: method, absolute URL, mutable headers."""

    method: str
    url: str
    headers: MutableMapping[str, str]


def new_nonce() -> str:
    return secrets.token_urlsafe(NONCE_BYTES)


def secret_bytes(secret: str) -> bytes:
    """The HMAC key of an API secret is its UTF-8 text, exactly as shown at creation."""
    return secret.encode()


def sign_request(
    method: str,
    url: str,
    headers: MutableMapping[str, str],
    body: bytes,
    *,
    key_id: str,
    secret: str,
    created: datetime.datetime | None = None,
    nonce: str | None = None,
) -> None:
    """Add Signature-Input, Signature and (with a body) Content-Digest to `headers`."""
    signer = HTTPMessageSigner(
        signature_algorithm=algorithms.HMAC_SHA256,
        key_resolver=MappingKeyResolver(
            private_keys={key_id: secret_bytes(secret)}, public_keys={}
        ),
    )
    signer.sign(
        _Message(method=method.upper(), url=url, headers=headers),
        key_id=key_id,
        created=created or datetime.datetime.now(datetime.UTC),
        nonce=nonce or new_nonce(),
        label=SIGNATURE_LABEL,
        covered_component_ids=COVERED_WITHOUT_BODY,
        body=body if body else None,
    )
