"""Pre-signed request pools: what wrk replays, one scenario at a time.

Every request is signed here, before the run, exactly as a partner signs it (contracts.signing:
RFC 9421, hmac-sha256, a fresh nonce, `created` = now), so the load generator does no crypto
and no formatting: it sends the bytes it is given. Each POST carries its own Idempotency-Key
and partner_ref; each request carries X-Request-Id = its index in the pool, which the gateway
echoes, so the Lua script can log which request every response answers.

Pool file format (read by tests/load/wrk/replay.lua): records of "<length>\\n<raw request>".
"""

from __future__ import annotations

import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import msgspec

from contracts.signing import sign_request
from shoppers import luhn

CARD_PREFIX = "9"
CARD_PAYLOAD_DIGITS = 14  # prefix + 14 digits + check digit = 16-digit cards
PURCHASE_AMOUNT_MINOR_MIN = 500
PURCHASE_AMOUNT_MINOR_MAX = 20_000
REDEMPTION_POINTS = 10
HOLD_POINTS = 10
CURRENCY = "EUR"
# burn-heavy, per 10 requests: 4 purchases, 3 redemptions, 2 holds, 1 capture of a hold opened
# during provisioning (a capture needs the hold id the server chose, so it cannot be pre-signed
# for a hold opened in the same run).
BURN_HEAVY_MIX = (
    "purchase",
    "purchase",
    "purchase",
    "purchase",
    "redemption",
    "redemption",
    "redemption",
    "hold",
    "hold",
    "capture",
)
CAPTURE_SHARE = BURN_HEAVY_MIX.count("capture") / len(BURN_HEAVY_MIX)
SCENARIOS = ("earn-spread", "earn-hot", "burn-heavy", "checkout-mixed")


def card_number(index: int) -> str:
    """The card of bench shopper `index` (0-based): 16 digits passing the Luhn check."""
    payload = f"{CARD_PREFIX}{index:0{CARD_PAYLOAD_DIGITS}d}"
    return payload + luhn.check_digit(payload)


@dataclass(frozen=True)
class PartnerKey:
    partner_id: int
    key_id: str
    secret: str


@dataclass(frozen=True)
class Network:
    """What provisioning made: who signs, which cards exist, what can be burned or captured."""

    host: str  # "127.0.0.1:port", the authority the signatures cover
    partners: Sequence[PartnerKey]
    shoppers: int  # cards card_number(0) .. card_number(shoppers - 1)
    funded_cards: Sequence[str]  # shoppers with points to burn
    open_holds: Sequence[tuple[int, str]]  # (partner index, hold id) for captures


@dataclass(frozen=True)
class Planned:
    kind: str  # purchase | redemption | hold | capture | lookup
    method: str
    path: str
    body: bytes
    partner: int  # index into Network.partners
    partner_ref: str | None  # the reference the ledger will hold (for a capture: the hold's)
    idempotency_key: str | None


def _purchase(rng: random.Random, run: str, n: int, partner: int, card: str) -> Planned:
    ref = f"{run}-{n}"
    body = msgspec.json.encode(
        {
            "partner_ref": ref,
            "card_number": card,
            "amount_minor": rng.randint(PURCHASE_AMOUNT_MINOR_MIN, PURCHASE_AMOUNT_MINOR_MAX),
            "currency": CURRENCY,
        }
    )
    return Planned("purchase", "POST", "/v1/purchases", body, partner, ref, ref)


def _burn(kind: str, run: str, n: int, partner: int, card: str) -> Planned:
    ref = f"{run}-{n}"
    points = REDEMPTION_POINTS if kind == "redemption" else HOLD_POINTS
    body = msgspec.json.encode({"partner_ref": ref, "card_number": card, "points": points})
    path = "/v1/redemptions" if kind == "redemption" else "/v1/holds"
    return Planned(kind, "POST", path, body, partner, ref, ref)


def plan(scenario: str, network: Network, count: int, *, run: str, seed: int) -> Iterator[Planned]:
    """`count` requests of `scenario`; `run` prefixes every partner_ref and Idempotency-Key."""
    rng = random.Random(seed)  # noqa: S311 (which card and amount; nothing secret)
    partners = len(network.partners)

    def any_card() -> str:
        return card_number(rng.randrange(network.shoppers))

    if scenario == "earn-spread":
        for n in range(count):
            yield _purchase(rng, run, n, n % partners, any_card())
    elif scenario == "earn-hot":
        for n in range(count):
            yield _purchase(rng, run, n, 0, any_card())
    elif scenario == "burn-heavy":
        holds = iter(network.open_holds)
        for n in range(count):
            kind = BURN_HEAVY_MIX[n % len(BURN_HEAVY_MIX)]
            if kind == "capture":
                hold = next(holds, None)
                if hold is not None:
                    partner, hold_id = hold
                    yield Planned(
                        "capture",
                        "POST",
                        f"/v1/holds/{hold_id}/capture",
                        b"{}",
                        partner,
                        hold_id,
                        f"{run}-{n}",
                    )
                    continue
                kind = "redemption"  # more captures than holds: burn instead
            if kind == "purchase":
                yield _purchase(rng, run, n, n % partners, any_card())
            else:
                card = network.funded_cards[rng.randrange(len(network.funded_cards))]
                yield _burn(kind, run, n, n % partners, card)
    elif scenario == "checkout-mixed":
        card = any_card()
        for n in range(count):
            partner = (n // 2) % partners
            if n % 2 == 0:
                card = any_card()
                yield Planned("lookup", "GET", f"/v1/shoppers/{card}", b"", partner, None, None)
            else:
                yield _purchase(rng, run, n, partner, card)
    else:
        raise ValueError(f"unknown scenario {scenario!r}; known: {', '.join(SCENARIOS)}")


def raw_request(planned: Planned, network: Network, request_id: int) -> bytes:
    """The signed HTTP/1.1 request, byte for byte as wrk will send it."""
    return signed_raw(
        network.host,
        network.partners[planned.partner],
        planned.method,
        planned.path,
        planned.body,
        idempotency_key=planned.idempotency_key,
        request_id=request_id,
    )


def signed_raw(
    host: str,
    key: PartnerKey,
    method: str,
    path: str,
    body: bytes,
    *,
    idempotency_key: str | None,
    request_id: int,
) -> bytes:
    """One request signed by `key` as a partner signs it, as raw HTTP/1.1 bytes for `host`."""
    headers: dict[str, str] = {}
    if body:
        headers["Content-Type"] = "application/json"
    if idempotency_key is not None:
        headers["Idempotency-Key"] = idempotency_key
    sign_request(
        method, f"http://{host}{path}", headers, body, key_id=key.key_id, secret=key.secret
    )
    lines = [f"{method} {path} HTTP/1.1", f"Host: {host}"]
    if body:
        lines.append(f"Content-Length: {len(body)}")
    lines.extend(f"{name}: {value}" for name, value in headers.items())
    lines.append(f"X-Request-Id: {request_id}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def pool_record(raw: bytes) -> bytes:
    return f"{len(raw)}\n".encode() + raw


def write_pools(prefix: str, planned: Sequence[Planned], network: Network, *, threads: int) -> None:
    """Sign every planned request into one pool file per wrk thread (`prefix<n>.bin`).

    Request ids stay global: thread n's file holds requests n, n + threads, n + 2 * threads...
    """
    for index in range(threads):
        with Path(f"{prefix}{index}.bin").open("wb") as out:
            for request_id in range(index, len(planned), threads):
                out.write(pool_record(raw_request(planned[request_id], network, request_id)))
