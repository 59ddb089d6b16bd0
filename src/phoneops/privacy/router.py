"""Privacy API (admin only): erase a number, the erasure ledger, retention settings and purge.

Erasure is admin only: it removes data every user relies on, across every domain, and cannot be undone.
"""

from __future__ import annotations

from fastapi import APIRouter, Depends, Path, Query
from sqlalchemy.orm import Session

from phoneops.core.audit import audit
from phoneops.core.deps import DbSession, admin
from phoneops.core.jobs import create_job
from phoneops.core.schemas import JobOut
from phoneops.core.security import Principal
from phoneops.privacy import erase, retention
from phoneops.privacy.schemas import ErasedOut, EraseIn, ErasureOut, PurgeIn, RetentionOut
from phoneops.privacy.tasks import PURGE_KIND
from phoneops.settings import get_settings

router = APIRouter(prefix="/api/privacy", tags=["privacy"])


@router.post("/erasures", response_model=ErasureOut, status_code=202)
def request_erasure(body: EraseIn, session: Session = DbSession, actor: Principal = Depends(admin)) -> ErasureOut:
    """Erase one number everywhere (rows, text, stored files) in a background job; 422 if it does not parse."""
    return ErasureOut.model_validate(erase.request_erasure(session, actor, body.number, body.region))


@router.get("/erasures", response_model=list[ErasureOut])
def list_erasures(
    limit: int = Query(default=100, ge=1, le=1000), session: Session = DbSession, _: Principal = Depends(admin)
) -> list[ErasureOut]:
    return [ErasureOut.model_validate(r) for r in erase.list_erasures(session, limit)]


@router.get("/erasures/{erasure_id}", response_model=ErasureOut)
def get_erasure(
    erasure_id: int = Path(ge=1, le=2**31 - 1), session: Session = DbSession, _: Principal = Depends(admin)
) -> ErasureOut:
    return ErasureOut.model_validate(erase.get_erasure(session, erasure_id))


@router.get("/erased", response_model=ErasedOut)
def was_erased(
    number: str = Query(min_length=1, max_length=64),
    region: str | None = Query(default=None, max_length=2),
    session: Session = DbSession,
    _: Principal = Depends(admin),
) -> ErasedOut:
    """Whether a number was erased (the ledger keeps its blind index only)."""
    check = erase.was_erased(session, number, region)
    return ErasedOut(erased=check.erased, last_erased_at=check.last_erased_at, requests=check.requests)


@router.get("/retention", response_model=RetentionOut)
def retention_settings(_: Principal = Depends(admin)) -> RetentionOut:
    settings = get_settings()
    tracker, hlr = retention.cutoffs()
    return RetentionOut(
        tracker_events_days=settings.retention_tracker_events_days, hlr_raw_days=settings.retention_hlr_raw_days,
        tracker_cutoff=tracker.isoformat() if tracker else None, hlr_cutoff=hlr.isoformat() if hlr else None,
    )


@router.post("/purge", response_model=JobOut, status_code=202)
def purge(body: PurgeIn, session: Session = DbSession, actor: Principal = Depends(admin)) -> JobOut:
    """Purge raw rows past their retention now (a job; `dry_run` only counts)."""
    job = create_job(session, actor, PURGE_KIND, {"dry_run": body.dry_run, "actor": actor.username},
                     title="Retention purge (dry run)" if body.dry_run else "Retention purge")
    audit(session, actor, "privacy.purge.start", "job", job.id, {"dry_run": body.dry_run})
    return JobOut.model_validate(job)
