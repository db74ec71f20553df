"""Every metric a dashboard or a rule names is exported by a running service: the real server
(with its periodic jobs) after signed partner traffic and a `coalition verify`, scraped at
/metrics. A dashboard can never point at a metric that does not exist."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families

from contracts.partners import PurchaseRequest, RedemptionRequest
from gateway import cli
from gateway.tokens import load_or_create
from tests.deploy._queries import (
    PROMETHEUS_OWN,
    dashboard_expressions,
    metric_names,
    rule_expressions,
)
from tests.support.partner_network import onboard, signed
from tests.support.server import running_server, server_settings

SCRAPES_MAX = 100
BURST_CALLS = 5
SCRAPE_PAUSE_S = 0.1
# Series that are set once their job has run after the traffic (it samples every 5 s).
AFTER_JOBS = (
    "coalition_verify_last_run_timestamp_seconds",
    "coalition_job_runs_total",
    "coalition_ledger_postings_written",
)


def _exported(text: str) -> dict[str, float]:
    return {
        sample.name: sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


async def _traffic(http: httpx.AsyncClient, base_url: str, data_dir: Path) -> None:
    key = load_or_create(data_dir, None)
    partner = await onboard(http, key, "metrics-grocer")
    async with partner.client(base_url) as client:
        card = (await client.enroll()).card_number
        for n in range(3):
            await client.purchase(
                PurchaseRequest(
                    partner_ref=f"m-{n}", card_number=card, amount_minor=5_000, currency="EUR"
                )
            )
        await client.redeem(RedemptionRequest(partner_ref="m-r", card_number=card, points=10))
    # A tampered signature: refused with a problem code, counted by code.
    url = f"{base_url}/v1/shoppers"
    headers = signed(partner, "POST", url, b"{}", idempotency_key="bad-1")
    tampered = await http.post("/v1/shoppers", content=b'{"x":1}', headers=headers)
    assert tampered.status_code == 400 or tampered.status_code == 401, tampered.text
    assert (await http.get("/readyz")).status_code == 200
    # A partner allowed one call a second: a burst of reads meets 429.
    slow = await onboard(http, key, "metrics-slow", rate_limit_per_s=1)
    answers = [
        (
            await http.get(
                "/v1/transactions", headers=signed(slow, "GET", f"{base_url}/v1/transactions")
            )
        ).status_code
        for _ in range(BURST_CALLS)
    ]
    assert 429 in answers, answers


async def test_every_metric_in_dashboards_and_rules_is_exported(
    database_url: str, tmp_path: Path
) -> None:
    assert await cli._verify(database_url) == []  # recorded for the service to export
    settings = server_settings(database_url, tmp_path, workers_enabled=True)
    async with (
        running_server(settings) as base_url,
        httpx.AsyncClient(base_url=base_url, timeout=10) as http,
    ):
        await _traffic(http, base_url, tmp_path)
        exported: dict[str, float] = {}
        for _ in range(SCRAPES_MAX):
            exported = _exported((await http.get("/metrics")).text)
            if all(exported.get(name, 0) > 0 for name in AFTER_JOBS):
                break
            await asyncio.sleep(SCRAPE_PAUSE_S)
    used = {
        "rules.yml": metric_names(rule_expressions()),
        **{name: metric_names(exprs) for name, exprs in dashboard_expressions().items()},
    }
    assert all(used.values()), used
    missing = {
        where: sorted(names - exported.keys() - PROMETHEUS_OWN)
        for where, names in used.items()
        if names - exported.keys() - PROMETHEUS_OWN
    }
    assert not missing, missing
    assert exported["coalition_verify_last_problems"] == 0
    assert exported["coalition_ledger_postings_written"] > 0
