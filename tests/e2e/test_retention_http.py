"""The retention figures over HTTP: operators get JSON and CSV, a bad margin is a problem, a
partner gets its own k-anonymous view through a signed call and nothing without one."""

from __future__ import annotations

import httpx
import pytest

from gateway.tokens import SigningKey
from tests.support.partner_network import admin_headers, onboard, signed

PATHS = ["retention-rate", "lifetime-value", "abc-xyz"]
PERIOD = "from=2001-01-01T00:00:00Z&to=2001-04-01T00:00:00Z"


@pytest.mark.parametrize("name", PATHS)
async def test_operators_get_json_and_csv(
    http: httpx.AsyncClient, signing_key: SigningKey, name: str
) -> None:
    headers = admin_headers(signing_key)
    as_json = await http.get(f"/v1/operator/analytics/{name}?{PERIOD}", headers=headers)
    assert as_json.status_code == 200, as_json.text
    assert as_json.json()["period_start"].startswith("2001-01-01")
    as_csv = await http.get(f"/v1/operator/analytics/{name}?{PERIOD}&format=csv", headers=headers)
    assert as_csv.status_code == 200
    assert as_csv.headers["content-type"].startswith("text/csv")
    assert as_csv.text.splitlines()[0].startswith("period_start,period_end")


@pytest.mark.parametrize("margin", ["0", "10001", "abc"])
async def test_a_margin_out_of_bounds_is_a_problem(
    http: httpx.AsyncClient, signing_key: SigningKey, margin: str
) -> None:
    answer = await http.get(
        f"/v1/operator/analytics/lifetime-value?margin_bps={margin}",
        headers=admin_headers(signing_key),
    )
    assert answer.status_code == 400
    assert answer.headers["content-type"].startswith("application/problem+json")


async def test_partners_get_their_own_view_signed_only(
    http: httpx.AsyncClient, base_url: str, signing_key: SigningKey
) -> None:
    shop = await onboard(http, signing_key, "retention-shop")
    for name in PATHS:
        path = f"/v1/insights/{name}"
        answer = await http.get(path, headers=signed(shop, "GET", f"{base_url}{path}"))
        assert answer.status_code == 200, answer.text
        assert answer.json()["k_min"] == 10
        assert (await http.get(path)).status_code == 401
