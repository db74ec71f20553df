"""SSRF refusals at registration (and on a URL change), one address per class, over the API.

The module's server runs as production does: loopback not allowed, so only https."""

from __future__ import annotations

import asyncpg
import httpx
import pytest

from gateway.tokens import SigningKey
from tests.support.partner_network import onboard
from tests.webhooks.conftest import PUBLIC_URL, Api

BASE = "/v1/webhook-endpoints"


@pytest.fixture(scope="module")
async def shop(http: httpx.AsyncClient, base_url: str, signing_key: SigningKey) -> Api:
    return Api(http, base_url, await onboard(http, signing_key, "hooks-ssrf"))


@pytest.mark.parametrize(
    ("host", "address_class"),
    [
        ("127.0.0.1", "loopback"),
        ("127.0.0.2", "loopback"),
        ("[::1]", "loopback"),
        ("10.0.0.1", "private"),
        ("172.16.0.1", "private"),
        ("192.168.1.1", "private"),
        ("100.64.0.1", "private"),  # carrier-grade NAT
        ("[fd00::1]", "private"),
        ("169.254.169.254", "metadata"),
        ("[fd00:ec2::254]", "metadata"),
        ("169.254.1.1", "link_local"),
        ("[fe80::1]", "link_local"),
        ("224.0.0.1", "multicast"),
        ("[ff02::1]", "multicast"),
        ("0.0.0.0", "unspecified"),  # noqa: S104 (a refused target, not a bind address)
        ("240.0.0.1", "reserved"),
        ("[::ffff:10.0.0.1]", "private"),  # IPv4-mapped IPv6 is judged as its IPv4
        ("[::ffff:127.0.0.1]", "loopback"),
        ("localhost", "loopback"),  # a name is resolved and each address judged
    ],
)
async def test_registration_refuses_each_address_class(
    shop: Api, db: asyncpg.Connection, host: str, address_class: str
) -> None:
    before = await db.fetchval("SELECT count(*) FROM webhooks.endpoint")
    answer = await shop.call(
        "POST", BASE, {"url": f"https://{host}:8443/hook", "events": ["purchase.created"]}
    )
    assert answer.status_code == 422, answer.text
    assert answer.headers["content-type"].startswith("application/problem+json")
    assert answer.json()["code"] == "webhook_url_refused"
    assert answer.json()["address_class"] == address_class
    assert await db.fetchval("SELECT count(*) FROM webhooks.endpoint") == before


@pytest.mark.parametrize(
    "url",
    [
        "http://93.184.215.14/hook",  # production URLs are https
        "ftp://93.184.215.14/hook",
        "https://user:pw@93.184.215.14/hook",
        "https://93.184.215.14/hook#frag",
        "https:///no-host",
        "https://93.184.215.14:99999/",
    ],
    ids=["http", "ftp", "credentials", "fragment", "no-host", "port"],
)
async def test_registration_refuses_unusable_urls(shop: Api, url: str) -> None:
    answer = await shop.call("POST", BASE, {"url": url, "events": ["purchase.created"]})
    assert answer.status_code == 422, answer.text
    assert answer.json()["code"] == "webhook_url_invalid"


async def test_a_url_change_is_checked_too(shop: Api) -> None:
    created = await shop.create()
    path = f"{BASE}/{created['id']}"
    refused = await shop.call("PATCH", path, {"url": "https://10.1.2.3/x"})
    assert refused.status_code == 422, refused.text
    assert refused.json()["code"] == "webhook_url_refused"
    assert refused.json()["address_class"] == "private"
    assert (await shop.call("GET", path)).json()["url"] == PUBLIC_URL
