"""`tickwatch sql` on Athena: typed rows from moto's canned results, the states and errors moto
cannot produce through botocore's Stubber, named queries read back from a workgroup, and the three
output formats with exact decimals and times."""

from __future__ import annotations

import csv
import io
import json
import os
import time
from datetime import date, datetime
from decimal import Decimal
from typing import Any

import pytest
from botocore.stub import Stubber
from moto.athena.models import QueryResults, athena_backends
from moto.athena.responses import AthenaResponse
from moto.core import DEFAULT_ACCOUNT_ID
from moto.moto_api import state_manager

from tickwatch.analytics.athena import AthenaQueryRunner, athena_cost, named_queries_from_athena
from tickwatch.analytics.named import template_queries
from tickwatch.analytics.output import render, summary
from tickwatch.analytics.result import QueryError, QueryResult
from tickwatch.bench import cost
from tickwatch.cli import main
from tickwatch.template import Template

DATABASE = "tickwatch_test_analytics"
MB = 2**20


class FakeTime:
    """`sleep` and `clock` for the runner: sleeping moves the clock, and each sleep is kept."""

    def __init__(self) -> None:
        self.now = 100.0
        self.sleeps: list[float] = []

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds

    def clock(self) -> float:
        return self.now


@pytest.fixture
def workgroup(aws) -> str:
    """The stack's workgroup, named as template.yaml names it."""
    template = Template.load()
    name = template.resolve(template.resources["AthenaWorkGroup"]["Properties"]["Name"])
    aws.client("athena").create_work_group(
        Name=name, Configuration={"EnforceWorkGroupConfiguration": True, "BytesScannedCutoffPerQuery": 10 * 2**30}
    )
    return name


@pytest.fixture
def athena(aws):
    return aws.client("athena")


@pytest.fixture
def backend():
    return athena_backends[DEFAULT_ACCOUNT_ID]["us-east-1"]


@pytest.fixture
def slow_athena():
    """Each state of a moto query execution lasts `times` GetQueryExecution calls, not zero."""

    def set_times(times: int) -> None:
        state_manager.set_transition(
            model_name="athena::execution", transition={"progression": "manual", "times": times}
        )

    yield set_times
    state_manager.unset_transition(model_name="athena::execution")


@pytest.fixture
def batch_get_named_query(monkeypatch: pytest.MonkeyPatch) -> None:
    """moto 5.2.5 has no BatchGetNamedQuery: answer it from moto's own named queries, refusing more
    than 50 ids and reporting unknown ones as unprocessed, as Athena does."""

    def batch_get_named_query(self: AthenaResponse) -> Any:
        ids = self._get_param("NamedQueryIds")
        if not 1 <= len(ids) <= 50:
            return self.error("1 validation error detected: NamedQueryIds must have 1 to 50 members", 400)
        found, unprocessed = [], []
        for query_id in ids:
            named = self.athena_backend.get_named_query(query_id)
            if named is None:
                unprocessed.append(
                    {"NamedQueryId": query_id, "ErrorCode": "INVALID_INPUT", "ErrorMessage": "not found"}
                )
                continue
            found.append(
                {
                    "Name": named.name,
                    "Description": named.description,
                    "Database": named.database,
                    "QueryString": named.query_string,
                    "NamedQueryId": named.id,
                    "WorkGroup": named.workgroup.name,
                }
            )
        return json.dumps({"NamedQueries": found, "UnprocessedNamedQueryIds": unprocessed})

    monkeypatch.setattr(AthenaResponse, "batch_get_named_query", batch_get_named_query, raising=False)


def row(*values: str | None) -> dict[str, Any]:
    """A row as Athena sends it: every value text, NULL an absent VarCharValue."""
    return {"Data": [{} if value is None else {"VarCharValue": value} for value in values]}


def columns(*pairs: tuple[str, str]) -> list[dict[str, Any]]:
    return [{"Name": name, "Label": name, "Type": kind} for name, kind in pairs]


def canned(backend, column_info: list[dict[str, Any]], *data_rows: dict[str, Any]) -> None:
    """The next query moto runs answers with a header row and `data_rows`."""
    header = row(*(column["Name"] for column in column_info))
    backend.query_results_queue.append(QueryResults(rows=[header, *data_rows], column_info=column_info))


def runner(client, workgroup: str, fake: FakeTime | None = None, **options: Any) -> AthenaQueryRunner:
    fake = fake or FakeTime()
    return AthenaQueryRunner(
        client, workgroup=workgroup, database=DATABASE, sleep=fake.sleep, clock=fake.clock, **options
    )


def only_execution(athena, workgroup: str) -> dict[str, Any]:
    (execution_id,) = athena.list_query_executions(WorkGroup=workgroup)["QueryExecutionIds"]
    return athena.get_query_execution(QueryExecutionId=execution_id)["QueryExecution"]


# --- results ------------------------------------------------------------------------------------


EVERY_TYPE = columns(
    ("symbol", "varchar"),
    ("code", "char"),
    ("tiny", "tinyint"),
    ("small", "smallint"),
    ("ticks", "integer"),
    ("volume", "bigint"),
    ("price", "decimal"),
    ("vwap", "double"),
    ("ratio", "real"),
    ("halted", "boolean"),
    ("day", "date"),
    ("time", "timestamp"),
    ("tags", "array(varchar)"),
)


def test_a_result_of_every_type_comes_back_as_python_values_without_its_header_row(athena, workgroup, backend):
    # Given Athena's text for each type, one row with a value in every column and one of NULLs
    canned(
        backend,
        EVERY_TYPE,
        row(
            "BRK.B",
            "X",
            "-7",
            "300",
            "42",
            "9007199254740993",
            "984.180000000000000000",
            "184.123456789",
            "0.5",
            "true",
            "2026-11-20",
            "2026-11-20 14:00:00.123",
            "[a, b]",
        ),
        row(*[None] * len(EVERY_TYPE)),
    )

    # When the query runs
    result = runner(athena, workgroup).run("SELECT * FROM ticks")

    # Then every value has its column's Python type, and NULLs are None
    assert result.columns == tuple(column["Name"] for column in EVERY_TYPE)
    assert result.rows == [
        (
            "BRK.B",
            "X",
            -7,
            300,
            42,
            9007199254740993,
            Decimal("984.180000000000000000"),
            184.123456789,
            0.5,
            True,
            date(2026, 11, 20),
            datetime(2026, 11, 20, 14, 0, 0, 123000),
            "[a, b]",
        ),
        (None,) * len(EVERY_TYPE),
    ]
    assert type(result.rows[0][6]) is Decimal
    assert result.engine == "athena"


def test_timestamps_without_fraction_and_with_nanoseconds_are_read(athena, workgroup, backend):
    canned(backend, columns(("time", "timestamp")), row("2026-11-20 14:00:00"), row("2026-11-20 14:00:00.123456789"))

    result = runner(athena, workgroup).run("SELECT time FROM ticks")

    assert result.rows == [(datetime(2026, 11, 20, 14, 0),), (datetime(2026, 11, 20, 14, 0, 0, 123456),)]


def test_a_value_that_is_not_of_its_column_type_is_a_query_error_naming_the_column(athena, workgroup, backend):
    canned(backend, columns(("ticks", "integer")), row("many"))

    with pytest.raises(QueryError, match=r"column ticks: Athena returned 'many', which is not a integer") as raised:
        runner(athena, workgroup).run("SELECT ticks FROM ticks")

    assert raised.value.user_error is False


def test_the_query_runs_in_the_workgroup_and_database_given(athena, workgroup, backend):
    canned(backend, columns(("n", "bigint")), row("1"))

    runner(athena, workgroup).run("SELECT count(*) AS n FROM ticks")

    execution = only_execution(athena, workgroup)
    assert execution["Query"] == "SELECT count(*) AS n FROM ticks"
    assert execution["QueryExecutionContext"] == {"Database": DATABASE}
    assert execution["WorkGroup"] == workgroup
    assert "ExecutionParameters" not in execution


def test_parameters_reach_athena_as_quoted_sql_string_literals(athena, workgroup, backend):
    # Given a named query's values, one with a quote in it
    canned(backend, columns(("n", "bigint")), row("1"))

    # When they are bound to its ?s
    runner(athena, workgroup).run("SELECT count(*) FROM ticks WHERE symbol = ? AND day = ?", ["O'NEIL", "20"])

    # Then Athena receives each as a string literal, the quote doubled
    assert only_execution(athena, workgroup)["ExecutionParameters"] == ["'O''NEIL'", "'20'"]


def test_progress_reports_each_poll_and_the_polls_slow_down_to_two_seconds(athena, workgroup, backend, slow_athena):
    # Given a query that stays queued for 3 polls and running for 3
    slow_athena(3)
    canned(backend, columns(("n", "bigint")), row("1"))
    lines: list[str] = []
    fake = FakeTime()

    # When it runs
    runner(athena, workgroup, fake, progress=lines.append).run("SELECT 1 AS n")

    # Then each poll is one status line, and the pause between polls grows to 2 s at most
    assert lines == [
        "Athena: queued · 0.0 s · 0 B scanned",
        "Athena: queued · 0.5 s · 0 B scanned",
        "Athena: running · 1.2 s · 0 B scanned",
        "Athena: running · 2.4 s · 0 B scanned",
        "Athena: running · 4.1 s · 0 B scanned",
        "Athena: succeeded · 6.1 s · 0 B scanned",
    ]
    assert fake.sleeps == [0.5, 0.75, 1.125, 1.6875, 2.0]


def test_the_result_says_how_long_it_took_what_it_scanned_and_cost(athena, workgroup, backend, slow_athena):
    slow_athena(1)
    canned(backend, columns(("n", "bigint")), row("1"))
    fake = FakeTime()

    result = runner(athena, workgroup, fake).run("SELECT 1 AS n")

    # moto scans nothing: Athena still charges its 10 MB minimum
    assert result.seconds == 0.5
    assert result.scanned_bytes == 0
    assert result.cost == athena_cost(10 * MB)


def test_ddl_costs_nothing(athena, workgroup):
    result = runner(athena, workgroup).run("CREATE DATABASE scratch")

    assert result.cost == Decimal(0)
    assert result.rows == []


def test_all_pages_of_a_long_result_are_read_and_only_the_first_has_a_header(athena):
    # Given 2,500 rows over three pages (moto answers in one page, so the pages are stubbed)
    info = columns(("symbol", "varchar"), ("n", "integer"))
    pages = [
        [row("symbol", "n"), *(row("AAPL", str(n)) for n in range(999))],
        [row("MSFT", str(n)) for n in range(1000)],
        [row("TSLA", str(n)) for n in range(500)],
    ]
    with Stubber(athena) as stub:
        stub.add_response("start_query_execution", {"QueryExecutionId": "q-1"})
        stub.add_response("get_query_execution", execution("SUCCEEDED", scanned=123 * MB))
        for number, page in enumerate(pages):
            response: dict[str, Any] = {"ResultSet": {"Rows": page, "ResultSetMetadata": {"ColumnInfo": info}}}
            expected: dict[str, Any] = {"QueryExecutionId": "q-1", "MaxResults": 1000}
            if number < len(pages) - 1:
                response["NextToken"] = f"page-{number + 2}"
            if number:
                expected["NextToken"] = f"page-{number + 1}"
            stub.add_response("get_query_results", response, expected)

        # When the query runs
        result = runner(athena, "wg").run("SELECT symbol, n FROM ticks")

    # Then every row of every page is there, the header of the first page dropped, no other row
    assert len(result.rows) == 999 + 1000 + 500
    assert result.rows[0] == ("AAPL", 0)
    assert result.rows[999] == ("MSFT", 0)
    assert result.rows[-1] == ("TSLA", 499)
    assert result.scanned_bytes == 123 * MB
    assert result.cost == athena_cost(123 * MB)


# --- cost ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("scanned", "megabytes"),
    [(0, 10), (1, 10), (10 * MB, 10), (10 * MB + 1, 11), (123 * MB - 1, 123), (2**40, 2**20)],
)
def test_athena_charges_per_megabyte_rounded_up_with_a_10_megabyte_minimum(scanned, megabytes):
    assert athena_cost(scanned) == Decimal(5) * megabytes / 2**20


def test_a_terabyte_costs_exactly_the_price_the_benchmark_uses():
    per_tb = Decimal(str(cost.load_prices()["athena"]["per_tb_scanned"]))

    assert athena_cost(2**40) == per_tb == Decimal("5")
    assert athena_cost(0) == Decimal("0.0000476837158203125")  # exact, not a float's approximation


# --- failures -----------------------------------------------------------------------------------


def execution(
    state: str, *, reason: str | None = None, category: int | None = None, scanned: int = 0
) -> dict[str, Any]:
    status: dict[str, Any] = {"State": state}
    if reason is not None:
        status["StateChangeReason"] = reason
    if category is not None:
        status["AthenaError"] = {"ErrorCategory": category, "ErrorType": 1000, "Retryable": False}
    return {
        "QueryExecution": {
            "QueryExecutionId": "q-1",
            "StatementType": "DML",
            "Status": status,
            "Statistics": {"DataScannedInBytes": scanned},
        }
    }


def run_until(athena, *responses: dict[str, Any]) -> QueryError:
    """Run a query whose GetQueryExecution answers `responses` in turn; the QueryError it raises."""
    with Stubber(athena) as stub:
        stub.add_response("start_query_execution", {"QueryExecutionId": "q-1"})
        for response in responses:
            stub.add_response("get_query_execution", response)
        with pytest.raises(QueryError) as raised:
            runner(athena, "wg").run("SELECT price FROM ticks")
    return raised.value


def test_a_query_athena_fails_for_the_user_s_mistake_is_a_user_error(athena):
    reason = "COLUMN_NOT_FOUND: line 1:8: Column 'prize' cannot be resolved\nor requester is not authorized"

    error = run_until(athena, execution("RUNNING"), execution("FAILED", reason=reason, category=2))

    assert error.user_error is True
    assert str(error) == (
        "Athena query failed: COLUMN_NOT_FOUND: line 1:8: Column 'prize' cannot be resolved "
        "or requester is not authorized"
    )


def test_a_query_athena_fails_on_its_side_is_not_a_user_error(athena):
    error = run_until(athena, execution("FAILED", reason="Internal error", category=1))

    assert error.user_error is False
    assert str(error) == "Athena query failed: Internal error"


def test_a_query_cancelled_by_the_bytes_scanned_cutoff_says_so(athena):
    reason = "Query cancelled! : Bytes scanned limit was exceeded"

    error = run_until(athena, execution("RUNNING", scanned=9 * 2**30), execution("CANCELLED", reason=reason))

    assert error.user_error is False
    assert str(error).startswith("Athena query was cancelled: Query cancelled! : Bytes scanned limit was exceeded; ")
    assert "bytes-scanned cutoff" in str(error)
    assert "AthenaBytesScannedCutoff" in str(error)


def test_a_query_cancelled_elsewhere_is_an_error_that_says_it_was_cancelled(athena, workgroup, backend, slow_athena):
    # Given a query someone stops (the console, another client) while it is queued
    slow_athena(5)

    def cancel_it(line: str) -> None:
        (execution_id,) = athena.list_query_executions(WorkGroup=workgroup)["QueryExecutionIds"]
        athena.stop_query_execution(QueryExecutionId=execution_id)

    # When it is run, then the run ends with a QueryError that is not the user's
    with pytest.raises(QueryError, match=r"^Athena query was cancelled") as raised:
        runner(athena, workgroup, progress=cancel_it).run("SELECT 1")
    assert raised.value.user_error is False


def test_an_unknown_workgroup_is_an_aws_error_not_a_user_error(athena, workgroup):
    with pytest.raises(QueryError) as raised:
        runner(athena, "no-such-workgroup").run("SELECT 1")

    assert raised.value.user_error is False
    assert str(raised.value) == "Athena StartQueryExecution failed: InvalidRequestException: WorkGroup does not exist"


def test_a_query_athena_cannot_parse_is_a_user_error(athena):
    message = "line 1:8: mismatched input 'FROM'. Expecting: '*', <expression>"
    with Stubber(athena) as stub:
        stub.add_client_error(
            "start_query_execution",
            service_error_code="InvalidRequestException",
            service_message=message,
            modeled_fields={"AthenaErrorCode": "MALFORMED_QUERY"},
        )
        with pytest.raises(QueryError) as raised:
            runner(athena, "wg").run("SELECT FROM ticks")

    assert raised.value.user_error is True
    assert str(raised.value) == f"Athena rejected the query: {message}"


def test_throttling_while_waiting_is_an_aws_error_and_the_query_is_stopped(athena):
    with Stubber(athena) as stub:
        stub.add_response("start_query_execution", {"QueryExecutionId": "q-1"})
        stub.add_client_error("get_query_execution", "TooManyRequestsException", "Rate exceeded")
        stub.add_response("stop_query_execution", {}, {"QueryExecutionId": "q-1"})
        with pytest.raises(QueryError) as raised:
            runner(athena, "wg").run("SELECT 1")
        stub.assert_no_pending_responses()

    assert raised.value.user_error is False
    assert str(raised.value) == "Athena GetQueryExecution failed: TooManyRequestsException: Rate exceeded"


def test_interrupting_the_wait_stops_the_query_on_athena(athena, workgroup, slow_athena):
    # Given a query still queued when the user presses Ctrl-C
    slow_athena(5)

    def interrupt(line: str) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        runner(athena, workgroup, progress=interrupt).run("SELECT 1")

    # Then it does not go on scanning (and billing) on Athena
    assert only_execution(athena, workgroup)["Status"]["State"] == "CANCELLED"


# --- named queries ------------------------------------------------------------------------------


def test_the_workgroup_s_named_queries_read_back_as_the_template_defines_them(athena, workgroup, batch_get_named_query):
    # Given the template's named queries created in the workgroup, and another in another workgroup
    create_template_named_queries(athena, workgroup)
    athena.create_named_query(Name="elsewhere", Database=DATABASE, QueryString="SELECT 1", WorkGroup="primary")

    # When they are read back from Athena
    queries = named_queries_from_athena(athena, workgroup)

    # Then they are the template's, with their parameters, and nothing else
    assert queries == template_queries()
    assert list(queries) == sorted(queries)
    assert queries["intraday-vwap"].positions == ("symbol", "day", "day", "day")


def test_more_named_queries_than_one_batch_holds_are_all_read(athena, workgroup, batch_get_named_query):
    for number in range(120):
        athena.create_named_query(
            Name=f"query-{number:03}", Database=DATABASE, QueryString=f"SELECT {number}", WorkGroup=workgroup
        )

    queries = named_queries_from_athena(athena, workgroup)

    assert list(queries) == [f"query-{number:03}" for number in range(120)]
    assert queries["query-119"].sql == "SELECT 119"


# --- output -------------------------------------------------------------------------------------


def market_result(rows: list[tuple[Any, ...]] | None = None) -> QueryResult:
    return QueryResult(
        columns=("symbol", "minute", "day", "price", "volume", "vwap", "halted", "note"),
        rows=[
            (
                "AAPL",
                datetime(2026, 11, 20, 14, 0),
                date(2026, 11, 20),
                Decimal("984.180000000000000000"),
                1200,
                184.123456789,
                False,
                None,
            ),
            (
                "BRK.B",
                datetime(2026, 11, 20, 14, 1, 0, 123000),
                date(2026, 11, 20),
                Decimal("0.100000000000000001000000"),
                35,
                7.5,
                True,
                "two\nlines",
            ),
        ]
        if rows is None
        else rows,
        engine="athena",
        seconds=2.1,
        scanned_bytes=1_258_291,
        cost=athena_cost(1_258_291),
    )


def test_a_table_shows_exact_prices_plain_times_and_null():
    assert render(market_result(), "table").splitlines() == [
        "symbol  minute                      day                        price  volume        vwap  halted  note",
        "AAPL    2026-11-20 14:00:00         2026-11-20                984.18    1200  184.123457  false   NULL",
        "BRK.B   2026-11-20 14:01:00.123000  2026-11-20  0.100000000000000001      35         7.5  true    two\\nlines",
    ]


def test_an_empty_result_is_its_header_and_no_rows():
    assert render(market_result([]), "table").splitlines()[1:] == ["(no rows)"]
    assert render(market_result([]), "json") == "[]"
    assert render(market_result([]), "csv") == "symbol,minute,day,price,volume,vwap,halted,note"


def test_csv_has_a_header_exact_prices_and_iso_times():
    text = render(market_result(), "csv")

    assert list(csv.reader(io.StringIO(text))) == [
        ["symbol", "minute", "day", "price", "volume", "vwap", "halted", "note"],
        ["AAPL", "2026-11-20T14:00:00Z", "2026-11-20", "984.18", "1200", "184.123456789", "false", ""],
        [
            "BRK.B",
            "2026-11-20T14:01:00.123000Z",
            "2026-11-20",
            "0.100000000000000001",
            "35",
            "7.5",
            "true",
            "two\nlines",
        ],
    ]


def test_json_is_an_array_of_objects_with_prices_as_exact_numbers():
    text = render(market_result(), "json")

    assert json.loads(text, parse_float=Decimal) == [
        {
            "symbol": "AAPL",
            "minute": "2026-11-20T14:00:00Z",
            "day": "2026-11-20",
            "price": Decimal("984.18"),
            "volume": 1200,
            "vwap": Decimal("184.123456789"),
            "halted": False,
            "note": None,
        },
        {
            "symbol": "BRK.B",
            "minute": "2026-11-20T14:01:00.123000Z",
            "day": "2026-11-20",
            "price": Decimal("0.100000000000000001"),
            "volume": 35,
            "vwap": Decimal("7.5"),
            "halted": True,
            "note": "two\nlines",
        },
    ]
    assert '"price":0.100000000000000001,' in text  # a number, and more digits than a float keeps


@pytest.mark.parametrize("fmt", ["table", "csv", "json"])
def test_times_are_printed_as_utc_whatever_the_machine_s_zone(fmt):
    # Given a machine five hours behind UTC (a POSIX zone: no tz database needed)
    expected = render(market_result(), fmt)
    original = os.environ.get("TZ")
    os.environ["TZ"] = "EST5EDT,M3.2.0,M11.1.0"
    time.tzset()
    try:
        assert time.timezone == 5 * 3600
        # Then the history's UTC times print unshifted
        assert render(market_result(), fmt) == expected
    finally:
        if original is None:
            del os.environ["TZ"]
        else:
            os.environ["TZ"] = original
        time.tzset()
    assert "14:00:00" in expected


def test_an_unknown_format_is_refused():
    with pytest.raises(ValueError, match="unknown format 'xml'"):
        render(market_result(), "xml")


def test_the_summary_of_an_athena_query_gives_its_scan_and_cost():
    assert summary(market_result()) == "2 rows in 2.1 s · 1.2 MB scanned · $0.000048"


def test_the_summary_of_a_local_query_names_duckdb():
    result = QueryResult(columns=("n",), rows=[(1,)], engine="duckdb", seconds=0.05)

    assert summary(result) == "1 row in 0.05 s (DuckDB, local)"


# --- `tickwatch sql` on AWS, through the command -----------------------------------------------


def create_template_named_queries(athena, workgroup: str) -> None:
    """The named queries of template.yaml, created in the workgroup as CloudFormation would."""
    template = Template.load()
    for logical_id in template.logical_ids("AWS::Athena::NamedQuery"):
        properties = template.resources[logical_id]["Properties"]
        athena.create_named_query(
            Name=properties["Name"],
            Description=properties["Description"],
            Database=DATABASE,
            QueryString=properties["QueryString"],
            WorkGroup=workgroup,
        )


@pytest.fixture
def deployed_named_queries(aws, athena, workgroup, batch_get_named_query) -> None:
    create_template_named_queries(athena, workgroup)


def tickwatch_sql(aws, workgroup: str, *argv: str) -> int:
    return main(["sql", *argv, "--workgroup", workgroup, "--database", DATABASE], session_factory=lambda: aws)


def test_the_command_runs_a_deployed_named_query_on_athena_with_its_parameters(
    aws, athena, workgroup, backend, deployed_named_queries, capsys
):
    canned(backend, columns(("symbol", "varchar"), ("volume", "bigint")), row("AAPL", "1200"), row("MSFT", "900"))
    assert tickwatch_sql(aws, workgroup, "--named", "top-symbols", "--param", "day=2026-11-20", "--format", "csv") == 0
    out, err = capsys.readouterr()
    assert out.splitlines() == ["symbol,volume", "AAPL,1200", "MSFT,900"]
    assert "2 rows" in err
    assert "scanned" in err
    execution = only_execution(athena, workgroup)
    assert execution["ExecutionParameters"] == ["'2026-11-20'"] * 3
    assert execution["Query"] == template_queries()["top-symbols"].sql


def test_the_command_refuses_an_unknown_named_query_or_parameter_with_exit_code_2(
    aws, athena, workgroup, deployed_named_queries, capsys
):
    assert tickwatch_sql(aws, workgroup, "--named", "no-such-query") == 2
    assert "no named query 'no-such-query'; there are: daily-ohlcv" in capsys.readouterr().err
    assert tickwatch_sql(aws, workgroup, "--named", "gaps", "--param", "symbol=AAPL") == 2
    assert "gaps has no parameter symbol" in capsys.readouterr().err
    assert athena.list_query_executions(WorkGroup=workgroup)["QueryExecutionIds"] == []


def test_the_command_reports_an_aws_failure_with_exit_code_1(aws, capsys):
    assert tickwatch_sql(aws, "no-such-workgroup", "SELECT 1") == 1
    assert len(capsys.readouterr().err.strip().splitlines()) == 1
