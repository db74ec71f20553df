"""A membership's money in the ledger: the fee of each period and the refund at cancellation.

The selling partner collects the fee, so its settlement account owes the network the fee
minus its sales commission (`ledger.membership_charge`, migration 0170):

    fee:    partner.settlement +(fee - commission), network:membership_fees -fee,
            network:membership_commission +commission
    refund: the reverse, for the refunded part and the commission given back

Each movement is also a `membership_charges` row with its entry, which `coalition verify`
reconciles with the ledger. Amounts here are in minor units; the ledger takes micros.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from contracts.money import minor_unit_micros
from infra.db import Conn
from ledger import service as ledger
from partners._common import ledger_call
from partners.membership import queries, terms

ChargeKind = Literal["sale", "renewal"]


@dataclass(frozen=True)
class Charge:
    fee_minor: int
    commission_minor: int
    commission_bps: int
    ledger_entry_id: int


def charge_key(membership_id: int, period_no: int) -> str:
    return f"membership:{membership_id}:charge:{period_no}"


def refund_key(membership_id: int, period_no: int) -> str:
    return f"membership:{membership_id}:refund:{period_no}"


async def charge(
    conn: Conn,
    *,
    membership_id: int,
    partner_id: int,
    period_no: int,
    kind: ChargeKind,
    fee_minor: int,
    commission_bps: int,
    currency: str,
) -> Charge:
    """The period's fee, collected by `partner_id`."""
    unit = minor_unit_micros(currency)
    commission = terms.commission_minor(fee_minor, commission_bps)
    with ledger_call("membership_charge"):
        entry = await ledger.membership_charge(
            conn,
            idempotency_key=charge_key(membership_id, period_no),
            kind="membership_fee",
            partner_id=partner_id,
            fee_micros=fee_minor * unit,
            commission_micros=commission * unit,
            metadata={"membership_id": membership_id, "period_no": period_no, "kind": kind},
        )
    await conn.execute(
        queries.INSERT_CHARGE,
        membership_id,
        period_no,
        kind,
        partner_id,
        fee_minor,
        commission,
        commission_bps,
        entry.entry_id,
    )
    return Charge(fee_minor, commission, commission_bps, entry.entry_id)


async def refund(
    conn: Conn,
    *,
    membership_id: int,
    partner_id: int,
    period_no: int,
    paid: Charge,
    refund_minor: int,
    currency: str,
) -> int:
    """Give back `refund_minor` of the period's fee (the seller pays it out at its till and
    returns the commission on it); returns the commission given back."""
    if refund_minor == 0:
        return 0
    unit = minor_unit_micros(currency)
    returned = terms.commission_returned_minor(paid.fee_minor, refund_minor, paid.commission_bps)
    with ledger_call("membership_charge"):
        entry = await ledger.membership_charge(
            conn,
            idempotency_key=refund_key(membership_id, period_no),
            kind="membership_refund",
            partner_id=partner_id,
            fee_micros=refund_minor * unit,
            commission_micros=returned * unit,
            corrects_entry_id=paid.ledger_entry_id,
            metadata={"membership_id": membership_id, "period_no": period_no},
        )
    await conn.execute(
        queries.INSERT_CHARGE,
        membership_id,
        period_no,
        "refund",
        partner_id,
        refund_minor,
        returned,
        paid.commission_bps,
        entry.entry_id,
    )
    return returned


async def period_charge(conn: Conn, membership_id: int, period_no: int) -> Charge:
    row = await conn.fetchrow(queries.PERIOD_CHARGE, membership_id, period_no)
    assert row is not None, "every period of a membership was charged"
    return Charge(
        row["fee_minor"], row["commission_minor"], row["commission_bps"], row["ledger_entry_id"]
    )
