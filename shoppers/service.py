"""Shopper enrollment and card resolution: the shoppers package's door."""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from infra.db import Conn
from shoppers import luhn, queries
from shoppers.errors import CardBlocked, CardNumberInvalid, CardNumberTaken, CardUnknown

__all__ = ["CardHolder", "enroll", "holder_of", "new_card_number", "resolve_card"]

# Network-issued cards: a fixed prefix, random digits, one Luhn check digit (16 digits).
NETWORK_CARD_PREFIX = "7"
NETWORK_CARD_DIGITS = 16
CARD_ISSUE_ATTEMPTS_MAX = 8
CARD_ACTIVE = "active"


@dataclass(frozen=True)
class CardHolder:
    shopper_id: int
    card_number: str


def new_card_number() -> str:
    random_digits = NETWORK_CARD_DIGITS - len(NETWORK_CARD_PREFIX) - 1
    payload = NETWORK_CARD_PREFIX + "".join(
        str(secrets.randbelow(10)) for _ in range(random_digits)
    )
    return payload + luhn.check_digit(payload)


async def enroll(conn: Conn, *, partner_id: int, card_number: str | None) -> CardHolder:
    """A new shopper with the given card (checked) or a network-issued one.

    Runs in the caller's transaction: a taken card number raises and leaves nothing behind.
    """
    if card_number is not None and not luhn.is_valid(card_number):
        raise CardNumberInvalid()
    shopper_id: int = await conn.fetchval(queries.INSERT_SHOPPER, partner_id)
    if card_number is not None:
        if await conn.fetchval(queries.INSERT_CARD, card_number, shopper_id, "partner") is None:
            raise CardNumberTaken()
        return CardHolder(shopper_id, card_number)
    for _ in range(CARD_ISSUE_ATTEMPTS_MAX):
        candidate = new_card_number()
        if await conn.fetchval(queries.INSERT_CARD, candidate, shopper_id, "network"):
            return CardHolder(shopper_id, candidate)
    raise AssertionError("could not draw a free card number; the number space is exhausted")


async def resolve_card(conn: Conn, card_number: str) -> CardHolder:
    """The holder of an active card; every partner operation resolves its card here, so a
    blocked or replaced card (or one of an erased shopper) is refused everywhere at once."""
    row = await conn.fetchrow(queries.SHOPPER_BY_CARD, card_number)
    if row is None:
        return holder_of(card_number, None, None)
    return holder_of(card_number, row["shopper_id"], row["status"])


def holder_of(card_number: str, shopper_id: int | None, status: str | None) -> CardHolder:
    """The holder of an active card from its row's columns (NULL: no such card): the one rule,
    used by `resolve_card` and by reads that fetch the card along with other things."""
    if shopper_id is None:
        raise CardUnknown()
    assert status is not None, "a card's status is NOT NULL"
    if status != CARD_ACTIVE:
        raise CardBlocked(status)
    return CardHolder(int(shopper_id), card_number)
