"""Prometheus metrics, computed from the database at scrape time (right with many processes)."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import func, select

from phoneops.core.db import session_scope
from phoneops.core.jobs import job_counts
from phoneops.core.models import User
from phoneops.registry import domain_modules


class CoreCollector(Collector):
    def collect(self) -> Iterator[GaugeMetricFamily]:
        with session_scope() as session:
            jobs = GaugeMetricFamily("phoneops_jobs", "Jobs by status", labels=["status"])
            for status, count in sorted(job_counts(session).items()):
                jobs.add_metric([status], count)
            yield jobs
            users = GaugeMetricFamily("phoneops_users_active", "Active users")
            users.add_metric([], session.scalar(select(func.count(User.id)).where(User.is_active.is_(True))) or 0)
            yield users
            for module in domain_modules("metrics"):
                yield from module.collect(session)


def render_metrics() -> tuple[bytes, str]:
    registry = CollectorRegistry()
    registry.register(CoreCollector())
    return generate_latest(registry), CONTENT_TYPE_LATEST
