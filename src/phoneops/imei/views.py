# Over 400 lines: one router per domain: every IMEI page, each a thin handler.
"""IMEI pages: overview, services, submit (with the cost guard), batch with live progress, history, order,
statistics."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Literal
from urllib.parse import quote_plus

from fastapi import APIRouter, Depends, File, Form, Query, Request, UploadFile
from fastapi.responses import HTMLResponse, Response
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from phoneops.core import storage
from phoneops.core.audit import audit
from phoneops.core.db import release, utcnow
from phoneops.core.deps import DbSession, page_operator, page_viewer
from phoneops.core.errors import AppError, NotFound, ValidationFailed
from phoneops.core.jobs import create_job, get_job
from phoneops.core.models import StoredFile
from phoneops.core.security import Principal, Role
from phoneops.hlr.lookups import lookups_in_review, release_review, write_off_review
from phoneops.imei import catalogue, history, imports, inputs, review, submission
from phoneops.imei.balance import balances_text
from phoneops.imei.provider import is_configured, require_configured
from phoneops.imei.results import result_table
from phoneops.imei.router import export_response, filters_from, save_upload
from phoneops.imei.schemas import OrderQuery
from phoneops.imei.sync import refresh_audited
from phoneops.imei.tasks import SYNC_KIND
from phoneops.settings import get_settings
from phoneops.ui.flash import redirect_with
from phoneops.ui.render import form_error, render
from phoneops.ui.views import Card

router = APIRouter(include_in_schema=False)


# Badge colours of app.css for our states (succeeded = green, failed = red, queued = blue).
BADGES = {"done": "succeeded", "placed": "succeeded", "imported": "succeeded", "failed": "failed",
          "review": "failed", "cancelled": "failed", "queued": "queued", "sending": "queued", "running": "running",
          "waiting": "queued", "duplicate": "monitor"}


def money(value: Decimal | str | None) -> str:
    if value is None:
        return "—"
    return f"${Decimal(str(value)):,.2f}"


@dataclass(frozen=True)
class SubmitForm:
    """What the submit page shows back: the values typed, the quote, the plan, an error."""

    text: str = ""
    service_id: str = ""
    force: bool = False
    confirm_over_budget: bool = False
    file_id: str = ""  # the file chosen for the preview, kept for the submit (a browser cannot re-send it)
    file_name: str = ""
    error: str | None = None
    quote: dict[str, Any] | None = None
    plan: dict[str, Any] | None = None


def dashboard_cards(session: Session) -> list[Card]:
    spent = submission.spend_today(session)
    budget = get_settings().imei_daily_budget
    by_day = history.spend_by_day(session, 7)
    stats = history.statistics(session)
    return [
        Card("IMEI spend today", f"{money(spent)} / {money(budget)}", "/imei/stats",
             chart={day[5:]: float(v) for day, v in by_day.items()}),
        Card("IMEI orders open", str(stats["pending"]), "/imei/history?status=Pending,In+Process"),
        Card("Paid work to review", str(stats["needs_review"] + sum(r["numbers"] for r in lookups_in_review(session))),
             "/review"),
        Card("IMEI balance differences", str(submission.balance_differences(session)), "/imei"),
    ]


def _page(request: Request, template: str, principal: Principal, **context: Any) -> HTMLResponse:
    status_code = int(context.pop("status_code", 200))
    return render(request, template, principal, status_code=status_code, money=money, badges=BADGES,
                  configured=is_configured(), **context)


# --- overview, services -------------------------------------------------------------------------------


@router.get("/imei", response_class=HTMLResponse)
def overview(
    request: Request, session: Session = DbSession, principal: Principal = Depends(page_viewer)
) -> Response:
    balance = balances_text()  # the providers first, before a query takes a pooled connection (issue 21)
    return _page(
        request, "imei/overview.html", principal, stats=history.statistics(session),
        spend=history.spend_by_day(session, 14), batches=submission.list_batches(session, 15), balance=balance,
    )


@router.get("/imei/services", response_class=HTMLResponse)
def services_page(
    request: Request,
    search: str = Query(default="", max_length=100),
    category: str = Query(default="", max_length=255),
    refresh: bool = False,
    session: Session = DbSession,
    principal: Principal = Depends(page_viewer),
) -> Response:
    require_configured()
    found = catalogue.catalogue(session, search=search or None, category=category or None, refresh_now=refresh)
    return _page(request, "imei/services.html", principal, catalogue=found, search=search, category=category)


# --- submit -------------------------------------------------------------------------------------------


def _submit_page(
    request: Request, session: Session, principal: Principal, form: SubmitForm, status_code: int = 200
) -> HTMLResponse:
    require_configured()
    release(session)  # the balances are read from the providers with no pooled connection held (issue 21)
    balance = balances_text()
    found = catalogue.catalogue(session)
    return _page(
        request, "imei/submit.html", principal, status_code=status_code, form=form, services=found.services,
        warning=found.warning, spent=submission.spend_today(session), reserved=submission.reserved_spend(session),
        budget=get_settings().imei_daily_budget, balance=balance, is_admin=principal.can(Role.admin),
    )


UPLOAD_KIND = "imei-batch"


async def _store_upload(session: Session, principal: Principal, file: UploadFile) -> StoredFile:
    async def chunks() -> AsyncIterator[bytes]:
        while chunk := await file.read(1024 * 1024):
            yield chunk

    row = await storage.get_storage().save_stream(
        session, principal, chunks(), kind=UPLOAD_KIND, original_name=file.filename,
        content_type=file.content_type, max_bytes=get_settings().max_upload_bytes,
    )
    session.commit()  # kept for the submit that follows a preview, whatever this request ends with
    return row


def _kept_upload(session: Session, principal: Principal, file_id: str) -> StoredFile:
    """The file this user chose for the preview (nobody else's, and only an IMEI batch upload)."""
    row = session.get(StoredFile, file_id) if _is_uuid(file_id) else None
    if row is None or row.kind != UPLOAD_KIND or row.owner_id != principal.user_id or row.status != "stored":
        raise ValidationFailed("the file chosen for the preview is no longer available: choose it again")
    return row


def _is_uuid(text: str) -> bool:
    try:
        uuid.UUID(text)
    except ValueError:
        return False
    return True


def _still_stored(session: Session, file_id: str) -> bool:
    row = session.get(StoredFile, file_id) if _is_uuid(file_id) else None
    return row is not None and row.status == "stored"


@router.get("/imei/submit", response_class=HTMLResponse)
def submit_page(
    request: Request,
    service_id: str = "",
    session: Session = DbSession,
    principal: Principal = Depends(page_operator),
) -> Response:
    return _submit_page(request, session, principal, SubmitForm(service_id=service_id))


@router.post("/imei/submit", response_class=HTMLResponse)
async def submit(
    request: Request,
    text: str = Form(default=""),
    service_id: str = Form(default=""),
    force: bool = Form(default=False),
    confirm_over_budget: bool = Form(default=False),
    action: Literal["preview", "submit"] = Form(default="submit"),
    file: UploadFile | None = File(default=None),
    file_id: str = Form(default="", max_length=36),
    drop_file: bool = Form(default=False),
    session: Session = DbSession,
    principal: Principal = Depends(page_operator),
) -> Response:
    """Textarea or CSV/XLSX file; `preview` shows the plan and the cost, `submit` starts the batch. The file
    chosen for a preview is kept (by its stored id) so the submit after it sends the same rows."""
    form = SubmitForm(text=text, service_id=service_id, force=force, confirm_over_budget=confirm_over_budget)
    upload: StoredFile | AppError | None = None
    if file is not None and file.filename:
        try:
            upload = await _store_upload(session, principal, file)
        except AppError as exc:
            upload = exc
    # reading the file, the database and the balances (a provider call): in the threadpool, off the event loop
    return await run_in_threadpool(_submit, request, session, principal, form, upload, file_id=file_id,
                                   drop_file=drop_file, action=action)


def _submit(request: Request, session: Session, principal: Principal, form: SubmitForm,
            upload: StoredFile | AppError | None, *, file_id: str, drop_file: bool, action: str) -> Response:
    text, service_id, force, confirm_over_budget = form.text, form.service_id, form.force, form.confirm_over_budget
    try:
        rows = inputs.rows_from_text(text)
        stored = None
        if isinstance(upload, AppError):
            raise upload
        if upload is not None:
            stored = upload
        elif file_id and not drop_file:
            stored = _kept_upload(session, principal, file_id)
        file_name = None
        if stored is not None:
            rows += inputs.rows_from_table(storage.get_storage().session_local_path(session, stored))
            file_name = storage.safe_name(stored.original_name)
            form = SubmitForm(**{**form.__dict__, "file_id": stored.id, "file_name": file_name})
        if not rows:
            raise ValidationFailed("type IMEIs (one per line) or choose a CSV/XLSX file with an 'imei' column")
        if action == "preview":
            plan = submission.plan(session, rows, service_id or None, force=force)
            summary = plan.summary()
            form = SubmitForm(**{**form.__dict__, "quote": summary["quote"], "plan": summary})
            return _submit_page(request, session, principal, form)
        batch, _plan = submission.create_batch(
            session, principal, rows, service_id or None, source="file" if file_name else "text",
            file_name=file_name, force=force, confirm_over_budget=confirm_over_budget,
        )
    except AppError as exc:
        session.rollback()
        quote = exc.details if isinstance(exc.details, dict) and "budget" in exc.details else None
        kept = form.file_id if form.file_id and _still_stored(session, form.file_id) else ""
        form = SubmitForm(**{**form.__dict__, "error": exc.message, "quote": quote, "file_id": kept,
                             "file_name": form.file_name if kept else ""})
        return _submit_page(request, session, principal, form, status_code=exc.status_code)
    return redirect_with(f"/imei/batches/{batch.id}", f"Batch {batch.id} submitted: its orders are placed below.")


# --- batches ------------------------------------------------------------------------------------------


@router.get("/imei/batches/{batch_id}", response_class=HTMLResponse)
def batch_page(
    request: Request,
    batch_id: int,
    session: Session = DbSession,
    principal: Principal = Depends(page_viewer),
) -> Response:
    batch = submission.get_batch(session, batch_id)
    job = get_job(session, batch.job_id) if batch.job_id else None
    every_state = list(history.STATE_LABELS)  # queued rows too: the batch's own list
    orders = history.search_orders(session, history.OrderFilters(batch_id=batch_id, states=every_state), per_page=200)
    return _page(
        request, "imei/batch.html", principal, batch=batch, job=job, summary=submission.batch_summary(session, batch),
        orders=orders, state_labels=history.STATE_LABELS,
    )


@router.post("/imei/batches/{batch_id}/resume")
def resume(
    batch_id: int, session: Session = DbSession, principal: Principal = Depends(page_operator)
) -> Response:
    require_configured()
    try:
        submission.resume_batch(session, principal, batch_id)
    except AppError as exc:
        session.rollback()
        if isinstance(exc, NotFound):
            raise
        return redirect_with(f"/imei/batches/{batch_id}", f"Not resumed: {exc.message}", "error")
    return redirect_with(f"/imei/batches/{batch_id}", f"Batch {batch_id} resumed.")


# --- history, orders ----------------------------------------------------------------------------------


@router.get("/imei/history", response_class=HTMLResponse)
def history_page(
    request: Request,
    query: OrderQuery = Depends(),
    page: int = Query(default=1, ge=1),
    session: Session = DbSession,
    principal: Principal = Depends(page_viewer),
) -> Response:
    return _history(request, session, principal, query, page)


def _history(request: Request, session: Session, principal: Principal, query: OrderQuery, page: int = 1,
             **extra: Any) -> Response:
    filters = filters_from(query)
    found = history.search_orders(session, filters, page=page, per_page=100)
    params = {k: v for k, v in query.model_dump().items() if v not in (None, "")}
    qs = "&".join(f"{k}={quote_plus(str(v))}" for k, v in params.items())
    return _page(
        request, "imei/history.html", principal, found=found, query=query, qs=qs,
        state_labels=history.STATE_LABELS, can_operate=principal.can(Role.operator), **extra,
    )


@router.get("/imei/history/export")
def history_export(
    query: OrderQuery = Depends(),
    format: Literal["csv", "xlsx"] = "csv",
    session: Session = DbSession,
    principal: Principal = Depends(page_viewer),
) -> Response:
    return export_response(session, principal, filters_from(query), format)


@router.post("/imei/history/import")
async def history_import(
    request: Request,
    file: UploadFile,
    session: Session = DbSession,
    principal: Principal = Depends(page_operator),
) -> Response:
    try:
        path = await save_upload(session, principal, file, "imei-import")
    except AppError as exc:  # the upload itself was refused: the page again, at its status (413 too big, 422 empty)
        return form_error(session, exc, _history_error, request, session, principal)
    try:
        record = await run_in_threadpool(imports.import_provider_export, session, principal, path,
                                         storage.safe_name(file.filename))
    except AppError as exc:  # stored, but not an export we can read: say so after the redirect
        session.rollback()
        return redirect_with("/imei/history", f"Import failed: {exc.message}", "error")
    text = (f"Imported {record.file_name}: {record.rows_inserted} new, {record.rows_updated} updated, "
            f"{record.rows_skipped} skipped")
    return redirect_with("/imei/history", text)


def _history_error(request: Request, session: Session, principal: Principal, *, error: str, status_code: int
                   ) -> Response:
    return _history(request, session, principal, OrderQuery(), status_code=status_code,
                    flash={"kind": "error", "text": f"Import failed: {error}"})


@router.get("/imei/orders/{row_id}", response_class=HTMLResponse)
def order_page(
    request: Request,
    row_id: int,
    session: Session = DbSession,
    principal: Principal = Depends(page_viewer),
) -> Response:
    order = history.get_order(session, row_id)
    return _page(request, "imei/order.html", principal, order=order, state_labels=history.STATE_LABELS,
                 can_operate=principal.can(Role.operator), result_rows=result_table(order))


@router.post("/imei/orders/{row_id}/refresh")
def order_refresh(
    row_id: int, session: Session = DbSession, principal: Principal = Depends(page_operator)
) -> Response:
    order = history.get_order(session, row_id)
    try:
        refresh_audited(session, principal, order, "page")
    except AppError as exc:
        return redirect_with(f"/imei/orders/{row_id}", f"Refresh failed: {exc.message}", "error")
    return redirect_with(f"/imei/orders/{row_id}", f"Status refreshed: {order.status or 'unknown'}")


@router.post("/imei/sync")
def sync_now(
    session: Session = DbSession, principal: Principal = Depends(page_operator)
) -> Response:
    require_configured()
    job = create_job(session, principal, SYNC_KIND, {}, title="IMEI status sync")
    audit(session, principal, "imei.sync", "job", job.id, {"via": "page"})
    return redirect_with(f"/jobs/{job.id}", "IMEI status sync started: open orders are asked for their result.")


# --- needs review (IMEI and HLR) ---------------------------------------------------------------------


@router.get("/review", response_class=HTMLResponse)
def review_page(
    request: Request,
    session: Session = DbSession,
    principal: Principal = Depends(page_viewer),
) -> Response:
    rows = [review.describe_row(o) for o in review.review_rows(session)]
    return _page(request, "imei/review.html", principal, rows=rows, lookups=lookups_in_review(session),
                 can_operate=principal.can(Role.operator))


def _review_action(change: Callable[[], object], done: Callable[[Any], str]) -> Response:
    """Run one review change and go back to the review page saying what happened (or why nothing did)."""
    try:
        result = change()
    except AppError as exc:
        return redirect_with("/review", f"Not changed: {exc.message}", "error")
    return redirect_with("/review", done(result))


@router.post("/review/imei/{row_id}/attach")
def review_attach(
    row_id: int, order_id: str = Form(default=""), session: Session = DbSession,
    principal: Principal = Depends(page_operator),
) -> Response:
    return _review_action(
        lambda: review.attach_order_id(session, principal, row_id, order_id),
        lambda order: f"Order id {order.order_id} attached to IMEI {order.imei}: its result comes with the next sync",
    )


@router.post("/review/imei/{row_id}/write-off")
def review_write_off(
    row_id: int, reason: str = Form(default=""), session: Session = DbSession,
    principal: Principal = Depends(page_operator),
) -> Response:
    return _review_action(lambda: review.write_off(session, principal, row_id, reason),
                          lambda order: f"IMEI {order.imei} written off")


@router.post("/review/hlr/{lookup_id}/write-off")
def review_hlr_write_off(
    lookup_id: int, reason: str = Form(default=""), session: Session = DbSession,
    principal: Principal = Depends(page_operator),
) -> Response:
    return _review_action(lambda: write_off_review(session, principal, lookup_id, reason),
                          lambda _: f"The numbers in review of HLR lookup {lookup_id} were written off")


@router.post("/review/hlr/{lookup_id}/release")
def review_hlr_release(
    lookup_id: int, session: Session = DbSession, principal: Principal = Depends(page_operator)
) -> Response:
    return _review_action(lambda: release_review(session, principal, lookup_id),
                          lambda _: f"HLR lookup {lookup_id} looks its numbers in review up again")


# --- statistics ---------------------------------------------------------------------------------------


@router.get("/imei/stats", response_class=HTMLResponse)
def stats_page(
    request: Request,
    days: int = Query(default=30, ge=1, le=366),
    session: Session = DbSession,
    principal: Principal = Depends(page_viewer),
) -> Response:
    spend = history.spend_by_day(session, days)
    return _page(
        request, "imei/stats.html", principal, stats=history.statistics(session), days=days,
        spend={day: float(value) for day, value in spend.items()}, spend_total=sum(spend.values(), Decimal(0)),
        today=utcnow().date().isoformat(),
    )
