"""The shopper at a partner's till: enrolment (card, referral, contact) and the card's view."""

from __future__ import annotations

from datetime import UTC, datetime

from contracts.partners import Enrollment, EnrollRequest, ExpiringPoints, ShopperView
from infra.db import Conn
from partners._common import summary
from shoppers import referrals, tiers
from shoppers import service as shoppers
from shoppers.mail import contacts


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
