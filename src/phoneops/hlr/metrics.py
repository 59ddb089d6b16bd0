"""Prometheus gauges for HLR lookups: runs by status, paid results by live status, credits, numbers in review."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import GaugeMetricFamily
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from phoneops.hlr.models import REVIEW, HlrLookup, HlrLookupItem, HlrResult, HlrRiskyOperator


def collect(session: Session) -> Iterator[GaugeMetricFamily]:
    lookups = GaugeMetricFamily("phoneops_hlr_lookups", "HLR lookups by status", labels=["status"])
    for status, count in session.execute(select(HlrLookup.status, func.count(HlrLookup.id)).group_by(HlrLookup.status)):
        lookups.add_metric([str(status)], int(count))
    yield lookups
    results = GaugeMetricFamily("phoneops_hlr_results", "Stored HLR results by live status", labels=["live_status"])
    credits = 0.0
    for status, count, spent in session.execute(
        select(HlrResult.live_status, func.count(HlrResult.id), func.coalesce(func.sum(HlrResult.credits_spent), 0))
        .group_by(HlrResult.live_status)
    ):
        results.add_metric([str(status or "none")], int(count))
        credits += float(spent)
    yield results
    spent_gauge = GaugeMetricFamily("phoneops_hlr_credits_spent", "Credits spent on HLR lookups (all time)")
    spent_gauge.add_metric([], credits)
    yield spent_gauge
    review = GaugeMetricFamily("phoneops_hlr_numbers_in_review", "Numbers whose paid call is in doubt (not resent)")
    review.add_metric([], int(session.scalar(select(func.count(HlrLookupItem.id)).where(
        HlrLookupItem.state == REVIEW)) or 0))
    yield review
    risky = GaugeMetricFamily("phoneops_hlr_risky_operators", "Entries on the risky-operator list")
    risky.add_metric([], int(session.scalar(select(func.count(HlrRiskyOperator.id))) or 0))
    yield risky
