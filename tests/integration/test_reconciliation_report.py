"""Reconciliation on real PostgreSQL: a partner file with injected differences produces the
exact report; the reader streams in bounded memory; resolutions post linked, audited entries."""

from __future__ import annotations

import itertools
import tracemalloc
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import asyncpg
import msgspec
import pytest

from contracts.partners import EnrollRequest, PartnerCreate, PurchaseRequest, RedemptionRequest
from contracts.settlement import ReconciliationReport, ResolveRequest
from infra.db import Conn
from ledger import reconciliation
from ledger import service as ledger
from ledger.reconciliation import (
    AdjustmentInvalid,
    ItemAlreadyResolved,
    ReconciliationHeaderInvalid,
    ReconciliationTooLarge,
)
from ledger.settlement import StatementNotFound
from partners import operations

_slugs = itertools.count()
HEADER = "partner_ref,type,card_number,points,amount_minor,occurred_at"
WHEN = "2030-01-02T10:00:00+00:00"
Shape = tuple[str, int | None, str | None, tuple[str, ...]]


class Network(msgspec.Struct):
    partner_id: int
    card: str
    shopper_id: int
    start: datetime
    end: datetime


async def chunks_of(text: str, size: int = 7) -> AsyncIterator[bytes]:
    data = text.encode()
    for i in range(0, len(data), size):
        yield data[i : i + size]


async def network_with_history(conn: Conn) -> Network:
    """p-1..p-5 purchases of 10.00 (10 points each), r-1 redeems 5 points (value 0.02)."""
    start = datetime.now(UTC) - timedelta(seconds=1)
    partner = await operations.create_partner(
        conn,
        PartnerCreate(
            name="Grocer",
            slug=f"grocer-{next(_slugs)}",
            issue_price_micros=5_000,
            redemption_price_micros=4_000,
            earn_points=1,
            earn_spend_minor=100,
        ),
        operator="test",
    )
    enrolled = await operations.enroll_shopper(conn, partner.id, EnrollRequest())
    for n in range(1, 6):
        await operations.purchase(
            conn,
            partner.id,
            PurchaseRequest(
                partner_ref=f"p-{n}",
                card_number=enrolled.card_number,
                amount_minor=1_000,
                currency="EUR",
            ),
            idempotency_key=f"idem-p-{n}-{partner.id}",
        )
    await operations.redeem(
        conn,
        partner.id,
        RedemptionRequest(partner_ref="r-1", card_number=enrolled.card_number, points=5),
        idempotency_key=f"idem-r-1-{partner.id}",
    )
    return Network(
        partner_id=partner.id,
        card=enrolled.card_number,
        shopper_id=enrolled.shopper_id,
        start=start,
        end=datetime.now(UTC) + timedelta(seconds=1),
    )


def partner_file(card: str) -> str:
    return (
        "\n".join(
            [
                HEADER,
                f"p-1,purchase,{card},10,1000,{WHEN}",  # 2 matched
                f"p-2,purchase,{card},11,1000,{WHEN}",  # 3 wrong points
                f"p-3,purchase,{card},10,999,{WHEN}",  # 4 wrong amount
                f"p-9,purchase,{card},10,1000,{WHEN}",  # 5 missing in the network
                f"p-1,purchase,{card},10,1000,{WHEN}",  # 6 duplicate of line 2
                "x,y",  # 7 malformed: too few fields
                "",  # blank: skipped
                f"p-4,purchase,{card},ten,1000,{WHEN}",  # 9 malformed points
                f"r-1,redemption,{card},5,2,{WHEN}",  # 10 matched
            ]
        )
        + "\n"
    )  # p-5 is missing at the partner


async def reconcile(conn: Conn, net: Network, fmt: str, text: str) -> ReconciliationReport:
    return await reconciliation.reconcile(
        conn,
        partner_id=net.partner_id,
        period_start=net.start,
        period_end=net.end,
        source_format=fmt,  # type: ignore[arg-type]
        chunks=chunks_of(text),
    )


def shape(
    report: ReconciliationReport,
) -> list[tuple[str, int | None, str | None, tuple[str, ...]]]:
    return [(i.status, i.line_no, i.partner_ref, tuple(i.mismatch)) for i in report.items]


EXPECTED_ITEMS: list[Shape] = [
    ("mismatched", 3, "p-2", ("points",)),
    ("mismatched", 4, "p-3", ("amount",)),
    ("missing_in_network", 5, "p-9", ()),
    ("duplicate", 6, "p-1", ()),
    ("malformed", 7, "x", ()),
    ("malformed", 9, "p-4", ()),
    ("missing_at_partner", None, "p-5", ()),
]


async def test_a_file_with_injected_differences_gives_the_exact_report(pool: asyncpg.Pool) -> None:
    async with pool.acquire() as conn:
        net = await network_with_history(conn)
        report = await reconcile(conn, net, "csv", partner_file(net.card))
    t = report.totals
    assert (t.lines_total, t.matched, t.missing_in_network, t.missing_at_partner) == (8, 2, 1, 1)
    assert (t.mismatched_points, t.mismatched_amount, t.mismatched_other) == (1, 1, 0)
    assert (t.duplicates, t.malformed) == (1, 2)
    assert (t.partner_points_total, t.network_points_total) == (10 + 11 + 10 + 10 + 5, 55)
    assert (t.partner_amount_minor_total, t.network_amount_minor_total) == (
        1000 + 1000 + 999 + 1000 + 2,
        5 * 1000 + 2,
    )
    assert shape(report) == EXPECTED_ITEMS
    by_line = {i.line_no: i for i in report.items}
    assert (by_line[3].partner_points, by_line[3].network_points) == (11, 10)
    assert (by_line[4].partner_amount_minor, by_line[4].network_amount_minor) == (999, 1000)
    assert by_line[6].detail == "partner_ref first seen on line 2"
    assert by_line[7].detail == "expected 6 fields, found 2"
    assert (by_line[9].detail or "").startswith("points:")


async def test_json_lines_reconcile_like_csv(pool: asyncpg.Pool) -> None:
    async with pool.acquire() as conn:
        net = await network_with_history(conn)
        lines = []
        for line in partner_file(net.card).splitlines()[1:]:
            cells = line.split(",")
            if len(cells) != len(HEADER.split(",")):
                lines.append(line and "{not json")
                continue
            record: dict[str, object] = dict(zip(HEADER.split(","), cells, strict=True))
            for name in ("points", "amount_minor"):
                text = str(record[name])
                record[name] = int(text) if text.isdigit() else text
            lines.append(msgspec.json.encode(record).decode())
        report = await reconcile(conn, net, "jsonl", "\n".join(lines))
    # JSON lines have no header: every line number is one less than in the CSV.
    shifted = [(s, n if n is None else n + 1, r, m) for s, n, r, m in shape(report)]
    expected = [(s, n, None if n == 7 else r, m) for s, n, r, m in EXPECTED_ITEMS]
    assert shifted == expected


async def test_a_bad_header_or_an_oversized_upload_is_refused(pool: asyncpg.Pool) -> None:
    async with pool.acquire() as conn:
        net = await network_with_history(conn)
        with pytest.raises(ReconciliationHeaderInvalid):
            await reconcile(conn, net, "csv", "ref,kind\np-1,purchase\n")
        with pytest.raises(ReconciliationTooLarge):
            await reconciliation.reconcile(
                conn,
                partner_id=net.partner_id,
                period_start=net.start,
                period_end=net.end,
                source_format="csv",
                chunks=chunks_of(partner_file(net.card)),
                bytes_max=100,
            )
        long_line = f"p-1,purchase,{net.card},10,1000,{WHEN}" + " " * 3_000
        report = await reconcile(conn, net, "csv", f"{HEADER}\n{long_line}\n")
        assert report.items[0].status == "malformed"
        assert report.items[0].line_no == 2
        assert report.items[0].detail == "line longer than 2048 bytes"


async def test_twenty_thousand_lines_stream_in_bounded_memory(pool: asyncpg.Pool) -> None:
    lines_total = 20_000

    async def big_file() -> AsyncIterator[bytes]:
        yield (HEADER + "\n").encode()
        for n in range(lines_total):
            yield f"big-{n},purchase,4000000000000002,1,100,{WHEN}\n".encode()

    async with pool.acquire() as conn:
        net = await network_with_history(conn)
        tracemalloc.start()
        try:
            report = await reconciliation.reconcile(
                conn,
                partner_id=net.partner_id,
                period_start=net.start,
                period_end=net.end,
                source_format="csv",
                chunks=big_file(),
            )
            _, peak_bytes = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    assert report.totals.lines_total == lines_total
    assert report.totals.missing_in_network == lines_total
    assert report.totals.missing_at_partner == 6
    # One staging batch (10,000 tuples) plus the first page is the most Python ever holds.
    assert peak_bytes < 12 * 1_048_576, peak_bytes


async def test_resolutions_post_linked_entries_and_are_audited(pool: asyncpg.Pool) -> None:
    async with pool.acquire() as conn:
        net = await network_with_history(conn)
        report = await reconcile(conn, net, "csv", partner_file(net.card))
        missing = next(i for i in report.items if i.status == "missing_in_network")
        dup = next(i for i in report.items if i.status == "duplicate")
        rid = report.reconciliation_id
        before = await ledger.balance(conn, ledger.settlement_account(net.partner_id))
        with pytest.raises(AdjustmentInvalid):
            await reconciliation.resolve_item(
                conn,
                rid,
                missing.item_no,
                actor="ops",
                request=ResolveRequest(action="adjust", reason="no shopper"),
            )
        adjusted = await reconciliation.resolve_item(
            conn,
            rid,
            missing.item_no,
            actor="finance:alice",
            request=ResolveRequest(
                action="adjust",
                reason="till was offline; credit the purchase",
                shopper_id=net.shopper_id,
                points=10,
                issue_price_micros=5_000,
            ),
        )
        explained = await reconciliation.resolve_item(
            conn,
            rid,
            dup.item_no,
            actor="finance:bob",
            request=ResolveRequest(action="explain", reason="export ran twice"),
        )
        with pytest.raises(ItemAlreadyResolved):
            await reconciliation.resolve_item(
                conn,
                rid,
                dup.item_no,
                actor="finance:bob",
                request=ResolveRequest(action="explain", reason="again"),
            )
        with pytest.raises(StatementNotFound):
            await reconciliation.get_reconciliation(
                conn, rid, partner_id=net.partner_id + 1_000, cursor=None, limit=10
            )
        audit = await conn.fetch(
            "SELECT item_no, action, actor, reason, adjustment_entry_id"
            " FROM settlement.reconciliation_audit WHERE reconciliation_id = $1 ORDER BY audit_id",
            rid,
        )
        entry = await conn.fetchrow(
            "SELECT kind, partner_id, metadata FROM ledger.entry WHERE entry_id = $1",
            adjusted.adjustment_entry_id,
        )
        after = await ledger.balance(conn, ledger.settlement_account(net.partner_id))
    assert adjusted.resolution == "adjusted"
    assert explained.resolution == "explained"
    assert explained.resolved_by == "finance:bob"
    assert [(r["item_no"], r["action"], r["actor"]) for r in audit] == [
        (missing.item_no, "adjusted", "finance:alice"),
        (dup.item_no, "explained", "finance:bob"),
    ]
    assert audit[0]["adjustment_entry_id"] == adjusted.adjustment_entry_id
    assert entry is not None
    assert (entry["kind"], entry["partner_id"]) == ("goodwill", net.partner_id)
    assert after - before == 10 * 5_000  # the partner pays for the points it forgot
