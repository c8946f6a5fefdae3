"""Loading the template's functions as in-process containers."""

from __future__ import annotations

from tickwatch.local.functions import LocalFunction


def test_each_container_keeps_its_own_metrics(stack):
    # Powertools shares metric state across a process; Lambda containers are separate processes.
    processor = LocalFunction(stack, "ProcessorFunction")
    alerts = LocalFunction(stack, "AlertsFunction")
    containers = [processor._acquire(), processor._acquire(), alerts._acquire()]
    sets = [container.metrics.provider.metric_set for container in containers]
    assert len({id(metric_set) for metric_set in sets}) == 3

    containers[0].metrics.add_metric(name="Batches", unit="Count", value=1)
    assert "Batches" in containers[0].metrics.provider.metric_set
    assert "Batches" not in containers[1].metrics.provider.metric_set
    assert containers[2].metrics.provider.metric_set == {}
    containers[2].metrics.flush_metrics()  # alerts' flush leaves the processor's metric alone
    assert "Batches" in containers[0].metrics.provider.metric_set
