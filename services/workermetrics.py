"""`/metrics` under `--workers`: one scrape answers for every worker on the port.

Prometheus scrapes one address, and SO_REUSEPORT hands each scrape to one of the workers.
Each worker therefore also serves its own registry on a loopback port it announces with its
node stats (hub/redis/stats.py); the worker a scrape reaches reads its siblings' (same host,
same port) and answers the union, every sample labelled `worker="<n>"`. Sums across workers
are then the usual PromQL `sum without (worker) (...)`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable, Iterator
from typing import Any

from prometheus_client import generate_latest
from prometheus_client.core import Metric
from prometheus_client.parser import text_string_to_metric_families
from tornado.httpclient import AsyncHTTPClient

__all__ = ["merge", "sibling_urls", "WORKER_LABEL", "FETCH_TIMEOUT"]

log = logging.getLogger("metrics")

WORKER_LABEL = "worker"
FETCH_TIMEOUT = 2.0  # seconds a sibling worker may take to answer


class _Families:
    """A collector that yields fixed metric families (for generate_latest)."""

    def __init__(self, families: Iterable[Metric]) -> None:
        self.families = list(families)

    def collect(self) -> Iterator[Metric]:
        yield from self.families


def merge(expositions: dict[str, str]) -> bytes:
    """Returns one exposition holding every worker's samples, labelled with its worker."""
    families: dict[str, Metric] = {}
    for worker, text in sorted(expositions.items()):
        for family in text_string_to_metric_families(text):
            merged = families.get(family.name)
            if merged is None:
                merged = families[family.name] = Metric(family.name, family.documentation,
                                                        family.type, family.unit)
            for sample in family.samples:
                merged.add_sample(sample.name, {**sample.labels, WORKER_LABEL: worker},
                                  sample.value, sample.timestamp, sample.exemplar)
    return generate_latest(_Families(families.values()))  # type: ignore[arg-type]


def sibling_urls(nodes: list[dict[str, Any]], host: str, port: int) -> dict[str, str]:
    """Returns {worker number: metrics URL} of the workers of one host and port."""
    return {str(n["worker"]): n["metrics_url"] for n in nodes
            if n.get("metrics_url") and n.get("host") == host and n.get("port") == port}


async def fetch_all(urls: dict[str, str]) -> dict[str, str]:
    """Fetches each worker's own exposition; a worker that does not answer is left out."""
    client = AsyncHTTPClient()

    async def one(worker: str, url: str) -> tuple[str, str | None]:
        try:
            response = await client.fetch(url, request_timeout=FETCH_TIMEOUT)
            return worker, response.body.decode("utf-8")
        except Exception as exc:  # a dying or restarting sibling: its samples are missing
            log.warning("worker %s did not answer its metrics (%s)", worker, exc)
            return worker, None

    results = await asyncio.gather(*(one(w, u) for w, u in urls.items()))
    return {worker: text for worker, text in results if text is not None}
