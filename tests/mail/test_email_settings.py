"""Email settings: the SMTP URL (its password masked), notice distances, the base URL."""

from __future__ import annotations

import pytest

from infra import settings
from shoppers.mail import transport


def test_smtp_url_is_parsed_and_its_password_masked() -> None:
    loaded = settings.load({"COALITION_SMTP_URL": "smtps://mailer:s%40cret@mail.example"})
    smtp = transport.from_settings(loaded.smtp_url, loaded.data_dir)
    assert isinstance(smtp, transport.Smtp)
    assert (smtp.hostname, smtp.port, smtp.use_tls) == ("mail.example", 465, True)
    assert (smtp.username, smtp.password) == ("mailer", "s@cret")
    assert "s%40cret" not in loaded.masked()["smtp_url"]
    assert "cret" not in repr(smtp)
    plain = transport.Smtp.from_url("smtp://127.0.0.1:2525")
    assert (plain.port, plain.use_tls, plain.username) == (2525, False, None)


def test_unset_smtp_writes_eml_files_under_the_data_dir() -> None:
    loaded = settings.load({"COALITION_DATA_DIR": "/tmp/coalition-x"})
    eml = transport.from_settings(loaded.smtp_url, loaded.data_dir)
    assert isinstance(eml, transport.EmlDirectory)
    assert str(eml.directory) == "/tmp/coalition-x/mail"


@pytest.mark.parametrize(
    ("name", "raw"),
    [
        ("COALITION_SMTP_URL", "http://mail.example"),
        ("COALITION_SMTP_URL", "smtp://"),
        ("COALITION_EXPIRY_NOTICE_DAYS", "30,x"),
        ("COALITION_EXPIRY_NOTICE_DAYS", "0"),
        ("COALITION_PUBLIC_BASE_URL", "ftp://x"),
    ],
)
def test_bad_values_name_their_variable(name: str, raw: str) -> None:
    with pytest.raises(settings.ConfigError, match=name):
        settings.load({name: raw})


def test_notice_days_default_and_order() -> None:
    assert settings.load({}).expiry_notice_days == (30, 7)
    assert settings.load({"COALITION_EXPIRY_NOTICE_DAYS": "7,14,14,60"}).expiry_notice_days == (
        60,
        14,
        7,
    )
