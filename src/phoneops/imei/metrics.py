"""IMEI figures for /metrics, computed from the database at scrape time."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import GaugeMetricFamily
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from phoneops.imei.models import ImeiOrder
from phoneops.imei.submission import spend_today
from phoneops.settings import get_settings


def collect(session: Session) -> Iterator[GaugeMetricFamily]:
    orders = GaugeMetricFamily("phoneops_imei_orders", "IMEI order rows by state and provider status",
                               labels=["state", "status"])
    rows = session.execute(
        select(ImeiOrder.state, ImeiOrder.status, func.count(ImeiOrder.id)).group_by(ImeiOrder.state, ImeiOrder.status)
    )
    for state, status, count in rows:
        orders.add_metric([str(state), str(status or "")], int(count))
    yield orders
    spend = GaugeMetricFamily("phoneops_imei_spend_today", "Credits of IMEI orders placed today (UTC)")
    spend.add_metric([], float(spend_today(session)))
    yield spend
    budget = GaugeMetricFamily("phoneops_imei_daily_budget", "IMEI daily budget (IMEI_DAILY_BUDGET)")
    budget.add_metric([], float(get_settings().imei_daily_budget))
    yield budget
