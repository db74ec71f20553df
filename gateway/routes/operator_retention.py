"""`GET /v1/operator/analytics/{retention-rate,lifetime-value,abc-xyz}`: the network's
retention figures (issue 19), JSON or CSV like every operator analytics endpoint."""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Request, Response, get
from litestar.params import QueryParameter

from contracts import analytics as contracts
from gateway.routes.operator_analytics import GUARDS, Format, From, To, answer, documented_figures
from shoppers import retention

MarginBps = Annotated[
    int,
    QueryParameter(
        name="margin_bps",
        ge=1,
        le=10_000,
        description="The margin on spend, in basis points (10,000: revenue lifetime value).",
    ),
]


@get(
    "/v1/operator/analytics/retention-rate",
    guards=GUARDS,
    **documented_figures(contracts.RetentionRates),
)
async def retention_rate(
    request: Request[Any, Any, Any],
    start: From = None,
    end: To = None,
    fmt: Format = None,
) -> Response[Any]:
    """CRR = ((E - N) / S) x 100 for the network (partner_id null) and per partner."""
    return await answer(
        request, fmt, start, end, lambda c, w: retention.retention_rates(c, w, partner_id=None)
    )


@get(
    "/v1/operator/analytics/lifetime-value",
    guards=GUARDS,
    **documented_figures(contracts.LifetimeValues),
)
async def lifetime_value(
    request: Request[Any, Any, Any],
    start: From = None,
    end: To = None,
    fmt: Format = None,
    margin_bps: MarginBps = retention.MARGIN_BPS_DEFAULT,
) -> Response[Any]:
    """CLV per segment: margin per purchase x purchases per shopper per period x expected
    lifetime in periods (1 / (1 - CRR)), the period being [from, to)."""
    return await answer(
        request,
        fmt,
        start,
        end,
        lambda c, w: retention.lifetime_value(c, w, partner_id=None, margin_bps=margin_bps),
    )


@get("/v1/operator/analytics/abc-xyz", guards=GUARDS, **documented_figures(contracts.AbcXyz))
async def abc_xyz(
    request: Request[Any, Any, Any],
    start: From = None,
    end: To = None,
    fmt: Format = None,
) -> Response[Any]:
    """Shoppers by value (A: first 80 % of net spend, B: next 15 %, C: rest) and regularity
    (X: monthly spend CV <= 10 %, Y: <= 25 %, Z: above)."""
    return await answer(
        request, fmt, start, end, lambda c, w: retention.abc_xyz(c, w, partner_id=None)
    )


ROUTES = [retention_rate, lifetime_value, abc_xyz]
