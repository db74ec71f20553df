"""Backup and restore, as an operator runs them: `coalition backup` of a live network, `coalition
restore` into a fresh PostgreSQL cluster, `coalition verify` green there with the hash chain
continuous, and the restored network serves the balances it had at the backup."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

import asyncpg
import httpx
import pytest

from contracts.partners import (
    HoldRequest,
    PurchaseRequest,
    RedemptionRequest,
    RefundRequest,
)
from contracts.sdk import CoalitionError, PartnerClient
from gateway.tokens import SigningKey
from infra import embedded
from ledger import service as ledger
from tests.e2e.test_cli import base_env
from tests.support.partner_network import Onboarded, onboard
from tests.support.server import running_server, server_settings

CLI_TIMEOUT_S = 120


def coalition(data_dir: Path, dsn: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "gateway.cli", *args],
        env=base_env(data_dir, DATABASE_URL=dsn),
        text=True,
        capture_output=True,
        timeout=CLI_TIMEOUT_S,
        check=False,
    )


async def activity(client: PartnerClient, other: PartnerClient, tag: str) -> list[str]:
    """Earn at one partner, burn, hold, capture and refund at another: every kind of entry."""
    cards = []
    for n in range(3):
        holder = await client.enroll()
        cards.append(holder.card_number)
        await client.purchase(
            PurchaseRequest(
                partner_ref=f"{tag}-buy-{n}",
                card_number=holder.card_number,
                amount_minor=10_000 + n,
                currency="EUR",
            )
        )
    await other.redeem(RedemptionRequest(partner_ref=f"{tag}-use", card_number=cards[0], points=30))
    await other.refund(
        RefundRequest(partner_ref=f"{tag}-rf", original_partner_ref=f"{tag}-use", points=5)
    )
    hold = await other.hold(HoldRequest(partner_ref=f"{tag}-hold", card_number=cards[1], points=20))
    await other.capture(hold.hold_id, 12)
    await other.hold(HoldRequest(partner_ref=f"{tag}-open", card_number=cards[2], points=7))
    return cards


async def balances(client: PartnerClient, cards: list[str]) -> list[tuple[int, int]]:
    return [((view := await client.shopper(card)).balance, view.held) for card in cards]


async def chain(dsn: str) -> list[tuple[int, bytes, bytes]]:
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch("SELECT block_id, prev_hash, hash FROM ledger.block ORDER BY 1")
    finally:
        await conn.close()
    return [(r["block_id"], r["prev_hash"], r["hash"]) for r in rows]


async def seal_all(dsn: str) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        while await ledger.seal_blocks(conn) > 0:
            pass
    finally:
        await conn.close()


@pytest.fixture
def fresh_cluster(tmp_path: Path) -> object:
    server = embedded.start(tmp_path / "restored", cleanup_mode="delete")
    yield server
    server.stop()


async def test_a_backup_restores_into_a_fresh_cluster_verified_and_serving_the_same_balances(
    http: httpx.AsyncClient,
    base_url: str,
    signing_key: SigningKey,
    database_url: str,
    data_dir: Path,
    tmp_path: Path,
    fresh_cluster: embedded.EmbeddedPostgres,
) -> None:
    earner: Onboarded = await onboard(http, signing_key, "backup-earner")
    burner: Onboarded = await onboard(http, signing_key, "backup-burner")
    async with earner.client(base_url) as client, burner.client(base_url) as other:
        cards = await activity(client, other, "before")
        await seal_all(database_url)
        await activity(client, other, "unsealed")  # entries still in the seal queue
        cards_at_backup = cards + await activity(client, other, "more")
        at_backup = await balances(client, cards_at_backup)
        chain_at_backup = await chain(database_url)

        dump_file = tmp_path / "network.dump"
        made = await asyncio.to_thread(coalition, data_dir, database_url, "backup", str(dump_file))
        assert made.returncode == 0, made.stderr
        assert dump_file.stat().st_size > 0
        assert "master-key" in made.stdout  # the operator is told to keep the keys apart

        after = await client.enroll()  # after the backup: not in the restored copy
        await client.purchase(
            PurchaseRequest(
                partner_ref="after-buy",
                card_number=after.card_number,
                amount_minor=5_000,
                currency="EUR",
            )
        )

    target = fresh_cluster.dsn
    restored = await asyncio.to_thread(coalition, data_dir, target, "restore", str(dump_file))
    assert restored.returncode == 0, restored.stderr
    verified = await asyncio.to_thread(coalition, data_dir, target, "verify")
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert "hash chain is intact" in verified.stdout
    assert await chain(target) == chain_at_backup
    await seal_all(target)  # the chain goes on from where it stopped, and still verifies
    continued = await chain(target)
    assert len(continued) > len(chain_at_backup)
    assert continued[len(chain_at_backup)][1] == chain_at_backup[-1][2]
    verified_again = await asyncio.to_thread(coalition, data_dir, target, "verify")
    assert verified_again.returncode == 0, verified_again.stdout + verified_again.stderr

    async with running_server(server_settings(target, data_dir)) as restored_url:
        async with earner.client(restored_url) as client:
            assert await balances(client, cards_at_backup) == at_backup
            with pytest.raises(CoalitionError) as missing:
                await client.shopper(after.card_number)
        assert missing.value.status == 404


async def test_a_restore_refuses_a_database_that_is_not_empty(
    database_url: str, data_dir: Path, tmp_path: Path
) -> None:
    dump_file = tmp_path / "refused.dump"
    made = await asyncio.to_thread(coalition, data_dir, database_url, "backup", str(dump_file))
    assert made.returncode == 0, made.stderr
    refused = await asyncio.to_thread(coalition, data_dir, database_url, "restore", str(dump_file))
    assert refused.returncode == 1
    assert "needs an empty one" in refused.stderr
    missing = await asyncio.to_thread(
        coalition, data_dir, database_url, "backup", str(tmp_path / "no" / "such" / "dir.dump")
    )
    assert missing.returncode == 1
    assert "pg_dump failed" in missing.stderr
    assert "password" not in missing.stderr.lower() or "***" in missing.stderr
