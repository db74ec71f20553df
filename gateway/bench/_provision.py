"""Provisioning a bench network through the real API only, as partners provision theirs.

Partners, their pricing and API keys go through the operator API (POST /v1/operator/partners
and /keys). Shoppers are enrolled through the signed partner API, `POST /v1/shoppers`, exactly
as a partner's store enrolls them (issue 18: the earlier SQL bulk insert measured a network no
partner has): shopper i brings the bench's partner-issued card `card_number(i)` (Luhn-valid,
which the route accepts) and is enrolled by partner i mod the partner count, one shopper per
call, PROVISION_CONCURRENCY calls in flight over as many keep-alive connections to the server
on 127.0.0.1. So every shopper carries what enrollment writes (its shopper and card rows, the
call's stored idempotent answer, its admission), and concurrent calls share group commits as
in production. Funding purchases and the holds that burn-heavy captures go through the signed
partner API too.

Shoppers an earlier run left on the same database (`coalition bench --target`) are reused only
when they were enrolled this way, which the stored answer under the bench's Idempotency-Key,
beside the card and written for the partner that enrolled it, shows; a card that exists
without one (say, bulk-inserted by an older bench) stops the run instead of being measured.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import asyncpg
import httpx
import msgspec

from contracts.signing import sign_request
from gateway.bench import _open_loop
from gateway.bench._requests import HOLD_POINTS, PartnerKey, card_number, signed_raw
from gateway.tokens import Role, SigningKey, mint_operator

OPERATOR_TOKEN_TTL_S = 3_600
PARTNER_RATE_LIMIT_PER_S = 100_000  # the contract's maximum: the bench measures, not throttles
ISSUE_PRICE_MICROS = 10_000
REDEMPTION_PRICE_MICROS = 8_000
EARN_POINTS = 1
EARN_SPEND_MINOR = 100
FUNDING_AMOUNT_MINOR = 10_000_000  # 100,000 points per funded shopper at 1 point per 100 minor
HOLD_EXPIRES_IN_S = 3_600
PROVISION_CONCURRENCY = 32
HTTP_TIMEOUT_S = 60.0
ENROLLED_STATUS = 201
ENROLMENT_KEY_PREFIX = "bench-enrol-"  # + the shopper's index: its Idempotency-Key


def client(base_url: str) -> httpx.AsyncClient:
    """The provisioning's client: one keep-alive connection per call in flight (httpx's
    default keeps 20, so 12 of 32 workers would reconnect for every call)."""
    limits = httpx.Limits(
        max_connections=PROVISION_CONCURRENCY, max_keepalive_connections=PROVISION_CONCURRENCY
    )
    return httpx.AsyncClient(base_url=base_url, timeout=HTTP_TIMEOUT_S, limits=limits)


def operator_headers(key: SigningKey) -> dict[str, str]:
    token = mint_operator(key, subject="bench", role=Role.ADMIN, ttl_s=OPERATOR_TOKEN_TTL_S)
    return {"Authorization": f"Bearer {token}"}


async def create_partners(
    http: httpx.AsyncClient, key: SigningKey, *, count: int, run: str
) -> list[PartnerKey]:
    headers = operator_headers(key)
    partners: list[PartnerKey] = []
    for index in range(count):
        slug = f"bench-{run}-{index}"
        created = await http.post(
            "/v1/operator/partners",
            json={
                "name": f"Bench {run} {index}",
                "slug": slug,
                "issue_price_micros": ISSUE_PRICE_MICROS,
                "redemption_price_micros": REDEMPTION_PRICE_MICROS,
                "earn_points": EARN_POINTS,
                "earn_spend_minor": EARN_SPEND_MINOR,
                "rate_limit_per_s": PARTNER_RATE_LIMIT_PER_S,
            },
            headers=headers,
        )
        if created.status_code != 201:
            raise RuntimeError(f"creating partner {slug}: {created.status_code} {created.text}")
        partner_id = int(created.json()["id"])
        issued = await http.post(f"/v1/operator/partners/{partner_id}/keys", headers=headers)
        if issued.status_code != 201:
            raise RuntimeError(f"creating a key for {slug}: {issued.status_code} {issued.text}")
        partners.append(PartnerKey(partner_id, issued.json()["key_id"], issued.json()["secret"]))
    return partners


async def signed_post(
    http: httpx.AsyncClient, partner: PartnerKey, path: str, payload: dict[str, Any], idem: str
) -> httpx.Response:
    body = msgspec.json.encode(payload)
    headers = {"Content-Type": "application/json", "Idempotency-Key": idem}
    sign_request(
        "POST",
        str(http.base_url.join(path)),
        headers,
        body,
        key_id=partner.key_id,
        secret=partner.secret,
    )
    return await http.post(path, content=body, headers=headers)


async def _bounded(jobs: Iterable[Callable[[], Awaitable[None]]]) -> None:
    """Run `jobs` with PROVISION_CONCURRENCY in flight: as many workers take the next job each,
    so no more coroutines exist than calls in flight (100,000 enrolments stay cheap). The
    first failure cancels the other workers and is raised."""
    pending = iter(jobs)

    async def worker() -> None:
        for job in pending:
            await job()

    try:
        async with asyncio.TaskGroup() as group:
            for _ in range(PROVISION_CONCURRENCY):
                group.create_task(worker())
    except ExceptionGroup as failed:  # the callers catch RuntimeError, httpx.HTTPError...
        raise failed.exceptions[0] from None


async def fund(
    http: httpx.AsyncClient, partners: Sequence[PartnerKey], cards: Sequence[str], *, run: str
) -> None:
    """One large purchase per card, spread over the partners, through the signed API."""

    def job(index: int, card: str) -> Callable[[], Awaitable[None]]:
        async def go() -> None:
            ref = f"fund-{run}-{index}"
            answer = await signed_post(
                http,
                partners[index % len(partners)],
                "/v1/purchases",
                {
                    "partner_ref": ref,
                    "card_number": card,
                    "amount_minor": FUNDING_AMOUNT_MINOR,
                    "currency": "EUR",
                },
                ref,
            )
            if answer.status_code != 201:
                raise RuntimeError(f"funding {card}: {answer.status_code} {answer.text}")

        return go

    await _bounded([job(i, card) for i, card in enumerate(cards)])


async def open_holds(
    http: httpx.AsyncClient,
    partners: Sequence[PartnerKey],
    cards: Sequence[str],
    *,
    count: int,
    run: str,
) -> list[tuple[int, str]]:
    """`count` open holds (partner index, hold id) for burn-heavy's captures."""
    holds: list[tuple[int, str]] = [(0, "")] * count

    def job(index: int) -> Callable[[], Awaitable[None]]:
        async def go() -> None:
            ref = f"hold-{run}-{index}"
            partner = index % len(partners)
            answer = await signed_post(
                http,
                partners[partner],
                "/v1/holds",
                {
                    "partner_ref": ref,
                    "card_number": cards[index % len(cards)],
                    "points": HOLD_POINTS,
                    "expires_in_s": HOLD_EXPIRES_IN_S,
                },
                ref,
            )
            if answer.status_code != 201:
                raise RuntimeError(f"opening hold {ref}: {answer.status_code} {answer.text}")
            holds[index] = (partner, str(answer.json()["hold_id"]))

        return go

    await _bounded([job(i) for i in range(count)])
    return holds


@dataclass(frozen=True)
class Enrolment:
    """What `provision_shoppers` did: shoppers enrolled now, kept from an earlier run, and the
    wall time of the whole step (the check for kept shoppers included)."""

    enrolled: int
    kept: int
    elapsed_s: float

    @property
    def shoppers_per_s(self) -> float:
        return self.enrolled / self.elapsed_s if self.elapsed_s > 0 else 0.0


def enrolment_key(index: int) -> str:
    return f"{ENROLMENT_KEY_PREFIX}{index}"


# For each card asked about: its index, and whether its enrolling partner has a stored 201
# answer under the bench's Idempotency-Key for that index (the call that enrolled it).
_ENROLLED_EARLIER = """
SELECT w.i - 1 AS index, r.partner_id IS NOT NULL AS through_api
FROM unnest($1::text[], $2::text[]) WITH ORDINALITY AS w (card_number, idempotency_key, i)
JOIN shopper_cards c ON c.card_number = w.card_number
JOIN shoppers s ON s.id = c.shopper_id
LEFT JOIN idempotency_records r
    ON r.partner_id = s.enrolled_by_partner_id
    AND r.idempotency_key = w.idempotency_key
    AND r.response_status = 201
"""


async def enrolled_earlier(conn: asyncpg.Connection[Any], count: int) -> set[int]:
    """The indices among 0..count-1 whose card an earlier run enrolled through the API.

    RuntimeError when one of these cards exists but was not enrolled so: measuring on it
    would measure another network than the one partners build.
    """
    rows = await conn.fetch(
        _ENROLLED_EARLIER,
        [card_number(i) for i in range(count)],
        [enrolment_key(i) for i in range(count)],
    )
    other = [int(row["index"]) for row in rows if not row["through_api"]]
    if other:
        raise RuntimeError(
            f"{len(other)} of the bench's cards (the first: {card_number(min(other))}) exist "
            "but were not enrolled through POST /v1/shoppers (an older bench bulk-inserted "
            "them?): run on a fresh database"
        )
    return {int(row["index"]) for row in rows}


async def enroll(base_url: str, partners: Sequence[PartnerKey], indices: Iterable[int]) -> int:
    """Enroll shopper i with card card_number(i) through the signed POST /v1/shoppers, by
    partner i mod len(partners), PROVISION_CONCURRENCY calls in flight on as many keep-alive
    connections to the loopback server; how many were enrolled.

    Each call is signed just before it is sent (a signature's `created` must stay fresh) and
    goes out as raw HTTP/1.1 bytes, as wrk sends the scenarios: through httpx the bench's own
    process spent about 5 ms of CPU per enrolment (0.5 ms this way; 2,000 enrolments), more
    than the server and PostgreSQL together, and the rate would have measured the bench.
    """
    address = urlsplit(base_url)
    host = address.netloc
    sockets = _open_loop.RawConnections(
        address.hostname or "", address.port or 80, [], size=PROVISION_CONCURRENCY
    )
    enrolled = 0

    def job(index: int) -> Callable[[], Awaitable[None]]:
        async def go() -> None:
            nonlocal enrolled
            card = card_number(index)
            raw = signed_raw(
                host,
                partners[index % len(partners)],
                "POST",
                "/v1/shoppers",
                msgspec.json.encode({"card_number": card}),
                idempotency_key=enrolment_key(index),
                request_id=index,
            )
            status, body = await sockets.exchange(raw)
            if status != ENROLLED_STATUS:
                raise RuntimeError(f"enrolling {card}: {status} {body[:500]!r}")
            enrolled += 1

        return go

    try:
        await _bounded(job(i) for i in indices)
    finally:
        await sockets.close()
    return enrolled


async def provision_shoppers(
    base_url: str,
    conn: asyncpg.Connection[Any],
    partners: Sequence[PartnerKey],
    *,
    count: int,
) -> Enrolment:
    """Shoppers 0..count-1: those an earlier run enrolled the same way are kept, every other
    one is enrolled now (see `enroll`)."""
    started = time.monotonic()
    kept = await enrolled_earlier(conn, count)
    enrolled = await enroll(base_url, partners, (i for i in range(count) if i not in kept))
    return Enrolment(enrolled=enrolled, kept=len(kept), elapsed_s=time.monotonic() - started)
