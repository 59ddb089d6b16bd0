"""Numbers API: lookup, statuses, lists, OS rules, imports, exports, link tokens."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Form, Query, UploadFile
from fastapi.responses import Response, StreamingResponse
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from phoneops.core import storage
from phoneops.core.audit import audit
from phoneops.core.deps import DbSession, admin, operator, viewer
from phoneops.core.errors import Forbidden, NotFound, ValidationFailed
from phoneops.core.jobs import get_job
from phoneops.core.router import downloadable, file_response
from phoneops.core.schemas import JobOut
from phoneops.core.security import Principal, Role
from phoneops.numbers import exports, imports, lists, optouts, rules
from phoneops.numbers.normalize import normalize
from phoneops.numbers.schemas import (
    ApplyOut,
    BulkStatusIn,
    ExportIn,
    ImportOut,
    ListCounts,
    NumberOut,
    NumberStoryOut,
    OptOutIn,
    OptOutLiftIn,
    RuleSetIn,
    StatusIn,
    TokenResult,
    TokensIn,
)
from phoneops.numbers.vault import get_vault
from phoneops.settings import get_settings
from phoneops.sources.service import normalise_label

router = APIRouter(prefix="/api/numbers", tags=["numbers"])


def region_or_default(region: str | None) -> str:
    import phonenumbers

    value = (region or get_settings().default_region).upper()
    if value not in phonenumbers.SUPPORTED_REGIONS:
        raise ValidationFailed(f"unknown region code {value!r} (use an ISO 3166 code such as GB or US)")
    return value


@router.get("/lookup", response_model=NumberOut)
def lookup(
    number: str = Query(max_length=64),
    region: str | None = None,
    session: Session = DbSession,
    actor: Principal = Depends(viewer),
) -> NumberOut:
    view = lists.lookup(session, actor, number, region_or_default(region))
    return NumberOut.model_validate({**view.__dict__, "opt_out": optouts.state_for(session, view.number)})


@router.post("/status", response_model=ApplyOut)
def set_status(
    body: StatusIn, session: Session = DbSession, actor: Principal = Depends(operator)
) -> ApplyOut:
    result = lists.set_status(
        session, actor, body.number, body.status, body.reason, region=region_or_default(body.region)
    )
    return ApplyOut.model_validate(result.as_dict())


@router.post("/bulk-status", response_model=ImportOut, status_code=202)
def bulk_status(
    body: BulkStatusIn, session: Session = DbSession, actor: Principal = Depends(operator)
) -> ImportOut:
    """Queue the preview of a bulk set; nothing changes until POST /api/numbers/imports/{id}/apply."""
    record = imports.start_bulk(
        session, actor, body.numbers, body.status, body.reason, region=region_or_default(body.region)
    )
    return ImportOut.model_validate(record)


@router.get("/counts", response_model=dict[str, ListCounts])
def counts(
    session: Session = DbSession, _: Principal = Depends(viewer)
) -> dict[str, ListCounts]:
    return {k: ListCounts.model_validate(v) for k, v in lists.list_counts(session).items()}


@router.get("/lists/{status}")
def list_page(
    status: str,
    after_id: int = 0,
    limit: int = Query(default=100, ge=1, le=1000),
    session: Session = DbSession,
    actor: Principal = Depends(viewer),
) -> list[dict[str, Any]]:
    return lists.list_numbers(session, actor, status, limit=limit, after_id=after_id)


# --- OS rules ----------------------------------------------------------------------------------


@router.get("/os-rules")
def get_rules(
    session: Session = DbSession, _: Principal = Depends(viewer)
) -> list[dict[str, Any]]:
    return rules.rules_as_dicts(session)


@router.put("/os-rules")
def put_rules(
    body: RuleSetIn, response: Response, session: Session = DbSession, actor: Principal = Depends(admin)
) -> list[dict[str, Any]]:
    """Replace the rules, then re-evaluate every number the tracker saw under them (a background job whose id
    is in the `X-Job-Id` header; preview first with POST /os-rules/preview)."""
    from phoneops.voluum import reclassify

    rules.replace_rules(session, actor, body.rules, body.note)
    response.headers["X-Job-Id"] = reclassify.start(session, actor, note=body.note or "").id
    return rules.rules_as_dicts(session)


@router.post("/os-rules/preview")
def preview_rules(
    body: RuleSetIn, session: Session = DbSession, _: Principal = Depends(admin)
) -> dict[str, Any]:
    """How many numbers a rule set would move, from which list to which; nothing is changed."""
    from phoneops.numbers.osrules import rules_from_dicts
    from phoneops.voluum import reclassify

    return reclassify.preview(session, rules_from_dicts(body.rules))


@router.post("/os-rules/reset")
def reset_rules(
    response: Response, session: Session = DbSession, actor: Principal = Depends(admin)
) -> list[dict[str, Any]]:
    from phoneops.voluum import reclassify

    rules.reset_rules(session, actor)
    response.headers["X-Job-Id"] = reclassify.start(session, actor, note="reset to defaults").id
    return rules.rules_as_dicts(session)


@router.get("/classify")
def classify(
    os: str | None = Query(default=None, max_length=200),
    ua: str | None = Query(default=None, max_length=2000),
    session: Session = DbSession,
    _: Principal = Depends(viewer),
) -> dict[str, Any]:
    if not os and not ua:
        raise ValidationFailed("give an OS string (os=...) or a user agent (ua=...)")
    return rules.classify_text(session, os, ua)


# --- imports -----------------------------------------------------------------------------------


@router.post("/imports", response_model=ImportOut, status_code=202)
async def import_file(
    file: UploadFile,
    target: str = Form(""),
    kind: str = Form("list"),
    region: str | None = Form(default=None),
    source_label: str = Form("", description="which list this is (the sources page, docs/sources.md)"),
    session: Session = DbSession,
    actor: Principal = Depends(operator),
) -> ImportOut:
    """Upload a file and queue its preview (kind list: target blacklist/monitor/whitelist; kind optout:
    phone + reason; kind inbound: phone + message). Nothing changes until .../apply."""
    from collections.abc import AsyncIterator


    region_value = region_or_default(region or None)
    if kind not in imports.KINDS or kind == "bulk":
        raise ValidationFailed("kind must be one of list, optout, inbound")
    if kind == "list" and target not in imports.TARGETS:
        raise ValidationFailed(f"target must be one of {', '.join(imports.TARGETS)}")
    label = normalise_label(source_label)  # refused before anything is stored

    async def chunks() -> AsyncIterator[bytes]:
        while block := await file.read(storage.CHUNK):
            yield block

    stored = await storage.get_storage().save_stream(
        session,
        actor,
        chunks(),
        kind="import",
        original_name=file.filename,
        content_type=file.content_type,
        max_bytes=get_settings().max_upload_bytes,
    )
    record = await run_in_threadpool(
        imports.start_import, session, actor, stored, kind=kind, target=target or None, region=region_value,
        source_label=label,
    )
    return ImportOut.model_validate(record)


@router.get("/imports/{import_id}", response_model=ImportOut)
def get_import(import_id: int, session: Session = DbSession, _: Principal = Depends(viewer)) -> ImportOut:
    return ImportOut.model_validate(imports.get_import(session, import_id))


@router.post("/imports/{import_id}/apply", response_model=ImportOut, status_code=202)
def apply_import(import_id: int, session: Session = DbSession, actor: Principal = Depends(operator)) -> ImportOut:
    """Confirm a previewed import: applied by a background job (see job_id)."""
    return ImportOut.model_validate(imports.confirm(session, actor, import_id))


@router.post("/imports/{import_id}/discard", response_model=ImportOut)
def discard_import(import_id: int, session: Session = DbSession, actor: Principal = Depends(operator)) -> ImportOut:
    return ImportOut.model_validate(imports.discard(session, actor, import_id))


@router.post("/imports/{import_id}/undo", response_model=ImportOut, status_code=202)
def undo_import(import_id: int, session: Session = DbSession, actor: Principal = Depends(operator)) -> ImportOut:
    """Undo an applied import (admin, or the operator who ran it, within IMPORT_UNDO_DAYS): a background job."""
    return ImportOut.model_validate(imports.undo(session, actor, import_id))


@router.get("/imports", response_model=list[ImportOut])
def list_imports(
    session: Session = DbSession, _: Principal = Depends(viewer)
) -> list[ImportOut]:
    return [ImportOut.model_validate(r) for r in imports.list_imports(session)]


@router.get("/imports/{import_id}/result")
def import_result(
    import_id: int, session: Session = DbSession, actor: Principal = Depends(viewer)
) -> StreamingResponse:
    record = imports.get_import(session, import_id)
    if record.result_file_id is None:
        raise NotFound("this import has no result file")
    # the result lists every uploaded number in plaintext: the generic per-kind file rule applies
    return file_response(session, actor, downloadable(session, actor, record.result_file_id))


# --- opt-outs ---------------------------------------------------------------------------------


@router.get("/optouts")
def list_optouts(
    active: bool = True,
    after_id: int = 0,
    limit: int = Query(default=100, ge=1, le=1000),
    session: Session = DbSession,
    actor: Principal = Depends(viewer),
) -> list[dict[str, Any]]:
    return optouts.list_optouts(session, actor, active=active, limit=limit, after_id=after_id)


@router.get("/optouts/counts")
def optout_counts(session: Session = DbSession, _: Principal = Depends(viewer)) -> dict[str, int]:
    return optouts.counts(session)


@router.post("/optouts", status_code=201)
def add_optout(body: OptOutIn, session: Session = DbSession, actor: Principal = Depends(operator)) -> dict[str, int]:
    return optouts.add(
        session, actor, body.number, body.reason, region=region_or_default(body.region), source="api",
        detail=body.detail,
    ).as_dict()


@router.post("/optouts/lift")
def lift_optout(
    body: OptOutLiftIn, session: Session = DbSession, actor: Principal = Depends(admin)
) -> dict[str, Any]:
    return optouts.lift(session, actor, body.number, body.reason, region=region_or_default(body.region))


# --- exports -----------------------------------------------------------------------------------


@router.post("/exports", response_model=JobOut, status_code=202)
def start_export(
    body: ExportIn, session: Session = DbSession, actor: Principal = Depends(operator)
) -> JobOut:
    return JobOut.model_validate(exports.start_export(session, actor, body.status))


@router.get("/exports", response_model=list[JobOut])
def list_exports(session: Session = DbSession, _: Principal = Depends(viewer)) -> list[JobOut]:
    return [JobOut.model_validate(j) for j in exports.exports(session)]


@router.get("/exports/{job_id}/download")
def download_export(
    job_id: str, session: Session = DbSession, actor: Principal = Depends(viewer)
) -> StreamingResponse:
    job = get_job(session, job_id)
    if job.kind != exports.KIND:
        raise NotFound(f"no export {job_id}")
    if job.status != "succeeded" or "file_id" not in job.result:
        raise NotFound(
            f"export {job_id} is {job.status}; nothing to download" + (f": {job.error}" if job.error else "")
        )
    if job.params.get("plaintext") and not actor.can(Role.admin):
        raise Forbidden("this export holds plaintext numbers: admins only")
    return file_response(session, actor, storage.get_file(session, str(job.result["file_id"])))


# --- link tokens -------------------------------------------------------------------------------


@router.post("/tokens/encrypt", response_model=list[TokenResult])
def encrypt_tokens(
    body: TokensIn, session: Session = DbSession, actor: Principal = Depends(operator)
) -> list[TokenResult]:
    region = region_or_default(body.region)
    cipher = get_vault().cipher
    out = []
    for value in body.values:
        normalized = normalize(value, region)
        if normalized.e164 is None:
            out.append(TokenResult(value=value, result=None, error=str(normalized.reason)))
        else:
            out.append(TokenResult(value=value, result=cipher.encrypt(normalized.e164), error=None))
    audit(session, actor, "numbers.tokens.encrypt", None, None, {"count": len(body.values)})
    return out


@router.post("/tokens/decrypt", response_model=list[TokenResult])
def decrypt_tokens(
    body: TokensIn, session: Session = DbSession, actor: Principal = Depends(admin)
) -> list[TokenResult]:
    from phoneops.core.errors import AppError

    cipher = get_vault().cipher
    out = []
    for value in body.values:
        try:
            out.append(TokenResult(value=value, result=cipher.decrypt(value), error=None))
        except AppError as exc:
            out.append(TokenResult(value=value, result=None, error=exc.message))
    audit(session, actor, "numbers.tokens.decrypt", None, None, {"count": len(body.values)})
    return out


# Declared last: a single path segment after /api/numbers/ that no route above claimed is a number.
@router.get("/{number}", response_model=NumberStoryOut)
def number_story(
    number: str,
    region: str | None = None,
    session: Session = DbSession,
    actor: Principal = Depends(viewer),
) -> NumberStoryOut:
    """A number's whole story: status and history, tracker traffic, conversions and live events, HLR
    results, broadcasts, Ongage, cleaning, imports, erasure."""
    from phoneops.numbers.story import story_for_number

    if len(number) > 64:
        raise ValidationFailed("not a phone number (too long)")
    return NumberStoryOut.model_validate(story_for_number(session, actor, number, region_or_default(region)).as_dict())
