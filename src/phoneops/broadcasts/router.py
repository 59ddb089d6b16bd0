"""Broadcasts API: day imports, stats, history files, cost pushes, the live stream and analytics."""

from __future__ import annotations

import datetime as dt

from fastapi import APIRouter, Depends, Query
from fastapi.responses import StreamingResponse
from sqlalchemy.orm import Session

from phoneops.broadcasts import analytics, costs, days, live, money
from phoneops.broadcasts.provider import get_client, is_configured
from phoneops.broadcasts.schemas import (
    AnalyticsOut,
    CampaignDayOut,
    CostPushIn,
    CostPushOut,
    DayDetailOut,
    DayOut,
    ImportIn,
    RateIn,
    RateOut,
    RatesOut,
    StatOut,
    StatusOut,
)
from phoneops.core.audit import audit
from phoneops.core.deps import DbSession, admin, operator, viewer
from phoneops.core.router import file_response
from phoneops.core.schemas import JobOut
from phoneops.core.security import Principal

router = APIRouter(prefix="/api/broadcasts", tags=["broadcasts"])
DB = DbSession  # commit before the response is sent
SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


@router.get("/status", response_model=StatusOut)
def status(session: Session = DB, _: Principal = Depends(viewer)) -> StatusOut:
    from phoneops.voluum.provider import is_configured as voluum_configured

    last = days.recent_days(session, 1)
    return StatusOut(configured=is_configured(), voluum_configured=voluum_configured(),
                     last_day=last[0].day if last else None)


# --- days ----------------------------------------------------------------------------------------------


@router.post("/days", response_model=JobOut, status_code=202)
def import_day(body: ImportIn, session: Session = DB, actor: Principal = Depends(operator)) -> JobOut:
    """Queue the import of a day (then its cost push, unless `push_costs` is false). Re-importing updates."""
    return JobOut.model_validate(days.start_import(session, actor, body.day, push_costs=body.push_costs))


@router.post("/unsubscribers/sync", response_model=JobOut, status_code=202)
def sync_unsubscribers(session: Session = DB, actor: Principal = Depends(operator)) -> JobOut:
    """Queue the sync of the account's unsubscribe lists into opt-outs (docs/optouts.md); one at a time."""
    from phoneops.broadcasts.unsubscribers import start_sync

    return JobOut.model_validate(start_sync(session, actor))


@router.get("/days", response_model=list[DayOut])
def list_days(
    limit: int = Query(default=60, ge=1, le=2000), session: Session = DB, _: Principal = Depends(viewer)
) -> list[DayOut]:
    return [DayOut.model_validate(d) for d in days.recent_days(session, limit)]


@router.get("/days/{day}", response_model=DayDetailOut)
def get_day(
    day: dt.date,
    search: str | None = Query(default=None, max_length=200, description="Broadcast name contains"),
    session: Session = DB,
    _: Principal = Depends(viewer),
) -> DayDetailOut:
    """A day's import, its broadcasts (optionally filtered by name) and its campaigns."""
    record = days.get_day(session, day)
    return DayDetailOut(
        day=DayOut.model_validate(record),
        broadcasts=[StatOut.model_validate(s) for s in days.day_stats(session, day, search)],
        campaigns=[CampaignDayOut.model_validate(c) for c in days.campaign_days(session, day)],
    )


@router.get("/days/{day}/history.{fmt}", response_class=StreamingResponse)
def download_history(
    day: dt.date, fmt: str, session: Session = DB, actor: Principal = Depends(viewer)
) -> StreamingResponse:
    """The day's history file, `csv` or `xlsx` (spreadsheet formulas neutralised)."""
    return file_response(session, actor, days.history_file(session, day, fmt))


# --- costs ---------------------------------------------------------------------------------------------


@router.post("/costs", response_model=list[CostPushOut])
def push_costs(body: CostPushIn, session: Session = DB, actor: Principal = Depends(operator)
               ) -> list[CostPushOut]:
    """Push an imported day's cost per campaign to Voluum now; an unchanged cost is not sent again."""
    return [CostPushOut.model_validate(p) for p in costs.push_day_costs(session, actor, body.day, force=body.force)]


@router.get("/costs", response_model=list[CostPushOut])
def list_costs(
    day: dt.date | None = None,
    limit: int = Query(default=500, ge=1, le=5000),
    session: Session = DB,
    _: Principal = Depends(viewer),
) -> list[CostPushOut]:
    return [CostPushOut.model_validate(p) for p in costs.cost_pushes(session, day, limit)]


# --- exchange rates (docs/money.md) ----------------------------------------------------------------------


@router.get("/rates", response_model=RatesOut)
def list_rates(session: Session = DB, _: Principal = Depends(viewer)) -> RatesOut:
    """The billing and tracker currencies and the admins' rates, newest day first."""
    billed, tracker = money.billing_currency(), money.tracker_currency()
    return RatesOut(billing_currency=billed, tracker_currency=tracker, needed=billed != tracker,
                    rates=[RateOut.model_validate(r) for r in money.list_rates(session)])


@router.put("/rates/{day}", response_model=RateOut)
def set_rate(day: str, body: RateIn, session: Session = DB, actor: Principal = Depends(admin)) -> RateOut:
    """Set or replace one day's rate (billing currency → tracker currency); audited with the previous value."""
    return RateOut.model_validate(money.set_rate(session, actor, day, body.rate))


@router.delete("/rates/{day}", status_code=204)
def delete_rate(day: str, session: Session = DB, actor: Principal = Depends(admin)) -> None:
    money.delete_rate(session, actor, day)


# --- live ----------------------------------------------------------------------------------------------


@router.get("/live", response_class=StreamingResponse)
def live_stream(
    search: str | None = Query(default=None, max_length=200, description="Broadcast name contains"),
    every: float | None = Query(default=None, ge=0, le=3600, description="Seconds between passes (min 2); "
                                "none: one pass"),
    max_seconds: float = Query(default=live.MAX_SECONDS, ge=0, le=live.MAX_SECONDS),
    day: dt.date | None = Query(default=None, description="Another day than today (UTC)"),
    _: Principal = Depends(viewer),
) -> StreamingResponse:
    """Today's broadcasts as server-sent events (`row`, `group`, `pass`, `error`, then `done`)."""
    client = get_client()  # 503 before the stream starts when MessageWhiz is not configured
    body = live.stream(client, search, every=every, max_seconds=max_seconds, day=day)
    return StreamingResponse(body, media_type="text/event-stream", headers=SSE_HEADERS)


# --- analytics -----------------------------------------------------------------------------------------


@router.get("/analytics", response_model=AnalyticsOut)
def get_analytics(
    date_from: dt.date | None = Query(default=None, alias="from"),
    date_to: dt.date | None = Query(default=None, alias="to"),
    campaign: str | None = Query(default=None, max_length=64, description="a campaign id, or 'no campaign'"),
    session: Session = DB,
    _: Principal = Depends(viewer),
) -> AnalyticsOut:
    """Cost, clicks, CTR, delivery and conversions per day and per campaign (default: the last 30 days)."""
    return AnalyticsOut.model_validate(analytics.analytics(session, date_from, date_to, campaign).as_dict())


@router.get("/analytics.csv", response_class=StreamingResponse)
def analytics_csv(
    date_from: dt.date | None = Query(default=None, alias="from"),
    date_to: dt.date | None = Query(default=None, alias="to"),
    campaign: str | None = Query(default=None, max_length=64),
    by: str = Query(default="days", pattern="^(days|campaigns)$"),
    session: Session = DB,
    actor: Principal = Depends(viewer),
) -> StreamingResponse:
    """The analytics as CSV, per day or per campaign."""
    result = analytics.analytics(session, date_from, date_to, campaign)
    audit(session, actor, "broadcasts.analytics.export", "broadcast_analytics", by,
          {"from": str(result.start), "to": str(result.end), "campaign": result.campaign})
    name = f"broadcasts_{by}_{result.start}_{result.end}.csv"
    return StreamingResponse(analytics.csv_rows(result, by), media_type="text/csv",
                             headers={"Content-Disposition": f'attachment; filename="{name}"'})
