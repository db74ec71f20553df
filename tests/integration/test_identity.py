"""Shopper identity: blocked cards, lost-card replacement, merges through the ledger, phone
hashes and QR tokens."""

from __future__ import annotations

import os
import uuid
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest

from infra.db import Conn
from ledger import service as ledger
from ledger.verify import verify
from shoppers import account, identity, tiers
from shoppers import service as shoppers
from shoppers.errors import (
    CardBlocked,
    CardNotBlocked,
    IdentifierTaken,
    MergeRefused,
    PhoneInvalid,
    ShopperLedgerRefused,
)

NOW = datetime.now(UTC)
ISSUE_PRICE_MICROS = 10_000


async def new_partner(conn: Conn) -> int:
    slug = f"p-{uuid.uuid4().hex[:12]}"
    partner_id: int = await conn.fetchval(
        "INSERT INTO partners (slug, name, created_by) VALUES ($1, $1, 'test') RETURNING id", slug
    )
    return partner_id


async def earn(
    conn: Conn, shopper_id: int, partner_id: int, points: int, expires_at: datetime
) -> None:
    await ledger.earn(
        conn,
        idempotency_key=f"test:{uuid.uuid4().hex}",
        shopper_id=shopper_id,
        partner_id=partner_id,
        points=points,
        issue_price_micros=ISSUE_PRICE_MICROS,
        expires_at=expires_at,
    )


async def balance(conn: Conn, shopper_id: int) -> int:
    return (await ledger.wallet_summary(conn, shopper_id=shopper_id, now=NOW)).balance


async def lots(conn: Conn, shopper_id: int) -> list[tuple[int, datetime]]:
    rows = await conn.fetch(
        "SELECT remaining, expires_at FROM ledger.lot WHERE shopper_id = $1 AND remaining > 0 "
        "ORDER BY expires_at",
        shopper_id,
    )
    return [(row["remaining"], row["expires_at"]) for row in rows]


async def test_a_blocked_card_is_refused_until_unblocked(pool: asyncpg.Pool) -> None:
    async with pool.acquire() as conn, conn.transaction():
        holder = await shoppers.enroll(conn, partner_id=await new_partner(conn), card_number=None)
        blocked = await identity.block_card(
            conn, holder.card_number, reason="reported stolen", operator="ops"
        )
        assert blocked.status == "blocked"
        with pytest.raises(CardBlocked) as refused:
            await shoppers.resolve_card(conn, holder.card_number)
        assert refused.value.code == "card_blocked"
        await identity.unblock_card(conn, holder.card_number, reason="found", operator="ops")
        assert (await shoppers.resolve_card(conn, holder.card_number)) == holder
        events = await conn.fetchval(
            "SELECT count(*) FROM event_outbox WHERE shopper_id = $1 "
            "AND event_type IN ('card.blocked', 'card.unblocked')",
            holder.shopper_id,
        )
    assert events == 2


async def test_replacing_a_lost_card_keeps_the_shopper_and_the_balance(pool: asyncpg.Pool) -> None:
    async with pool.acquire() as conn, conn.transaction():
        partner_id = await new_partner(conn)
        holder = await shoppers.enroll(conn, partner_id=partner_id, card_number=None)
        await earn(conn, holder.shopper_id, partner_id, 70, NOW + timedelta(days=300))
        lots_before = await lots(conn, holder.shopper_id)

        replaced = await identity.replace_card(
            conn, holder.card_number, new_card_number=None, reason="lost", operator="ops"
        )
        new_holder = await shoppers.resolve_card(conn, replaced.new_card.card_number)
        assert new_holder.shopper_id == holder.shopper_id
        assert await balance(conn, new_holder.shopper_id) == 70
        assert await lots(conn, holder.shopper_id) == lots_before
        assert replaced.old_card.status == "replaced"
        assert replaced.old_card.replaced_by == replaced.new_card.card_number
        with pytest.raises(CardBlocked):
            await shoppers.resolve_card(conn, holder.card_number)
        # A replaced card stays replaced: it cannot be unblocked or replaced again.
        with pytest.raises(CardNotBlocked):
            await identity.unblock_card(conn, holder.card_number, reason="x", operator="ops")
        with pytest.raises(CardNotBlocked):
            await identity.replace_card(
                conn, holder.card_number, new_card_number=None, reason="x", operator="ops"
            )
        assert await verify(conn) == []


async def test_a_merge_moves_lots_with_their_expiry_and_the_identifiers(
    pool: asyncpg.Pool,
) -> None:
    hasher = identity.PhoneHasher(os.urandom(32))
    soon, later, latest = (NOW + timedelta(days=d) for d in (40, 200, 500))
    async with pool.acquire() as conn, conn.transaction():
        partner_id = await new_partner(conn)
        survivor = await shoppers.enroll(conn, partner_id=partner_id, card_number=None)
        absorbed = await shoppers.enroll(conn, partner_id=partner_id, card_number=None)
        await earn(conn, absorbed.shopper_id, partner_id, 100, soon)
        await earn(conn, absorbed.shopper_id, partner_id, 50, latest)
        await earn(conn, survivor.shopper_id, partner_id, 30, later)
        await identity.link_phone(conn, hasher, absorbed.shopper_id, "+49 151 2345 6789")
        # The absorbed shopper was Gold, the survivor a Member: the survivor becomes Gold.
        await conn.execute(
            "INSERT INTO shopper_tiers (shopper_id, tier, since, review_at) "
            "VALUES ($1, 'gold', $2, $2::timestamptz + interval '1 year')",
            absorbed.shopper_id,
            NOW,
        )

        merge = await identity.merge_shoppers(
            conn,
            survivor_id=survivor.shopper_id,
            absorbed_id=absorbed.shopper_id,
            reason="same person",
            operator="ops",
            now=NOW,
        )

        assert merge.points_moved == 150
        assert merge.cards_moved == [absorbed.card_number]
        assert merge.tier == "gold"
        assert await balance(conn, survivor.shopper_id) == 180
        assert await balance(conn, absorbed.shopper_id) == 0
        assert [(points, at) for points, at in await lots(conn, survivor.shopper_id)] == [
            (100, soon),
            (30, later),
            (50, latest),
        ]
        assert await lots(conn, absorbed.shopper_id) == []
        # The absorbed shopper's card and phone now find the survivor.
        assert (await shoppers.resolve_card(conn, absorbed.card_number)).shopper_id == (
            survivor.shopper_id
        )
        assert await identity.resolve_phone(conn, hasher, "+4915123456789") == survivor.shopper_id
        # A session minted for the absorbed shopper acts for the survivor.
        assert await account.live_shopper_id(conn, absorbed.shopper_id) == survivor.shopper_id
        assert (await tiers.tier_of(conn, survivor.shopper_id)).name == "gold"
        with pytest.raises(MergeRefused):
            await identity.merge_shoppers(
                conn,
                survivor_id=survivor.shopper_id,
                absorbed_id=absorbed.shopper_id,
                reason="again",
                operator="ops",
                now=NOW,
            )
        assert await verify(conn) == []


async def test_a_merge_is_refused_while_the_absorbed_shopper_has_open_holds(
    pool: asyncpg.Pool,
) -> None:
    async with pool.acquire() as conn:
        async with conn.transaction():
            partner_id = await new_partner(conn)
            survivor = await shoppers.enroll(conn, partner_id=partner_id, card_number=None)
            absorbed = await shoppers.enroll(conn, partner_id=partner_id, card_number=None)
            await earn(conn, absorbed.shopper_id, partner_id, 100, NOW + timedelta(days=90))
            await ledger.hold(
                conn,
                idempotency_key=f"test:{uuid.uuid4().hex}",
                shopper_id=absorbed.shopper_id,
                partner_id=partner_id,
                points=40,
                expires_at=NOW + timedelta(minutes=15),
            )
        with pytest.raises(ShopperLedgerRefused) as refused:
            async with conn.transaction():
                await identity.merge_shoppers(
                    conn,
                    survivor_id=survivor.shopper_id,
                    absorbed_id=absorbed.shopper_id,
                    reason="same person",
                    operator="ops",
                    now=NOW,
                )
        assert refused.value.code == "holds_open"
        assert (await shoppers.resolve_card(conn, absorbed.card_number)).shopper_id == (
            absorbed.shopper_id
        )


async def test_the_phone_is_stored_only_as_a_keyed_hash(pool: asyncpg.Pool) -> None:
    hasher = identity.PhoneHasher(os.urandom(32))
    other_key = identity.PhoneHasher(os.urandom(32))
    async with pool.acquire() as conn, conn.transaction():
        partner_id = await new_partner(conn)
        first = await shoppers.enroll(conn, partner_id=partner_id, card_number=None)
        second = await shoppers.enroll(conn, partner_id=partner_id, card_number=None)
        await identity.link_phone(conn, hasher, first.shopper_id, "0049 151 2345 6789")
        stored = await conn.fetchval(
            "SELECT digest FROM shopper_identifiers WHERE shopper_id = $1 AND kind = 'phone'",
            first.shopper_id,
        )
        assert b"4915123456789" not in bytes(stored)
        assert bytes(stored) == hasher.digest("+4915123456789")
        assert bytes(stored) != other_key.digest("+4915123456789")
        with pytest.raises(IdentifierTaken):
            await identity.link_phone(conn, hasher, second.shopper_id, "+4915123456789")
        with pytest.raises(PhoneInvalid):
            await identity.link_phone(conn, hasher, second.shopper_id, "12345")


async def test_a_new_qr_token_replaces_the_old_one(pool: asyncpg.Pool) -> None:
    async with pool.acquire() as conn, conn.transaction():
        holder = await shoppers.enroll(conn, partner_id=await new_partner(conn), card_number=None)
        first = await identity.issue_qr_token(conn, holder.shopper_id)
        assert await identity.resolve_qr_token(conn, first) == holder.shopper_id
        second = await identity.issue_qr_token(conn, holder.shopper_id)
        assert await identity.resolve_qr_token(conn, second) == holder.shopper_id
        with pytest.raises(Exception, match="shopper not found"):
            await identity.resolve_qr_token(conn, first)
