"""Partner operations: the partners package's door.

Every function takes a connection and runs in the caller's transaction: the gateway opens one
transaction per call, stores the idempotency record in it, and commits once. A domain error
raised here aborts that transaction, so a refused call changes nothing. Purchases and
redemptions record their event (`purchase.recorded`, `redemption.recorded`) in that same
transaction; an operation called without one opens its own (`_common.atomic`).

The rooms behind this door: `onboarding` (partners, pricing, keys), `earn_rules`, `campaigns`,
`earning` (the breakdown of a purchase's points) and `_common` (ledger calls, the record).
"""

from __future__ import annotations

import base64
import binascii
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import msgspec

from contracts.campaigns import Campaign, CampaignCreate, CampaignPage, Offer
from contracts.partners import (
    TRANSACTIONS_LIMIT_MAX,
    CaptureRequest,
    EarnRules,
    EarnRulesUpdate,
    Enrollment,
    EnrollRequest,
    ExpiringPoints,
    HoldRequest,
    HoldResult,
    PurchaseRequest,
    PurchaseResult,
    Quote,
    QuoteRequest,
    RedemptionRequest,
    RedemptionResult,
    RefundRequest,
    RefundResult,
    ShopperView,
    Transaction,
    TransactionPage,
)
from infra import outbox
from infra.db import Conn
from ledger import service as ledger
from partners import campaigns, earn_rules, earning, queries
from partners._common import (
    atomic,
    fresh,
    known,
    ledger_call,
    ledger_key,
    network_currency,
    parse_uuid,
    points_value_minor,
    pricing_in_effect,
    record,
    ref_free,
    summary,
)
from partners.batch import purchase_batch
from partners.errors import (
    CurrencyUnsupported,
    CursorInvalid,
    HoldNotOpen,
    NotFound,
    RefundExceedsOriginal,
    RefundNotApplicable,
)
from partners.onboarding import (
    ACTIVE_KEYS_MAX,
    PartnerKey,
    add_pricing_version,
    create_api_key,
    create_partner,
    get_partner,
    key_for_signature,
    revoke_api_key,
)
from shoppers import expiry, referrals, tiers
from shoppers import service as shoppers

__all__ = [
    "ACTIVE_KEYS_MAX",
    "PartnerKey",
    "add_pricing_version",
    "capture_hold",
    "create_api_key",
    "create_campaign",
    "create_partner",
    "earn_rules_of",
    "end_campaign",
    "enroll_shopper",
    "get_campaign",
    "get_partner",
    "get_transaction",
    "hold",
    "key_for_signature",
    "list_campaigns",
    "list_transactions",
    "offers_for_shopper",
    "purchase",
    "purchase_batch",
    "quote",
    "redeem",
    "refund",
    "replace_earn_rules",
    "revoke_api_key",
    "shopper_view",
    "void_hold",
]


# ---- partner operations ----------------------------------------------------------------------


async def enroll_shopper(conn: Conn, partner_id: int, req: EnrollRequest) -> Enrollment:
    holder = await shoppers.enroll(conn, partner_id=partner_id, card_number=req.card_number)
    if req.referral_code is not None:
        await referrals.register(
            conn, referred_shopper_id=holder.shopper_id, code=req.referral_code
        )
    return Enrollment(shopper_id=holder.shopper_id, card_number=holder.card_number)


@atomic
async def purchase(
    conn: Conn, partner_id: int, req: PurchaseRequest, *, idempotency_key: str
) -> PurchaseResult:
    """Earn on a purchase: base, tier bonus and campaigns in the partner's earn entry (at its
    issue price), network campaigns in a marketing-paid entry, then a referral bonus if this is
    the friend's first qualifying purchase. The breakdown sums to the points credited."""
    currency = await network_currency(conn)
    if req.currency != currency:
        raise CurrencyUnsupported(req.currency, currency)
    holder = await shoppers.resolve_card(conn, req.card_number)
    pricing = await pricing_in_effect(conn, partner_id)
    await ref_free(conn, partner_id, req.partner_ref)
    now = datetime.now(UTC)
    basket = earning.basket_of(req.amount_minor, req.lines)
    assessment = await earning.assess(
        conn, partner_id, pricing, basket, shopper_id=holder.shopper_id, now=now
    )
    items = await earning.award(conn, assessment, holder.shopper_id)
    partner_points = sum(item.points for item in items if item.paid_by == "partner")
    network_points = sum(item.points for item in items if item.paid_by == "network")
    expires_at = await expiry.earned_points_expire_at(conn, earned_at=now)
    metadata = {"partner_ref": req.partner_ref, "amount_minor": req.amount_minor}
    entry_id: int | None = None
    network_entry_id: int | None = None
    balance: int | None = None
    if partner_points > 0:
        with ledger_call("earn", req.partner_ref):
            entry = await ledger.earn(
                conn,
                idempotency_key=ledger_key(partner_id, req.partner_ref),
                shopper_id=holder.shopper_id,
                partner_id=partner_id,
                points=partner_points,
                issue_price_micros=pricing.issue_price_micros,
                expires_at=expires_at,
                metadata=metadata,
            )
        fresh(entry, req.partner_ref)
        entry_id, balance = entry.entry_id, known(entry.balance_after)
    if network_points > 0:
        # Network campaigns: marketing pays, valued at this partner's issue price.
        with ledger_call("goodwill", req.partner_ref):
            entry = await ledger.goodwill(
                conn,
                idempotency_key=ledger_key(partner_id, req.partner_ref, part="network"),
                shopper_id=holder.shopper_id,
                partner_id=None,
                points=network_points,
                issue_price_micros=pricing.issue_price_micros,
                expires_at=expires_at,
                reason="campaign",
                metadata={**metadata, "issued_at_partner_id": partner_id},
            )
        fresh(entry, req.partner_ref)
        network_entry_id, balance = entry.entry_id, known(entry.balance_after)
    transaction_id = uuid.uuid4()
    await record(
        conn,
        transaction_id=transaction_id,
        partner_id=partner_id,
        partner_ref=req.partner_ref,
        kind="purchase",
        status="completed",
        holder=holder,
        points=partner_points,  # what the partner pays for, and what a refund may take back
        amount_minor=req.amount_minor,
        pricing_version=pricing.version,
        ledger_entry_id=entry_id,
        idempotency_key=idempotency_key,
        network_points=network_points,  # what a refund takes back from marketing's side
        network_entry_id=network_entry_id,
    )
    reward = await referrals.reward_qualifying_purchase(
        conn,
        shopper_id=holder.shopper_id,
        amount_minor=req.amount_minor,
        transaction_id=transaction_id,
        issue_price_micros=pricing.issue_price_micros,
        expires_at=expires_at,
    )
    if reward is not None:
        items.append(earning.Item("referral", reward.friend_points, "network"))
        balance = reward.friend_balance_after
    await earning.store(
        conn,
        transaction_id=transaction_id,
        shopper_id=holder.shopper_id,
        partner_id=partner_id,
        basket=basket,
        items=items,
    )
    await tiers.after_purchase(conn, holder.shopper_id, now=now)
    if balance is None:
        balance = (await summary(conn, holder.shopper_id)).balance
    points_earned = sum(item.points for item in items)
    await _record_event(
        conn,
        "purchase.recorded",
        partner_id=partner_id,
        shopper_id=holder.shopper_id,
        transaction_id=str(transaction_id),
        partner_ref=req.partner_ref,
        points=points_earned,
        amount_minor=req.amount_minor,
    )
    return PurchaseResult(
        transaction_id=str(transaction_id),
        points_earned=points_earned,
        balance=balance,
        breakdown=[item.contract() for item in items],
    )


@atomic
async def redeem(
    conn: Conn, partner_id: int, req: RedemptionRequest, *, idempotency_key: str
) -> RedemptionResult:
    holder = await shoppers.resolve_card(conn, req.card_number)
    pricing = await pricing_in_effect(conn, partner_id)
    await ref_free(conn, partner_id, req.partner_ref)
    with ledger_call("burn", req.partner_ref):
        entry = await ledger.burn(
            conn,
            idempotency_key=ledger_key(partner_id, req.partner_ref),
            shopper_id=holder.shopper_id,
            partner_id=partner_id,
            points=req.points,
            redemption_price_micros=pricing.redemption_price_micros,
            metadata={"partner_ref": req.partner_ref},
        )
    fresh(entry, req.partner_ref)
    value_minor = await points_value_minor(conn, req.points, pricing.redemption_price_micros)
    transaction_id = await record(
        conn,
        partner_id=partner_id,
        partner_ref=req.partner_ref,
        kind="redemption",
        status="completed",
        holder=holder,
        points=req.points,
        value_minor=value_minor,
        pricing_version=pricing.version,
        ledger_entry_id=entry.entry_id,
        idempotency_key=idempotency_key,
    )
    await _record_event(
        conn,
        "redemption.recorded",
        partner_id=partner_id,
        shopper_id=holder.shopper_id,
        transaction_id=transaction_id,
        partner_ref=req.partner_ref,
        points=req.points,
        value_minor=value_minor,
    )
    return RedemptionResult(
        transaction_id=transaction_id,
        points_redeemed=req.points,
        value_minor=value_minor,
        balance=known(entry.balance_after),
    )


async def hold(
    conn: Conn, partner_id: int, req: HoldRequest, *, idempotency_key: str
) -> HoldResult:
    holder = await shoppers.resolve_card(conn, req.card_number)
    pricing = await pricing_in_effect(conn, partner_id)
    await ref_free(conn, partner_id, req.partner_ref)
    expires_at = datetime.now(UTC) + timedelta(seconds=req.expires_in_s)
    with ledger_call("hold", req.partner_ref):
        entry = await ledger.hold(
            conn,
            idempotency_key=ledger_key(partner_id, req.partner_ref),
            shopper_id=holder.shopper_id,
            partner_id=partner_id,
            points=req.points,
            expires_at=expires_at,
            metadata={"partner_ref": req.partner_ref},
        )
    fresh(entry, req.partner_ref)
    assert entry.hold_id is not None, entry
    transaction_id = await record(
        conn,
        partner_id=partner_id,
        partner_ref=req.partner_ref,
        kind="hold",
        status="open",
        holder=holder,
        points=req.points,
        pricing_version=pricing.version,
        ledger_hold_id=entry.hold_id,
        expires_at=expires_at,
        idempotency_key=idempotency_key,
    )
    return HoldResult(
        hold_id=transaction_id,
        status="open",
        points=req.points,
        points_captured=0,
        value_minor=0,
        expires_at=expires_at,
        balance=known(entry.balance_after),
        held=known(entry.held_after),
    )


async def capture_hold(
    conn: Conn, partner_id: int, hold_id: str, req: CaptureRequest
) -> HoldResult:
    row = await _open_hold(conn, partner_id, hold_id)
    points = row["points"] if req.points is None else req.points
    pricing = await pricing_in_effect(conn, partner_id)
    with ledger_call("capture"):
        entry = await ledger.capture(
            conn,
            idempotency_key=ledger_key(partner_id, str(row["id"]), part="hold-settle"),
            hold_id=row["ledger_hold_id"],
            points=points,
            redemption_price_micros=pricing.redemption_price_micros,
            metadata={"partner_ref": row["partner_ref"]},
        )
    value_minor = await points_value_minor(conn, points, pricing.redemption_price_micros)
    await conn.execute(
        queries.SETTLE_HOLD, row["id"], partner_id, "captured", points, value_minor, entry.entry_id
    )
    return _hold_result(row, "captured", points, value_minor, entry)


async def void_hold(conn: Conn, partner_id: int, hold_id: str) -> HoldResult:
    row = await _open_hold(conn, partner_id, hold_id)
    with ledger_call("void"):
        entry = await ledger.void(
            conn,
            idempotency_key=ledger_key(partner_id, str(row["id"]), part="hold-settle"),
            hold_id=row["ledger_hold_id"],
            metadata={"partner_ref": row["partner_ref"]},
        )
    await conn.execute(queries.SETTLE_HOLD, row["id"], partner_id, "voided", 0, 0, entry.entry_id)
    return _hold_result(row, "voided", 0, 0, entry)


@atomic
async def refund(
    conn: Conn, partner_id: int, req: RefundRequest, *, idempotency_key: str
) -> RefundResult:
    """Refund (part of) a purchase or a redemption, never more than what is left of it.
    A purchase's network campaign points (paid by network:marketing) go back with the same
    cumulative share, floored; its referral bonus stays (see `_network_refund_share`)."""
    if req.amount_minor is not None and req.points is not None:
        raise RefundNotApplicable("give amount_minor or points, not both")
    await ref_free(conn, partner_id, req.partner_ref)
    # Locking the original serializes concurrent refunds of it: the sums below stay true.
    original = await conn.fetchrow(
        queries.TRANSACTION_BY_REF_FOR_UPDATE, partner_id, req.original_partner_ref
    )
    if original is None:
        raise NotFound("original transaction")
    done = await conn.fetchrow(queries.REFUNDED_SO_FAR, original["id"])
    assert done is not None, "an aggregate always returns a row"
    points, amount_minor = _refund_share(original, done, req)
    network_points = _network_refund_share(original, done, points, amount_minor)
    entry: ledger.EntryResult | None = None
    if points > 0:
        operation = "refund_earn" if original["kind"] == "purchase" else "refund_burn"
        refund_call = ledger.refund_earn if original["kind"] == "purchase" else ledger.refund_burn
        with ledger_call(operation, req.partner_ref):
            entry = await refund_call(
                conn,
                idempotency_key=ledger_key(partner_id, req.partner_ref),
                original_entry_id=original["ledger_entry_id"],
                points=points,
                metadata={"partner_ref": req.partner_ref},
            )
        fresh(entry, req.partner_ref)
    network_entry: ledger.EntryResult | None = None
    if network_points > 0:
        # The purchase's network campaign points go back to network:marketing, through a
        # refund of its marketing-paid entry (spent points become points debt, as for the
        # partner's share). Its own ledger key makes a retry a replay, never a second debit.
        with ledger_call("refund_earn", req.partner_ref):
            network_entry = await ledger.refund_earn(
                conn,
                idempotency_key=ledger_key(partner_id, req.partner_ref, part="network"),
                original_entry_id=original["network_entry_id"],
                points=network_points,
                metadata={"partner_ref": req.partner_ref, "paid_by": "network"},
            )
        fresh(network_entry, req.partner_ref)
    holder = shoppers.CardHolder(original["shopper_id"], original["card_number"])
    value_minor = None
    if original["kind"] != "purchase" and original["value_minor"] is not None:
        captured = _refundable_points(original)
        value_minor = original["value_minor"] * points // captured if captured else 0
    transaction_id = await record(
        conn,
        partner_id=partner_id,
        partner_ref=req.partner_ref,
        kind="refund",
        status="completed",
        holder=holder,
        points=points,
        amount_minor=amount_minor,
        value_minor=value_minor,
        pricing_version=original["pricing_version"],
        original_id=original["id"],
        ledger_entry_id=None if entry is None else entry.entry_id,
        idempotency_key=idempotency_key,
        network_points=network_points,
        network_entry_id=None if network_entry is None else network_entry.entry_id,
    )
    last_entry = network_entry or entry
    balance = (
        known(last_entry.balance_after)
        if last_entry is not None
        else (await summary(conn, holder.shopper_id)).balance
    )
    return RefundResult(
        transaction_id=transaction_id,
        original_transaction_id=str(original["id"]),
        points_refunded=points,
        amount_minor=amount_minor,
        balance=balance,
        network_points_refunded=network_points,
    )


async def quote(conn: Conn, partner_id: int, req: QuoteRequest) -> Quote:
    """What the purchase would earn now; campaign items are cut to budgets and caps as last
    committed (a concurrent purchase may still take what is left first)."""
    pricing = await pricing_in_effect(conn, partner_id)
    balance = None
    shopper_id = None
    if req.card_number is not None:
        holder = await shoppers.resolve_card(conn, req.card_number)
        shopper_id = holder.shopper_id
        balance = (await summary(conn, shopper_id)).balance
    basket = earning.basket_of(req.amount_minor, req.lines)
    assessment = await earning.assess(
        conn, partner_id, pricing, basket, shopper_id=shopper_id, now=datetime.now(UTC)
    )
    items = await earning.estimate(conn, assessment, shopper_id)
    return Quote(
        points=sum(item.points for item in items),
        pricing_version=pricing.version,
        balance=balance,
        breakdown=[item.contract() for item in items],
    )


async def shopper_view(conn: Conn, card_number: str) -> ShopperView:
    holder = await shoppers.resolve_card(conn, card_number)
    wallet = await summary(conn, holder.shopper_id)
    return ShopperView(
        shopper_id=holder.shopper_id,
        card_number=holder.card_number,
        balance=wallet.balance,
        held=wallet.held,
        expiring=[
            ExpiringPoints(points=lot.points, expires_at=lot.expires_at) for lot in wallet.expiring
        ],
        tier=(await tiers.tier_of(conn, holder.shopper_id)).name,
    )


async def get_transaction(conn: Conn, partner_id: int, transaction_id: str) -> Transaction:
    row = await conn.fetchrow(queries.TRANSACTION, parse_uuid(transaction_id), partner_id)
    if row is None:
        raise NotFound("transaction")
    return _transaction(row)


async def list_transactions(
    conn: Conn, partner_id: int, *, cursor: str | None, limit: int
) -> TransactionPage:
    assert 1 <= limit <= TRANSACTIONS_LIMIT_MAX, limit
    after_created_at, after_id = _decode_cursor(cursor) if cursor else (None, None)
    rows = await conn.fetch(
        queries.TRANSACTIONS_PAGE, partner_id, after_created_at, after_id, limit + 1
    )
    items = [_transaction(row) for row in rows[:limit]]
    next_cursor = _encode_cursor(rows[limit - 1]) if len(rows) > limit else None
    return TransactionPage(items=items, next_cursor=next_cursor)


# ---- earn rules and campaigns ----------------------------------------------------------------


async def earn_rules_of(conn: Conn, partner_id: int) -> EarnRules:
    return await earn_rules.get(conn, partner_id)


async def replace_earn_rules(
    conn: Conn, partner_id: int, req: EarnRulesUpdate, *, actor: str
) -> EarnRules:
    return await earn_rules.replace(conn, partner_id, req, actor=actor)


async def create_campaign(
    conn: Conn, partner_id: int | None, req: CampaignCreate, *, actor: str
) -> Campaign:
    """A partner's campaign, or a network campaign when `partner_id` is None (operators)."""
    return await campaigns.create(conn, partner_id, req, actor=actor)


async def get_campaign(conn: Conn, partner_id: int | None, campaign_id: int) -> Campaign:
    return await campaigns.get(conn, partner_id, campaign_id)


async def end_campaign(conn: Conn, partner_id: int | None, campaign_id: int) -> Campaign:
    return await campaigns.end(conn, partner_id, campaign_id)


async def list_campaigns(
    conn: Conn, partner_id: int | None, *, cursor: str | None, limit: int
) -> CampaignPage:
    return await campaigns.list_page(conn, partner_id, cursor=cursor, limit=limit)


async def offers_for_shopper(
    conn: Conn, shopper_id: int, *, partner_id: int | None = None
) -> list[Offer]:
    return await campaigns.offers_for_shopper(conn, shopper_id, partner_id=partner_id)


# ---- rules -----------------------------------------------------------------------------------


def _refundable_points(original: asyncpg.Record) -> int:
    if original["kind"] == "hold":
        return int(original["points_captured"])
    return int(original["points"])


def _refund_share(
    original: asyncpg.Record, done: asyncpg.Record, req: RefundRequest
) -> tuple[int, int | None]:
    """(points, amount_minor) of this refund; raises when it exceeds what is left."""
    kind = original["kind"]
    if kind == "refund" or (kind == "hold" and original["status"] != "captured"):
        raise RefundNotApplicable("only purchases, redemptions and captured holds are refunded")
    total_points = _refundable_points(original)
    points_left = total_points - done["points"]
    if kind != "purchase":
        if req.amount_minor is not None:
            raise RefundNotApplicable("a redemption is refunded in points")
        points = points_left if req.points is None else req.points
        if points > points_left or points_left == 0:
            raise RefundExceedsOriginal(remaining=points_left, unit="points")
        return points, None
    if req.points is not None:
        if req.points > points_left:
            raise RefundExceedsOriginal(remaining=points_left, unit="points")
        return req.points, None
    amount_left = original["amount_minor"] - done["amount_minor"]
    amount = amount_left if req.amount_minor is None else req.amount_minor
    if amount > amount_left or amount_left == 0:
        raise RefundExceedsOriginal(remaining=amount_left, unit="amount_minor")
    # Proportional on the cumulative amount, so partial refunds add up to the whole exactly.
    points_due = total_points * (done["amount_minor"] + amount) // original["amount_minor"]
    points = min(points_left, max(0, points_due - done["points"]))
    return points, amount


def _network_refund_share(
    original: asyncpg.Record, done: asyncpg.Record, points: int, amount_minor: int | None
) -> int:
    """The purchase's network campaign points this refund takes back: the same cumulative
    share of them as of the purchase (by amount, or by the partner's points when refunded in
    points), floored, so partial refunds add up to all of them exactly on the whole refund.
    The referral bonus is never taken back: it rewards bringing the friend, not the basket
    (and the referrer's half was earned by someone who is not refunding anything)."""
    network_total = int(original["network_points"])
    if original["kind"] != "purchase" or network_total == 0:
        return 0
    if amount_minor is not None:
        refunded, whole = done["amount_minor"] + amount_minor, original["amount_minor"]
    else:
        refunded, whole = done["points"] + points, original["points"]
    if whole <= 0:
        return 0
    taken = int(done["network_points"])
    due = network_total * min(int(refunded), int(whole)) // int(whole)
    return max(0, min(network_total - taken, due - taken))


async def _record_event(
    conn: Conn,
    event_type: str,
    *,
    partner_id: int,
    shopper_id: int,
    transaction_id: str,
    partner_ref: str,
    points: int,
    **extra: int | None,
) -> None:
    """An operation's event, to its partner, in the operation's transaction: ids, reference
    and points only (no card number or personal data)."""
    await outbox.record(
        conn,
        event_type,
        partner_id=partner_id,
        shopper_id=shopper_id,
        payload={
            "transaction_id": transaction_id,
            "partner_ref": partner_ref,
            "points": points,
            "shopper_id": shopper_id,
            **extra,
        },
    )


# ---- plumbing --------------------------------------------------------------------------------


async def _open_hold(conn: Conn, partner_id: int, hold_id: str) -> asyncpg.Record:
    row = await conn.fetchrow(queries.TRANSACTION_FOR_UPDATE, parse_uuid(hold_id), partner_id)
    if row is None or row["kind"] != "hold":
        raise NotFound("hold")
    if row["status"] != "open":
        raise HoldNotOpen(row["status"])
    return row


def _hold_result(
    row: asyncpg.Record, status: str, points_captured: int, value_minor: int, entry: Any
) -> HoldResult:
    return HoldResult(
        hold_id=str(row["id"]),
        status=status,  # type: ignore[arg-type]
        points=row["points"],
        points_captured=points_captured,
        value_minor=value_minor,
        expires_at=row["expires_at"],
        balance=known(entry.balance_after),
        held=known(entry.held_after),
    )


def _transaction(row: asyncpg.Record) -> Transaction:
    return Transaction(
        transaction_id=str(row["id"]),
        kind=row["kind"],
        partner_ref=row["partner_ref"],
        card_number=row["card_number"],
        points=row["points_captured"] if row["status"] == "captured" else row["points"],
        status=row["status"],
        created_at=row["created_at"],
        amount_minor=row["amount_minor"],
        value_minor=row["value_minor"],
        original_transaction_id=None if row["original_id"] is None else str(row["original_id"]),
    )


_CURSOR_VERSION = "t1"


def _encode_cursor(row: asyncpg.Record) -> str:
    payload = msgspec.json.encode([_CURSOR_VERSION, row["created_at"].isoformat(), str(row["id"])])
    return base64.urlsafe_b64encode(payload).decode().rstrip("=")


def _decode_cursor(cursor: str) -> tuple[datetime, uuid.UUID]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        version, created_at, row_id = msgspec.json.decode(raw, type=tuple[str, str, str])
        if version != _CURSOR_VERSION:
            raise ValueError(version)
        return datetime.fromisoformat(created_at), uuid.UUID(row_id)
    except (ValueError, binascii.Error, msgspec.DecodeError):
        raise CursorInvalid() from None
