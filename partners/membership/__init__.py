"""Paid membership ("Plus", issue 19): operator plans, sales by partners, the benefit, renewal
and cancellation. The door is `service` (routes) and `renewal` (workers); docs/membership.md."""
