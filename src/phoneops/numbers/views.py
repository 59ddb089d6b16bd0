# Over 400 lines: one router per domain: every numbers page, each a thin handler.
"""Numbers pages: overview with counts, lookup, lists, OS rules, imports, exports."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import date
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Form, Query, Request, UploadFile
from fastapi.responses import RedirectResponse, Response
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from phoneops.core import storage
from phoneops.core.deps import DbSession, page_admin, page_operator, page_viewer
from phoneops.core.errors import AppError, NotFound, ValidationFailed
from phoneops.core.security import Principal, Role
from phoneops.numbers import browse, exports, imports, lists, optouts, rules
from phoneops.numbers.links import key_of, linked
from phoneops.numbers.models import ManualImport
from phoneops.numbers.router import region_or_default
from phoneops.numbers.story import story_for_key
from phoneops.settings import get_settings
from phoneops.sources.service import normalise_label
from phoneops.ui.flash import flash, redirect_with
from phoneops.ui.render import form_error, render
from phoneops.ui.views import Card

router = APIRouter(include_in_schema=False)


def dashboard_cards(session: Session) -> list[Card]:
    counts = lists.list_counts(session)
    return [
        Card(
            "Numbers by list",
            f"{sum(c['total'] for c in counts.values()):,}",
            "/numbers",
            chart={name: c["total"] for name, c in counts.items()},
        )
    ]


@router.get("/numbers")
def overview(
    request: Request,
    number: str | None = None,
    region: str | None = None,
    session: Session = DbSession,
    principal: Principal = Depends(page_viewer),
) -> Response:
    found, error = None, None
    if number:
        try:
            found = lists.lookup(session, principal, number, region_or_default(region))
        except AppError as exc:
            error = exc.message
    return render(
        request,
        "numbers/overview.html",
        principal,
        counts=lists.list_counts(session),
        found=found,
        found_key=key_of(found.number) if found else "",
        error=error,
        number=number or "",
        region=region or get_settings().default_region,
        message=None,
    )


@router.get("/numbers/n/{key}")
def number_page(
    request: Request,
    key: str,
    session: Session = DbSession,
    principal: Principal = Depends(page_viewer),
) -> Response:
    """A number's whole story; the address is its blind index, so no number is ever in a URL."""
    story = story_for_key(session, principal, key, get_settings().default_region)
    return render(request, "numbers/story.html", principal, story=story)


@router.get("/numbers/find")
def find_page(
    number: str = "",
    region: str = "",
    session: Session = DbSession,
    principal: Principal = Depends(page_viewer),
) -> Response:
    """The lookup form's target: on to the number's page (an unreadable number back to the form)."""
    try:
        e164 = lists.to_e164(number, region_or_default(region or None))
    except AppError:
        return RedirectResponse(f"/numbers?{urlencode({'number': number, 'region': region})}", status_code=303)
    return RedirectResponse(f"/numbers/n/{key_of(e164)}", status_code=303)


@router.post("/numbers/status")
def set_status(
    request: Request,
    number: str = Form(...),
    status: str = Form(...),
    reason: str = Form(...),
    region: str = Form(""),
    session: Session = DbSession,
    principal: Principal = Depends(page_operator),
) -> Response:
    try:
        lists.set_status(
            session,
            principal,
            number,
            status or None if status != "none" else None,
            reason,
            region=region_or_default(region or None),
        )
    except AppError as exc:
        session.rollback()
        return render(
            request,
            "numbers/overview.html",
            principal,
            status_code=exc.status_code,
            counts=lists.list_counts(session),
            found=None,
            error=exc.message,
            number=number,
            region=region,
            message=None,
        )
    label = "on no list" if status in ("", "none") else f"on the {status}"
    return redirect_with(f"/numbers?{urlencode({'number': number, 'region': region})}",
                         f"Saved: the number is now {label}.")


LIST_PER_PAGE = 100


def _list_query(
    status: str,
    country: str = Query(default="", max_length=2),
    reason: str = Query(default="", max_length=64),
    source: str = Query(default="", max_length=32),
    authority: str = Query(default="", max_length=8),
    date_from: date | None = None,
    date_to: date | None = None,
    sort: str = Query(default=browse.DEFAULT_SORT, max_length=32),
) -> browse.ListQuery:
    return browse.ListQuery(status, country, reason, source, authority, date_from, date_to, sort)


@router.get("/numbers/lists/{status}")
def list_page(
    request: Request,
    query: browse.ListQuery = Depends(_list_query),
    page: int = Query(default=1, ge=1, le=1_000_000),
    session: Session = DbSession,
    principal: Principal = Depends(page_viewer),
) -> Response:
    """One list as a table: filters, sortable columns, real pages with the total, CSV of the filtered table."""
    try:
        query = query.checked()
    except AppError as exc:  # an unknown sort key or reversed dates: the table without them, and why
        if query.status not in lists.LISTS:
            raise
        fixed = replace(query, sort=browse.DEFAULT_SORT, date_from=None, date_to=None) if exc.code == "bad_sort" \
            else replace(query, date_from=None, date_to=None)
        return flash(RedirectResponse(f"{request.url.path}?{fixed.qs()}".rstrip("?"), status_code=303),
                     exc.message, "error")
    total = browse.count(session, query)
    pages = max(1, -(-total // LIST_PER_PAGE))
    page = min(page, pages)
    rows = browse.page(session, principal, query, limit=LIST_PER_PAGE, offset=(page - 1) * LIST_PER_PAGE)
    return render(
        request, "numbers/list.html", principal, status=query.status, rows=rows, query=query, total=total,
        page=page, pages=pages, qs=query.qs(), filters_qs=query.filters_qs(),
        facets=browse.facets(session, query.status), export_max=browse.EXPORT_MAX,
    )


@router.get("/numbers/lists/{status}/export.csv")
def list_export(
    query: browse.ListQuery = Depends(_list_query),
    session: Session = DbSession,
    principal: Principal = Depends(page_viewer),
) -> Response:
    """The filtered list as CSV, sorted as on the page (numbers masked below admin; audited)."""
    from phoneops.core.csvio import csv_lines

    rows = list(browse.export_rows(session, principal, query))
    return Response("".join(csv_lines(browse.CSV_COLUMNS, rows)), media_type="text/csv",
                    headers={"Content-Disposition": f'attachment; filename="{query.status}.csv"'})


@router.get("/numbers/rules")
def rules_page(
    request: Request, session: Session = DbSession, principal: Principal = Depends(page_viewer)
) -> Response:
    return render(
        request,
        "numbers/rules.html",
        principal,
        rules=rules.rules_as_dicts(session),
        rules_json=json.dumps(rules.rules_as_dicts(session), indent=2),
        error=None,
    )


@router.post("/numbers/rules")
def rules_save(
    request: Request,
    rules_json: str = Form(...),
    note: str = Form(""),
    action: str = Form("apply"),
    session: Session = DbSession,
    principal: Principal = Depends(page_admin),
) -> Response:
    """`action=preview`: how many numbers the edited rules would move (nothing saved); `apply`: save them and
    re-evaluate the numbers as a background job (its page shows the progress)."""
    from phoneops.numbers.osrules import rules_from_dicts
    from phoneops.voluum import reclassify

    try:
        data = json.loads(rules_json)
        if not isinstance(data, list):
            raise ValueError("the rules must be a JSON list")
        if action == "preview":
            preview = reclassify.preview(session, rules_from_dicts(data))
            return render(request, "numbers/rules.html", principal, rules=rules.rules_as_dicts(session),
                          rules_json=rules_json, note=note, error=None, preview=preview)
        rules.replace_rules(session, principal, data, note or None)
        job = reclassify.start(session, principal, note=note)
    except (ValueError, AppError) as exc:
        session.rollback()
        message = exc.message if isinstance(exc, AppError) else f"not valid JSON: {exc}"
        details = getattr(exc, "details", None)
        if details:
            message += " — " + "; ".join(f"{k}: {v}" for k, v in details.items())
        return render(
            request,
            "numbers/rules.html",
            principal,
            status_code=422,
            rules=rules.rules_as_dicts(session),
            rules_json=rules_json,
            note=note,
            error=message,
        )
    return redirect_with(f"/jobs/{job.id}", "OS rules saved: the numbers are being re-evaluated under them.",
                         link=("Back to the rules", "/numbers/rules"))


def _imports_page(
    request: Request, session: Session, principal: Principal, *, error: str | None, region: str, status_code: int = 200
) -> Response:
    return render(
        request,
        "numbers/imports.html",
        principal,
        status_code=status_code,
        imports=imports.list_imports(session),
        error=error,
        region=region,
        reasons=optouts.REASONS,
        undo_days=get_settings().import_undo_days,
    )


@router.get("/numbers/imports")
def imports_page(
    request: Request, session: Session = DbSession, principal: Principal = Depends(page_viewer)
) -> Response:
    return _imports_page(request, session, principal, error=None, region=get_settings().default_region)


@router.post("/numbers/imports")
async def imports_upload(
    request: Request,
    file: UploadFile,
    target: str = Form(""),
    kind: str = Form("list"),
    region: str = Form(""),
    source_label: str = Form(""),
    session: Session = DbSession,
    principal: Principal = Depends(page_operator),
) -> Response:
    from collections.abc import AsyncIterator


    async def chunks() -> AsyncIterator[bytes]:
        while block := await file.read(storage.CHUNK):
            yield block

    try:
        if kind not in ("list", "optout", "inbound"):
            raise ValidationFailed("kind must be one of list, optout, inbound")
        region_value = region_or_default(region or None)
        label = normalise_label(source_label)
        stored = await storage.get_storage().save_stream(
            session,
            principal,
            chunks(),
            kind="import",
            original_name=file.filename,
            content_type=file.content_type,
            max_bytes=get_settings().max_upload_bytes,
        )
        record = await run_in_threadpool(
            imports.start_import, session, principal, stored, kind=kind, target=target or None, region=region_value,
            source_label=label,
        )
    except AppError as exc:
        return form_error(session, exc, _imports_page, request, session, principal, region=region)
    return redirect_with(f"/numbers/imports/{record.id}", f"Uploaded {file.filename}: the preview is being made; "
                         "check it, then apply or discard it.")


def _actions(record: ManualImport, principal: Principal) -> list[str]:
    mine = principal.can(Role.admin) or record.created_by == principal.username
    if not mine:
        return []
    if record.status == "preview":
        return ["apply", "discard"]
    if record.status == "failed":
        return ["discard"]
    if record.status == "applied" and (record.kind == "list" or record.kind == "bulk" or principal.can(Role.admin)):
        return ["undo"]
    return []


def _import_page(
    request: Request, session: Session, principal: Principal, import_id: int, *, error: str | None = None,
    status_code: int = 200,
) -> Response:
    from phoneops.core.jobs import get_job

    record = imports.get_import(session, import_id)
    job = get_job(session, record.job_id) if record.job_id else None
    preview = dict(record.preview or {})
    shown = [r for rows in (preview.get("samples") or {}).values() for r in rows]
    shown += list((record.undo or {}).get("refused_numbers") or [])
    return render(
        request, "numbers/import.html", principal, status_code=status_code, record=record, job=job, preview=preview,
        counts=preview.get("counts") or {}, actions=_actions(record, principal), error=error,
        undo_until=imports.undo_deadline(record) or "", linked=linked(session, [r.get("key") for r in shown]),
    )


@router.get("/numbers/imports/{import_id}")
def import_page(
    request: Request, import_id: int, session: Session = DbSession, principal: Principal = Depends(page_viewer)
) -> Response:
    return _import_page(request, session, principal, import_id)


@router.post("/numbers/imports/{import_id}/{action}")
def import_action(
    request: Request,
    import_id: int,
    action: str,
    session: Session = DbSession,
    principal: Principal = Depends(page_operator),
) -> Response:
    steps = {"apply": imports.confirm, "discard": imports.discard, "undo": imports.undo}
    try:
        if action not in steps:
            raise NotFound(f"no action {action!r}")
        steps[action](session, principal, import_id)
    except AppError as exc:
        return form_error(session, exc, _import_page, request, session, principal, import_id)
    done = {"apply": "is being applied", "discard": "discarded", "undo": "is being undone"}
    return redirect_with(f"/numbers/imports/{import_id}", f"Import {import_id} {done[action]}.")


def _optouts_page(
    request: Request, session: Session, principal: Principal, *, lifted: bool = False, after_id: int = 0,
    error: str | None = None, message: str | None = None, region: str | None = None, status_code: int = 200,
) -> Response:
    rows = optouts.list_optouts(session, principal, active=not lifted, limit=100, after_id=after_id)
    return render(
        request, "numbers/optouts.html", principal, status_code=status_code, rows=rows, lifted=lifted,
        linked=linked(session, [r["key"] for r in rows]),
        next_after=rows[-1]["id"] if len(rows) == 100 else None, counts=optouts.counts(session),
        reasons=optouts.REASONS, error=error, message=message, region=region or get_settings().default_region,
    )


@router.get("/numbers/optouts")
def optouts_page(
    request: Request,
    lifted: bool = False,
    after_id: int = 0,
    session: Session = DbSession,
    principal: Principal = Depends(page_viewer),
) -> Response:
    return _optouts_page(request, session, principal, lifted=lifted, after_id=after_id)


@router.post("/numbers/optouts")
def optouts_add(
    request: Request,
    number: str = Form(...),
    reason: str = Form(...),
    detail: str = Form(""),
    region: str = Form(""),
    session: Session = DbSession,
    principal: Principal = Depends(page_operator),
) -> Response:
    try:
        result = optouts.add(session, principal, number, reason, region=region_or_default(region or None),
                             source="ui", detail=detail or None)
    except AppError as exc:
        return form_error(session, exc, _optouts_page, request, session, principal, region=region)
    message = "Opted out." if result.recorded else "That number was already opted out."
    return redirect_with("/numbers/optouts", message, "ok" if result.recorded else "warn")


@router.post("/numbers/optouts/feeds/{feed}")
def optouts_feed(
    request: Request, feed: str, session: Session = DbSession, principal: Principal = Depends(page_operator)
) -> Response:
    """Fetch opt-outs from a provider now: MessageWhiz unsubscribe lists or Ongage unsubscribes (a job)."""
    from phoneops.broadcasts.unsubscribers import start_sync
    from phoneops.ongage.unsubscribes import start_check

    starters = {"messagewhiz": start_sync, "ongage": start_check}
    try:
        if feed not in starters:
            raise NotFound(f"no opt-out feed {feed!r}")
        job = starters[feed](session, principal)
    except AppError as exc:
        return form_error(session, exc, _optouts_page, request, session, principal)
    return redirect_with(f"/jobs/{job.id}", f"Fetching {feed.capitalize()} opt-outs now.",
                         link=("Back to opt-outs", "/numbers/optouts"))


@router.post("/numbers/optouts/lift")
def optouts_lift(
    request: Request,
    number: str = Form(...),
    reason: str = Form(...),
    region: str = Form(""),
    session: Session = DbSession,
    principal: Principal = Depends(page_admin),
) -> Response:
    try:
        optouts.lift(session, principal, number, reason, region=region_or_default(region or None))
    except AppError as exc:
        return form_error(session, exc, _optouts_page, request, session, principal, region=region)
    return redirect_with("/numbers/optouts", "Opt-out lifted.")


@router.get("/numbers/exports")
def exports_page(
    request: Request, session: Session = DbSession, principal: Principal = Depends(page_viewer)
) -> Response:
    return render(request, "numbers/exports.html", principal, exports=exports.exports(session))


@router.post("/numbers/exports")
def exports_start(
    status: str = Form(...),
    session: Session = DbSession,
    principal: Principal = Depends(page_operator),
) -> Response:
    try:
        job = exports.start_export(session, principal, status)
    except AppError as exc:
        session.rollback()
        return redirect_with("/numbers/exports", f"Not started: {exc.message}", "error")
    return redirect_with("/numbers/exports", f"Export of the {status} started: its file appears below when done.",
                         link=("Follow the job", f"/jobs/{job.id}"))
