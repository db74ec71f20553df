"""The partner SDK against the real server: typed results, safe retries, bounded attempts."""

from __future__ import annotations

import httpx
import pytest

from contracts.partners import PurchaseRequest, QuoteRequest, RedemptionRequest
from contracts.sdk import CoalitionError, PartnerClient
from gateway.tokens import SigningKey
from tests.support.partner_network import onboard


class LoseFirstAnswer(httpx.AsyncBaseTransport):
    """Delivers every request, but drops the first answer as a network failure would."""

    def __init__(self) -> None:
        self.inner = httpx.AsyncHTTPTransport()
        self.sent = 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await self.inner.handle_async_request(request)
        self.sent += 1
        if self.sent == 1:
            await response.aread()
            raise httpx.ReadError("connection reset after the server answered")
        return response

    async def aclose(self) -> None:
        await self.inner.aclose()


async def test_a_lost_answer_is_retried_with_the_same_idempotency_key(
    base_url: str, http: httpx.AsyncClient, signing_key: SigningKey
) -> None:
    shop = await onboard(http, signing_key, "sdk-lossy")
    async with shop.client(base_url) as client:
        card = (await client.enroll()).card_number
    transport = LoseFirstAnswer()
    async with shop.client(base_url, transport=transport, backoff_s_base=0.01) as lossy:
        earned = await lossy.purchase(
            PurchaseRequest(
                partner_ref="lossy-1", card_number=card, amount_minor=5_000, currency="EUR"
            )
        )
        assert lossy.last_replayed  # the first attempt applied; the retry got its stored answer
        assert (await lossy.shopper(card)).balance == earned.points_earned == 50
    assert transport.sent == 3


async def test_rate_limited_calls_are_retried_until_they_pass(
    base_url: str, http: httpx.AsyncClient, signing_key: SigningKey
) -> None:
    shop = await onboard(http, signing_key, "sdk-slow", rate_limit_per_s=2)
    async with shop.client(base_url, attempts_max=6, backoff_s_base=0.05) as client:
        card = (await client.enroll()).card_number
        quotes = [
            await client.quote(QuoteRequest(amount_minor=100 * n, card_number=card))
            for n in range(1, 7)
        ]
    assert [q.points for q in quotes] == list(range(1, 7))


async def test_refusals_raise_with_their_code_without_retrying(
    base_url: str, http: httpx.AsyncClient, signing_key: SigningKey
) -> None:
    shop = await onboard(http, signing_key, "sdk-refused")
    async with shop.client(base_url) as client:
        card = (await client.enroll()).card_number
        with pytest.raises(CoalitionError) as refused:
            await client.redeem(RedemptionRequest(partner_ref="r-1", card_number=card, points=10))
    assert (refused.value.status, refused.value.code) == (422, "insufficient_points")
    assert refused.value.problem["requested"] == 10


async def test_network_errors_give_up_after_the_bounded_attempts() -> None:
    attempts = 0

    def refuse(request: httpx.Request) -> httpx.Response:
        nonlocal attempts
        attempts += 1
        raise httpx.ConnectError("refused", request=request)

    client = PartnerClient(
        "http://127.0.0.1:9",
        key_id="pk_x",
        secret="s",
        attempts_max=3,
        backoff_s_base=0.001,
        transport=httpx.MockTransport(refuse),
    )
    async with client:
        with pytest.raises(httpx.ConnectError):
            await client.shopper("7000000000000000")
    assert attempts == 3
    assert "secret" not in repr(client)
    assert repr(client) == "PartnerClient('http://127.0.0.1:9', key_id='pk_x')"
