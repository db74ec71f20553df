"""Set-based admission (`gateway_admit_many`, migration 0095) answers and writes what
`gateway_admit` (0080) called once per call, in order, answers and writes.

Twin databases get the same random groups of calls: one through the per-call function (a
`LATERAL` join, what the gateway ran before), the other through the set-based one. Nonces repeat
within and across groups, keys hit their limits, windows move on, other processes count, some
idempotency keys have stored answers and one is held by another session."""

from __future__ import annotations

import itertools
from typing import Any

import asyncpg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway import queries
from tests.support import program

PER_CALL = """
SELECT a.nonce_fresh, a.requests, a.locked, a.request_sha256, a.response_status,
       a.response_body
FROM unnest($1::text[], $2::text[], $3::integer[], $4::bigint[], $5::bigint[], $6::integer[],
            $7::bigint[], $8::text[]) WITH ORDINALITY
     AS u (key_id, nonce, limit_per_s, window_s, process, local_requests, partner_id,
           idempotency_key, n)
CROSS JOIN LATERAL gateway_admit(u.key_id, u.nonce, u.limit_per_s, u.window_s, u.process,
                                 u.local_requests, u.partner_id, u.idempotency_key) AS a
ORDER BY u.n
"""
NONCES = "SELECT key_id, nonce FROM signature_nonces ORDER BY 1, 2"
# The shard is the backend's pid, which differs between the twins: summed over shards.
SHARDS = (
    "SELECT key_id, window_s, process, sum(requests) FROM rate_limit_shards"
    " GROUP BY 1, 2, 3 ORDER BY 1, 2, 3"
)
HELD_KEY = (1, "held")
STORED_KEY = (2, "stored")
WINDOW_S = 1_800_000_000

calls = st.tuples(
    st.sampled_from(["pk_a", "pk_b", "pk_c", None]),  # key id (None: claim only)
    st.sampled_from([f"nonce-{n}" for n in range(8)]),
    st.sampled_from([2, 4, 100]),  # limit per second
    st.integers(0, 1),  # window step (windows never go back within a group)
    st.integers(1, 4),  # this process's own count
    st.sampled_from([None, *[f"idem-{n}" for n in range(4)], HELD_KEY[1], STORED_KEY[1]]),
)


def arrays(group: list[tuple[Any, ...]], round_number: int) -> list[list[Any]]:
    step = 0
    rows = []
    process = 1 + round_number % 2  # one server process per group, another one next time
    for key_id, nonce, limit, window_step, local, idem in group:
        step = max(step, window_step)  # non-decreasing in group order, as a queue gives
        partner = HELD_KEY[0] if idem == HELD_KEY[1] else STORED_KEY[0]
        rows.append(
            (
                key_id,
                nonce,
                limit,
                WINDOW_S + 2 * round_number + step,
                process,
                local,
                partner,
                idem,
            )
        )
    return [[row[i] for row in rows] for i in range(8)]


ROUNDS = itertools.count()


@pytest.fixture(scope="module")
async def twins(twin_dsns: tuple[str, str]) -> tuple[str, str]:
    """Both twins with the same two partners and STORED_KEY's answer."""
    for dsn in twin_dsns:
        pool = await asyncpg.create_pool(dsn, min_size=1, max_size=1)
        assert pool is not None
        try:
            ids = [await program.partner(pool, f"admit-{n}") for n in range(2)]
            assert ids == [HELD_KEY[0], STORED_KEY[0]], ids
            await pool.execute(
                "INSERT INTO idempotency_records"
                " (partner_id, idempotency_key, request_sha256, response_status, response_body)"
                " VALUES ($1, $2, '\\x01', 201, '\\x7b7d')",
                *STORED_KEY,
            )
        finally:
            await pool.close()
    return twin_dsns


async def hold_claim(dsn: str) -> asyncpg.Connection:
    """Another session holding HELD_KEY's claim until it closes."""
    holder = await asyncpg.connect(dsn)
    await holder.execute("BEGIN")
    await holder.execute(
        "SELECT pg_advisory_xact_lock(hashtextextended($1::text || ':' || $2, 0))",
        str(HELD_KEY[0]),
        HELD_KEY[1],
    )
    return holder


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(group=st.lists(calls, min_size=1, max_size=12))
async def test_set_based_admission_answers_and_writes_as_per_call(
    twins: tuple[str, str], group: list[tuple[Any, ...]]
) -> None:
    args = arrays(group, next(ROUNDS))
    per_call, set_based = [await asyncpg.connect(dsn) for dsn in twins]
    holders: list[asyncpg.Connection] = []
    try:
        holders = [await hold_claim(dsn) for dsn in twins]
        async with per_call.transaction():
            expected = [tuple(r) for r in await per_call.fetch(PER_CALL, *args)]
        async with set_based.transaction():
            actual = [tuple(r) for r in await set_based.fetch(queries.ADMIT_MANY, *args)]
        assert actual == expected, (group, actual, expected)
        assert await set_based.fetch(NONCES) == await per_call.fetch(NONCES)
        assert await set_based.fetch(SHARDS) == await per_call.fetch(SHARDS)
    finally:
        for conn in (per_call, set_based, *holders):
            await conn.close()
