"""Operator routes: the network's liability and revenue, and partner flows for a range."""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Request, get

from contracts.settlement import FinanceOverview, PartnerFlows
from gateway.auth.operator import require_role
from gateway.routes._common import in_transaction
from gateway.routes._query import instant, instant_parameter
from gateway.tokens import Role
from ledger import settlement

READERS = require_role(Role.FINANCE, Role.ADMIN, Role.AUDITOR)


@get("/v1/operator/finance/overview", guards=[READERS])
async def overview(request: Request[Any, Any, Any]) -> FinanceOverview:
    return await in_transaction(request, settlement.finance_overview)


@get("/v1/operator/finance/partner-flows", guards=[READERS])
async def partner_flows(
    request: Request[Any, Any, Any],
    period_start: Annotated[str, instant_parameter("period_start")],
    period_end: Annotated[str, instant_parameter("period_end")],
) -> PartnerFlows:
    start = instant("period_start", period_start)
    end = instant("period_end", period_end)
    return await in_transaction(
        request, lambda conn: settlement.partner_flows(conn, start=start, end=end)
    )


ROUTES = [overview, partner_flows]
