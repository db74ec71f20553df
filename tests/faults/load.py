"""The drills' load client and audit.

The client sends signed partner calls (earns, burns, holds and refunds of earlier earns), each
with its own Idempotency-Key and body kept, one attempt at a time, and records every answer.
An operation is `answered` (2xx: acknowledged), `refused` (a definite 4xx: nothing applied) or
unsettled (no answer, a 5xx, 409 `idempotency_in_progress`, 429): whether it applied is
unknown until `settle` retries it with the same key and body until it is answered or refused.

`audit` then holds the database to the client's record: every acknowledged operation exists
exactly once (its partner transaction, with the id it answered), a refused one not at all,
no transaction exists that no operation asked for, every applied one has its answer stored for
replay, and each wallet holds exactly what the answers add up to (a doubled or half-applied
effect shows there).
"""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import httpx
import msgspec

from contracts.partners import HoldRequest, PurchaseRequest, RedemptionRequest, RefundRequest
from contracts.signing import sign_request

CALL_TIMEOUT_S = 10.0
SETTLE_TIMEOUT_S = 90.0
SETTLE_CONCURRENCY = 32
RETRY_AFTER_S_MAX = 2.0
# Weights of the operation kinds (a burn, hold or refund only when the shopper can afford it).
WEIGHTS = {"purchase": 5, "redemption": 2, "hold": 1, "refund": 1}
BURN_POINTS_MAX = 5
AFFORD_MARGIN_POINTS = 20
UNSETTLED_CONFLICT = "idempotency_in_progress"
PATHS = {
    "purchase": "/v1/purchases",
    "redemption": "/v1/redemptions",
    "hold": "/v1/holds",
    "refund": "/v1/refunds",
}


class Caller:
    """Signed partner calls, one attempt each (no retry of its own, unlike the SDK)."""

    def __init__(self, base_url: str, key_id: str, secret: str) -> None:
        self._key_id = key_id
        self._secret = secret
        self.http = httpx.AsyncClient(base_url=base_url, timeout=CALL_TIMEOUT_S)

    async def aclose(self) -> None:
        await self.http.aclose()

    async def call(
        self, method: str, path: str, body: bytes = b"", key: str | None = None
    ) -> httpx.Response:
        headers = {"Accept": "application/json"}
        if body:
            headers["Content-Type"] = "application/json"
        if key is not None:
            headers["Idempotency-Key"] = key
        request = self.http.build_request(method, path, content=body, headers=headers)
        sign_request(
            method, str(request.url), headers, body, key_id=self._key_id, secret=self._secret
        )
        request.headers.update(headers)
        return await self.http.send(request)


@dataclass(frozen=True)
class Card:
    number: str
    shopper_id: int


@dataclass
class Op:
    kind: str
    card: Card
    partner_ref: str
    key: str
    body: bytes
    original_ref: str | None = None  # a refund's purchase
    answer: dict[str, Any] | None = None
    refused: dict[str, Any] | None = None
    attempts: int = 0
    replayed: bool = False
    last: str = "not sent"  # the last attempt's answer, said when it never settles

    @property
    def settled(self) -> bool:
        return self.answer is not None or self.refused is not None


@dataclass
class Observed:
    """Every answer the load saw, by status; the 5xx ones in detail."""

    statuses: Counter[int] = field(default_factory=Counter)
    server_errors: list[dict[str, Any]] = field(default_factory=list)
    transport_errors: int = 0
    timeouts: int = 0  # no answer within CALL_TIMEOUT_S: a hang, never expected

    def note(self, response: httpx.Response) -> None:
        self.statuses[response.status_code] += 1
        if response.status_code >= 500:
            code = None
            if response.headers.get("content-type", "").startswith("application/problem+json"):
                code = response.json().get("code")
            self.server_errors.append(
                {
                    "status": response.status_code,
                    "content_type": response.headers.get("content-type"),
                    "code": code,
                    "retry_after": response.headers.get("retry-after"),
                }
            )


def _problem(response: httpx.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def unsettled_answer(response: httpx.Response) -> bool:
    """An answer that says nothing about whether the operation applied."""
    status = response.status_code
    if status >= 500 or status == 429:
        return True
    return status == 409 and _problem(response).get("code") == UNSETTLED_CONFLICT


@dataclass
class Load:
    caller: Caller
    cards: list[Card]
    seed: int = 21
    ops: list[Op] = field(default_factory=list)
    observed: Observed = field(default_factory=Observed)
    _earned: Counter[Card] = field(default_factory=Counter)
    _spent: Counter[Card] = field(default_factory=Counter)
    _refundable: list[Op] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._rng = random.Random(self.seed)

    def next_op(self) -> Op:
        kinds = list(WEIGHTS)
        kind = self._rng.choices(kinds, weights=[WEIGHTS[k] for k in kinds])[0]
        card = self._rng.choice(self.cards)
        affordable = self._earned[card] - self._spent[card] >= AFFORD_MARGIN_POINTS
        ref = uuid.uuid4().hex[:24]
        key = f"{kind}-{uuid.uuid4()}"
        if kind == "refund" and self._refundable:
            original = self._refundable.pop(self._rng.randrange(len(self._refundable)))
            body = RefundRequest(partner_ref=ref, original_partner_ref=original.partner_ref)
            # The refund takes back what the purchase earned: count it spent from now on.
            assert original.answer is not None
            self._spent[original.card] += int(original.answer["points_earned"])
            op = Op(kind, original.card, ref, key, msgspec.json.encode(body))
            op.original_ref = original.partner_ref
            return self._added(op)
        if kind in ("redemption", "hold") and affordable:
            points = self._rng.randint(1, BURN_POINTS_MAX)
            self._spent[card] += points
            request: msgspec.Struct = (
                RedemptionRequest(partner_ref=ref, card_number=card.number, points=points)
                if kind == "redemption"
                else HoldRequest(partner_ref=ref, card_number=card.number, points=points)
            )
            return self._added(Op(kind, card, ref, key, msgspec.json.encode(request)))
        amount_minor = self._rng.randint(500, 20_000)
        purchase = PurchaseRequest(
            partner_ref=ref, card_number=card.number, amount_minor=amount_minor, currency="EUR"
        )
        return self._added(Op("purchase", card, ref, key, msgspec.json.encode(purchase)))

    def _added(self, op: Op) -> Op:
        self.ops.append(op)
        return op

    async def send(self, op: Op) -> httpx.Response | None:
        """One attempt; the op's state follows the answer. None: no answer (connection)."""
        op.attempts += 1
        try:
            response = await self.caller.call("POST", PATHS[op.kind], op.body, op.key)
        except httpx.TimeoutException:
            self.observed.timeouts += 1
            op.last = f"no answer within {CALL_TIMEOUT_S} s"
            return None
        except httpx.TransportError as exc:
            self.observed.transport_errors += 1
            op.last = f"transport error {type(exc).__name__}"
            return None
        self.observed.note(response)
        op.last = _described(response)
        if response.is_success:
            op.answer = response.json()
            op.replayed = response.headers.get("idempotency-replayed") == "true"
            if op.kind == "purchase":
                self._earned[op.card] += int(op.answer["points_earned"])
                self._refundable.append(op)
        elif not unsettled_answer(response):
            op.refused = _problem(response) or {"status": response.status_code}
        return response

    async def run(self, stop: asyncio.Event, *, workers: int, ops_max: int) -> None:
        """`workers` concurrent senders of new operations until `stop` or `ops_max` sent."""

        async def sender() -> None:
            failures = 0
            while not stop.is_set() and len(self.ops) < ops_max:
                response = await self.send(self.next_op())
                if response is None or unsettled_answer(response):
                    # As a partner's client would: wait as told, longer after each failure in
                    # a row, or an outage of seconds leaves thousands of operations to settle.
                    failures += 1
                    await asyncio.sleep(_backoff_s(response, failures))
                else:
                    failures = 0

        await asyncio.gather(*(sender() for _ in range(workers)))

    def unsettled(self) -> list[Op]:
        return [op for op in self.ops if not op.settled]

    async def settle(self, timeout_s: float = SETTLE_TIMEOUT_S) -> int:
        """Retry every unsettled operation with its own key and body until it is answered or
        refused, `SETTLE_CONCURRENCY` at a time; the number retried. Raises if one stays
        unsettled for `timeout_s` of its own retrying (a wait for its turn does not count:
        a loaded machine settles thousands slowly, which is not an operation stuck)."""
        todo = self.unsettled()
        gate = asyncio.Semaphore(SETTLE_CONCURRENCY)

        async def retry(op: Op) -> None:
            async with gate:
                deadline = time.monotonic() + timeout_s
                while not op.settled:
                    assert time.monotonic() < deadline, (
                        f"{op.kind} {op.key} never settled: {op.attempts} attempts, "
                        f"the last answered {op.last}; {len(self.unsettled())} of "
                        f"{len(todo)} operations left unsettled"
                    )
                    response = await self.send(op)
                    if not op.settled:
                        await asyncio.sleep(_pause_s(response))

        await asyncio.gather(*(retry(op) for op in todo))
        return len(todo)


def _described(response: httpx.Response) -> str:
    problem = _problem(response)
    said = f"{problem.get('code')}: {str(problem.get('detail'))[:200]}" if problem else ""
    return f"{response.status_code} {said}".strip()


def _backoff_s(response: httpx.Response | None, failures: int) -> float:
    """What the server said to wait, at least 0.2 s doubled per failure in a row (to 2 s)."""
    return max(_pause_s(response), min(0.2 * 2.0 ** min(failures - 1, 4), RETRY_AFTER_S_MAX))


def _pause_s(response: httpx.Response | None) -> float:
    if response is None:
        return 0.2
    try:
        return min(float(response.headers.get("retry-after", "0.2")), RETRY_AFTER_S_MAX)
    except ValueError:
        return 0.2


# ---- the audit -------------------------------------------------------------------------------


@dataclass
class Audit:
    acknowledged: int = 0
    refused: int = 0
    lost: list[str] = field(default_factory=list)  # answered, but not in the database
    doubled: list[str] = field(default_factory=list)  # in the database more than it asked
    phantom: list[str] = field(default_factory=list)  # refused or never asked, yet there
    unrecorded: list[str] = field(default_factory=list)  # applied, its answer not stored
    wallets_off: list[str] = field(default_factory=list)  # balance != what the answers add up to

    @property
    def clean(self) -> bool:
        return not (
            self.lost or self.doubled or self.phantom or self.unrecorded or self.wallets_off
        )

    def summary(self) -> str:
        return (
            f"acknowledged {self.acknowledged}, refused {self.refused}, lost {len(self.lost)}, "
            f"doubled {len(self.doubled)}, phantom {len(self.phantom)}, "
            f"unrecorded {len(self.unrecorded)}, wallets off {len(self.wallets_off)}"
        )


TRANSACTIONS = """
SELECT partner_ref, id::text AS id, kind, idempotency_key
FROM partner_transactions WHERE partner_id = $1
"""
RECORDS = """
SELECT idempotency_key FROM idempotency_records
WHERE partner_id = $1 AND response_status BETWEEN 200 AND 299
"""
WALLETS = "SELECT shopper_id, available, held FROM ledger.wallet WHERE shopper_id = ANY($1)"
# The id a kind's answer names its partner transaction by.
ANSWER_ID = {
    "purchase": "transaction_id",
    "redemption": "transaction_id",
    "hold": "hold_id",
    "refund": "transaction_id",
}


async def audit(dsn: str, partner_id: int, load: Load) -> Audit:
    """The database against every settled operation of `load` (all must be settled)."""
    assert not load.unsettled(), "settle() first"
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch(TRANSACTIONS, partner_id)
        recorded = {r["idempotency_key"] for r in await conn.fetch(RECORDS, partner_id)}
        wallets = await conn.fetch(WALLETS, [card.shopper_id for card in load.cards])
    finally:
        await conn.close()
    found = _check_transactions(load.ops, rows, recorded)
    found.wallets_off = _check_wallets(load.ops, {w["shopper_id"]: w for w in wallets})
    return found


def _check_transactions(ops: list[Op], rows: list[asyncpg.Record], recorded: set[str]) -> Audit:
    found = Audit()
    by_ref: dict[str, list[asyncpg.Record]] = {}
    for row in rows:
        by_ref.setdefault(row["partner_ref"], []).append(row)
    asked = {op.partner_ref for op in ops}
    for op in ops:
        there = by_ref.get(op.partner_ref, [])
        if op.answer is not None:
            found.acknowledged += 1
            if not there:
                found.lost.append(f"{op.kind} {op.partner_ref}")
            elif len(there) > 1 or there[0]["idempotency_key"] != op.key:
                found.doubled.append(f"{op.kind} {op.partner_ref}")
            elif str(op.answer[ANSWER_ID[op.kind]]) != there[0]["id"]:
                found.doubled.append(f"{op.kind} {op.partner_ref}: answered another id")
            if there and op.key not in recorded:
                found.unrecorded.append(f"{op.kind} {op.partner_ref}")
        else:
            found.refused += 1
            if there:
                found.phantom.append(f"{op.kind} {op.partner_ref} refused yet recorded")
    found.phantom += [f"{ref} never asked" for ref in by_ref if ref not in asked]
    return found


def _check_wallets(ops: list[Op], wallets: dict[int, asyncpg.Record]) -> list[str]:
    available: Counter[int] = Counter()
    held: Counter[int] = Counter()
    for op in ops:
        if op.answer is None:
            continue
        shopper = op.card.shopper_id
        if op.kind == "purchase":
            available[shopper] += int(op.answer["points_earned"])
        elif op.kind == "redemption":
            available[shopper] -= int(op.answer["points_redeemed"])
        elif op.kind == "hold":
            available[shopper] -= int(op.answer["points"])
            held[shopper] += int(op.answer["points"])
        else:
            available[shopper] -= int(op.answer["points_refunded"])
    off = []
    for shopper, wallet in wallets.items():
        expected = (available[shopper], held[shopper])
        actual = (wallet["available"], wallet["held"])
        if expected != actual:
            off.append(f"shopper {shopper}: (available, held) {actual}, answers say {expected}")
    return off
