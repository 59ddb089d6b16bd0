"""Background work of the HLR domain: the lookup job (see `phoneops.hlr.jobs`) and the estimate job
(`phoneops.hlr.estimates`)."""

from __future__ import annotations

from typing import Any

from phoneops.core.jobs import JobContext, job_handler
from phoneops.hlr.estimates import ESTIMATE_KIND, run_estimate
from phoneops.hlr.jobs import LookupRunner
from phoneops.hlr.lookups import KIND


@job_handler(KIND, title="HLR lookup", max_attempts=25,
             origin=lambda p: (f"HLR lookup {p['lookup_id']}", f"/hlr/lookups/{int(p['lookup_id'])}"))
def lookup_job(ctx: JobContext) -> dict[str, Any]:
    return LookupRunner(ctx, int(ctx.params["lookup_id"])).run()


@job_handler(ESTIMATE_KIND, title="HLR estimate", max_attempts=3, origin=lambda p: ("HLR", "/hlr"))
def estimate_job(ctx: JobContext) -> dict[str, Any]:
    return run_estimate(ctx)
