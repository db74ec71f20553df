"""The TOTP second factor in Chromium: enrol from one's own page (QR code and key), sign in
with a code pyotp computes here, a wrong or replayed code refused; an admin makes TOTP
mandatory for a role and its users enrol right after the password; `totp-reset`."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import pyotp
import pytest
from playwright.async_api import Browser, BrowserContext, Page, expect

from gateway.console import cli_users, totp, users
from gateway.tokens import Role
from partners.keybox import KeyBox
from tests.console.browser import PASSWORD, csrf_token, sign_in
from tests.console.conftest import make_user


def _code(secret: str, *, steps_ahead: int = 0) -> str:
    # A later step than the one enrolment used: a code is accepted once per step.
    return pyotp.TOTP(secret).at(time.time() + steps_ahead * totp.STEP_S)


async def _enrol(page: Page) -> str:
    await page.goto("/console/security")
    await page.get_by_role("link", name="Set up two-step sign-in").click()
    await expect(page.locator(".qr svg")).to_be_visible()
    secret = (await page.locator("#secret").text_content() or "").strip()
    assert len(secret) >= 16
    await page.get_by_label("Code").fill(_code(secret))
    await page.get_by_role("button", name="Turn on").click()
    return secret


@pytest.fixture
async def no_policy(pool: asyncpg.Pool) -> AsyncIterator[None]:
    yield
    async with pool.acquire() as conn:
        await conn.execute("DELETE FROM console.totp_policy")


async def test_enrol_then_sign_in_with_a_code_and_a_wrong_or_replayed_code_is_refused(
    context: BrowserContext, pool: asyncpg.Pool, database_url: str
) -> None:
    email = await make_user(pool, "tess@ops.test", Role.FINANCE)
    page = await sign_in(context, email)  # one step: no policy, not enrolled
    await expect(page.get_by_role("link", name="Dashboard")).to_be_visible()
    secret = await _enrol(page)
    await expect(page.locator("#totp-status")).to_have_text("on")

    await page.get_by_role("button", name="Sign out").click()
    page = await sign_in(context, email)
    await expect(page.get_by_role("heading", level=1)).to_have_text("Verification code")
    assert await page.locator("nav[aria-label=Main]").count() == 0
    refused = await page.goto("/console/settlements")  # nothing opens before the code
    assert refused is not None
    assert refused.url.endswith("/console/login/code")

    good = _code(secret, steps_ahead=1)
    wrong = next(c for c in ("000000", "111111") if c not in {good, _code(secret)})
    await page.get_by_label("Code").fill(wrong)
    await page.get_by_role("button", name="Verify").click()
    await expect(page.get_by_role("alert")).to_contain_text("wrong")
    await page.get_by_label("Code").fill(good)
    await page.get_by_role("button", name="Verify").click()
    await expect(page.get_by_role("link", name="Settlements")).to_be_visible()

    await page.get_by_role("button", name="Sign out").click()
    page = await sign_in(context, email)
    await page.get_by_label("Code").fill(good)  # the same code again, within its window
    await page.get_by_role("button", name="Verify").click()
    await expect(page.get_by_role("alert")).to_contain_text("used already")

    async with pool.acquire() as conn:
        sealed = await conn.fetchval(
            "SELECT totp_sealed FROM console.users WHERE email = $1", email
        )
        audit_text = await conn.fetchval(
            "SELECT string_agg(concat_ws(' ', action, before, after, detail), ' ') "
            "FROM console.audit_log WHERE subject = $1",
            f"user:{email}",
        )
        failures = await conn.fetchval(
            "SELECT count(*) FROM console.sign_in_failures WHERE email = $1", email
        )
    assert secret.encode() not in sealed  # sealed, not stored as typed
    assert "totp.enrol" in audit_text
    assert secret not in audit_text
    assert failures == 1  # the replayed code counts toward the lockout (the wrong one was reset)

    await page.get_by_role("button", name="Sign out").click()  # the pending session too
    assert await cli_users.totp_reset(database_url, email) is True
    page = await sign_in(context, email)  # one step again
    await expect(page.get_by_role("link", name="Dashboard")).to_be_visible()


async def test_admin_makes_totp_mandatory_for_a_role_and_its_user_enrols_first(
    context: BrowserContext,
    browser: Browser,
    base_url: str,
    admin: str,
    pool: asyncpg.Pool,
    no_policy: None,
) -> None:
    newcomer = await make_user(pool, "sid@ops.test", Role.SUPPORT)
    page = await sign_in(context, admin)
    await page.get_by_role("link", name="Security").click()
    await page.get_by_label("support").check()
    await page.get_by_role("button", name="Save policy").click()
    await expect(page.get_by_role("status")).to_have_text("The policy is saved.")
    await expect(page.get_by_label("support")).to_be_checked()

    second = await browser.new_context(base_url=base_url)
    other = await sign_in(second, newcomer)
    await expect(other.get_by_role("heading", level=1)).to_have_text("Set up two-step sign-in")
    await expect(other.get_by_role("status")).to_contain_text("requires")
    blocked = await other.goto("/console/shoppers")
    assert blocked is not None
    assert blocked.url.endswith("/console/security/totp")
    secret = (await other.locator("#secret").text_content() or "").strip()
    await other.get_by_label("Code").fill(_code(secret))
    await other.get_by_role("button", name="Turn on").click()
    await expect(other.get_by_role("heading", level=1)).to_have_text("Partners")  # home
    await other.get_by_role("link", name="Shoppers").click()
    await expect(other.get_by_role("heading", level=1)).to_have_text("Shoppers")
    await second.close()

    async with pool.acquire() as conn:
        rows = await conn.fetch(
            "SELECT action, actor, after FROM console.audit_log "
            "WHERE action IN ('totp.policy', 'totp.enrol') ORDER BY audit_id DESC LIMIT 2"
        )
    assert [(r["action"], r["actor"]) for r in reversed(rows)] == [
        ("totp.policy", admin),
        ("totp.enrol", newcomer),
    ]
    assert '"support": true' in rows[1]["after"]


async def test_only_an_admin_changes_the_policy_and_a_forged_post_is_refused(
    context: BrowserContext, finance: str, pool: asyncpg.Pool, no_policy: None
) -> None:
    page = await sign_in(context, finance)
    await page.goto("/console/security")
    assert await page.get_by_role("button", name="Save policy").count() == 0
    forged = await page.request.post(
        "/console/security/policy",
        form={"_csrf_token": await csrf_token(page), "required_finance": "on"},
    )
    assert forged.status == 403
    async with pool.acquire() as conn:
        assert await totp.is_required(conn, Role.FINANCE) is False


async def test_wrong_codes_count_toward_the_lockout(pool: asyncpg.Pool) -> None:
    box = KeyBox(secrets.token_bytes(32))
    now = datetime.now(UTC)
    async with pool.acquire() as conn, conn.transaction():
        user = await users.create_user(
            conn, "lock@ops.test", Role.AUDITOR, PASSWORD, created_by="t"
        )
        secret = (await totp.start_enrolment(conn, box, user.user_id, user.email)).secret
        good = pyotp.TOTP(secret).at(now)
        assert await totp.confirm_enrolment(conn, box, user.user_id, good, now=now)
    later = now + timedelta(seconds=totp.STEP_S)
    async with pool.acquire() as conn, conn.transaction():
        session = await users.sign_in(conn, user.email, PASSWORD, now=later)
        assert isinstance(session, users.Session)
        assert session.user.stage == users.STAGE_TOTP
        wrong = "000000" if pyotp.TOTP(secret).at(later) != "000000" else "111111"
        outcomes = [
            await users.second_step(conn, box, session.token, wrong, now=later)
            for _ in range(users.FAILURES_MAX)
        ]
        assert outcomes[:-1] == [users.Refused(locked=False)] * (users.FAILURES_MAX - 1)
        assert outcomes[-1] == users.Refused(locked=True)
        # The pending session is gone, and the password alone is refused until the window ends.
        right = pyotp.TOTP(secret).at(later)
        assert await users.second_step(conn, box, session.token, right, now=later) is None
        assert await users.sign_in(conn, user.email, PASSWORD, now=later) == users.Refused(
            locked=True
        )


async def test_the_cli_resets_totp_and_refuses_an_unknown_email(
    database_url: str, data_dir: Path, pool: asyncpg.Pool
) -> None:
    box = KeyBox(secrets.token_bytes(32))
    now = datetime.now(UTC)
    async with pool.acquire() as conn, conn.transaction():
        user = await users.create_user(conn, "lost@ops.test", Role.ADMIN, PASSWORD, created_by="t")
        secret = (await totp.start_enrolment(conn, box, user.user_id, user.email)).secret
        assert await totp.confirm_enrolment(
            conn, box, user.user_id, pyotp.TOTP(secret).at(now), now=now
        )
    env = {k: v for k, v in os.environ.items() if not k.startswith("COALITION_")}
    env.update({"DATABASE_URL": database_url, "COALITION_DATA_DIR": str(data_dir)})

    def run(email: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "gateway.cli", "user", "totp-reset", email],
            env=env,
            text=True,
            capture_output=True,
            timeout=60,
            check=False,
        )

    reset = run("Lost@Ops.test")
    assert reset.returncode == 0, reset.stderr
    assert "TOTP reset for" in reset.stdout
    unknown = run("nobody@ops.test")
    assert unknown.returncode != 0
    assert "no console user" in unknown.stderr
    async with pool.acquire() as conn:
        assert await totp.is_enrolled(conn, user.user_id) is False
        actor = await conn.fetchval(
            "SELECT actor FROM console.audit_log WHERE action = 'totp.reset' AND subject = $1",
            "user:lost@ops.test",
        )
    assert actor == "cli"
