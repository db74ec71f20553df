"""Settlement and reconciliation over HTTP: an operator closes a period, partners read only
their own statements (JSON and CSV), finance pays, a partner uploads its log."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx

from contracts.partners import PurchaseRequest, RedemptionRequest
from gateway.tokens import Role, SigningKey
from tests.support.partner_network import Onboarded, admin_headers, onboard, signed


async def get_signed(
    http: httpx.AsyncClient, base_url: str, who: Onboarded, path: str
) -> httpx.Response:
    return await http.get(path, headers=signed(who, "GET", f"{base_url}{path}"))


async def test_close_read_pay_and_reconcile_over_http(
    http: httpx.AsyncClient, base_url: str, signing_key: SigningKey
) -> None:
    issuer = await onboard(http, signing_key, "settle-issuer")  # 0.01 EUR a point issued
    redeemer = await onboard(http, signing_key, "settle-redeemer")  # 0.008 EUR reimbursed
    start = datetime.now(UTC) - timedelta(seconds=1)
    async with issuer.client(base_url) as at_issuer, redeemer.client(base_url) as at_redeemer:
        card = (await at_issuer.enroll()).card_number
        await at_issuer.purchase(
            PurchaseRequest(
                partner_ref="sale-1", card_number=card, amount_minor=10_000, currency="EUR"
            )
        )
        await at_redeemer.redeem(
            RedemptionRequest(partner_ref="use-1", card_number=card, points=40)
        )
    finance = admin_headers(signing_key, Role.FINANCE)
    period_end = datetime.now(UTC).isoformat()

    closed = await http.post(
        "/v1/operator/settlements", json={"period_end": period_end}, headers=finance
    )
    again = await http.post(
        "/v1/operator/settlements", json={"period_end": period_end}, headers=finance
    )
    assert closed.status_code == 201, closed.text
    assert again.status_code == 200
    assert again.json()["period_id"] == closed.json()["period_id"]
    by_partner = {s["partner_id"]: s for s in closed.json()["statements"]}
    assert by_partner[issuer.partner_id]["payment_due_micros"] == 1_000_000  # 100 points
    assert by_partner[redeemer.partner_id]["payment_due_micros"] == -320_000  # 40 points
    statement_id = by_partner[issuer.partner_id]["statement_id"]

    page = await get_signed(http, base_url, issuer, "/v1/statements")
    assert page.status_code == 200
    assert [s["statement_id"] for s in page.json()["items"]] == [statement_id]
    as_csv = await get_signed(http, base_url, issuer, f"/v1/statements/{statement_id}?format=csv")
    assert as_csv.headers["content-type"].startswith("text/csv")
    header, row = as_csv.text.splitlines()
    assert dict(zip(header.split(","), row.split(","), strict=True))["payment_minor"] == "100"
    foreign = await get_signed(http, base_url, redeemer, f"/v1/statements/{statement_id}")
    assert foreign.status_code == 404
    assert foreign.json()["code"] == "not_found"

    support = admin_headers(signing_key, Role.SUPPORT)
    refused = await http.post(f"/v1/operator/statements/{statement_id}/pay", headers=support)
    assert refused.status_code == 403
    assert refused.json()["code"] == "role_required"
    early = await http.post(f"/v1/operator/statements/{statement_id}/pay", headers=finance)
    assert early.status_code == 409
    assert early.json()["code"] == "statement_state_invalid"
    final = await http.post(f"/v1/operator/statements/{statement_id}/finalize", headers=finance)
    paid = await http.post(f"/v1/operator/statements/{statement_id}/pay", headers=finance)
    assert final.status_code == paid.status_code == 200
    assert paid.json()["state"] == "paid"
    assert paid.json()["payment_entry_id"] is not None

    log = (
        "partner_ref,type,card_number,points,amount_minor,occurred_at\n"
        f"sale-1,purchase,{card},100,10000,{start.isoformat()}\n"
        f"sale-2,purchase,{card},5,500,{start.isoformat()}\n"
    ).encode()
    path = (
        f"/v1/reconciliations?period_start={start.isoformat()}"
        f"&period_end={(datetime.now(UTC) + timedelta(minutes=1)).isoformat()}"
    ).replace("+", "%2B")
    headers = signed(issuer, "POST", f"{base_url}{path}", log, idempotency_key="recon-1")
    headers["Content-Type"] = "text/csv"
    uploaded = await http.post(path, content=log, headers=headers)
    assert uploaded.status_code == 201, uploaded.text
    totals = uploaded.json()["totals"]
    assert (totals["matched"], totals["missing_in_network"]) == (1, 1)
    recon_id = uploaded.json()["reconciliation_id"]
    assert (
        await get_signed(http, base_url, redeemer, f"/v1/reconciliations/{recon_id}")
    ).status_code == 404

    wrong_type = signed(issuer, "POST", f"{base_url}{path}", b"{}", idempotency_key="recon-2")
    unsupported = await http.post(path, content=b"{}", headers=wrong_type)
    assert unsupported.status_code == 415

    overview = await http.get("/v1/operator/finance/overview", headers=finance)
    assert overview.status_code == 200
    assert overview.json()["outstanding_points"] == 60
    assert overview.json()["redemption_margin_micros"] == 40 * (10_000 - 8_000)
