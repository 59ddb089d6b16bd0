"""Prometheus gauges of the Voluum domain: conversions, traffic days, live events, dead letters, cost pushes."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import GaugeMetricFamily
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from phoneops.core.db import utcnow
from phoneops.voluum.live import counts as live_counts
from phoneops.voluum.models import Conversion, ConversionSync, CostPush, TrafficDay


def collect(session: Session) -> Iterator[GaugeMetricFamily]:
    conversions = GaugeMetricFamily("phoneops_voluum_conversions", "Conversions stored, by kind", labels=["kind"])
    for kind, count in session.execute(select(Conversion.kind, func.count(Conversion.id)).group_by(Conversion.kind)):
        conversions.add_metric([str(kind)], int(count))
    yield conversions
    last_day = session.scalar(select(func.max(TrafficDay.day)))
    days = GaugeMetricFamily("phoneops_voluum_traffic_last_day_age_days", "Days since the last synced traffic day")
    if last_day is not None:
        days.add_metric([], (utcnow().date() - last_day).days)
    yield days
    last_sync = session.scalar(
        select(func.max(ConversionSync.finished_at)).where(ConversionSync.status == "succeeded")
    )
    age = GaugeMetricFamily("phoneops_voluum_conversions_sync_age_seconds",
                            "Seconds since the last good conversion sync")
    if last_sync is not None:
        age.add_metric([], (utcnow() - last_sync).total_seconds())
    yield age
    live = GaugeMetricFamily("phoneops_voluum_live", "Live events and dead letters", labels=["what"])
    for name, value in live_counts(session).items():
        live.add_metric([name], value)
    yield live
    pushes = GaugeMetricFamily("phoneops_voluum_cost_pushes", "Cost pushes by status", labels=["status"])
    for status, count in session.execute(select(CostPush.status, func.count(CostPush.id)).group_by(CostPush.status)):
        pushes.add_metric([str(status)], int(count))
    yield pushes
