"""The one rule for text in requests: no control characters.

Every free-text field of a request contract carries one of these two patterns (identifiers and
codes have stricter patterns of their own). A NUL (U+0000) cannot be stored by PostgreSQL and
the other C0/C1 controls and DEL have no business in a name, a store id or a reason: they are
refused at decoding as 400 `validation_failed`, the same for every field, before any database
sees them. Multi-line prose (reasons, comments) may also hold tab, line feed and carriage return.

The patterns are written with `\\xHH` escapes, valid in both Python and ECMAScript regular
expressions, so the OpenAPI document states the rule to clients. (Python's `$` also matches
before one final line feed: a single-line value may end with one LF.)
"""

from __future__ import annotations

# Anything but C0 controls (U+0000-U+001F), DEL (U+007F) and C1 controls (U+0080-U+009F).
LINE_PATTERN = r"^[^\x00-\x1f\x7f-\x9f]*$"
# The same, with tab, line feed and carriage return allowed.
PROSE_PATTERN = r"^[^\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]*$"
