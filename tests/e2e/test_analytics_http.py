"""Operator analytics over HTTP: roles, JSON and CSV for every endpoint, period errors."""

from __future__ import annotations

import csv
import io

import httpx
import pytest

from gateway.tokens import Role, SigningKey
from tests.support.partner_network import admin_headers

ENDPOINTS = (
    "retention",
    "repeat-purchase",
    "average-basket",
    "nps",
    "liability",
    "partner-points",
    "flows",
)
PERIOD = "from=2001-03-01T00:00:00Z&to=2001-04-01T00:00:00Z"


@pytest.mark.parametrize("endpoint", ENDPOINTS)
async def test_every_endpoint_answers_json_and_csv(
    http: httpx.AsyncClient, signing_key: SigningKey, endpoint: str
) -> None:
    headers = admin_headers(signing_key, Role.FINANCE)
    path = f"/v1/operator/analytics/{endpoint}?{PERIOD}"
    as_json = await http.get(path, headers=headers)
    assert as_json.status_code == 200, as_json.text
    assert as_json.json()["period_start"].startswith("2001-03-01T00:00:00")
    as_csv = await http.get(f"{path}&format=csv", headers=headers)
    by_accept = await http.get(path, headers={**headers, "Accept": "text/csv"})
    assert as_csv.status_code == by_accept.status_code == 200
    assert as_csv.headers["content-type"].startswith("text/csv")
    assert as_csv.text == by_accept.text
    header = next(csv.reader(io.StringIO(as_csv.text)))
    assert header[:2] == ["period_start", "period_end"]


async def test_nps_csv_carries_the_figures(
    http: httpx.AsyncClient, signing_key: SigningKey
) -> None:
    answer = await http.get(
        f"/v1/operator/analytics/nps?{PERIOD}&format=csv",
        headers=admin_headers(signing_key, Role.AUDITOR),
    )
    rows = list(csv.DictReader(io.StringIO(answer.text)))
    assert len(rows) == 1
    assert rows[0]["responses"] == "0"
    assert rows[0]["nps"] == ""  # no answers: no score, rather than a made-up zero


async def test_support_may_not_read_analytics_and_strangers_are_unauthenticated(
    http: httpx.AsyncClient, signing_key: SigningKey
) -> None:
    path = "/v1/operator/analytics/retention"
    assert (await http.get(path)).status_code == 401
    refused = await http.get(path, headers=admin_headers(signing_key, Role.SUPPORT))
    assert refused.status_code == 403
    assert refused.json()["code"] == "role_required"


async def test_a_reversed_period_is_a_coded_400(
    http: httpx.AsyncClient, signing_key: SigningKey
) -> None:
    answer = await http.get(
        "/v1/operator/analytics/nps?from=2001-04-01T00:00:00Z&to=2001-03-01T00:00:00Z",
        headers=admin_headers(signing_key),
    )
    assert answer.status_code == 400
    assert answer.json()["code"] == "analytics_period_invalid"
