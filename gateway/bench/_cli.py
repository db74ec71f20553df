"""`coalition bench`: signed partner traffic through wrk, next to pgbench TPC-B, checked after.

One bounded run: start (or target) a server, provision a network as partners do (partners
through the operator API, --shoppers shoppers enrolled through the signed POST /v1/shoppers:
gateway/bench/_provision.py), run pgbench TPC-B on the same PostgreSQL, then each scenario for
--duration-s with --connections, each followed by the correctness check. With --targets, then
earn-spread and burn-heavy in the open loop at half their closed-loop req/s, and issue 18's
targets judged on this run's figures (gateway/bench/_report.py: targets). Exit 0 when every
check passed (a target short of its limit does not fail the run: a benchmark, not a test), 1
when one failed, 2 on a usage or setup problem.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import os
import platform
import resource
import shutil
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, NamedTuple

import asyncpg
import httpx

from contracts.signing import CREATED_SKEW_S_MAX
from gateway.bench import _check, _open_loop, _provision, _report, _requests, _server
from gateway.tokens import load_or_create
from infra import embedded, migrations

DURATION_S_MAX = 120
CONNECTIONS_MAX = 256
PARTNERS = 10
SHOPPERS_DEFAULT = 10_000
SHOPPERS_MAX = 100_000
FUNDED_SHOPPERS = 2_000
# The pool holds this many requests per second of run: a server faster than this runs the pool
# dry, which the bench reports as a failed run (raise --requests-per-s-max), never a replay.
REQUESTS_PER_S_MAX_DEFAULT = 2_500
REQUESTS_PER_S_MAX_LIMIT = 50_000
CREATED_MARGIN_S = 30  # signatures must still be fresh when the run's last request is sent
WRK_THREADS = 1  # one event loop drives 64 connections at a fraction of a core
# Unmeasured purchases before the first scenario (see warm_up): a few pages per table are not
# enough (whole-table plans stay cheapest), 1,000 purchases are.
WARMUP_PURCHASES_MIN = 1_000
WARMUP_ROUND_S = 2
WARMUP_ROUNDS_MAX = 8
WRK_TIMEOUT_S = 30
WRK_GRACE_S = 30
# TPC-B's scale: branches, and so how many rows the 64 clients contend on. 10 is the default;
# pgbench's own default, 1 (every transaction updates the one branch row), is about 0.6x of it
# on this machine (docs/performance.md, fifth session).
PGBENCH_SCALE_DEFAULT = 10
PGBENCH_SCALE_MAX = 1_000
PGBENCH_JOBS = 2
PGBENCH_DEFAULT = "/usr/bin/pgbench"
BENCH_DATABASE = "coalition_bench"
PGBENCH_DATABASE = "coalition_bench_pgbench"
LUA_SCRIPT = Path(__file__).resolve().parents[2] / "tests" / "load" / "wrk" / "replay.lua"
WRK_MISSING = (
    "wrk is not installed: it is Debian's package `wrk` (apt-get install -y wrk); "
    "`make bench` installs it"
)
EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
SERVER_WORKERS_MAX = 8


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="coalition bench", description=__doc__.splitlines()[0])
    p.add_argument(
        "--scenario",
        action="append",
        choices=_requests.SCENARIOS,
        help="run this scenario (repeatable; default: all)",
    )
    p.add_argument("--duration-s", type=int, default=10, help="seconds per run (default 10)")
    p.add_argument("--connections", type=int, default=64, help="concurrent connections (64)")
    p.add_argument(
        "--shoppers",
        type=int,
        default=SHOPPERS_DEFAULT,
        help="shoppers enrolled through POST /v1/shoppers, spread over the partners "
        f"(1..{SHOPPERS_MAX}; default %(default)s)",
    )
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.add_argument("--target", help="an already running server's base URL (127.0.0.1 only)")
    p.add_argument(
        "--target-pid",
        type=int,
        help="with --target: the server's process id, whose CPU (with its worker processes) "
        "the report shows",
    )
    p.add_argument(
        "--server-workers",
        type=int,
        default=1,
        help="worker processes of the server the bench starts (`serve --workers`; default 1)",
    )
    p.add_argument("--skip-pgbench", action="store_true", help="do not run pgbench TPC-B")
    p.add_argument(
        "--pgbench-scale",
        type=int,
        default=PGBENCH_SCALE_DEFAULT,
        help="pgbench's scale factor, its number of branches (default %(default)s)",
    )
    p.add_argument(
        "--requests-per-s-max",
        type=int,
        default=REQUESTS_PER_S_MAX_DEFAULT,
        help="pre-signed pool size per second of run (default %(default)s)",
    )
    p.add_argument(
        "--rate",
        type=float,
        help="open loop: send at this constant arrival rate (requests/s) instead of wrk's "
        "closed loop; latency counts from each request's intended send time",
    )
    p.add_argument(
        "--seconds", type=int, help="open loop: seconds of arrivals (default --duration-s)"
    )
    p.add_argument(
        "--targets",
        action="store_true",
        help="after the closed loops, run earn-spread and burn-heavy in the open loop at 50%% of "
        "their closed-loop req/s, then judge issue 18's targets on this run (a table, or "
        '"targets" in --json)',
    )
    return p


def machine() -> dict[str, str]:
    model = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"cpus": str(os.cpu_count()), "cpu": model, "python": platform.python_version()}


def _children_cpu_s() -> float:
    """CPU seconds of waited-for child processes: wrk's cost, to show it is not the limit."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _stat_fields(pid: int) -> list[str] | None:
    """Fields 3.. of /proc/<pid>/stat (after the command name), None when unreadable."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None


def parent_pid(pid: int) -> int | None:
    fields = _stat_fields(pid)
    return None if fields is None else int(fields[1])


def process_tree_cpu_s(root: int | None) -> float | None:
    """CPU seconds of `root`, its waited-for dead children and its live children (a
    postmaster and its backends), None when /proc does not show it (a remote server)."""
    if root is None:
        return None
    fields = _stat_fields(root)
    if fields is None:
        return None
    ticks = sum(int(f) for f in fields[11:15])  # utime, stime, cutime, cstime
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            child = _stat_fields(int(entry.name))
            if child is not None and int(child[1]) == root:
                ticks += int(child[11]) + int(child[12])
    return ticks / os.sysconf("SC_CLK_TCK")


def say(text: str, quiet: bool) -> None:
    if not quiet:
        print(f"bench: {text}", file=sys.stderr, flush=True)


async def checkpoint(conn: asyncpg.Connection) -> None:
    """Start every measured run (pgbench's and each scenario) right after a checkpoint, so
    none starts in the middle of the WAL the run before it wrote: a 30 s scenario writes about
    650 MB, and the checkpoint it brings makes the next run log whole pages. It does not make
    scenarios independent of their order: a later one also runs on a bigger database (in 30 s
    runs, the second scenario used 0.49-0.53 ms of PostgreSQL CPU per purchase, the first
    0.42-0.44, whichever scenario was where)."""
    await conn.execute("CHECKPOINT")


class PgbenchRun(NamedTuple):
    tps: float
    transactions: int
    postgres_cpu_s: float | None  # the postmaster tree's CPU over the timed run only


async def run_pgbench(
    binary: str,
    dsn: str,
    *,
    connections: int,
    duration_s: int,
    scale: int,
    before_run: Callable[[], Awaitable[None]],
    postmaster_pid: int | None,
) -> PgbenchRun:
    """`pgbench -i`, then the timed TPC-B run, its PostgreSQL CPU measured as the scenarios'
    is (process_tree_cpu_s), so that CPU per TPC-B transaction is known; the load of the
    initialisation is left out."""

    async def run(*args: str) -> str:
        process = await asyncio.create_subprocess_exec(
            binary,
            *args,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        out, _ = await asyncio.wait_for(process.communicate(), timeout=duration_s + 300)
        text = out.decode(errors="replace")
        if process.returncode != 0:
            raise RuntimeError(f"pgbench {' '.join(args[:2])} failed:\n{text[-2000:]}")
        return text

    await run("-i", "-q", "-s", str(scale), dsn)
    await before_run()
    cpu_before = process_tree_cpu_s(postmaster_pid)
    output = await run(
        "-M",
        "prepared",
        "-c",
        str(connections),
        "-j",
        str(PGBENCH_JOBS),
        "-T",
        str(duration_s),
        dsn,
    )
    cpu_after = process_tree_cpu_s(postmaster_pid)
    return PgbenchRun(
        tps=_report.parse_pgbench_tps(output),
        transactions=_report.parse_pgbench_transactions(output),
        postgres_cpu_s=(
            None if cpu_before is None or cpu_after is None else cpu_after - cpu_before
        ),
    )


def read_logs(log_prefix: str) -> list[str]:
    lines: list[str] = []
    for index in range(WRK_THREADS):
        log = Path(f"{log_prefix}{index}.log")
        if log.exists():
            lines.extend(log.read_text().splitlines())
    return lines


async def run_wrk(
    binary: str,
    base_url: str,
    pool_prefix: Path,
    log_prefix: Path,
    *,
    connections: int,
    duration_s: int,
) -> _report.WrkSummary:
    process = await asyncio.create_subprocess_exec(
        binary,
        "-t",
        str(WRK_THREADS),
        "-c",
        str(connections),
        "-d",
        f"{duration_s}s",
        "--timeout",
        f"{WRK_TIMEOUT_S}s",
        "-s",
        str(LUA_SCRIPT),
        base_url,
        "--",
        str(pool_prefix),
        str(log_prefix),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await asyncio.wait_for(process.communicate(), timeout=duration_s + WRK_GRACE_S)
    text = out.decode(errors="replace")
    if process.returncode != 0:
        raise RuntimeError(f"wrk failed ({process.returncode}):\n{text[-2000:]}")
    return _report.parse_wrk(text)


async def group_commits(base_url: str) -> tuple[float, float] | None:
    """(calls, groups) committed so far by the server's group commit, from its /metrics;
    None when it does not say (grouping off, or another process answered)."""
    try:
        async with httpx.AsyncClient(base_url=base_url, timeout=_provision.HTTP_TIMEOUT_S) as http:
            text = (await http.get("/metrics")).text
    except httpx.HTTPError:
        return None
    return _report.group_commit_totals(text)


def signed_pool(
    name: str, network: _requests.Network, count: int, *, run: str, seed: int, scratch: Path
) -> tuple[list[_requests.Planned], Path, Path]:
    """Plan and pre-sign `count` requests of scenario `name` into wrk's pool files: (the plan,
    the pools' prefix, the logs' prefix); `run` names this set (refs and keys are unique)."""
    planned = list(_requests.plan(name, network, count, run=run, seed=seed))
    pool_prefix = scratch / f"{run}-pool-"
    log_prefix = scratch / f"{run}-log-"
    _requests.write_pools(str(pool_prefix), planned, network, threads=WRK_THREADS)
    return planned, pool_prefix, log_prefix


def write_open_loop_log(log_prefix: Path, result: _open_loop.OpenLoopResult) -> None:
    with Path(f"{log_prefix}0.log").open("w") as log:
        for sample in result.samples:
            if sample.status:
                log.write(f"{sample.status} {sample.index}\n")


async def run_open_loop(
    raws: list[bytes],
    base_url: str,
    log_prefix: Path,
    *,
    rate_per_s: float,
    seconds: int,
    connections: int,
) -> tuple[_report.WrkSummary, _open_loop.OpenLoopResult]:
    """Send `raws` at `rate_per_s` over `connections` sockets; log "<status> <id>" per answer
    as the wrk script does, so the tally and the correctness check read it unchanged."""
    host, _, port = base_url.removeprefix("http://").rstrip("/").partition(":")
    sockets = _open_loop.RawConnections(host, int(port or 80), raws, size=connections)
    try:
        result = await _open_loop.run(
            sockets.send, rate_per_s=rate_per_s, seconds=seconds, in_flight_max=connections
        )
    finally:
        await sockets.close()
    write_open_loop_log(log_prefix, result)
    errors = sum(1 for sample in result.samples if not sample.status)
    summary = _report.WrkSummary(
        requests=len(result.samples) - errors,
        duration_s=max(float(seconds), result.elapsed_s),
        latency_ms_p50=result.latency_ms(50),
        latency_ms_p95=result.latency_ms(95),
        latency_ms_p99=result.latency_ms(99),
        latency_ms_max=result.latency_ms(100),
        errors_connect=0,
        errors_read=errors,
        errors_write=0,
        errors_timeout=0,
    )
    return summary, result


async def scenario(
    name: str,
    *,
    conn: asyncpg.Connection[Any],
    network: _requests.Network,
    base_url: str,
    wrk: str,
    scratch: Path,
    args: argparse.Namespace,
    pgbench_tps: float | None,
    server_pid: int | None,
    postmaster_pid: int | None,
) -> _report.ScenarioResult:
    run = f"{name}-{time.time_ns()}"
    open_loop = args.rate is not None
    count = (
        int(args.rate * args.seconds) if open_loop else args.requests_per_s_max * args.duration_s
    )
    started = time.monotonic()
    raws: list[bytes] = []
    if open_loop:
        planned = list(_requests.plan(name, network, count, run=run, seed=len(name)))
        raws = [_requests.raw_request(item, network, i) for i, item in enumerate(planned)]
        pool_prefix, log_prefix = scratch / f"{run}-pool-", scratch / f"{run}-log-"
    else:
        planned, pool_prefix, log_prefix = signed_pool(
            name, network, count, run=run, seed=len(name), scratch=scratch
        )
    generation_s = time.monotonic() - started
    if generation_s + args.duration_s > CREATED_SKEW_S_MAX - CREATED_MARGIN_S:
        # The last requests would reach the server with a `created` it refuses (401).
        raise RuntimeError(
            f"signing {count} requests took {generation_s:.0f} s: with a {args.duration_s} s "
            f"run the signatures would expire; lower --requests-per-s-max or --duration-s"
        )
    partner_ids = [p.partner_id for p in network.partners]
    entry_before = await _check.last_entry_id(conn)
    groups_before = await group_commits(base_url)
    cpu_before = _children_cpu_s()
    server_cpu_before = process_tree_cpu_s(server_pid)  # with --workers, the workers too
    postgres_cpu_before = process_tree_cpu_s(postmaster_pid)
    open_result: _open_loop.OpenLoopResult | None = None
    if open_loop:
        loop_cpu_before = time.process_time()
        summary, open_result = await run_open_loop(
            raws,
            base_url,
            log_prefix,
            rate_per_s=args.rate,
            seconds=args.seconds,
            connections=args.connections,
        )
        loadgen_cpu_s = time.process_time() - loop_cpu_before
    else:
        summary = await run_wrk(
            wrk,
            base_url,
            pool_prefix,
            log_prefix,
            connections=args.connections,
            duration_s=args.duration_s,
        )
        loadgen_cpu_s = _children_cpu_s() - cpu_before
    server_cpu_after = process_tree_cpu_s(server_pid)
    postgres_cpu_after = process_tree_cpu_s(postmaster_pid)
    postgres_cpu_s = (
        None
        if postgres_cpu_before is None or postgres_cpu_after is None
        else postgres_cpu_after - postgres_cpu_before
    )
    server_cpu_s = (
        None
        if server_cpu_before is None or server_cpu_after is None
        else server_cpu_after - server_cpu_before
    )
    groups_after = await group_commits(base_url)
    await _check.settle(conn, partner_ids)
    lines = read_logs(str(log_prefix))
    kinds = [item.kind for item in planned]
    tally = _report.tally(lines, kinds)
    problems, unacknowledged = await _check.check_scenario(
        conn,
        planned=planned,
        tally=tally,
        run=run,
        partner_ids=partner_ids,
        entry_id_before=entry_before,
        connections=args.connections,
    )
    if tally.exhausted:
        problems.insert(
            0,
            f"the pool of {count} pre-signed requests ran out: the figure is not valid; "
            "rerun with a larger --requests-per-s-max",
        )
    server_errors = sum(n for status, n in tally.by_status.items() if status >= 500)
    if server_errors:
        problems.append(f"{server_errors} responses with a 5xx status")
    rps = summary.requests_per_s
    return _report.ScenarioResult(
        name=name,
        requests=summary.requests,
        requests_per_s=rps,
        latency_ms_p50=summary.latency_ms_p50,
        latency_ms_p95=summary.latency_ms_p95,
        latency_ms_p99=summary.latency_ms_p99,
        latency_ms_max=summary.latency_ms_max,
        by_status={str(k): v for k, v in sorted(tally.by_status.items())},
        socket_errors=summary.socket_errors,
        acknowledged_by_kind={k: len(v) for k, v in sorted(tally.acknowledged.items())},
        ratio_to_pgbench=_report.ratio(rps, pgbench_tps),
        pool_requests=count,
        generation_s=generation_s,
        committed_unacknowledged=unacknowledged,
        loadgen_cpu_s=loadgen_cpu_s,
        server_cpu_s=server_cpu_s,
        postgres_cpu_s=postgres_cpu_s,
        calls_per_commit=_report.calls_per_commit(groups_before, groups_after),
        problems=problems,
        mode="closed-loop" if open_result is None else "open-loop",
        rate_per_s=None if open_result is None else open_result.rate_per_s,
        latency_ms_p999=None if open_result is None else open_result.latency_ms(99.9),
        late_sends=None if open_result is None else open_result.late,
    )


async def warm_up(
    conn: asyncpg.Connection[Any],
    network: _requests.Network,
    *,
    base_url: str,
    wrk: str,
    scratch: Path,
    args: argparse.Namespace,
) -> None:
    """Unmeasured purchases until the tables have some rows, then VACUUM ANALYZE.

    A database created for the run starts with empty tables and no statistics; the plans the
    server caches then (PL/pgSQL, prepared statements) read whole tables, which stays cheap
    only while they are tiny, and autovacuum may not re-analyze within a short run. Measured
    that way, whichever scenario runs second paid about twice the PostgreSQL CPU per purchase
    of the first. A production database has statistics; ANALYZE also makes every backend
    re-plan.
    """
    purchases = 0
    for round_index in range(WARMUP_ROUNDS_MAX):
        planned, pool_prefix, log_prefix = signed_pool(
            "earn-spread",
            network,
            WARMUP_ROUND_S * args.requests_per_s_max,
            run=f"warm-up-{round_index}-{time.time_ns()}",
            seed=round_index,
            scratch=scratch,
        )
        await run_wrk(
            wrk,
            base_url,
            pool_prefix,
            log_prefix,
            connections=args.connections,
            duration_s=WARMUP_ROUND_S,
        )
        tally = _report.tally(read_logs(str(log_prefix)), [item.kind for item in planned])
        purchases += len(tally.acknowledged.get("purchase", []))
        if purchases >= WARMUP_PURCHASES_MIN:
            break
    await _check.settle(conn, [p.partner_id for p in network.partners])
    # The provisioning's inserts (up to 100,000 shoppers, cards and stored answers) are due for
    # autovacuum's first pass: done now, not in the middle of the first measured scenario.
    await conn.execute("VACUUM ANALYZE")
    say(f"warm-up: {purchases} unmeasured purchases, then VACUUM ANALYZE", bool(args.json))


async def bench(
    args: argparse.Namespace,
    *,
    server_dsn: str,
    app_dsn: str,
    base_url: str,
    key_dir: Path,
    scratch: Path,
    wrk: str,
    pgbench: str | None,
    server_pid: int | None = None,
) -> _report.Report:
    quiet = bool(args.json)
    key = load_or_create(key_dir, os.environ.get("COALITION_JWT_PRIVATE_KEY") or None)
    run = str(time.time_ns())[-9:]
    conn = await asyncpg.connect(app_dsn)
    try:
        # Our backend's parent is the postmaster when PostgreSQL runs on this machine.
        postmaster_pid = parent_pid(int(await conn.fetchval("SELECT pg_backend_pid()")))
        async with _provision.client(base_url) as http:
            partners = await _provision.create_partners(http, key, count=PARTNERS, run=run)
            say(f"{PARTNERS} partners via the operator API; enrolling shoppers ...", quiet)
            enrolment = await _provision.provision_shoppers(
                base_url, conn, partners, count=args.shoppers
            )
            provisioning = _report.Provisioning(
                partners=PARTNERS,
                shoppers=args.shoppers,
                enrolled=enrolment.enrolled,
                kept=enrolment.kept,
                elapsed_s=enrolment.elapsed_s,
                concurrency=_provision.PROVISION_CONCURRENCY,
                shoppers_per_s=enrolment.shoppers_per_s,
            )
            say(_report.provisioning_line(provisioning).removeprefix("provisioning: "), quiet)
            scenarios = args.scenario or list(_requests.SCENARIOS)
            funded = [_requests.card_number(i) for i in range(min(FUNDED_SHOPPERS, args.shoppers))]
            holds: list[tuple[int, str]] = []
            if "burn-heavy" in scenarios:
                started = time.monotonic()
                await _provision.fund(http, partners, funded, run=run)
                hold_count = int(
                    args.requests_per_s_max * args.duration_s * _requests.CAPTURE_SHARE
                )
                holds = await _provision.open_holds(
                    http, partners, funded, count=hold_count, run=run
                )
                say(
                    f"funded {len(funded)} shoppers and opened {len(holds)} holds over HTTP "
                    f"in {time.monotonic() - started:.1f} s",
                    quiet,
                )
        host = base_url.removeprefix("http://").rstrip("/")
        network = _requests.Network(host, partners, args.shoppers, funded, holds)
        pgbench_run: PgbenchRun | None = None
        if pgbench is not None:
            say(f"pgbench TPC-B -s {args.pgbench_scale}, {args.duration_s} s ...", quiet)
            pg_dsn = await _server.recreate_database(server_dsn, PGBENCH_DATABASE)
            try:
                pgbench_run = await run_pgbench(
                    pgbench,
                    pg_dsn,
                    connections=args.connections,
                    duration_s=args.duration_s,
                    scale=args.pgbench_scale,
                    before_run=lambda: checkpoint(conn),
                    postmaster_pid=postmaster_pid,
                )
            finally:
                await _server.drop_database(server_dsn, PGBENCH_DATABASE)
        pgbench_tps = None if pgbench_run is None else pgbench_run.tps
        await warm_up(conn, network, base_url=base_url, wrk=wrk, scratch=scratch, args=args)
        results: list[_report.ScenarioResult] = []

        async def measured(name: str, run_args: argparse.Namespace, on: _requests.Network) -> None:
            # Fresh statistics before every measured run (see warm_up), and the previous
            # run's dead rows vacuumed, as pgbench vacuums its tables before its own run: a
            # scenario does not pay for the autovacuum of the one before.
            await conn.execute("VACUUM ANALYZE")
            await checkpoint(conn)
            results.append(
                await scenario(
                    name,
                    conn=conn,
                    network=on,
                    base_url=base_url,
                    wrk=wrk,
                    scratch=scratch,
                    args=run_args,
                    pgbench_tps=pgbench_tps,
                    server_pid=server_pid,
                    postmaster_pid=postmaster_pid,
                )
            )

        for name in scenarios:
            say(f"{name}, {args.duration_s} s ...", quiet)
            await measured(name, args, network)
        if args.targets:
            for name, rate in open_loop_rates(results):
                say(f"{name}, OPEN LOOP at {rate:.0f}/s, {args.duration_s} s ...", quiet)
                on = network
                if name == "burn-heavy":  # the closed loop captured the first holds
                    on = await with_fresh_holds(network, base_url, rate, args, run=f"{run}-open")
                open_args = argparse.Namespace(**{**vars(args), "rate": rate})
                open_args.seconds = args.duration_s
                await measured(name, open_args, on)
        info = machine()
        info["postgres"] = str(await conn.fetchval("SHOW server_version"))
    finally:
        await conn.close()
    report = _report.Report(
        machine=info,
        duration_s=args.duration_s,
        connections=args.connections,
        pgbench_tps=pgbench_tps,
        pgbench_scale=None if pgbench_tps is None else args.pgbench_scale,
        scenarios=results,
        provisioning=provisioning,
        pgbench_transactions=None if pgbench_run is None else pgbench_run.transactions,
        pgbench_postgres_cpu_s=None if pgbench_run is None else pgbench_run.postgres_cpu_s,
    )
    if args.targets:
        report.targets = _report.targets(report)
    return report


def open_loop_rates(results: list[_report.ScenarioResult]) -> list[tuple[str, float]]:
    """(scenario, arrival rate) of the open loops the targets ask for: half of what each
    scenario reached in its closed loop; none for a scenario not run or that got nothing."""
    return [
        (r.name, _report.OPEN_LOOP_SHARE * r.requests_per_s)
        for r in results
        if r.name in _report.OPEN_LOOP_SCENARIOS and r.mode == "closed-loop" and r.requests_per_s
    ]


async def with_fresh_holds(
    network: _requests.Network,
    base_url: str,
    rate_per_s: float,
    args: argparse.Namespace,
    *,
    run: str,
) -> _requests.Network:
    """The network with new open holds for an open-loop burn-heavy, as many as it will capture."""
    count = int(rate_per_s * args.duration_s * _requests.CAPTURE_SHARE) + 1
    async with _provision.client(base_url) as http:
        holds = await _provision.open_holds(
            http, network.partners, network.funded_cards, count=count, run=run
        )
    return dataclasses.replace(network, open_holds=holds)


async def _owned_run(
    args: argparse.Namespace, scratch: Path, server_dsn: str, wrk: str, pgbench: str | None
) -> _report.Report:
    """Scratch database + our own server process around `bench`."""
    app_dsn = await _server.recreate_database(server_dsn, BENCH_DATABASE)
    try:
        conn = await asyncpg.connect(app_dsn)
        try:
            await migrations.migrate(conn)
        finally:
            await conn.close()
        data_dir = scratch / "server"
        data_dir.mkdir()
        server = _server.start_server(
            app_dsn, data_dir, scratch / "server.log", workers=args.server_workers
        )
        try:
            await _server.wait_ready(server.base_url, server)
            report = await bench(
                args,
                server_dsn=server_dsn,
                app_dsn=app_dsn,
                base_url=server.base_url,
                key_dir=data_dir,
                scratch=scratch,
                wrk=wrk,
                pgbench=pgbench,
                server_pid=server.process.pid,
            )
            if server.process.poll() is not None:
                raise RuntimeError(f"the server died during the run:\n{server.log_tail()}")
            return report
        finally:
            server.stop()
    finally:
        await _server.drop_database(server_dsn, BENCH_DATABASE)


def main(argv: list[str]) -> int:
    args = parser().parse_args(argv)
    if args.seconds is not None and args.rate is None:
        print("coalition bench: --seconds goes with --rate (open loop)", file=sys.stderr)
        return EXIT_USAGE
    if args.targets and args.rate is not None:
        print(
            "coalition bench: --targets runs its own open loops (at 50% of the closed loops' "
            "req/s): drop --rate",
            file=sys.stderr,
        )
        return EXIT_USAGE
    if args.rate is not None:
        args.seconds = args.seconds or args.duration_s
        args.duration_s = args.seconds  # pgbench and the warm-up run as long
        if not 0 < args.rate <= REQUESTS_PER_S_MAX_LIMIT:
            print(
                f"coalition bench: --rate must be in (0, {REQUESTS_PER_S_MAX_LIMIT}]",
                file=sys.stderr,
            )
            return EXIT_USAGE
    if not 1 <= args.duration_s <= DURATION_S_MAX:
        print(f"coalition bench: --duration-s must be 1..{DURATION_S_MAX}", file=sys.stderr)
        return EXIT_USAGE
    if not 1 <= args.shoppers <= SHOPPERS_MAX:
        print(f"coalition bench: --shoppers must be 1..{SHOPPERS_MAX}", file=sys.stderr)
        return EXIT_USAGE
    if not 1 <= args.connections <= CONNECTIONS_MAX:
        print(f"coalition bench: --connections must be 1..{CONNECTIONS_MAX}", file=sys.stderr)
        return EXIT_USAGE
    if not 1 <= args.pgbench_scale <= PGBENCH_SCALE_MAX:
        print(f"coalition bench: --pgbench-scale must be 1..{PGBENCH_SCALE_MAX}", file=sys.stderr)
        return EXIT_USAGE
    if not 1 <= args.requests_per_s_max <= REQUESTS_PER_S_MAX_LIMIT:
        print(
            f"coalition bench: --requests-per-s-max must be 1..{REQUESTS_PER_S_MAX_LIMIT}",
            file=sys.stderr,
        )
        return EXIT_USAGE
    if not 1 <= args.server_workers <= SERVER_WORKERS_MAX:
        print(f"coalition bench: --server-workers must be 1..{SERVER_WORKERS_MAX}", file=sys.stderr)
        return EXIT_USAGE
    if args.target_pid is not None and not args.target:
        print("coalition bench: --target-pid goes with --target", file=sys.stderr)
        return EXIT_USAGE
    if args.target and not args.target.startswith(("http://127.0.0.1:", "http://localhost:")):
        print("coalition bench: --target must be a loopback http:// URL", file=sys.stderr)
        return EXIT_USAGE
    wrk = shutil.which("wrk")
    if wrk is None:
        print(f"coalition bench: {WRK_MISSING}", file=sys.stderr)
        return EXIT_USAGE
    pgbench = None
    if not args.skip_pgbench:
        pgbench = shutil.which("pgbench") or (
            PGBENCH_DEFAULT if Path(PGBENCH_DEFAULT).exists() else None
        )
        if pgbench is None:
            print("coalition bench: pgbench not found (or pass --skip-pgbench)", file=sys.stderr)
            return EXIT_USAGE
    database_url = os.environ.get("DATABASE_URL")
    try:
        with tempfile.TemporaryDirectory(prefix="coalition-bench-") as scratch_dir:
            scratch = Path(scratch_dir)
            if args.target:
                if not database_url:
                    print(
                        "coalition bench: --target needs DATABASE_URL (the server's database) "
                        "and COALITION_DATA_DIR (its JWT key)",
                        file=sys.stderr,
                    )
                    return EXIT_USAGE
                report = asyncio.run(
                    bench(
                        args,
                        server_dsn=database_url,
                        app_dsn=database_url,
                        base_url=args.target.rstrip("/"),
                        key_dir=Path(os.environ.get("COALITION_DATA_DIR", ".coalition")),
                        scratch=scratch,
                        wrk=wrk,
                        pgbench=pgbench,
                        server_pid=args.target_pid,
                    )
                )
            elif database_url:
                report = asyncio.run(_owned_run(args, scratch, database_url, wrk, pgbench))
            else:
                cluster = embedded.start(scratch / "pg", cleanup_mode="delete")
                try:
                    report = asyncio.run(_owned_run(args, scratch, cluster.dsn, wrk, pgbench))
                finally:
                    cluster.stop()
    except (RuntimeError, OSError, asyncpg.PostgresError, httpx.HTTPError) as exc:
        print(f"coalition bench: {type(exc).__name__}: {exc}", file=sys.stderr)
        return EXIT_FAILED
    print(_report.render_json(report) if args.json else _report.render_table(report))
    return EXIT_OK if report.ok else EXIT_FAILED
