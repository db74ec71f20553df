"""The per-route request metrics: Litestar's Prometheus middleware, its children kept.

The stock `PrometheusMiddleware.__call__` builds a `Request`, a `URL` and a `functools.wraps`
wrapper, and looks up each of its metrics' children by label values (a lock and a tuple each)
on every call: about 55 µs a call on the bench machine, some 5 % of a signed purchase's server
CPU (docs/performance.md). This subclass, plugged in through `PrometheusConfig.middleware_class`,
keeps the stock metrics, names, labels and observations, and looks the children up once per
(method, path template, status code). `tests/unit/test_metrics_requests.py` runs the same
calls through both and requires the same samples.
"""

from __future__ import annotations

import time
from typing import Any

from litestar.enums import ScopeType
from litestar.plugins.prometheus import PrometheusConfig, PrometheusMiddleware
from litestar.status_codes import HTTP_500_INTERNAL_SERVER_ERROR
from litestar.types import ASGIApp, Message, Receive, Scope, Send
from prometheus_client import Counter, Gauge, Histogram

# Routes x methods x status codes is small; past this the children are looked up per call.
CACHED_LABEL_SETS_MAX = 4096
# The stock labels, in the stock order (its metrics are created with these label names).
_LABEL_NAMES = ("method", "path", "status_code", "app_name")
# The stock middleware labels the in-progress gauge with the status it starts from.
_STATUS_BEFORE_ANSWER = 200

Labels = dict[str, str | int | float]


class RequestMetricsMiddleware(PrometheusMiddleware):
    def __init__(self, app: ASGIApp, config: PrometheusConfig) -> None:
        super().__init__(app=app, config=config)
        # What this class does not reproduce; the app's config sets none of it.
        assert config.group_path, "labels by path template only"
        assert not config.labels, "no extra labels"
        assert config.exemplars is None, "no exemplars"
        assert not config.excluded_http_methods, "every method counted"
        self._app_name = config.app_name
        self._in_progress: dict[tuple[str, str], Any] = {}
        self._answered: dict[tuple[str, str, int], tuple[Any, Any]] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        method = str(scope["method"]) if scope["type"] == ScopeType.HTTP else str(scope["type"])
        path = str(scope["path_template"])
        status_code = _STATUS_BEFORE_ANSWER
        duration_s = 0.0
        start_s = time.perf_counter()

        async def timed_send(message: Message) -> None:
            nonlocal status_code, duration_s
            if message["type"] == "http.response.start":
                status_code = message["status"]
            elif message["type"] == "http.response.body":
                duration_s = time.perf_counter() - start_s
            await send(message)

        in_progress = self._in_progress_child(method, path)
        in_progress.inc()
        try:
            await self.app(scope, receive, timed_send)
        finally:
            in_progress.dec()
            if status_code >= HTTP_500_INTERNAL_SERVER_ERROR:
                # Created on the first error only, as the stock middleware does.
                labels = self._labels(method, path, status_code)
                self.requests_error_count(labels).labels(*labels.values()).inc()
            count, duration = self._answered_children(method, path, status_code)
            count.inc()
            duration.observe(duration_s)

    def _labels(self, method: str, path: str, status_code: int) -> Labels:
        values: tuple[str | int, ...] = (method, path, status_code, self._app_name)
        return dict(zip(_LABEL_NAMES, values, strict=True))

    def _in_progress_child(self, method: str, path: str) -> Any:
        child = self._in_progress.get((method, path))
        if child is None:
            labels = self._labels(method, path, _STATUS_BEFORE_ANSWER)
            gauge: Gauge = self.requests_in_progress(labels)
            child = gauge.labels(*labels.values())
            if len(self._in_progress) < CACHED_LABEL_SETS_MAX:
                self._in_progress[(method, path)] = child
        return child

    def _answered_children(self, method: str, path: str, status_code: int) -> tuple[Any, Any]:
        key = (method, path, status_code)
        children = self._answered.get(key)
        if children is None:
            labels = self._labels(method, path, status_code)
            count: Counter = self.request_count(labels)
            duration: Histogram = self.request_time(labels)
            children = (count.labels(*labels.values()), duration.labels(*labels.values()))
            if len(self._answered) < CACHED_LABEL_SETS_MAX:
                self._answered[key] = children
        return children
