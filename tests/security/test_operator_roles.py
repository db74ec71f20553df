"""Function-level authorization (OWASP API5): every operator role against every operator route.

The table is written out (not read from the guards), so a guard that changes its roles fails
here until the table is changed on purpose. Every operator route the app serves must be in it.
A refused role answers 403 `role_required` before any input is read; an admitted one never does.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from gateway.app import create_app
from gateway.tokens import Role, SigningKey, load_or_create
from tests.support.partner_network import admin_headers
from tests.support.routes import Caller, served
from tests.support.server import running_server, server_settings

WEBHOOK_ENDPOINTS = "/v1/operator/partners/{partner_id}/webhook-endpoints"
ROLES_BY_ROUTE: dict[tuple[str, str], str] = {
    ("DELETE", "/v1/operator/partners/{partner_id}/keys/{key_id}"): "admin",
    ("GET", "/v1/operator/analytics/abc-xyz"): "admin finance auditor",
    ("GET", "/v1/operator/analytics/average-basket"): "admin finance auditor",
    ("GET", "/v1/operator/analytics/flows"): "admin finance auditor",
    ("GET", "/v1/operator/analytics/lifetime-value"): "admin finance auditor",
    ("GET", "/v1/operator/analytics/liability"): "admin finance auditor",
    ("GET", "/v1/operator/analytics/nps"): "admin finance auditor",
    ("GET", "/v1/operator/analytics/partner-points"): "admin finance auditor",
    ("GET", "/v1/operator/analytics/repeat-purchase"): "admin finance auditor",
    ("GET", "/v1/operator/analytics/retention"): "admin finance auditor",
    ("GET", "/v1/operator/analytics/retention-rate"): "admin finance auditor",
    ("GET", "/v1/operator/campaigns"): "admin finance support auditor",
    ("GET", "/v1/operator/campaigns/{campaign_id}"): "admin finance support auditor",
    ("GET", "/v1/operator/campaigns/{campaign_id}/burn-down"): "admin finance support auditor",
    ("GET", "/v1/operator/finance/overview"): "admin finance auditor",
    ("GET", "/v1/operator/finance/partner-flows"): "admin finance auditor",
    ("GET", "/v1/operator/me"): "admin finance support auditor",
    ("GET", "/v1/operator/partners/{partner_id}"): "admin finance support auditor",
    ("GET", "/v1/operator/partners/{partner_id}/finance-contact"): "admin finance support auditor",
    ("GET", "/v1/operator/points-lifetime"): "admin finance support auditor",
    ("GET", "/v1/operator/reconciliations/{reconciliation_id}"): "admin finance auditor",
    ("GET", "/v1/operator/settlement-cycle"): "admin finance auditor",
    ("GET", "/v1/operator/settlements"): "admin finance auditor",
    ("GET", "/v1/operator/settlements/{period_id}"): "admin finance auditor",
    ("GET", "/v1/operator/statements/{statement_id}"): "admin finance auditor",
    ("POST", "/v1/operator/campaigns"): "admin",
    ("POST", "/v1/operator/campaigns/{campaign_id}/end"): "admin",
    ("POST", "/v1/operator/cards/{card_number}/block"): "admin support",
    ("POST", "/v1/operator/cards/{card_number}/replace"): "admin support",
    ("POST", "/v1/operator/cards/{card_number}/unblock"): "admin support",
    ("POST", "/v1/operator/partners"): "admin",
    ("POST", "/v1/operator/partners/{partner_id}/keys"): "admin",
    ("POST", "/v1/operator/partners/{partner_id}/pricing"): "admin",
    ("PUT", "/v1/operator/partners/{partner_id}/rate-limit"): "admin",
    ("POST", "/v1/operator/reconciliations/{reconciliation_id}/items/{item_no}/resolve"): "finance",
    ("POST", "/v1/operator/settlements"): "admin finance",
    ("POST", "/v1/operator/shopper-merges"): "admin support",
    ("POST", "/v1/operator/statements/{statement_id}/dispute"): "finance",
    ("POST", "/v1/operator/statements/{statement_id}/finalize"): "finance",
    ("POST", "/v1/operator/statements/{statement_id}/pay"): "finance",
    ("PUT", "/v1/operator/partners/{partner_id}/finance-contact"): "admin",
    ("PUT", "/v1/operator/points-lifetime"): "admin",
    ("PUT", "/v1/operator/settlement-cycle"): "admin",
    ("GET", "/v1/operator/membership-plans"): "admin finance support auditor",
    ("GET", "/v1/operator/membership-plans/{plan_id}"): "admin finance support auditor",
    ("GET", "/v1/operator/memberships/{membership_id}"): "admin finance support auditor",
    ("POST", "/v1/operator/membership-plans"): "admin",
    ("POST", "/v1/operator/memberships/{membership_id}/cancel"): "admin",
    ("GET", "/v1/operator/challenges"): "admin finance support auditor",
    ("GET", "/v1/operator/challenges/{challenge_id}"): "admin finance support auditor",
    ("POST", "/v1/operator/challenges"): "admin",
    ("GET", WEBHOOK_ENDPOINTS): "admin finance support auditor",
    ("GET", f"{WEBHOOK_ENDPOINTS}/{{endpoint_id}}/deliveries"): "admin finance support auditor",
    (
        "POST",
        f"{WEBHOOK_ENDPOINTS}/{{endpoint_id}}/deliveries/{{message_id}}/retry",
    ): "admin support",
}


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return Path(tmp_path_factory.mktemp("roles"))


@pytest.fixture(scope="module")
def signing_key(data_dir: Path) -> SigningKey:
    return load_or_create(data_dir, None)


@pytest.fixture(scope="module")
async def http(database_url: str, data_dir: Path) -> AsyncIterator[httpx.AsyncClient]:
    async with (
        running_server(server_settings(database_url, data_dir)) as url,
        httpx.AsyncClient(base_url=url, timeout=10.0) as client,
    ):
        yield client


def test_the_table_names_every_operator_route(database_url: str, data_dir: Path) -> None:
    app = create_app(server_settings(database_url, data_dir))
    operator = {
        (route.method, route.path_format)
        for route in served(app)
        if route.caller is Caller.OPERATOR
    }
    assert operator == set(ROLES_BY_ROUTE)


async def test_every_role_against_every_operator_route(
    http: httpx.AsyncClient, signing_key: SigningKey
) -> None:
    wrong = []
    for (method, path), allowed in ROLES_BY_ROUTE.items():
        url = path.replace("{card_number}", "4000000000000002")
        url = re.sub(r"\{[a-z_]+\}", "1", url)  # ids: the guard answers before any lookup
        for role in Role:
            answer = await http.request(
                method, url, headers=admin_headers(signing_key, role), content=b"{}"
            )
            refused = answer.status_code == 403 and answer.json()["code"] == "role_required"
            if refused == (role.value in allowed.split()):
                wrong.append(f"{method} {path} as {role.value}: {answer.status_code}")
            assert answer.status_code < 500, answer.text
    assert not wrong, "\n".join(wrong)
