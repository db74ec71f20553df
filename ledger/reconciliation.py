"""Reconciliation: a partner's own transaction log for a period, matched by `partner_ref`
against the network's record, and the operator's resolution of each difference.

Streaming and bounded: the log arrives as byte chunks, is split into lines (each at most
LINE_BYTES_MAX), parsed one line at a time and copied into a temporary table in batches of
STAGE_BATCH_LINES; the matching is one set-based SQL statement. Python never holds more than
one batch, whatever the size of the file.

What the network's side is: `partner_transactions` (the partner-facing index of ledger
entries by partner_ref, written in the same transaction as the entry): the points and money
that actually moved (a hold counts its captured points, a voided hold none; a purchase its
amount, a redemption its reimbursement value, a refund its refunded amount).
"""

from __future__ import annotations

import base64
import binascii
import csv
import re
from collections.abc import AsyncIterable, AsyncIterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

import asyncpg
import msgspec

from contracts.errors import DomainError
from contracts.settlement import (
    RECONCILIATION_FIELDS,
    ReconciliationItem,
    ReconciliationReport,
    ReconciliationTotals,
    ResolveRequest,
    SettlementErrorCode,
)
from infra import outbox
from infra.db import Conn
from ledger import _settlement_queries as q
from ledger import service as ledger
from ledger.errors import LedgerError
from ledger.settlement import AdjustmentRefused, CursorInvalid, InvalidInput, StatementNotFound

__all__ = [
    "CHUNK_BYTES",
    "LINES_MAX",
    "LINE_BYTES_MAX",
    "STAGE_BATCH_LINES",
    "UPLOAD_BYTES_MAX",
    "AdjustmentInvalid",
    "Format",
    "ItemAlreadyResolved",
    "ReconciliationHeaderInvalid",
    "ReconciliationTooLarge",
    "ResolutionCounts",
    "get_item",
    "get_reconciliation",
    "iter_chunks",
    "reconcile",
    "resolution_counts",
    "resolve_item",
]

LINE_BYTES_MAX = 2_048
LINES_MAX = 5_000_000
UPLOAD_BYTES_MAX = 512 * 1_048_576  # a service call; HTTP uploads have their own, smaller bound
STAGE_BATCH_LINES = 10_000
CHUNK_BYTES = 65_536
ITEMS_LIMIT_MAX = 1_000
PARTNER_REF_PATTERN = re.compile(r"^[!-~]{1,64}$")
CARD_PATTERN = re.compile(r"^[0-9]{12,19}$")
TYPES = frozenset({"purchase", "redemption", "hold", "refund"})
POINTS_MAX = 1_000_000_000
AMOUNT_MINOR_MAX = 100_000_000_000
DETAIL_CHARS_MAX = 200

Format = Literal["csv", "jsonl"]


class ReconciliationTooLarge(DomainError):
    code = SettlementErrorCode.RECONCILIATION_TOO_LARGE

    def __init__(self, what: str, limit: int) -> None:
        super().__init__(
            f"the upload has more than {limit} {what}; split the log into smaller periods"
        )


class ReconciliationHeaderInvalid(DomainError):
    code = SettlementErrorCode.RECONCILIATION_HEADER_INVALID

    def __init__(self, found: list[str]) -> None:
        super().__init__(
            f"the CSV header must name the columns {', '.join(RECONCILIATION_FIELDS)} "
            f"(found {', '.join(found) or 'nothing'})"
        )


class ItemAlreadyResolved(DomainError):
    code = SettlementErrorCode.ITEM_ALREADY_RESOLVED

    def __init__(self, reconciliation_id: int, item_no: int, resolution: str) -> None:
        super().__init__(
            f"item {item_no} of reconciliation {reconciliation_id} is already {resolution}"
        )


class AdjustmentInvalid(DomainError):
    code = SettlementErrorCode.ADJUSTMENT_INVALID

    def __init__(self, reason: str) -> None:
        super().__init__(reason)


class _Malformed(Exception):
    """A line that cannot be read; the message goes into the report."""


class _JsonLine(msgspec.Struct, forbid_unknown_fields=True):
    partner_ref: str
    type: str
    card_number: str
    points: int
    occurred_at: datetime
    amount_minor: int | None = None


_json_line = msgspec.json.Decoder(_JsonLine)

# ---- upload ----------------------------------------------------------------------------------


async def iter_chunks(data: bytes, size: int = CHUNK_BYTES) -> AsyncIterator[bytes]:
    """Yield a buffered body in chunks, for `reconcile`'s streaming reader."""
    view = memoryview(data)
    for start in range(0, len(view), size):
        yield bytes(view[start : start + size])


async def reconcile(
    conn: Conn,
    *,
    partner_id: int,
    period_start: datetime,
    period_end: datetime,
    source_format: Format,
    chunks: AsyncIterable[bytes],
    bytes_max: int = UPLOAD_BYTES_MAX,
    lines_max: int = LINES_MAX,
) -> ReconciliationReport:
    """Match the partner's log against the network's record for [period_start, period_end) and
    store the report: totals, and every difference with its line number. Returns the report
    with its first page of differences."""
    _check_period(period_start, period_end)
    async with conn.transaction():
        reconciliation_id: int = await conn.fetchval(
            q.INSERT_RECONCILIATION, partner_id, period_start, period_end, source_format
        )
        await conn.execute(q.CREATE_STAGE)
        lines_total = await _stage(conn, source_format, chunks, bytes_max, lines_max)
        await conn.execute(q.ANALYZE_STAGE)
        await _match_and_total(
            conn, reconciliation_id, partner_id, period_start, period_end, lines_total
        )
        report = await get_reconciliation(
            conn, reconciliation_id, partner_id=partner_id, cursor=None, limit=100
        )
        # `reconciliation.completed`, to the partner, committed with the stored report.
        await outbox.record(
            conn,
            "reconciliation.completed",
            partner_id=partner_id,
            payload={
                "reconciliation_id": reconciliation_id,
                "period_start": period_start.isoformat(),
                "period_end": period_end.isoformat(),
                "source_format": source_format,
                "totals": msgspec.to_builtins(report.totals),
            },
        )
        return report


def _check_period(period_start: datetime, period_end: datetime) -> None:
    if period_start.utcoffset() is None or period_end.utcoffset() is None:
        raise InvalidInput("period_start", "period bounds must be timezone-aware")
    if not period_start < period_end:
        raise InvalidInput("period_end", "must be after period_start")


async def _match_and_total(
    conn: Conn,
    reconciliation_id: int,
    partner_id: int,
    period_start: datetime,
    period_end: datetime,
    lines_total: int,
) -> None:
    """Store every difference between the staged log and the network's record, then the
    report's totals."""
    counts = await conn.fetchrow(
        q.INSERT_ITEMS, reconciliation_id, partner_id, period_start, period_end
    )
    totals = await conn.fetchrow(q.STAGE_TOTALS, partner_id, period_start, period_end)
    assert counts is not None
    assert totals is not None
    matched = totals["firsts"] - counts["missing_in_network"] - counts["mismatched"]
    assert matched >= 0, (dict(counts), dict(totals))
    await conn.execute(
        q.SET_TOTALS,
        reconciliation_id,
        lines_total,
        matched,
        counts["missing_in_network"],
        counts["missing_at_partner"],
        counts["mismatched_points"],
        counts["mismatched_amount"],
        counts["mismatched_other"],
        counts["duplicates"],
        counts["malformed"],
        totals["partner_points"],
        totals["network_points"],
        totals["partner_amount"],
        totals["network_amount"],
    )


async def _stage(
    conn: Conn,
    source_format: Format,
    chunks: AsyncIterable[bytes],
    bytes_max: int,
    lines_max: int,
) -> int:
    """Parse and copy the log into the stage tables; return the number of data lines."""
    good: list[tuple[Any, ...]] = []
    bad: list[tuple[Any, ...]] = []
    columns: dict[str, int] | None = None
    data_lines = 0

    async def flush(force: bool) -> None:
        if good and (force or len(good) >= STAGE_BATCH_LINES):
            await conn.copy_records_to_table(q.STAGE_TABLE, records=good, columns=q.STAGE_COLUMNS)
            good.clear()
        if bad and (force or len(bad) >= STAGE_BATCH_LINES):
            await conn.copy_records_to_table(q.BAD_TABLE, records=bad, columns=q.BAD_COLUMNS)
            bad.clear()

    async for line_no, raw in _lines(chunks, bytes_max):
        if raw is None:
            data_lines += 1
            bad.append((line_no, None, f"line longer than {LINE_BYTES_MAX} bytes"))
            await flush(False)
            continue
        if not raw.strip():
            continue  # blank lines carry nothing
        if source_format == "csv" and columns is None:
            columns = _header(raw)
            continue
        data_lines += 1
        if data_lines > lines_max:
            raise ReconciliationTooLarge("lines", lines_max)
        try:
            record = _parse_csv(raw, columns) if columns is not None else _parse_json(raw)
        except _Malformed as exc:
            bad.append((line_no, _ref_hint(raw, source_format), str(exc)[:DETAIL_CHARS_MAX]))
        else:
            good.append((line_no, *record))
        await flush(False)
    if source_format == "csv" and columns is None:
        raise ReconciliationHeaderInvalid([])
    await flush(True)
    return data_lines


async def _lines(
    chunks: AsyncIterable[bytes], bytes_max: int
) -> AsyncIterator[tuple[int, bytes | None]]:
    """Physical lines, numbered from 1; None for a line over LINE_BYTES_MAX (its bytes are
    skipped, not buffered)."""
    buffer = bytearray()
    line_no = 0
    seen = 0
    skipping = False
    async for chunk in chunks:
        seen += len(chunk)
        if seen > bytes_max:
            raise ReconciliationTooLarge("bytes", bytes_max)
        start = 0
        while True:
            end = chunk.find(b"\n", start)
            if end < 0:
                if not skipping:
                    buffer += chunk[start:]
                    if len(buffer) > LINE_BYTES_MAX:
                        skipping = True
                        buffer.clear()
                break
            line_no += 1
            if skipping:
                skipping = False
                yield line_no, None
            else:
                buffer += chunk[start:end]
                if len(buffer) > LINE_BYTES_MAX:
                    yield line_no, None
                else:
                    yield line_no, bytes(buffer).rstrip(b"\r")
            buffer.clear()
            start = end + 1
    if skipping:
        yield line_no + 1, None
    elif buffer:
        yield line_no + 1, bytes(buffer).rstrip(b"\r")


def _header(raw: bytes) -> dict[str, int]:
    try:
        names = [n.strip() for n in next(csv.reader([raw.decode("utf-8-sig")]))]
    except (UnicodeDecodeError, csv.Error, StopIteration):
        raise ReconciliationHeaderInvalid([]) from None
    if sorted(names) != sorted(RECONCILIATION_FIELDS):
        raise ReconciliationHeaderInvalid(names)
    return {name: i for i, name in enumerate(names)}


def _parse_csv(raw: bytes, columns: Mapping[str, int]) -> tuple[Any, ...]:
    try:
        cells = next(csv.reader([raw.decode("utf-8")]))
    except (UnicodeDecodeError, csv.Error, StopIteration) as exc:
        raise _Malformed(f"unreadable CSV line: {exc}") from None
    if len(cells) != len(RECONCILIATION_FIELDS):
        raise _Malformed(f"expected {len(RECONCILIATION_FIELDS)} fields, found {len(cells)}")

    def cell(name: str) -> str:
        return cells[columns[name]].strip()

    amount_text = cell("amount_minor")
    return _validated(
        partner_ref=cell("partner_ref"),
        kind=cell("type"),
        card_number=cell("card_number"),
        points=_integer(cell("points"), "points"),
        amount_minor=None if amount_text == "" else _integer(amount_text, "amount_minor"),
        occurred_at=_moment(cell("occurred_at")),
    )


def _parse_json(raw: bytes) -> tuple[Any, ...]:
    try:
        line = _json_line.decode(raw)
    except msgspec.DecodeError as exc:
        raise _Malformed(f"unreadable JSON line: {exc}") from None
    if line.occurred_at.utcoffset() is None:
        raise _Malformed("occurred_at: needs a time zone")
    return _validated(
        partner_ref=line.partner_ref,
        kind=line.type,
        card_number=line.card_number,
        points=line.points,
        amount_minor=line.amount_minor,
        occurred_at=line.occurred_at,
    )


def _validated(
    *,
    partner_ref: str,
    kind: str,
    card_number: str,
    points: int,
    amount_minor: int | None,
    occurred_at: datetime,
) -> tuple[Any, ...]:
    if not PARTNER_REF_PATTERN.match(partner_ref):
        raise _Malformed("partner_ref: 1 to 64 visible ASCII characters")
    if kind not in TYPES:
        raise _Malformed(f"type: one of {', '.join(sorted(TYPES))}")
    if not CARD_PATTERN.match(card_number):
        raise _Malformed("card_number: 12 to 19 digits")
    if not 0 <= points <= POINTS_MAX:
        raise _Malformed(f"points: 0 to {POINTS_MAX}")
    if amount_minor is not None and not 0 <= amount_minor <= AMOUNT_MINOR_MAX:
        raise _Malformed(f"amount_minor: 0 to {AMOUNT_MINOR_MAX}")
    return (partner_ref, kind, card_number, points, amount_minor, occurred_at)


def _integer(text: str, field: str) -> int:
    if not re.fullmatch(r"-?[0-9]{1,19}", text):
        raise _Malformed(f"{field}: not an integer: {text[:40]!r}")
    return int(text)


def _moment(text: str) -> datetime:
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise _Malformed(f"occurred_at: not an ISO 8601 time: {text[:40]!r}") from None
    if value.utcoffset() is None:
        raise _Malformed("occurred_at: needs a time zone")
    return value


def _ref_hint(raw: bytes, source_format: Format) -> str | None:
    """The partner_ref of a malformed line when it can be read, to help find it."""
    try:
        text = raw.decode("utf-8")
        if source_format == "jsonl":
            value = msgspec.json.decode(text).get("partner_ref")
        else:
            value = next(csv.reader([text]))[0]
    except Exception:  # a hint only: anything unreadable gives none
        return None
    return value[:64] if isinstance(value, str) and value else None


# ---- reading and resolving -------------------------------------------------------------------


async def get_reconciliation(
    conn: Conn,
    reconciliation_id: int,
    *,
    partner_id: int | None,
    cursor: str | None,
    limit: int,
) -> ReconciliationReport:
    """A report with one page of its differences; `partner_id` scopes it to that partner."""
    if not 1 <= limit <= ITEMS_LIMIT_MAX:
        raise InvalidInput("limit", f"1 to {ITEMS_LIMIT_MAX}")
    row = await conn.fetchrow(q.RECONCILIATION, reconciliation_id, partner_id)
    if row is None:
        raise StatementNotFound("reconciliation")
    after = 0 if cursor is None else _decode_cursor(cursor)
    rows = await conn.fetch(q.ITEMS_PAGE, reconciliation_id, after, limit + 1)
    items = [_item(r) for r in rows[:limit]]
    more = len(rows) > limit
    return ReconciliationReport(
        reconciliation_id=row["reconciliation_id"],
        partner_id=row["partner_id"],
        period_start=row["period_start"],
        period_end=row["period_end"],
        source_format=row["source_format"],
        created_at=row["created_at"],
        totals=ReconciliationTotals(
            lines_total=row["lines_total"],
            matched=row["matched"],
            missing_in_network=row["missing_in_network"],
            missing_at_partner=row["missing_at_partner"],
            mismatched_points=row["mismatched_points"],
            mismatched_amount=row["mismatched_amount"],
            mismatched_other=row["mismatched_other"],
            duplicates=row["duplicates"],
            malformed=row["malformed"],
            partner_points_total=row["partner_points_total"],
            network_points_total=row["network_points_total"],
            partner_amount_minor_total=row["partner_amount_minor_total"],
            network_amount_minor_total=row["network_amount_minor_total"],
        ),
        items=items,
        next_cursor=_encode_cursor(items[-1].item_no) if more else None,
    )


@dataclass(frozen=True)
class ResolutionCounts:
    """A report's differences by whether an operator has resolved them yet."""

    resolved: int
    unresolved: int


async def get_item(
    conn: Conn, reconciliation_id: int, item_no: int, *, partner_id: int | None
) -> ReconciliationItem:
    """One difference of a report; `partner_id` scopes it to that partner's reports."""
    header = await conn.fetchrow(q.RECONCILIATION, reconciliation_id, partner_id)
    item = None if header is None else await conn.fetchrow(q.ITEM, reconciliation_id, item_no)
    if item is None:
        raise StatementNotFound("reconciliation item")
    return _item(item)


async def resolution_counts(conn: Conn, reconciliation_id: int) -> ResolutionCounts:
    """Resolved and unresolved differences over the whole report (pages show only the first)."""
    row = await conn.fetchrow(q.RESOLUTION_COUNTS, reconciliation_id)
    assert row is not None, "an aggregate returns one row"
    return ResolutionCounts(resolved=row["resolved"], unresolved=row["unresolved"])


async def resolve_item(
    conn: Conn,
    reconciliation_id: int,
    item_no: int,
    *,
    actor: str,
    request: ResolveRequest,
) -> ReconciliationItem:
    """Resolve one difference, audited: `explain` records the reason; `adjust` posts a
    goodwill credit (points > 0, paid by the partner at `issue_price_micros`) or debit
    (points < 0) for the shopper, linked to the item and the audit row."""
    async with conn.transaction():
        header = await conn.fetchrow(q.RECONCILIATION, reconciliation_id, None)
        item = await conn.fetchrow(q.ITEM_FOR_UPDATE, reconciliation_id, item_no)
        if header is None or item is None:
            raise StatementNotFound("reconciliation item")
        if item["resolution"] is not None:
            raise ItemAlreadyResolved(reconciliation_id, item_no, item["resolution"])
        entry_id: int | None = None
        if request.action == "adjust":
            entry_id = await _adjust(
                conn, header["partner_id"], reconciliation_id, item_no, request
            )
        resolution = "adjusted" if request.action == "adjust" else "explained"
        updated = await conn.fetchrow(
            q.RESOLVE_ITEM,
            reconciliation_id,
            item_no,
            resolution,
            request.reason,
            actor,
            entry_id,
        )
        await conn.execute(
            q.INSERT_AUDIT, reconciliation_id, item_no, resolution, actor, request.reason, entry_id
        )
        assert updated is not None
        return _item(updated)


async def _adjust(
    conn: Conn, partner_id: int, reconciliation_id: int, item_no: int, request: ResolveRequest
) -> int:
    if request.shopper_id is None or not request.points:
        raise AdjustmentInvalid("an adjustment needs shopper_id and non-zero points")
    key = f"reconciliation:{reconciliation_id}:{item_no}"
    metadata = {"reconciliation_id": reconciliation_id, "item_no": item_no}
    try:
        if request.points > 0:
            if request.issue_price_micros is None:
                raise AdjustmentInvalid("a credit needs issue_price_micros (what the partner pays)")
            entry = await ledger.goodwill(
                conn,
                idempotency_key=key,
                shopper_id=request.shopper_id,
                partner_id=partner_id,
                points=request.points,
                issue_price_micros=request.issue_price_micros,
                expires_at=None,
                reason=request.reason,
                metadata=metadata,
            )
        else:
            entry = await ledger.goodwill_debit(
                conn,
                idempotency_key=key,
                shopper_id=request.shopper_id,
                partner_id=partner_id,
                points=-request.points,
                reason=request.reason,
                metadata=metadata,
            )
    except LedgerError as exc:
        raise AdjustmentRefused(exc.code, str(exc)) from exc
    return entry.entry_id


def _item(row: asyncpg.Record) -> ReconciliationItem:
    transaction = row["network_transaction_id"]
    return ReconciliationItem(
        item_no=row["item_no"],
        status=row["status"],
        line_no=row["line_no"],
        partner_ref=row["partner_ref"],
        mismatch=list(row["mismatch"]),
        detail=row["detail"],
        partner_type=row["partner_type"],
        partner_card=row["partner_card"],
        partner_points=row["partner_points"],
        partner_amount_minor=row["partner_amount_minor"],
        partner_occurred_at=row["partner_occurred_at"],
        network_transaction_id=None if transaction is None else str(transaction),
        network_type=row["network_type"],
        network_card=row["network_card"],
        network_points=row["network_points"],
        network_amount_minor=row["network_amount_minor"],
        network_occurred_at=row["network_occurred_at"],
        resolution=row["resolution"],
        resolution_reason=row["resolution_reason"],
        resolved_by=row["resolved_by"],
        resolved_at=row["resolved_at"],
        adjustment_entry_id=row["adjustment_entry_id"],
    )


_CURSOR_PREFIX = "r1:"


def _encode_cursor(item_no: int) -> str:
    return base64.urlsafe_b64encode(f"{_CURSOR_PREFIX}{item_no}".encode()).decode()


def _decode_cursor(cursor: str) -> int:
    try:
        text = base64.urlsafe_b64decode(cursor.encode()).decode()
        if not text.startswith(_CURSOR_PREFIX):
            raise ValueError(text)
        return int(text.removeprefix(_CURSOR_PREFIX))
    except (ValueError, binascii.Error):
        raise CursorInvalid() from None
