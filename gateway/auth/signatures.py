"""Partner authentication: RFC 9421 HTTP Message Signatures, hmac-sha256, one key per call.

The request path of a signed call (a guard, so it runs before the body is parsed):

1. parse Signature-Input: one signature with `keyid`, `created`, `nonce`, covering `@method`,
   `@target-uri` and, when there is a body, `content-digest`   -> signature_invalid
2. `created` within CREATED_SKEW_S_MAX of our clock, either way -> signature_expired
3. the key: known -> key_unknown, not revoked                    -> key_revoked
4. the signature itself over the signature base (the library)  -> signature_invalid
5. Content-Digest against the raw body bytes                    -> digest_mismatch
6. POST needs an Idempotency-Key                                -> idempotency_key_required
7. the nonce, remembered per key in PostgreSQL for the window   -> nonce_reused
8. the per-key rate limit                                       -> 429 rate_limited

Steps 1-6 touch no database (the key comes from a per-process cache, at most
KEY_CACHE_TTL_S old: gateway/partner_state.py). Steps 7-8 are one statement run as the first of
the call's own transaction (gateway/rate_limit.py), whose refusals win over step 6's.

Every refusal is a 401 problem with its code, counted in SIGNATURE_FAILURES. Secrets are never
logged: only key ids and codes are.
"""

from __future__ import annotations

import asyncio
import base64
import datetime
import hashlib
import hmac
import logging
import re
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import http_sf
from http_message_signatures import (
    ContentDigest,
    HTTPMessageVerifier,
    InvalidSignature,
    MappingKeyResolver,
    algorithms,
)
from litestar import Request

from contracts.errors import ErrorCode
from contracts.signing import ALGORITHM_ID, CREATED_SKEW_S_MAX, secret_bytes
from gateway import availability, metrics, queries, rate_limit
from gateway.auth import plain_fields
from gateway.errors import ApiError
from gateway.partner_state import OpenedKey, PartnerGateway
from gateway.state import AppState
from partners import operations

log = logging.getLogger(__name__)

CHALLENGE = rate_limit.CHALLENGE
REQUIRED_COMPONENTS = ("@method", "@target-uri")
DIGEST_COMPONENT = "content-digest"
SIGNATURE_HEADER_BYTES_MAX = 4_096
NONCE_PATTERN = re.compile(r"^[A-Za-z0-9._~+/=-]{8,128}$")
IDEMPOTENCY_KEY_PATTERN = re.compile(r"^[!-~]{1,255}$")
IDEMPOTENCY_HEADER = "idempotency-key"
CALLER_STATE_KEY = "partner_caller"
# Nonces are kept twice the window: a `created` up to the window in the future stays valid
# until twice the window after it was first seen.
NONCE_RETENTION_S = 2 * CREATED_SKEW_S_MAX
NONCE_PRUNE_INTERVAL_S = 10.0
NONCE_PRUNE_BATCH_MAX = 10_000
RATE_SHARD_RETENTION_S = 60  # rate-limit rows older than this many seconds are dropped


@dataclass(frozen=True)
class Caller:
    """An authenticated partner call."""

    partner_id: int
    partner_slug: str
    key_id: str
    idempotency_key: str | None


class _Refused(Exception):
    def __init__(self, code: ErrorCode, detail: str) -> None:
        super().__init__(detail)
        self.code = code


@dataclass
class _Headers:
    """The raw header lines of the request, as the verifier reads them (decoded once: the
    library asks for them several times per call)."""

    raw: Iterable[tuple[bytes, bytes]]
    _decoded: list[tuple[str, str]] = field(init=False)
    _names_lower: frozenset[str] = field(init=False)

    def __post_init__(self) -> None:
        self._decoded = [(n.decode("latin-1"), v.decode("latin-1")) for n, v in self.raw]
        self._names_lower = frozenset(name.lower() for name, _ in self._decoded)

    def items(self) -> Iterable[tuple[str, str]]:
        return self._decoded

    def __iter__(self) -> Iterator[str]:
        return iter(dict.fromkeys(name for name, _ in self._decoded))

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.lower() in self._names_lower


@dataclass
class _Message:
    method: str
    url: str
    headers: _Headers


@dataclass(frozen=True)
class _SignatureInput:
    label: str
    components: tuple[str, ...]
    key_id: str
    created_s: int
    nonce: str
    signature: str  # the Signature header, one field line
    # The `@signature-params` value the library would sign over, when the input has the plain
    # shape `_verify_plain` handles (else None: only the library verifies it).
    plain_params: str | None


# The plain shape `_verify_plain` verifies without the library: covered components among these,
# without parameters, and signature parameters among these (types checked by `_parse_input`).
PLAIN_COMPONENTS = frozenset({"@method", "@target-uri", DIGEST_COMPONENT})
PLAIN_PARAMETERS = frozenset({"created", "keyid", "nonce", "alg"})
PLAIN_ALGORITHM = "hmac-sha256"
_SF_INTEGER_MAX = 999_999_999_999_999
_PLAIN_METHOD = re.compile(r"[A-Z]+")
# An absolute URL that the library's parser accepts and rebuilds as `@target-uri` unchanged: no
# userinfo, no fragment, a registered-name host, a non-empty path (RFC 3986 characters only).
_PLAIN_TARGET_URI = re.compile(
    r"[A-Za-z][A-Za-z0-9+.\-]*://[A-Za-z0-9.\-]+(?::[0-9]+)?"
    r"/(?:[A-Za-z0-9._~!$&'()*+,;=:@/\-]|%[0-9A-Fa-f]{2})*"
    r"(?:\?(?:[A-Za-z0-9._~!$&'()*+,;=:@/?\-]|%[0-9A-Fa-f]{2})*)?"
)
_PLAIN_FIELD_VALUE = re.compile(r"[\x20-\x7e]*")
_PLAIN_DIGEST = re.compile(r"sha-256=:([A-Za-z0-9+/]{43}=):")


def _header(request: Request[Any, Any, Any], name: str) -> str | None:
    values = request.headers.getall(name, [])
    if len(values) > 1:
        raise _Refused(ErrorCode.SIGNATURE_INVALID, f"{name} appears more than once")
    return values[0] if values else None


def _parse_input(request: Request[Any, Any, Any]) -> _SignatureInput:
    signature_input = _header(request, "signature-input")
    signature = _header(request, "signature")
    if signature_input is None or signature is None:
        raise _Refused(ErrorCode.SIGNATURE_INVALID, "a signed request is required (RFC 9421)")
    if len(signature_input) > SIGNATURE_HEADER_BYTES_MAX:
        raise _Refused(ErrorCode.SIGNATURE_INVALID, "Signature-Input is too long")
    duplicate_labels: list[str] = []
    parsed: Any = plain_fields.signature_input(signature_input)
    if parsed is None:  # not the SDK's shape: the generic parser decides
        try:
            parsed = http_sf.parse(
                signature_input.encode("latin-1"),
                tltype="dictionary",
                on_duplicate_key=lambda key, context: (
                    duplicate_labels.append(key) if context == "dictionary" else None
                ),
            )
        except (ValueError, TypeError, UnicodeEncodeError):
            raise _Refused(ErrorCode.SIGNATURE_INVALID, "Signature-Input is malformed") from None
    if not isinstance(parsed, dict) or len(parsed) != 1:
        raise _Refused(ErrorCode.SIGNATURE_INVALID, "exactly one signature is expected")
    ((label, (members, params)),) = parsed.items()
    if not isinstance(members, list) or not isinstance(params, dict):
        raise _Refused(ErrorCode.SIGNATURE_INVALID, "Signature-Input is not an inner list")
    components = tuple(str(item) for item, item_params in members if not item_params)
    key_id, created, nonce = params.get("keyid"), params.get("created"), params.get("nonce")
    if not isinstance(key_id, str) or not key_id:
        raise _Refused(ErrorCode.SIGNATURE_INVALID, "the signature has no keyid")
    if type(created) is not int:
        raise _Refused(ErrorCode.SIGNATURE_INVALID, "the signature has no created time")
    if not isinstance(nonce, str) or not NONCE_PATTERN.match(nonce):
        raise _Refused(ErrorCode.SIGNATURE_INVALID, "the signature needs a nonce (8-128 chars)")
    if params.get("alg", ALGORITHM_ID) != ALGORITHM_ID:
        raise _Refused(ErrorCode.SIGNATURE_INVALID, f"the algorithm must be {ALGORITHM_ID}")
    missing = [c for c in REQUIRED_COMPONENTS if c not in components]
    if missing:
        raise _Refused(
            ErrorCode.SIGNATURE_INVALID, f"the signature must cover {', '.join(missing)}"
        )
    plain_params = None if duplicate_labels else _plain_params(members, params)
    return _SignatureInput(str(label), components, key_id, created, nonce, signature, plain_params)


def _plain_params(members: list[Any], params: dict[str, Any]) -> str | None:
    """The serialized `@signature-params` of a plain input (as the library serializes it: the
    components and parameters in the order sent), or None when the input is not plain.

    Called after `_parse_input`'s checks: keyid, created and nonce are there with their types.
    """
    names: list[str] = []
    for item, item_params in members:
        if type(item) is not str or item_params or item not in PLAIN_COMPONENTS or item in names:
            return None
        names.append(item)
    serialized = ["(" + " ".join('"' + name + '"' for name in names) + ")"]
    for name, value in params.items():
        if name not in PLAIN_PARAMETERS:
            return None
        if name == "alg" and value != PLAIN_ALGORITHM:  # the library refuses another alg
            return None
        if type(value) is int:
            if not -_SF_INTEGER_MAX <= value <= _SF_INTEGER_MAX:
                return None
            serialized.append(f";{name}={value}")
        elif type(value) is str:  # parsed sf-strings are printable ASCII
            escaped = value.replace("\\", "\\\\").replace('"', '\\"')
            serialized.append(f';{name}="{escaped}"')
        else:
            return None
    return "".join(serialized)


def _check_created(created_s: int, now_s: float) -> None:
    if abs(now_s - created_s) > CREATED_SKEW_S_MAX:
        raise _Refused(
            ErrorCode.SIGNATURE_EXPIRED,
            f"the signature's created time is more than {CREATED_SKEW_S_MAX} s from ours",
        )


def _verifier(key_id: str, secret: str) -> HTTPMessageVerifier:
    """Built once per key row read (cached with it), not once per call."""
    verifier = HTTPMessageVerifier(
        signature_algorithm=algorithms.HMAC_SHA256,
        key_resolver=MappingKeyResolver(
            public_keys={key_id: secret_bytes(secret)}, private_keys={}
        ),
    )
    # The window was checked already; these make the library agree with it, not stricter.
    verifier.max_clock_skew = datetime.timedelta(seconds=CREATED_SKEW_S_MAX)
    return verifier


def _target_uri(request: Request[Any, Any, Any]) -> str:
    """The `@target-uri` as the client sent it: the raw (still percent-encoded) path.

    `request.url` carries the decoded path, so a percent-encoded segment (a non-ASCII or
    reserved character) would make a correct signature fail to verify.
    """
    raw_path = request.scope.get("raw_path")
    if not raw_path:
        return str(request.url)
    query = request.scope.get("query_string", b"")
    target = f"{request.url.scheme}://{request.url.netloc}{raw_path.decode('latin-1')}"
    return f"{target}?{query.decode('latin-1')}" if query else target


def _verify_signature(
    request: Request[Any, Any, Any], parsed: _SignatureInput, opened: OpenedKey
) -> None:
    if _verify_plain(request, parsed, opened):
        return
    message = _Message(
        method=request.method.upper(),
        url=_target_uri(request),
        headers=_Headers(request.scope["headers"]),
    )
    try:
        opened.verifier.verify(message, max_age=datetime.timedelta(seconds=0))
    except InvalidSignature:
        raise _Refused(ErrorCode.SIGNATURE_INVALID, "the signature does not verify") from None
    except Exception:  # the library refuses malformed input with its own exception types
        raise _Refused(ErrorCode.SIGNATURE_INVALID, "the signature does not verify") from None


def _verify_plain(
    request: Request[Any, Any, Any], parsed: _SignatureInput, opened: OpenedKey
) -> bool:
    """True when a plain signature verifies: what `opened.verifier.verify` would accept, checked
    without the library's generic machinery (about 0.1 ms a call).

    Anything else (another shape, an unusual method, URL or field value, a wrong signature)
    returns False, and the library decides, so a refusal is always the library's. For the plain
    shape this accepts exactly what the library accepts: the same checks (`created` within
    `max_clock_skew` and not older, by the same clock; the key id resolved by the verifier's
    resolver; one Signature member with the same label, a byte sequence) and the same signature
    base (RFC 9421 section 2.5), HMAC-SHA256 over it compared in constant time.
    tests/security/test_signature_plain.py checks it against the library.
    """
    if parsed.plain_params is None or parsed.key_id != opened.key.key_id or not opened.hmac_key:
        return False
    # HTTPMessageVerifier.validate_created_and_expires with max_age=0 (as `_verify_signature`).
    skew = opened.verifier.max_clock_skew
    now = datetime.datetime.now(datetime.UTC)
    created = datetime.datetime.fromtimestamp(parsed.created_s, tz=datetime.UTC)
    if not now - skew <= created <= now + skew:
        return False
    signature = _plain_signature(parsed.signature, parsed.label)
    if signature is None:
        return False
    lines: list[str] = []
    for component in parsed.components:
        if component == "@method":
            value = request.method.upper()
            if not _PLAIN_METHOD.fullmatch(value):
                return False
        elif component == "@target-uri":
            value = _target_uri(request)
            if not _PLAIN_TARGET_URI.fullmatch(value):
                return False
        else:
            field_value = _single_field_line(request.scope["headers"], component.encode())
            if field_value is None:
                return False
            value = field_value
        lines.append(f'"{component}": {value}')
    lines.append(f'"@signature-params": {parsed.plain_params}')
    base = "\n".join(lines).encode("ascii")
    expected = hmac.new(opened.hmac_key, base, hashlib.sha256).digest()
    return hmac.compare_digest(expected, signature)


def _plain_signature(value: str, label: str) -> bytes | None:
    """The Signature header's one member under `label`, a byte sequence (else None)."""
    duplicate_labels: list[str] = []
    stripped = value.strip(" \t")
    parsed: Any = plain_fields.signature(stripped)
    if parsed is None:  # not the SDK's shape: the generic parser decides
        try:
            parsed = http_sf.parse(
                stripped.encode("ascii"),
                tltype="dictionary",
                on_duplicate_key=lambda key, _: duplicate_labels.append(key),
            )
        except (ValueError, TypeError, UnicodeEncodeError):
            return None
    if duplicate_labels or not isinstance(parsed, dict) or list(parsed) != [label]:
        return None
    member, params = parsed[label]
    if type(member) is not bytes or params:
        return None
    return member


def _single_field_line(raw_headers: Iterable[tuple[bytes, bytes]], name: bytes) -> str | None:
    """A field's value as the library reads it, when it has one plain line (else None)."""
    lines = [value for field_name, value in raw_headers if field_name.lower() == name]
    if len(lines) != 1:
        return None
    value = lines[0].decode("latin-1")
    if "\r" in value or "\n" in value:
        return None
    value = value.strip(" \t")
    return value if _PLAIN_FIELD_VALUE.fullmatch(value) else None


def _check_digest(request: Request[Any, Any, Any], parsed: _SignatureInput, body: bytes) -> None:
    digest = _header(request, DIGEST_COMPONENT)
    if not body and digest is None:
        return
    if DIGEST_COMPONENT not in parsed.components or digest is None:
        raise _Refused(
            ErrorCode.SIGNATURE_INVALID, "a request with a body must sign its Content-Digest"
        )
    plain = _PLAIN_DIGEST.fullmatch(digest)
    if plain is not None and hmac.compare_digest(
        base64.b64decode(plain.group(1), validate=True), hashlib.sha256(body).digest()
    ):
        return  # what ContentDigest.verify accepts; anything else is left to it
    try:
        ContentDigest.verify(digest, body)
    except InvalidSignature:
        raise _Refused(
            ErrorCode.DIGEST_MISMATCH, "Content-Digest does not match the body"
        ) from None


async def _opened_key(
    app_state: AppState, gateway: PartnerGateway, key_id: str
) -> OpenedKey | None:
    """The key from this process's cache (at most KEY_CACHE_TTL_S old), else from the row."""
    opened = gateway.keys.get(key_id)
    if opened is not None:
        return opened
    read_at_s = gateway.keys.clock()
    async with app_state.require_pool().acquire() as conn:
        key = await operations.key_for_signature(conn, gateway.keybox, key_id)
    if key is None:
        return None
    opened = OpenedKey(
        key=key, verifier=_verifier(key.key_id, key.secret), hmac_key=secret_bytes(key.secret)
    )
    gateway.keys.put(key_id, opened, read_at_s=read_at_s)
    return opened


async def _prune(app_state: AppState, now_s: float) -> None:
    """Forget expired nonces and old rate-limit rows, off the request path."""
    try:
        async with app_state.require_pool().acquire() as conn:
            await conn.execute(
                queries.PRUNE_NONCES, float(NONCE_RETENTION_S), NONCE_PRUNE_BATCH_MAX
            )
            await conn.execute(
                queries.PRUNE_RATE_SHARDS,
                int(now_s) - RATE_SHARD_RETENTION_S,
                NONCE_PRUNE_BATCH_MAX,
            )
    except Exception as exc:  # housekeeping: the next interval tries again
        if not availability.STATE.outage(exc):  # an outage is logged once (issue 21)
            log.exception("pruning nonces and rate-limit rows failed")


def _schedule_prune(app_state: AppState, gateway: PartnerGateway, now_s: float) -> None:
    if gateway.prune_task is not None and not gateway.prune_task.done():
        return
    if gateway.prune_due(now_s, NONCE_PRUNE_INTERVAL_S):
        gateway.prune_task = asyncio.create_task(_prune(app_state, now_s))


async def _authenticate(request: Request[Any, Any, Any]) -> Caller:
    app_state: AppState = request.app.state.app
    gateway: PartnerGateway = request.app.state.partner_gateway
    parsed = _parse_input(request)
    now_s = time.time()
    _check_created(parsed.created_s, now_s)
    body = await request.body()  # the raw bytes, read before anything parses them
    opened = await _opened_key(app_state, gateway, parsed.key_id)
    if opened is None:
        raise _Refused(ErrorCode.KEY_UNKNOWN, "the keyid names no key")
    key = opened.key
    if key.revoked:
        raise _Refused(ErrorCode.KEY_REVOKED, "the key was revoked")
    _verify_signature(request, parsed, opened)
    _check_digest(request, parsed, body)
    # Verified, and nothing written yet: the nonce and the rate limit are settled by the
    # first statement of the call's own transaction (gateway/rate_limit.py).
    rate_limit.defer(
        request.scope,
        rate_limit.Admission(
            key_id=key.key_id,
            partner_slug=key.partner_slug,
            nonce=parsed.nonce,
            limit_per_s=key.rate_limit_per_s,
            now_s=now_s,
            local_requests=gateway.calls.count(key.key_id, now_s),
            counts=gateway.calls,
        ),
    )
    _schedule_prune(app_state, gateway, now_s)
    idempotency_key = _header(request, IDEMPOTENCY_HEADER)
    if request.method == "POST":
        if idempotency_key is None:
            raise ApiError(
                400, ErrorCode.IDEMPOTENCY_KEY_REQUIRED, "a POST needs an Idempotency-Key header"
            )
        if not IDEMPOTENCY_KEY_PATTERN.match(idempotency_key):
            raise ApiError(
                400,
                ErrorCode.VALIDATION_FAILED,
                "Idempotency-Key must be 1-255 visible ASCII characters",
            )
    return Caller(
        partner_id=key.partner_id,
        partner_slug=key.partner_slug,
        key_id=key.key_id,
        idempotency_key=idempotency_key,
    )


async def signed_partner(request: Request[Any, Any, Any]) -> None:
    """The partner router's `before_request`: authenticates the call and stores the Caller.

    A hook, not a guard: Litestar hands each guard a copy of the route handler, 11-15 µs a call
    (docs/performance.md). It runs at the same point (before the body is parsed); a closer
    layer's `before_request` would replace it, so app.py refuses to start if any partner route
    resolves to another hook.
    """
    try:
        caller = await _authenticate(request)
    except _Refused as refused:
        metrics.SIGNATURE_FAILURES.labels(refused.code.value).inc()
        log.info("partner signature refused", extra={"code": refused.code.value})
        raise ApiError(401, refused.code, str(refused), headers=CHALLENGE) from None
    request.scope.setdefault("state", {})[CALLER_STATE_KEY] = caller


async def provide_caller(request: Request[Any, Any, Any]) -> Caller:
    caller = request.scope.get("state", {}).get(CALLER_STATE_KEY)
    assert isinstance(caller, Caller), "the signed_partner hook runs first"
    return caller
