"""gateway.metrics_requests counts what Litestar's own Prometheus middleware counts.

The same calls go through the stock `PrometheusMiddleware` and through `RequestMetricsMiddleware`,
each under its own metric prefix in the default registry, and the samples must agree: counts per
label set, errors, the in-progress gauge during and after a call, and durations measured up to
the body.
"""

from __future__ import annotations

import asyncio
import itertools
from dataclasses import dataclass
from typing import Any

import pytest
from litestar.plugins.prometheus import PrometheusConfig, PrometheusMiddleware
from litestar.types import ASGIApp, Message, Receive, Scope, Send
from prometheus_client import REGISTRY

from gateway.metrics_requests import RequestMetricsMiddleware

_prefixes = itertools.count()
SLOW_S = 0.02


@dataclass(frozen=True)
class Call:
    method: str
    path: str
    status: int
    chunks: int = 1
    fails: str = ""  # "", "before-start" or "after-start"
    slow: bool = False


CALLS = [
    Call("POST", "/v1/purchases", 201),
    Call("POST", "/v1/purchases", 201),
    Call("POST", "/v1/purchases", 401),
    Call("GET", "/v1/shoppers/{shopper_id:int}", 200, chunks=3),
    Call("GET", "/v1/shoppers/{shopper_id:int}", 404),
    Call("POST", "/v1/redemptions", 500),
    Call("POST", "/v1/redemptions", 503, slow=True),
    Call("POST", "/v1/holds", 201, fails="before-start"),
    Call("POST", "/v1/holds", 201, fails="after-start"),
    Call("GET", "/metrics", 200),  # excluded: counted by neither
    Call("POST", "/v1/purchases", 201, slow=True),
]


def _inner(prefix: str, call: Call, seen_in_progress: list[float | None]) -> ASGIApp:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        labels = {"method": call.method, "path": call.path, "status_code": "200"}
        labels["app_name"] = "coalition"
        seen_in_progress.append(REGISTRY.get_sample_value(f"{prefix}_requests_in_progress", labels))
        if call.fails == "before-start":
            raise RuntimeError("before the answer")
        await send({"type": "http.response.start", "status": call.status, "headers": []})
        if call.fails == "after-start":
            raise RuntimeError("during the answer")
        for index in range(call.chunks):
            if call.slow:
                await asyncio.sleep(SLOW_S)
            more = index < call.chunks - 1
            await send({"type": "http.response.body", "body": b"x", "more_body": more})

    return app


async def _through(middleware: type[PrometheusMiddleware], prefix: str) -> list[float | None]:
    config = PrometheusConfig(
        app_name="coalition",
        prefix=prefix,
        group_path=True,
        exclude=["/metrics"],
        middleware_class=middleware,
    )
    seen_in_progress: list[float | None] = []

    async def receive() -> Any:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Message) -> None:
        return None

    for call in CALLS:
        app = middleware(app=_inner(prefix, call, seen_in_progress), config=config)
        scope = {
            "type": "http",
            "method": call.method,
            "path": call.path,
            "path_template": call.path,
            "raw_path": call.path.encode(),
            "query_string": b"",
            "headers": [(b"host", b"127.0.0.1")],
            "scheme": "http",
            "server": ("127.0.0.1", 8000),
            "root_path": "",
            "state": {},
        }
        if call.fails:
            with pytest.raises(RuntimeError):
                await app(scope, receive, send)  # type: ignore[arg-type]
        else:
            await app(scope, receive, send)  # type: ignore[arg-type]
    return seen_in_progress


def _samples(prefix: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample under `prefix`, durations and creation times left out."""
    found: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
    for metric in REGISTRY.collect():
        for sample in metric.samples:
            if not sample.name.startswith(prefix + "_"):
                continue
            # Durations vary with the machine's load: their buckets and sums are left out here
            # (test_the_duration_runs_to_the_last_body_message checks what is measured).
            if sample.name.endswith(("_created", "_sum", "_bucket")):
                continue
            name = sample.name.removeprefix(prefix)
            found[(name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def test_the_same_samples_as_litestars_own_middleware() -> None:
    stock, ours = f"stock{next(_prefixes)}", f"ours{next(_prefixes)}"
    stock_in_progress = asyncio.run(_through(PrometheusMiddleware, stock))
    ours_in_progress = asyncio.run(_through(RequestMetricsMiddleware, ours))

    assert _samples(ours) == _samples(stock)
    # Each counted call saw itself in progress; the excluded one saw nothing of its own.
    assert ours_in_progress == stock_in_progress
    assert ours_in_progress.count(1.0) == len(CALLS) - 1
    counted = _samples(ours)
    purchases = ("method", "POST"), ("path", "/v1/purchases"), ("status_code", "201")
    assert counted[("_requests_total", (("app_name", "coalition"), *sorted(purchases)))] == 3
    errors = [key for key in counted if key[0] == "_requests_error_total"]
    assert len(errors) == 2  # the 500 and the 503
    assert not [key for key in counted if ("path", "/metrics") in key[1]]
    in_progress = [v for k, v in counted.items() if k[0] == "_requests_in_progress"]
    assert in_progress
    assert all(v == 0 for v in in_progress)


def test_the_duration_runs_to_the_last_body_message() -> None:
    ours = f"ours{next(_prefixes)}"
    asyncio.run(_through(RequestMetricsMiddleware, ours))
    labels = {"method": "POST", "path": "/v1/redemptions", "status_code": "503"}
    labels["app_name"] = "coalition"
    total_s = REGISTRY.get_sample_value(f"{ours}_request_duration_seconds_sum", labels)
    assert total_s is not None
    assert total_s >= SLOW_S
    quick = REGISTRY.get_sample_value(
        f"{ours}_request_duration_seconds_bucket", {**labels, "le": "0.01"}
    )
    assert quick == 0
