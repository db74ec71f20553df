"""Partner operations: the partners package's door.

Every function takes a connection and runs in the caller's transaction: the gateway opens one
transaction per call, stores the idempotency record in it, and commits once. A domain error
raised here aborts that transaction, so a refused call changes nothing. Purchases and
redemptions record their event (`purchase.recorded`, `redemption.recorded`) in that same
transaction; an operation called without one opens its own (`_common.atomic`).

The rooms behind this door: `onboarding` (partners, pricing, keys), `earn_rules`, `campaigns`,
`earning` (the breakdown of a purchase's points), `refunds` (the refund rule) and `_common`
(ledger calls, the record).
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

import asyncpg
import msgspec

from contracts.campaigns import Campaign, CampaignBurnDown, CampaignCreate, CampaignPage, Offer
from contracts.errors import DomainError
from contracts.money import minor_unit_micros
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
    ShopperView,
    Transaction,
    TransactionPage,
)
from infra import outbox
from infra.db import Conn
from ledger import service as ledger
from partners import campaigns, earn_rules, earning, queries
from partners._common import (
    Pricing,
    atomic,
    entry_of,
    fresh,
    known,
    ledger_call,
    ledger_fetchrow,
    ledger_key,
    parse_uuid,
    pricing_in_effect,
    pricing_of,
    record,
    summary,
)
from partners.batch import purchase_batch
from partners.campaign_burn_down import budget_burn_down
from partners.errors import (
    CurrencyUnsupported,
    CursorInvalid,
    HoldNotOpen,
    NotFound,
    PartnerRefConflict,
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
    set_rate_limit,
)
from partners.refunds import refund
from shoppers import referrals, tiers
from shoppers import service as shoppers
from shoppers.mail import contacts

__all__ = [
    "ACTIVE_KEYS_MAX",
    "PartnerKey",
    "add_pricing_version",
    "campaign_burn_down",
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
    "pricing_in_effect",  # the version purchases are priced with now (the console marks it)
    "purchase",
    "purchase_batch",
    "quote",
    "redeem",
    "refund",
    "replace_earn_rules",
    "revoke_api_key",
    "set_rate_limit",
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
    if req.email is not None or req.locale is not None:
        await contacts.set_shopper_contact(
            conn,
            holder.shopper_id,
            email=req.email,
            locale=req.locale,
            email_given=req.email is not None,
            locale_given=req.locale is not None,
        )
    return Enrollment(shopper_id=holder.shopper_id, card_number=holder.card_number)


@atomic
async def purchase(
    conn: Conn, partner_id: int, req: PurchaseRequest, *, idempotency_key: str
) -> PurchaseResult:
    """Earn on a purchase: base, tier bonus and campaigns in the partner's earn entry (at its
    issue price), network campaigns in a marketing-paid entry, then a referral bonus if this is
    the friend's first qualifying purchase. The breakdown sums to the points credited."""
    now = datetime.now(UTC)
    # One statement reads everything below; the checks keep their order and errors.
    ctx = await _purchase_context(conn, partner_id, req, now=now)
    holder, pricing = ctx.holder, ctx.pricing
    basket = earning.basket_of(req.amount_minor, req.lines)
    assessment = earning.assess_read(
        partner_id, pricing, basket, ctx.rules, ctx.running, ctx.tier, ctx.facts, ctx.membership
    )
    items = await earning.award(conn, assessment, holder.shopper_id)
    if ctx.referral_pending:
        # The reward comes between the record and the lines: the writes stay separate.
        return await _purchase_in_steps(
            conn, partner_id, req, ctx, basket, items, idempotency_key, now=now
        )
    return await _purchase_written_at_once(
        conn, partner_id, req, ctx, basket, items, idempotency_key, now=now
    )


@atomic
async def redeem(
    conn: Conn, partner_id: int, req: RedemptionRequest, *, idempotency_key: str
) -> RedemptionResult:
    """One read (`BURN_CONTEXT`: card, pricing, ref, currency, checked in that order), then
    every write in one statement (`partner_redeem_write`, 0094): the burn, the record, the
    event. (A group commit's redemptions: partners.burn_many, the same steps for many.)"""
    ctx = await _burn_context(conn, partner_id, req.card_number, req.partner_ref)
    redemption = redemption_of(ctx, partner_id, req, idempotency_key=idempotency_key)
    with ledger_call("burn", req.partner_ref):
        row = await ledger_fetchrow(conn, queries.REDEEM_WRITE, *redemption.arguments)
    return redemption.result(_written(row["burn"], row["recorded"], req.partner_ref))


@dataclass(frozen=True)
class Redemption:
    """A redemption whose read passed: REDEEM_WRITE's arguments, and its answer once written."""

    arguments: tuple[Any, ...]
    transaction_id: uuid.UUID
    points: int
    value_minor: int

    def result(self, entry: ledger.EntryResult) -> RedemptionResult:
        return RedemptionResult(
            transaction_id=str(self.transaction_id),
            points_redeemed=self.points,
            value_minor=self.value_minor,
            balance=known(entry.balance_after),
        )


def redemption_of(
    ctx: BurnContext, partner_id: int, req: RedemptionRequest, *, idempotency_key: str
) -> Redemption:
    holder, pricing = ctx.holder, ctx.pricing
    value_minor = _value_minor(req.points, pricing, ctx.currency)
    transaction_id = uuid.uuid4()
    payload = _event_payload(
        holder.shopper_id,
        str(transaction_id),
        req.partner_ref,
        req.points,
        value_minor=value_minor,
    )
    arguments = (
        transaction_id,
        partner_id,
        req.partner_ref,
        holder.shopper_id,
        holder.card_number,
        req.points,
        value_minor,
        pricing.version,
        idempotency_key,
        ledger_key(partner_id, req.partner_ref),
        pricing.redemption_price_micros,
        _metadata_json({"partner_ref": req.partner_ref}),
        outbox.payload_text("redemption.recorded", payload),
    )
    return Redemption(arguments, transaction_id, req.points, value_minor)


async def hold(
    conn: Conn, partner_id: int, req: HoldRequest, *, idempotency_key: str
) -> HoldResult:
    """One read (`BURN_CONTEXT`), then the hold and its record in one statement
    (`partner_hold_write`, 0094). (A group commit's holds: partners.burn_many.)"""
    ctx = await _burn_context(conn, partner_id, req.card_number, req.partner_ref)
    opened = hold_of(ctx, partner_id, req, idempotency_key=idempotency_key)
    with ledger_call("hold", req.partner_ref):
        row = await ledger_fetchrow(conn, queries.HOLD_WRITE, *opened.arguments)
    return opened.result(_written(row["hold"], row["recorded"], req.partner_ref))


@dataclass(frozen=True)
class Hold:
    """A hold whose read passed: HOLD_WRITE's arguments, and its answer once written."""

    arguments: tuple[Any, ...]
    transaction_id: uuid.UUID
    points: int
    expires_at: datetime

    def result(self, entry: ledger.EntryResult) -> HoldResult:
        assert entry.hold_id is not None, entry
        return HoldResult(
            hold_id=str(self.transaction_id),
            status="open",
            points=self.points,
            points_captured=0,
            value_minor=0,
            expires_at=self.expires_at,
            balance=known(entry.balance_after),
            held=known(entry.held_after),
        )


def hold_of(ctx: BurnContext, partner_id: int, req: HoldRequest, *, idempotency_key: str) -> Hold:
    holder, pricing = ctx.holder, ctx.pricing
    expires_at = datetime.now(UTC) + timedelta(seconds=req.expires_in_s)
    transaction_id = uuid.uuid4()
    arguments = (
        transaction_id,
        partner_id,
        req.partner_ref,
        holder.shopper_id,
        holder.card_number,
        req.points,
        pricing.version,
        idempotency_key,
        ledger_key(partner_id, req.partner_ref),
        expires_at,
        _metadata_json({"partner_ref": req.partner_ref}),
    )
    return Hold(arguments, transaction_id, req.points, expires_at)


async def capture_hold(
    conn: Conn, partner_id: int, hold_id: str, req: CaptureRequest
) -> HoldResult:
    """One read (`CAPTURE_CONTEXT`: the hold, locked, then the pricing), then the capture and
    the hold's settlement in one statement (`partner_capture_write`, 0094). (A group commit's
    captures: partners.burn_many.)"""
    row = await conn.fetchrow(queries.CAPTURE_CONTEXT, parse_uuid(hold_id), partner_id)
    capture = capture_of(row, partner_id, req)
    with ledger_call("capture"):
        written = await ledger_fetchrow(conn, queries.CAPTURE_WRITE, *capture.arguments)
    return capture.result(entry_of(written["capture"]))


@dataclass(frozen=True)
class Capture:
    """A capture whose read passed: CAPTURE_WRITE's arguments, and its answer once written."""

    arguments: tuple[Any, ...]
    hold: asyncpg.Record  # the hold's CAPTURE_CONTEXT row
    points: int
    value_minor: int

    def result(self, entry: ledger.EntryResult) -> HoldResult:
        return _hold_result(self.hold, "captured", self.points, self.value_minor, entry)


def capture_of(row: asyncpg.Record | None, partner_id: int, req: CaptureRequest) -> Capture:
    """The capture of the hold read by CAPTURE_CONTEXT (or CAPTURE_CONTEXT_MANY); refused as
    the single path refuses it: no such hold (404), not open (409), no pricing."""
    row = _open(row)
    points = row["points"] if req.points is None else req.points
    pricing = pricing_of(row, version_column="pricing_in_effect")
    value_minor = _value_minor(points, pricing, row["currency"])
    arguments = (
        row["id"],
        partner_id,
        ledger_key(partner_id, str(row["id"]), part="hold-settle"),
        row["ledger_hold_id"],
        points,
        value_minor,
        pricing.redemption_price_micros,
        _metadata_json({"partner_ref": row["partner_ref"]}),
    )
    return Capture(arguments, row, points, value_minor)


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
        tier=(await tiers.effective_tier_of(conn, holder.shopper_id, now=datetime.now(UTC))).name,
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


async def campaign_burn_down(
    conn: Conn, partner_id: int | None, campaign_id: int, *, today: date
) -> CampaignBurnDown:
    """The budget left at the end of each UTC day, from the start to min(stop, today)."""
    return await budget_burn_down(conn, campaign_id, partner_id=partner_id, today=today)


async def offers_for_shopper(
    conn: Conn, shopper_id: int, *, partner_id: int | None = None
) -> list[Offer]:
    return await campaigns.offers_for_shopper(conn, shopper_id, partner_id=partner_id)


# ---- purchase steps --------------------------------------------------------------------------

_PURCHASE_RECORDED = "purchase.recorded"
_NETWORK_PAID_REASON = "campaign"  # ledger goodwill reason of a network campaign's points
# The tiers above the base one, in rank order, with their qualification thresholds: a purchase
# whose qualification reaches none of them cannot change the tier (`tiers.upgrade_if_qualified`
# returns at once), else its statement ensures and locks the tier row (migrations 0085, 0093).
assert [tier.rank for tier in tiers.TIERS] == list(range(len(tiers.TIERS))), tiers.TIERS
_UPPER_TIERS = [tier for tier in tiers.TIERS if tier.rank > tiers.BASE_TIER.rank]
UPPER_TIER_NAMES = [tier.name for tier in _UPPER_TIERS]
UPPER_TIERS_POINTS_MIN = [tier.points_earned_min for tier in _UPPER_TIERS]
UPPER_TIERS_SPEND_MIN = [tier.spend_minor_min for tier in _UPPER_TIERS]


async def _purchase_in_steps(
    conn: Conn,
    partner_id: int,
    req: PurchaseRequest,
    ctx: _PurchaseContext,
    basket: earning.Basket,
    items: list[earning.Item],
    idempotency_key: str,
    *,
    now: datetime,
) -> PurchaseResult:
    """The writes as separate statements: the earn entries, the record, the referral reward,
    lines + breakdown + qualification, the tier, the event."""
    holder, pricing = ctx.holder, ctx.pricing
    expires_at = ctx.expires_at
    credit = await _credit_earned(
        conn, partner_id, req, holder.shopper_id, pricing, items, expires_at
    )
    transaction_id = uuid.uuid4()
    await _record_purchase(
        conn, transaction_id, partner_id, req, holder, pricing, credit, idempotency_key
    )
    reward = await _referral_reward(
        conn, holder.shopper_id, req, transaction_id, pricing, expires_at
    )
    if reward is not None:
        items.append(earning.Item("referral", reward.friend_points, "network"))
    qualification = await earning.store(
        conn,
        transaction_id=transaction_id,
        shopper_id=holder.shopper_id,
        partner_id=partner_id,
        basket=basket,
        items=items,
        now=now,
    )
    await tiers.upgrade_if_qualified(conn, holder.shopper_id, qualification, now=now)
    balance = credit.balance if reward is None else reward.friend_balance_after
    if balance is None:
        balance = (await summary(conn, holder.shopper_id)).balance
    return await _purchase_recorded(conn, transaction_id, partner_id, req, holder, items, balance)


async def _purchase_written_at_once(
    conn: Conn,
    partner_id: int,
    req: PurchaseRequest,
    ctx: _PurchaseContext,
    basket: earning.Basket,
    items: list[earning.Item],
    idempotency_key: str,
    *,
    now: datetime,
) -> PurchaseResult:
    """The same writes as `_purchase_in_steps` without a referral reward, in one statement
    (`queries.PURCHASE_WRITE`), checked in the same order: the earn (its errors, then a
    replay), the network-paid entry, the record (a ref taken concurrently). The statement also
    ensures and locks the tier row when the qualification reaches a tier above the base one;
    when the tier goes up, the change and then the event follow as separate statements."""
    holder, pricing = ctx.holder, ctx.pricing
    partner_points = sum(item.points for item in items if item.paid_by == "partner")
    network_points = sum(item.points for item in items if item.paid_by == "network")
    points_earned = sum(item.points for item in items)
    transaction_id = uuid.uuid4()
    payload = _event_payload(
        holder.shopper_id,
        str(transaction_id),
        req.partner_ref,
        points_earned,
        amount_minor=req.amount_minor,
    )
    timing = (
        ledger_call("earn", req.partner_ref)
        if partner_points > 0
        else ledger_call("goodwill", req.partner_ref)
        if network_points > 0
        else contextlib.nullcontext()
    )
    with timing:
        row = await ledger_fetchrow(
            conn,
            queries.PURCHASE_WRITE,
            transaction_id,
            partner_id,
            req.partner_ref,
            holder.shopper_id,
            holder.card_number,
            req.amount_minor,
            pricing.version,
            idempotency_key,
            pricing.issue_price_micros,
            ctx.expires_at,
            ledger_key(partner_id, req.partner_ref),
            partner_points,
            _metadata_json(_purchase_metadata(req)),
            ledger_key(partner_id, req.partner_ref, part="network"),
            network_points,
            _metadata_json(
                {**_network_paid_metadata(partner_id, req), "reason": _NETWORK_PAID_REASON}
            ),
            now,
            *earning.stored_columns(basket, items),
            UPPER_TIER_NAMES,
            UPPER_TIERS_POINTS_MIN,
            UPPER_TIERS_SPEND_MIN,
            outbox.payload_text(_PURCHASE_RECORDED, payload),
        )
    balance: int | None = None
    for raw in (row["earn"], row["network"]):
        if raw is not None:
            entry = entry_of(raw)
            fresh(entry, req.partner_ref)
            balance = known(entry.balance_after)
    if not row["recorded"]:  # a concurrent request with the same ref committed first
        raise PartnerRefConflict(req.partner_ref)
    if not row["event_recorded"]:  # the tier changes: tier.changed, then purchase.recorded
        qualification = tiers.qualification_of(row)
        await tiers.upgrade_locked(conn, holder.shopper_id, row["tier"], qualification, now=now)
    if balance is None:
        balance = (await summary(conn, holder.shopper_id)).balance
    if not row["event_recorded"]:
        await outbox.record(
            conn,
            _PURCHASE_RECORDED,
            partner_id=partner_id,
            shopper_id=holder.shopper_id,
            payload=payload,
        )
    return PurchaseResult(
        transaction_id=str(transaction_id),
        points_earned=points_earned,
        balance=balance,
        breakdown=[item.contract() for item in items],
    )


@dataclass(frozen=True)
class PlainPurchase:
    """A purchase that needs partner-paid points only (base and tier bonus: no campaign bonus,
    no network-paid points, no referral reward), assessed from its read: what
    `partners.purchase_many` writes set-based with others, the same rows as
    `_purchase_written_at_once` would write for it."""

    req: PurchaseRequest
    shopper_id: int
    pricing: Pricing
    expires_at: datetime
    items: tuple[earning.Item, ...]
    lines: tuple[tuple[str, int], ...]
    transaction_id: uuid.UUID

    @property
    def points(self) -> int:
        return sum(item.points for item in self.items)

    def earn_metadata_json(self) -> str:
        return _metadata_json(_purchase_metadata(self.req))

    def event_payload(self) -> dict[str, Any]:
        return _event_payload(
            self.shopper_id,
            str(self.transaction_id),
            self.req.partner_ref,
            self.points,
            amount_minor=self.req.amount_minor,
        )

    def event_payload_text(self) -> str:
        return outbox.payload_text(_PURCHASE_RECORDED, self.event_payload())

    def result(self, balance: int) -> PurchaseResult:
        return PurchaseResult(
            transaction_id=str(self.transaction_id),
            points_earned=self.points,
            balance=balance,
            breakdown=[item.contract() for item in self.items],
        )


def plain_purchase(
    row: asyncpg.Record, partner_id: int, req: PurchaseRequest, *, now: datetime
) -> PlainPurchase | None:
    """The purchase as a `PlainPurchase` from its row of `queries.PURCHASE_CONTEXT_MANY`, or
    None when it is not one: refused by its read (`purchase` raises the same error when it
    runs), a referral that may pay, a campaign bonus, or no points at all."""
    try:
        ctx = purchase_context_of(row, req, now=now)
        basket = earning.basket_of(req.amount_minor, req.lines)
    except DomainError:
        return None
    if ctx.referral_pending:
        return None
    assessment = earning.assess_read(
        partner_id, ctx.pricing, basket, ctx.rules, ctx.running, ctx.tier, ctx.facts, ctx.membership
    )
    if assessment.bonuses:
        return None  # awarded under the campaign's lock, one purchase at a time
    if assessment.membership_bonus > 0:
        return None  # network-paid points: the single path's network entry
    items = tuple(assessment.fixed_items())
    assert all(item.paid_by == "partner" for item in items), items
    if sum(item.points for item in items) <= 0:
        return None
    return PlainPurchase(
        req=req,
        shopper_id=ctx.holder.shopper_id,
        pricing=ctx.pricing,
        expires_at=ctx.expires_at,
        items=items,
        lines=basket.lines,
        transaction_id=uuid.uuid4(),
    )


async def finish_plain(
    conn: Conn,
    partner_id: int,
    plain: PlainPurchase,
    written: asyncpg.Record,
    *,
    now: datetime,
) -> PurchaseResult:
    """What `_purchase_written_at_once` does after its statement, for an item written by
    `partner_purchase_write_many`: when the tier goes up, tier.changed then the event."""
    if not written["event_recorded"]:
        qualification = tiers.qualification_of(written)
        await tiers.upgrade_locked(conn, plain.shopper_id, written["tier"], qualification, now=now)
        await outbox.record(
            conn,
            _PURCHASE_RECORDED,
            partner_id=partner_id,
            shopper_id=plain.shopper_id,
            payload=plain.event_payload(),
        )
    return plain.result(known(written["balance_after"]))


@dataclass(frozen=True)
class _Credit:
    """What a purchase put in the ledger: the partner-paid and the marketing-paid points, their
    entries (None when nothing was due) and the wallet balance after the last of them."""

    partner_points: int
    network_points: int
    entry_id: int | None
    network_entry_id: int | None
    balance: int | None


@dataclass(frozen=True)
class _PurchaseContext:
    """What a purchase reads before it writes (`queries.PURCHASE_CONTEXT`), checked."""

    holder: shoppers.CardHolder
    pricing: Pricing
    rules: earn_rules.Rules
    running: list[campaigns.CampaignRule]  # in id order: the award lock order
    tier: tiers.Tier  # qualified (the partner pays its tier bonus)
    facts: campaigns.ShopperFacts  # the tier in them floored by a paid membership
    membership: earning.MembershipBenefit
    expires_at: datetime  # of the points earned now, under the network's lifetime
    # False: no referral of this shopper waits for its reward, and none ever will (a referral
    # is registered only with the shopper's enrollment and rewarded_at never returns to NULL),
    # so the referral step cannot pay and is skipped. True: the step decides, under its lock.
    referral_pending: bool


async def _purchase_context(
    conn: Conn, partner_id: int, req: PurchaseRequest, *, now: datetime
) -> _PurchaseContext:
    """Read in one round trip, then check in the order the purchase's errors have always had:
    currency (CurrencyUnsupported), card (CardUnknown, CardBlocked), pricing
    (PricingNotEffective), partner_ref (PartnerRefConflict)."""
    row = await conn.fetchrow(
        queries.PURCHASE_CONTEXT,
        partner_id,
        req.card_number,
        req.partner_ref,
        now,
        campaigns.CAMPAIGNS_PER_PURCHASE_MAX,
    )
    assert row is not None, "network_settings has its one row"
    return purchase_context_of(row, req, now=now)


def purchase_context_of(
    row: asyncpg.Record, req: PurchaseRequest, *, now: datetime
) -> _PurchaseContext:
    """The checked context from a row of `queries.PURCHASE_CONTEXT` (or of its batch form,
    `queries.PURCHASE_CONTEXT_MANY`): raises the purchase's read errors in their order."""
    if req.currency != row["currency"]:
        raise CurrencyUnsupported(req.currency, row["currency"])
    holder = shoppers.holder_of(req.card_number, row["shopper_id"], row["card_status"])
    pricing = pricing_of(row, version_column="pricing_version")
    if row["ref_taken"]:
        raise PartnerRefConflict(req.partner_ref)
    tier = tiers.BASE_TIER if row["tier"] is None else tiers.TIER_BY_NAME[row["tier"]]
    membership = earning.membership_benefit_of(
        row["membership_multiplier_bps"], row["membership_tier_floor"]
    )
    return _PurchaseContext(
        holder=holder,
        pricing=pricing,
        rules=earning.rules_of(
            row["min_basket_minor"],
            row["categories"],
            row["category_multipliers_bps"],
            row["categories_excluded"],
        ),
        running=campaigns.rules_from_json(row["running_campaigns"]),
        tier=tier,
        membership=membership,
        facts=campaigns.facts_of(
            segments=row["segments"],
            tier=membership.floored(tier),
            birth_date=row["birth_date"],
            purchased_at=row["purchased_at"] or (),  # NULL: no first-purchase campaign runs
            time_zone=row["time_zone"],
            now=now,
        ),
        expires_at=row["expires_at"],
        referral_pending=row["referral_pending"],
    )


async def _credit_earned(
    conn: Conn,
    partner_id: int,
    req: PurchaseRequest,
    shopper_id: int,
    pricing: Pricing,
    items: list[earning.Item],
    expires_at: datetime,
) -> _Credit:
    """Credit the partner-paid items in the partner's earn entry, then the network-paid ones
    in a marketing-paid entry."""
    partner_points = sum(item.points for item in items if item.paid_by == "partner")
    network_points = sum(item.points for item in items if item.paid_by == "network")
    entry_id: int | None = None
    network_entry_id: int | None = None
    balance: int | None = None
    if partner_points > 0:
        entry = await _earn(conn, partner_id, req, shopper_id, partner_points, pricing, expires_at)
        entry_id, balance = entry.entry_id, known(entry.balance_after)
    if network_points > 0:
        entry = await _earn_network_paid(
            conn, partner_id, req, shopper_id, network_points, pricing, expires_at
        )
        network_entry_id, balance = entry.entry_id, known(entry.balance_after)
    return _Credit(partner_points, network_points, entry_id, network_entry_id, balance)


async def _earn(
    conn: Conn,
    partner_id: int,
    req: PurchaseRequest,
    shopper_id: int,
    points: int,
    pricing: Pricing,
    expires_at: datetime,
) -> ledger.EntryResult:
    with ledger_call("earn", req.partner_ref):
        entry = await ledger.earn(
            conn,
            idempotency_key=ledger_key(partner_id, req.partner_ref),
            shopper_id=shopper_id,
            partner_id=partner_id,
            points=points,
            issue_price_micros=pricing.issue_price_micros,
            expires_at=expires_at,
            metadata=_purchase_metadata(req),
        )
    fresh(entry, req.partner_ref)
    return entry


async def _earn_network_paid(
    conn: Conn,
    partner_id: int,
    req: PurchaseRequest,
    shopper_id: int,
    points: int,
    pricing: Pricing,
    expires_at: datetime,
) -> ledger.EntryResult:
    # Network campaigns: marketing pays, valued at this partner's issue price.
    with ledger_call("goodwill", req.partner_ref):
        entry = await ledger.goodwill(
            conn,
            idempotency_key=ledger_key(partner_id, req.partner_ref, part="network"),
            shopper_id=shopper_id,
            partner_id=None,
            points=points,
            issue_price_micros=pricing.issue_price_micros,
            expires_at=expires_at,
            reason=_NETWORK_PAID_REASON,
            metadata=_network_paid_metadata(partner_id, req),
        )
    fresh(entry, req.partner_ref)
    return entry


def _purchase_metadata(req: PurchaseRequest) -> dict[str, Any]:
    return {"partner_ref": req.partner_ref, "amount_minor": req.amount_minor}


def _network_paid_metadata(partner_id: int, req: PurchaseRequest) -> dict[str, Any]:
    return {**_purchase_metadata(req), "issued_at_partner_id": partner_id}


def _metadata_json(metadata: dict[str, Any]) -> str:
    """Ledger metadata as `ledger.service` sends it to its SQL functions."""
    return msgspec.json.encode(metadata).decode()


async def _referral_reward(
    conn: Conn,
    shopper_id: int,
    req: PurchaseRequest,
    transaction_id: uuid.UUID,
    pricing: Pricing,
    expires_at: datetime,
) -> referrals.Reward | None:
    """The referral bonus, if this is the friend's first qualifying purchase."""
    return await referrals.reward_qualifying_purchase(
        conn,
        shopper_id=shopper_id,
        amount_minor=req.amount_minor,
        transaction_id=transaction_id,
        issue_price_micros=pricing.issue_price_micros,
        expires_at=expires_at,
    )


async def _record_purchase(
    conn: Conn,
    transaction_id: uuid.UUID,
    partner_id: int,
    req: PurchaseRequest,
    holder: shoppers.CardHolder,
    pricing: Pricing,
    credit: _Credit,
    idempotency_key: str,
) -> None:
    await record(
        conn,
        transaction_id=transaction_id,
        partner_id=partner_id,
        partner_ref=req.partner_ref,
        kind="purchase",
        status="completed",
        holder=holder,
        points=credit.partner_points,  # what the partner pays for, and what a refund may take back
        amount_minor=req.amount_minor,
        pricing_version=pricing.version,
        ledger_entry_id=credit.entry_id,
        idempotency_key=idempotency_key,
        network_points=credit.network_points,  # what a refund takes back from marketing's side
        network_entry_id=credit.network_entry_id,
    )


async def _purchase_recorded(
    conn: Conn,
    transaction_id: uuid.UUID,
    partner_id: int,
    req: PurchaseRequest,
    holder: shoppers.CardHolder,
    items: list[earning.Item],
    balance: int,
) -> PurchaseResult:
    """Record the `purchase.recorded` event and answer with the breakdown."""
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


# ---- events ----------------------------------------------------------------------------------


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
        payload=_event_payload(shopper_id, transaction_id, partner_ref, points, **extra),
    )


def _event_payload(
    shopper_id: int, transaction_id: str, partner_ref: str, points: int, **extra: int | None
) -> dict[str, Any]:
    return {
        "transaction_id": transaction_id,
        "partner_ref": partner_ref,
        "points": points,
        "shopper_id": shopper_id,
        **extra,
    }


# ---- plumbing --------------------------------------------------------------------------------


async def _open_hold(conn: Conn, partner_id: int, hold_id: str) -> asyncpg.Record:
    return _open(
        await conn.fetchrow(queries.TRANSACTION_FOR_UPDATE, parse_uuid(hold_id), partner_id)
    )


def _open(row: asyncpg.Record | None) -> asyncpg.Record:
    """The row of an open hold, or the refusal: no such hold (404), or not open (409)."""
    if row is None or row["kind"] != "hold":
        raise NotFound("hold")
    if row["status"] != "open":
        raise HoldNotOpen(row["status"])
    return row


def _value_minor(points: int, pricing: Pricing, currency: str) -> int:
    """What burned points are worth to the partner, in minor units, rounded down."""
    return points * pricing.redemption_price_micros // minor_unit_micros(currency)


def _written(raw: str, recorded: bool, partner_ref: str) -> ledger.EntryResult:
    """The ledger result of a redemption's or a hold's write (0094), checked as the separate
    statements were: a replayed key, or a ref recorded concurrently, is a ref conflict."""
    entry = entry_of(raw)
    fresh(entry, partner_ref)
    if not recorded:  # a concurrent request with the same ref committed first
        raise PartnerRefConflict(partner_ref)
    return entry


@dataclass(frozen=True)
class BurnContext:
    holder: shoppers.CardHolder
    pricing: Pricing
    currency: str


async def _burn_context(
    conn: Conn, partner_id: int, card_number: str, partner_ref: str
) -> BurnContext:
    row = await conn.fetchrow(queries.BURN_CONTEXT, partner_id, card_number, partner_ref)
    assert row is not None, "network_settings has its one row"
    return burn_context_of(row, card_number, partner_ref)


def burn_context_of(row: asyncpg.Record, card_number: str, partner_ref: str) -> BurnContext:
    """A row of BURN_CONTEXT (or BURN_CONTEXT_MANY), checked in the order these operations
    always had: card (CardUnknown, CardBlocked), pricing (PricingNotEffective), partner_ref
    (taken)."""
    holder = shoppers.holder_of(card_number, row["shopper_id"], row["card_status"])
    pricing = pricing_of(row, version_column="pricing_version")
    if row["ref_taken"]:
        raise PartnerRefConflict(partner_ref)
    return BurnContext(holder, pricing, row["currency"])


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
