"""List exports to CSV as background jobs: plaintext numbers for admins only, every export audited."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from phoneops.core.audit import audit
from phoneops.core.csvio import csv_lines
from phoneops.core.db import session_scope
from phoneops.core.jobs import JobContext, create_job, job_handler, list_jobs
from phoneops.core.models import Job
from phoneops.core.security import Principal, Role
from phoneops.core.storage import get_storage
from phoneops.numbers.lists import LISTS
from phoneops.numbers.models import PhoneNumber
from phoneops.numbers.vault import get_vault, mask

KIND = "numbers.export"
HEADER = ["number", "country", "status", "authority", "reason", "source", "listed_at"]
PAGE = 5000


def start_export(session: Session, actor: Principal, status: str) -> Job:
    from phoneops.core.errors import ValidationFailed

    if status not in LISTS:
        raise ValidationFailed(f"status must be one of {', '.join(LISTS)}")
    reveal = actor.can(Role.admin)
    job = create_job(
        session,
        actor,
        KIND,
        {"status": status, "plaintext": reveal, "actor": actor.username},
        title=f"Export {status}{' (plaintext)' if reveal else ' (masked)'}",
    )
    audit(session, actor, "numbers.export", "job", job.id, {"status": status, "plaintext": reveal})
    return job


def exports(session: Session, limit: int = 50) -> list[Job]:
    return list_jobs(session, kind=KIND, limit=limit)


@job_handler(KIND, title="List export", max_attempts=3, origin=lambda p: ("Exports", "/numbers/exports"))
def _run_export(ctx: JobContext) -> dict[str, Any]:
    status = str(ctx.params["status"])
    reveal = bool(ctx.params.get("plaintext"))
    vault = get_vault()
    actor = Principal(ctx.created_by, str(ctx.params.get("actor", "system")), Role.admin, via="job")
    with session_scope() as session:
        total = session.query(PhoneNumber).filter(PhoneNumber.status == status).count()
    ctx.progress(done=0, total=total)

    def rows() -> Any:
        last_id, done = 0, 0
        while True:
            with session_scope() as session:
                page = session.scalars(
                    select(PhoneNumber)
                    .where(PhoneNumber.status == status, PhoneNumber.id > last_id)
                    .order_by(PhoneNumber.id)
                    .limit(PAGE)
                ).all()
            if not page:
                return
            for row in page:
                e164 = vault.open(row.sealed, row.blind_index)
                yield [
                    e164 if reveal else mask(e164),
                    row.country,
                    row.status,
                    row.authority,
                    row.reason,
                    row.source,
                    row.listed_at.isoformat() if row.listed_at else "",
                ]
            last_id, done = page[-1].id, done + len(page)
            ctx.progress(done=done)

    count = 0
    with session_scope() as session:
        with get_storage().writer(
            session, actor, kind="export", original_name=f"{status}_export.csv", content_type="text/csv"
        ) as (out, created):
            for line in csv_lines(HEADER, rows()):
                out.write(line.encode("utf-8"))
                count += 1
        file_id = created[0].id
    return {"file_id": file_id, "rows": max(0, count - 1), "status": status, "plaintext": reveal}
