"""Erasure removes personal data and leaves the ledger intact (`coalition verify` green)."""

from __future__ import annotations

import os
import uuid
from datetime import UTC, date, datetime, timedelta

import asyncpg
import pytest

from contracts.shoppers import ConsentUpdate, NpsAnswer
from ledger import service as ledger
from ledger.verify import verify
from shoppers import account, erasure, identity
from shoppers import service as shoppers
from shoppers.errors import CardBlocked, ShopperErased, ShopperNotFound
from shoppers.mail import contacts

NOW = datetime.now(UTC)


async def test_erasure_removes_personal_data_and_keeps_the_books_sound(
    pool: asyncpg.Pool,
) -> None:
    hasher = identity.PhoneHasher(os.urandom(32))
    async with pool.acquire() as conn, conn.transaction():
        partner_id: int = await conn.fetchval(
            "INSERT INTO partners (slug, name, created_by) VALUES ('erase-p', 'Erase', 't') "
            "RETURNING id"
        )
        holder = await shoppers.enroll(conn, partner_id=partner_id, card_number=None)
        sid = holder.shopper_id
        await ledger.earn(
            conn,
            idempotency_key=f"test:{uuid.uuid4().hex}",
            shopper_id=sid,
            partner_id=partner_id,
            points=120,
            issue_price_micros=10_000,
            expires_at=NOW + timedelta(days=400),
        )
        await ledger.burn(
            conn,
            idempotency_key=f"test:{uuid.uuid4().hex}",
            shopper_id=sid,
            partner_id=partner_id,
            points=20,
            redemption_price_micros=8_000,
        )
        await account.set_birth_date(conn, sid, date(1990, 5, 17))
        await contacts.set_shopper_contact(
            conn, sid, email="jane@doe.example", locale="ru", email_given=True, locale_given=True
        )
        await conn.execute("INSERT INTO mail.unsubscribe (shopper_id) VALUES ($1)", sid)
        await identity.link_phone(conn, hasher, sid, "+33612345678")
        qr = await identity.issue_qr_token(conn, sid)
        await account.update_consent(conn, sid, ConsentUpdate(data_sharing=True, marketing=True))
        await account.answer_nps(conn, sid, NpsAnswer(score=9, comment="my name is Jane Doe"))
        await conn.execute(
            "INSERT INTO shopper_segments (shopper_id, segment) VALUES ($1, 'champions')", sid
        )

        erased = await erasure.erase(conn, sid, now=NOW)

        assert erased.shopper_id == sid
        row = await conn.fetchrow("SELECT birth_date, erased_at FROM shoppers WHERE id = $1", sid)
        assert row is not None
        assert row["birth_date"] is None
        assert row["erased_at"] == erased.erased_at
        assert (
            await conn.fetchval(
                "SELECT count(*) FROM shopper_identifiers WHERE shopper_id = $1", sid
            )
            == 0
        )
        assert (
            await conn.fetchval("SELECT count(*) FROM shopper_consents WHERE shopper_id = $1", sid)
            == 0
        )
        # the email address and language (issue 16) and the unsubscribe record
        assert (
            await conn.fetchval("SELECT count(*) FROM shopper_contacts WHERE shopper_id = $1", sid)
            == 0
        )
        assert (
            await conn.fetchval("SELECT count(*) FROM mail.unsubscribe WHERE shopper_id = $1", sid)
            == 0
        )
        assert (
            await conn.fetchval("SELECT count(*) FROM shopper_segments WHERE shopper_id = $1", sid)
            == 0
        )
        nps = await conn.fetchrow(
            "SELECT score, comment FROM nps_answers WHERE shopper_id = $1", sid
        )
        assert nps is not None
        assert (nps["score"], nps["comment"]) == (9, None)
        # The card number stays for the partners' records, but it works nowhere.
        with pytest.raises(CardBlocked):
            await shoppers.resolve_card(conn, holder.card_number)
        # Identifiers are gone, not merely refused.
        with pytest.raises(ShopperNotFound):
            await identity.resolve_qr_token(conn, qr)
        with pytest.raises(ShopperNotFound):
            await identity.resolve_phone(conn, hasher, "+33612345678")
        with pytest.raises(ShopperErased):
            await account.profile(conn, sid)
        with pytest.raises(ShopperErased):
            await erasure.erase(conn, sid, now=NOW)
        # The ledger is untouched: the remaining points are still there and the books balance.
        summary = await ledger.wallet_summary(conn, shopper_id=sid, now=NOW)
        assert summary.balance == 100
        assert await verify(conn) == []
        assert (
            await conn.fetchval(
                "SELECT count(*) FROM event_outbox WHERE event_type = 'shopper.erased' "
                "AND shopper_id = $1",
                sid,
            )
            == 1
        )
