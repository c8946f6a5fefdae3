"""`tickwatch sql`: SQL over the tick history, on Athena for a deployed stack, or DuckDB locally.

One dialect everywhere: Athena's. The named queries are template.yaml's (locally) or the deployed
workgroup's (on AWS); locally sqlglot translates them, and any query, to DuckDB's SQL.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from tickwatch.analytics.named import NamedQuery, NamedQueryError, parse_parameters, template_queries
from tickwatch.analytics.result import QueryError, QueryResult
from tickwatch.resources import AwsContext, CliError, InputError

FORMATS = ("table", "csv", "json")


def history_cache() -> Path:
    """Where the local stack's history is mirrored for DuckDB ($XDG_CACHE_HOME/tickwatch/history)."""
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "tickwatch" / "history"


def command_sql(args: argparse.Namespace, context: AwsContext) -> int:
    local = context.local is not None
    if args.list:
        queries = template_queries() if local else _athena_queries(context)
        for query in queries.values():
            print(f"{query.name:<20} {query.usage():<28} {query.description}")
        return 0

    if args.named is not None:
        if args.query is not None:
            raise InputError("give a query or --named NAME, not both")
        queries = template_queries() if local else _athena_queries(context)
        query = queries.get(args.named)
        if query is None:
            raise InputError(f"no named query {args.named!r}; there are: {', '.join(sorted(queries))}")
        sql, parameters = query.sql, _bind(query, args.param or [])
    else:
        if args.query is None:
            raise InputError('give a query, like tickwatch sql "SELECT count(*) FROM ticks", or --named NAME')
        if args.param:
            raise InputError("--param goes with --named; write the values into your own query")
        sql = sys.stdin.read() if args.query == "-" else args.query
        parameters = []

    try:
        result = _run_local(context, sql, parameters) if local else _run_athena(context, sql, parameters)
    except QueryError as error:
        raise CliError(str(error), exit_code=2 if error.user_error else 1) from None

    from tickwatch.analytics.output import render, summary

    print(render(result, args.format))
    print(summary(result), file=sys.stderr)
    return 0


def _bind(query: NamedQuery, pairs: list[str]) -> list[str]:
    try:
        return query.bind(parse_parameters(pairs))
    except NamedQueryError as error:
        raise InputError(str(error)) from None


def _run_local(context: AwsContext, sql: str, parameters: list[str]) -> QueryResult:
    from tickwatch.analytics.local import LocalHistory

    history = LocalHistory(context.client("s3"), context.resource("bucket"), history_cache())
    return history.run(sql, parameters)


def _athena_queries(context: AwsContext) -> dict[str, NamedQuery]:
    from tickwatch.analytics.athena import named_queries_from_athena

    try:
        return named_queries_from_athena(context.client("athena"), context.resource("athena_workgroup"))
    except NamedQueryError as error:
        raise CliError(f"a named query of the workgroup is malformed: {error}") from None
    except QueryError as error:
        raise CliError(str(error), exit_code=2 if error.user_error else 1) from None


def _run_athena(context: AwsContext, sql: str, parameters: list[str]) -> QueryResult:
    from tickwatch.analytics.athena import AthenaQueryRunner

    runner = AthenaQueryRunner(
        context.client("athena"),
        workgroup=context.resource("athena_workgroup"),
        database=context.resource("analytics_database"),
        progress=_progress if sys.stderr.isatty() else None,
    )
    try:
        return runner.run(sql, parameters)
    finally:
        if sys.stderr.isatty():
            print("\r\033[K", end="", file=sys.stderr)


def _progress(status: str) -> None:
    print(f"\r\033[K{status}", end="", file=sys.stderr, flush=True)
