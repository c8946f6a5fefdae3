"""Connections of the WebSocket API and the symbols each one follows, in the connection table.

| item          | pk                 | sk                 | attributes                          |
|---------------|--------------------|--------------------|-------------------------------------|
| connection    | CONNECTION#<id>    | CONNECTION         | connected_at, symbols (set), ip     |
| subscription  | SYMBOL#AAPL        | CONNECTION#<id>    | connection_id                       |

Finding the connections of a symbol is one Query on its partition. The connection item lists its
symbols so that `$disconnect` (or a 410 from API Gateway) removes every subscription without a
scan. Every item expires (TTL `expires_at`) two hours after the connection opened, API Gateway's
longest connection, so a connection whose `$disconnect` never ran cleans itself up.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from tickwatch_core.aws import AwsClients
from tickwatch_core.domain.ticks import format_timestamp
from tickwatch_core.store.dynamodb import batch_write
from tickwatch_core.store.items import TTL_ATTRIBUTE, symbol_pk

CONNECTION_LIFETIME = timedelta(hours=2)  # API Gateway closes a WebSocket connection after 2 hours
CONNECTION_SORT_KEY = "CONNECTION"
MAX_SYMBOLS_PER_CONNECTION = 50


def connection_pk(connection_id: str) -> str:
    return f"CONNECTION#{connection_id}"


def subscription_key(symbol: str, connection_id: str) -> dict[str, dict[str, str]]:
    return {"pk": {"S": symbol_pk(symbol)}, "sk": {"S": f"CONNECTION#{connection_id}"}}


def _connection_key(connection_id: str) -> dict[str, dict[str, str]]:
    return {"pk": {"S": connection_pk(connection_id)}, "sk": {"S": CONNECTION_SORT_KEY}}


class UnknownConnection(LookupError):
    """The connection has no item: it never connected through `$connect`, or it expired."""


class TooManySymbols(ValueError):
    """A subscription would take a connection past MAX_SYMBOLS_PER_CONNECTION."""


@dataclass(frozen=True, slots=True)
class ConnectionStore:
    """The connection table, through `clients.dynamodb` (created on first use; a fake in tests)."""

    clients: AwsClients
    table_name: str
    clock: Callable[[], datetime] = lambda: datetime.now(UTC)

    @property
    def client(self) -> Any:
        return self.clients.dynamodb

    def connect(self, connection_id: str, *, source_ip: str | None = None) -> None:
        now = self.clock()
        item: dict[str, Any] = {
            **_connection_key(connection_id),
            "connected_at": {"S": format_timestamp(now)},
            TTL_ATTRIBUTE: {"N": str(int((now + CONNECTION_LIFETIME).timestamp()))},
        }
        if source_ip:
            item["ip"] = {"S": source_ip}
        self.client.put_item(TableName=self.table_name, Item=item)

    def symbols_of(self, connection_id: str) -> frozenset[str]:
        """The symbols a connection follows (strongly consistent: it was just written)."""
        return frozenset(self._connection(connection_id).get("symbols", {}).get("SS", ()))

    def subscribe(self, connection_id: str, symbols: Iterable[str]) -> frozenset[str]:
        """Follow `symbols` too; returns every symbol the connection now follows."""
        connection = self._connection(connection_id)
        current = frozenset(connection.get("symbols", {}).get("SS", ()))
        added = sorted(set(symbols) - current)
        if len(current) + len(added) > MAX_SYMBOLS_PER_CONNECTION:
            raise TooManySymbols(
                f"a connection follows at most {MAX_SYMBOLS_PER_CONNECTION} symbols; it follows {len(current)} "
                f"and this adds {len(added)}"
            )
        if not added:
            return current
        expires_at = connection[TTL_ATTRIBUTE]
        # Subscriptions first: if the set update then fails, the client retries and nothing is
        # followed without being listed for long (the TTL removes it in any case).
        self._write(
            [{"PutRequest": {"Item": {**subscription_key(s, connection_id), TTL_ATTRIBUTE: expires_at}}} for s in added]
        )
        return self._change_symbols(connection_id, "ADD", added)

    def unsubscribe(self, connection_id: str, symbols: Iterable[str]) -> frozenset[str]:
        """Stop following `symbols`; returns every symbol the connection still follows."""
        current = self.symbols_of(connection_id)
        removed = sorted(set(symbols) & current)
        if not removed:
            return current
        followed = self._change_symbols(connection_id, "DELETE", removed)
        self._write([{"DeleteRequest": {"Key": subscription_key(s, connection_id)}} for s in removed])
        return followed

    def forget(self, connection_id: str) -> int:
        """Delete a connection and its subscriptions (`$disconnect`, or gone); returns how many
        subscriptions it had. A connection already forgotten is not an error."""
        response = self.client.get_item(TableName=self.table_name, Key=_connection_key(connection_id))
        symbols = response.get("Item", {}).get("symbols", {}).get("SS", ())
        requests = [{"DeleteRequest": {"Key": subscription_key(s, connection_id)}} for s in symbols]
        self._write([*requests, {"DeleteRequest": {"Key": _connection_key(connection_id)}}])
        return len(symbols)

    def connections_of(self, symbol: str) -> Iterator[str]:
        """Ids of the connections following `symbol`: one Query on its partition (paged)."""
        arguments: dict[str, Any] = {
            "TableName": self.table_name,
            "KeyConditionExpression": "pk = :pk AND begins_with(sk, :prefix)",
            "ExpressionAttributeValues": {":pk": {"S": symbol_pk(symbol)}, ":prefix": {"S": "CONNECTION#"}},
            "ProjectionExpression": "sk",
        }
        while True:
            page = self.client.query(**arguments)
            for item in page.get("Items", []):
                yield item["sk"]["S"].removeprefix("CONNECTION#")
            if "LastEvaluatedKey" not in page:
                return
            arguments["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    def _change_symbols(self, connection_id: str, action: str, symbols: list[str]) -> frozenset[str]:
        """ADD or DELETE `symbols` in the connection item's set; every symbol it then lists."""
        updated = self.client.update_item(
            TableName=self.table_name,
            Key=_connection_key(connection_id),
            UpdateExpression=f"{action} symbols :symbols",
            ConditionExpression="attribute_exists(pk)",
            ExpressionAttributeValues={":symbols": {"SS": symbols}},
            ReturnValues="ALL_NEW",
        )
        return frozenset(updated["Attributes"].get("symbols", {}).get("SS", ()))

    def _connection(self, connection_id: str) -> dict[str, Any]:
        response = self.client.get_item(
            TableName=self.table_name, Key=_connection_key(connection_id), ConsistentRead=True
        )
        if "Item" not in response:
            raise UnknownConnection(connection_id)
        return response["Item"]

    def _write(self, requests: list[dict[str, Any]]) -> None:
        batch_write(self.client, self.table_name, requests)
