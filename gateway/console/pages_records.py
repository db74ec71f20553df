"""Shoppers (find by card number), reconciliations, campaigns and the audit log."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any

from litestar import Request, get
from litestar.params import QueryParameter
from litestar.response import Template

from contracts.errors import DomainError
from contracts.partners import ShopperView
from contracts.shoppers import Card, HistoryItem
from gateway.console import audit
from gateway.console.access import Area
from gateway.console.web import page, require
from gateway.routes._common import PathId, in_transaction
from infra.db import Conn
from ledger import reconciliation, reconciliation_list
from partners import directory, operations
from shoppers import account, identity

CARD_CHARS_MAX = 32
HISTORY_SHOWN = 50
CAMPAIGNS_SHOWN = 100
RECONCILIATION_ITEMS_SHOWN = 200
INT64_MAX = 2**63 - 1


@dataclass(frozen=True)
class Found:
    view: ShopperView
    cards: list[Card]
    history: list[HistoryItem]


async def _find(conn: Conn, card: str) -> Found:
    view = await operations.shopper_view(conn, card)
    cards = await identity.cards_of(conn, view.shopper_id)
    history = await account.history(conn, view.shopper_id, cursor=None, limit=HISTORY_SHOWN)
    return Found(view=view, cards=cards, history=history.items)


@get("/console/shoppers")
async def shoppers(
    request: Request[Any, Any, Any],
    card: Annotated[str | None, QueryParameter(max_length=CARD_CHARS_MAX)] = None,
) -> Template:
    require(request, Area.SHOPPERS)
    number = (card or "").replace(" ", "")
    found: Found | None = None
    error = None
    if number:
        try:
            found = await in_transaction(request, lambda conn: _find(conn, number))
        except DomainError as exc:
            # Unknown, blocked or replaced: said on the page, next to the search box.
            error = f"No active card {number} ({exc.code})."
    return page(
        request,
        "shoppers.html",
        title="Shoppers",
        active="Shoppers",
        card=number,
        found=found,
        error=error,
    )


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
    request: Request[Any, Any, Any], reconciliation_id: PathId
) -> Template:
    require(request, Area.RECONCILIATIONS)
    report = await in_transaction(
        request,
        lambda conn: reconciliation.get_reconciliation(
            conn,
            reconciliation_id,
            partner_id=None,
            cursor=None,
            limit=RECONCILIATION_ITEMS_SHOWN,
        ),
    )
    return page(
        request,
        "reconciliation.html",
        title=f"Reconciliation {reconciliation_id}",
        active="Reconciliations",
        r=report,
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


ROUTES = [shoppers, reconciliations, reconciliation_report, campaigns, audit_log]
