"""Prometheus metrics, computed from the database at scrape time (right with many processes).

Core knows no domain: the app passes each domain's `metrics.collect` in (`phoneops.app`), see docs/architecture.md.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from phoneops.core.db import session_scope
from phoneops.core.jobs import job_counts
from phoneops.core.models import User

MetricsSource = Callable[[Session], Iterable[GaugeMetricFamily]]


class CoreCollector(Collector):
    def __init__(self, sources: Sequence[MetricsSource]) -> None:
        self.sources = sources

    def collect(self) -> Iterator[GaugeMetricFamily]:
        with session_scope() as session:
            jobs = GaugeMetricFamily("phoneops_jobs", "Jobs by status", labels=["status"])
            for status, count in sorted(job_counts(session).items()):
                jobs.add_metric([status], count)
            yield jobs
            users = GaugeMetricFamily("phoneops_users_active", "Active users")
            users.add_metric([], session.scalar(select(func.count(User.id)).where(User.is_active.is_(True))) or 0)
            yield users
            for source in self.sources:
                yield from source(session)


def render_metrics(sources: Sequence[MetricsSource] = ()) -> tuple[bytes, str]:
    """The core metrics, then those of each source (a domain's `collect(session)`), in Prometheus' text format."""
    registry = CollectorRegistry()
    registry.register(CoreCollector(sources))
    return generate_latest(registry), CONTENT_TYPE_LATEST
