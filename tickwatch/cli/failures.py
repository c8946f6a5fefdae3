"""`tickwatch dlq list` and `dlq replay`: the batches the functions gave up on."""

from __future__ import annotations

import argparse
from collections import Counter
from typing import Any

from botocore.config import Config

from tickwatch.cli.output import format_table
from tickwatch.dlq import (
    FAILURE_QUEUES,
    FUNCTIONS,
    LambdaInvoker,
    describe_age,
    failed_batches,
    replay_queue,
    template_filters,
)
from tickwatch.resources import REPOSITORY_ROOT, AwsContext
from tickwatch.template import load_template


def command_dlq_list(args: argparse.Namespace, context: AwsContext) -> int:
    sqs = context.client("sqs")
    rows = []
    for function in sorted(FAILURE_QUEUES):
        if args.function and function != args.function:
            continue
        url = context.resource(f"{function}_failure_queue")
        for batch in failed_batches(sqs, url, function):
            info = batch.info
            rows.append(
                (
                    function,
                    batch.source,
                    info.get("shardId", "-"),
                    f"{info.get('startSequenceNumber', '?')}..{info.get('endSequenceNumber', '?')}",
                    info.get("batchSize", "?"),
                    batch.reason,
                    describe_age(batch.age()),
                )
            )
    if not rows:
        print("the on-failure queues are empty: no batch was given up on")
        return 0
    print(format_table(("FUNCTION", "SOURCE", "SHARD", "SEQUENCE RANGE", "RECORDS", "REASON", "AGE"), rows))
    return 0


def command_dlq_replay(args: argparse.Namespace, context: AwsContext) -> int:
    functions = [name for name in sorted(FAILURE_QUEUES) if not args.function or name == args.function]
    sqs, kinesis, streams = context.client("sqs"), context.client("kinesis"), context.client("dynamodbstreams")
    queues = {name: context.resource(f"{name}_failure_queue") for name in functions}
    template_body = load_template(REPOSITORY_ROOT / "template.yaml")  # the FilterCriteria Lambda applied
    attached = None
    if args.dry_run:
        invoker: Any = None
    elif context.local is not None:
        from tickwatch.local.functions import LocalInvoker
        from tickwatch.local.stack import LocalStack, LocalStackOptions

        attached = LocalStack(
            LocalStackOptions(endpoint_url=context.local.endpoint_url, parameter_overrides=context.local.parameters)
        ).attach()
        invoker = LocalInvoker({name: attached.functions[FUNCTIONS[name][0]] for name in FUNCTIONS})
    else:
        names = {name: context.resource(f"{name}_function") for name in functions}
        invoker = LambdaInvoker(context.client("lambda", Config(read_timeout=900)), names)
    try:
        outcomes = [
            outcome
            for name in functions
            for outcome in replay_queue(
                sqs,
                queues[name],
                name,
                kinesis=kinesis,
                streams=streams,
                invoke=invoker,
                filters=template_filters(template_body, FUNCTIONS[name][0]),
                dry_run=args.dry_run,
            )
        ]
    finally:
        if attached is not None:
            attached.stop()
    if not outcomes:
        print("the on-failure queues are empty: nothing to replay")
        return 0
    rows = [
        (
            outcome.batch.function,
            outcome.batch.info.get("shardId", "-"),
            f"{outcome.batch.info.get('startSequenceNumber', '?')}..{outcome.batch.info.get('endSequenceNumber', '?')}",
            outcome.records,
            outcome.status,
            outcome.detail,
        )
        for outcome in outcomes
    ]
    print(format_table(("FUNCTION", "SHARD", "SEQUENCE RANGE", "RECORDS", "OUTCOME", "DETAIL"), rows))
    counts = Counter(outcome.status for outcome in outcomes)
    print(", ".join(f"{count} {status}" for status, count in sorted(counts.items())))
    return 0 if all(outcome.done for outcome in outcomes) else 1
