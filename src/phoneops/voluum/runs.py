"""Managing smart cleanings and REG searches after they ran: list, archive, restore, delete.

The original let a user archive or delete these files; here a run is a row of the core `jobs` table and its
archive/delete state a `RunState` row. Who may do it is `phoneops.core.access` (`Obj.run`: the user who
started the run, or an admin). Archiving hides a run from the usual list (it stays downloadable from the
archived list, and can be restored); deleting removes its result file and, for an uploaded list, the upload
from storage, and keeps the job row (its history) without them. A run that is queued or running is
refused: cancel it first.
"""

from __future__ import annotations

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from phoneops.core import access, storage
from phoneops.core.audit import audit
from phoneops.core.db import utcnow
from phoneops.core.errors import Conflict, NotFound
from phoneops.core.models import Job
from phoneops.core.security import Principal
from phoneops.voluum.models import RunState
from phoneops.voluum.smart import REG_KIND, SMART_KIND

ACTIVE = ("queued", "running")
STATES = ("archived", "deleted")


def get_run(session: Session, job_id: str) -> Job:
    """A smart cleaning or REG search that is not deleted; NotFound otherwise."""
    job = session.get(Job, job_id)
    if job is None or job.kind not in (SMART_KIND, REG_KIND) or state_of(session, job_id) == "deleted":
        raise NotFound(f"no smart cleaning or REG search {job_id}")
    return job


def state_of(session: Session, job_id: str) -> str | None:
    row = session.get(RunState, job_id)
    return row.state if row is not None else None


def list_runs(session: Session, *, archived: bool = False, limit: int = 30) -> list[Job]:
    """Recent runs: those not archived nor deleted, or (`archived`) the archived ones."""
    query = (select(Job).outerjoin(RunState, RunState.job_id == Job.id)
             .where(or_(Job.kind == SMART_KIND, Job.kind == REG_KIND)))
    query = query.where(RunState.state == "archived") if archived else query.where(RunState.job_id.is_(None))
    return list(session.scalars(query.order_by(Job.created_at.desc(), Job.id).limit(max(1, min(limit, 500)))))


def _owned(session: Session, actor: Principal, job_id: str, act: access.Act) -> Job:
    job = get_run(session, job_id)
    access.check(actor, access.Obj.run, act, job.created_by, what="run")
    if job.status in ACTIVE:
        raise Conflict(f"the run is {job.status}; cancel it or wait for it to end first")
    return job


def _mark(session: Session, actor: Principal, job: Job, state: str, files_removed: int = 0) -> RunState:
    row = session.get(RunState, job.id) or RunState(job_id=job.id)
    row.state, row.changed_by, row.changed_at, row.files_removed = state, actor.username, utcnow(), files_removed
    session.add(row)
    return row


def archive_run(session: Session, actor: Principal, job_id: str) -> Job:
    job = _owned(session, actor, job_id, access.Act.archive)
    if state_of(session, job.id) == "archived":
        raise Conflict("the run is already archived")
    _mark(session, actor, job, "archived")
    audit(session, actor, "voluum.run.archive", "job", job.id, {"kind": job.kind, "title": job.title})
    session.flush()
    return job


def restore_run(session: Session, actor: Principal, job_id: str) -> Job:
    job = get_run(session, job_id)
    access.check(actor, access.Obj.run, access.Act.archive, job.created_by, what="run")
    row = session.get(RunState, job.id)
    if row is None or row.state != "archived":
        raise Conflict("the run is not archived")
    session.delete(row)
    audit(session, actor, "voluum.run.restore", "job", job.id, {"kind": job.kind, "title": job.title})
    session.flush()
    return job


def delete_run(session: Session, actor: Principal, job_id: str) -> int:
    """Delete a run's result file and its uploaded list from storage; returns how many files went."""
    job = _owned(session, actor, job_id, access.Act.delete)
    removed = 0
    for file_id in (job.result.get("file_id"), job.params.get("file_id")):
        if not file_id:
            continue
        try:
            stored = storage.get_file(session, str(file_id))
        except NotFound:
            continue
        if stored.status != "deleted":
            storage.get_storage().delete(session, actor, stored)
            removed += 1
    _mark(session, actor, job, "deleted", removed)
    audit(session, actor, "voluum.run.delete", "job", job.id,
          {"kind": job.kind, "title": job.title, "files_removed": removed})
    session.flush()
    return removed
