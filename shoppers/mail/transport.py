"""Where messages go: an SMTP server (`COALITION_SMTP_URL`) or `.eml` files.

- `smtp://[user:pass@]host[:port]` (port 25 by default): plain, upgraded with STARTTLS when the
  server offers it (aiosmtplib's default), then AUTH if a user is given.
- `smtps://[user:pass@]host[:port]` (port 465 by default): TLS from the first byte.
- unset: each message is written to `<data_dir>/mail/<time>-<message id>.eml`, owner-only, so
  `make run` shows what would have been sent.

A send either returns (the server accepted the message for its recipients) or raises
`SendFailed`, telling whether trying again later can help (`transient`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import UTC, datetime
from email.message import EmailMessage
from pathlib import Path
from typing import Protocol
from urllib.parse import unquote, urlsplit

import aiosmtplib

__all__ = ["EmlDirectory", "SendFailed", "Smtp", "Transport", "from_settings"]

SMTP_PORT_DEFAULT = 25
SMTPS_PORT_DEFAULT = 465
SMTP_TIMEOUT_S = 30.0  # per command; a send is bounded by a few of these
MAIL_DIR_NAME = "mail"
ERROR_CHARS_MAX = 500


class SendFailed(Exception):
    def __init__(self, detail: str, *, transient: bool) -> None:
        super().__init__(detail[:ERROR_CHARS_MAX])
        self.transient = transient


class Transport(Protocol):
    async def send(self, message: EmailMessage) -> None: ...


@dataclass(frozen=True)
class Smtp:
    hostname: str
    port: int
    use_tls: bool
    username: str | None = None
    password: str | None = None
    timeout_s: float = SMTP_TIMEOUT_S

    @classmethod
    def from_url(cls, url: str) -> Smtp:
        parts = urlsplit(url)
        assert parts.scheme in {"smtp", "smtps"}, "checked by infra.settings"
        assert parts.hostname, "checked by infra.settings"
        implicit_tls = parts.scheme == "smtps"
        return cls(
            hostname=parts.hostname,
            port=parts.port or (SMTPS_PORT_DEFAULT if implicit_tls else SMTP_PORT_DEFAULT),
            use_tls=implicit_tls,
            username=unquote(parts.username) if parts.username else None,
            password=unquote(parts.password) if parts.password else None,
        )

    async def send(self, message: EmailMessage) -> None:
        try:
            await aiosmtplib.send(
                message,
                hostname=self.hostname,
                port=self.port,
                use_tls=self.use_tls,
                username=self.username,
                password=self.password,
                timeout=self.timeout_s,
            )
        except aiosmtplib.SMTPRecipientsRefused as exc:
            codes = [refusal.code for refusal in exc.recipients]
            raise SendFailed(
                f"recipient refused: {codes}", transient=all(400 <= c < 500 for c in codes)
            ) from None
        except aiosmtplib.SMTPResponseException as exc:
            raise SendFailed(f"SMTP {exc.code}: {exc.message}", transient=exc.code < 500) from None
        except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
            # connection refused or lost, timeouts, TLS trouble: the server may be back later
            raise SendFailed(f"{type(exc).__name__}: {exc}", transient=True) from None

    def __repr__(self) -> str:  # never show the password
        return f"Smtp({self.hostname}:{self.port}, tls={self.use_tls})"


@dataclass(frozen=True)
class EmlDirectory:
    directory: Path

    async def send(self, message: EmailMessage) -> None:
        # Local files, a few KiB: written inline. The id names the file, so a message sent
        # again after a crash overwrites its own file instead of adding a second one.
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
        ident = "".join(c if c.isalnum() or c in "-." else "_" for c in message["Message-ID"])
        target = self.directory / f"{stamp}-{ident.strip('_')}.eml"
        for existing in self.directory.glob(f"*-{ident.strip('_')}.eml"):
            target = existing
        temporary = target.with_suffix(".tmp")
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as out:
            out.write(message.as_bytes())
        temporary.replace(target)


def from_settings(smtp_url: str | None, data_dir: Path) -> Transport:
    if smtp_url:
        return Smtp.from_url(smtp_url)
    return EmlDirectory(data_dir / MAIL_DIR_NAME)
