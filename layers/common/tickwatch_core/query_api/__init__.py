"""The query API: quotes, bars with indicators, alert history and rules over HTTPS.

`build_app` makes the one Powertools resolver that serves it; the Lambda handler
(`functions/query/app.py`), the local stack's HTTP gateway and the tests all call it.
"""

from tickwatch_core.query_api.app import MAX_BARS, QueryService, build_app

__all__ = ["MAX_BARS", "QueryService", "build_app"]
