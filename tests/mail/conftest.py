"""Fixtures of the email tests: the in-process SMTP server, and the e2e server fixtures."""

from tests.e2e.conftest import base_url, data_dir, http, signing_key
from tests.mail.test_email_e2e import smtp

__all__ = ["base_url", "data_dir", "http", "signing_key", "smtp"]
