"""The query API: quotes, bars with indicators, alert history and rules over HTTPS.

`app.build_app` makes the one Powertools resolver that serves it; the Lambda handler
(`functions/query/app.py`), the local stack's HTTP gateway and the tests all call it. Nothing is
imported here: the live broadcast uses the views alone, without Powertools' event handler.
"""
