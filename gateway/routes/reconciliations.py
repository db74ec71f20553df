"""Partner routes: upload this partner's transaction log for a period (CSV or JSON lines) and
read the reconciliation report. The body is bounded (413 beyond RECONCILIATION_BODY_BYTES_MAX);
the service reads it as a stream of chunks."""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Request, Response, get, post
from litestar.di import NamedDependency
from litestar.params import QueryParameter

from contracts.errors import ErrorCode
from contracts.settlement import (
    RECONCILIATION_ITEMS_LIMIT_DEFAULT,
    RECONCILIATION_ITEMS_LIMIT_MAX,
    ReconciliationReport,
)
from gateway.auth.signatures import Caller
from gateway.errors import ApiError, problem_response
from gateway.idempotency import run_once
from gateway.routes._common import REPLAY_NOTE, PathId, documented, in_transaction
from gateway.routes._query import instant, instant_parameter
from ledger import reconciliation

RECONCILIATION_BODY_BYTES_MAX = 32 * 1_048_576  # ~400,000 lines; split larger logs by period
CURSOR_CHARS_MAX = 512
FORMAT_BY_MEDIA_TYPE: dict[str, reconciliation.Format] = {
    "text/csv": "csv",
    "application/x-ndjson": "jsonl",
    "application/jsonl": "jsonl",
    "application/x-jsonlines": "jsonl",
}


@post(
    "/v1/reconciliations",
    status_code=201,
    request_max_body_size=RECONCILIATION_BODY_BYTES_MAX,
    responses={
        **documented(
            ReconciliationReport,
            f"The reconciliation report for the uploaded log. {REPLAY_NOTE}",
            201,
        ),
        415: problem_response(415),
    },
)
async def upload_reconciliation(
    request: Request[Any, Any, Any],
    caller: NamedDependency[Caller],
    period_start: Annotated[str, instant_parameter("period_start")],
    period_end: Annotated[str, instant_parameter("period_end")],
) -> Response[bytes]:
    start = instant("period_start", period_start)
    end = instant("period_end", period_end)
    media_type = request.content_type[0].lower()
    source_format = FORMAT_BY_MEDIA_TYPE.get(media_type)
    if source_format is None:
        raise ApiError(
            415,
            ErrorCode.UNSUPPORTED_MEDIA_TYPE,
            f"send the log as {' or '.join(FORMAT_BY_MEDIA_TYPE)}, not {media_type or 'nothing'}",
        )
    body = await request.body()  # read (and bounded) by the signature guard already
    return await run_once(
        request,
        caller,
        lambda conn: reconciliation.reconcile(
            conn,
            partner_id=caller.partner_id,
            period_start=start,
            period_end=end,
            source_format=source_format,
            chunks=reconciliation.iter_chunks(body),
            bytes_max=RECONCILIATION_BODY_BYTES_MAX,
        ),
        grouped=False,  # a file of its own: it would hold its neighbours' answers
    )


@get("/v1/reconciliations/{reconciliation_id:int}")
async def get_reconciliation(
    request: Request[Any, Any, Any],
    reconciliation_id: PathId,
    caller: NamedDependency[Caller],
    cursor: Annotated[str | None, QueryParameter(max_length=CURSOR_CHARS_MAX)] = None,
    limit: Annotated[
        int, QueryParameter(ge=1, le=RECONCILIATION_ITEMS_LIMIT_MAX)
    ] = RECONCILIATION_ITEMS_LIMIT_DEFAULT,
) -> ReconciliationReport:
    return await in_transaction(
        request,
        lambda conn: reconciliation.get_reconciliation(
            conn, reconciliation_id, partner_id=caller.partner_id, cursor=cursor, limit=limit
        ),
    )


ROUTES = [upload_reconciliation, get_reconciliation]
