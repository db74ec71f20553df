"""The shopper's own view of the program (`/v1/me`): profile, balance, history across all
partners, expiring points, tier progress, consent, NPS answers and identifiers.

Every function starts from `live_shopper_id`: a token minted before a merge follows the
absorbed shopper to its survivor, and a token of an erased shopper is refused.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta

import asyncpg
import msgspec

from contracts.shoppers import (
    EXPIRING_WINDOWS_DAYS,
    Balance,
    Consent,
    ConsentUpdate,
    Expiring,
    ExpiringLot,
    ExpiringWindow,
    HistoryItem,
    HistoryPage,
    NpsAnswer,
    NpsRecorded,
    Profile,
    ProfileUpdate,
    TierProgress,
)
from infra.db import Conn
from ledger import service as ledger
from ledger.errors import InvalidArgument
from shoppers import identity, queries, tiers
from shoppers.challenges import view as challenges_view
from shoppers.errors import HistoryCursorInvalid, ShopperErased, ShopperNotFound
from shoppers.mail import contacts

__all__ = [
    "answer_nps",
    "balance",
    "consent",
    "expiring",
    "history",
    "live_shopper_id",
    "profile",
    "set_birth_date",
    "tier",
    "update_consent",
    "update_profile",
]

SECONDS_PER_DAY = 24 * 3600
MERGE_HOPS_MAX = 8  # merges re-point earlier absorptions, so one hop is the norm


async def live_shopper_id(conn: Conn, shopper_id: int) -> int:
    """The shopper a session acts for: itself, or the survivor it was merged into."""
    for _ in range(MERGE_HOPS_MAX):
        row = await conn.fetchrow(queries.SHOPPER, shopper_id)
        if row is None:
            raise ShopperNotFound()
        if row["erased_at"] is not None:
            raise ShopperErased()
        if row["merged_into_id"] is None:
            return shopper_id
        shopper_id = int(row["merged_into_id"])
    raise AssertionError(f"merge chain longer than {MERGE_HOPS_MAX} from shopper {shopper_id}")


async def profile(conn: Conn, shopper_id: int) -> Profile:
    shopper_id = await live_shopper_id(conn, shopper_id)
    row = await conn.fetchrow(queries.SHOPPER, shopper_id)
    assert row is not None, "live_shopper_id found it"
    contact = await contacts.contact_of(conn, shopper_id)
    return Profile(
        shopper_id=shopper_id,
        enrolled_at=row["created_at"],
        birth_date=row["birth_date"],
        phone_linked=bool(await conn.fetchval(queries.HAS_PHONE, shopper_id)),
        cards=await identity.cards_of(conn, shopper_id),
        email=contact.email,
        locale=contact.locale,
        badges=await challenges_view.badges(conn, shopper_id),
    )


async def set_birth_date(conn: Conn, shopper_id: int, birth_date: date | None) -> Profile:
    shopper_id = await live_shopper_id(conn, shopper_id)
    await conn.execute(queries.SET_BIRTH_DATE, shopper_id, birth_date)
    return await profile(conn, shopper_id)


async def update_profile(conn: Conn, shopper_id: int, change: ProfileUpdate) -> Profile:
    """`PATCH /v1/me` as a merge patch: each field given is set (null clears the birth date
    or removes the email address), each absent one left as it is."""
    shopper_id = await live_shopper_id(conn, shopper_id)
    email_given = change.email is not msgspec.UNSET
    locale_given = change.locale is not msgspec.UNSET
    await contacts.set_shopper_contact(
        conn,
        shopper_id,
        email=change.email if isinstance(change.email, str) else None,
        locale=change.locale if isinstance(change.locale, str) else None,
        email_given=email_given,
        locale_given=locale_given,
    )
    if change.birth_date is msgspec.UNSET:
        return await profile(conn, shopper_id)
    return await set_birth_date(conn, shopper_id, change.birth_date)


async def balance(conn: Conn, shopper_id: int, *, now: datetime) -> Balance:
    shopper_id = await live_shopper_id(conn, shopper_id)
    summary = await ledger.wallet_summary(_raw(conn), shopper_id=shopper_id, now=now)
    return Balance(balance=summary.balance, held=summary.held, debt_points=summary.debt_points)


async def history(conn: Conn, shopper_id: int, *, cursor: str | None, limit: int) -> HistoryPage:
    """The wallet's movements, newest first, with the partner (and its name) of each."""
    shopper_id = await live_shopper_id(conn, shopper_id)
    try:
        page = await ledger.history(
            _raw(conn), ledger.wallet_account(shopper_id), cursor=cursor, limit=limit
        )
    except InvalidArgument as exc:
        raise HistoryCursorInvalid() from exc
    partners = {
        row["entry_id"]: row
        for row in await conn.fetch(
            queries.ENTRY_PARTNERS, sorted({item.entry_id for item in page.items})
        )
    }
    items = []
    for item in page.items:
        partner = partners.get(item.entry_id)
        ref = item.metadata.get("partner_ref")
        items.append(
            HistoryItem(
                entry_id=item.entry_id,
                kind=item.kind,
                points=item.amount,
                created_at=item.created_at,
                partner_id=None if partner is None else partner["partner_id"],
                partner_name=None if partner is None else partner["partner_name"],
                partner_ref=ref if isinstance(ref, str) else None,
            )
        )
    return HistoryPage(items=items, next_cursor=page.next_cursor)


async def expiring(conn: Conn, shopper_id: int, *, now: datetime) -> Expiring:
    """Free points expiring within 30, 60 and 90 days (each window includes the shorter)."""
    shopper_id = await live_shopper_id(conn, shopper_id)
    longest_s = max(EXPIRING_WINDOWS_DAYS) * SECONDS_PER_DAY
    summary = await ledger.wallet_summary(
        _raw(conn), shopper_id=shopper_id, now=now, expiring_within_s=longest_s
    )
    windows = [
        ExpiringWindow(
            within_days=days,
            points=sum(
                lot.points
                for lot in summary.expiring
                if lot.expires_at <= now + timedelta(days=days)
            ),
        )
        for days in EXPIRING_WINDOWS_DAYS
    ]
    lots = [
        ExpiringLot(points=lot.points, expires_at=lot.expires_at, partner_id=lot.partner_id)
        for lot in summary.expiring
    ]
    return Expiring(windows=windows, lots=lots)


async def tier(conn: Conn, shopper_id: int, *, now: datetime) -> TierProgress:
    shopper_id = await live_shopper_id(conn, shopper_id)
    status = await tiers.tier_status(conn, shopper_id, now=now)
    return TierProgress(
        tier=status.tier,
        multiplier_bps=status.multiplier_bps,
        since=status.since,
        review_at=status.review_at,
        points_earned_12m=status.points_earned_12m,
        spend_minor_12m=status.spend_minor_12m,
        next_tier=status.next_tier,
        points_to_next=status.points_to_next,
        spend_minor_to_next=status.spend_minor_to_next,
    )


async def consent(conn: Conn, shopper_id: int) -> Consent:
    shopper_id = await live_shopper_id(conn, shopper_id)
    row = await conn.fetchrow(queries.CONSENT, shopper_id)
    if row is None:  # no row: no consent given
        return Consent(data_sharing=False, marketing=False, updated_at=None)
    return Consent(**dict(row))


async def update_consent(conn: Conn, shopper_id: int, change: ConsentUpdate) -> Consent:
    shopper_id = await live_shopper_id(conn, shopper_id)
    row = await conn.fetchrow(
        queries.UPSERT_CONSENT, shopper_id, change.data_sharing, change.marketing
    )
    assert row is not None, "an upsert returns its row"
    return Consent(**dict(row))


async def answer_nps(conn: Conn, shopper_id: int, answer: NpsAnswer) -> NpsRecorded:
    shopper_id = await live_shopper_id(conn, shopper_id)
    row = await conn.fetchrow(queries.INSERT_NPS, shopper_id, answer.score, answer.comment)
    assert row is not None, "an insert returns its row"
    return NpsRecorded(answer_id=row["answer_id"], answered_at=row["answered_at"])


def _raw(conn: Conn) -> asyncpg.Connection:
    return conn  # type: ignore[return-value]  # a pool proxy forwards every call
