"""After each scenario: the books are sound and hold exactly the acknowledged operations.

"Exactly" with one honest allowance: when wrk stops at the deadline, up to one request per
connection is still in flight; the server may commit it although nobody reads the answer. So:

- every acknowledged operation (its 201, or 200 for a capture) is in partner_transactions;
- every operation found there is one this run generated (nothing phantom);
- at most `connections` committed operations went unacknowledged (the in-flight ones);
- ledger entries made during the run match the operations one for one, per kind
  (earn <-> purchase, burn <-> redemption, hold <-> hold, capture <-> captured hold);
- ledger.verify finds no broken invariant.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from typing import Any

import asyncpg

from gateway.bench._report import Tally
from gateway.bench._requests import Planned
from ledger.verify import verify

SETTLE_TIMEOUT_S = 15.0
SETTLE_QUIET_S = 1.0
SETTLE_POLL_S = 0.25
PROBLEMS_SHOWN_MAX = 5
ENTRY_KIND_OF = {"purchase": "earn", "redemption": "burn", "hold": "hold", "capture": "capture"}

SCENARIO_ROWS = """
SELECT partner_ref, kind FROM partner_transactions
WHERE partner_id = ANY($1::bigint[]) AND partner_ref LIKE $2 || '-%'
"""
CAPTURED_HOLDS = """
SELECT id::text FROM partner_transactions
WHERE id = ANY($1::uuid[]) AND kind = 'hold' AND status = 'captured'
"""
ENTRIES_SINCE = """
SELECT kind, count(*) AS entries FROM ledger.entry
WHERE entry_id > $1 AND partner_id = ANY($2::bigint[]) GROUP BY kind
"""
LAST_ENTRY = "SELECT coalesce(max(entry_id), 0) FROM ledger.entry"
ACTIVITY = "SELECT count(*) FROM partner_transactions WHERE partner_id = ANY($1::bigint[])"


async def last_entry_id(conn: asyncpg.Connection[Any]) -> int:
    value: int = await conn.fetchval(LAST_ENTRY)
    return value


async def settle(conn: asyncpg.Connection[Any], partner_ids: Sequence[int]) -> None:
    """Wait (bounded) until the server has finished what was in flight when wrk stopped."""
    deadline = time.monotonic() + SETTLE_TIMEOUT_S
    last = await conn.fetchval(ACTIVITY, list(partner_ids))
    quiet_since = time.monotonic()
    while time.monotonic() < deadline:
        await asyncio.sleep(SETTLE_POLL_S)
        now = await conn.fetchval(ACTIVITY, list(partner_ids))
        if now != last:
            last, quiet_since = now, time.monotonic()
        elif time.monotonic() - quiet_since >= SETTLE_QUIET_S:
            return


def _sample(items: set[str]) -> str:
    return ", ".join(sorted(items)[:PROBLEMS_SHOWN_MAX])


async def check_scenario(
    conn: asyncpg.Connection[Any],
    *,
    planned: Sequence[Planned],
    tally: Tally,
    run: str,
    partner_ids: Sequence[int],
    entry_id_before: int,
    connections: int,
) -> tuple[list[str], int]:
    """(problems, operations committed without an acknowledgement)."""
    problems: list[str] = []
    rows = await conn.fetch(SCENARIO_ROWS, list(partner_ids), run)
    in_ledger: dict[str, set[str]] = {}
    for row in rows:
        in_ledger.setdefault(row["kind"], set()).add(row["partner_ref"])
    generated: dict[str, set[str]] = {}
    for item in planned:
        if item.partner_ref is not None and item.kind != "capture":
            generated.setdefault(item.kind, set()).add(item.partner_ref)
    committed_by_kind: dict[str, int] = {}
    unacknowledged = 0
    for kind in ("purchase", "redemption", "hold"):
        found = in_ledger.get(kind, set())
        acked = {str(planned[i].partner_ref) for i in tally.acknowledged.get(kind, [])}
        committed_by_kind[kind] = len(found)
        missing = acked - found
        if missing:
            problems.append(
                f"{len(missing)} acknowledged {kind}(s) missing from partner_transactions: "
                + _sample(missing)
            )
        phantom = found - generated.get(kind, set())
        if phantom:
            problems.append(f"{len(phantom)} {kind}(s) this run never sent: {_sample(phantom)}")
        unacknowledged += len(found - acked)
    capture_holds = [str(item.partner_ref) for item in planned if item.kind == "capture"]
    if capture_holds:
        captured = {r[0] for r in await conn.fetch(CAPTURED_HOLDS, capture_holds)}
        acked = {str(planned[i].partner_ref) for i in tally.acknowledged.get("capture", [])}
        committed_by_kind["capture"] = len(captured)
        missing = acked - captured
        if missing:
            problems.append(
                f"{len(missing)} acknowledged capture(s) not captured: {_sample(missing)}"
            )
        unacknowledged += len(captured - acked)
    if unacknowledged > connections:
        problems.append(
            f"{unacknowledged} operations committed without an acknowledgement; at most "
            f"{connections} (one in flight per connection at the deadline) can be"
        )
    entries = {
        r["kind"]: int(r["entries"])
        for r in await conn.fetch(ENTRIES_SINCE, entry_id_before, list(partner_ids))
    }
    for kind, committed in committed_by_kind.items():
        entry_kind = ENTRY_KIND_OF[kind]
        if entries.get(entry_kind, 0) != committed:
            problems.append(
                f"{entries.get(entry_kind, 0)} ledger '{entry_kind}' entries for {committed} "
                f"committed {kind}(s)"
            )
    for problem in await verify(conn):
        problems.append(f"verify: invariant {problem.invariant} {problem.check}: {problem.detail}")
    return problems, unacknowledged
