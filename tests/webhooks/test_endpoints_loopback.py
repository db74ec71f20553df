"""With COALITION_WEBHOOKS_ALLOW_LOOPBACK (the demo and the tests), 127.0.0.1 and plain http
are allowed, and nothing else of the loopback or private space is."""

from __future__ import annotations

import httpx
import pytest

from gateway.tokens import SigningKey
from tests.support.partner_network import onboard
from tests.webhooks.conftest import Api

BASE = "/v1/webhook-endpoints"


@pytest.fixture(scope="module")
def allow_loopback() -> bool:
    return True


@pytest.fixture(scope="module")
async def shop(http: httpx.AsyncClient, base_url: str, signing_key: SigningKey) -> Api:
    return Api(http, base_url, await onboard(http, signing_key, "hooks-loop"))


async def test_plain_http_to_127_0_0_1_is_allowed(shop: Api) -> None:
    created = await shop.create("http://127.0.0.1:9/hook")
    assert created["url"] == "http://127.0.0.1:9/hook"


@pytest.mark.parametrize(
    ("host", "address_class"),
    [("127.0.0.2", "loopback"), ("[::1]", "loopback"), ("10.0.0.1", "private")],
)
async def test_other_loopback_and_private_addresses_stay_refused(
    shop: Api, host: str, address_class: str
) -> None:
    answer = await shop.call("POST", BASE, {"url": f"http://{host}/", "events": ["hold.voided"]})
    assert answer.status_code == 422, answer.text
    assert answer.json()["address_class"] == address_class
