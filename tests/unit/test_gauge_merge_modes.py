"""Every gauge says how `serve --workers N` merges it (gateway/metrics_processes.py).

prometheus_client's default, `all`, exports one series per worker pid: a dashboard summing
it would count a database figure N times, one reading it would see N answers."""

from __future__ import annotations

from prometheus_client import REGISTRY, Gauge

import gateway.app  # noqa: F401 (imports every module that declares a metric)


def test_every_gauge_has_an_explicit_multiprocess_mode() -> None:
    collectors = list(REGISTRY._collector_to_names)  # the registry has no public list
    gauges = [c for c in collectors if isinstance(c, Gauge)]
    assert len(gauges) >= 15, "the gateway's gauges are registered"
    defaulted = sorted(g._name for g in gauges if g._multiprocess_mode == "all")
    assert defaulted == []
