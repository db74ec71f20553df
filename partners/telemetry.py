"""Metrics observed inside partner operations (exported by gateway/metrics.py)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

from prometheus_client import Histogram

LEDGER_OPERATION_SECONDS = Histogram(
    "coalition_ledger_operation_seconds",
    "Latency of ledger calls made by partner operations",
    ["operation"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
)


@contextmanager
def timed(operation: str) -> Iterator[None]:
    started = time.perf_counter()
    try:
        yield
    finally:
        LEDGER_OPERATION_SECONDS.labels(operation).observe(time.perf_counter() - started)
