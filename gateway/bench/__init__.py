"""`coalition bench`: the load harness of issue 7 (see tests/load/README.md)."""

from __future__ import annotations

from gateway.bench._cli import main

__all__ = ["main"]
