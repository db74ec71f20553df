"""`GET /v1/operator/analytics/*`: network analytics for operators (admin, finance, auditor).

Every endpoint takes an optional period `from`/`to` (ISO 8601 with offset; [from, to), default
the last 30 days) and answers JSON, or CSV with `?format=csv` or `Accept: text/csv`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any, Literal, TypeVar

import msgspec
from litestar import Request, Response, get
from litestar.openapi.spec import OpenAPIMediaType, OpenAPIResponse, OpenAPIType, Operation, Schema
from litestar.params import QueryParameter

import contracts.analytics as contracts
from contracts import csv_cells
from gateway.auth.operator import require_role
from gateway.routes._common import documented, read_only
from gateway.routes._query import instant_parameter, optional_instant
from gateway.tokens import Role
from infra.db import Conn
from shoppers import analytics

# Litestar adds "; charset=utf-8" to a text/* media type itself.
CSV_MEDIA_TYPE = "text/csv"
CSV_DESCRIPTION = (
    "As `text/csv` (with `?format=csv` or `Accept: text/csv`): a header row, then one line per "
    "row of the JSON answer, the period columns first."
)
GUARDS = [require_role(Role.ADMIN, Role.FINANCE, Role.AUDITOR)]

T = TypeVar("T", bound=msgspec.Struct)
From = Annotated[str | None, instant_parameter("from")]
To = Annotated[str | None, instant_parameter("to")]
Format = Annotated[Literal["json", "csv"] | None, QueryParameter(name="format")]


@dataclass
class _AlsoCsv(Operation):
    """The operation's 200 also documents its CSV rendering beside the JSON one."""

    def __post_init__(self) -> None:
        answer = (self.responses or {}).get("200")
        if isinstance(answer, OpenAPIResponse) and answer.content is not None:
            answer.content[CSV_MEDIA_TYPE] = OpenAPIMediaType(
                schema=Schema(type=OpenAPIType.STRING, description=CSV_DESCRIPTION)
            )


def documented_figures(result: type[msgspec.Struct]) -> dict[str, Any]:
    """The handler's 200: `result` as JSON, or its CSV rendering."""
    return {
        "responses": documented(result, "The figures for the period, as JSON or CSV.", 200),
        "operation_class": _AlsoCsv,
    }


def _wants_csv(request: Request[Any, Any, Any], fmt: str | None) -> bool:
    if fmt is not None:
        return fmt == "csv"
    return "text/csv" in request.headers.get("accept", "")


def _csv(result: msgspec.Struct) -> str:
    """A result with `rows` becomes one CSV line per row; any other, one line of its fields.
    The period columns lead every line so an exported file stands on its own."""
    data = msgspec.to_builtins(result)
    assert isinstance(data, dict), data
    head = {k: v for k, v in data.items() if not isinstance(v, list)}
    lines = [{**head, **row} for row in data["rows"]] if "rows" in data else [head]
    columns = list(head) + [c for c in (lines[0] if lines else {}) if c not in head]
    if "rows" in data and not lines:
        columns = list(head)
    cleaned = ({k: "" if v is None else v for k, v in line.items()} for line in lines)
    return csv_cells.write_dicts(columns, cleaned)


async def answer(
    request: Request[Any, Any, Any],
    fmt: str | None,
    start: str | None,
    end: str | None,
    compute: Callable[[Conn, analytics.Period], Awaitable[T]],
) -> Response[Any]:
    when = analytics.period(
        optional_instant("from", start), optional_instant("to", end), now=datetime.now(UTC)
    )  # raises AnalyticsPeriodInvalid
    result = await read_only(request, lambda conn: compute(conn, when))
    if _wants_csv(request, fmt):
        return Response(_csv(result), media_type=CSV_MEDIA_TYPE)
    return Response(result)


@get("/v1/operator/analytics/retention", guards=GUARDS, **documented_figures(contracts.Retention))
async def retention(
    request: Request[Any, Any, Any], start: From = None, end: To = None, fmt: Format = None
) -> Response[Any]:
    return await answer(request, fmt, start, end, analytics.retention)


@get(
    "/v1/operator/analytics/repeat-purchase",
    guards=GUARDS,
    **documented_figures(contracts.RepeatPurchase),
)
async def repeat_purchase(
    request: Request[Any, Any, Any], start: From = None, end: To = None, fmt: Format = None
) -> Response[Any]:
    return await answer(request, fmt, start, end, analytics.repeat_purchase)


@get(
    "/v1/operator/analytics/average-basket",
    guards=GUARDS,
    **documented_figures(contracts.AverageBasket),
)
async def average_basket(
    request: Request[Any, Any, Any], start: From = None, end: To = None, fmt: Format = None
) -> Response[Any]:
    return await answer(request, fmt, start, end, analytics.average_basket)


@get("/v1/operator/analytics/nps", guards=GUARDS, **documented_figures(contracts.Nps))
async def nps(
    request: Request[Any, Any, Any], start: From = None, end: To = None, fmt: Format = None
) -> Response[Any]:
    return await answer(request, fmt, start, end, analytics.nps)


@get("/v1/operator/analytics/liability", guards=GUARDS, **documented_figures(contracts.Liability))
async def liability(
    request: Request[Any, Any, Any], start: From = None, end: To = None, fmt: Format = None
) -> Response[Any]:
    return await answer(request, fmt, start, end, analytics.liability)


@get(
    "/v1/operator/analytics/partner-points",
    guards=GUARDS,
    **documented_figures(contracts.PartnerPoints),
)
async def partner_points(
    request: Request[Any, Any, Any], start: From = None, end: To = None, fmt: Format = None
) -> Response[Any]:
    return await answer(request, fmt, start, end, analytics.partner_points)


@get("/v1/operator/analytics/flows", guards=GUARDS, **documented_figures(contracts.FlowMatrix))
async def flows(
    request: Request[Any, Any, Any], start: From = None, end: To = None, fmt: Format = None
) -> Response[Any]:
    return await answer(request, fmt, start, end, analytics.flow_matrix)


ROUTES = [retention, repeat_purchase, average_basket, nps, liability, partner_points, flows]
