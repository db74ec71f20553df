"""Admission of a signed partner call: its nonce and its per-key rate limit, in one statement.

The signature guard verifies a call (HMAC over the raw body) without touching the database and
leaves a pending `Admission` in the request scope. The first transaction the call opens
(`idempotency.run_once` for mutating calls, `routes._common.in_transaction` for the rest) admits
it as its first statement (`gateway_admit`, one round trip: nonce insert, rate-limit count and,
for an idempotent call, the Idempotency-Key claim), so a call costs one pool checkout and one
commit. A call that never reaches such a transaction (its body fails validation, the guard
itself refuses it for a missing Idempotency-Key, a handler that opens none) is admitted here,
in `before_send`, by the same statement on its own: that path is the slow one and only serves
refusals, so the answer stays what it was before 0080 (a reused nonce is 401 `nonce_reused`,
an exceeded limit 429, whatever the handler would have said).

Semantics (see docs/performance.md and ARCHITECTURE.md):
- The nonce of every verified call is remembered, whatever its outcome (refused by the rate
  limit, by validation, by the effect): the admission commits even when the effect is rolled
  back (to a savepoint), so replay protection never depends on the outcome. A retry after a 429
  must be signed again (a new nonce), which the SDK and every RFC 9421 client do.
- Fixed one-second windows per key. Each process counts its own verified calls in memory
  (`LocalCounts`: exact, in-flight calls included) and records them in PostgreSQL in one row per
  (key, window, process, backend) (`rate_limit_shards`), so that no two open transactions update
  the same row (a hot key's calls never wait on a counter's row lock). The check is this
  process's own count plus the committed counts of the other processes: exact with one process;
  with several, the limit can be exceeded by at most the calls of that key that other processes
  have in flight (not yet committed) at that moment. A refused call still counts.

Answers carry RateLimit-Limit / -Remaining / -Reset (and Retry-After on 429), following the
IETF RateLimit header fields draft.
"""

from __future__ import annotations

import logging
import math
import secrets
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import msgspec
from litestar import Request
from litestar.datastructures import MutableScopeHeaders
from litestar.types import HTTPResponseStartEvent, Message, Scope

from contracts.errors import PROBLEM_MEDIA_TYPE, ErrorCode
from gateway import availability, errors, metrics, queries
from gateway.errors import ApiError
from gateway.state import AppState
from infra.db import Conn

log = logging.getLogger(__name__)

STATE_KEY = "rate_limit"
PENDING_KEY = "partner_admission"
REWRITE_KEY = "partner_admission_refusal"
WINDOW_S = 1
CHALLENGE = {"WWW-Authenticate": 'Signature realm="coalition-partner"'}


@dataclass(frozen=True)
class Decision:
    limit: int
    remaining: int
    reset_s: int
    allowed: bool

    def headers(self) -> dict[str, str]:
        values = {
            "RateLimit-Limit": str(self.limit),
            "RateLimit-Remaining": str(self.remaining),
            "RateLimit-Reset": str(self.reset_s),
        }
        if not self.allowed:
            values["Retry-After"] = str(self.reset_s)
        return values


KEYS_COUNTED_MAX = 100_000  # distinct verified keys counted in one window, in one process


def window_of(now_s: float) -> int:
    return int(now_s) // WINDOW_S


@dataclass
class LocalCounts:
    """This process's verified calls per key in the current window (in memory, exact)."""

    process: int = field(default_factory=lambda: secrets.randbits(62))
    window_s: int = -1
    requests_by_key: dict[str, int] = field(default_factory=dict)

    def count(self, key_id: str, now_s: float) -> int:
        window_s = window_of(now_s)
        if window_s > self.window_s or len(self.requests_by_key) >= KEYS_COUNTED_MAX:
            self.window_s, self.requests_by_key = window_s, {}
        if window_s < self.window_s:  # read just before the window turned: that one is gone
            return 1
        requests = self.requests_by_key.get(key_id, 0) + 1
        self.requests_by_key[key_id] = requests
        return requests

    def uncount(self, key_id: str, window_s: int) -> None:
        """A replayed nonce is refused before it counts (as it is in PostgreSQL)."""
        if window_s == self.window_s and self.requests_by_key.get(key_id, 0) > 0:
            self.requests_by_key[key_id] -= 1


@dataclass(frozen=True)
class Admission:
    """A verified call waiting to be admitted (what the guard learnt, nothing secret)."""

    key_id: str
    partner_slug: str
    nonce: str
    limit_per_s: int
    now_s: float
    local_requests: int
    counts: LocalCounts = field(compare=False, repr=False)

    @property
    def window_s(self) -> int:
        return window_of(self.now_s)

    def decision(self, requests: int) -> Decision:
        reset_s = max(1, math.ceil((self.window_s + 1) * WINDOW_S - self.now_s))
        return Decision(
            limit=self.limit_per_s,
            remaining=max(0, self.limit_per_s - requests),
            reset_s=reset_s,
            allowed=requests <= self.limit_per_s,
        )


def defer(scope: Scope, admission: Admission) -> None:
    scope.setdefault("state", {})[PENDING_KEY] = admission


def take_pending(scope: Scope) -> Admission | None:
    """The call's admission, if nobody made it yet; whoever takes it must make it."""
    pending = scope.get("state", {}).pop(PENDING_KEY, None)
    assert pending is None or isinstance(pending, Admission), pending
    return pending


def arguments(
    admission: Admission | None, partner_id: int | None, idempotency_key: str | None
) -> tuple[Any, ...]:
    """The parameters of queries.ADMIT, in order."""
    if admission is None:
        return (None, None, None, None, None, None, partner_id, idempotency_key)
    return (
        admission.key_id,
        admission.nonce,
        admission.limit_per_s,
        admission.window_s,
        admission.counts.process,
        admission.local_requests,
        partner_id,
        idempotency_key,
    )


def judge(scope: Scope, admission: Admission | None, row: asyncpg.Record) -> ApiError | None:
    """Record the rate-limit decision for the answer's headers; the refusal, if refused."""
    if admission is None:
        return None
    if not row["nonce_fresh"]:
        admission.counts.uncount(admission.key_id, admission.window_s)
        metrics.SIGNATURE_FAILURES.labels(ErrorCode.NONCE_REUSED.value).inc()
        log.info("partner signature refused", extra={"code": ErrorCode.NONCE_REUSED.value})
        return ApiError(
            401,
            ErrorCode.NONCE_REUSED,
            "this nonce was already used with this key",
            headers=CHALLENGE,
        )
    decision = admission.decision(row["requests"])
    scope.setdefault("state", {})[STATE_KEY] = decision
    if decision.allowed:
        return None
    metrics.RATE_LIMITED.labels(admission.partner_slug).inc()
    return ApiError(
        429,
        ErrorCode.RATE_LIMITED,
        f"more than {decision.limit} requests per second with this key",
        headers=decision.headers(),
    )


async def admit_again(conn: Conn, admission: Admission) -> None:
    """Admit a call again after its transaction rolled its first admission back with a failed
    effect (group commit): the nonce and the count commit whatever the outcome. Its decision
    was made the first time; no Idempotency-Key claim (the failure stores nothing)."""
    await conn.fetchrow(queries.ADMIT, *arguments(admission, None, None))


async def admit_alone(conn: Conn, scope: Scope, admission: Admission) -> ApiError | None:
    """Admit a call without an Idempotency-Key claim: one statement, in the caller's
    transaction or autocommitted. The refusal, if refused."""
    row = await conn.fetchrow(queries.ADMIT, *arguments(admission, None, None))
    assert row is not None, "gateway_admit returns one row"
    return judge(scope, admission, row)


def _problem_body(scope: Scope, refusal: ApiError) -> bytes:
    request: Request[Any, Any, Any] = Request(scope)
    response = errors.render(request, errors.from_http(refusal))
    return msgspec.json.encode(response.content)


async def _settle_pending(message: HTTPResponseStartEvent, scope: Scope) -> None:
    """A call that reached no transaction is admitted now; a refusal replaces the answer."""
    admission = take_pending(scope)
    if admission is None:
        return
    app_state: AppState = scope["app"].state.app
    try:
        async with app_state.require_pool().acquire() as conn:
            refusal = await admit_alone(conn, scope, admission)
    except Exception as exc:  # the answer is on its way: keep it rather than break the connection
        if not availability.STATE.outage(exc):  # an outage is logged once, not per call
            log.exception("admitting a signed call after its handler failed")
        return
    if refusal is None:
        return
    status = message["status"]
    if status < 400:  # a handler that neither runs run_once nor in_transaction: move it there
        log.warning(
            "a signed call was admitted after its handler ran", extra={"path": scope["path"]}
        )
    body = _problem_body(scope, refusal)
    message["status"] = refusal.status_code
    headers = MutableScopeHeaders.from_message(message)
    headers["Content-Type"] = PROBLEM_MEDIA_TYPE  # other headers (X-Request-Id...) stay
    headers["Content-Length"] = str(len(body))
    for name, value in (refusal.headers or {}).items():
        headers[name] = value
    scope["state"][REWRITE_KEY] = body


async def before_send(message: Message, scope: Scope) -> None:
    """Every answer to a counted call tells the caller its budget."""
    if message["type"] == "http.response.start":
        await _settle_pending(message, scope)
        decision = scope.get("state", {}).get(STATE_KEY)
        if isinstance(decision, Decision):
            headers = MutableScopeHeaders.from_message(message)
            for name, value in decision.headers().items():
                headers[name] = value
    elif message["type"] == "http.response.body":
        replacement = scope.get("state", {}).get(REWRITE_KEY)
        if replacement is not None:  # the refusal's body once, then nothing of the original
            message["body"] = replacement
            scope["state"][REWRITE_KEY] = b""


def has_pending(scope: Scope) -> bool:
    """Whether the call still waits for its admission (see take_pending)."""
    return PENDING_KEY in scope.get("state", {})
