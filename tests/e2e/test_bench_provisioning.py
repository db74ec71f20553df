"""`coalition bench` provisions shoppers as partners do (issue 18): through POST /v1/shoppers.

Against a real server: the bench's enrolment leaves each of its N shoppers with its card,
enrolled by the partner the bench says (shopper i by partner i mod the partner count); it
writes, table by table, exactly the rows a shopper enrolled by the partner SDK's POST
/v1/shoppers leaves; a second run keeps the shoppers the first enrolled; and a bench card
that exists without that enrolment's stored answer (a bulk-inserted shopper) stops the run.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import asyncpg
import httpx
import pytest

from contracts.partners import EnrollRequest
from gateway.bench import _provision
from gateway.bench._requests import PartnerKey, card_number
from gateway.tokens import SigningKey
from tests.support.partner_network import Onboarded, onboard

SHOPPERS = 60
PARTNERS = 3
# Per (key, second) rather than per call: how many rows a call adds depends on the clock.
PER_WINDOW_TABLES = {"public.rate_limit_shards", "public.rate_limit_windows"}
ROWS_OF_ONE_ENROLMENT = {
    "public.shoppers": 1,
    "public.shopper_cards": 1,
    "public.idempotency_records": 1,  # the call's stored answer
    "public.signature_nonces": 1,  # the call's admission
}
SDK_CARD = card_number(9_000)
BENCH_CARD_INDEX = 9_001
BULK_CARD_INDEX = 5_000  # below the cards above: only it can stop the run


@pytest.fixture
async def conn(database_url: str, base_url: str) -> AsyncIterator[asyncpg.Connection]:
    connection = await asyncpg.connect(database_url)  # base_url: the server migrated it
    try:
        yield connection
    finally:
        await connection.close()


@pytest.fixture(scope="module")
async def partners(http: httpx.AsyncClient, signing_key: SigningKey) -> list[PartnerKey]:
    return await _provision.create_partners(http, signing_key, count=PARTNERS, run="t")


async def row_counts(conn: asyncpg.Connection) -> dict[str, int]:
    tables = await conn.fetch("SELECT schemaname, relname FROM pg_stat_user_tables")
    counts: dict[str, int] = {}
    for table in tables:
        name = f"{table['schemaname']}.{table['relname']}"
        if name not in PER_WINDOW_TABLES:
            quoted = f'"{table["schemaname"]}"."{table["relname"]}"'
            counts[name] = await conn.fetchval(f"SELECT count(*) FROM {quoted}")
    return counts


def added(before: dict[str, int], after: dict[str, int]) -> dict[str, int]:
    return {name: n - before.get(name, 0) for name, n in after.items() if n != before.get(name)}


async def test_bench_enrolls_each_shopper_with_its_card_by_its_partner_and_keeps_them(
    base_url: str, conn: asyncpg.Connection, partners: list[PartnerKey]
) -> None:
    shoppers_before = await conn.fetchval("SELECT count(*) FROM shoppers")
    enrolment = await _provision.provision_shoppers(base_url, conn, partners, count=SHOPPERS)
    assert (enrolment.enrolled, enrolment.kept) == (SHOPPERS, 0)
    assert enrolment.shoppers_per_s > 0
    assert await conn.fetchval("SELECT count(*) FROM shoppers") == shoppers_before + SHOPPERS
    rows = await conn.fetch(
        "SELECT c.card_number, c.issued_by, c.status, s.enrolled_by_partner_id, "
        "(SELECT count(*) FROM shopper_cards o WHERE o.shopper_id = s.id) AS cards, "
        "(SELECT r.response_status FROM idempotency_records r "
        " WHERE r.partner_id = s.enrolled_by_partner_id "
        " AND r.idempotency_key = 'bench-enrol-' || (w.n - 1)) AS answered "
        "FROM unnest($1::text[]) WITH ORDINALITY AS w (card_number, n) "
        "JOIN shopper_cards c ON c.card_number = w.card_number "
        "JOIN shoppers s ON s.id = c.shopper_id ORDER BY w.n",
        [card_number(i) for i in range(SHOPPERS)],
    )
    assert [row["card_number"] for row in rows] == [card_number(i) for i in range(SHOPPERS)]
    for index, row in enumerate(rows):
        assert row["enrolled_by_partner_id"] == partners[index % PARTNERS].partner_id
        assert (row["issued_by"], row["status"], row["cards"]) == ("partner", "active", 1)
        assert row["answered"] == 201  # enrolled through the API, not inserted

    # A second run on the same database keeps them and enrolls only the shoppers it adds.
    enrolment = await _provision.provision_shoppers(base_url, conn, partners, count=SHOPPERS + 5)
    assert (enrolment.enrolled, enrolment.kept) == (5, SHOPPERS)
    assert await _provision.enrolled_earlier(conn, SHOPPERS + 5) == set(range(SHOPPERS + 5))


async def test_the_bench_writes_the_rows_the_partner_api_writes(
    http: httpx.AsyncClient,
    base_url: str,
    signing_key: SigningKey,
    conn: asyncpg.Connection,
) -> None:
    shop: Onboarded = await onboard(http, signing_key, "rows-alike")
    before = await row_counts(conn)
    async with shop.client(base_url) as client:
        enrolled = await client.enroll(EnrollRequest(card_number=SDK_CARD))
    assert enrolled.card_number == SDK_CARD
    by_sdk = added(before, await row_counts(conn))
    before = await row_counts(conn)
    key = PartnerKey(shop.partner_id, shop.key_id, shop.secret)
    assert await _provision.enroll(base_url, [key], [BENCH_CARD_INDEX]) == 1
    by_bench = added(before, await row_counts(conn))
    assert by_sdk == by_bench == ROWS_OF_ONE_ENROLMENT
    cards = await conn.fetch(
        "SELECT c.issued_by, c.status, s.enrolled_by_partner_id, s.erased_at, s.merged_into_id "
        "FROM shopper_cards c JOIN shoppers s ON s.id = c.shopper_id "
        "WHERE c.card_number = ANY($1::text[]) ORDER BY c.card_number",
        [SDK_CARD, card_number(BENCH_CARD_INDEX)],
    )
    assert len(cards) == 2
    assert dict(cards[0]) == dict(cards[1])


async def test_a_bench_card_not_enrolled_through_the_api_stops_the_run(
    base_url: str, conn: asyncpg.Connection, partners: list[PartnerKey]
) -> None:
    shopper_id = await conn.fetchval(
        "INSERT INTO shoppers (enrolled_by_partner_id) VALUES ($1) RETURNING id",
        partners[0].partner_id,
    )
    await conn.execute(
        "INSERT INTO shopper_cards (card_number, shopper_id, issued_by) VALUES ($1, $2, 'partner')",
        card_number(BULK_CARD_INDEX),
        shopper_id,
    )
    shoppers_before = await conn.fetchval("SELECT count(*) FROM shoppers")
    with pytest.raises(RuntimeError, match="not enrolled through POST /v1/shoppers"):
        await _provision.provision_shoppers(base_url, conn, partners, count=BULK_CARD_INDEX + 1)
    assert await conn.fetchval("SELECT count(*) FROM shoppers") == shoppers_before
