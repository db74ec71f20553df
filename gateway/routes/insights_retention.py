"""`GET /v1/insights/{retention-rate,lifetime-value,abc-xyz}`: the retention figures over a
partner's own shoppers (signed calls), k-anonymous like every insight."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from litestar import Request, get
from litestar.di import NamedDependency
from litestar.params import QueryParameter

from contracts.analytics import AbcXyz, LifetimeValues, RetentionRates
from gateway.auth.signatures import Caller
from gateway.routes._common import in_transaction
from gateway.routes.operator_retention import MarginBps
from shoppers import analytics, retention

From = Annotated[datetime | None, QueryParameter(name="from")]
To = Annotated[datetime | None, QueryParameter(name="to")]


@get("/v1/insights/retention-rate")
async def retention_rate(
    request: Request[Any, Any, Any],
    caller: NamedDependency[Caller],
    start: From = None,
    end: To = None,
) -> RetentionRates:
    when = analytics.period(start, end, now=datetime.now(UTC))
    return await in_transaction(
        request, lambda conn: retention.retention_rates(conn, when, partner_id=caller.partner_id)
    )


@get("/v1/insights/lifetime-value")
async def lifetime_value(
    request: Request[Any, Any, Any],
    caller: NamedDependency[Caller],
    start: From = None,
    end: To = None,
    margin_bps: MarginBps = retention.MARGIN_BPS_DEFAULT,
) -> LifetimeValues:
    when = analytics.period(start, end, now=datetime.now(UTC))
    return await in_transaction(
        request,
        lambda conn: retention.lifetime_value(
            conn, when, partner_id=caller.partner_id, margin_bps=margin_bps
        ),
    )


@get("/v1/insights/abc-xyz")
async def abc_xyz(
    request: Request[Any, Any, Any],
    caller: NamedDependency[Caller],
    start: From = None,
    end: To = None,
) -> AbcXyz:
    when = analytics.period(start, end, now=datetime.now(UTC))
    return await in_transaction(
        request, lambda conn: retention.abc_xyz(conn, when, partner_id=caller.partner_id)
    )


ROUTES = [retention_rate, lifetime_value, abc_xyz]
