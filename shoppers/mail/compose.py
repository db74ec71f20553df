"""One message as `email.message.EmailMessage`: plain text and HTML alternatives, and the
headers mail clients and receiving servers look for.

- `Message-ID` is the delivery's own (kept in `mail.delivery`), so a message sent again after
  a crash carries the same id and receivers can recognise the duplicate.
- `List-Unsubscribe` with an https (or, locally, http) URL and `List-Unsubscribe-Post:
  List-Unsubscribe=One-Click` (RFC 8058) on every message a shopper can opt out of; not on
  transactional ones (sign-in codes, statements to finance contacts).
- `Auto-Submitted: auto-generated` (RFC 3834) so auto-responders stay quiet.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid, parseaddr

from shoppers.mail.render import Rendered

__all__ = ["Envelope", "compose", "new_message_id"]

ONE_CLICK = "List-Unsubscribe=One-Click"


@dataclass(frozen=True)
class Envelope:
    sender: str  # the From header, e.g. "Coalition <no-reply@coalition.example>"
    to: str
    locale: str
    message_id: str
    date: datetime
    unsubscribe_url: str | None  # None: transactional, no List-Unsubscribe


def new_message_id(sender: str) -> str:
    """A fresh `<...@domain>` id in the sender's domain."""
    _, address = parseaddr(sender)
    domain = address.rpartition("@")[2] or "coalition.example"
    return make_msgid(idstring="coalition", domain=domain)


def compose(envelope: Envelope, rendered: Rendered) -> EmailMessage:
    assert envelope.date.tzinfo is not None, "a Date header needs an aware time"
    message = EmailMessage()
    message["From"] = envelope.sender
    message["To"] = Address(addr_spec=envelope.to)
    message["Subject"] = rendered.subject
    message["Date"] = format_datetime(envelope.date)
    message["Message-ID"] = envelope.message_id
    message["Auto-Submitted"] = "auto-generated"
    if envelope.unsubscribe_url is not None:
        assert envelope.unsubscribe_url.startswith(("https://", "http://")), "RFC 8058: http(s)"
        message["List-Unsubscribe"] = f"<{envelope.unsubscribe_url}>"
        message["List-Unsubscribe-Post"] = ONE_CLICK
    message.set_content(rendered.text)
    message.add_alternative(rendered.html, subtype="html")
    # after the parts: set_content drops every Content-* header set before it
    message["Content-Language"] = envelope.locale
    return message
