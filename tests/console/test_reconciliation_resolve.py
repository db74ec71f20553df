"""A finance user resolves reconciliation differences in the console: Resolve… opens a
confirmation page (it changes nothing), confirming calls the same
`ledger.reconciliation.resolve_item` as POST /v1/operator/reconciliations/{id}/items/{n}/resolve
(the stored resolution, its audit row and its ledger entry are the API's) and appends a
`reconciliation.resolve` console audit entry with the item before and after. An item already
resolved is refused with a page saying so; bad input answers an error page; other roles see no
button and a forged POST answers 403."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import httpx
import pytest
from playwright.async_api import BrowserContext, Page, expect

from gateway.tokens import Role, SigningKey
from ledger import reconciliation
from tests.console.browser import csrf_token, sign_in
from tests.support import program
from tests.support.partner_network import admin_headers, onboard


@dataclass(frozen=True)
class Network:
    partner_id: int
    shopper_id: int
    card_number: str
    since: datetime


@pytest.fixture(scope="module")
async def network(http: httpx.AsyncClient, signing_key: SigningKey, pool: asyncpg.Pool) -> Network:
    shop = await onboard(http, signing_key, "recon-resolve")
    holder = await program.shopper(pool, shop.partner_id)
    since = datetime.now(UTC) - timedelta(hours=1)
    for amount_minor in (1_000, 2_000):  # two purchases the partner's log lacks
        await program.buy(pool, shop.partner_id, holder.card_number, amount_minor)
    return Network(shop.partner_id, holder.shopper_id, holder.card_number, since)


async def upload(pool: asyncpg.Pool, n: Network) -> int:
    """A fresh report with four differences: items 1 and 2 missing in the network (the log's
    two lines), items 3 and 4 missing at the partner (the two purchases)."""

    async def log() -> AsyncIterator[bytes]:
        yield (
            "partner_ref,type,card_number,points,amount_minor,occurred_at\r\n"
            f"till-1,purchase,{n.card_number},10,1000,{n.since.isoformat()}\r\n"
            f"till-2,purchase,{n.card_number},10,1000,{n.since.isoformat()}\r\n"
        ).encode()

    async with pool.acquire() as conn, conn.transaction():
        report = await reconciliation.reconcile(
            conn,
            partner_id=n.partner_id,
            period_start=n.since,
            period_end=datetime.now(UTC),
            source_format="csv",
            chunks=log(),
        )
    assert [(i.item_no, i.status) for i in report.items] == [
        (1, "missing_in_network"),
        (2, "missing_in_network"),
        (3, "missing_at_partner"),
        (4, "missing_at_partner"),
    ]
    return report.reconciliation_id


async def item(pool: asyncpg.Pool, rid: int, item_no: int) -> dict[str, Any]:
    row = await pool.fetchrow(
        "SELECT resolution, resolution_reason, resolved_by, adjustment_entry_id"
        " FROM settlement.reconciliation_item WHERE reconciliation_id = $1 AND item_no = $2",
        rid,
        item_no,
    )
    assert row is not None
    return dict(row)


async def console_audit(pool: asyncpg.Pool, rid: int) -> list[asyncpg.Record]:
    rows: list[asyncpg.Record] = await pool.fetch(
        "SELECT actor, role, before, after, detail FROM console.audit_log"
        " WHERE action = 'reconciliation.resolve' AND subject = $1 ORDER BY audit_id",
        f"reconciliation:{rid}",
    )
    return rows


async def entry(pool: asyncpg.Pool, entry_id: int) -> tuple[Any, ...]:
    """What an adjustment posted, without its ids: kind, partner, metadata and postings."""
    head = await pool.fetchrow(
        "SELECT kind, partner_id, metadata FROM ledger.entry WHERE entry_id = $1", entry_id
    )
    assert head is not None
    postings = await pool.fetch(
        "SELECT a.owner_kind, a.purpose, p.amount FROM ledger.posting p"
        " JOIN ledger.account a ON a.account_id = p.account_id"
        " WHERE p.entry_id = $1 ORDER BY a.owner_kind, a.purpose, p.amount",
        entry_id,
    )
    metadata = (
        json.loads(head["metadata"]) if isinstance(head["metadata"], str) else head["metadata"]
    )
    metadata = {k: v for k, v in metadata.items() if k != "item_no"}  # the one intended change
    return (head["kind"], head["partner_id"], metadata, [tuple(p) for p in postings])


async def resolve_in_console(page: Page, rid: int, item_no: int, **fields: str) -> None:
    await page.goto(f"/console/reconciliations/{rid}")
    await page.get_by_role("link", name=f"Resolve… item {item_no}", exact=True).click()
    await expect(page.get_by_role("heading", level=1)).to_have_text(f"Resolve item {item_no}?")
    if "points" in fields:
        await page.get_by_label("Adjust with a ledger entry").check()
    for label, value in (
        ("Reason", fields.get("reason")),
        ("Shopper id", fields.get("shopper_id")),
        ("Points (negative to debit)", fields.get("points")),
        ("Issue price per point", fields.get("issue_price_micros")),
    ):
        if value is not None:
            await page.get_by_label(label).fill(value)
    await page.get_by_role("button", name="Confirm the resolution").click()


async def resolve_by_api(
    http: httpx.AsyncClient, signing_key: SigningKey, rid: int, item_no: int, body: dict[str, Any]
) -> None:
    answer = await http.post(
        f"/v1/operator/reconciliations/{rid}/items/{item_no}/resolve",
        json=body,
        headers=admin_headers(signing_key, Role.FINANCE),
    )
    assert answer.status_code == 200, answer.text


async def test_finance_resolves_lines_exactly_as_the_api_does(
    context: BrowserContext,
    finance: str,
    network: Network,
    pool: asyncpg.Pool,
    http: httpx.AsyncClient,
    signing_key: SigningKey,
) -> None:
    rid = await upload(pool, network)
    page = await sign_in(context, finance)
    await page.goto(f"/console/reconciliations/{rid}")
    await expect(page.locator("#unresolved")).to_have_text("4")
    await expect(page.locator("#resolved")).to_have_text("0")
    await expect(page.get_by_role("link", name="Resolve…")).to_have_count(4)

    # the confirmation page shows the item and changes nothing
    await page.get_by_role("link", name="Resolve… item 3", exact=True).click()
    await expect(page.get_by_role("heading", level=1)).to_have_text("Resolve item 3?")
    await expect(page.get_by_text("missing at partner")).to_be_visible()
    assert (await item(pool, rid, 3))["resolution"] is None
    assert await console_audit(pool, rid) == []

    await resolve_in_console(page, rid, 3, reason="the till exported late")
    await expect(page.get_by_role("status")).to_have_text("Item 3 is explained.")
    await expect(page.locator("#unresolved")).to_have_text("3")
    await expect(page.locator("#resolved")).to_have_text("1")
    await expect(page.get_by_role("link", name="Resolve…")).to_have_count(3)
    await resolve_in_console(
        page,
        rid,
        1,
        reason="credit the offline sale",
        shopper_id=str(network.shopper_id),
        points="10",
        issue_price_micros="5000",
    )
    await expect(page.get_by_role("status")).to_have_text("Item 1 is adjusted.")

    # the API resolves their twins with the same inputs
    await resolve_by_api(
        http, signing_key, rid, 4, {"action": "explain", "reason": "the till exported late"}
    )
    await resolve_by_api(
        http,
        signing_key,
        rid,
        2,
        {
            "action": "adjust",
            "reason": "credit the offline sale",
            "shopper_id": network.shopper_id,
            "points": 10,
            "issue_price_micros": 5_000,
        },
    )
    by_console = {n: await item(pool, rid, n) for n in (1, 3)}
    by_api = {n: await item(pool, rid, n) for n in (2, 4)}
    assert by_console[3]["resolved_by"] == f"finance:{finance}"  # as the API names role:subject
    assert by_api[4]["resolved_by"] == "finance:ops-alice"
    for mine, theirs in ((by_console[3], by_api[4]), (by_console[1], by_api[2])):
        assert (mine["resolution"], mine["resolution_reason"]) == (
            theirs["resolution"],
            theirs["resolution_reason"],
        )
    assert by_console[3]["adjustment_entry_id"] is None
    assert await entry(pool, by_console[1]["adjustment_entry_id"]) == await entry(
        pool, by_api[2]["adjustment_entry_id"]
    )
    ledger_audit = await pool.fetch(
        "SELECT item_no, action, reason, adjustment_entry_id IS NOT NULL AS posted"
        " FROM settlement.reconciliation_audit WHERE reconciliation_id = $1 ORDER BY item_no",
        rid,
    )
    assert [tuple(r) for r in ledger_audit] == [
        (1, "adjusted", "credit the offline sale", True),
        (2, "adjusted", "credit the offline sale", True),
        (3, "explained", "the till exported late", False),
        (4, "explained", "the till exported late", False),
    ]

    audit = await console_audit(pool, rid)
    assert [(a["actor"], a["role"]) for a in audit] == [(finance, "finance")] * 2
    before, after = json.loads(audit[0]["before"]), json.loads(audit[0]["after"])
    assert (before["item_no"], before["resolution"]) == (3, None)
    assert (after["resolution"], after["resolution_reason"]) == (
        "explained",
        "the till exported late",
    )
    assert json.loads(audit[1]["detail"]) == {
        "item_no": 1,
        "action": "adjust",
        "reason": "credit the offline sale",
        "shopper_id": network.shopper_id,
        "points": 10,
        "issue_price_micros": 5_000,
    }
    assert (
        json.loads(audit[1]["after"])["adjustment_entry_id"] == by_console[1]["adjustment_entry_id"]
    )


async def test_an_already_resolved_line_is_refused_with_a_clear_page(
    context: BrowserContext, finance: str, network: Network, pool: asyncpg.Pool
) -> None:
    rid = await upload(pool, network)
    page = await sign_in(context, finance)
    await resolve_in_console(page, rid, 2, reason="duplicate export")
    await expect(page.get_by_role("status")).to_have_text("Item 2 is explained.")
    # the resolved line offers no button; its old confirmation page says why
    await expect(page.get_by_role("link", name="Resolve… item 2", exact=True)).to_have_count(0)
    token = await csrf_token(page)
    again = await page.goto(f"/console/reconciliations/{rid}/items/2/resolve")
    assert again is not None
    assert again.status == 409
    await expect(page.get_by_role("heading", level=1)).to_have_text("Item 2 is already resolved")
    await expect(page.get_by_role("alert")).to_contain_text("explained by finance:")
    await expect(page.get_by_role("button", name="Confirm the resolution")).to_have_count(0)

    resolved = await item(pool, rid, 2)
    posted = await context.request.post(
        f"/console/reconciliations/{rid}/items/2/resolve",
        form={"_csrf_token": token, "action": "explain", "reason": "again"},
        max_redirects=0,
    )
    assert posted.status == 409
    assert "already explained" in await posted.text()
    assert await item(pool, rid, 2) == resolved
    assert len(await console_audit(pool, rid)) == 1


@pytest.mark.parametrize(
    ("form", "status"),
    [
        ({"action": "delete", "reason": "x"}, 400),
        ({"action": "explain", "reason": "  "}, 400),
        ({"action": "explain", "reason": "bell\x07"}, 400),  # the API's text rule
        ({"action": "adjust", "reason": "x", "shopper_id": "1", "points": "²"}, 400),
        ({"action": "adjust", "reason": "x", "points": "5", "issue_price_micros": "1"}, 422),
        ({"action": "adjust", "reason": "x", "shopper_id": "1", "points": "99999999999"}, 400),
    ],
)
async def test_bad_input_answers_an_error_page_and_changes_nothing(
    context: BrowserContext,
    finance: str,
    network: Network,
    pool: asyncpg.Pool,
    form: dict[str, str],
    status: int,
) -> None:
    rid = await upload(pool, network)
    page = await sign_in(context, finance)
    await page.goto(f"/console/reconciliations/{rid}/items/1/resolve")
    answer = await context.request.post(
        f"/console/reconciliations/{rid}/items/1/resolve",
        form={"_csrf_token": await csrf_token(page), **form},
        max_redirects=0,
    )
    assert answer.status == status, await answer.text()
    assert "text/html" in answer.headers["content-type"]
    assert (await item(pool, rid, 1))["resolution"] is None
    assert await console_audit(pool, rid) == []


@pytest.mark.parametrize("role", ["admin", "auditor"])
async def test_other_roles_see_no_button_and_a_forged_post_is_refused(
    context: BrowserContext,
    network: Network,
    pool: asyncpg.Pool,
    role: str,
    admin: str,
    auditor: str,
) -> None:
    rid = await upload(pool, network)
    page = await sign_in(context, {"admin": admin, "auditor": auditor}[role])
    await page.goto(f"/console/reconciliations/{rid}")
    await expect(page.locator("#unresolved")).to_have_text("4")  # they still read the report
    await expect(page.get_by_role("link", name="Resolve…")).to_have_count(0)
    token = await csrf_token(page)
    confirm = await page.goto(f"/console/reconciliations/{rid}/items/1/resolve")
    assert confirm is not None
    assert confirm.status == 403
    forged = await context.request.post(
        f"/console/reconciliations/{rid}/items/1/resolve",
        form={"_csrf_token": token, "action": "explain", "reason": "not mine to say"},
        max_redirects=0,
    )
    assert forged.status == 403
    assert (await item(pool, rid, 1))["resolution"] is None
    assert await console_audit(pool, rid) == []
