"""Deliver webhook messages: claim them, send them pinned to a checked address, record the try.

`claim` leases due messages (webhooks.claim_messages: fair per endpoint, capped in flight per
endpoint across every process). `Sender.send` re-runs the SSRF check, then POSTs to the
address it resolved, never resolving the name again (see `pinned`), with httpx: connect 5 s,
15 s in all, no redirects, no proxy from the environment. `record` writes the attempt and the
message's next state in one statement (webhooks.record_attempt), guarded by the claim's lease.
"""

from __future__ import annotations

import asyncio
import collections
import ipaddress
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

import asyncpg
import httpx

from partners.webhooks import _delivery_queries as q
from partners.webhooks import ssrf

CONNECT_TIMEOUT_S = 5.0
TOTAL_TIMEOUT_S = 15.0
# A claim outlives the longest send (TOTAL_TIMEOUT_S) and its record; a worker killed mid-send
# leaves its claims to be taken again this long after it claimed them.
LEASE_S = TOTAL_TIMEOUT_S + 5.0
ERROR_CHARS_MAX = 1000
RESPONSE_BODY_CHARS_MAX = 20_000
CLIENTS_MAX = 256  # one HTTP client (its own connection pool) per pinned target
HTTP_GONE = 410


@dataclass(frozen=True)
class Claimed:
    """A leased message with what sending it needs."""

    message_id: int
    public_id: str  # the webhook-id: the same on every retry and replay of this message
    endpoint_id: int
    attempts_made: int
    trigger: str  # scheduled, manual or replay: what this attempt is recorded as
    lease_until: datetime  # the claim's token
    url: str
    event_type: str
    payload: str  # the outbox payload, JSON text
    occurred_at: datetime
    secret_ids: tuple[str, ...]
    secrets_sealed: tuple[bytes, ...]


@dataclass(frozen=True)
class Outcome:
    """One try: an HTTP answer (status, body) or none (error), and how long it took."""

    response_status: int | None
    latency_ms: int
    error: str | None = None
    response_body: str | None = None
    refused: bool = False  # the SSRF check refused the URL: nothing was sent

    @property
    def success(self) -> bool:
        return self.response_status is not None and 200 <= self.response_status < 300

    @property
    def gone(self) -> bool:
        return self.response_status == HTTP_GONE


@dataclass(frozen=True)
class Recorded:
    recorded: bool  # False: the claim had expired and was taken over; the message is theirs
    disabled_reason: str | None  # the endpoint was disabled by this attempt ('failing', 'gone')
    partner_id: int | None
    endpoint_public_id: str | None


async def claim(
    pool: asyncpg.Pool, *, limit: int, per_endpoint_max: int, lease_s: float = LEASE_S
) -> list[Claimed]:
    assert limit > 0, limit
    assert per_endpoint_max > 0, per_endpoint_max
    async with pool.acquire() as conn:
        rows = await conn.fetch(q.CLAIM, limit, per_endpoint_max, lease_s)
    return [
        Claimed(
            message_id=row["message_id"],
            public_id=row["public_id"],
            endpoint_id=row["endpoint_id"],
            attempts_made=row["attempts_made"],
            trigger=row["next_trigger"],
            lease_until=row["lease_until"],
            url=row["url"],
            event_type=row["event_type"],
            payload=row["payload"],
            occurred_at=row["occurred_at"],
            secret_ids=tuple(row["secret_ids"]),
            secrets_sealed=tuple(row["secrets_sealed"]),
        )
        for row in rows
    ]


def next_state(outcome: Outcome, claimed: Claimed, schedule_s: Sequence[int]) -> tuple[str, float]:
    """The message's state after this try, and the delay before the next one (pending only).

    schedule_s[0] is the first try's delay (fan-out), schedule_s[n] the delay after the n-th
    failure; after the last, the message is failed. A manual retry or a replay is one try.
    """
    if outcome.success:
        return "delivered", 0.0
    if claimed.trigger != "scheduled":
        return "failed", 0.0
    made = claimed.attempts_made + 1
    if made < len(schedule_s):
        return "pending", float(schedule_s[made])
    return "failed", 0.0


async def record(
    pool: asyncpg.Pool,
    claimed: Claimed,
    outcome: Outcome,
    *,
    state: str,
    retry_in_s: float,
    failing_limit_s: float,
) -> Recorded:
    async with pool.acquire() as conn:
        row = await conn.fetchrow(
            q.RECORD_ATTEMPT,
            claimed.message_id,
            claimed.lease_until,
            claimed.endpoint_id,
            claimed.trigger,
            outcome.response_status,
            outcome.latency_ms,
            _text(outcome.error, ERROR_CHARS_MAX),
            _text(outcome.response_body, RESPONSE_BODY_CHARS_MAX),
            state,
            retry_in_s,
            outcome.gone,
            failing_limit_s,
        )
    assert row is not None
    return Recorded(
        recorded=row["recorded"],
        disabled_reason=row["disabled_reason"],
        partner_id=row["partner_id"],
        endpoint_public_id=row["endpoint_public_id"],
    )


@dataclass(frozen=True)
class Pinned:
    """A request aimed at one checked address: the URL names the IP, the Host header (and,
    for https, the TLS server name, so SNI and certificate checks use the hostname) the
    name."""

    url: str
    host_header: str
    sni_hostname: str | None


def pinned(target: ssrf.Target) -> Pinned:
    """The request for `target`, sent to its first checked address."""
    address = target.addresses[0]
    parts = urlsplit(target.url)
    literal = f"[{address}]" if isinstance(address, ipaddress.IPv6Address) else str(address)
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    default_port = 443 if target.scheme == "https" else 80
    host = f"[{target.host}]" if ":" in target.host else target.host
    host_header = host if target.port == default_port else f"{host}:{target.port}"
    is_name = not _is_ip_literal(target.host)
    sni = target.host if target.scheme == "https" and is_name else None
    return Pinned(
        url=f"{target.scheme}://{literal}:{target.port}{path}",
        host_header=host_header,
        sni_hostname=sni,
    )


class Sender:
    """Sends messages; keeps one httpx client per pinned target (scheme, name, address,
    port), so a connection set up for one hostname is never reused for another that happens
    to share the address."""

    def __init__(self, *, allow_loopback: bool, require_https: bool) -> None:
        self._allow_loopback = allow_loopback
        self._require_https = require_https
        self._clients: collections.OrderedDict[tuple[str, str, str, int], httpx.AsyncClient] = (
            collections.OrderedDict()
        )
        self._in_use: collections.Counter[tuple[str, str, str, int]] = collections.Counter()

    async def send(self, url: str, headers: dict[str, str], content: bytes) -> Outcome:
        started = time.perf_counter()
        try:
            target = await ssrf.check(
                url, allow_loopback=self._allow_loopback, require_https=self._require_https
            )
        except ssrf.WebhookUrlRefused as exc:
            return Outcome(None, _ms_since(started), f"refused: {exc}", refused=True)
        except ssrf.WebhookUrlInvalid as exc:  # e.g. the name no longer resolves
            return Outcome(None, _ms_since(started), str(exc))
        request = pinned(target)
        key = (target.scheme, target.host, str(target.addresses[0]), target.port)
        client = await self._client(key)
        self._in_use[key] += 1
        started = time.perf_counter()
        try:
            async with asyncio.timeout(TOTAL_TIMEOUT_S):
                return await self._post(client, request, headers, content, started)
        except TimeoutError:
            return Outcome(None, _ms_since(started), f"timed out after {TOTAL_TIMEOUT_S:g} s")
        except httpx.TimeoutException as exc:
            return Outcome(None, _ms_since(started), f"timed out: {type(exc).__name__}")
        except (httpx.HTTPError, OSError) as exc:
            return Outcome(None, _ms_since(started), f"{type(exc).__name__}: {exc}")
        finally:
            self._in_use[key] -= 1

    async def aclose(self) -> None:
        clients = list(self._clients.values())
        self._clients.clear()
        for client in clients:
            await client.aclose()

    async def _post(
        self,
        client: httpx.AsyncClient,
        request: Pinned,
        headers: dict[str, str],
        content: bytes,
        started: float,
    ) -> Outcome:
        extensions: dict[str, Any] = {}
        if request.sni_hostname is not None:
            extensions["sni_hostname"] = request.sni_hostname
        sent = {**headers, "Host": request.host_header}
        async with client.stream(
            "POST", request.url, content=content, headers=sent, extensions=extensions
        ) as response:
            chunks: list[bytes] = []
            size = 0
            async for chunk in response.aiter_bytes():
                chunks.append(chunk)
                size += len(chunk)
                if size >= RESPONSE_BODY_CHARS_MAX:
                    break  # the rest is not kept: the connection is closed, not reused
        text = b"".join(chunks)[:RESPONSE_BODY_CHARS_MAX].decode("utf-8", errors="replace")
        error = "redirects are not followed" if response.is_redirect else None
        return Outcome(response.status_code, _ms_since(started), error, text)

    async def _client(self, key: tuple[str, str, str, int]) -> httpx.AsyncClient:
        client = self._clients.get(key)
        if client is not None:
            self._clients.move_to_end(key)
            return client
        await self._evict()
        client = httpx.AsyncClient(
            timeout=httpx.Timeout(TOTAL_TIMEOUT_S, connect=CONNECT_TIMEOUT_S),
            follow_redirects=False,
            trust_env=False,  # a proxy from the environment would connect by name, unpinned
        )
        self._clients[key] = client
        return client

    async def _evict(self) -> None:
        # Close the least recently used idle clients beyond the cap (never one mid-request).
        for key in list(self._clients):
            if len(self._clients) < CLIENTS_MAX:
                return
            if self._in_use[key] == 0:
                await self._clients.pop(key).aclose()
                del self._in_use[key]


def _is_ip_literal(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def _ms_since(started: float) -> int:
    return max(0, round((time.perf_counter() - started) * 1000))


def _text(value: str | None, chars_max: int) -> str | None:
    """What fits the column: no NUL (PostgreSQL text refuses it), at most chars_max."""
    if value is None:
        return None
    return value.replace("\x00", "")[:chars_max]
