"""Numbers pages: overview with counts, lookup, lists, OS rules, imports, exports."""

from __future__ import annotations

import json
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Form, Request, UploadFile
from fastapi.responses import RedirectResponse, Response
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from phoneops.core import storage
from phoneops.core.deps import DbSession, page_admin, page_operator, page_viewer
from phoneops.core.errors import AppError
from phoneops.core.security import Principal
from phoneops.numbers import exports, imports, lists, rules
from phoneops.numbers.router import region_or_default
from phoneops.numbers.story import key_of, story_for_key
from phoneops.settings import get_settings
from phoneops.ui.render import render
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
    return RedirectResponse(f"/numbers?number={number}&region={region}", status_code=303)


@router.get("/numbers/lists/{status}")
def list_page(
    request: Request,
    status: str,
    after_id: int = 0,
    session: Session = DbSession,
    principal: Principal = Depends(page_viewer),
) -> Response:
    rows = lists.list_numbers(session, principal, status, limit=100, after_id=after_id)
    return render(
        request,
        "numbers/list.html",
        principal,
        status=status,
        rows=rows,
        next_after=rows[-1]["id"] if len(rows) == 100 else None,
    )


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
                          rules_json=rules_json, note=note, error=None, preview=preview)  # fmt: skip
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
    return RedirectResponse(f"/jobs/{job.id}", status_code=303)


@router.get("/numbers/imports")
def imports_page(
    request: Request, session: Session = DbSession, principal: Principal = Depends(page_viewer)
) -> Response:
    return render(
        request,
        "numbers/imports.html",
        principal,
        imports=imports.list_imports(session),
        error=None,
        region=get_settings().default_region,
    )


@router.post("/numbers/imports")
async def imports_upload(
    request: Request,
    file: UploadFile,
    target: str = Form(...),
    region: str = Form(""),
    session: Session = DbSession,
    principal: Principal = Depends(page_operator),
) -> Response:
    from collections.abc import AsyncIterator

    async def chunks() -> AsyncIterator[bytes]:
        while block := await file.read(storage.CHUNK):
            yield block

    try:
        stored = await storage.get_storage().save_stream(
            session,
            principal,
            chunks(),
            kind="import",
            original_name=file.filename,
            content_type=file.content_type,
            max_bytes=get_settings().max_upload_bytes,
        )
        await run_in_threadpool(imports.import_numbers, session, principal, stored, target,  # off the event loop
                                region=region_or_default(region or None))
    except AppError as exc:
        session.rollback()
        return render(
            request,
            "numbers/imports.html",
            principal,
            status_code=exc.status_code,
            imports=imports.list_imports(session),
            error=exc.message,
            region=region,
        )
    return RedirectResponse("/numbers/imports", status_code=303)


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
    exports.start_export(session, principal, status)
    return RedirectResponse("/numbers/exports", status_code=303)
