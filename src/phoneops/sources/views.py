"""The sources page: which lists pay, per source for a period, with a cost and revenue chart per source."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy.orm import Session

from phoneops.core.deps import DbSession, page_viewer
from phoneops.core.errors import ValidationFailed
from phoneops.core.security import Principal
from phoneops.sources import service
from phoneops.ui.render import render

router = APIRouter(include_in_schema=False)


@router.get("/sources", response_class=HTMLResponse)
def page(
    request: Request,
    date_from: str = Query(default="", max_length=10),
    date_to: str = Query(default="", max_length=10),
    session: Session = DbSession,
    principal: Principal = Depends(page_viewer),
) -> Response:
    error = None
    try:
        result = service.report(session, date_from or None, date_to or None)
    except ValidationFailed as exc:
        error = exc.message
        result = service.report(session)
    response = render(request, "sources/index.html", principal, result=result, error=error)
    if error:
        response.status_code = 422
    return response
