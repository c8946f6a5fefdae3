"""`make bench` at tiny sizes, so the benchmark cannot rot (the full run is not part of CI)."""

from __future__ import annotations

import gzip
import json
from collections import Counter

import pytest

from tickwatch.analytics.named import template_queries
from tickwatch.bench import cost, history, producer, rules
from tickwatch.bench.__main__ import main


def test_a_smoke_run_measures_every_part_and_writes_the_report(tmp_path):
    assert main(["--smoke", "--out", str(tmp_path)]) == 0
    report = json.loads((tmp_path / "performance.json").read_text())
    for sizes in report["processor_throughput"].values():
        assert sizes["in_memory_fake"]["ticks_per_s"] > 0
        assert sizes["moto"]["ticks_per_s"] > 0
    requests = report["requests"]["per_1000_ticks"]
    # The processor writes raw data and items for every batch; the alerts function reads rules.
    assert requests["processor"]["s3:PutObject"] > 0
    assert requests["processor"]["dynamodb:PutItem"] > 0
    assert requests["alerts"]["dynamodb:Query"] > 0
    assert report["requests"]["dynamodb_units_per_1000_ticks"]["write"] >= requests["processor"]["dynamodb:PutItem"]
    assert report["alerts_time"]["batches"] > 0
    # The burst fired every alert it was built for, ten a PublishBatch call, each call recorded.
    burst = report["alerts_burst"]
    assert burst["requests"]["sns:PublishBatch"] == burst["firings"] // 10
    assert burst["requests"]["dynamodb:BatchWriteItem"] == burst["firings"] // 10
    assert burst["in_memory_fake"]["p50_ms"] > 0
    assert burst["modelled_aws_wait_ms"] > 0
    assert all(entry["median_ms"] > 0 for entry in report["cold_start"].values())
    assert all(entry["untraced_median_ms"] > 0 for entry in report["cold_start"].values())
    assert "QueryFunction" in report["cold_start"]
    routes = {row["route"]: row for row in report["query_api"]}
    assert routes["GET /quotes (100 symbols)"]["requests"] == {"dynamodb:BatchGetItem": 1, "dynamodb:Query": 1}
    for row in routes.values():
        assert row["in_memory_fake"]["p50_ms"] > 0
        assert "dynamodb:Scan" not in row["requests"]
        assert row["usd_per_million_requests"]["api_gateway"] == 3.5
    for row in report["cost"]:
        usd = row["usd_per_million_ticks"]
        parts = usd["lambda"] + usd["s3"] + usd["dynamodb"] + usd["sns"]
        assert usd["total_provisioned"] == pytest.approx(usd["kinesis_provisioned"] + parts, abs=0.001)
        assert usd["total_on_demand"] == pytest.approx(usd["kinesis_on_demand"] + parts, abs=0.001)
        assert all(value > 0 for name, value in usd.items() if name != "sns")
    markdown = (tmp_path / "performance.md").read_text()
    assert "## Method" in markdown
    assert "Smoke run" in markdown
    assert "### 5. Cost per million ticks" in markdown
    assert "### 6. Query API per route" in markdown
    assert "### 8. History" in markdown
    assert report["history"]["measured"]["rows"] == report["history"]["measured"]["ticks"]
    runs = {row["case"]: row for row in report["producer"]["runs"]}
    twelvedata, finnhub, spent = (runs[case.label] for case in producer.CASES)
    # The key is read once per container; a run reserves its credits in three adds and puts once.
    for row in (twelvedata, finnhub):
        assert row["requests"] == {"dynamodb:UpdateItem": 3, "kinesis:PutRecords": 1}
        assert row["first_run_adds"] == {"secretsmanager:GetSecretValue": 1}
        assert row["ticks"] == len(producer.SYMBOLS)
    assert (twelvedata["provider_calls"], finnhub["provider_calls"]) == (1, len(producer.SYMBOLS))
    # With the day's credits spent: the adds are given back, and nothing is asked for or put.
    assert (spent["requests"], spent["provider_calls"], spent["ticks"]) == ({"dynamodb:UpdateItem": 4}, 0, 0)
    assert all(row["usd_per_month"]["total"] > 0 for row in report["producer"]["month"])
    assert "### 9. Scheduled producer" in markdown
    kinds = {row["kind"]: row for row in report["rule_kinds"]["rows"]}
    assert len(report["rule_kinds"]["rows"]) == len(rules.CASES)
    assert set(kinds) == {"price", "change", "move", "cross"}
    for row in report["rule_kinds"]["rows"]:
        assert row["us_per_trade"] > 0
        assert row["decode_us_per_invocation"] > 0
        assert row["write_units_per_write"] >= 1
        # Only a cross rule reads stored bars: all it needs on its first evaluation, then a bar
        # interval's at a time, with one Query when an update reaches a later interval.
        assert bool(row["seeding"]) == (row["kind"] == "cross")
        assert (row["bar_queries"] > 0) == (row["kind"] == "cross")
        assert row["bar_queries"] <= report["rule_kinds"]["measured_seconds"] // 60 + 1
        assert all(month["usd"]["total"] > 0 for month in row["month"].values())
    # A cross rule's state holds closed bars only: most updates leave it as it was.
    assert kinds["cross"]["write_share"] < 1
    assert "### 10. Rule kinds" in markdown


def test_every_price_cites_its_page_and_date():
    prices = cost.load_prices()
    for name, section in prices.items():
        if isinstance(section, dict):
            assert section["source"].startswith("https://aws.amazon.com/"), name
            assert "read 20" in section["source"], name


def test_kinesis_provisioned_cost_falls_per_tick_as_the_shard_fills():
    prices = cost.load_prices()
    profile = cost.FunctionProfile(1.0, 0.0, 0.0, 0.5)

    def kinesis(rate):
        workload = {"rate": rate, "ticks": 1000, "requests": {}, "raw_bytes": 0, "write_units": 0, "read_units": 0,
                    "alerts": 0}  # fmt: skip
        return cost.cost_per_million_ticks(workload, profile, profile, prices, tick_bytes=150)["kinesis_provisioned"]

    # One shard-hour is $0.015 whatever flows: 3.6 M ticks an hour at 1,000/s, 0.36 M at 100/s.
    assert kinesis(1000) == pytest.approx(0.015 / 3.6 + 0.014, abs=0.0001)
    assert kinesis(100) == pytest.approx(0.015 / 0.36 + 0.014, abs=0.0001)


def test_a_month_of_the_scheduled_producer_is_priced_by_run_and_by_container():
    # Given: 43,200 runs a month (rate(1 minute)) of 0.2 s each, 3 ledger writes and 8 ticks a run.
    prices = cost.load_prices()
    run = cost.ProducerRun(seconds=0.2, write_units=3, ticks=8)

    # When: priced at 512 MB on arm64.
    usd = cost.producer_month_cost([(43_200, run)], 0.5, prices)

    # Then: each service is its count times its price; the secret is read once per container.
    containers = 30 * 24 / cost.PRODUCER_CONTAINER_HOURS
    assert usd["lambda_requests"] == pytest.approx(43_200 * 0.20 / 1e6, abs=1e-4)
    assert usd["lambda_duration"] == pytest.approx(43_200 * 0.2 * 0.5 * prices["lambda"]["arm64_gb_second"], abs=1e-4)
    assert usd["dynamodb"] == pytest.approx(3 * 43_200 * 0.625 / 1e6, abs=1e-4)
    assert usd["secrets_manager"] == pytest.approx(0.40 + containers * 0.05 / 1e4, abs=1e-4)
    assert usd["kinesis_put_units"] == pytest.approx(8 * 43_200 * 0.014 / 1e6, abs=1e-4)
    assert usd["total"] == pytest.approx(sum(v for k, v in usd.items() if k != "total"), abs=1e-3)
    # A container cannot read the secret more often than the function runs.
    few = cost.producer_month_cost([(10, run)], 0.5, prices)
    assert few["secrets_manager"] == pytest.approx(0.40 + 10 * 0.05 / 1e4, abs=1e-4)


def test_the_history_part_alone_compacts_every_unique_tick_and_prices_it(tmp_path):
    # Given: part 8 alone at its smoke size (20,000 ticks), written to a directory of its own.
    assert main(["--smoke", "--parts", "8", "--out", str(tmp_path)]) == 0
    report = json.loads((tmp_path / "performance.json").read_text())
    assert "processor_throughput" not in report  # parts 1 to 5 did not run
    part = report["history"]
    measured, sizes, month = part["measured"], part["sizes"], part["month"]
    prices = cost.load_prices()

    # Then: the retried batches' repeats are removed, every tick is kept once.
    assert measured["lines"] > measured["ticks"]
    assert measured["rows"] == measured["ticks"] == 20_000
    assert measured["engine_seconds"] > 0
    assert 0 < measured["engine_seconds"] <= measured["run_seconds"]
    # The in-memory S3 saw the requests the cost model counts for a look-back of one hour.
    modelled = cost.compactor_requests(measured["raw_objects"], 1)
    assert measured["requests"] == {op: n for op, n in modelled.items() if n}
    # Sizes: both formats measured, the ratio is theirs.
    assert sizes["raw_bytes"] > 0
    assert sizes["parquet_bytes"] > 0
    assert sizes["raw_to_parquet"] == pytest.approx(sizes["raw_bytes"] / sizes["parquet_bytes"], rel=0.01)
    # Costs: positive and from prices.toml.
    usd = month["compactor_usd"]
    assert all(value > 0 for value in usd.values())
    assert usd["total"] == pytest.approx(
        usd["lambda_duration"] + usd["lambda_requests"] + usd["s3_requests"], abs=0.001
    )
    assert usd["lambda_requests"] == pytest.approx(720 * prices["lambda"]["requests_per_million"] / 1e6, abs=1e-4)
    assert month["raw_storage_usd"] == pytest.approx(month["raw_gb"] * prices["s3"]["storage_gb_month"], rel=0.01)
    queries = {row["query"] for row in part["athena"]}
    assert set(template_queries()) <= queries
    minimum = prices["athena"]["minimum_mb_per_query"] * prices["athena"]["per_tb_scanned"] / 2**20
    for row in part["athena"]:
        billed_mb = max(prices["athena"]["minimum_mb_per_query"], -(-row["bytes_scanned"] // 2**20))
        assert row["usd"] >= minimum
        assert row["usd"] == pytest.approx(billed_mb * prices["athena"]["per_tb_scanned"] / 2**20, abs=1e-6)
    assert "### 8. History" in (tmp_path / "performance.md").read_text()


def test_a_named_query_reads_the_columns_it_names_and_raw_objects_whole():
    queries = template_queries()

    daily = history.tables_and_columns(queries["daily-ohlcv"].sql)
    uncompacted = history.tables_and_columns(queries["uncompacted-ticks"].sql)

    # The tie-breakers of the open and close make daily-ohlcv read the record columns too.
    assert daily["ticks"] >= {"symbol", "time", "price", "volume", "shard_id", "sequence_number"}
    assert "bid" not in daily["ticks"]
    # uncompacted-ticks uses only the partition column of ticks, and every field of raw_ticks.
    assert uncompacted["ticks"] == {"year", "month", "day", "hour"}
    assert "*" in uncompacted["raw_ticks"]


def test_the_generated_raw_objects_repeat_only_retried_lines():
    raw = history.generate_hour(5_000, 2, retry_share=0.5)

    keys = [key for key, _ in raw.objects]
    lines = Counter(line for _, body in raw.objects for line in gzip.decompress(body).decode().splitlines())
    assert len(keys) == len(set(keys))  # a retry writes under a key of its own
    assert raw.retried_batches > 0
    assert len(raw.objects) == raw.batches + raw.retried_batches
    assert len(lines) == raw.ticks  # every tick once, with its own shard and sequence number
    assert sum(lines.values()) == raw.lines > raw.ticks
    assert all(key.startswith("raw/year=2026/month=11/day=20/hour=14/shardId-") for key in keys)


def test_a_month_of_a_rule_is_its_state_writes_its_share_of_the_rules_read_and_its_lambda_time():
    # Given: a rule whose 2,000-byte item (2 write units) changes at half of 1,000 updates of 10
    # trades, 20 µs a trade, 100 µs to decode and 40 µs to encode.
    entry = rules.KindFigures("move", "AAPL-move-down-2pct-4h", "move", "240 minutes")
    entry.seconds_per_trade, entry.decode_seconds, entry.encode_seconds = [20e-6], [100e-6], [40e-6]
    entry.updates, entry.trades, entry.writes, entry.item_bytes = 1000, 10_000, 500, [2000]
    prices = cost.load_prices()

    # When: priced at 512 MB on arm64.
    part = rules.report(rules.Measured(8, 240, [entry]), prices, 0.5, "arm64")

    # Then: per invocation, 200 µs deciding, the decode, half an encode and half a write's share of
    # a round of writes; a month is that many invocations of it.
    (row,) = part["rows"]
    wait = 0.5 * cost.LATENCY["default"] / cost.WRITE_THREADS
    seconds = 200e-6 + 100e-6 + 0.5 * 40e-6 + wait
    assert row["lambda_us_per_invocation"] == pytest.approx(seconds * 1e6, abs=0.1)
    for name, invocations in rules.SCHEDULES.items():
        usd = row["month"][name]["usd"]
        assert usd["dynamodb_writes"] == pytest.approx(invocations * 0.5 * 2 * 0.625 / 1e6, abs=1e-4)
        assert usd["dynamodb_reads"] == pytest.approx(invocations * 2000 / 4096 * 0.125 / 1e6, abs=1e-4)
        assert usd["lambda"] == pytest.approx(
            invocations * seconds * 0.5 * prices["lambda"]["arm64_gb_second"], abs=1e-4
        )
        assert usd["total"] == pytest.approx(usd["dynamodb_writes"] + usd["dynamodb_reads"] + usd["lambda"], abs=1e-3)


def test_a_cross_rule_s_month_adds_its_bar_queries_a_round_of_aws_latency_each():
    # Given: a cross rule that read its bars with 20 Queries of 0.5 read units in 1,200 updates
    # (a one-minute interval), and wrote its state at 20 of them.
    entry = rules.KindFigures("cross", "AAPL-cross-above-sma-20-1m", "cross", "20 closes")
    entry.seconds_per_trade, entry.decode_seconds, entry.encode_seconds = [10e-6], [40e-6], [20e-6]
    entry.updates, entry.trades, entry.writes, entry.item_bytes = 1200, 12_000, 20, [500]
    entry.bar_reads = rules.BarReads(queries=20, bars=20, read_units=10.0)
    prices = cost.load_prices()

    # When: priced at 512 MB on arm64.
    part = rules.report(rules.Measured(8, 240, [entry]), prices, 0.5, "arm64")

    # Then: a Query every 60 invocations, each half a read unit and a whole round of AWS latency.
    (row,) = part["rows"]
    assert row["modelled_bar_read_wait_us_per_invocation"] == pytest.approx(cost.LATENCY["default"] / 60 * 1e6, abs=0.1)
    for name, invocations in rules.SCHEDULES.items():
        month = row["month"][name]
        assert month["bar_queries"] == round(invocations / 60)
        assert month["bar_read_units"] == pytest.approx(invocations / 120, abs=0.1)
        assert month["usd"]["dynamodb_bar_reads"] == pytest.approx(invocations / 120 * 0.125 / 1e6, abs=1e-4)
        assert month["writes"] == round(invocations / 60)


def test_the_delivery_part_measures_every_channel_and_merges_into_an_earlier_report(tmp_path):
    # Given an earlier report with another part's figures
    assert main(["--smoke", "--parts", "9", "--out", str(tmp_path)]) == 0

    # When part 11 is measured again and merged
    assert main(["--smoke", "--parts", "11", "--out", str(tmp_path), "--merge"]) == 0

    # Then both parts are in the report, and the page says which was measured again
    report = json.loads((tmp_path / "performance.json").read_text())
    assert "producer" in report
    rows = {(row["channel"], row["case"]): row for row in report["delivery"]["rows"]}
    assert set(rows) == {
        (c, case) for c in ("email", "slack", "discord", "telegram", "webhook") for case in ("one at a time", "burst")
    }
    for channel in ("email", "slack", "discord", "telegram", "webhook"):
        alone, burst = rows[(channel, "one at a time")], rows[(channel, "burst")]
        assert alone["messages_per_1000_alerts"] == 1000  # each alert its own message
        assert burst["messages_per_1000_alerts"] == 1  # the burst: one digest, within every limit
        assert burst["usd_per_1000_alerts"]["total"] < alone["usd_per_1000_alerts"]["total"]
    # E-mail costs what SNS charges for 1,000 e-mails at least: USD 2 per 100,000.
    assert rows[("email", "one at a time")]["usd_per_1000_alerts"]["sns"] >= 0.02
    page = (tmp_path / "performance.md").read_text()
    assert "### 11. Delivery" in page
    assert "Part(s) 11 measured again on" in page
