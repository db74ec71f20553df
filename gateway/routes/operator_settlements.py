"""Operator routes: close settlement periods, move statements through their lifecycle
(finance), read periods, statements and reconciliation reports, resolve differences."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

import msgspec
from litestar import Request, Response, get, post, put
from litestar.di import NamedDependency, Provide
from litestar.params import JSONBody, Parameter

from contracts.settlement import (
    PERIODS_LIMIT_DEFAULT,
    PERIODS_LIMIT_MAX,
    RECONCILIATION_ITEMS_LIMIT_DEFAULT,
    RECONCILIATION_ITEMS_LIMIT_MAX,
    ClosePeriodRequest,
    Period,
    PeriodPage,
    ReconciliationItem,
    ReconciliationReport,
    ResolveRequest,
    SettlementCycle,
    SettlementCycleUpdate,
    Statement,
    StatementTransition,
)
from gateway.auth.operator import provide_operator, require_role
from gateway.routes._common import PathId, documented, in_transaction
from gateway.tokens import OperatorClaims, Role
from ledger import reconciliation, settlement

CURSOR_CHARS_MAX = 512
JSON = "application/json"
READERS = require_role(Role.FINANCE, Role.ADMIN, Role.AUDITOR)
WRITERS = require_role(Role.FINANCE)
CLOSERS = require_role(Role.FINANCE, Role.ADMIN)
CONFIGURERS = require_role(Role.ADMIN)
OPERATOR = {"operator": Provide(provide_operator)}


def _actor(operator: OperatorClaims) -> str:
    return f"{operator.role.value}:{operator.subject}"


@post(
    "/v1/operator/settlements",
    guards=[CLOSERS],
    dependencies=OPERATOR,
    responses={
        **documented(Period, "The period, closed now, with its statements.", 201),
        **documented(Period, "The period was closed already: it is answered as it is.", 200),
    },
)
async def close_period(
    request: Request[Any, Any, Any],
    data: JSONBody[ClosePeriodRequest],
    operator: NamedDependency[OperatorClaims],
) -> Response[bytes]:
    period = await in_transaction(
        request,
        lambda conn: settlement.close_period(
            conn, period_end=data.period_end, closed_by=_actor(operator), now=datetime.now(UTC)
        ),
    )
    status = 201 if period.created else 200
    return Response(msgspec.json.encode(period), status_code=status, media_type=JSON)


@get("/v1/operator/settlement-cycle", guards=[READERS])
async def get_cycle(request: Request[Any, Any, Any]) -> SettlementCycle:
    return await in_transaction(
        request, lambda conn: settlement.get_cycle(conn, now=datetime.now(UTC))
    )


@put("/v1/operator/settlement-cycle", guards=[CONFIGURERS], dependencies=OPERATOR)
async def set_cycle(
    request: Request[Any, Any, Any],
    data: JSONBody[SettlementCycleUpdate],
    operator: NamedDependency[OperatorClaims],
) -> SettlementCycle:
    return await in_transaction(
        request,
        lambda conn: settlement.set_cycle(
            conn, data, actor=_actor(operator), now=datetime.now(UTC)
        ),
    )


@get("/v1/operator/settlements", guards=[READERS])
async def list_periods(
    request: Request[Any, Any, Any],
    cursor: Annotated[str | None, Parameter(max_length=CURSOR_CHARS_MAX)] = None,
    limit: Annotated[int, Parameter(ge=1, le=PERIODS_LIMIT_MAX)] = PERIODS_LIMIT_DEFAULT,
) -> PeriodPage:
    return await in_transaction(
        request, lambda conn: settlement.list_periods(conn, cursor=cursor, limit=limit)
    )


@get("/v1/operator/settlements/{period_id:int}", guards=[READERS])
async def get_period(request: Request[Any, Any, Any], period_id: PathId) -> Period:
    return await in_transaction(request, lambda conn: settlement.get_period(conn, period_id))


@get("/v1/operator/statements/{statement_id:int}", guards=[READERS])
async def get_statement(request: Request[Any, Any, Any], statement_id: PathId) -> Statement:
    return await in_transaction(
        request, lambda conn: settlement.get_statement(conn, statement_id, partner_id=None)
    )


@post(
    "/v1/operator/statements/{statement_id:int}/finalize",
    guards=[WRITERS],
    dependencies=OPERATOR,
    status_code=200,
)
async def finalize_statement(
    request: Request[Any, Any, Any],
    statement_id: PathId,
    operator: NamedDependency[OperatorClaims],
) -> Statement:
    return await in_transaction(
        request,
        lambda conn: settlement.finalize_statement(conn, statement_id, actor=_actor(operator)),
    )


@post(
    "/v1/operator/statements/{statement_id:int}/dispute",
    guards=[WRITERS],
    dependencies=OPERATOR,
    status_code=200,
)
async def dispute_statement(
    request: Request[Any, Any, Any],
    statement_id: PathId,
    data: JSONBody[StatementTransition],
    operator: NamedDependency[OperatorClaims],
) -> Statement:
    return await in_transaction(
        request,
        lambda conn: settlement.dispute_statement(
            conn, statement_id, actor=_actor(operator), reason=data.reason or "disputed"
        ),
    )


@post(
    "/v1/operator/statements/{statement_id:int}/pay",
    guards=[WRITERS],
    dependencies=OPERATOR,
    status_code=200,
)
async def pay_statement(
    request: Request[Any, Any, Any],
    statement_id: PathId,
    operator: NamedDependency[OperatorClaims],
) -> Statement:
    return await in_transaction(
        request, lambda conn: settlement.mark_paid(conn, statement_id, actor=_actor(operator))
    )


@get("/v1/operator/reconciliations/{reconciliation_id:int}", guards=[READERS])
async def get_reconciliation(
    request: Request[Any, Any, Any],
    reconciliation_id: PathId,
    cursor: Annotated[str | None, Parameter(max_length=CURSOR_CHARS_MAX)] = None,
    limit: Annotated[
        int, Parameter(ge=1, le=RECONCILIATION_ITEMS_LIMIT_MAX)
    ] = RECONCILIATION_ITEMS_LIMIT_DEFAULT,
) -> ReconciliationReport:
    return await in_transaction(
        request,
        lambda conn: reconciliation.get_reconciliation(
            conn, reconciliation_id, partner_id=None, cursor=cursor, limit=limit
        ),
    )


@post(
    "/v1/operator/reconciliations/{reconciliation_id:int}/items/{item_no:int}/resolve",
    guards=[WRITERS],
    dependencies=OPERATOR,
    status_code=200,
)
async def resolve_item(
    request: Request[Any, Any, Any],
    reconciliation_id: PathId,
    item_no: PathId,
    data: JSONBody[ResolveRequest],
    operator: NamedDependency[OperatorClaims],
) -> ReconciliationItem:
    return await in_transaction(
        request,
        lambda conn: reconciliation.resolve_item(
            conn, reconciliation_id, item_no, actor=_actor(operator), request=data
        ),
    )


ROUTES = [
    get_cycle,
    set_cycle,
    close_period,
    list_periods,
    get_period,
    get_statement,
    finalize_statement,
    dispute_statement,
    pay_statement,
    get_reconciliation,
    resolve_item,
]
