"""Card numbers carry a Luhn check digit."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from shoppers import luhn
from shoppers.service import NETWORK_CARD_DIGITS, new_card_number


def test_known_numbers() -> None:
    assert luhn.is_valid("4111111111111111")
    assert luhn.is_valid("79927398713")
    assert not luhn.is_valid("79927398710")
    assert not luhn.is_valid("4111 1111 1111 1111")
    assert luhn.check_digit("7992739871") == "3"


@given(st.text(alphabet="0123456789", min_size=1, max_size=30))
def test_the_check_digit_makes_any_payload_valid(payload: str) -> None:
    assert luhn.is_valid(payload + luhn.check_digit(payload))


@given(st.text(alphabet="0123456789", min_size=11, max_size=18), st.integers(0, 9))
def test_a_single_changed_digit_is_caught(payload: str, position_seed: int) -> None:
    number = payload + luhn.check_digit(payload)
    position = position_seed % len(number)
    changed = str((int(number[position]) + 1) % 10)
    assert not luhn.is_valid(number[:position] + changed + number[position + 1 :])


def test_network_cards_are_valid_and_sixteen_digits() -> None:
    for _ in range(100):
        number = new_card_number()
        assert len(number) == NETWORK_CARD_DIGITS
        assert luhn.is_valid(number)
