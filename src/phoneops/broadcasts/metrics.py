"""Prometheus gauges of the broadcasts domain: the last imported day, its cost, cost pushes by outcome."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import GaugeMetricFamily
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from phoneops.broadcasts.models import BroadcastCostPush, BroadcastDay
from phoneops.core.db import utcnow


def collect(session: Session) -> Iterator[GaugeMetricFamily]:
    last = session.scalars(select(BroadcastDay).order_by(BroadcastDay.day.desc()).limit(1)).first()
    age = GaugeMetricFamily("phoneops_broadcasts_last_day_age_days", "Days since the last imported broadcast day")
    cost = GaugeMetricFamily("phoneops_broadcasts_last_day_cost", "Broadcast cost of the last imported day")
    notes = GaugeMetricFamily("phoneops_broadcasts_last_day_with_notes",
                              "Broadcasts of the last imported day kept with a note (no link or campaign)")
    if last is not None:
        age.add_metric([], (utcnow().date() - last.day).days)
        cost.add_metric([], float(last.cost))
        notes.add_metric([], last.with_notes)
    yield age
    yield cost
    yield notes
    pushes = GaugeMetricFamily("phoneops_broadcasts_cost_pushes", "Campaign-day cost pushes by last outcome",
                               labels=["outcome"])
    for outcome, count in session.execute(
        select(BroadcastCostPush.outcome, func.count(BroadcastCostPush.id)).group_by(BroadcastCostPush.outcome)
    ):
        pushes.add_metric([str(outcome)], int(count))
    yield pushes
