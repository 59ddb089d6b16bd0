"""Privacy page (admin): erase a number, the erasure ledger, retention settings."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import Response
from sqlalchemy.orm import Session

from phoneops.core.deps import DbSession, page_admin
from phoneops.core.errors import AppError
from phoneops.core.security import Principal
from phoneops.numbers.links import linked
from phoneops.privacy import erase, retention
from phoneops.settings import get_settings
from phoneops.ui.flash import redirect_with
from phoneops.ui.render import render

router = APIRouter(include_in_schema=False)


def _page(request: Request, session: Session, principal: Principal, *, error: str | None = None,
          number: str = "", region: str = "", status_code: int = 200) -> Response:
    settings = get_settings()
    tracker, hlr = retention.cutoffs()
    erasures = erase.list_erasures(session, 100)
    return render(
        request, "privacy/overview.html", principal, status_code=status_code,
        erasures=erasures, linked=linked(session, [e.blind_index.hex() for e in erasures]), error=error, number=number,
        region=region or settings.default_region,
        tracker_days=settings.retention_tracker_events_days, hlr_days=settings.retention_hlr_raw_days,
        tracker_cutoff=tracker, hlr_cutoff=hlr,
    )


@router.get("/privacy")
def overview(request: Request, session: Session = DbSession, principal: Principal = Depends(page_admin)) -> Response:
    return _page(request, session, principal)


@router.post("/privacy/erase")
def erase_number(
    request: Request,
    number: str = Form(default="", max_length=64),
    region: str = Form(default="", max_length=2),
    confirm: str = Form(default=""),
    session: Session = DbSession,
    principal: Principal = Depends(page_admin),
) -> Response:
    try:
        if confirm != "yes":
            raise AppError("tick the box to confirm: erasure cannot be undone")
        erasure = erase.request_erasure(session, principal, number, region or None)
    except AppError as exc:
        session.rollback()
        return _page(request, session, principal, error=exc.message, number=number, region=region,
                     status_code=exc.status_code)
    return redirect_with("/privacy", "Erasure requested: every stored trace of the number is being removed.",
                         link=("Follow the job", f"/jobs/{erasure.job_id}") if erasure.job_id else None)
