"""X-Ray tracing of a handler when the template turns it on; nothing imported when it is off.

Powertools' Tracer imports the X-Ray SDK, and botocore with it, even when POWERTOOLS_TRACE_DISABLED
says not to trace: about a quarter of a second of every cold start. With the template's Tracing
parameter set to Disabled, the functions get POWERTOOLS_TRACE_DISABLED=true and a tracer here that
does nothing and imports nothing.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from typing import Any


def tracing_disabled(environ: Mapping[str, str] | None = None) -> bool:
    environ = os.environ if environ is None else environ
    return environ.get("POWERTOOLS_TRACE_DISABLED", "").strip().lower() in ("1", "true")


class Untraced:
    """Powertools Tracer's decorators, doing nothing."""

    def capture_lambda_handler(self, handler: Callable[..., Any] | None = None, **_: Any) -> Any:
        return handler if handler is not None else (lambda decorated: decorated)

    def capture_method(self, method: Callable[..., Any] | None = None, **_: Any) -> Any:
        return method if method is not None else (lambda decorated: decorated)


def handler_tracer(*, aws_calls_only: bool = False) -> Any:
    """Powertools' Tracer, or `Untraced` when tracing is off (then the X-Ray SDK is never imported).

    `aws_calls_only`: trace botocore alone. The X-Ray SDK's patch of http.client records each
    request's URL path, which for a Slack or Discord webhook or Telegram's Bot API is the credential."""
    if tracing_disabled():
        return Untraced()
    from aws_lambda_powertools import Tracer

    return Tracer(patch_modules=("botocore",)) if aws_calls_only else Tracer()
