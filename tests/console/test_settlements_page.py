"""An operator signs in, finds a draft statement, finalizes it, marks it paid, and sees the
change and the audit entries; the ledger holds the payment and the audit log refuses edits."""

from __future__ import annotations

from datetime import UTC, datetime

import asyncpg
import httpx
import pytest
from playwright.async_api import BrowserContext, expect

from gateway.tokens import SigningKey
from ledger import settlement
from tests.console.browser import sign_in
from tests.support import program
from tests.support.partner_network import onboard


@pytest.fixture(scope="module")
async def draft_statement_id(
    http: httpx.AsyncClient, signing_key: SigningKey, pool: asyncpg.Pool
) -> int:
    """A partner onboarded through the API, two purchases, a period closed: one draft."""
    grocer = await onboard(http, signing_key, "console-grocer")
    holder = await program.shopper(pool, grocer.partner_id)
    await program.buy(pool, grocer.partner_id, holder.card_number, 12_345)
    await program.buy(pool, grocer.partner_id, holder.card_number, 6_000)
    async with pool.acquire() as conn, conn.transaction():
        period = await settlement.close_period(
            conn, period_end=datetime.now(UTC), closed_by="test", now=datetime.now(UTC)
        )
    (statement,) = [s for s in period.statements if s.partner_id == grocer.partner_id]
    assert statement.state == "draft"
    assert statement.payment_due_micros > 0
    return statement.statement_id


async def test_finance_finalizes_and_pays_a_draft_statement(
    context: BrowserContext, finance: str, draft_statement_id: int, pool: asyncpg.Pool
) -> None:
    page = await sign_in(context, finance)
    await page.get_by_role("link", name="Settlements").click()
    await page.locator("table a").first.click()  # the newest period
    await page.get_by_role("link", name=f"Statement {draft_statement_id}").click()
    await expect(page.locator("#state")).to_have_text("draft")

    await page.get_by_role("link", name="Finalize…").click()
    await expect(page.get_by_role("heading", level=1)).to_contain_text("Finalize statement")
    await page.get_by_role("button", name="Confirm finalize").click()
    await expect(page.get_by_role("status")).to_have_text("The statement is final.")
    await expect(page.locator("#state")).to_have_text("final")

    await page.get_by_role("link", name="Mark paid…").click()
    await page.get_by_label("Payment reference").fill("SEPA-2026-0042")
    await page.get_by_role("button", name="Confirm mark paid").click()
    await expect(page.locator("#state")).to_have_text("paid")
    history = page.locator("table").last
    await expect(history).to_contain_text("statement.pay")
    await expect(history).to_contain_text("final → paid")
    await expect(history).to_contain_text("SEPA-2026-0042")

    await page.get_by_role("link", name="Audit log").click()
    audit_table = page.locator("#audit")
    await expect(audit_table).to_contain_text("statement.finalize")
    await expect(audit_table).to_contain_text(f"statement:{draft_statement_id}")
    await expect(audit_table).to_contain_text("fiona@ops.test")

    async with pool.acquire() as conn:
        paid = await settlement.get_statement(conn, draft_statement_id, partner_id=None)
        rows = await conn.fetch(
            "SELECT action, actor, before->>'state' AS b, after->>'state' AS a, detail "
            "FROM console.audit_log WHERE subject = $1 ORDER BY audit_id",
            f"statement:{draft_statement_id}",
        )
    assert paid.state == "paid"
    assert paid.payment_entry_id is not None  # the ledger posted the payment
    assert paid.state_changed_by == "finance:fiona@ops.test"
    assert [(r["action"], r["actor"], r["b"], r["a"]) for r in rows] == [
        ("statement.finalize", "fiona@ops.test", "draft", "final"),
        ("statement.pay", "fiona@ops.test", "final", "paid"),
    ]
    assert "SEPA-2026-0042" in rows[1]["detail"]


async def test_a_dispute_needs_a_reason_and_is_audited(
    context: BrowserContext,
    finance: str,
    http: httpx.AsyncClient,
    signing_key: SigningKey,
    pool: asyncpg.Pool,
) -> None:
    fuel = await onboard(http, signing_key, "console-fuel")
    holder = await program.shopper(pool, fuel.partner_id)
    await program.buy(pool, fuel.partner_id, holder.card_number, 5_000)
    async with pool.acquire() as conn, conn.transaction():
        period = await settlement.close_period(
            conn, period_end=datetime.now(UTC), closed_by="test", now=datetime.now(UTC)
        )
    (statement,) = [s for s in period.statements if s.partner_id == fuel.partner_id]
    page = await sign_in(context, finance)
    await page.goto(f"/console/statements/{statement.statement_id}")
    await page.get_by_role("link", name="Dispute…").click()
    await page.get_by_label("Reason").fill("the partner's log shows 3 more sales")
    await page.get_by_role("button", name="Confirm dispute").click()
    await expect(page.locator("#state")).to_have_text("disputed")
    await expect(page.locator(".status-line")).to_contain_text("3 more sales")


async def test_an_auditor_reads_statements_but_has_no_actions(
    context: BrowserContext, auditor: str, draft_statement_id: int
) -> None:
    page = await sign_in(context, auditor)
    await page.goto(f"/console/statements/{draft_statement_id}")
    await expect(page.get_by_role("heading", level=1)).to_contain_text("Statement")
    await expect(page.get_by_role("link", name="Finalize…")).to_have_count(0)
    confirm = await page.goto(f"/console/statements/{draft_statement_id}/finalize")
    assert confirm is not None
    assert confirm.status == 403


async def test_the_audit_log_refuses_updates_and_deletes(pool: asyncpg.Pool) -> None:
    async with pool.acquire() as conn:
        await conn.execute(
            "INSERT INTO console.audit_log (actor, role, action, subject) "
            "VALUES ('t', 'admin', 'test.append', 'test:1')"
        )
        with pytest.raises(asyncpg.RaiseError, match="append-only"):
            await conn.execute("UPDATE console.audit_log SET actor = 'someone else'")
        with pytest.raises(asyncpg.RaiseError, match="append-only"):
            await conn.execute("DELETE FROM console.audit_log")
        with pytest.raises(asyncpg.RaiseError, match="append-only"):
            await conn.execute("TRUNCATE console.audit_log")
        assert await conn.fetchval("SELECT count(*) FROM console.audit_log") >= 1
