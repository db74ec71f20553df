"""Segments over a generated network: planted behaviour lands in the planted segments."""

from __future__ import annotations

from datetime import UTC, datetime

import asyncpg
import pytest

from shoppers import segments
from tests.support.generated_network import GeneratedNetwork, generate

NOW = datetime.now(UTC).replace(microsecond=0)


@pytest.fixture(scope="module")
async def network(pool: asyncpg.Pool) -> GeneratedNetwork:
    generated = await generate(pool, now=NOW)
    assert await segments.refresh_segments(pool, now=NOW, interval_s=0) > 0
    return generated


async def _members(pool: asyncpg.Pool, segment: str) -> set[int]:
    rows = await pool.fetch("SELECT shopper_id FROM shopper_segments WHERE segment = $1", segment)
    return {row["shopper_id"] for row in rows}


async def test_planted_champions_are_champions(
    pool: asyncpg.Pool, network: GeneratedNetwork
) -> None:
    assert set(network.champions) <= await _members(pool, "champions")


async def test_churned_shoppers_are_reactivation_audiences_and_lost(
    pool: asyncpg.Pool, network: GeneratedNetwork
) -> None:
    churned = set(network.churned)
    assert churned <= await _members(pool, "churn_90")
    assert churned <= await _members(pool, "churn_180")
    assert churned <= await _members(pool, "lost")
    assert set(network.lapsed_loyal) <= await _members(pool, "at_risk")
    assert not (set(network.champions) & await _members(pool, "churn_90"))


async def test_newcomers_are_new(pool: asyncpg.Pool, network: GeneratedNetwork) -> None:
    assert set(network.newcomers) <= await _members(pool, "new")


async def test_exactly_the_planted_birthdays_are_this_months_audience(
    pool: asyncpg.Pool, network: GeneratedNetwork
) -> None:
    assert await _members(pool, "birthday_month") == set(network.birthday)


async def test_every_purchasing_consenting_shopper_has_exactly_one_named_segment(
    pool: asyncpg.Pool, network: GeneratedNetwork
) -> None:
    rows = await pool.fetch(
        "SELECT shopper_id, count(*) AS n FROM shopper_segments WHERE segment = ANY($1)"
        " GROUP BY shopper_id",
        list(segments.NAMED_SEGMENTS),
    )
    assert all(row["n"] == 1 for row in rows)
    purchasing = len(network.ordinary) + len(network.champions) + len(network.churned)
    purchasing += len(network.lapsed_loyal) + len(network.newcomers)
    assert len(rows) == purchasing


async def test_affinity_names_the_dominant_category(
    pool: asyncpg.Pool, network: GeneratedNetwork
) -> None:
    shopper = network.newcomers[0]  # one purchase, one line: all spend in one category
    async with pool.acquire() as conn:
        held = await segments.segments_of(conn, shopper)
    assert any(s.startswith("affinity:") and s[9:] in network.categories for s in held), held


async def test_without_consent_no_cross_partner_segment_is_written(
    pool: asyncpg.Pool, network: GeneratedNetwork
) -> None:
    private = set(network.champions_private)
    rows = await pool.fetch(
        "SELECT DISTINCT segment FROM shopper_segments WHERE shopper_id = ANY($1)", list(private)
    )
    assert [row["segment"] for row in rows] in ([], ["birthday_month"])
    scores = await pool.fetch(
        "SELECT rfm_segment FROM shopper_scores WHERE shopper_id = ANY($1)", list(private)
    )
    assert {row["rfm_segment"] for row in scores} == {"champions"}  # the operator's view


async def test_a_withdrawal_drops_out_at_the_next_refresh(
    pool: asyncpg.Pool, network: GeneratedNetwork
) -> None:
    leaving = network.champions[0]
    await pool.execute(
        "UPDATE shopper_consents SET data_sharing = false WHERE shopper_id = $1", leaving
    )
    assert leaving in await _members(pool, "champions")  # until the refresh
    await segments.refresh_segments(pool, now=NOW, interval_s=0)
    assert leaving not in await _members(pool, "champions")
    assert set(network.champions[1:]) <= await _members(pool, "champions")


async def test_refresh_runs_once_per_interval(
    pool: asyncpg.Pool, network: GeneratedNetwork
) -> None:
    await segments.refresh_segments(pool, now=NOW, interval_s=0)
    assert await segments.refresh_segments(pool, now=NOW, interval_s=3_600) == 0
