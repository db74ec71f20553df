"""Erasure: a shopper's personal data removed or pseudonymized, the ledger left intact.

What goes: birth date, phone hash and QR tokens, email address and language (and the record
of email unsubscribes), consent, NPS comments (the scores stay, they carry no personal data),
segments, and every row keyed to the shopper in the aggregated data
(shopper, shopper x partner, category and month aggregates, RFM scores, queued deltas): the
folder drops the shopper's later deltas and the segment refresh skips erased shoppers, so
nothing comes back. The referral code is deleted, so it stops working and names no one, and
referrals forget an erased referrer.

What stays: the shopper id (a pseudonym) and its ledger wallet and lots, which the journal's
invariants and the partners' settlements need; card numbers, because partner transactions and
reconciliation name them, but every card is blocked so none works again; partner transactions
and their basket lines (the partners' records), from which network analytics (retention,
repeat rate, average basket) keep counting the shopper under the bare id, which names no one
once the personal data is gone.
`shoppers.erased_at` marks the shopper; sessions and identifier lookups refuse it from then on.
"""

from __future__ import annotations

from datetime import datetime

from contracts.shoppers import Erasure
from infra import outbox
from infra.db import Conn
from shoppers import account, aggregates, queries, referrals
from shoppers.errors import ShopperErased
from shoppers.mail import contacts

__all__ = ["erase"]


async def erase(conn: Conn, shopper_id: int, *, now: datetime) -> Erasure:
    """Erase the shopper's personal data in the caller's transaction; once only."""
    shopper_id = await account.live_shopper_id(conn, shopper_id)
    erased_at = await conn.fetchval(queries.ERASE_SHOPPER, shopper_id, now)
    if erased_at is None:  # a concurrent erasure committed after live_shopper_id read
        raise ShopperErased()
    await conn.execute(queries.DELETE_IDENTIFIERS, shopper_id)
    await conn.execute(queries.BLOCK_CARDS_OF, shopper_id)
    await conn.execute(queries.DELETE_CONSENT, shopper_id)
    await conn.execute(queries.DELETE_PARTNER_CONSENTS, shopper_id)
    await conn.execute(queries.ERASE_NPS_COMMENTS, shopper_id)
    await conn.execute(queries.DELETE_SEGMENTS, shopper_id)
    await conn.execute(queries.DELETE_TIER_ROW, shopper_id)
    await aggregates.erase_shopper(conn, shopper_id)
    await referrals.forget(conn, shopper_id)
    await contacts.erase_shopper(conn, shopper_id)  # email address, locale, unsubscribes
    await outbox.record(
        conn, "shopper.erased", shopper_id=shopper_id, payload={"shopper_id": shopper_id}
    )
    return Erasure(shopper_id=shopper_id, erased_at=erased_at)
