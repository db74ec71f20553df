"""Email to shoppers and partners' finance contacts (issue 16).

- contacts.py: the shopper's address and language, the partner's finance contact; checks.
- templates/ and render.py: Jinja2 templates, English and Russian, plain text and HTML.
- compose.py: the `EmailMessage` (both parts, Message-ID, Date, List-Unsubscribe one-click).
- transport.py: SMTP (aiosmtplib) from `COALITION_SMTP_URL`, or `.eml` files.
- unsubscribe.py: signed one-click unsubscribe tokens and their effect.
- plan.py: which messages an outbox event makes (recipient, reason, subject, content).
- sender.py: the outbox consumer and the sent-once ledger (`mail.delivery`).
- sign_in.py: `send_sign_in_code`, the one-time code other code sends.
"""
