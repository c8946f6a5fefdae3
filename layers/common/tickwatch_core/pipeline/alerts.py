"""Alerts: quote updates from the DynamoDB stream -> rule crossings -> SNS messages, exactly once.

For one batch of stream records:

1. load the rules of every symbol in the batch (with their armed/fired state);
2. evaluate each rule on every trade of every update, in order (`rules.apply_update`), which gives
   the firings, each with a deterministic `alert_id`;
3. look up the alert-history items of those firings: a firing already recorded was published by an
   earlier attempt and is not published again;
4. publish the rest in PublishBatch calls of ten, one call at a time, recording each call's
   accepted firings as history items before the next call starts; stop starting calls when one
   fails or when the invocation is close to its timeout, and leave the rest for redelivery;
5. save each rule's state as of just before its first firing that is not yet recorded, and report
   the stream record of that update as the first failure, so Lambda redelivers from there.

A redelivered record therefore neither publishes twice (step 3) nor loses an alert (state is only
saved past firings that are recorded). The one gap no standard SNS topic can close: if SNS accepted
a message but its history item was not recorded (the write failed even after retries, SNS's reply
was lost, or the function died in between), the retry publishes it again. That is a duplicate,
never a loss, and because nothing else happens between a call that SNS accepted and the write of
its history, a failed invocation can repeat at most the messages of one PublishBatch call.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from tickwatch_core.aws import AWS_ERRORS, AwsClients, describe_aws_error
from tickwatch_core.config import AlertsSettings
from tickwatch_core.domain.delivery.texts import alert_message, alert_notice
from tickwatch_core.domain.intervals import aggregate, interval_start
from tickwatch_core.domain.rules import (
    ClosedBar,
    Firing,
    QuoteUpdate,
    RuleKind,
    RuleState,
    apply_updates,
)
from tickwatch_core.pipeline.delivery.directory import DestinationDirectory, load_destinations
from tickwatch_core.store import items
from tickwatch_core.store.deliveries import new_delivery_item
from tickwatch_core.store.dynamodb import batch_get, batch_put
from tickwatch_core.store.items import StoredRule
from tickwatch_core.store.market_reader import MarketReader
from tickwatch_core.store.rule_store import load_rules

PUBLISH_BATCH_LIMIT = 10
_READ_THREADS = 16
# A publish call is started only with this much of the invocation's time left, plus twice the
# longest publish-and-record so far: a container killed at its timeout between SNS accepting a call
# and the write of its history is what would repeat alerts, so the rest is left for redelivery.
PUBLISH_TIME_RESERVE = timedelta(seconds=1)


@dataclass(frozen=True, slots=True)
class StreamQuoteUpdate:
    """A quote update and the DynamoDB stream record that carried it."""

    stream_sequence: str
    update: QuoteUpdate


@dataclass(slots=True)
class AlertsReport:
    updates: int = 0
    rules_evaluated: int = 0
    firings: int = 0
    published: int = 0
    already_published: int = 0
    deferred: int = 0  # firings not published by this invocation, left for redelivery
    rules_saved: int = 0
    failures: list[tuple[str, str, str]] = field(default_factory=list)  # (what, error, stream sequence)

    @property
    def first_failed_sequence(self) -> str | None:
        if not self.failures:
            return None
        return min((sequence for _, _, sequence in self.failures), key=int)


def quote_update_from_image(image: Mapping[str, Any]) -> QuoteUpdate:
    """The update a quote item's NEW image describes (see `items.quote_to_item`)."""
    day = image.get("day")
    return QuoteUpdate(
        symbol=image["symbol"],
        update_seq=image["applied_seq"],
        trades=items.decode_trades(image.get("trades", "")),
        day=date.fromisoformat(day) if day else None,
        day_open=image.get("day_open"),
    )


class AlertDispatcher:
    """Evaluates rules on quote updates and publishes alerts. Clients are injectable."""

    def __init__(
        self,
        settings: AlertsSettings,
        clients: AwsClients | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.settings = settings
        self.clients = clients or AwsClients()
        self.clock = clock
        self._destinations = DestinationDirectory(
            lambda: load_destinations(self.clients.dynamodb, settings.delivery_table_name), clock
        )

    def process(
        self, updates: Sequence[StreamQuoteUpdate], time_left: Callable[[], timedelta] | None = None
    ) -> AlertsReport:
        """Evaluate, publish and record. `time_left` (the Lambda context's remaining time) keeps
        publish calls from starting too close to the invocation's timeout."""
        report = AlertsReport(updates=len(updates))
        batch = _Batch(
            report, {(entry.update.symbol, entry.update.update_seq): entry.stream_sequence for entry in updates}
        )
        by_symbol: dict[str, list[StreamQuoteUpdate]] = defaultdict(list)
        for entry in updates:
            by_symbol[entry.update.symbol].append(entry)

        # 1-2: evaluate every rule on its symbol's updates. The rules of each symbol are one Query;
        # they run side by side, as a batch holds updates of many symbols.
        evaluations: list[_RuleEvaluation] = []
        with ThreadPoolExecutor(max_workers=min(_READ_THREADS, max(1, len(by_symbol)))) as pool:
            loaded = list(pool.map(self._load_rules, by_symbol.values()))
        for (symbol, entries), stored_rules in zip(by_symbol.items(), loaded, strict=True):
            if isinstance(stored_rules, Exception):
                failure = (f"rules of {symbol}", describe_aws_error(stored_rules), entries[0].stream_sequence)
                report.failures.append(failure)
                continue
            for rule_input in stored_rules:
                stored = rule_input.stored
                updates = [entry.update for entry in entries]
                results = apply_updates(stored.rule, stored.state, updates, rule_input.bars, rule_input.session_opens)
                evaluations.append(
                    _RuleEvaluation(stored.rule.rule_id, stored.rule.symbol, stored.state, entries, results)
                )
        report.rules_evaluated = len(evaluations)
        firings = [
            firing
            for evaluation in evaluations
            for _, update_firings in evaluation.results
            for firing in update_firings
        ]
        report.firings = len(firings)

        # 3-4: publish what no earlier attempt recorded, then record it.
        recorded = self._recorded_alert_ids(firings, batch)
        if recorded is not None:
            report.already_published = len(recorded)
            recorded |= self._publish_and_record([f for f in firings if f.alert_id not in recorded], batch, time_left)

        # 5: save rule states up to the first unrecorded firing; one conditional write per rule,
        # side by side (each rule's item is its own).
        saves = [save for e in evaluations if (save := self._state_to_save(e, recorded or set(), report))]
        if saves:
            with ThreadPoolExecutor(max_workers=min(_READ_THREADS, len(saves))) as pool:
                errors = list(pool.map(self._try_write_rule_state, saves))
            for (evaluation, _, first_changed), error in zip(saves, errors, strict=True):
                if error is None:
                    report.rules_saved += 1
                else:
                    failure = (f"rule {evaluation.rule_id}", describe_aws_error(error), first_changed.stream_sequence)
                    report.failures.append(failure)
        return report

    def _load_rules(self, entries: list[StreamQuoteUpdate]) -> list[_LoadedRule] | Exception:
        """The rules of the updates' symbol, each with what it reads of the stored bars."""
        symbol = entries[0].update.symbol
        try:
            stored_rules = load_rules(self.clients.dynamodb, self.settings.table_name, symbol)
            trades = [trade.at for entry in entries for trade in entry.update.trades]
            return [
                _LoadedRule(stored, self.bars_to_read(stored, trades), self.session_opens_to_read(stored, trades))
                for stored in stored_rules
            ]
        except AWS_ERRORS as error:  # reported by process(), which fails that symbol's updates
            return error

    def _bar_reader(self) -> MarketReader:
        """Strongly consistent: the processor wrote the bars just before the quote whose stream
        record this is, and a bar is read once, so a stale copy would stay in a rule's average."""
        return MarketReader(self.clients.dynamodb, self.settings.table_name, consistent=True)

    def session_opens_to_read(self, stored: StoredRule, trades: list[datetime]) -> dict[date, Decimal]:
        """A day-change rule with trading hours measures from its session's open: the open of the
        session's first stored one-minute bar, so a rule added during a session measures from its
        real open. One Query of one item per session the rule has no open of yet: once a day."""
        rule, known = stored.rule, stored.state.reference_day
        if rule.kind is not RuleKind.CHANGE or rule.hours is None or not _evaluates_any(stored, trades):
            return {}
        sessions = {session for at in trades if (session := rule.hours.session_of(at)) is not None}
        # A session before the one the rule knows is skipped by the decision: no open to read.
        sessions = {session for session in sessions if known is None or session > known}
        reader = self._bar_reader()
        end = max(trades) + timedelta(minutes=1)
        opens = {}
        for session in sorted(sessions):
            first = reader.first_minute_bar(rule.symbol, rule.hours.session_start(session), end)
            if first is not None:
                opens[session] = first.open
        return opens

    def bars_to_read(self, stored: StoredRule, trades: list[datetime]) -> tuple[ClosedBar, ...]:
        """A cross rule's stored bars that close before the batch's last trade's interval and that
        it has not read: for a new rule also the ones before its first trade that its average needs
        (as the query API's warm-up), so it has an average at once. At most one Query per rule and
        batch, and none while the batch stays in the interval the rule read up to."""
        rule, series = stored.rule, stored.state.series
        if rule.kind is not RuleKind.CROSS or not _evaluates_any(stored, trades):
            return ()
        assert rule.average is not None
        length = rule.average.length
        until = interval_start(max(trades), length)
        read_from = series.read_until if series is not None else None
        if read_from is not None and read_from >= until:
            return ()
        reader = self._bar_reader()
        bars = []
        if read_from is None:
            read_from = min(interval_start(min(trades), length), until)
            bars = reader.bars_before(rule.symbol, length, read_from, rule.average.seed_bars)
        bars += aggregate(reader.iter_minute_bars(rule.symbol, read_from, until), length)
        return tuple(ClosedBar(bar.start, bar.close) for bar in bars)

    def _recorded_alert_ids(self, firings: Sequence[Firing], batch: _Batch) -> set[str] | None:
        if not firings:
            return set()
        try:
            found = batch_get(self.clients.dynamodb, self.settings.table_name, [items.alert_key(f) for f in firings])
        except AWS_ERRORS as error:
            # Without knowing what was published, publishing could duplicate: retry the batch.
            for firing in firings:
                batch.fail("alert history lookup", error, firing)
            return None
        return {values["alert_id"] for values in found.values()}

    def _publish_and_record(
        self, firings: Sequence[Firing], batch: _Batch, time_left: Callable[[], timedelta] | None
    ) -> set[str]:
        """Publish `firings` ten a call, each call's accepted firings recorded before the next call,
        so that a failure at any point leaves at most one call's messages published but unrecorded."""
        recorded: set[str] = set()
        longest_call = timedelta()
        for start in range(0, len(firings), PUBLISH_BATCH_LIMIT):
            left = time_left() if time_left is not None else None
            if left is not None and left < PUBLISH_TIME_RESERVE + 2 * longest_call:
                batch.defer(firings[start:], f"only {left.total_seconds():.1f} s of the invocation left")
                break
            chunk = firings[start : start + PUBLISH_BATCH_LIMIT]
            chunk_recorded = self._record(self._hand_over_chunk(chunk, batch), batch)
            if left is not None and time_left is not None:
                longest_call = max(longest_call, left - time_left())
            recorded |= chunk_recorded
            if len(chunk_recorded) < len(chunk):
                # SNS or DynamoDB is failing: every further call risks more, and gains nothing, as
                # Lambda redelivers from the failed firing's record anyway.
                batch.defer(firings[start + PUBLISH_BATCH_LIMIT :], "an earlier publish or record failed")
                break
        return recorded

    def _hand_over_chunk(self, chunk: Sequence[Firing], batch: _Batch) -> list[tuple[Firing, str | None]]:
        """Publish the firings of rules without destinations to the alert topic, as ever, and write a
        pending delivery for each destination of the others; returns what was handed over."""
        to_topic = [firing for firing in chunk if not firing.rule.notify]
        routed = [firing for firing in chunk if firing.rule.notify]
        handed_over: list[tuple[Firing, str | None]] = []
        if to_topic:
            handed_over += self._publish_chunk(to_topic, batch)
        if routed:
            handed_over += [(firing, None) for firing in self._write_deliveries(routed, batch)]
        return handed_over

    def _write_deliveries(self, firings: Sequence[Firing], batch: _Batch) -> list[Firing]:
        """One pending delivery per (firing, destination), each written once: a put on the condition
        that it does not exist, so a redelivered batch never turns a delivered one back to pending.
        The delivery table's stream hands them to the delivery function."""
        names = {name for firing in firings for name in firing.rule.notify}
        try:
            pacing = self._destinations.pacing_keys(names)
        except AWS_ERRORS as error:
            for firing in firings:
                batch.fail("destinations", error, firing)
            return []
        retention = self.settings.alert_history_retention
        writes = [
            (firing, new_delivery_item(pacing[name], name, alert_notice(firing), retention))
            for firing in firings
            for name in firing.rule.notify
        ]
        with ThreadPoolExecutor(max_workers=min(_READ_THREADS, len(writes))) as pool:
            errors = list(pool.map(self._put_delivery, (item for _, item in writes)))
        failed: set[str] = set()
        for (firing, item), error in zip(writes, errors, strict=True):
            if error is not None:
                failed.add(firing.alert_id)
                batch.fail(f"delivery {item['sk']['S']}", error, firing)
        return [firing for firing in firings if firing.alert_id not in failed]

    def _put_delivery(self, item: dict[str, Any]) -> ClientError | BotoCoreError | None:
        try:
            self.clients.dynamodb.put_item(
                TableName=self.settings.delivery_table_name, Item=item, ConditionExpression="attribute_not_exists(pk)"
            )
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException":
                return None  # written by an earlier attempt: handed over already
            return error
        except BotoCoreError as error:
            return error
        return None

    def _record(self, published: Sequence[tuple[Firing, str | None]], batch: _Batch) -> set[str]:
        """Write the history items of firings handed over (SNS accepted them, or their deliveries
        are written); returns the alert ids recorded."""
        if not published:
            return set()
        now = self.clock()
        history = [
            items.alert_to_item(
                firing, published_at=now, message_id=message_id, retention=self.settings.alert_history_retention
            )
            for firing, message_id in published
        ]
        try:
            batch_put(self.clients.dynamodb, self.settings.table_name, history)
        except AWS_ERRORS as error:
            for firing, _ in published:
                batch.fail(f"alert history {firing.alert_id}", error, firing)
            return set()
        batch.report.published += len(published)
        return {firing.alert_id for firing, _ in published}

    def _publish_chunk(self, chunk: Sequence[Firing], batch: _Batch) -> list[tuple[Firing, str]]:
        entries = []
        for index, firing in enumerate(chunk):
            subject, body = alert_message(firing)
            entries.append(
                {
                    "Id": str(index),
                    "Subject": subject,
                    "Message": body,
                    "MessageAttributes": {
                        "symbol": {"DataType": "String", "StringValue": firing.rule.symbol},
                        "rule_id": {"DataType": "String", "StringValue": firing.rule.rule_id},
                        "direction": {"DataType": "String", "StringValue": firing.rule.direction.value},
                        # The same for every delivery of one alert: lets a subscriber drop a duplicate.
                        "alert_id": {"DataType": "String", "StringValue": firing.alert_id},
                    },
                }
            )
        try:
            response = self.clients.sns.publish_batch(
                TopicArn=self.settings.alert_topic_arn, PublishBatchRequestEntries=entries
            )
        except AWS_ERRORS as error:
            for firing in chunk:
                batch.fail(f"publish {firing.alert_id}", error, firing)
            return []
        for failed in response.get("Failed", []):
            firing = chunk[int(failed["Id"])]
            batch.fail(
                f"publish {firing.alert_id}", f"{failed.get('Code', 'Unknown')}: {failed.get('Message', '')}", firing
            )
        return [(chunk[int(entry["Id"])], entry["MessageId"]) for entry in response.get("Successful", [])]

    def _state_to_save(
        self, evaluation: _RuleEvaluation, recorded: set[str], report: AlertsReport
    ) -> tuple[_RuleEvaluation, RuleState, StreamQuoteUpdate] | None:
        """The rule's state as of just before its first unrecorded firing, and the update that first
        changed it; None when there is nothing to save."""
        state_to_save = evaluation.stored_state
        first_changed: StreamQuoteUpdate | None = None
        for entry, (state_after, firings) in zip(evaluation.entries, evaluation.results, strict=True):
            if any(firing.alert_id not in recorded for firing in firings):
                # Normally already reported where it failed or was deferred; reporting it here too
                # makes sure a firing that went missing in any other way is redelivered, never
                # skipped (only when it moves the redelivery point: one log line per cause).
                first_failed = report.first_failed_sequence
                if first_failed is None or int(entry.stream_sequence) < int(first_failed):
                    report.failures.append((f"rule {evaluation.rule_id}", "alert not recorded", entry.stream_sequence))
                break
            if state_after != state_to_save and first_changed is None:
                first_changed = entry
            state_to_save = state_after
        return None if first_changed is None else (evaluation, state_to_save, first_changed)

    def _try_write_rule_state(
        self, save: tuple[_RuleEvaluation, RuleState, StreamQuoteUpdate]
    ) -> ClientError | BotoCoreError | None:
        evaluation, state, _ = save
        try:
            self._write_rule_state(evaluation, state)
        except AWS_ERRORS as error:  # reported by process(), which redelivers from that update
            return error
        return None

    def _write_rule_state(self, evaluation: _RuleEvaluation, state: RuleState) -> None:
        """Save `state` if the item still holds the state this evaluation started from."""
        values = items.serialize(
            {f":{name}": value for name, value in items.rule_state_values(state).items() if name != "state_seq"}
        )
        names = {f"#{name[1:]}": name[1:] for name in values}
        assignments = [f"{name} = :{name[1:]}" for name in names]
        names["#seq"], values[":seq"] = "state_seq", {"S": state.state_seq}
        assignments.append("#seq = :seq")
        if evaluation.stored_state.state_seq is None:
            condition = "attribute_exists(pk) AND attribute_not_exists(#seq)"
        else:
            condition = "attribute_exists(pk) AND #seq = :previous"
            values[":previous"] = {"S": evaluation.stored_state.state_seq}
        self.clients.dynamodb.update_item(
            TableName=self.settings.table_name,
            Key=items.rule_key(evaluation.symbol, evaluation.rule_id),
            UpdateExpression="SET " + ", ".join(assignments),
            ConditionExpression=condition,
            ExpressionAttributeNames=names,
            ExpressionAttributeValues=values,
        )


@dataclass(frozen=True, slots=True)
class _Batch:
    """The report of one batch, and which stream record carried each quote update."""

    report: AlertsReport
    stream_sequence_of_update: dict[tuple[str, str], str]

    def fail(self, what: str, error: Exception | str, firing: Firing) -> None:
        """Record that `firing` is not delivered yet; Lambda must redeliver from its stream record."""
        reason = error if isinstance(error, str) else describe_aws_error(error)
        sequence = self.stream_sequence_of_update[(firing.rule.symbol, firing.update_seq)]
        self.report.failures.append((what, reason, sequence))

    def defer(self, firings: Sequence[Firing], reason: str) -> None:
        """Leave `firings` unpublished for redelivery: one failure, at the earliest of their records."""
        if not firings:
            return
        self.report.deferred += len(firings)
        sequence = min((self.stream_sequence_of_update[(f.rule.symbol, f.update_seq)] for f in firings), key=int)
        self.report.failures.append((f"publish of {len(firings)} alerts", f"deferred: {reason}", sequence))


def _evaluates_any(stored: StoredRule, trades: list[datetime]) -> bool:
    """Whether the rule may evaluate any of the trades: an ended rule never does, an expired one
    not after its expiry. Such rules read no bars (nothing would ever move them on)."""
    if not trades or stored.state.ended:
        return False
    return stored.rule.expires_at is None or min(trades) < stored.rule.expires_at


@dataclass(frozen=True, slots=True)
class _LoadedRule:
    """A rule as stored, and what it reads of the stored bars for one batch."""

    stored: StoredRule
    bars: tuple[ClosedBar, ...]
    session_opens: dict[date, Decimal]


@dataclass(frozen=True, slots=True)
class _RuleEvaluation:
    rule_id: str
    symbol: str
    stored_state: RuleState
    entries: list[StreamQuoteUpdate]
    results: list[tuple[RuleState, list[Firing]]]
