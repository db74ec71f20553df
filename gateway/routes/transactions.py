"""Partner routes: this partner's own transactions, one or a page (newest first)."""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Request, get
from litestar.di import NamedDependency
from litestar.params import FromPath, Parameter

from contracts.partners import (
    TRANSACTIONS_LIMIT_DEFAULT,
    TRANSACTIONS_LIMIT_MAX,
    Transaction,
    TransactionPage,
)
from gateway.auth.signatures import Caller
from gateway.routes._common import in_transaction
from partners import operations

CURSOR_CHARS_MAX = 512


@get("/v1/transactions/{transaction_id:str}")
async def get_transaction(
    request: Request[Any, Any, Any], transaction_id: FromPath[str], caller: NamedDependency[Caller]
) -> Transaction:
    return await in_transaction(
        request, lambda conn: operations.get_transaction(conn, caller.partner_id, transaction_id)
    )


@get("/v1/transactions")
async def list_transactions(
    request: Request[Any, Any, Any],
    caller: NamedDependency[Caller],
    cursor: Annotated[str | None, Parameter(max_length=CURSOR_CHARS_MAX)] = None,
    limit: Annotated[int, Parameter(ge=1, le=TRANSACTIONS_LIMIT_MAX)] = TRANSACTIONS_LIMIT_DEFAULT,
) -> TransactionPage:
    return await in_transaction(
        request,
        lambda conn: operations.list_transactions(
            conn, caller.partner_id, cursor=cursor, limit=limit
        ),
    )


ROUTES = [get_transaction, list_transactions]
