"""Challenges over HTTP on real PostgreSQL: an operator challenge "shop at 3 different partners"
completed across three partners awards once even when the third purchase is sent twice in
parallel, or two different third purchases race (with two workers folding side by side); a
refund that takes progress below the goal claws the award back (balance, budget and ledger
exact); partner challenges are tenant-isolated; the leaderboard shows ranks, never identities.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import httpx
import pytest

from contracts import events
from contracts.partners import PurchaseRequest, RedemptionRequest, RefundRequest
from gateway.tokens import Role, SigningKey
from ledger import service as ledger
from ledger.verify import verify
from tests.support.challenges import drain, retire_all
from tests.support.partner_network import Onboarded, admin_headers, onboard, signed

REWARD = 500
MARKETING = ledger.network_account("marketing")


@pytest.fixture(autouse=True)
async def one_challenge_in_play_at_a_time(pool: asyncpg.Pool) -> AsyncIterator[None]:
    await retire_all(pool)
    yield
    await retire_all(pool)


@pytest.fixture(scope="module")
async def shops(http: httpx.AsyncClient, signing_key: SigningKey) -> list[Onboarded]:
    return [await onboard(http, signing_key, f"chal-{n}") for n in "abcd"]


def window() -> dict[str, str]:
    now = datetime.now(UTC)
    return {
        "starts_at": (now - timedelta(minutes=1)).isoformat(),
        "ends_at": (now + timedelta(days=30)).isoformat(),
    }


async def network_challenge(
    http: httpx.AsyncClient, signing_key: SigningKey, **fields: Any
) -> dict[str, Any]:
    body = {
        "name": "Shop at 3 different partners",
        "kind": "distinct_partners",
        "goal": 3,
        "reward_points": REWARD,
        "budget_points": 10 * REWARD,
        **window(),
        **fields,
    }
    created = await http.post(
        "/v1/operator/challenges", json=body, headers=admin_headers(signing_key)
    )
    assert created.status_code == 201, created.text
    result: dict[str, Any] = created.json()
    return result


async def send(
    http: httpx.AsyncClient, base_url: str, who: Onboarded, method: str, path: str, body: Any = None
) -> httpx.Response:
    raw = b"" if body is None else json.dumps(body).encode()
    key = uuid.uuid4().hex if method in ("POST", "PUT") else None
    headers = signed(who, method, f"{base_url}{path}", raw, idempotency_key=key)
    return await http.request(method, path, content=raw, headers=headers)


async def shopper_bearer(
    http: httpx.AsyncClient, base_url: str, partner: Onboarded, card: str
) -> dict[str, str]:
    minted = await send(
        http, base_url, partner, "POST", "/v1/shopper-tokens", {"card_number": card}
    )
    assert minted.status_code == 201, minted.text
    return {"Authorization": f"Bearer {minted.json()['access_token']}"}


def purchase(card: str, amount_minor: int = 1_000, ref: str | None = None) -> PurchaseRequest:
    return PurchaseRequest(
        partner_ref=ref or f"p-{uuid.uuid4().hex[:20]}",
        card_number=card,
        amount_minor=amount_minor,
        currency="EUR",
    )


async def award_rows(pool: asyncpg.Pool, challenge_id: int, card: str) -> list[asyncpg.Record]:
    return await pool.fetch(
        "SELECT a.state, a.grants FROM challenge_awards a "
        "JOIN shopper_cards s ON s.shopper_id = a.shopper_id "
        "WHERE a.challenge_id = $1 AND s.card_number = $2",
        challenge_id,
        card,
    )


async def used_budget(pool: asyncpg.Pool, challenge_id: int) -> int:
    used: int = await pool.fetchval(
        "SELECT awarded_points FROM challenges WHERE id = $1", challenge_id
    )
    return used


async def assert_verified(pool: asyncpg.Pool) -> None:
    async with pool.acquire() as conn:
        assert await verify(conn) == []


async def test_three_partners_award_once_with_the_third_purchase_sent_twice(
    http: httpx.AsyncClient,
    base_url: str,
    signing_key: SigningKey,
    pool: asyncpg.Pool,
    shops: list[Onboarded],
) -> None:
    a, b, c, _ = shops
    challenge = await network_challenge(http, signing_key)
    async with a.client(base_url) as at_a, b.client(base_url) as at_b, c.client(base_url) as at_c:
        card = (await at_a.enroll()).card_number
        await at_a.purchase(purchase(card))  # 10 points each
        await at_b.purchase(purchase(card))
        await drain(pool)
        me = await shopper_bearer(http, base_url, a, card)
        mine = (await http.get("/v1/me/challenges", headers=me)).json()
        progress = {x["challenge_id"]: x["progress"] for x in mine["active"]}
        assert progress[challenge["id"]] == 2
        assert mine["badges"] == []

        async with pool.acquire() as conn:
            marketing_before = await ledger.balance(conn, MARKETING)
        third = purchase(card, ref="third-" + uuid.uuid4().hex[:12])
        key = uuid.uuid4().hex
        first, again = await asyncio.gather(
            at_c.purchase(third, idempotency_key=key), at_c.purchase(third, idempotency_key=key)
        )
        assert first.transaction_id == again.transaction_id
        await drain(pool, workers=2)
        await drain(pool, workers=2)  # a second pass over nothing changes nothing

        assert [
            (r["state"], r["grants"]) for r in await award_rows(pool, challenge["id"], card)
        ] == [("active", 1)]
        assert (await at_a.shopper(card)).balance == 30 + REWARD
        assert await used_budget(pool, challenge["id"]) == REWARD
        async with pool.acquire() as conn:
            assert await ledger.balance(conn, MARKETING) == marketing_before + REWARD * 10_000
        mine = (await http.get("/v1/me/challenges", headers=me)).json()
        assert [x["challenge_id"] for x in mine["completed"]] == [challenge["id"]]
        assert [(x["challenge_id"], x["state"]) for x in mine["badges"]] == [
            (challenge["id"], "active")
        ]
        profile = (await http.get("/v1/me", headers=me)).json()
        assert [(x["challenge_id"], x["state"]) for x in profile["badges"]] == [
            (challenge["id"], "active")
        ]
        await assert_verified(pool)

        # the shopper spends most of it; the refund of the third purchase claws it all back
        await at_a.redeem(
            RedemptionRequest(
                partner_ref=f"r-{uuid.uuid4().hex[:20]}", card_number=card, points=400
            )
        )
        await at_c.refund(
            RefundRequest(
                partner_ref=f"rf-{uuid.uuid4().hex[:20]}", original_partner_ref=third.partner_ref
            )
        )
        await drain(pool)
        # 530 earned - 400 spent - 10 refunded - 500 clawed back: 380 points of debt
        assert (await at_a.shopper(card)).balance == -380  # a wallet in debt shows -debt
        shopper_id = await pool.fetchval(
            "SELECT shopper_id FROM shopper_cards WHERE card_number = $1", card
        )
        async with pool.acquire() as conn:
            assert (
                await ledger.wallet_summary(conn, shopper_id=shopper_id, now=datetime.now(UTC))
            ).debt_points == 380
        assert await used_budget(pool, challenge["id"]) == 0
        assert [
            (r["state"], r["grants"]) for r in await award_rows(pool, challenge["id"], card)
        ] == [("revoked", 1)]
        async with pool.acquire() as conn:
            assert await ledger.balance(conn, MARKETING) == marketing_before
        mine = (await http.get("/v1/me/challenges", headers=me)).json()
        assert [(x["challenge_id"], x["state"]) for x in mine["badges"]] == [
            (challenge["id"], "revoked")
        ]
        profile = (await http.get("/v1/me", headers=me)).json()
        assert [(x["challenge_id"], x["state"]) for x in profile["badges"]] == [
            (challenge["id"], "revoked")
        ]
        await assert_verified(pool)


async def test_two_different_third_purchases_race_and_award_once(
    http: httpx.AsyncClient,
    base_url: str,
    signing_key: SigningKey,
    pool: asyncpg.Pool,
    shops: list[Onboarded],
) -> None:
    a, b, c, d = shops
    challenge = await network_challenge(http, signing_key)
    async with (
        a.client(base_url) as at_a,
        b.client(base_url) as at_b,
        c.client(base_url) as at_c,
        d.client(base_url) as at_d,
    ):
        card = (await at_a.enroll()).card_number
        await at_a.purchase(purchase(card))
        await at_b.purchase(purchase(card))
        at_c_buy, at_d_buy = purchase(card), purchase(card)
        await asyncio.gather(at_c.purchase(at_c_buy), at_d.purchase(at_d_buy))
        await drain(pool, workers=2)
        assert [
            (r["state"], r["grants"]) for r in await award_rows(pool, challenge["id"], card)
        ] == [("active", 1)]
        assert (await at_a.shopper(card)).balance == 40 + REWARD
        assert await used_budget(pool, challenge["id"]) == REWARD

        # one refund leaves 3 partners: the award stays; the second takes it below the goal
        await at_c.refund(
            RefundRequest(
                partner_ref=f"rf-{uuid.uuid4().hex[:20]}", original_partner_ref=at_c_buy.partner_ref
            )
        )
        await drain(pool)
        assert (await at_a.shopper(card)).balance == 30 + REWARD
        await at_d.refund(
            RefundRequest(
                partner_ref=f"rf-{uuid.uuid4().hex[:20]}", original_partner_ref=at_d_buy.partner_ref
            )
        )
        await drain(pool)
        assert (await at_a.shopper(card)).balance == 20
        assert await used_budget(pool, challenge["id"]) == 0
        await assert_verified(pool)


async def test_the_budget_funds_no_more_rewards_than_it_holds(
    http: httpx.AsyncClient,
    base_url: str,
    signing_key: SigningKey,
    pool: asyncpg.Pool,
    shops: list[Onboarded],
) -> None:
    a, b, _, _ = shops
    challenge = await network_challenge(
        http, signing_key, goal=2, budget_points=REWARD, name="Two partners, one reward"
    )
    async with a.client(base_url) as at_a, b.client(base_url) as at_b:
        cards = [(await at_a.enroll()).card_number for _ in range(3)]
        for card in cards:
            await at_a.purchase(purchase(card))
        await asyncio.gather(*(at_b.purchase(purchase(card)) for card in cards))
        await drain(pool, workers=2)
    awards = await pool.fetchval(
        "SELECT count(*) FROM challenge_awards WHERE challenge_id = $1 AND state = 'active'",
        challenge["id"],
    )
    assert awards == 1
    assert await used_budget(pool, challenge["id"]) == REWARD

    # the winner's purchase at b is refunded: the reward is clawed back, and the budget it
    # returns goes to a shopper who had reached the goal while it was spent
    winner = await pool.fetchval(
        "SELECT s.card_number FROM challenge_awards a "
        "JOIN shopper_cards s ON s.shopper_id = a.shopper_id WHERE a.challenge_id = $1",
        challenge["id"],
    )
    ref = await pool.fetchval(
        "SELECT t.partner_ref FROM partner_transactions t JOIN shopper_cards s "
        "ON s.shopper_id = t.shopper_id WHERE s.card_number = $1 AND t.partner_id = $2",
        winner,
        b.partner_id,
    )
    async with b.client(base_url) as at_b:
        await at_b.refund(
            RefundRequest(partner_ref=f"rf-{uuid.uuid4().hex[:20]}", original_partner_ref=ref)
        )
    await drain(pool)
    rows = await pool.fetch(
        "SELECT s.card_number, a.state FROM challenge_awards a "
        "JOIN shopper_cards s ON s.shopper_id = a.shopper_id WHERE a.challenge_id = $1",
        challenge["id"],
    )
    states = {r["card_number"]: r["state"] for r in rows}
    assert states[winner] == "revoked"
    assert sorted(states.values()) == ["active", "revoked"]
    assert await used_budget(pool, challenge["id"]) == REWARD
    await assert_verified(pool)


async def test_partner_challenges_are_the_partners_own(
    http: httpx.AsyncClient, base_url: str, pool: asyncpg.Pool, shops: list[Onboarded]
) -> None:
    a, b, _, _ = shops
    body = {
        "name": "5 purchases in 5 weeks",
        "kind": "purchases_within",
        "goal": 2,
        "window_weeks": 5,
        "reward_points": 50,
        "budget_points": 1_000,
        **window(),
    }
    created = await send(http, base_url, a, "POST", "/v1/challenges", body)
    assert created.status_code == 201, created.text
    mine = created.json()
    assert mine["partner_id"] == a.partner_id
    assert (await send(http, base_url, a, "GET", f"/v1/challenges/{mine['id']}")).status_code == 200
    other = await send(http, base_url, b, "GET", f"/v1/challenges/{mine['id']}")
    assert other.status_code == 404, other.text
    listed = (await send(http, base_url, b, "GET", "/v1/challenges")).json()
    assert mine["id"] not in [x["id"] for x in listed["items"]]

    # distinct partners is the network's; a window only for purchases_within
    refused = await send(
        http, base_url, a, "POST", "/v1/challenges", {**body, "kind": "distinct_partners"}
    )
    assert refused.status_code == 422
    assert refused.json()["code"] == "challenge_invalid"

    # the partner pays: two purchases at a, one at b (which does not count)
    async with a.client(base_url) as at_a, b.client(base_url) as at_b:
        card = (await at_a.enroll()).card_number
        await at_a.purchase(purchase(card))
        await at_b.purchase(purchase(card))
        await drain(pool)
        assert (await at_a.shopper(card)).balance == 20
        await at_a.purchase(purchase(card))
        await drain(pool)
        assert (await at_a.shopper(card)).balance == 30 + 50
    entry_payer = await pool.fetchval(
        "SELECT e.kind FROM challenge_awards a JOIN ledger.entry e ON e.entry_id = a.entry_id "
        "WHERE a.challenge_id = $1",
        mine["id"],
    )
    assert entry_payer == "goodwill"
    event = await pool.fetchrow(
        "SELECT partner_id, payload::text AS payload FROM event_outbox "
        "WHERE event_type = 'challenge.completed' AND (payload ->> 'challenge_id')::bigint = $1",
        mine["id"],
    )
    assert event is not None
    assert event["partner_id"] == a.partner_id  # the sponsor's webhooks receive it
    data = events.public_data("challenge.completed", json.loads(event["payload"]))
    assert (data["challenge_id"], data["points"], data["grant"]) == (mine["id"], 50, 1)
    await assert_verified(pool)


async def test_the_leaderboard_shows_ranks_and_never_another_identity(
    http: httpx.AsyncClient,
    base_url: str,
    signing_key: SigningKey,
    pool: asyncpg.Pool,
    shops: list[Onboarded],
) -> None:
    a, b, _, _ = shops
    challenge = await network_challenge(http, signing_key, name="Board")
    path = f"/v1/me/challenges/{challenge['id']}/leaderboard"
    async with a.client(base_url) as at_a, b.client(base_url) as at_b:
        leader, second, shy = [(await at_a.enroll()).card_number for _ in range(3)]
        for card in (leader, second, shy):
            await at_a.purchase(purchase(card))
        await at_b.purchase(purchase(leader))
        await at_b.purchase(purchase(shy))
        await drain(pool)
    tokens = {card: await shopper_bearer(http, base_url, a, card) for card in (leader, second, shy)}
    for card in (leader, second):
        joined = await http.put(path, json={"opt_in": True}, headers=tokens[card])
        assert joined.status_code == 200, joined.text

    board = await http.get(path, headers=tokens[second])
    assert board.status_code == 200, board.text
    seen = board.json()
    assert seen["opted_in"] == 2
    assert seen["your_rank"] == 2
    assert seen["your_progress"] == 1
    assert seen["ranks"] == [
        {"rank": 1, "progress": 2, "shoppers": 1, "you": False},
        {"rank": 2, "progress": 1, "shoppers": 1, "you": True},
    ]
    text = board.text
    ids = await pool.fetch(
        "SELECT shopper_id FROM shopper_cards WHERE card_number = ANY($1)", [leader, shy]
    )
    for secret in (leader, shy, *(f":{r['shopper_id']}," for r in ids)):
        assert secret not in text
    assert set(seen) == {"challenge_id", "opted_in", "ranks", "your_rank", "your_progress"}

    outside = (await http.get(path, headers=tokens[shy])).json()
    assert outside["your_rank"] is None
    assert outside["opted_in"] == 2
    unknown = await http.get("/v1/me/challenges/999999999/leaderboard", headers=tokens[shy])
    assert unknown.status_code == 404
    assert (await http.get(path)).status_code == 401
    assert (
        await http.post(
            "/v1/operator/challenges",
            json={},
            headers=admin_headers(signing_key, Role.SUPPORT),
        )
    ).status_code == 403
