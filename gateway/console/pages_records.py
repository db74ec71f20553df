"""Reconciliations, campaigns and the audit log (shoppers: pages_shoppers.py)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from litestar import Request, get
from litestar.params import QueryParameter
from litestar.response import Template

from contracts.settlement import ReconciliationReport
from gateway.console import audit
from gateway.console.access import Area, may
from gateway.console.web import page, require
from gateway.routes._common import PathId, in_transaction
from infra.db import Conn
from ledger import reconciliation, reconciliation_list
from partners import directory, operations

CARD_CHARS_MAX = 32
HISTORY_SHOWN = 50
CAMPAIGNS_SHOWN = 100
RECONCILIATION_ITEMS_SHOWN = 200
INT64_MAX = 2**63 - 1


@get("/console/reconciliations")
async def reconciliations(request: Request[Any, Any, Any]) -> Template:
    require(request, Area.RECONCILIATIONS)

    async def read(conn: Conn) -> tuple[Any, dict[int, str]]:
        names = {p.id: p.name for p in await directory.list_partners(conn)}
        return await reconciliation_list.recent(conn), names

    recent, names = await in_transaction(request, read)
    return page(
        request,
        "reconciliations.html",
        title="Reconciliations",
        active="Reconciliations",
        recent=recent,
        names=names,
    )


@get("/console/reconciliations/{reconciliation_id:int}")
async def reconciliation_report(
    request: Request[Any, Any, Any],
    reconciliation_id: PathId,
    resolved: Annotated[int | None, QueryParameter(ge=1, le=INT64_MAX)] = None,
) -> Template:
    user = require(request, Area.RECONCILIATIONS)

    async def read(conn: Conn) -> tuple[ReconciliationReport, reconciliation.ResolutionCounts]:
        report = await reconciliation.get_reconciliation(
            conn,
            reconciliation_id,
            partner_id=None,
            cursor=None,
            limit=RECONCILIATION_ITEMS_SHOWN,
        )
        return report, await reconciliation.resolution_counts(conn, reconciliation_id)

    report, counts = await in_transaction(request, read)
    return page(
        request,
        "reconciliation.html",
        title=f"Reconciliation {reconciliation_id}",
        active="Reconciliations",
        r=report,
        counts=counts,
        resolves=may(user.role, Area.RECONCILIATION_RESOLVE),
        # Only an item of this report that is resolved is named: the query is not echoed.
        done=next(
            (
                f"Item {i.item_no} is {i.resolution}."
                for i in report.items
                if i.item_no == resolved and i.resolution
            ),
            None,
        ),
    )


@get("/console/campaigns")
async def campaigns(request: Request[Any, Any, Any]) -> Template:
    require(request, Area.CAMPAIGNS)
    found = await in_transaction(
        request,
        lambda conn: operations.list_campaigns(conn, None, cursor=None, limit=CAMPAIGNS_SHOWN),
    )
    return page(
        request,
        "campaigns.html",
        title="Campaigns",
        active="Campaigns",
        campaigns=found.items,
        now=datetime.now(UTC),
    )


@get("/console/audit")
async def audit_log(
    request: Request[Any, Any, Any],
    before: Annotated[int | None, QueryParameter(ge=1, le=INT64_MAX)] = None,
) -> Template:
    require(request, Area.AUDIT)
    entries = await in_transaction(request, lambda conn: audit.page(conn, before_id=before))
    older = entries[-1].audit_id if len(entries) == audit.PAGE_LIMIT else None
    return page(
        request,
        "audit.html",
        title="Audit log",
        active="Audit log",
        entries=entries,
        older=older,
    )


ROUTES = [reconciliations, reconciliation_report, campaigns, audit_log]
