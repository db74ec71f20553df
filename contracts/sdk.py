"""The partner SDK: a small async client for the signed partner API (httpx).

Every call is signed (RFC 9421, contracts/signing.py) with a fresh nonce per attempt. Every
POST carries an Idempotency-Key, chosen once per logical call and reused by its retries, so a
retry after a lost answer can never apply the effect twice. Retries: network errors, 409
`idempotency_in_progress`, 429 and 5xx, with jittered exponential backoff (Retry-After
honoured) and a bounded number of attempts. Results are typed msgspec Structs; refusals raise
CoalitionError with the problem's stable `code`.

    async with PartnerClient(base_url, key_id=key_id, secret=secret) as client:
        purchase = await client.purchase(PurchaseRequest(partner_ref="r1", ...))
"""

from __future__ import annotations

import asyncio
import random
import uuid
from types import TracebackType
from typing import Any, TypeVar

import httpx
import msgspec

from contracts.partners import (
    CaptureRequest,
    Enrollment,
    EnrollRequest,
    HoldRequest,
    HoldResult,
    PurchaseRequest,
    PurchaseResult,
    Quote,
    QuoteRequest,
    RedemptionRequest,
    RedemptionResult,
    RefundRequest,
    RefundResult,
    ShopperView,
    Transaction,
    TransactionPage,
)
from contracts.signing import sign_request

__all__ = ["CoalitionError", "PartnerClient"]

ATTEMPTS_MAX_DEFAULT = 4
ATTEMPTS_MAX_LIMIT = 10
BACKOFF_S_BASE = 0.1
BACKOFF_S_MAX = 5.0
TIMEOUT_S_DEFAULT = 10.0
RETRYABLE_STATUSES = frozenset({429, 500, 502, 503, 504})
RETRYABLE_CONFLICT_CODE = "idempotency_in_progress"

R = TypeVar("R", bound=msgspec.Struct)


class CoalitionError(Exception):
    """A refused call: HTTP status, the problem's stable code, and the full problem body."""

    def __init__(self, status: int, code: str, detail: str, problem: dict[str, Any]) -> None:
        super().__init__(f"{status} {code}: {detail}")
        self.status = status
        self.code = code
        self.detail = detail
        self.problem = problem


def _retryable(response: httpx.Response) -> bool:
    if response.status_code in RETRYABLE_STATUSES:
        return True
    if response.status_code == 409:
        return _problem(response).get("code") == RETRYABLE_CONFLICT_CODE
    return False


def _problem(response: httpx.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def _retry_after_s(response: httpx.Response | None) -> float:
    if response is None:
        return 0.0
    try:
        return min(float(response.headers.get("retry-after", "0")), BACKOFF_S_MAX)
    except ValueError:
        return 0.0


class PartnerClient:
    def __init__(
        self,
        base_url: str,
        *,
        key_id: str,
        secret: str,
        timeout_s: float = TIMEOUT_S_DEFAULT,
        attempts_max: int = ATTEMPTS_MAX_DEFAULT,
        backoff_s_base: float = BACKOFF_S_BASE,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        if not 1 <= attempts_max <= ATTEMPTS_MAX_LIMIT:
            raise ValueError(f"attempts_max must be 1..{ATTEMPTS_MAX_LIMIT}")
        self._key_id = key_id
        self._secret = secret
        self._attempts_max = attempts_max
        self._backoff_s_base = backoff_s_base
        self._http = httpx.AsyncClient(base_url=base_url, timeout=timeout_s, transport=transport)
        self.last_replayed = False

    def __repr__(self) -> str:  # the secret never appears in logs or tracebacks
        return f"PartnerClient({str(self._http.base_url)!r}, key_id={self._key_id!r})"

    async def __aenter__(self) -> PartnerClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    # ---- the API ------------------------------------------------------------------------------

    async def enroll(
        self, request: EnrollRequest | None = None, *, idempotency_key: str | None = None
    ) -> Enrollment:
        return await self._post(
            "/v1/shoppers", request or EnrollRequest(), Enrollment, idempotency_key
        )

    async def purchase(
        self, request: PurchaseRequest, *, idempotency_key: str | None = None
    ) -> PurchaseResult:
        return await self._post("/v1/purchases", request, PurchaseResult, idempotency_key)

    async def redeem(
        self, request: RedemptionRequest, *, idempotency_key: str | None = None
    ) -> RedemptionResult:
        return await self._post("/v1/redemptions", request, RedemptionResult, idempotency_key)

    async def hold(self, request: HoldRequest, *, idempotency_key: str | None = None) -> HoldResult:
        return await self._post("/v1/holds", request, HoldResult, idempotency_key)

    async def capture(
        self, hold_id: str, points: int | None = None, *, idempotency_key: str | None = None
    ) -> HoldResult:
        path = f"/v1/holds/{hold_id}/capture"
        return await self._post(path, CaptureRequest(points=points), HoldResult, idempotency_key)

    async def void(self, hold_id: str, *, idempotency_key: str | None = None) -> HoldResult:
        return await self._post(f"/v1/holds/{hold_id}/void", None, HoldResult, idempotency_key)

    async def refund(
        self, request: RefundRequest, *, idempotency_key: str | None = None
    ) -> RefundResult:
        return await self._post("/v1/refunds", request, RefundResult, idempotency_key)

    async def quote(self, request: QuoteRequest) -> Quote:
        return await self._post("/v1/quotes", request, Quote, None)

    async def shopper(self, card_number: str) -> ShopperView:
        return await self._call("GET", f"/v1/shoppers/{card_number}", b"", ShopperView, None)

    async def transaction(self, transaction_id: str) -> Transaction:
        path = f"/v1/transactions/{transaction_id}"
        return await self._call("GET", path, b"", Transaction, None)

    async def transactions(self, *, cursor: str | None = None, limit: int = 50) -> TransactionPage:
        query = httpx.QueryParams({"limit": limit, **({"cursor": cursor} if cursor else {})})
        path = f"/v1/transactions?{query}"
        return await self._call("GET", path, b"", TransactionPage, None)

    # ---- plumbing -----------------------------------------------------------------------------

    async def _post(
        self,
        path: str,
        body: msgspec.Struct | None,
        result_type: type[R],
        idempotency_key: str | None,
    ) -> R:
        content = b"" if body is None else msgspec.json.encode(body)
        key = idempotency_key or str(uuid.uuid4())
        return await self._call("POST", path, content, result_type, key)

    async def _call(
        self,
        method: str,
        path: str,
        content: bytes,
        result_type: type[R],
        idempotency_key: str | None,
    ) -> R:
        response: httpx.Response | None = None
        for attempt in range(1, self._attempts_max + 1):
            try:
                response = await self._http.send(
                    self._signed(method, path, content, idempotency_key)
                )
            except httpx.TransportError:
                if attempt == self._attempts_max:
                    raise
                await self._sleep(attempt, None)
                continue
            if response.is_success:
                self.last_replayed = response.headers.get("idempotency-replayed") == "true"
                return msgspec.json.decode(response.content, type=result_type)
            if not _retryable(response) or attempt == self._attempts_max:
                break
            await self._sleep(attempt, response)
        assert response is not None
        problem = _problem(response)
        raise CoalitionError(
            response.status_code,
            str(problem.get("code", "unknown")),
            str(problem.get("detail", response.reason_phrase)),
            problem,
        )

    def _signed(
        self, method: str, path: str, content: bytes, idempotency_key: str | None
    ) -> httpx.Request:
        headers: dict[str, str] = {"Accept": "application/json"}
        if content:
            headers["Content-Type"] = "application/json"
        if idempotency_key is not None:
            headers["Idempotency-Key"] = idempotency_key
        request = self._http.build_request(method, path, content=content, headers=headers)
        # A new signature (created, nonce) per attempt: a retry is a new message.
        sign_request(
            method,
            str(request.url),
            headers,
            content,
            key_id=self._key_id,
            secret=self._secret,
        )
        request.headers.update(headers)
        return request

    async def _sleep(self, attempt: int, response: httpx.Response | None) -> None:
        backoff = min(self._backoff_s_base * 2 ** (attempt - 1), BACKOFF_S_MAX)
        jittered = backoff * (0.5 + random.random())  # noqa: S311 (jitter, not a secret)
        await asyncio.sleep(max(jittered, _retry_after_s(response)))
