"""Sources API: the per-source report (JSON with a per-day series) and its CSV (docs/sources.md)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from fastapi import APIRouter, Depends, Query
from fastapi.responses import StreamingResponse
from sqlalchemy.orm import Session

from phoneops.core.audit import audit
from phoneops.core.deps import DbSession, viewer
from phoneops.core.security import Principal
from phoneops.sources import service

router = APIRouter(prefix="/api/sources", tags=["sources"])


@router.get("")
def sources_report(
    date_from: dt.date | None = Query(default=None, alias="from"),
    date_to: dt.date | None = Query(default=None, alias="to"),
    session: Session = DbSession,
    _: Principal = Depends(viewer),
) -> dict[str, Any]:
    """Per source: lists, numbers, kept, opted out, and for the period HLR spend, SMS sent and cost, clicks,
    REG, FTD, revenue, cost, cost per FTD, ROI (percent), with a per-day cost and revenue series."""
    result = service.report(session, date_from, date_to)
    return {"from": str(result.start), "to": str(result.end), "sources": [
        {**line.as_dict(), "days": [{"day": d, "cost": f"{c:.2f}", "revenue": f"{r:.2f}"}
                                    for d, c, r in result.series(line)]}
        for line in result.sources]}


@router.get("/report.csv", response_class=StreamingResponse)
def sources_csv(
    date_from: dt.date | None = Query(default=None, alias="from"),
    date_to: dt.date | None = Query(default=None, alias="to"),
    session: Session = DbSession,
    actor: Principal = Depends(viewer),
) -> StreamingResponse:
    """The per-source report as CSV, one line per source."""
    result = service.report(session, date_from, date_to)
    audit(session, actor, "sources.export", "sources_report", None, {"from": str(result.start), "to": str(result.end)})
    name = f"sources_{result.start}_{result.end}.csv"
    return StreamingResponse(service.csv_text(result), media_type="text/csv",
                             headers={"Content-Disposition": f'attachment; filename="{name}"'})
