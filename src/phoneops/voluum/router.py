"""Voluum API: traffic and conversion syncs, lookups, costs, live events, smart cleaning, REG search, find."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Depends, Form, Query, Request, UploadFile
from fastapi.responses import StreamingResponse
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from phoneops.core import storage
from phoneops.core.deps import DbSession, operator, viewer
from phoneops.core.errors import PayloadTooLarge
from phoneops.core.router import file_response
from phoneops.core.schemas import JobOut
from phoneops.core.security import Principal
from phoneops.settings import get_settings
from phoneops.voluum import conversions, costs, find, live, lookups, runs, smart, traffic
from phoneops.voluum.provider import is_configured, parse_day, region_or_default
from phoneops.voluum.schemas import (
    CampaignOut,
    ConversionSyncOut,
    CostIn,
    CostPushOut,
    CostResultOut,
    DeadLetterOut,
    IngestOut,
    LiveCountsOut,
    NumberReportOut,
    OfferOut,
    RangeIn,
    RefreshOut,
    RegSearchIn,
    SmartCleanIn,
    StatusOut,
    TrafficDayOut,
)

router = APIRouter(prefix="/api/voluum", tags=["voluum"])


@router.get("/status", response_model=StatusOut)
def status(session: Session = DbSession, _: Principal = Depends(viewer)) -> StatusOut:
    settings = get_settings()
    days = traffic.recent_days(session, 1)
    syncs = conversions.recent_syncs(session, 1)
    return StatusOut(
        configured=is_configured(settings), sqs_configured=bool(settings.sqs_queue_url),
        currency=settings.voluum_currency, traffic_sources=list(settings.voluum_traffic_source_ids),
        last_traffic_day=days[0].day if days else None,
        last_conversion_sync=ConversionSyncOut.model_validate(syncs[0]) if syncs else None,
        live=LiveCountsOut.model_validate(live.counts(session)),
    )


# --- traffic -------------------------------------------------------------------------------------------


@router.post("/traffic/sync", response_model=JobOut, status_code=202)
def sync_traffic(body: RangeIn, session: Session = DbSession, actor: Principal = Depends(operator)) -> JobOut:
    """Queue a traffic sync of whole days (re-syncing a day replaces its rows)."""
    return JobOut.model_validate(traffic.start_sync(session, actor, body.from_, body.to))


@router.get("/traffic/days", response_model=list[TrafficDayOut])
def traffic_days(
    limit: int = Query(default=60, ge=1, le=1000), session: Session = DbSession, _: Principal = Depends(viewer)
) -> list[TrafficDayOut]:
    return [TrafficDayOut.model_validate(d) for d in traffic.recent_days(session, limit)]


@router.get("/traffic/days/{day}", response_model=TrafficDayOut)
def traffic_day(day: str, session: Session = DbSession, _: Principal = Depends(viewer)) -> TrafficDayOut:
    from phoneops.core.errors import NotFound

    found = traffic.day_result(session, parse_day(day))
    if found is None:
        raise NotFound(f"{day} has not been synced")
    return TrafficDayOut.model_validate(found)


# --- conversions and lookups ---------------------------------------------------------------------------


@router.post("/conversions/sync", response_model=JobOut, status_code=202)
def sync_conversions(
    body: RangeIn, session: Session = DbSession, actor: Principal = Depends(operator)
) -> JobOut:
    """Queue a conversions sync of whole days (the periodic sync covers the last hours every 5 minutes)."""
    return JobOut.model_validate(conversions.start_sync(session, actor, body.from_, body.to))


@router.get("/conversions/syncs", response_model=list[ConversionSyncOut])
def conversion_syncs(
    limit: int = Query(default=20, ge=1, le=500), session: Session = DbSession, _: Principal = Depends(viewer)
) -> list[ConversionSyncOut]:
    return [ConversionSyncOut.model_validate(s) for s in conversions.recent_syncs(session, limit)]


@router.get("/conversions/counts")
def conversion_counts(
    days: int = Query(default=30, ge=1, le=3660), session: Session = DbSession, _: Principal = Depends(viewer)
) -> dict[str, dict[str, int]]:
    """REG and FTD per country over the last `days` days ("unknown": campaign names without a country)."""
    since = dt.datetime.now(dt.UTC) - dt.timedelta(days=days)
    return conversions.counts_by_country(session, since)


@router.get("/offers", response_model=list[OfferOut])
def offers(
    country: str | None = Query(default=None, max_length=7),
    date_from: dt.date | None = Query(default=None, alias="from"),
    date_to: dt.date | None = Query(default=None, alias="to"),
    session: Session = DbSession,
    _: Principal = Depends(viewer),
) -> list[OfferOut]:
    return [OfferOut.model_validate(o) for o in smart.offers_for(session, country, date_from, date_to)]


@router.get("/campaigns", response_model=list[CampaignOut])
def campaigns(session: Session = DbSession, _: Principal = Depends(viewer)) -> list[CampaignOut]:
    return [CampaignOut.model_validate(c) for c in lookups.as_dicts(lookups.list_campaigns(session))]


@router.post("/lookups/refresh", response_model=RefreshOut)
def refresh_lookups(session: Session = DbSession, actor: Principal = Depends(operator)) -> RefreshOut:
    return RefreshOut.model_validate(lookups.refresh(session, actor).as_dict())


# --- costs ---------------------------------------------------------------------------------------------


@router.post("/costs", response_model=list[CostResultOut])
def push_costs(body: CostIn, session: Session = DbSession, actor: Principal = Depends(operator)
               ) -> list[CostResultOut]:
    """Push each campaign's cost for a day, in VOLUUM_CURRENCY; the outcome per campaign is stored."""
    results = costs.push_costs(session, actor, body.day, [(i.campaign_id, i.cost) for i in body.items],
                               force=body.force)
    return [CostResultOut.model_validate(r.as_dict()) for r in results]


@router.get("/costs", response_model=list[CostPushOut])
def cost_pushes(
    day: dt.date | None = None, session: Session = DbSession, _: Principal = Depends(viewer)
) -> list[CostPushOut]:
    return [CostPushOut.model_validate(p) for p in costs.recent_pushes(session, day)]


# --- live events ---------------------------------------------------------------------------------------


@router.post("/live-events", response_model=IngestOut)
async def post_live_events(
    request: Request, session: Session = DbSession, actor: Principal = Depends(operator)
) -> IngestOut:
    """The same event batches as the SQS queue carries (an SNS envelope, a list of events, `{"events": [...]}`
    or one event), for deployments without SQS. A batch that cannot be read is refused whole (422)."""
    limit = live.MAX_BODY * 4
    if int(request.headers.get("content-length") or 0) > limit:
        raise PayloadTooLarge(f"a batch is at most {limit // 1024} KB")
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise PayloadTooLarge(f"a batch is at most {limit // 1024} KB")
    # database work and a possible lookup refresh from Voluum run in the threadpool, never on the event loop
    result = await run_in_threadpool(live.ingest_body, session, actor, body)
    await run_in_threadpool(session.commit)  # the events are stored before the lookups may ask Voluum
    await run_in_threadpool(live.note_lookups, session, actor, result)
    return IngestOut.model_validate(result.as_dict())


@router.get("/live-events/counts", response_model=LiveCountsOut)
def live_counts(session: Session = DbSession, _: Principal = Depends(viewer)) -> LiveCountsOut:
    return LiveCountsOut.model_validate(live.counts(session))


@router.get("/live-events/dead-letters", response_model=list[DeadLetterOut])
def dead_letters(
    limit: int = Query(default=50, ge=1, le=500), session: Session = DbSession, _: Principal = Depends(operator)
) -> list[DeadLetterOut]:
    return [DeadLetterOut.model_validate(d) for d in live.dead_letters(session, limit)]


# --- smart cleaning and REG search ---------------------------------------------------------------------


@router.post("/smart-clean", response_model=JobOut, status_code=202)
def smart_clean(body: SmartCleanIn, session: Session = DbSession, actor: Principal = Depends(operator)) -> JobOut:
    """Smart cleaning of a country's whitelist over a date range (numbers in full for admins only)."""
    job = smart.start_smart_clean(
        session, actor, offers=body.offers, country=body.country, date_from=body.from_, date_to=body.to,
        filter_regs=body.filter_regs, filter_live=body.filter_live,
    )
    return JobOut.model_validate(job)


@router.post("/smart-clean/upload", response_model=JobOut, status_code=202)
async def smart_clean_upload(
    file: UploadFile,
    offers: list[str] = Form(...),
    region: str | None = Form(default=None, max_length=2),
    filter_regs: bool = Form(default=False),
    filter_live: bool = Form(default=False),
    session: Session = DbSession,
    actor: Principal = Depends(operator),
) -> JobOut:
    """Smart cleaning of an uploaded list (CSV/TSV/xlsx); the result keeps its rows in input order."""
    smart.resolve_offers(session, offers)  # refuse unknown offers before storing anything
    region_or_default(region)

    async def chunks() -> AsyncIterator[bytes]:
        while block := await file.read(storage.CHUNK):
            yield block

    stored = await storage.get_storage().save_stream(
        session, actor, chunks(), kind="voluum-input", original_name=file.filename, content_type=file.content_type,
        max_bytes=get_settings().max_upload_bytes,
    )
    job = smart.start_smart_clean(session, actor, offers=offers, file_id=stored.id, region=region,
                                  filter_regs=filter_regs, filter_live=filter_live)
    return JobOut.model_validate(job)


@router.post("/reg-search", response_model=JobOut, status_code=202)
def reg_search(body: RegSearchIn, session: Session = DbSession, actor: Principal = Depends(operator)) -> JobOut:
    """Numbers with a REG but no FTD for a country and offers inside a window."""
    job = smart.start_reg_search(session, actor, country=body.country, date_from=body.from_, date_to=body.to,
                                 offers=body.offers)
    return JobOut.model_validate(job)


@router.get("/runs", response_model=list[JobOut])
def list_runs(archived: bool = False, session: Session = DbSession, _: Principal = Depends(viewer)) -> list[JobOut]:
    """Recent smart cleanings and REG searches (`archived=true`: the archived ones)."""
    return [JobOut.model_validate(j) for j in runs.list_runs(session, archived=archived)]


@router.get("/runs/{job_id}/download")
def download_run(job_id: str, session: Session = DbSession, actor: Principal = Depends(viewer)
                 ) -> StreamingResponse:
    file_id = smart.result_file(runs.get_run(session, job_id), actor)
    return file_response(session, actor, storage.get_file(session, file_id))


@router.post("/runs/{job_id}/archive", response_model=JobOut)
def archive_run(job_id: str, session: Session = DbSession, actor: Principal = Depends(operator)) -> JobOut:
    """Hide a finished run from the list (its owner or an admin); `restore` brings it back."""
    return JobOut.model_validate(runs.archive_run(session, actor, job_id))


@router.post("/runs/{job_id}/restore", response_model=JobOut)
def restore_run(job_id: str, session: Session = DbSession, actor: Principal = Depends(operator)) -> JobOut:
    return JobOut.model_validate(runs.restore_run(session, actor, job_id))


@router.delete("/runs/{job_id}")
def delete_run(job_id: str, session: Session = DbSession, actor: Principal = Depends(operator)) -> dict[str, Any]:
    """Delete a finished run's result and uploaded list from storage (its owner or an admin)."""
    removed = runs.delete_run(session, actor, job_id)
    return {"id": job_id, "status": "deleted", "files_removed": removed}


# --- find a number -------------------------------------------------------------------------------------


@router.get("/find", response_model=NumberReportOut)
def find_number(
    number: str = Query(min_length=1, max_length=64),
    region: str | None = Query(default=None, max_length=2),
    session: Session = DbSession,
    actor: Principal = Depends(viewer),
) -> NumberReportOut:
    """Everything known about a number: list status and history, traffic, conversions, live events, HLR."""
    report = find.find_number(session, actor, number, region_or_default(region))
    return NumberReportOut.model_validate(report.as_dict())
