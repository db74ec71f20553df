"""What verify() reports: one broken invariant (shared by verify.py and its paged checks)."""

from __future__ import annotations

import msgspec

# Problems reported per check at most: enough to act on, bounded when everything is broken.
PROBLEMS_PER_CHECK_MAX = 100


class Problem(msgspec.Struct, frozen=True, kw_only=True):
    """One broken invariant: which (1-7 as in DESIGN.md), what, and where."""

    invariant: int
    check: str
    detail: str
    entry_id: int | None = None
    account: str | None = None
    shopper_id: int | None = None
    block_id: int | None = None
    expected: int | str | None = None
    actual: int | str | None = None
