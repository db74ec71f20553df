"""The address and language checks, with their stable error codes."""

from __future__ import annotations

import pytest

from shoppers.mail.contacts import EmailInvalid, LocaleUnsupported, checked_email, checked_locale


@pytest.mark.parametrize(
    "raw",
    [
        "",
        "plain",
        "@example.com",
        "a@",
        "a b@example.com",
        " a@example.com",
        "a@example",
        "a@exa_mple.com",
        "a@-example.com",
        "a..b@example.com",
        ".a@example.com",
        "a@example.c0m",
        "ä@example.com",
        "a@b@example.com",
        "a@example.com\n",
        "x" * 65 + "@example.com",
        "a@" + "b" * 250 + ".com",
    ],
)
def test_unusable_addresses_are_refused(raw: str) -> None:
    with pytest.raises(EmailInvalid) as refused:
        checked_email(raw)
    assert refused.value.code == "email_invalid"


def test_addresses_keep_their_local_part_and_lower_their_domain() -> None:
    assert checked_email("Jane.Doe+loyalty@Shop.Example.COM") == "Jane.Doe+loyalty@shop.example.com"


def test_only_english_and_russian() -> None:
    assert checked_locale("ru") == "ru"
    with pytest.raises(LocaleUnsupported) as refused:
        checked_locale("de")
    assert refused.value.code == "locale_unsupported"
