"""The in-process SMTP server fixture, shared by the email tests."""

from tests.mail.test_email_e2e import smtp

__all__ = ["smtp"]
