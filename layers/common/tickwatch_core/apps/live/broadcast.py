"""Fan-out of one batch of market-table changes to the connections that follow their symbols.

Per batch: the connections of each changed symbol (one Query per symbol, in parallel), then one
`update` message per connection with all its symbols' entries (split only past 32 KB), posted in
parallel through API Gateway's management API. A connection that is gone (410) has its items
deleted; a throttled post (429) is retried with jittered backoff; any other failure of one
connection is counted and logged, and never fails the batch: a live view is best served by the
next batch, not by redelivering this one.
"""

from __future__ import annotations

import random
import time
from collections import defaultdict
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from tickwatch_core.apps.live.connections import ConnectionStore
from tickwatch_core.apps.live.messages import MarketUpdates, TableChange, collect, messages_for
from tickwatch_core.aws import AWS_ERRORS, describe_aws_error

GONE = "GoneException"
THROTTLED = frozenset({"LimitExceededException", "TooManyRequestsException", "ThrottlingException"})
POST_ATTEMPTS = 5
PARALLEL_POSTS = 32


@dataclass
class BroadcastReport:
    records: int = 0
    symbols: int = 0
    connections: int = 0  # connections that had something to receive
    messages: int = 0  # messages delivered
    posts: int = 0  # PostToConnection calls, retries included
    throttled: int = 0  # posts retried after a 429
    gone: int = 0  # connections found closed (410), their items deleted
    failures: list[tuple[str, str]] = field(default_factory=list)  # (connection id, error)


@dataclass
class _Delivery:
    connection_id: str
    messages: list[bytes]
    delivered: int = 0
    posts: int = 0
    throttled: int = 0
    gone: bool = False
    error: str | None = None


class Broadcaster:
    """`store` finds and forgets connections; `post(connection_id, data)` is the management API's
    PostToConnection (a boto3 `apigatewaymanagementapi` client's method, or a fake)."""

    def __init__(
        self,
        store: ConnectionStore,
        post: Callable[..., Any],
        *,
        parallel: int = PARALLEL_POSTS,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.store = store
        self.post = post
        self.parallel = parallel
        self.sleep = sleep
        # Kept for the container's life: starting 32 threads per batch cost more than the posts.
        self._pool = ThreadPoolExecutor(parallel, thread_name_prefix="broadcast")

    def broadcast(self, changes: Iterable[TableChange]) -> BroadcastReport:
        changes = list(changes)
        updates = collect(changes)
        report = BroadcastReport(records=len(changes), symbols=len(updates.symbols))
        if not updates.entries:
            return report
        pool = self._pool
        followers = dict(zip(updates.symbols, pool.map(self._connections_of, updates.symbols), strict=True))
        deliveries = _deliveries(updates, followers)
        report.connections = len(deliveries)
        # One task per worker, each posting its share in turn: a task per post costs more in
        # scheduling than the post itself when the connections are many.
        shares = [deliveries[start :: self.parallel] for start in range(self.parallel)]
        done = [delivery for share in pool.map(self._deliver_each, shares) for delivery in share]
        gone = [delivery for delivery in done if delivery.gone]
        forgotten = list(pool.map(self._forget, gone))
        for delivery in done:
            report.messages += delivery.delivered
            report.posts += delivery.posts
            report.throttled += delivery.throttled
            if delivery.error is not None:
                report.failures.append((delivery.connection_id, delivery.error))
        for delivery, error in zip(gone, forgotten, strict=True):
            report.gone += 1
            if error is not None:
                report.failures.append((delivery.connection_id, f"deleting a gone connection: {error}"))
        return report

    def _connections_of(self, symbol: str) -> list[str]:
        return list(self.store.connections_of(symbol))

    def _deliver_each(self, deliveries: list[_Delivery]) -> list[_Delivery]:
        return [self._deliver(delivery) for delivery in deliveries]

    def _deliver(self, delivery: _Delivery) -> _Delivery:
        for message in delivery.messages:
            for attempt in range(POST_ATTEMPTS):
                delivery.posts += 1
                try:
                    self.post(ConnectionId=delivery.connection_id, Data=message)
                except AWS_ERRORS as error:
                    code = getattr(error, "response", {}).get("Error", {}).get("Code")
                    if code == GONE:
                        delivery.gone = True
                        return delivery
                    if code in THROTTLED and attempt + 1 < POST_ATTEMPTS:
                        delivery.throttled += 1
                        self.sleep(random.uniform(0, 0.05 * 2**attempt))  # full jitter: 50, 100, 200, 400 ms caps
                        continue
                    delivery.error = describe_aws_error(error)
                    return delivery
                delivery.delivered += 1
                break
        return delivery

    def _forget(self, delivery: _Delivery) -> str | None:
        try:
            self.store.forget(delivery.connection_id)
        except AWS_ERRORS as error:  # the TTL removes it in two hours at the latest
            return describe_aws_error(error)
        return None


def _deliveries(updates: MarketUpdates, followers: dict[str, list[str]]) -> list[_Delivery]:
    """One delivery per connection, with the messages of the symbols it follows; connections that
    follow the same symbols share the very same messages (built once)."""
    symbols_of: dict[str, set[str]] = defaultdict(set)
    for symbol, connection_ids in followers.items():
        for connection_id in connection_ids:
            symbols_of[connection_id].add(symbol)
    built: dict[frozenset[str], list[bytes]] = {}
    deliveries = []
    for connection_id, symbols in sorted(symbols_of.items()):
        key = frozenset(symbols)
        if key not in built:
            built[key] = messages_for(updates, key)
        deliveries.append(_Delivery(connection_id, built[key]))
    return deliveries
