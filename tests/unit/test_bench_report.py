"""The bench's pure parts: wrk and pgbench output, response tallies, ratios, pre-signed pools."""

from __future__ import annotations

import json
import re

import msgspec
import pytest

from gateway.bench import _report, _requests, main
from shoppers import luhn

WRK_OUTPUT = """Running 10s test @ http://127.0.0.1:41234
  1 threads and 64 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency    60.12ms   10.00ms 200.00ms   90.00%
  2400 requests in 10.00s, 1.20MB read
Requests/sec:    240.00
BENCH-WRK {"requests": 2400, "duration_us": 10000000, "p50_us": 58000, "p95_us": 81000, \
"p99_us": 95500, "max_us": 200000, "connect": 0, "read": 1, "write": 0, "timeout": 2}
"""

PGBENCH_OUTPUT = """transaction type: <builtin: TPC-B (sort of)>
scaling factor: 10
number of clients: 64
latency average = 33.529 ms
initial connection time = 120.331 ms
tps = 1908.760371 (without initial connection time)
"""


def test_wrk_summary_is_read_from_the_lua_done_line() -> None:
    summary = _report.parse_wrk(WRK_OUTPUT)
    assert summary.requests == 2400
    assert summary.duration_s == 10.0
    assert summary.requests_per_s == 240.0
    assert (summary.latency_ms_p50, summary.latency_ms_p95, summary.latency_ms_p99) == (
        58.0,
        81.0,
        95.5,
    )
    assert summary.socket_errors == 3


def test_wrk_output_without_the_summary_line_is_refused() -> None:
    with pytest.raises(ValueError, match="BENCH-WRK"):
        _report.parse_wrk("Running 10s test\nRequests/sec: 1.0\n")


def test_pgbench_tps_excludes_connection_time() -> None:
    assert _report.parse_pgbench_tps(PGBENCH_OUTPUT) == pytest.approx(1908.760371)
    with pytest.raises(ValueError, match="tps"):
        _report.parse_pgbench_tps("pgbench: error: connection failed")


def test_ratio_is_against_pgbench_and_absent_without_it() -> None:
    assert _report.ratio(954.38, 1908.76) == pytest.approx(0.5)
    assert _report.ratio(100.0, None) is None
    assert _report.ratio(100.0, 0.0) is None


def test_tally_acknowledges_only_the_success_status_of_each_kind() -> None:
    kinds = ["purchase", "capture", "lookup", "redemption", "purchase"]
    lines = ["201 0", "200 1", "200 2", "422 3", "500 4", "201 -", "", "201 99"]
    tally = _report.tally(lines, kinds)
    assert tally.acknowledged == {"purchase": [0], "capture": [1], "lookup": [2]}
    assert tally.by_status == {201: 3, 200: 2, 422: 1, 500: 1}
    assert tally.unlabeled == 2  # "-" and an id outside the pool
    assert not tally.exhausted


def test_a_pool_that_ran_out_is_reported() -> None:
    assert _report.tally(["201 0", "exhausted"], ["purchase"]).exhausted


def _report_with(problems: list[str]) -> _report.Report:
    scenario = _report.ScenarioResult(
        name="earn-spread",
        requests=2400,
        requests_per_s=240.0,
        latency_ms_p50=58.0,
        latency_ms_p95=81.0,
        latency_ms_p99=95.5,
        latency_ms_max=200.0,
        by_status={"201": 2400},
        socket_errors=0,
        acknowledged_by_kind={"purchase": 2400},
        ratio_to_pgbench=0.125,
        pool_requests=25_000,
        generation_s=6.5,
        committed_unacknowledged=64,
        loadgen_cpu_s=0.4,
        server_cpu_s=9.5,
        postgres_cpu_s=8.0,
        calls_per_commit=6.25,
        problems=problems,
    )
    return _report.Report(
        machine={"cpus": "2"},
        duration_s=10,
        connections=64,
        pgbench_tps=1920.0,
        pgbench_scale=10,
        scenarios=[scenario],
    )


def test_table_and_json_carry_the_ratio_and_the_verdict() -> None:
    good = _report_with([])
    assert re.search(r"earn-spread\s+240\s+0\.12", _report.render_table(good))
    assert "correctness: ok" in _report.render_table(good)
    assert re.search(r"pgbench TPC-B s10\s+1920\s+1\.00", _report.render_table(good))
    payload = json.loads(_report.render_json(good))
    assert payload["ok"] is True
    assert payload["pgbench_tps"] == 1920.0
    assert payload["pgbench_scale"] == 10
    assert payload["scenarios"][0]["ratio_to_pgbench"] == 0.125
    bad = _report_with(["1 acknowledged purchase(s) missing"])
    assert "correctness: FAILED" in _report.render_table(bad)
    assert json.loads(_report.render_json(bad))["ok"] is False


def test_bench_cards_pass_the_luhn_check_and_are_distinct() -> None:
    cards = [_requests.card_number(i) for i in (0, 1, 99_999)]
    assert all(luhn.is_valid(card) and len(card) == 16 for card in cards)
    assert len(set(cards)) == 3


NETWORK = _requests.Network(
    host="127.0.0.1:8123",
    partners=[_requests.PartnerKey(1, "key-a", "secret-a"), _requests.PartnerKey(2, "k", "s")],
    shoppers=1_000,
    funded_cards=[_requests.card_number(0)],
    open_holds=[(1, "11111111-1111-1111-1111-111111111111")],
)


def test_every_planned_post_has_its_own_reference_and_idempotency_key() -> None:
    for scenario in _requests.SCENARIOS:
        planned = list(_requests.plan(scenario, NETWORK, 40, run="r", seed=1))
        assert len(planned) == 40
        posts = [p for p in planned if p.method == "POST"]
        assert len({p.idempotency_key for p in posts}) == len(posts)
        refs = [p.partner_ref for p in posts if p.kind != "capture"]
        assert len(set(refs)) == len(refs)


def test_burn_heavy_captures_each_open_hold_once_then_redeems() -> None:
    planned = list(_requests.plan("burn-heavy", NETWORK, 40, run="r", seed=1))
    captures = [p for p in planned if p.kind == "capture"]
    assert [c.path for c in captures] == ["/v1/holds/11111111-1111-1111-1111-111111111111/capture"]
    burns = sum(p.kind in {"redemption", "hold", "capture"} for p in planned)
    assert burns / len(planned) == 0.6


def test_a_raw_request_is_signed_and_framed_for_the_pool() -> None:
    planned = next(_requests.plan("earn-hot", NETWORK, 1, run="r", seed=1))
    raw = _requests.raw_request(planned, NETWORK, request_id=7)
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    assert lines[0] == "POST /v1/purchases HTTP/1.1"
    headers = dict(line.split(": ", 1) for line in lines[1:])
    assert headers["Host"] == "127.0.0.1:8123"
    assert int(headers["Content-Length"]) == len(body)
    assert headers["X-Request-Id"] == "7"
    assert headers["Idempotency-Key"] == "r-0"
    assert 'keyid="key-a"' in headers["Signature-Input"]
    assert '"content-digest"' in headers["Signature-Input"]
    record = _requests.pool_record(raw)
    assert record == f"{len(raw)}\n".encode() + raw


METRICS_PAGE = """# HELP coalition_group_commit_calls Partner calls committed together
# TYPE coalition_group_commit_calls histogram
coalition_group_commit_calls_bucket{le="1.0"} 3.0
coalition_group_commit_calls_count 10.0
coalition_group_commit_calls_sum 64.0
coalition_group_commit_calls_created 1.7e+09
"""


def test_calls_per_commit_is_the_mean_group_size_over_the_run() -> None:
    before = _report.group_commit_totals(METRICS_PAGE)
    assert before == (64.0, 10.0)
    after = (64.0 + 250.0, 10.0 + 20.0)
    assert _report.calls_per_commit(before, after) == 12.5
    assert _report.calls_per_commit(before, before) is None  # no group committed in between
    assert _report.group_commit_totals("coalition_up 1\n") is None  # grouping off
    assert "calls per commit 6.2" in _report.render_table(_report_with([]))


def test_the_report_says_how_the_shoppers_were_provisioned_and_how_fast() -> None:
    report = _report_with([])
    report.provisioning = _report.Provisioning(
        partners=10,
        shoppers=10_000,
        enrolled=8_000,
        kept=2_000,
        elapsed_s=25.0,
        concurrency=32,
        shoppers_per_s=320.0,
    )
    table = _report.render_table(report)
    assert (
        "provisioning: 10 partners via the operator API; 10,000 shoppers through signed "
        "POST /v1/shoppers (8,000 enrolled, 2,000 kept from an earlier run) in 25.0 s, "
        "320 shoppers/s, 32 calls in flight"
    ) in table
    payload = json.loads(_report.render_json(report))
    assert payload["provisioning"]["shoppers_per_s"] == 320.0
    assert payload["provisioning"]["enrolled"] == 8_000


@pytest.mark.parametrize("shoppers", ["0", "100001"])
def test_the_shopper_count_is_bounded(shoppers: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--shoppers", shoppers]) == 2
    assert "--shoppers must be 1..100000" in capsys.readouterr().err


PGBENCH_RUN_OUTPUT = PGBENCH_OUTPUT + "number of transactions actually processed: 19088\n"


def test_pgbench_transaction_count_is_read_from_its_output() -> None:
    assert _report.parse_pgbench_transactions(PGBENCH_RUN_OUTPUT) == 19088
    with pytest.raises(ValueError, match="transaction count"):
        _report.parse_pgbench_transactions(PGBENCH_OUTPUT)


def _result(name: str, requests_per_s: float, **changes: object) -> _report.ScenarioResult:
    base = _report_with([]).scenarios[0]
    return msgspec.structs.replace(base, name=name, requests_per_s=requests_per_s, **changes)


def _targets_run(*scenarios: _report.ScenarioResult) -> _report.Report:
    """pgbench: 2,000 tps, 20,000 transactions on 10 s of PostgreSQL CPU (0.5 ms each)."""
    report = _report_with([])
    report.pgbench_tps = 2000.0
    report.pgbench_transactions = 20_000
    report.pgbench_postgres_cpu_s = 10.0
    report.scenarios = list(scenarios)
    return report


# earn-spread: 16,000 purchases on 8 s of PostgreSQL CPU (0.5 ms each) and 2 s of server CPU.
SPREAD = _result(
    "earn-spread",
    1200.0,
    acknowledged_by_kind={"purchase": 16_000},
    postgres_cpu_s=8.0,
    server_cpu_s=2.0,
)


def _open(name: str, rate_per_s: float, p99_ms: float) -> _report.ScenarioResult:
    return _result(name, rate_per_s, mode="open-loop", rate_per_s=rate_per_s, latency_ms_p99=p99_ms)


def _by_name(report: _report.Report) -> dict[str, _report.Target]:
    return {t.name: t for t in _report.targets(report)}


def test_the_database_cost_is_postgres_cpu_per_purchase_against_per_tpcb_transaction() -> None:
    met = _report.database_cost(_targets_run(SPREAD))
    assert (met.figure, met.reference, met.ratio, met.verdict) == (0.5, 0.5, 1.0, "pass")
    costly = msgspec.structs.replace(SPREAD, postgres_cpu_s=9.0)
    short = _report.database_cost(_targets_run(costly))
    assert (short.figure, short.ratio, short.verdict) == (0.5625, 1.125, "short")
    no_pgbench = _targets_run(SPREAD)
    no_pgbench.pgbench_postgres_cpu_s = None
    assert _report.database_cost(no_pgbench).verdict == "not measured"
    assert _report.database_cost(_targets_run()).ratio is None


def test_the_gateway_cost_is_the_server_share_of_the_cpu_per_purchase() -> None:
    met = _report.gateway_cost(_targets_run(SPREAD))
    assert (met.figure, met.reference, met.ratio, met.verdict) == (0.125, 0.625, 0.2, "pass")
    heavy = _report.gateway_cost(_targets_run(msgspec.structs.replace(SPREAD, server_cpu_s=8.0)))
    assert (heavy.ratio, heavy.verdict) == (0.5, "short")  # 8 s / (8 s + 8 s)
    remote = msgspec.structs.replace(SPREAD, server_cpu_s=None)  # --target: no server pid
    assert _report.gateway_cost(_targets_run(remote)).verdict == "not measured"


def test_throughput_is_held_against_pgbench_and_against_the_spread() -> None:
    at_the_limits = _by_name(
        _targets_run(SPREAD, _result("earn-hot", 1080.0), _result("burn-heavy", 960.0))
    )
    spread, hot, burn = (at_the_limits[f"throughput {n}"] for n in ("spread", "hot", "burn"))
    assert (spread.figure, spread.reference, spread.ratio, spread.verdict) == (
        1200.0,
        2000.0,
        0.6,
        "pass",
    )
    assert (hot.ratio, hot.verdict) == (0.9, "pass")
    assert (burn.ratio, burn.verdict) == (0.8, "pass")
    slow = _by_name(
        _targets_run(
            msgspec.structs.replace(SPREAD, requests_per_s=1000.0),
            _result("earn-hot", 850.0),
            _result("burn-heavy", 700.0),
        )
    )
    assert [slow[f"throughput {n}"].verdict for n in ("spread", "hot", "burn")] == ["short"] * 3
    assert slow["throughput spread"].ratio == 0.5
    assert slow["throughput hot"].ratio == 0.85
    assert slow["throughput burn"].ratio == 0.7


def test_throughput_without_its_inputs_is_not_measured() -> None:
    skipped = _targets_run(SPREAD)
    skipped.pgbench_tps = None  # --skip-pgbench
    rows = _by_name(skipped)
    assert rows["throughput spread"].verdict == "not measured"
    assert rows["throughput hot"].note == "earn-hot (closed-loop) was not run"
    assert rows["throughput burn"].verdict == "not measured"
    only_hot = _by_name(_targets_run(_result("earn-hot", 1080.0)))
    assert only_hot["throughput hot"].note == "earn-spread (closed-loop) was not run"


def test_a_scenario_that_failed_its_check_measures_nothing() -> None:
    broken = msgspec.structs.replace(SPREAD, problems=["1 acknowledged purchase(s) missing"])
    rows = _by_name(_targets_run(broken, _result("earn-hot", 5000.0)))
    for name in ("database cost", "gateway cost", "throughput spread", "throughput hot"):
        assert rows[name].verdict == "not measured"
        assert rows[name].figure is None
        assert "failed its correctness check" in rows[name].note


def test_open_loop_latency_is_p99_at_half_the_closed_loop_rate() -> None:
    burn = _result("burn-heavy", 960.0)
    rows = _by_name(
        _targets_run(
            SPREAD, burn, _open("earn-spread", 600.0, 40.0), _open("burn-heavy", 480.0, 62.5)
        )
    )
    earn, burned = rows["p99 open earn-spread"], rows["p99 open burn-heavy"]
    assert (earn.figure, earn.reference, earn.ratio, earn.verdict) == (40.0, 50.0, 0.8, "pass")
    assert (burned.figure, burned.ratio, burned.verdict) == (62.5, 1.25, "short")
    assert earn.note == "at 600/s asked, 600/s answered (closed loop 1200/s)"


def test_open_loop_latency_needs_both_loops_at_the_right_rate() -> None:
    closed_only = _by_name(_targets_run(SPREAD))["p99 open earn-spread"]
    assert closed_only.verdict == "not measured"
    assert "open-loop" in closed_only.note
    open_only = _by_name(_targets_run(_open("earn-spread", 600.0, 1.0)))["p99 open earn-spread"]
    assert open_only.note == "earn-spread (closed-loop) was not run"
    elsewhere = _by_name(_targets_run(SPREAD, _open("earn-spread", 300.0, 1.0)))
    assert elsewhere["p99 open earn-spread"].verdict == "not measured"  # 25%, not 50%


def test_batch_ingest_and_the_peer_are_measured_elsewhere() -> None:
    rows = _by_name(_targets_run(SPREAD))
    assert rows["batch ingest"].verdict == "not measured"
    assert (
        rows["batch ingest"].note == "not measured here: .venv/bin/python tests/load/batch_bench.py"
    )
    assert rows["peer"].verdict == "not measured"
    assert "tests.load.hordak_peer" in rows["peer"].note


def test_the_targets_table_follows_the_scenarios_and_goes_into_the_json() -> None:
    report = _targets_run(SPREAD, _open("earn-spread", 600.0, 40.0))
    assert "targets (issue 18)" not in _report.render_table(report)  # without --targets
    report.targets = _report.targets(report)
    table = _report.render_table(report)
    assert table.index("correctness: ok") < table.index("targets (issue 18)")
    assert re.search(r"\nearn-spread open\s+600\s", table)  # the open loop's row, labelled
    assert re.search(
        r"database cost\s+0\.500 ms CPU\s+0\.500 ms CPU\s+1\.00x  <= 1\.00x pass", table
    )
    assert re.search(r"throughput spread\s+1,200 /s\s+2,000 /s\s+0\.60x  >= 0\.60x pass", table)
    assert re.search(r"p99 open earn-spread\s+40\.0 ms\s+50\.0 ms\s+0\.80x  <= 1\.00x pass", table)
    assert re.search(r"throughput hot\s+-\s+-\s+-  >= 0\.90x not measured", table)
    assert (
        "batch ingest: purchases/s through POST /v1/purchases/batch / 10,000; not measured here"
        in table
    )
    assert "pgbench TPC-B: 20000 transactions, PostgreSQL CPU 10.0 s, 0.500 ms each" in table
    payload = json.loads(_report.render_json(report))
    rows = {row["name"]: row for row in payload["targets"]}
    assert len(rows) == 9
    assert rows["database cost"] | {"measure": ""} == {
        "name": "database cost",
        "measure": "",
        "figure": 0.5,
        "reference": 0.5,
        "unit": "ms CPU",
        "ratio": 1.0,
        "bound": "at most",
        "limit": 1.0,
        "verdict": "pass",
        "note": "",
    }
    assert rows["throughput hot"]["ratio"] is None
    assert payload["pgbench_transactions"] == 20_000
    assert payload["pgbench_postgres_cpu_s"] == 10.0


def test_targets_and_an_explicit_rate_do_not_mix(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--targets", "--rate", "100"]) == 2
    assert "--targets runs its own open loops" in capsys.readouterr().err
