"""`make bench` at tiny sizes, so the benchmark cannot rot (the full run is not part of CI)."""

from __future__ import annotations

import json

import pytest

from tickwatch.bench import cost
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
