"""The dashboard (/console): points issued vs redeemed per day, liability, breakage, active
shoppers and the cross-partner flow matrix, all from shoppers.analytics and ledger.settlement."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from litestar import Request, get
from litestar.response import Template

from contracts.analytics import FlowMatrix, Liability, Retention
from contracts.settlement import FinanceOverview
from gateway.console.access import Area
from gateway.console.web import page, require
from gateway.routes._common import in_transaction
from infra.db import Conn
from ledger import settlement
from partners import directory
from shoppers import analytics

CHART_DAYS = 14


@dataclass(frozen=True)
class Day:
    day: str  # YYYY-MM-DD, UTC
    issued: int
    redeemed: int


@dataclass(frozen=True)
class Dashboard:
    liability: Liability
    retention: Retention
    overview: FinanceOverview
    flows: FlowMatrix
    days: list[Day]
    names: dict[int, str]


async def _per_day(conn: Conn, today: datetime) -> list[Day]:
    """The last CHART_DAYS UTC days, oldest first, net of reversals (one query)."""
    start = today - timedelta(days=CHART_DAYS - 1)
    return [
        Day(day=d.start.date().isoformat(), issued=d.issued, redeemed=d.redeemed)
        for d in await analytics.points_per_day(conn, start, CHART_DAYS)
    ]


async def _read(conn: Conn, now: datetime) -> Dashboard:
    when = analytics.period(None, None, now=now)
    today = now.replace(hour=0, minute=0, second=0, microsecond=0)
    return Dashboard(
        liability=await analytics.liability(conn, when),
        retention=await analytics.retention(conn, when),
        overview=await settlement.finance_overview(conn),
        flows=await analytics.flow_matrix(conn, when),
        days=await _per_day(conn, today),
        names={p.id: p.name for p in await directory.list_partners(conn)},
    )


@get("/console")
async def dashboard(request: Request[Any, Any, Any]) -> Template:
    require(request, Area.DASHBOARD)
    data = await in_transaction(request, lambda conn: _read(conn, datetime.now(UTC)))
    chart = {
        "labels": [d.day for d in data.days],
        "issued": [d.issued for d in data.days],
        "redeemed": [d.redeemed for d in data.days],
    }
    return page(
        request,
        "dashboard.html",
        title="Dashboard",
        active="Dashboard",
        d=data,
        chart_json=json.dumps(chart),
    )


ROUTES = [dashboard]
