"""Voluum pages: overview (traffic days, conversions, syncs), find a number, smart cleaning and REG search,
costs, live events."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Depends, File, Form, Request, UploadFile
from fastapi.responses import Response
from sqlalchemy import select
from sqlalchemy.orm import Session

from phoneops.core import storage
from phoneops.core.deps import DbSession, page_operator, page_viewer
from phoneops.core.errors import AppError
from phoneops.core.models import Job
from phoneops.core.security import Principal
from phoneops.numbers.links import key_of, linked
from phoneops.settings import get_settings
from phoneops.ui.flash import redirect_with
from phoneops.ui.render import form_error, render
from phoneops.ui.views import Card
from phoneops.voluum import conversions, costs, find, live, lookups, runs, smart, traffic
from phoneops.voluum.provider import is_configured, region_or_default

router = APIRouter(include_in_schema=False)
CHART_ORDER = ("whitelist", "monitor", "blacklist", "unknown")  # the chart palette's blue, green, red, amber


def dashboard_cards(session: Session) -> list[Card]:
    days = traffic.recent_days(session, 1)
    if not days:
        return [Card("Voluum traffic", "not synced yet", "/voluum")]
    last = days[0]
    return [Card(f"Voluum numbers on {last.day}", f"{last.numbers:,}", "/voluum",
                 chart={k: float(last.per_list.get(k, 0)) for k in CHART_ORDER})]


def _today() -> dt.date:
    return dt.datetime.now(dt.UTC).date()


def _sync_jobs(session: Session) -> list[Job]:
    return list(session.scalars(select(Job).where(Job.kind.in_([traffic.KIND, conversions.KIND]))
                                .order_by(Job.created_at.desc()).limit(10)))


def _overview(request: Request, session: Session, principal: Principal, *, error: str | None = None,
              status_code: int = 200) -> Response:
    settings = get_settings()
    days = traffic.recent_days(session, 30)
    counts = conversions.counts_by_country(session)
    total = {kind: sum(c[kind] for c in counts.values()) for kind in (conversions.REG, conversions.FTD)}
    yesterday = _today() - dt.timedelta(days=1)
    return render(
        request, "voluum/overview.html", principal, status_code=status_code, error=error,
        configured=is_configured(settings), currency=settings.voluum_currency,
        sources=settings.voluum_traffic_source_ids, days=days,
        chart={k: float(days[0].per_list.get(k, 0)) for k in CHART_ORDER} if days else {},
        conversion_counts=counts, conversion_total=total,
        conversion_chart={c: float(v["REG"] + v["FTD"]) for c, v in counts.items()},
        syncs=conversions.recent_syncs(session, 8), jobs=_sync_jobs(session), yesterday=yesterday,
        offers=len(lookups.list_offers(session)), campaigns=len(lookups.list_campaigns(session)),
    )


@router.get("/voluum")
def overview(request: Request, session: Session = DbSession, principal: Principal = Depends(page_viewer)
             ) -> Response:
    return _overview(request, session, principal)


@router.post("/voluum/traffic")
def start_traffic(
    request: Request,
    date_from: str = Form(..., alias="from"),
    date_to: str = Form("", alias="to"),
    session: Session = DbSession,
    principal: Principal = Depends(page_operator),
) -> Response:
    try:
        job = traffic.start_sync(session, principal, date_from, date_to or None)
    except AppError as exc:
        return form_error(session, exc, _overview, request, session, principal)
    return redirect_with("/voluum", f"Traffic sync of {date_from}{' to ' + date_to if date_to else ''} started.",
                         link=("Follow the job", f"/jobs/{job.id}"))


@router.post("/voluum/conversions")
def start_conversions(
    request: Request,
    date_from: str = Form(..., alias="from"),
    date_to: str = Form("", alias="to"),
    session: Session = DbSession,
    principal: Principal = Depends(page_operator),
) -> Response:
    try:
        job = conversions.start_sync(session, principal, date_from, date_to or None)
    except AppError as exc:
        return form_error(session, exc, _overview, request, session, principal)
    return redirect_with("/voluum", f"Conversions sync of {date_from}{' to ' + date_to if date_to else ''} started.",
                         link=("Follow the job", f"/jobs/{job.id}"))


@router.post("/voluum/lookups/refresh")
def refresh_lookups(request: Request, session: Session = DbSession,
                    principal: Principal = Depends(page_operator)) -> Response:
    try:
        found = lookups.refresh(session, principal)
    except AppError as exc:
        return form_error(session, exc, _overview, request, session, principal)
    return redirect_with("/voluum", f"Refreshed from Voluum: {found.campaigns} campaigns ({found.new_campaigns} new), "
                         f"{found.offers} offers ({found.new_offers} new).")


# --- find a number -------------------------------------------------------------------------------------


@router.get("/voluum/find")
def find_page(
    request: Request,
    number: str | None = None,
    region: str | None = None,
    session: Session = DbSession,
    principal: Principal = Depends(page_viewer),
) -> Response:
    report, error = None, None
    if number:
        try:
            report = find.find_number(session, principal, number[:64], region_or_default(region))
        except AppError as exc:
            error = exc.message
    key = key_of(report.number) if report is not None else ""
    return render(request, "voluum/find.html", principal, status_code=422 if error else 200, report=report,
                  error=error, number=number or "", region=region or get_settings().default_region,
                  number_key=key, linked=linked(session, [key]))


# --- smart cleaning and REG search ---------------------------------------------------------------------


def _smart(request: Request, session: Session, principal: Principal, *, error: str | None = None,
           status_code: int = 200, country: str = "", archived: bool = False) -> Response:
    today = _today()
    return render(
        request, "voluum/smart.html", principal, status_code=status_code, error=error, archived=archived,
        offers=smart.offers_for(session, country or None), runs=runs.list_runs(session, archived=archived),
        country=country,
        date_from=(today - dt.timedelta(days=7)).isoformat(), date_to=today.isoformat(),
        region=get_settings().default_region,
    )


@router.get("/voluum/smart")
def smart_page(
    request: Request,
    country: str = "",
    archived: bool = False,
    session: Session = DbSession,
    principal: Principal = Depends(page_viewer),
) -> Response:
    try:
        return _smart(request, session, principal, country=country[:7], archived=archived)
    except AppError as exc:
        return _smart(request, session, principal, error=exc.message, status_code=exc.status_code, archived=archived)


@router.post("/voluum/smart")
async def smart_start(
    request: Request,
    offers: list[str] = Form([]),
    source: str = Form("country"),
    country: str = Form(""),
    date_from: str = Form("", alias="from"),
    date_to: str = Form("", alias="to"),
    region: str = Form(""),
    filter_regs: bool = Form(False),
    filter_live: bool = Form(False),
    file: UploadFile | None = File(None),
    session: Session = DbSession,
    principal: Principal = Depends(page_operator),
) -> Response:
    try:
        file_id = None
        smart.resolve_offers(session, offers)  # refuse unknown offers before storing anything
        if source == "file":
            if file is None or not file.filename:
                from phoneops.core.errors import ValidationFailed

                raise ValidationFailed("choose a file to clean")
            upload = file

            async def chunks() -> AsyncIterator[bytes]:
                while block := await upload.read(storage.CHUNK):
                    yield block

            stored = await storage.get_storage().save_stream(
                session, principal, chunks(), kind="voluum-input", original_name=upload.filename,
                content_type=upload.content_type, max_bytes=get_settings().max_upload_bytes,
            )
            file_id = stored.id
        job = smart.start_smart_clean(
            session, principal, offers=offers, country=None if file_id else country, date_from=date_from or None,
            date_to=date_to or None, file_id=file_id, region=region or None, filter_regs=filter_regs,
            filter_live=filter_live,
        )
    except AppError as exc:
        return form_error(session, exc, _smart, request, session, principal)
    return redirect_with("/voluum/smart", "Smart cleaning started: its result file appears below when done.",
                         link=("Follow the job", f"/jobs/{job.id}"))


@router.post("/voluum/reg-search")
def reg_search_start(
    request: Request,
    country: str = Form(...),
    date_from: str = Form(..., alias="from"),
    date_to: str = Form(..., alias="to"),
    offers: list[str] = Form([]),
    session: Session = DbSession,
    principal: Principal = Depends(page_operator),
) -> Response:
    try:
        job = smart.start_reg_search(session, principal, country=country, date_from=date_from, date_to=date_to,
                               offers=offers)
    except AppError as exc:
        return form_error(session, exc, _smart, request, session, principal)
    return redirect_with("/voluum/smart", f"REG search of {country} started: its result appears below when done.",
                         link=("Follow the job", f"/jobs/{job.id}"))


def _run_action(session: Session, principal: Principal, job_id: str, action: str) -> Response:
    """Archive, restore or delete a smart cleaning / REG search (its owner or an admin: `voluum.runs`)."""
    back = "/voluum/smart?archived=true" if action == "restore" else "/voluum/smart"
    try:
        if action == "archive":
            runs.archive_run(session, principal, job_id)
            note = "Run archived."
        elif action == "restore":
            runs.restore_run(session, principal, job_id)
            note = "Run restored."
        else:
            removed = runs.delete_run(session, principal, job_id)
            note = f"Run deleted ({removed} file{'' if removed == 1 else 's'} removed)."
    except AppError as exc:
        session.rollback()
        return redirect_with(back, exc.message, "error")
    session.commit()
    return redirect_with(back, note)


@router.post("/voluum/runs/{job_id}/archive")
def archive_run(job_id: str, session: Session = DbSession, principal: Principal = Depends(page_operator)) -> Response:
    return _run_action(session, principal, job_id, "archive")


@router.post("/voluum/runs/{job_id}/restore")
def restore_run(job_id: str, session: Session = DbSession, principal: Principal = Depends(page_operator)) -> Response:
    return _run_action(session, principal, job_id, "restore")


@router.post("/voluum/runs/{job_id}/delete")
def delete_run(job_id: str, session: Session = DbSession, principal: Principal = Depends(page_operator)) -> Response:
    return _run_action(session, principal, job_id, "delete")


# --- costs ---------------------------------------------------------------------------------------------


def _costs(request: Request, session: Session, principal: Principal, *, error: str | None = None,
           results: list[Any] | None = None, status_code: int = 200, lines: str = "") -> Response:
    return render(request, "voluum/costs.html", principal, status_code=status_code, error=error,
                  results=results or [], pushes=costs.recent_pushes(session), currency=get_settings().voluum_currency,
                  day=(_today() - dt.timedelta(days=1)).isoformat(), lines=lines,
                  campaigns=lookups.list_campaigns(session))


@router.get("/voluum/costs")
def costs_page(request: Request, session: Session = DbSession,
               principal: Principal = Depends(page_viewer)) -> Response:
    return _costs(request, session, principal)


@router.post("/voluum/costs")
def costs_push(
    request: Request,
    day: str = Form(...),
    lines: str = Form(...),
    force: bool = Form(False),
    session: Session = DbSession,
    principal: Principal = Depends(page_operator),
) -> Response:
    from phoneops.core.errors import ValidationFailed

    try:
        pairs = []
        for line in lines.splitlines():
            if not line.strip():
                continue
            campaign, sep, cost = line.replace(",", "=", 1).replace(";", "=", 1).partition("=")
            if not sep:
                raise ValidationFailed(f"write one campaign per line as CAMPAIGN_ID=COST (got {line.strip()!r})")
            pairs.append((campaign.strip(), cost.strip()))
        results = costs.push_costs(session, principal, day, pairs, force=force)
    except AppError as exc:
        return form_error(session, exc, _costs, request, session, principal, lines=lines)
    return _costs(request, session, principal, results=results)


# --- live events ---------------------------------------------------------------------------------------


@router.get("/voluum/live")
def live_page(request: Request, session: Session = DbSession,
              principal: Principal = Depends(page_viewer)) -> Response:
    settings = get_settings()
    return render(request, "voluum/live.html", principal, counts=live.counts(session),
                  events=live.recent_events(session, 50), dead=live.dead_letters(session, 20),
                  sqs_configured=bool(settings.sqs_queue_url),
                  queue_name=(settings.sqs_queue_url or "").rstrip("/").rsplit("/", 1)[-1], refresh_seconds=3,
                  offer_names=lookups.offer_names(session),
                  campaign_names={c.campaign_id: c.name for c in lookups.list_campaigns(session)})
