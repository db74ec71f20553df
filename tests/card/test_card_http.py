"""The card page over HTTP against the real server: a sign-in link works once, sessions
expire, a POST without the session's CSRF token is refused, consent toggles stick, and a
session never shows another shopper's data."""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import AsyncIterator

import asyncpg
import httpx

from gateway.tokens import SigningKey
from tests.card.support import csrf_of, network, shopper_with_points, sign_in_link


@contextlib.asynccontextmanager
async def signed_in(base_url: str, link: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=base_url, timeout=10) as client:
        answer = await client.get(link)
        assert answer.status_code == 303, answer.text
        assert answer.headers["location"] == "/card"
        yield client


async def test_a_link_signs_in_once_and_shows_the_card(
    base_url: str, http: httpx.AsyncClient, signing_key: SigningKey
) -> None:
    grocer, fuel = await network(http, signing_key, "once")
    shopper = await shopper_with_points(http, base_url, grocer, fuel, 12_300)
    link = await sign_in_link(http, base_url, shopper)

    async with signed_in(base_url, link) as client:
        cookie = client.cookies.get("card_session")
        assert cookie
        page = await client.get("/card")
        assert page.status_code == 200
        assert f'data-card-number="{shopper.card_number}"' in page.text
        assert 'data-balance="123"' in page.text
        assert "<svg" in page.text
        assert "Once-Grocer" in page.text
        assert page.headers["cache-control"] == "no-store"

    again = await http.get(link)
    assert again.status_code == 401
    assert 'data-code="token_spent"' in again.text
    assert "set-cookie" not in again.headers


async def test_the_session_cookie_is_httponly_and_only_its_hash_is_stored(
    base_url: str, http: httpx.AsyncClient, signing_key: SigningKey, database_url: str
) -> None:
    grocer, fuel = await network(http, signing_key, "cookie")
    shopper = await shopper_with_points(http, base_url, grocer, fuel, 1_000)
    answer = await http.get(await sign_in_link(http, base_url, shopper))
    header = answer.headers["set-cookie"].lower()
    assert "httponly" in header
    assert "samesite=lax" in header
    assert "path=/card" in header
    assert "max-age=" in header
    session_id = answer.cookies["card_session"]
    conn = await asyncpg.connect(database_url)
    try:
        stored = await conn.fetch(
            "SELECT session_hash FROM card_sessions WHERE shopper_id = $1", shopper.shopper_id
        )
    finally:
        await conn.close()
    assert [bytes(row["session_hash"]) for row in stored] == [
        hashlib.sha256(session_id.encode()).digest()
    ]


async def test_an_expired_session_signs_out(
    base_url: str, http: httpx.AsyncClient, signing_key: SigningKey, database_url: str
) -> None:
    grocer, fuel = await network(http, signing_key, "expiry")
    shopper = await shopper_with_points(http, base_url, grocer, fuel, 1_000)
    async with signed_in(base_url, await sign_in_link(http, base_url, shopper)) as client:
        assert (await client.get("/card")).status_code == 200
        conn = await asyncpg.connect(database_url)
        try:  # as if eight hours had passed
            await conn.execute(
                "UPDATE card_sessions SET created_at = now() - interval '9 hours', "
                "expires_at = now() - interval '1 hour' WHERE shopper_id = $1",
                shopper.shopper_id,
            )
        finally:
            await conn.close()
        expired = await client.get("/card")
        assert expired.status_code == 303
        assert expired.headers["location"] == "/card/sign-in"


async def test_a_post_without_the_sessions_csrf_token_is_refused(
    base_url: str, http: httpx.AsyncClient, signing_key: SigningKey
) -> None:
    grocer, fuel = await network(http, signing_key, "csrf")
    shopper = await shopper_with_points(http, base_url, grocer, fuel, 1_000)
    other = await shopper_with_points(http, base_url, grocer, fuel, 1_000)
    async with signed_in(base_url, await sign_in_link(http, base_url, other)) as them:
        their_token = csrf_of((await them.get("/card")).text)
    async with signed_in(base_url, await sign_in_link(http, base_url, shopper)) as client:
        form = {"partner_id": str(fuel.partner_id), "granted": "true"}
        missing = await client.post("/card/consent", data=form)
        assert missing.status_code == 403
        assert 'data-code="csrf_invalid"' in missing.text
        foreign = await client.post("/card/consent", data={**form, "csrf": their_token})
        assert foreign.status_code == 403
        page = await client.get("/card")
        assert f'data-partner="{fuel.slug}" data-granted="false"' in page.text
        erase = await client.post("/card/erase", data={"confirm": "yes"})
        assert erase.status_code == 403
        assert (await client.get("/card")).status_code == 200  # still there

    anonymous = await http.post("/card/sign-in/email", data={"email": "a@example.com"})
    assert anonymous.status_code == 403


async def test_a_consent_toggle_is_what_the_service_reads(
    base_url: str, http: httpx.AsyncClient, signing_key: SigningKey, database_url: str
) -> None:
    grocer, fuel = await network(http, signing_key, "consent")
    shopper = await shopper_with_points(http, base_url, grocer, fuel, 1_000)
    async with signed_in(base_url, await sign_in_link(http, base_url, shopper)) as client:
        csrf = csrf_of((await client.get("/card")).text)
        on = await client.post(
            "/card/consent",
            data={"csrf": csrf, "partner_id": str(fuel.partner_id), "granted": "true"},
        )
        assert on.status_code == 303
        assert await consented(database_url, shopper.shopper_id) == [fuel.partner_id]
        page = await client.get("/card")
        assert f'data-partner="{fuel.slug}" data-granted="true"' in page.text
        off = await client.post(
            "/card/consent",
            data={"csrf": csrf, "partner_id": str(fuel.partner_id), "granted": "false"},
        )
        assert off.status_code == 303
        assert await consented(database_url, shopper.shopper_id) == []


async def consented(database_url: str, shopper_id: int) -> list[int]:
    from shoppers.partner_consent import consented_partner_ids

    conn = await asyncpg.connect(database_url)
    try:
        return await consented_partner_ids(conn, shopper_id)
    finally:
        await conn.close()


async def test_a_session_never_shows_another_shoppers_data(
    base_url: str, http: httpx.AsyncClient, signing_key: SigningKey
) -> None:
    grocer, fuel = await network(http, signing_key, "apart")
    mine = await shopper_with_points(http, base_url, grocer, fuel, 4_200)
    theirs = await shopper_with_points(http, base_url, grocer, fuel, 9_900)
    async with signed_in(base_url, await sign_in_link(http, base_url, mine)) as client:
        for path in ("/card", "/card/history", "/card/erase"):
            page = await client.get(path)
            assert page.status_code == 200, path
            assert theirs.card_number not in page.text
            assert "9,900" not in page.text
            assert 'data-balance="99"' not in page.text
        text = (await client.get("/card")).text
        assert 'data-balance="42"' in text
        assert mine.card_number in text
        # a forged consent for another shopper: the form has no shopper field to forge
        csrf = csrf_of(text)
        forged = await client.post(
            "/card/consent",
            data={
                "csrf": csrf,
                "partner_id": str(fuel.partner_id),
                "granted": "true",
                "shopper_id": str(theirs.shopper_id),
            },
        )
        assert forged.status_code == 303
    async with signed_in(base_url, await sign_in_link(http, base_url, theirs)) as them:
        assert f'data-partner="{fuel.slug}" data-granted="false"' in (await them.get("/card")).text


async def test_russian_by_accept_language_and_by_the_switch(
    base_url: str, http: httpx.AsyncClient, signing_key: SigningKey
) -> None:
    page = await http.get("/card/sign-in", headers={"Accept-Language": "ru-RU,ru;q=0.9,en;q=0.5"})
    assert '<html lang="ru">' in page.text
    assert "Войти" in page.text
    async with httpx.AsyncClient(base_url=base_url, timeout=10) as client:
        switched = await client.get("/card/lang/ru?next=/card/sign-in")
        assert switched.status_code == 303
        assert switched.headers["location"] == "/card/sign-in"
        assert '<html lang="ru">' in (await client.get("/card/sign-in")).text
        away = await client.get("/card/lang/en?next=https://evil.example/")
        assert away.headers["location"] == "/card"


async def test_nps_and_erasure_after_confirmation(
    base_url: str, http: httpx.AsyncClient, signing_key: SigningKey, database_url: str
) -> None:
    grocer, fuel = await network(http, signing_key, "erase")
    shopper = await shopper_with_points(http, base_url, grocer, fuel, 1_000)
    async with signed_in(base_url, await sign_in_link(http, base_url, shopper)) as client:
        csrf = csrf_of((await client.get("/card")).text)
        nps = await client.post("/card/nps", data={"csrf": csrf, "score": "9", "comment": "ok"})
        assert nps.status_code == 303
        assert "Thank you for your answer." in (await client.get("/card?saved=nps")).text
        unconfirmed = await client.post("/card/erase", data={"csrf": csrf})
        assert unconfirmed.status_code == 303
        assert unconfirmed.headers["location"] == "/card/erase"
        assert (await client.get("/card")).status_code == 200  # nothing erased
        erased = await client.post("/card/erase", data={"csrf": csrf, "confirm": "yes"})
        assert erased.status_code == 200
        assert "Your data has been deleted" in erased.text
        after = await client.get("/card")
        assert after.status_code == 303
    conn = await asyncpg.connect(database_url)
    try:
        row = await conn.fetchrow(
            "SELECT erased_at, (SELECT count(*) FROM nps_answers WHERE shopper_id = $1) AS nps,"
            " (SELECT count(*) FROM card_sessions WHERE shopper_id = $1 AND ended_at IS NULL)"
            " AS live FROM shoppers WHERE id = $1",
            shopper.shopper_id,
        )
    finally:
        await conn.close()
    assert row is not None
    assert row["erased_at"] is not None
    assert row["nps"] == 1
    assert row["live"] == 0
