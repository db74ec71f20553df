"""Ledger idempotency keys derived from partner references never collide."""

from __future__ import annotations

from typing import get_args

from hypothesis import given
from hypothesis import strategies as st

from partners._common import LedgerKeyPart, ledger_key

# What contracts.partners.PartnerRef admits: 1..64 printable ASCII characters, ':' included.
partner_refs = st.text(
    alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=1, max_size=64
)
parts = st.sampled_from(get_args(LedgerKeyPart))


@given(
    a=st.tuples(st.integers(1, 5), parts, partner_refs),
    b=st.tuples(st.integers(1, 5), parts, partner_refs),
)
def test_distinct_partner_part_and_reference_give_distinct_keys(
    a: tuple[int, LedgerKeyPart, str], b: tuple[int, LedgerKeyPart, str]
) -> None:
    if a != b:
        assert ledger_key(a[0], a[2], part=a[1]) != ledger_key(b[0], b[2], part=b[1])


def test_a_reference_that_mimics_another_part_stays_in_its_own_part() -> None:
    purchase_network_entry = ledger_key(7, "sale-1", part="network")
    mimic = ledger_key(7, "network:sale-1")
    assert purchase_network_entry != mimic
