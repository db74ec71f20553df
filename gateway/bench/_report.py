"""The pure half of the bench: parse wrk and pgbench output, tally responses, render reports.

Nothing here touches a process, a socket or a database, so tests/unit covers it directly.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from typing import NamedTuple

import msgspec

WRK_SUMMARY_PREFIX = "BENCH-WRK "
# The Lua script logs one line per response: "<status> <request id>"; "-" when the response
# carried no X-Request-Id we gave (a request the script made after its pool ran out).
EXHAUSTED_LINE = "exhausted"
UNLABELED_ID = "-"
PGBENCH_TPS = re.compile(r"tps = ([0-9.]+) \(without initial connection time\)")
PGBENCH_TRANSACTIONS = re.compile(r"number of transactions actually processed: ([0-9]+)")
PERCENTILES = (50, 95, 99)


class WrkSummary(msgspec.Struct, frozen=True, kw_only=True):
    """What the Lua `done` function prints: wrk's own counts and latency distribution."""

    requests: int
    duration_s: float
    latency_ms_p50: float
    latency_ms_p95: float
    latency_ms_p99: float
    latency_ms_max: float
    errors_connect: int
    errors_read: int
    errors_write: int
    errors_timeout: int

    @property
    def requests_per_s(self) -> float:
        return self.requests / self.duration_s if self.duration_s > 0 else 0.0

    @property
    def socket_errors(self) -> int:
        return self.errors_connect + self.errors_read + self.errors_write + self.errors_timeout


class Tally(msgspec.Struct, frozen=True, kw_only=True):
    """The responses one scenario got, from the per-thread response logs."""

    by_status: dict[int, int]
    acknowledged: dict[str, list[int]]  # kind -> request indices answered with success
    exhausted: bool
    unlabeled: int


class ScenarioResult(msgspec.Struct, kw_only=True):
    name: str
    requests: int
    requests_per_s: float
    latency_ms_p50: float
    latency_ms_p95: float
    latency_ms_p99: float
    latency_ms_max: float
    by_status: dict[str, int]
    socket_errors: int
    acknowledged_by_kind: dict[str, int]
    ratio_to_pgbench: float | None
    pool_requests: int
    generation_s: float
    committed_unacknowledged: int  # in flight when wrk stopped: committed, answer unread
    loadgen_cpu_s: float  # wrk's user + system CPU over the run
    server_cpu_s: float | None  # the server's CPU, its workers' too (known pid: ours, --target-pid)
    postgres_cpu_s: float | None  # the postmaster's and its backends' CPU (when local)
    calls_per_commit: float | None  # partner calls per group transaction, from /metrics
    problems: list[str]
    # "closed-loop" (wrk: the next request waits for a free connection, so a stall hides its
    # own queueing) or "open-loop" (--rate: latency from each request's intended send time).
    mode: str = "closed-loop"
    rate_per_s: float | None = None  # open loop: the arrival rate asked for
    latency_ms_p999: float | None = None  # open loop only
    late_sends: int | None = None  # open loop: requests dispatched after their due time


class Provisioning(msgspec.Struct, frozen=True, kw_only=True):
    """How the network was built: every shopper through the signed POST /v1/shoppers."""

    partners: int
    shoppers: int  # in the network: enrolled now + kept from an earlier run
    enrolled: int
    kept: int
    elapsed_s: float  # the shoppers' step, wall time
    concurrency: int  # enrolment calls in flight
    shoppers_per_s: float  # enrolled / elapsed_s


class Report(msgspec.Struct, kw_only=True):
    machine: dict[str, str]
    duration_s: int
    connections: int
    pgbench_tps: float | None
    scenarios: list[ScenarioResult]
    pgbench_scale: int | None = None  # TPC-B's scale factor of `pgbench_tps`
    provisioning: Provisioning | None = None
    pgbench_transactions: int | None = None  # TPC-B transactions processed in the timed run
    pgbench_postgres_cpu_s: float | None = None  # the postmaster tree's CPU over that run
    targets: list[Target] = msgspec.field(default_factory=list)  # filled by --targets

    @property
    def ok(self) -> bool:
        return all(not s.problems for s in self.scenarios)


def parse_wrk(stdout: str) -> WrkSummary:
    """The summary line the Lua script's `done` printed; ValueError when there is none."""
    for line in stdout.splitlines():
        if line.startswith(WRK_SUMMARY_PREFIX):
            fields = json.loads(line[len(WRK_SUMMARY_PREFIX) :])
            return WrkSummary(
                requests=int(fields["requests"]),
                duration_s=int(fields["duration_us"]) / 1e6,
                latency_ms_p50=int(fields["p50_us"]) / 1e3,
                latency_ms_p95=int(fields["p95_us"]) / 1e3,
                latency_ms_p99=int(fields["p99_us"]) / 1e3,
                latency_ms_max=int(fields["max_us"]) / 1e3,
                errors_connect=int(fields["connect"]),
                errors_read=int(fields["read"]),
                errors_write=int(fields["write"]),
                errors_timeout=int(fields["timeout"]),
            )
    raise ValueError(f"no {WRK_SUMMARY_PREFIX.strip()} line in wrk's output:\n{stdout[-2000:]}")


def parse_pgbench_tps(stdout: str) -> float:
    match = PGBENCH_TPS.search(stdout)
    if match is None:
        raise ValueError(f"no tps line in pgbench's output:\n{stdout[-2000:]}")
    return float(match[1])


def parse_pgbench_transactions(stdout: str) -> int:
    match = PGBENCH_TRANSACTIONS.search(stdout)
    if match is None:
        raise ValueError(f"no transaction count in pgbench's output:\n{stdout[-2000:]}")
    return int(match[1])


def success_status(kind: str) -> int:
    """The status a successful request of this kind answers with."""
    return 200 if kind in {"capture", "lookup"} else 201


def tally(log_lines: Iterable[str], kinds: Sequence[str]) -> Tally:
    """Count responses by status and collect the acknowledged request indices by kind.

    `kinds[i]` is the kind of request i of the pool, as generated.
    """
    by_status: Counter[int] = Counter()
    acknowledged: dict[str, list[int]] = {}
    exhausted = False
    unlabeled = 0
    for raw in log_lines:
        line = raw.strip()
        if not line:
            continue
        if line == EXHAUSTED_LINE:
            exhausted = True
            continue
        status_text, _, request_id = line.partition(" ")
        status = int(status_text)
        by_status[status] += 1
        if request_id == UNLABELED_ID or not request_id.isdigit():
            unlabeled += 1
            continue
        index = int(request_id)
        if not 0 <= index < len(kinds):
            unlabeled += 1
            continue
        kind = kinds[index]
        if status == success_status(kind):
            acknowledged.setdefault(kind, []).append(index)
    return Tally(
        by_status=dict(by_status),
        acknowledged=acknowledged,
        exhausted=exhausted,
        unlabeled=unlabeled,
    )


def ratio(value: float, reference: float | None) -> float | None:
    if reference is None or reference <= 0:
        return None
    return value / reference


def render_table(report: Report) -> str:
    header = (
        f"{'scenario':<18}{'req/s':>9}{'x pgbench':>11}{'p50 ms':>9}{'p95 ms':>9}"
        f"{'p99 ms':>9}{'requests':>10}  statuses"
    )
    lines = [
        f"{report.connections} connections, {report.duration_s} s per run; "
        + ", ".join(f"{k}: {v}" for k, v in report.machine.items()),
    ]
    if report.provisioning is not None:
        lines.append(provisioning_line(report.provisioning))
    lines.extend([header, "-" * len(header)])
    if report.pgbench_tps is not None:
        name = "pgbench TPC-B" + (
            "" if report.pgbench_scale is None else f" s{report.pgbench_scale}"
        )
        lines.append(f"{name:<18}{report.pgbench_tps:>9.0f}{1.0:>11.2f}")
    if report.pgbench_transactions and report.pgbench_postgres_cpu_s is not None:
        pgbench_footer = (
            f"pgbench TPC-B: {report.pgbench_transactions} transactions, PostgreSQL CPU "
            f"{report.pgbench_postgres_cpu_s:.1f} s, "
            f"{report.pgbench_postgres_cpu_s * 1e3 / report.pgbench_transactions:.3f} ms each"
        )
    else:
        pgbench_footer = ""
    for s in report.scenarios:
        shown_ratio = "-" if s.ratio_to_pgbench is None else f"{s.ratio_to_pgbench:.2f}"
        statuses = " ".join(f"{k}:{v}" for k, v in sorted(s.by_status.items()))
        if s.socket_errors:
            statuses += f" socket-errors:{s.socket_errors}"
        label = s.name if s.mode == "closed-loop" else f"{s.name} open"
        lines.append(
            f"{label:<18}{s.requests_per_s:>9.0f}{shown_ratio:>11}{s.latency_ms_p50:>9.1f}"
            f"{s.latency_ms_p95:>9.1f}{s.latency_ms_p99:>9.1f}{s.requests:>10}  {statuses}"
        )
    for s in report.scenarios:
        if s.mode == "open-loop":
            lines.append(
                f"{s.name}: OPEN LOOP at {s.rate_per_s:.0f}/s asked, {s.requests_per_s:.0f}/s "
                f"achieved; latency from the intended send time p50 {s.latency_ms_p50:.1f} ms, "
                f"p99 {s.latency_ms_p99:.1f} ms, p99.9 {s.latency_ms_p999 or 0.0:.1f} ms; "
                f"sent late {s.late_sends}"
            )
        else:
            lines.append(f"{s.name}: CLOSED LOOP, {report.connections} connections (wrk)")
        lines.append(
            f"{s.name}: pool of {s.pool_requests} pre-signed requests generated in "
            f"{s.generation_s:.1f} s; CPU s used by the load generator {s.loadgen_cpu_s:.2f}, "
            "by the server "
            + ("?" if s.server_cpu_s is None else f"{s.server_cpu_s:.1f}")
            + ", by PostgreSQL "
            + ("?" if s.postgres_cpu_s is None else f"{s.postgres_cpu_s:.1f}")
            + "; acknowledged "
            + ", ".join(f"{k} {v}" for k, v in sorted(s.acknowledged_by_kind.items()))
            + f"; committed while in flight at the deadline {s.committed_unacknowledged}"
            + ("" if s.calls_per_commit is None else f"; calls per commit {s.calls_per_commit:.1f}")
        )
        lines.extend(f"  PROBLEM: {p}" for p in s.problems)
    if pgbench_footer:
        lines.append(pgbench_footer)
    lines.append("correctness: " + ("ok" if report.ok else "FAILED"))
    if report.targets:
        lines.append(render_targets(report.targets))
    return "\n".join(lines)


def provisioning_line(p: Provisioning) -> str:
    kept = f", {p.kept:,} kept from an earlier run" if p.kept else ""
    return (
        f"provisioning: {p.partners} partners via the operator API; {p.shoppers:,} shoppers "
        f"through signed POST /v1/shoppers ({p.enrolled:,} enrolled{kept}) in "
        f"{p.elapsed_s:.1f} s, {p.shoppers_per_s:,.0f} shoppers/s, {p.concurrency} calls in flight"
    )


GROUP_CALLS_SUM = "coalition_group_commit_calls_sum"
GROUP_CALLS_COUNT = "coalition_group_commit_calls_count"


def group_commit_totals(metrics_text: str) -> tuple[float, float] | None:
    """(calls, groups) from a Prometheus text page; None when either is missing."""
    values: dict[str, float] = {}
    for line in metrics_text.splitlines():
        name, _, value = line.partition(" ")
        if name in (GROUP_CALLS_SUM, GROUP_CALLS_COUNT):
            values[name] = float(value)
    if len(values) < 2:
        return None
    return values[GROUP_CALLS_SUM], values[GROUP_CALLS_COUNT]


def calls_per_commit(
    before: tuple[float, float] | None, after: tuple[float, float] | None
) -> float | None:
    if before is None or after is None or after[1] <= before[1]:
        return None
    return (after[0] - before[0]) / (after[1] - before[1])


def render_json(report: Report) -> str:
    payload = msgspec.to_builtins(report)
    payload["ok"] = report.ok
    return json.dumps(payload, indent=2, sort_keys=True)


# The targets of issue 18, each held against one run's figures. A target whose inputs the run
# did not produce (a scenario not run, --skip-pgbench, a run that failed its check) is "not
# measured": never a pass.
MET = "pass"
SHORT = "short"
NOT_MEASURED = "not measured"
AT_MOST = "at most"
AT_LEAST = "at least"
OPEN_LOOP_SHARE = 0.5  # the open loop runs at this share of the closed-loop maximum rate
OPEN_LOOP_RATE_TOLERANCE = 0.01  # an open loop asked for another rate is another experiment
LATENCY_MS_P99_MAX = 50.0
OPEN_LOOP_SCENARIOS = ("earn-spread", "burn-heavy")
BATCH_COMMAND = ".venv/bin/python tests/load/batch_bench.py"
PEER_COMMAND = ".venv/bin/python -m tests.load.hordak_peer"


class TargetSpec(NamedTuple):
    """What a target compares and where its limit lies."""

    name: str
    measure: str  # the figure and its reference, in words
    unit: str  # of the figure and the reference
    bound: str  # AT_MOST or AT_LEAST: the side of `limit` the ratio must be on to pass
    limit: float  # on figure / reference


class Target(msgspec.Struct, frozen=True, kw_only=True):
    """One row of the targets table; the figures are None when the run did not measure them."""

    name: str
    measure: str
    figure: float | None
    reference: float | None
    unit: str
    ratio: float | None  # figure / reference
    bound: str
    limit: float
    verdict: str  # MET ("pass"), SHORT ("short") or NOT_MEASURED
    note: str = ""  # why it is not measured, or at which rate it was


DATABASE_COST = TargetSpec(
    "database cost",
    "PostgreSQL CPU per acknowledged earn-spread purchase / per pgbench TPC-B transaction",
    "ms CPU",
    AT_MOST,
    1.0,
)
GATEWAY_COST = TargetSpec(
    "gateway cost",
    "server CPU / (server + PostgreSQL) CPU per acknowledged earn-spread purchase",
    "ms CPU",
    AT_MOST,
    0.25,
)
THROUGHPUT_SPREAD = TargetSpec(
    "throughput spread", "earn-spread req/s / pgbench TPC-B tps", "/s", AT_LEAST, 0.6
)
# "Within 10%" of the spread, read as: one hot partner costs at most 10% of the throughput. A
# hot partner faster than the spread is not short of anything.
THROUGHPUT_HOT = TargetSpec(
    "throughput hot", "earn-hot req/s / earn-spread req/s", "/s", AT_LEAST, 0.9
)
THROUGHPUT_BURN = TargetSpec(
    "throughput burn", "burn-heavy req/s / earn-spread req/s", "/s", AT_LEAST, 0.8
)
BATCH_INGEST = TargetSpec(
    "batch ingest",
    "purchases/s through POST /v1/purchases/batch / 10,000",
    "/s",
    AT_LEAST,
    1.0,
)
PEER = TargetSpec("peer", "transfers/s / django-hordak transfers/s", "/s", AT_LEAST, 3.0)


def latency_spec(scenario: str) -> TargetSpec:
    return TargetSpec(
        f"p99 open {scenario}",
        f"{scenario} open-loop p99 at {OPEN_LOOP_SHARE:.0%} of its closed-loop req/s "
        f"/ {LATENCY_MS_P99_MAX:.0f} ms",
        "ms",
        AT_MOST,
        1.0,
    )


def judge(spec: TargetSpec, figure: float, reference: float, note: str = "") -> Target:
    value = figure / reference
    met = value <= spec.limit if spec.bound == AT_MOST else value >= spec.limit
    return Target(
        name=spec.name,
        measure=spec.measure,
        figure=figure,
        reference=reference,
        unit=spec.unit,
        ratio=value,
        bound=spec.bound,
        limit=spec.limit,
        verdict=MET if met else SHORT,
        note=note,
    )


def unmeasured(spec: TargetSpec, why: str) -> Target:
    return Target(
        name=spec.name,
        measure=spec.measure,
        figure=None,
        reference=None,
        unit=spec.unit,
        ratio=None,
        bound=spec.bound,
        limit=spec.limit,
        verdict=NOT_MEASURED,
        note=why,
    )


def _usable(report: Report, name: str, mode: str = "closed-loop") -> ScenarioResult | str:
    """The scenario's result when its figures can feed a target, else why not."""
    found = next((s for s in report.scenarios if s.name == name and s.mode == mode), None)
    if found is None:
        return f"{name} ({mode}) was not run"
    if found.problems:
        return f"{name} ({mode}) failed its correctness check: its figures are not valid"
    if found.requests_per_s <= 0:
        return f"{name} ({mode}) got no answers"
    return found


def _purchases(s: ScenarioResult) -> int:
    return s.acknowledged_by_kind.get("purchase", 0)


def database_cost(report: Report) -> Target:
    spread = _usable(report, "earn-spread")
    if isinstance(spread, str):
        return unmeasured(DATABASE_COST, spread)
    if spread.postgres_cpu_s is None or not _purchases(spread):
        return unmeasured(DATABASE_COST, "earn-spread: no PostgreSQL CPU or no purchase")
    if report.pgbench_postgres_cpu_s is None or not report.pgbench_transactions:
        why = "pgbench TPC-B did not run, or its PostgreSQL CPU was not measured (remote)"
        return unmeasured(DATABASE_COST, why)
    return judge(
        DATABASE_COST,
        spread.postgres_cpu_s * 1e3 / _purchases(spread),
        report.pgbench_postgres_cpu_s * 1e3 / report.pgbench_transactions,
    )


def gateway_cost(report: Report) -> Target:
    spread = _usable(report, "earn-spread")
    if isinstance(spread, str):
        return unmeasured(GATEWAY_COST, spread)
    if spread.server_cpu_s is None or spread.postgres_cpu_s is None or not _purchases(spread):
        return unmeasured(GATEWAY_COST, "earn-spread: no server or PostgreSQL CPU, or no purchase")
    per_purchase_ms = 1e3 / _purchases(spread)
    return judge(
        GATEWAY_COST,
        spread.server_cpu_s * per_purchase_ms,
        (spread.server_cpu_s + spread.postgres_cpu_s) * per_purchase_ms,
    )


def throughput(report: Report) -> list[Target]:
    spread = _usable(report, "earn-spread")
    rows = []
    if isinstance(spread, str):
        rows.append(unmeasured(THROUGHPUT_SPREAD, spread))
    elif report.pgbench_tps is None or report.pgbench_tps <= 0:
        rows.append(unmeasured(THROUGHPUT_SPREAD, "pgbench TPC-B did not run"))
    else:
        rows.append(judge(THROUGHPUT_SPREAD, spread.requests_per_s, report.pgbench_tps))
    for spec, name in ((THROUGHPUT_HOT, "earn-hot"), (THROUGHPUT_BURN, "burn-heavy")):
        other = _usable(report, name)
        if isinstance(spread, str) or isinstance(other, str):
            rows.append(unmeasured(spec, spread if isinstance(spread, str) else str(other)))
        else:
            rows.append(judge(spec, other.requests_per_s, spread.requests_per_s))
    return rows


def open_loop_latency(report: Report, name: str) -> Target:
    spec = latency_spec(name)
    closed = _usable(report, name)
    if isinstance(closed, str):
        return unmeasured(spec, closed)
    opened = _usable(report, name, "open-loop")
    if isinstance(opened, str):
        return unmeasured(spec, opened + " (coalition bench --targets runs it)")
    asked = opened.rate_per_s or 0.0
    wanted = OPEN_LOOP_SHARE * closed.requests_per_s
    if abs(asked - wanted) > OPEN_LOOP_RATE_TOLERANCE * wanted:
        return unmeasured(
            spec,
            f"the open loop ran at {asked:.0f}/s, not at {OPEN_LOOP_SHARE:.0%} ({wanted:.0f}/s)",
        )
    return judge(
        spec,
        opened.latency_ms_p99,
        LATENCY_MS_P99_MAX,
        f"at {asked:.0f}/s asked, {opened.requests_per_s:.0f}/s answered "
        f"(closed loop {closed.requests_per_s:.0f}/s)",
    )


def targets(report: Report) -> list[Target]:
    """Every target of issue 18, judged on this run's figures alone."""
    return [
        database_cost(report),
        gateway_cost(report),
        *throughput(report),
        *(open_loop_latency(report, name) for name in OPEN_LOOP_SCENARIOS),
        unmeasured(BATCH_INGEST, f"not measured here: {BATCH_COMMAND}"),
        unmeasured(PEER, f"not measured here: {PEER_COMMAND}"),
    ]


def _number(value: float | None, unit: str) -> str:
    if value is None:
        return "-"
    shown = f"{value:,.0f}" if value >= 100 else f"{value:.1f}" if value >= 10 else f"{value:.3f}"
    return f"{shown} {unit}"


def render_targets(rows: Sequence[Target]) -> str:
    header = f"{'target':<22}{'figure':>14}{'reference':>14}{'ratio':>8}  {'limit':<9}verdict"
    lines = ["targets (issue 18), this run only:", header, "-" * len(header)]
    for t in rows:
        shown_ratio = "-" if t.ratio is None else f"{t.ratio:.2f}x"
        limit = ("<= " if t.bound == AT_MOST else ">= ") + f"{t.limit:.2f}x"
        lines.append(
            f"{t.name:<22}{_number(t.figure, t.unit):>14}{_number(t.reference, t.unit):>14}"
            f"{shown_ratio:>8}  {limit:<9}{t.verdict}"
        )
    lines.extend(f"{t.name}: {t.measure}" + (f"; {t.note}" if t.note else "") for t in rows)
    return "\n".join(lines)
