"""Luhn (mod 10) check digits for card numbers."""

from __future__ import annotations


def check_digit(payload: str) -> str:
    """The digit that makes `payload + digit` pass the Luhn check."""
    assert payload.isdigit(), payload
    total = 0
    # Double every second digit counting from the right of the full number, i.e. starting
    # with the payload's last digit.
    for position, char in enumerate(reversed(payload)):
        digit = int(char)
        if position % 2 == 0:
            digit *= 2
            if digit > 9:
                digit -= 9
        total += digit
    return str((10 - total % 10) % 10)


def is_valid(number: str) -> bool:
    return len(number) >= 2 and number.isdigit() and check_digit(number[:-1]) == number[-1]
