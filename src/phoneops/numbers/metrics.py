"""Prometheus gauges for the lists (total and recent additions per list) and for which path bulk blind indexes
take in this process (docs/operations.md, "Blind indexes")."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import GaugeMetricFamily
from sqlalchemy.orm import Session

from phoneops.numbers.crypto import blind_index_backend
from phoneops.numbers.lists import list_counts


def collect(session: Session) -> Iterator[GaugeMetricFamily]:
    gauge = GaugeMetricFamily("phoneops_list_numbers", "Numbers per list and window", labels=["list", "window"])
    for name, counts in list_counts(session).items():
        gauge.add_metric([name, "total"], counts["total"])
        gauge.add_metric([name, "24h"], counts["last_24h"])
        gauge.add_metric([name, "7d"], counts["last_7d"])
    yield gauge
    native = GaugeMetricFamily("phoneops_blind_index_native",
                               "1 when bulk blind indexes use the native module, 0 when they fall back to the "
                               "slower Python loop (the install could not build it)")
    native.add_metric([], 1 if blind_index_backend() == "native" else 0)
    yield native
