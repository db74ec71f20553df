"""Webhook endpoints of partners and the messages delivered to them (issue 16).

`ssrf` checks URLs at registration and at send time; `secrets` makes, seals and opens the
Standard Webhooks signing secrets.
"""
