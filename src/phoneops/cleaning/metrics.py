"""Prometheus gauges for list cleaning: files by status, runs by outcome, size of the main database."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import GaugeMetricFamily
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from phoneops.cleaning.models import CleaningFile, CleaningRun
from phoneops.cleaning.used import used_count


def collect(session: Session) -> Iterator[GaugeMetricFamily]:
    files = GaugeMetricFamily("phoneops_cleaning_files", "Cleaning and encryption files by status",
                              labels=["purpose", "status"])
    for purpose, status, count in session.execute(
        select(CleaningFile.purpose, CleaningFile.status, func.count(CleaningFile.id))
        .group_by(CleaningFile.purpose, CleaningFile.status)
    ):
        files.add_metric([purpose, status], count)
    yield files
    runs = GaugeMetricFamily("phoneops_cleaning_runs", "Runs by kind and status", labels=["kind", "status"])
    for kind, status, count in session.execute(
        select(CleaningRun.kind, CleaningRun.status, func.count(CleaningRun.id))
        .group_by(CleaningRun.kind, CleaningRun.status)
    ):
        runs.add_metric([kind, status], count)
    yield runs
    used = GaugeMetricFamily("phoneops_used_numbers", "Numbers in the main database (used before)")
    used.add_metric([], used_count(session))
    yield used
