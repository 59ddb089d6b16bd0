"""The delivery job and the job-end listener that turns finished and failed jobs into webhook events."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from phoneops.core.jobs import JobContext, job_handler, on_job_end
from phoneops.webhooks import service


@job_handler(service.DELIVER_KIND, title="Webhook delivery", origin=lambda p: ("Webhooks", "/admin/webhooks"))
def deliver(ctx: JobContext) -> dict[str, Any]:
    return {"status": service.deliver(int(ctx.params["delivery_id"]))}


@on_job_end
def job_ended(session: Session, job_id: str, kind: str, status: str, error: str | None) -> None:
    if kind == service.DELIVER_KIND:
        return  # a delivery's own end is never an event (no loops)
    event = "job.finished" if status == "succeeded" else "job.failed"
    service.emit(session, event, {"job_id": job_id, "kind": kind, "status": status, "error": error})
