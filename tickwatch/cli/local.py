"""`tickwatch local`, `local up` and `local down`: the whole pipeline on this machine."""

from __future__ import annotations

import argparse
import sys

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
        return run.run_up(workdir=args.workdir, host=args.host, port=args.port, parameter_overrides=overrides)
    if args.local_command == "down":
        return run.run_down()

    from tickwatch.fetch.simulator import DEFAULT_SYMBOLS, parse_symbols

    try:
        symbols = parse_symbols(args.symbols) if args.symbols else dict(DEFAULT_SYMBOLS)
    except ValueError as error:
        raise InputError(str(error)) from None
    _build_provider(args, context, None)  # check the provider's options before starting anything
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
            demo_rules=not args.no_demo_rules,
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
