"""Partner routes: this partner's own settlement statements, as JSON or CSV
(`Accept: text/csv` or `?format=csv`). Another partner's statement id answers 404."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any, Literal

import msgspec
from litestar import Request, Response, get
from litestar.di import NamedDependency
from litestar.openapi.spec import OpenAPIMediaType, OpenAPIResponse, OpenAPIType, Operation, Schema
from litestar.params import QueryParameter

from contracts.settlement import (
    STATEMENTS_LIMIT_DEFAULT,
    STATEMENTS_LIMIT_MAX,
    Statement,
    StatementPage,
)
from gateway.auth.signatures import Caller
from gateway.routes._common import PathId, documented, in_transaction, read_only
from ledger import settlement

CURSOR_CHARS_MAX = 512
CSV = "text/csv"
JSON = "application/json"

Format = Annotated[Literal["json", "csv"] | None, QueryParameter(name="format")]


CSV_DESCRIPTION = (
    "As `text/csv` (with `Accept: text/csv` or `?format=csv`): one row per statement, after a "
    "header row; a list carries its next cursor in the `Next-Cursor` header."
)


@dataclass
class _AlsoCsv(Operation):
    """The operation's 200 also documents its CSV rendering beside the JSON one."""

    def __post_init__(self) -> None:
        answer = (self.responses or {}).get("200")
        if isinstance(answer, OpenAPIResponse) and answer.content is not None:
            answer.content[CSV] = OpenAPIMediaType(
                schema=Schema(type=OpenAPIType.STRING, description=CSV_DESCRIPTION)
            )


def _wants_csv(request: Request[Any, Any, Any], fmt: str | None) -> bool:
    if fmt is not None:
        return fmt == "csv"
    return CSV in request.headers.get("accept", "")


@get(
    "/v1/statements/{statement_id:int}",
    responses=documented(Statement, "The statement, as JSON or CSV.", 200),
    operation_class=_AlsoCsv,
)
async def get_statement(
    request: Request[Any, Any, Any],
    statement_id: PathId,
    caller: NamedDependency[Caller],
    fmt: Format = None,
) -> Response[bytes]:
    statement = await in_transaction(
        request,
        lambda conn: settlement.get_statement(conn, statement_id, partner_id=caller.partner_id),
    )
    if _wants_csv(request, fmt):
        return Response(settlement.statements_csv([statement]).encode(), media_type=CSV)
    return Response(msgspec.json.encode(statement), media_type=JSON)


@get(
    "/v1/statements",
    responses=documented(
        StatementPage, "A page of this partner's statements, as JSON or CSV.", 200
    ),
    operation_class=_AlsoCsv,
)
async def list_statements(
    request: Request[Any, Any, Any],
    caller: NamedDependency[Caller],
    cursor: Annotated[str | None, QueryParameter(max_length=CURSOR_CHARS_MAX)] = None,
    limit: Annotated[int, QueryParameter(ge=1, le=STATEMENTS_LIMIT_MAX)] = STATEMENTS_LIMIT_DEFAULT,
    fmt: Format = None,
) -> Response[bytes]:
    page = await read_only(
        request,
        lambda conn: settlement.list_statements(
            conn, caller.partner_id, cursor=cursor, limit=limit
        ),
    )
    if _wants_csv(request, fmt):
        headers = {"Next-Cursor": page.next_cursor} if page.next_cursor else None
        return Response(
            settlement.statements_csv(page.items).encode(), media_type=CSV, headers=headers
        )
    return Response(msgspec.json.encode(page), media_type=JSON)


ROUTES = [get_statement, list_statements]
