"""Producer Lambda: on its EventBridge schedule, quotes from Twelve Data or Finnhub -> the tick stream.

Thin by design: `tickwatch_core.sources.producer` reserves the plan's credits, fetches the quotes,
validates and puts them; this handler turns its report into one summary line, a line per problem
and metrics. A provider error, a missing or wrong secret and a rejected key end the run normally
(logged and counted): raising would make EventBridge retry a run that already spent its credits,
and the next scheduled run tries again anyway. The secret's value is never logged.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.data_classes import EventBridgeEvent, event_source
from aws_lambda_powertools.utilities.typing import LambdaContext

from tickwatch_core.aws import AwsClients
from tickwatch_core.config import ProducerSettings
from tickwatch_core.sources.producer import ProducerReport, ScheduledProducer
from tickwatch_core.tracing import handler_tracer

logger = Logger()
tracer = handler_tracer()
metrics = Metrics()

# Read once at cold start: a missing variable fails the init, naming the variable.
settings = ProducerSettings.from_environment()
# put_records retries the records Kinesis reports as failed itself, within the time left; SDK
# retries on top would only spend that time twice.
clients = AwsClients(options={"kinesis": {"config": {"retries": {"mode": "standard", "max_attempts": 1}}}})
producer = ScheduledProducer(settings, clients)


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
@event_source(data_class=EventBridgeEvent)
def lambda_handler(event: EventBridgeEvent, context: LambdaContext) -> dict[str, Any]:
    report = producer.run(time_left=lambda: context.get_remaining_time_in_millis() / 1000)
    _observe(report, scheduled=event.raw_event.get("time"))
    return report.summary()


def _observe(report: ProducerReport, *, scheduled: str | None) -> None:
    metrics.add_metric(name="ProducerTicksFetched", unit=MetricUnit.Count, value=report.fetched)
    metrics.add_metric(name="ProducerTicksSent", unit=MetricUnit.Count, value=report.sent)
    metrics.add_metric(name="ProducerTicksRejected", unit=MetricUnit.Count, value=len(report.rejected))
    metrics.add_metric(name="ProducerTicksFailed", unit=MetricUnit.Count, value=len(report.failed))
    metrics.add_metric(name="ProducerQuotesMissing", unit=MetricUnit.Count, value=len(report.missing))
    metrics.add_metric(name="ProducerCreditsUsed", unit=MetricUnit.Count, value=report.credits_granted)
    metrics.add_metric(name="ProducerCreditsSkipped", unit=MetricUnit.Count, value=report.credits_skipped)
    metrics.add_metric(name="ProducerProviderErrors", unit=MetricUnit.Count, value=int(bool(report.provider_error)))
    metrics.add_metric(name="ProducerSecretErrors", unit=MetricUnit.Count, value=int(bool(report.secret_error)))
    if report.secret_error:
        logger.error("no usable API key; nothing fetched", provider=report.provider, error=report.secret_error)
    if report.provider_error:
        logger.error(
            "the provider failed; the next run tries again", error=report.provider_error, left=report.symbols_left
        )
    if report.time_ran_out:
        logger.warning("time ran out before every granted symbol was quoted", left=report.symbols_left)
    if report.credits_skipped:
        logger.info(
            "credits spent for this minute or day; the rotation quotes the other symbols in later runs",
            skipped=report.credits_skipped,
        )
    for symbol, reason in report.missing:
        logger.warning("no price from the provider", symbol=symbol, reason=reason)
    for symbol, reason in report.rejected:
        logger.warning("invalid tick from the provider not sent", symbol=symbol, reason=reason)
    for symbol, error in report.failed:
        logger.error("tick not delivered to the stream after retries", symbol=symbol, error=error)
    logger.info("producer run", scheduled=scheduled, **report.summary())
