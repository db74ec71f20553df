"""One `verify` against a database, in a fresh process: its time and this process's peak RSS.

    .venv/bin/python -m tests.load.verify_rss --dsn postgresql://... [--checkout DIR]

Imports `ledger.verify` (and everything it imports) from the checkout at DIR, this one by
default. `scale_ledger --compare-verify DIR` runs this alternately for another checkout (e.g.
/work/main) and this one on the same journal: a fresh process per run, so each peak RSS
(`ru_maxrss`, exact) belongs to one implementation alone. The PostgreSQL backend serving the
run is sampled every 0.2 s. Prints one JSON line. Not a test.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import json
import resource
import sys
import threading
import time
from pathlib import Path
from types import ModuleType
from typing import Any

import asyncpg
import psutil

THIS_CHECKOUT = Path(__file__).resolve().parents[2]

SAMPLE_S = 0.2
MIB = 1024 * 1024


def load(checkout: Path) -> ModuleType:
    """`ledger.verify` as that checkout has it (nothing of the project is imported yet)."""
    assert "ledger" not in sys.modules, "a checkout's ledger package must be the first one"
    sys.path.insert(0, str(checkout))
    module = importlib.import_module("ledger.verify")
    assert module.__file__ is not None
    assert Path(module.__file__).resolve().is_relative_to(checkout.resolve()), module.__file__
    return module


def sample_backend(pid: int, stop: threading.Event, peak: list[int]) -> None:
    proc = psutil.Process(pid)
    while not stop.wait(SAMPLE_S):
        try:
            peak[0] = max(peak[0], int(proc.memory_info().rss))
        except psutil.Error:
            return


async def run(dsn: str, checkout: Path) -> dict[str, Any]:
    module = load(checkout)
    conn = await asyncpg.connect(dsn)
    try:
        backend = await conn.fetchval("SELECT pg_backend_pid()")
        stop, peak = threading.Event(), [0]
        sampler = threading.Thread(target=sample_backend, args=(backend, stop, peak), daemon=True)
        rss_before = psutil.Process().memory_info().rss
        sampler.start()
        started = time.monotonic()
        problems = await module.verify(conn)
        seconds = time.monotonic() - started
        stop.set()
        sampler.join()
    finally:
        await conn.close()
    return {
        "checkout": str(checkout),
        "seconds": round(seconds, 2),
        "problems": len(problems),
        "python_rss_before_mib": round(rss_before / MIB, 1),
        "python_maxrss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "pg_backend_rss_peak_mib": round(peak[0] / MIB, 1),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dsn", required=True)
    parser.add_argument("--checkout", type=Path, default=THIS_CHECKOUT)
    args = parser.parse_args()
    print(json.dumps(asyncio.run(run(args.dsn, args.checkout))), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
