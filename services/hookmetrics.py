"""The hooks' and webhooks' Prometheus metrics, read from their plain numbers at scrape time.

Neither a hook call nor a webhook delivery touches a prometheus instrument: services/hooks.py
and services/webhookrelay.py count in dicts and lists, and this collector turns those into
metric families when /metrics is scraped.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from config import HOOK_NAMES

if TYPE_CHECKING:
    from services.hooks import Hooks
    from services.webhookrelay import WebhookRelay

__all__ = ["HookCollector"]


class HookCollector(Collector):
    """Yields hook calls, hook latency and the webhook queue's state."""

    def __init__(self, hooks: Hooks, relay: WebhookRelay | None) -> None:
        self.hooks = hooks
        self.relay = relay

    def collect(self) -> Iterator[Metric]:
        """Yields the current values as metric families."""
        hooks = self.hooks
        calls = CounterMetricFamily("events_hook_calls",
                                    "Permission hook calls, by hook and result",
                                    labels=["hook", "result"])
        for (hook, result), count in sorted(hooks.calls.items()):
            calls.add_metric([hook, result], count)
        yield calls
        latency = HistogramMetricFamily(
            "events_hook_duration_seconds",
            "Seconds a permission hook call took, waiting for a slot included", labels=["hook"])
        for hook in HOOK_NAMES:
            buckets = hooks.latency[hook]
            running, cumulative = 0, []
            for bound, count in zip((*buckets.bounds, float("inf")), buckets.counts,
                                    strict=True):
                running += count
                cumulative.append(("+Inf" if bound == float("inf") else repr(bound), running))
            latency.add_metric([hook], cumulative, buckets.total)
        yield latency
        yield GaugeMetricFamily("events_hook_requests_in_flight",
                                "Permission hook requests holding a slot (--hook-concurrency)",
                                value=hooks.in_flight)
        relay = self.relay
        if relay is None:
            return
        yield GaugeMetricFamily("events_webhook_queue_depth",
                                "Webhooks recorded and not yet delivered (every node's)",
                                value=relay.queued)
        yield GaugeMetricFamily("events_webhook_oldest_age_seconds",
                                "Age of the oldest undelivered webhook",
                                value=relay.oldest_age)
        outcomes = CounterMetricFamily(
            "events_webhook_deliveries",
            "Webhook delivery attempts by this node, by outcome (failed: retried later)",
            labels=["outcome"])
        for outcome in ("delivered", "failed", "dropped"):
            outcomes.add_metric([outcome], getattr(relay, outcome))
        yield outcomes
