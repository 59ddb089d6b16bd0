"""IMEI API: services, cost quotes, batches (and single orders), history, exports, imports, status sync."""

from __future__ import annotations

import tempfile
from collections.abc import AsyncIterator, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Literal

from fastapi import APIRouter, Depends, File, Form, Query, UploadFile
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from phoneops.core import storage
from phoneops.core.audit import audit
from phoneops.core.db import utcnow
from phoneops.core.deps import DbSession, operator, viewer
from phoneops.core.errors import AppError
from phoneops.core.jobs import create_job, get_job
from phoneops.core.schemas import JobOut
from phoneops.core.security import Principal
from phoneops.hlr.lookups import lookups_in_review
from phoneops.imei import catalogue, history, imports, inputs, review, submission
from phoneops.imei.balance import quote_balances
from phoneops.imei.models import ImeiBatch
from phoneops.imei.provider import BALANCE_NOT_AVAILABLE, require_configured
from phoneops.imei.schemas import (
    BalanceOut,
    BatchDetail,
    BatchIn,
    BatchOut,
    ImportOut,
    OrderIn,
    OrderOut,
    OrderPageOut,
    OrderQuery,
    QuoteOut,
    ServiceOut,
    ServicesOut,
)
from phoneops.imei.sync import refresh_audited
from phoneops.imei.tasks import SYNC_KIND
from phoneops.settings import get_settings

router = APIRouter(prefix="/api/imei", tags=["imei"])


# --- helpers shared with the pages --------------------------------------------------------------------


def batch_detail(session: Session, batch: ImeiBatch, quote: submission.CostQuote | None = None) -> BatchDetail:
    job = get_job(session, batch.job_id) if batch.job_id else None
    return BatchDetail(
        **BatchOut.model_validate(batch).model_dump(),
        summary=submission.batch_summary(session, batch),
        skipped=batch.skipped[:500],
        quote=QuoteOut(**quote.to_dict()) if quote else None,
        job_status=job.status if job else None,
        progress_done=job.progress_done if job else None,
        progress_total=job.progress_total if job else None,
    )


def filters_from(query: OrderQuery) -> history.OrderFilters:
    imeis = history.parse_imei_list(" ".join(x for x in (query.imei, query.imeis) if x))

    def split(text: str | None) -> list[str]:
        return [part.strip() for part in (text or "").split(",") if part.strip()]

    return history.OrderFilters(
        imeis=imeis, order_id=query.order_id or None, statuses=split(query.status), states=split(query.state),
        service_id=query.service_id or None, date_from=query.date_from, date_to=query.date_to, text=query.q,
        batch_id=query.batch_id, fmi=query.fmi, blacklist=query.blacklist, simlock=query.simlock,
        carrier=query.carrier, model=query.model, brand=query.brand, country=query.country,
    )


async def save_upload(session: Session, actor: Principal, file: UploadFile, kind: str) -> Path:
    """Stream an upload into storage (size-limited, stored under its id); returns a local path to it that stays
    readable until the request's transaction ends."""

    async def chunks() -> AsyncIterator[bytes]:
        while chunk := await file.read(1024 * 1024):
            yield chunk

    store = storage.get_storage()
    row = await store.save_stream(
        session, actor, chunks(), kind=kind, original_name=file.filename, content_type=file.content_type,
        max_bytes=get_settings().max_upload_bytes,
    )
    return store.session_local_path(session, row)


# --- services and money -------------------------------------------------------------------------------


@router.get("/services", response_model=ServicesOut)
def list_services(
    search: str | None = Query(default=None, max_length=100),
    category: str | None = Query(default=None, max_length=255),
    refresh: bool = False,
    type: Literal["imei", "file"] = Query(default="imei", description="imei or file services"),
    account: str | None = Query(default=None, max_length=32, description="one provider account"),
    session: Session = DbSession,
    _: Principal = Depends(viewer),
) -> ServicesOut:
    require_configured()  # 503 provider_not_configured without GSM Fusion or DHRU credentials
    found = catalogue.catalogue(session, search=search, category=category, refresh_now=refresh, kind=type,
                                account=account or None)
    return ServicesOut(
        services=[ServiceOut.model_validate(s) for s in found.services], categories=found.categories,
        fetched_at=found.fetched_at, stale=found.stale, warning=found.warning,
    )


@router.get("/services/{package_id}", response_model=ServiceOut)
def get_service(
    package_id: str, session: Session = DbSession, _: Principal = Depends(viewer)
) -> ServiceOut:
    require_configured()  # 503 provider_not_configured without GSM Fusion or DHRU credentials
    return ServiceOut.model_validate(catalogue.get_service(session, package_id))


@router.get("/balance", response_model=BalanceOut)
def balance(_: Principal = Depends(viewer)) -> BalanceOut:
    """Balances of the DHRU accounts (`accountinfo`); GSM Fusion's API has no balance action."""
    settings = get_settings()
    quotes = quote_balances({a.name: Decimal(0) for a in settings.dhru_accounts}, settings)
    if not quotes:
        return BalanceOut(available=False, balance=None, message=BALANCE_NOT_AVAILABLE)
    first = next((q.balance for q in quotes if q.balance is not None), None)
    return BalanceOut(available=first is not None, balance=first, message="; ".join(q.text() for q in quotes),
                      accounts=[q.to_dict() for q in quotes])


@router.get("/quote", response_model=QuoteOut)
def quote(
    service_id: str = Query(min_length=1, max_length=32),
    count: int = Query(ge=0, le=100_000),
    session: Session = DbSession,
    _: Principal = Depends(viewer),
) -> QuoteOut:
    """What `count` IMEIs of a service would cost against today's spend and the daily budget."""
    require_configured()  # 503 provider_not_configured without GSM Fusion or DHRU credentials
    return QuoteOut(**submission.quote_for(session, service_id, count).to_dict())


@router.get("/spend")
def spend(
    days: int = Query(default=14, ge=1, le=366),
    session: Session = DbSession,
    _: Principal = Depends(viewer),
) -> dict[str, str]:
    return {day: str(value) for day, value in history.spend_by_day(session, days).items()}


@router.get("/stats")
def stats(session: Session = DbSession, _: Principal = Depends(viewer)) -> dict[str, object]:
    return history.statistics(session)


# --- submitting ---------------------------------------------------------------------------------------


@router.post("/batches", response_model=BatchDetail, status_code=202)
def create_batch(
    body: BatchIn, session: Session = DbSession, actor: Principal = Depends(operator)
) -> BatchDetail:
    require_configured()  # 503 provider_not_configured without GSM Fusion or DHRU credentials
    rows = [inputs.InputRow(value) for value in body.imeis]
    rows += inputs.rows_from_text(body.text or "")
    rows += [inputs.InputRow(r.imei, r.service_id, dict(r.fields)) for r in body.rows]
    batch, plan = submission.create_batch(
        session, actor, rows, body.service_id, source="api", force=body.force,
        confirm_over_budget=body.confirm_over_budget, fields=body.fields,
    )
    return batch_detail(session, batch, plan.quote)


@router.post("/batches/upload", response_model=BatchDetail, status_code=202)
async def upload_batch(
    file: UploadFile = File(...),
    service_id: str | None = Form(default=None),
    force: bool = Form(default=False),
    confirm_over_budget: bool = Form(default=False),
    session: Session = DbSession,
    actor: Principal = Depends(operator),
) -> BatchDetail:
    """A CSV or XLSX file with a column `imei` (any case), optional `service` and provider field columns."""
    require_configured()  # 503 provider_not_configured without GSM Fusion or DHRU credentials
    path = await save_upload(session, actor, file, "imei-batch")

    def create() -> BatchDetail:  # reading the file, the database and the balances: in the threadpool
        rows = inputs.rows_from_table(path)
        batch, plan = submission.create_batch(
            session, actor, rows, service_id, source="file", file_name=storage.safe_name(file.filename),
            force=force, confirm_over_budget=confirm_over_budget,
        )
        return batch_detail(session, batch, plan.quote)

    return await run_in_threadpool(create)


@router.post("/orders", response_model=BatchDetail, status_code=202)
def create_order(
    body: OrderIn, session: Session = DbSession, actor: Principal = Depends(operator)
) -> BatchDetail:
    """One IMEI: a batch of one, placed by the same crash-safe job."""
    require_configured()  # 503 provider_not_configured without GSM Fusion or DHRU credentials
    batch, plan = submission.create_batch(
        session, actor, [inputs.InputRow(body.imei, fields=dict(body.fields))], body.service_id,
        source="single", force=body.force, confirm_over_budget=body.confirm_over_budget,
    )
    return batch_detail(session, batch, plan.quote)


@router.get("/batches", response_model=list[BatchOut])
def list_batches(
    limit: int = Query(default=50, ge=1, le=500),
    session: Session = DbSession,
    _: Principal = Depends(viewer),
) -> list[BatchOut]:
    return [BatchOut.model_validate(b) for b in submission.list_batches(session, limit)]


@router.get("/batches/{batch_id}", response_model=BatchDetail)
def get_batch(
    batch_id: int, session: Session = DbSession, _: Principal = Depends(viewer)
) -> BatchDetail:
    return batch_detail(session, submission.get_batch(session, batch_id))


@router.post("/batches/{batch_id}/resume", response_model=BatchDetail, status_code=202)
def resume_batch(
    batch_id: int, session: Session = DbSession, actor: Principal = Depends(operator)
) -> BatchDetail:
    require_configured()  # 503 provider_not_configured without GSM Fusion or DHRU credentials
    return batch_detail(session, submission.resume_batch(session, actor, batch_id))


# --- history ------------------------------------------------------------------------------------------


@router.get("/orders", response_model=OrderPageOut)
def search_orders(
    query: OrderQuery = Depends(),
    page: int = Query(default=1, ge=1),
    per_page: int = Query(default=50, ge=1, le=500),
    session: Session = DbSession,
    _: Principal = Depends(viewer),
) -> OrderPageOut:
    found = history.search_orders(session, filters_from(query), page=page, per_page=per_page)
    return OrderPageOut(
        items=[OrderOut.model_validate(o) for o in found.items], total=found.total, page=found.page,
        per_page=found.per_page, pages=found.pages,
    )


def export_response(
    session: Session, actor: Principal, filters: history.OrderFilters, fmt: Literal["csv", "xlsx"]
) -> StreamingResponse:
    stamp = utcnow().strftime("%Y%m%d_%H%M%S")
    if fmt == "csv":
        lines = history.export_csv(session, actor, filters)
        return StreamingResponse(
            lines, media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": f'attachment; filename="imei_orders_{stamp}.csv"'},
        )
    spool = tempfile.SpooledTemporaryFile(max_size=32 * 1024 * 1024)  # noqa: SIM115 - closed by the body
    history.export_xlsx(session, actor, filters, spool)
    spool.seek(0)

    def body() -> Iterator[bytes]:
        with spool:
            yield from iter(lambda: spool.read(1024 * 1024), b"")

    return StreamingResponse(
        body(), media_type="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        headers={"Content-Disposition": f'attachment; filename="imei_orders_{stamp}.xlsx"'},
    )


@router.get("/orders/export")
def export_orders(
    query: OrderQuery = Depends(),
    format: Literal["csv", "xlsx"] = "csv",
    session: Session = DbSession,
    actor: Principal = Depends(viewer),
) -> StreamingResponse:
    """SERVICE, IMEI NO., CREDITS, STATUS, CODE, IMEI 2, CARRIER, SIMLOCK, MODEL, FMI, ORDER DATE, NOTES."""
    return export_response(session, actor, filters_from(query), format)


@router.get("/orders/{row_id}", response_model=OrderOut)
def get_order(
    row_id: int, session: Session = DbSession, _: Principal = Depends(viewer)
) -> OrderOut:
    return OrderOut.model_validate(history.get_order(session, row_id))


@router.post("/orders/{row_id}/refresh", response_model=OrderOut)
def refresh(
    row_id: int, session: Session = DbSession, actor: Principal = Depends(operator)
) -> OrderOut:
    require_configured()  # 503 provider_not_configured without GSM Fusion or DHRU credentials
    try:
        order = refresh_audited(session, actor, history.get_order(session, row_id), "api")
    except AppError:
        session.commit()  # the failed refresh's audit line stays (nothing else was changed)
        raise
    return OrderOut.model_validate(order)


class AttachIn(BaseModel):
    order_id: str = Field(min_length=1, max_length=64,
                          description="The provider's order number (a DHRU reference: bare or account:reference)")


class WriteOffIn(BaseModel):
    reason: str = Field(min_length=1, max_length=500)


@router.get("/review")
def needs_review(session: Session = DbSession, _: Principal = Depends(viewer)) -> dict[str, object]:
    """Everything paid work left for a human, across IMEI and HLR: IMEI orders in review (with why, and
    whether they were paid) and HLR lookups with numbers in review."""
    return {"imei": [review.describe_row(o) for o in review.review_rows(session)],
            "hlr": lookups_in_review(session)}


@router.post("/orders/{row_id}/attach-order", response_model=OrderOut)
def attach_order(
    row_id: int, body: AttachIn, session: Session = DbSession, actor: Principal = Depends(operator)
) -> OrderOut:
    """An order in review gets its order id (from the provider's panel); its result is fetched by the sync."""
    return OrderOut.model_validate(review.attach_order_id(session, actor, row_id, body.order_id))


@router.post("/orders/{row_id}/write-off", response_model=OrderOut)
def write_off(
    row_id: int, body: WriteOffIn, session: Session = DbSession, actor: Principal = Depends(operator)
) -> OrderOut:
    """Close an order in review without a result, with the reason (audited; kept in spend if paid)."""
    return OrderOut.model_validate(review.write_off(session, actor, row_id, body.reason))


@router.post("/sync", response_model=JobOut, status_code=202)
def sync(session: Session = DbSession, actor: Principal = Depends(operator)) -> JobOut:
    """Refresh every Pending / In Process order now (a job; the periodic task does it every 5 minutes)."""
    require_configured()  # 503 provider_not_configured without GSM Fusion or DHRU credentials
    job = create_job(session, actor, SYNC_KIND, {}, title="IMEI status sync")
    audit(session, actor, "imei.sync", "job", job.id, {"via": "api"})
    return JobOut.model_validate(job)


@router.post("/import", response_model=ImportOut, status_code=201)
async def import_export(
    file: UploadFile = File(...),
    session: Session = DbSession,
    actor: Principal = Depends(operator),
) -> ImportOut:
    """Import a GSM Fusion export (XLSX or CSV with the export's columns) without duplicating orders."""
    path = await save_upload(session, actor, file, "imei-import")
    record = await run_in_threadpool(imports.import_provider_export, session, actor, path,
                                     storage.safe_name(file.filename, "export.xlsx"))
    return ImportOut.model_validate(record)
