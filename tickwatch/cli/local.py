"""`tickwatch local`, `local up` and `local down`: the whole pipeline on this machine."""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime

from tickwatch.cli.checks import _check_symbol
from tickwatch.cli.fetch import _build_provider, _provider_errors
from tickwatch.resources import AwsContext, CliError, InputError

FAULT_FUNCTION_TIMEOUT = 5.0


def command_local(args: argparse.Namespace, context: AwsContext) -> int:
    from tickwatch.local import run

    overrides = {}
    if args.alert_symbols:
        symbols = [_check_symbol(s.strip()) for s in args.alert_symbols.split(",") if s.strip()]
        overrides["AlertSymbols"] = ",".join(symbols)
    if args.local_command == "up":
        overrides |= _parameter_overrides(args.parameter)
        secrets = run.producer_api_key_secret(overrides)
        return run.run_up(
            workdir=args.workdir, host=args.host, port=args.port, parameter_overrides=overrides, secrets=secrets
        )
    if args.local_command == "down":
        return run.run_down()
    if args.local_command == "trigger":
        return _trigger(args.function)

    from tickwatch.fetch.simulator import DEFAULT_SYMBOLS, parse_symbols

    try:
        symbols = parse_symbols(args.symbols) if args.symbols else dict(DEFAULT_SYMBOLS)
    except ValueError as error:
        raise InputError(str(error)) from None
    _build_provider(args, context, None)  # check the provider's options before starting anything
    rules = None
    if args.rules is not None:
        from tickwatch.local.rule_file import RuleFileError, load_rule_file

        try:
            rules = load_rule_file(args.rules, now=datetime.now(UTC))
        except RuleFileError as error:
            raise InputError(str(error)) from None
    faults = None
    if args.faults:
        from tickwatch.local.faults import FaultPlan

        try:
            faults = FaultPlan.parse(args.faults, seed=args.fault_seed)
        except ValueError as error:
            raise InputError(str(error)) from None
        if faults.rate("timeout") > 0 and args.function_timeout is None:
            # An injected timeout hangs past the function's timeout: the template's would stall
            # the run for a minute at every one.
            args.function_timeout = FAULT_FUNCTION_TIMEOUT
            print(f"tickwatch: --faults timeout=: functions time out after {FAULT_FUNCTION_TIMEOUT:.0f} s "
                  "(pass --function-timeout to change)", file=sys.stderr)  # fmt: skip
    try:
        return run.run_demo(
            workdir=args.workdir,
            build_provider=lambda screen: _build_provider(args, context, screen.progress),
            start_prices=symbols if args.provider == "simulator" else {},
            demo_rules=not args.no_demo_rules and rules is None,
            rules=rules,
            count=args.count,
            duration=args.duration,
            parameter_overrides=overrides,
            kinesis_poll_interval=args.kinesis_poll_interval,
            dynamodb_poll_interval=args.dynamodb_poll_interval,
            faults=faults,
            function_timeout=args.function_timeout,
        )
    except _provider_errors() as error:
        raise CliError(str(error)) from None


def _parameter_overrides(pairs: list[str]) -> dict[str, str]:
    """`--parameter NAME=VALUE`s, checked as CloudFormation checks them (name, AllowedValues,
    AllowedPattern), so the local stack refuses what a deploy would."""
    import re

    from tickwatch.template import Template

    parameters = Template.load().body.get("Parameters", {})
    overrides = {}
    for pair in pairs:
        name, equals, value = pair.partition("=")
        if not equals or not name:
            raise InputError(f"--parameter {pair!r}: expected NAME=VALUE")
        definition = parameters.get(name)
        if definition is None:
            raise InputError(f"--parameter {name}: template.yaml has no such parameter")
        allowed = [str(v) for v in definition.get("AllowedValues", [])]
        if allowed and value not in allowed:
            raise InputError(f"--parameter {name}={value!r}: must be one of {', '.join(allowed)}")
        pattern = definition.get("AllowedPattern")
        if pattern and not re.fullmatch(pattern, value):
            raise InputError(f"--parameter {name}={value!r}: {definition.get('ConstraintDescription', pattern)}")
        overrides[name] = value
    from tickwatch.local.schedules import read_schedules

    try:
        read_schedules(Template.load(parameter_overrides=overrides))  # a schedule expression, checked as AWS does
    except ValueError as error:
        raise InputError(f"--parameter: {error}") from None
    return overrides


def _trigger(function_id: str) -> int:
    """`local trigger`: bad input (exit 2) before looking for the stack (exit 1)."""
    from tickwatch.local import run
    from tickwatch.local.schedules import ScheduledInvocationError, read_schedules
    from tickwatch.local.state import LocalState
    from tickwatch.template import Template

    state = LocalState.read()
    template = Template.load(parameter_overrides=state.parameters if state else {})
    functions = template.logical_ids("AWS::Serverless::Function")
    scheduled = sorted({schedule.function_id for schedule in read_schedules(template)})
    if function_id not in functions:
        raise InputError(f"{function_id} is not a function of template.yaml (functions: {', '.join(functions)})")
    if function_id not in scheduled:
        raise InputError(f"{function_id} has no schedule (scheduled functions: {', '.join(scheduled) or 'none'})")
    if state is None:
        raise CliError("no local stack is running; start one with: tickwatch local up")
    try:
        return run.run_trigger(function_id, state)
    except ScheduledInvocationError as error:
        raise CliError(str(error)) from None
