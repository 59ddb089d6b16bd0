"""Prometheus gauges of the Ongage domain: conversion contacts by status, CSV jobs by status, rows left."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import GaugeMetricFamily
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from phoneops.ongage.models import OngageCsvJob, OngageCsvRow
from phoneops.ongage.service_sync import counts


def collect(session: Session) -> Iterator[GaugeMetricFamily]:
    contacts = GaugeMetricFamily("phoneops_ongage_conversion_contacts", "Converted numbers' contacts by status",
                                 labels=["status"])
    for status, count in counts(session).items():
        contacts.add_metric([status], count)
    yield contacts
    jobs = GaugeMetricFamily("phoneops_ongage_csv_jobs", "Ongage CSV jobs by status", labels=["status"])
    for status, count in session.execute(select(OngageCsvJob.status, func.count(OngageCsvJob.id))
                                         .group_by(OngageCsvJob.status)):
        jobs.add_metric([str(status)], int(count))
    yield jobs
    left = GaugeMetricFamily("phoneops_ongage_csv_rows_left", "CSV job rows not sent yet (pending or in flight)")
    left.add_metric([], session.scalar(select(func.count(OngageCsvRow.id))
                                       .where(OngageCsvRow.status.in_(("pending", "sending")))) or 0)
    yield left
