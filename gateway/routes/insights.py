"""`GET /v1/insights/*`: a partner's view of its own shoppers, k-anonymous (signed calls)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from litestar import Request, get
from litestar.di import NamedDependency

from contracts.analytics import CrossPartnerActivity, RetentionCohorts, SegmentSizes
from gateway.auth.signatures import Caller
from gateway.routes._common import read_only
from shoppers import insights


@get("/v1/insights/segments")
async def segment_sizes(
    request: Request[Any, Any, Any], caller: NamedDependency[Caller]
) -> SegmentSizes:
    return await read_only(request, lambda conn: insights.segment_sizes(conn, caller.partner_id))


@get("/v1/insights/retention-cohorts")
async def retention_cohorts(
    request: Request[Any, Any, Any], caller: NamedDependency[Caller]
) -> RetentionCohorts:
    return await read_only(
        request,
        lambda conn: insights.retention_cohorts(conn, caller.partner_id, now=datetime.now(UTC)),
    )


@get("/v1/insights/cross-partner")
async def cross_partner_activity(
    request: Request[Any, Any, Any], caller: NamedDependency[Caller]
) -> CrossPartnerActivity:
    return await read_only(
        request,
        lambda conn: insights.cross_partner_activity(
            conn, caller.partner_id, now=datetime.now(UTC)
        ),
    )


ROUTES = [segment_sizes, retention_cohorts, cross_partner_activity]
