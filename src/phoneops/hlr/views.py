"""HLR pages: start a lookup (upload, stored file or list), its status page, risky operators, outcome rules."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Form, Query, Request, UploadFile
from fastapi.responses import Response
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from phoneops.core import storage
from phoneops.core.audit import audit
from phoneops.core.db import utcnow
from phoneops.core.deps import DbSession, page_admin, page_operator, page_viewer
from phoneops.core.errors import AppError, NotFound, ValidationFailed
from phoneops.core.router import file_response
from phoneops.core.security import Principal
from phoneops.hlr import estimates, lookups, outcomes, outputs, risky
from phoneops.hlr.lookups import FileSource, ListSource
from phoneops.hlr.models import HlrResult
from phoneops.hlr.provider import confirm_above_credits, is_configured
from phoneops.numbers.links import linked
from phoneops.settings import get_settings
from phoneops.ui.flash import redirect_with
from phoneops.ui.render import form_error, render
from phoneops.ui.views import Card

router = APIRouter(include_in_schema=False)
# Committed before the response leaves (not after it, FastAPI's default): a redirect or a client reading right
# after a change sees it, and a failed commit is an error rather than a success already sent.
SESSION = DbSession


def dashboard_cards(session: Session) -> list[Card]:
    since = utcnow() - timedelta(days=30)
    rows = session.execute(
        select(HlrResult.live_status, func.count(HlrResult.id), func.coalesce(func.sum(HlrResult.credits_spent), 0))
        .where(HlrResult.looked_up_at >= since)
        .group_by(HlrResult.live_status)
    ).all()
    credits = sum(float(spent) for _, _, spent in rows)
    return [Card("HLR credits (30 days)", f"{credits:,.0f}", "/hlr",
                 chart={str(status or "?"): int(count) for status, count, _ in rows} or None)]


def _overview(request: Request, session: Session, principal: Principal, *, error: str | None = None,
              status_code: int = 200) -> Response:
    return render(
        request, "hlr/overview.html", principal, status_code=status_code,
        lookups=[lookups.describe_lookup(session, lookup) for lookup in lookups.list_lookups(session, 30)],
        files=storage.list_files(session, limit=50), region=get_settings().default_region, error=error,
        budget=confirm_above_credits(), configured=is_configured(), ttl_days=get_settings().hlr_cache_ttl_days,
    )


@router.get("/hlr")
def overview(
    request: Request, session: Session = SESSION, principal: Principal = Depends(page_viewer)
) -> Response:
    return _overview(request, session, principal)


async def _stored_file_id(session: Session, principal: Principal, file: UploadFile | None, file_id: str) -> str:
    """The id of the uploaded file (stored now) or of the stored file chosen."""
    if file is not None and file.filename:
        upload = file

        async def chunks() -> AsyncIterator[bytes]:
            while block := await upload.read(storage.CHUNK):
                yield block

        stored = await storage.get_storage().save_stream(
            session, principal, chunks(), kind="upload", original_name=file.filename,
            content_type=file.content_type, max_bytes=get_settings().max_upload_bytes,
        )
        audit(session, principal, "file.upload", "file", stored.id, {"name": stored.original_name})
        return stored.id
    if not file_id:
        raise ValidationFailed("choose a file to upload or a stored file")
    return file_id


@router.post("/hlr/estimates")
async def start_estimate(
    request: Request,
    source: str = Form("file"),
    file: UploadFile | None = None,
    file_id: str = Form(""),
    phone_column: str = Form(""),
    region: str = Form(""),
    include_non_mobile: str = Form(""),
    session: Session = SESSION,
    principal: Principal = Depends(page_operator),
) -> Response:
    """The estimate of a file in a background job; its page shows the progress, then the estimate."""
    try:
        if source == "list" and not (file is not None and file.filename) and not file_id:
            raise ValidationFailed("the background estimate reads a file: upload one or choose a stored file")
        chosen = FileSource(await _stored_file_id(session, principal, file, file_id), phone_column.strip() or None,
                            region.strip() or None)
        job = estimates.start_estimate(session, principal, chosen, include_non_mobile=bool(include_non_mobile))
    except AppError as exc:
        return form_error(session, exc, _overview, request, session, principal)
    return redirect_with(f"/jobs/{job.id}", "Estimate started: it shows here when the file has been read.",
                         link=("Back to HLR", "/hlr"))


@router.post("/hlr/lookups")
async def start_lookup(
    request: Request,
    source: str = Form("file"),
    file: UploadFile | None = None,
    file_id: str = Form(""),
    phone_column: str = Form(""),
    region: str = Form(""),
    status: str = Form(""),
    country: str = Form(""),
    mode: str = Form("batch"),
    confirm: str = Form(""),
    include_non_mobile: str = Form(""),
    session: Session = SESSION,
    principal: Principal = Depends(page_operator),
) -> Response:
    try:
        if source == "list":
            chosen: FileSource | ListSource = ListSource(status, country or None)
        else:
            file_id = await _stored_file_id(session, principal, file, file_id)
            chosen = FileSource(file_id, phone_column.strip() or None, region.strip() or None)
        lookup = lookups.create_lookup(session, principal, chosen, mode=mode, confirm=bool(confirm),
                                       include_non_mobile=bool(include_non_mobile))
    except AppError as exc:
        return form_error(session, exc, _overview, request, session, principal)
    return redirect_with(f"/hlr/lookups/{lookup.id}", f"HLR lookup {lookup.id} created: its progress shows below.")


@router.get("/hlr/lookups/{lookup_id}")
def lookup_page(
    request: Request,
    lookup_id: int,
    state: str | None = None,
    after_id: int = 0,
    session: Session = SESSION,
    principal: Principal = Depends(page_viewer),
) -> Response:
    lookup = lookups.get_lookup(session, lookup_id)
    rows = outputs.result_page(session, principal, lookup_id, after_id=after_id, limit=100, state=state or None)
    described = lookups.describe_lookup(session, lookup)
    # The chart's labels are short (the reason, else the action); the table and the API keep "action reason".
    chart = {label.split(" ", 1)[-1]: n for label, n in described["breakdown"].get("outcomes", {}).items()}
    return render(
        request, "hlr/lookup.html", principal, lookup=described, rows=rows, outcome_chart=chart,
        state=state or "", next_after=rows[-1]["id"] if len(rows) == 100 else None, states=outputs.STATE_LABELS,
        linked=linked(session, [r["key"] for r in rows]),
    )


def _act(session: Session, principal: Principal, lookup_id: int, action: str) -> Response:
    actions = {"confirm": lookups.confirm_lookup, "resume": lookups.resume_lookup, "cancel": lookups.cancel_lookup,
               "release-review": lookups.release_review}
    done = {"confirm": "confirmed: it runs now", "resume": "resumed", "cancel": "cancelled",
            "release-review": "releases its numbers in review: they are looked up again"}
    where = f"/hlr/lookups/{lookup_id}"
    try:
        actions[action](session, principal, lookup_id)
    except AppError as exc:
        session.rollback()
        if isinstance(exc, NotFound):
            raise
        return redirect_with(where, f"Not done: {exc.message}", "error")
    return redirect_with(where, f"HLR lookup {lookup_id} {done[action]}.")


@router.post("/hlr/lookups/{lookup_id}/confirm")
def confirm(
    lookup_id: int, session: Session = SESSION, principal: Principal = Depends(page_operator)
) -> Response:
    return _act(session, principal, lookup_id, "confirm")


@router.post("/hlr/lookups/{lookup_id}/resume")
def resume(
    lookup_id: int, session: Session = SESSION, principal: Principal = Depends(page_operator)
) -> Response:
    return _act(session, principal, lookup_id, "resume")


@router.post("/hlr/lookups/{lookup_id}/cancel")
def cancel(
    lookup_id: int, session: Session = SESSION, principal: Principal = Depends(page_operator)
) -> Response:
    return _act(session, principal, lookup_id, "cancel")


@router.post("/hlr/lookups/{lookup_id}/release-review")
def release_review(
    lookup_id: int, session: Session = SESSION, principal: Principal = Depends(page_operator)
) -> Response:
    return _act(session, principal, lookup_id, "release-review")


@router.get("/hlr/lookups/{lookup_id}/download/{which}")
def download(
    lookup_id: int, which: str, session: Session = SESSION, principal: Principal = Depends(page_operator)
) -> Response:
    lookup = lookups.get_lookup(session, lookup_id)
    file_id = {"clean": lookup.clean_file_id, "raw": lookup.raw_file_id}.get(which)
    if not file_id:
        raise NotFound(f"no {which} file for HLR lookup {lookup_id}")
    return file_response(session, principal, storage.get_file(session, file_id))


# --- risky operators and outcome rules ----------------------------------------------------------------


RISKY_PER_PAGE = 50


def _risky_page(request: Request, session: Session, principal: Principal, q: str = "", error: str | None = None,
                status_code: int = 200, page: int = 1) -> Response:
    matching = risky.count_operators(session, q)
    pages = max(1, -(-matching // RISKY_PER_PAGE))
    page = min(page, pages)
    return render(
        request, "hlr/risky.html", principal, status_code=status_code,
        operators=risky.list_operators(session, q, limit=RISKY_PER_PAGE, offset=(page - 1) * RISKY_PER_PAGE),
        total=risky.count_operators(session), matching=matching, page=page, pages=pages, q=q, error=error,
        qs=urlencode({"q": q}) if q else "",
    )


@router.get("/hlr/risky")
def risky_page(
    request: Request, q: str = Query(default="", max_length=200), page: int = Query(default=1, ge=1, le=100_000),
    session: Session = SESSION, principal: Principal = Depends(page_viewer),
) -> Response:
    return _risky_page(request, session, principal, q, page=page)


@router.post("/hlr/risky")
def risky_add(
    request: Request,
    name: str = Form(""),
    mccmnc: str = Form(""),
    note: str = Form(""),
    session: Session = SESSION,
    principal: Principal = Depends(page_admin),
) -> Response:
    try:
        risky.add_operator(session, principal, name, mccmnc, note or None)
    except AppError as exc:
        return form_error(session, exc, _risky_page, request, session, principal)
    return redirect_with("/hlr/risky?" + urlencode({"q": name.strip()}),
                         f"Added {name.strip()} to the risky operators.")


@router.post("/hlr/risky/{operator_id}/delete")
def risky_delete(
    operator_id: int, session: Session = SESSION, principal: Principal = Depends(page_admin)
) -> Response:
    risky.remove_operator(session, principal, operator_id)
    return redirect_with("/hlr/risky", "Operator removed from the risky list.")


@router.post("/hlr/risky/restore")
def risky_restore(session: Session = SESSION, principal: Principal = Depends(page_admin)) -> Response:
    added = risky.restore_seed(session, principal)
    return redirect_with("/hlr/risky", f"{added} of the original's names restored." if added
                         else "Nothing to restore: every original name is on the list.")


@router.get("/hlr/outcomes")
def outcomes_page(
    request: Request, session: Session = SESSION, principal: Principal = Depends(page_viewer)
) -> Response:
    return render(request, "hlr/outcomes.html", principal, rules=outcomes.rules_table(session),
                  actions=outcomes.ACTIONS, error=None)


@router.post("/hlr/outcomes")
async def outcomes_save(
    request: Request, session: Session = SESSION, principal: Principal = Depends(page_admin)
) -> Response:
    form = await request.form()
    changes = {
        key: {"action": str(form.get(f"action_{key}", "")), "reason": str(form.get(f"reason_{key}", "")) or None}
        for key in outcomes.KEYS
        if form.get(f"action_{key}")
    }
    try:
        outcomes.set_rules(session, principal, changes)
    except AppError as exc:
        session.rollback()
        return render(request, "hlr/outcomes.html", principal, status_code=exc.status_code,
                      rules=outcomes.rules_table(session), actions=outcomes.ACTIONS, error=exc.message)
    return redirect_with("/hlr/outcomes", "Outcome rules saved: new HLR results follow them.")


@router.post("/hlr/outcomes/reset")
def outcomes_reset(session: Session = SESSION, principal: Principal = Depends(page_admin)) -> Response:
    outcomes.reset_rules(session, principal)
    return redirect_with("/hlr/outcomes", "Outcome rules reset to the defaults.")
