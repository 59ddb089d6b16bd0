"""Background work of the Ongage domain.

Jobs: a conversion sync run on demand (`ongage.conversions`) and the worker carrying a CSV job
(`ongage.csv_job`, resumable: see `service_csv`). Periodic: every minute, the conversion sync sends what is
new or due for a retry (nothing while Ongage is not configured or nothing is due).
"""

from __future__ import annotations

from typing import Any

from phoneops.core.jobs import JobContext, job_handler, periodic
from phoneops.ongage import service_csv, service_sync, unsubscribes  # noqa: F401  (unsubscribes: its job)


@job_handler(service_sync.KIND, title="Ongage conversion sync", max_attempts=3, origin=lambda p: ("Ongage", "/ongage"))
def sync_job(ctx: JobContext) -> dict[str, Any]:
    return service_sync.run_job(ctx)


@job_handler(service_csv.KIND, title="Ongage CSV job", max_attempts=20,
             origin=lambda p: (f"CSV job {p['csv_job_id']}", f"/ongage/csv-jobs/{int(p['csv_job_id'])}"))
def csv_job(ctx: JobContext) -> dict[str, Any]:
    return service_csv.run_worker(ctx)


@periodic("ongage.conversions", minute="*")
def sync_tick() -> None:
    """Every minute: new conversions of the configured countries, and failed contacts whose back-off passed."""
    service_sync.periodic_sync()
