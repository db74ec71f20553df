"""Partner insights over HTTP: k-anonymity on every endpoint, consent, and isolation."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import asyncpg
import httpx
import pytest

from contracts.analytics import K_ANONYMITY_MIN
from gateway.tokens import SigningKey
from shoppers import segments
from tests.support.generated_network import fold_all, insert_purchases, insert_shoppers
from tests.support.partner_network import Onboarded, onboard, signed

NOW = datetime.now(UTC)


@dataclass(frozen=True)
class Planted:
    shop_a: Onboarded
    shop_b: Onboarded
    b_transaction_ids: list[str]
    shopper_ids: list[int]


async def _get(http: httpx.AsyncClient, base_url: str, who: Onboarded, path: str) -> httpx.Response:
    return await http.get(path, headers=signed(who, "GET", f"{base_url}{path}"))


@pytest.fixture(scope="module")
async def planted(http: httpx.AsyncClient, signing_key: SigningKey, pool: asyncpg.Pool) -> Planted:
    shop_a = await onboard(http, signing_key, "insights-a")
    shop_b = await onboard(http, signing_key, "insights-b")
    a, b = shop_a.partner_id, shop_b.partner_id
    async with pool.acquire() as conn, conn.transaction():

        async def group(count: int, *, consent: bool = True) -> list[int]:
            return await insert_shoppers(conn, count, enrolled_by=a, now=NOW, data_sharing=consent)

        async def buy(ids: list[int], partner: int, category: str, days: int, tag: str) -> None:
            await insert_purchases(
                conn, ids, partners=[partner], categories=[category], purchases=(1, 1),
                days_ago=(days, days), amount_minor=(1_000, 1_000), now=NOW, tag=tag,
            )  # fmt: skip

        ten, nine = await group(10), await group(9)
        music_yes, music_no = await group(6), await group(5, consent=False)
        b_only = await group(1)
        await buy(ten + music_yes + music_no, a, "grocery", 0, "a1")
        await buy(nine, a, "grocery", 35, "a2")  # a cohort of 9, last month or earlier
        await buy(ten, b, "books", 1, "b1")
        await buy(nine, b, "toys", 1, "b2")
        await buy(music_yes + music_no, b, "music", 1, "b3")
        await buy(b_only, b, "books", 1, "b4")
        # birthdays: 9 of A's shoppers, and those 9 plus one more at B
        birthday = nine + b_only
        await conn.execute(
            "UPDATE shoppers SET birth_date = make_date(1990, $2, 1) WHERE id = ANY($1)",
            birthday, NOW.month,
        )  # fmt: skip
        await conn.execute(
            "UPDATE shoppers SET birth_date = make_date(1990, $2, 1) WHERE id <> ALL($1)",
            birthday, NOW.month % 12 + 1,
        )  # fmt: skip
        b_ids = await conn.fetch(
            "SELECT id::text FROM partner_transactions WHERE partner_id = $1", b
        )
    await fold_all(pool)
    await segments.refresh_segments(pool, now=NOW, interval_s=0)
    return Planted(
        shop_a, shop_b, [r["id"] for r in b_ids], ten + nine + music_yes + music_no + b_only
    )


async def test_cross_partner_categories_release_ten_never_nine_and_count_only_consent(
    http: httpx.AsyncClient, base_url: str, planted: Planted
) -> None:
    answer = await _get(http, base_url, planted.shop_a, "/v1/insights/cross-partner")
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["k_min"] == K_ANONYMITY_MIN == 10
    assert body["consenting_shoppers"] == 10 + 9 + 6
    assert body["active_elsewhere"] == 25
    shown = {c["category"]: c["shoppers"] for c in body["categories"]}
    assert shown == {"books": 10}  # toys (9) and music (6 consenting of 11) are withheld
    assert body["groups_suppressed"] == 2
    assert body["categories"][0]["share_bps"] == 4_000


async def test_segment_sizes_never_reveal_a_group_of_nine(
    http: httpx.AsyncClient, base_url: str, planted: Planted
) -> None:
    at_a = (await _get(http, base_url, planted.shop_a, "/v1/insights/segments")).json()
    at_b = (await _get(http, base_url, planted.shop_b, "/v1/insights/segments")).json()
    assert all(s["shoppers"] >= K_ANONYMITY_MIN for s in at_a["segments"] + at_b["segments"])
    assert "birthday_month" not in {s["segment"] for s in at_a["segments"]}  # 9 at A
    assert {"segment": "birthday_month", "shoppers": 10} in at_b["segments"]  # 10 at B


async def test_cohorts_of_nine_are_suppressed(
    http: httpx.AsyncClient, base_url: str, planted: Planted
) -> None:
    body = (await _get(http, base_url, planted.shop_a, "/v1/insights/retention-cohorts")).json()
    by_size = {c["suppressed"]: c for c in body["cohorts"]}
    assert by_size[True]["shoppers"] is None
    assert set(by_size[True]["retained"]) <= {None}
    assert by_size[False]["shoppers"] == 10 + 6 + 5
    for cohort in body["cohorts"]:
        assert all(n is None or n >= K_ANONYMITY_MIN for n in cohort["retained"])


async def test_partner_a_never_sees_b_transactions_or_shoppers_anywhere(
    http: httpx.AsyncClient, base_url: str, planted: Planted
) -> None:
    for transaction_id in planted.b_transaction_ids[:5]:
        answer = await _get(http, base_url, planted.shop_a, f"/v1/transactions/{transaction_id}")
        assert answer.status_code == 404
    listed = (await _get(http, base_url, planted.shop_a, "/v1/transactions?limit=200")).json()
    assert not {t["transaction_id"] for t in listed["items"]} & set(planted.b_transaction_ids)
    texts = [
        (await _get(http, base_url, planted.shop_a, path)).text
        for path in (
            "/v1/insights/segments",
            "/v1/insights/retention-cohorts",
            "/v1/insights/cross-partner",
            "/v1/shoppers/79" + str(planted.shopper_ids[0]).zfill(14) + "/profile",
        )
    ]
    for text in texts:
        assert not any(t in text for t in planted.b_transaction_ids)
        assert "insights-b" not in text
        assert f'"partner_id":{planted.shop_b.partner_id}' not in text.replace(" ", "")


async def test_insights_need_a_signature(http: httpx.AsyncClient, planted: Planted) -> None:
    assert (await http.get("/v1/insights/segments")).status_code == 401
