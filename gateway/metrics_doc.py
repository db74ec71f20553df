"""What /schema says about `/metrics`: Prometheus' text exposition format, not JSON."""

from __future__ import annotations

from litestar.openapi.datastructures import ResponseSpec
from prometheus_client import CONTENT_TYPE_LATEST

METRICS_MEDIA_TYPE = CONTENT_TYPE_LATEST  # text/plain; version=...; charset=utf-8
METRICS_RESPONSE = ResponseSpec(
    data_container=str,
    description="The service's metrics (summed over the workers of `serve --workers N`) in the "
    "Prometheus text exposition format.",
    media_type="text/plain",
    generate_examples=False,
)
