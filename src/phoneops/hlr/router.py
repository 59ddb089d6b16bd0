"""HLR API: lookups (estimate, confirm, resume, cancel, results, files), number history, risky operators,
outcome rules."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Query
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field
from sqlalchemy.orm import Session

from phoneops.core import storage
from phoneops.core.deps import DbSession, admin, operator, viewer
from phoneops.core.errors import NotFound, ValidationFailed
from phoneops.core.router import file_response
from phoneops.core.schemas import JobOut
from phoneops.core.security import Principal
from phoneops.hlr import estimates, lookups, outcomes, outputs, risky
from phoneops.hlr.lookups import FileSource, ListSource, check_region
from phoneops.hlr.models import HlrLookup
from phoneops.hlr.schemas import (
    CountOut,
    EstimateCreate,
    LookupCreate,
    LookupOut,
    OutcomeRuleOut,
    ResultOut,
    RiskyOperatorIn,
    RiskyOperatorOut,
    RuleIn,
)
from phoneops.numbers.lists import to_e164

router = APIRouter(prefix="/api/hlr", tags=["hlr"])
# Committed before the response leaves (not after it, FastAPI's default): a redirect or a client reading right
# after a change sees it, and a failed commit is an error rather than a success already sent.
SESSION = DbSession


def lookup_out(session: Session, lookup: HlrLookup) -> LookupOut:
    data = lookups.describe_lookup(session, lookup)
    job = data.pop("job")
    return LookupOut.model_validate({**data, "job": JobOut.model_validate(job) if job is not None else None})


def source_of(body: LookupCreate) -> FileSource | ListSource:
    if body.source == "list":
        if body.status is None:
            raise ValidationFailed("a list selection needs `status` (blacklist, monitor or whitelist)")
        return ListSource(body.status, body.country)
    if not body.file_id:
        raise ValidationFailed("a file lookup needs `file_id` (upload it with POST /api/files)")
    return FileSource(body.file_id, body.phone_column, body.region)


# --- estimates ---------------------------------------------------------------------------------------


@router.post("/estimates", response_model=JobOut, status_code=202)
def start_estimate(body: EstimateCreate, session: Session = SESSION, actor: Principal = Depends(operator)) -> JobOut:
    """Estimate a lookup of a stored file in a background job; follow it with GET /api/jobs/{id} (its `result`
    is the estimate, as a lookup's `estimate` shows it, plus `source`)."""
    job = estimates.start_estimate(session, actor, FileSource(body.file_id, body.phone_column, body.region),
                                   include_non_mobile=body.include_non_mobile)
    return JobOut.model_validate(job)


# --- lookups -----------------------------------------------------------------------------------------


@router.post("/lookups", response_model=LookupOut, status_code=201)
def create_lookup(
    body: LookupCreate, session: Session = SESSION, actor: Principal = Depends(operator)
) -> LookupOut:
    lookup = lookups.create_lookup(
        session, actor, source_of(body), mode=body.mode, batch_size=body.batch_size, confirm=body.confirm,
        start=body.start, include_non_mobile=body.include_non_mobile,
    )
    session.flush()
    return lookup_out(session, lookup)


@router.get("/lookups", response_model=list[LookupOut])
def list_lookups(
    status: str | None = Query(default=None, description="comma-separated statuses"),
    limit: int = Query(default=50, ge=1, le=500),
    session: Session = SESSION,
    _: Principal = Depends(viewer),
) -> list[LookupOut]:
    return [lookup_out(session, lookup) for lookup in lookups.list_lookups(session, limit, status)]


@router.get("/lookups/{lookup_id}", response_model=LookupOut)
def get_lookup(lookup_id: int, session: Session = SESSION, _: Principal = Depends(viewer)) -> LookupOut:
    return lookup_out(session, lookups.get_lookup(session, lookup_id))


@router.post("/lookups/{lookup_id}/confirm", response_model=LookupOut)
def confirm_lookup(
    lookup_id: int, session: Session = SESSION, actor: Principal = Depends(operator)
) -> LookupOut:
    return lookup_out(session, lookups.confirm_lookup(session, actor, lookup_id))


@router.post("/lookups/{lookup_id}/resume", response_model=LookupOut)
def resume_lookup(
    lookup_id: int, session: Session = SESSION, actor: Principal = Depends(operator)
) -> LookupOut:
    return lookup_out(session, lookups.resume_lookup(session, actor, lookup_id))


@router.post("/lookups/{lookup_id}/release-review", response_model=LookupOut)
def release_review(lookup_id: int, session: Session = SESSION, actor: Principal = Depends(operator)) -> LookupOut:
    """Look the numbers in review up again (their interrupted call may have been paid: an explicit decision)."""
    return lookup_out(session, lookups.release_review(session, actor, lookup_id))


class WriteOffIn(BaseModel):
    reason: str = Field(min_length=1, max_length=500)


@router.post("/lookups/{lookup_id}/write-off-review", response_model=LookupOut)
def write_off_review(
    lookup_id: int, body: WriteOffIn, session: Session = SESSION, actor: Principal = Depends(operator)
) -> LookupOut:
    """Close the numbers in review without looking them up again, with the reason (audited)."""
    return lookup_out(session, lookups.write_off_review(session, actor, lookup_id, body.reason))


@router.post("/lookups/{lookup_id}/cancel", response_model=LookupOut)
def cancel_lookup(
    lookup_id: int, session: Session = SESSION, actor: Principal = Depends(operator)
) -> LookupOut:
    return lookup_out(session, lookups.cancel_lookup(session, actor, lookup_id))


@router.get("/lookups/{lookup_id}/results", response_model=list[ResultOut])
def lookup_results(
    lookup_id: int,
    state: str | None = Query(default=None, description="cached, done, review, failed, pending, sending"),
    after_id: int = 0,
    limit: int = Query(default=100, ge=1, le=1000),
    session: Session = SESSION,
    actor: Principal = Depends(viewer),
) -> list[ResultOut]:
    lookups.get_lookup(session, lookup_id)
    rows = outputs.result_page(session, actor, lookup_id, after_id=after_id, limit=limit, state=state)
    return [ResultOut.model_validate(row) for row in rows]


def _download(session: Session, actor: Principal, lookup_id: int, which: str) -> StreamingResponse:
    lookup = lookups.get_lookup(session, lookup_id)
    file_id = lookup.clean_file_id if which == "clean" else lookup.raw_file_id
    if not file_id:
        raise NotFound(f"HLR lookup {lookup_id} has no {which} file yet")
    return file_response(session, actor, storage.get_file(session, file_id))


@router.get("/lookups/{lookup_id}/clean.csv", response_class=StreamingResponse)
def download_clean(
    lookup_id: int, session: Session = SESSION, actor: Principal = Depends(operator)
) -> StreamingResponse:
    """The clean file: live numbers not on a risky network (plaintext: operators, audited)."""
    return _download(session, actor, lookup_id, "clean")


@router.get("/lookups/{lookup_id}/raw.csv", response_class=StreamingResponse)
def download_raw(
    lookup_id: int, session: Session = SESSION, actor: Principal = Depends(operator)
) -> StreamingResponse:
    """The raw results file: every number with its state, the provider's fields and our outcome."""
    return _download(session, actor, lookup_id, "raw")


@router.get("/numbers", response_model=list[ResultOut])
def number_results(
    number: str = Query(max_length=64),
    region: str | None = Query(default=None, min_length=2, max_length=2),
    session: Session = SESSION,
    actor: Principal = Depends(viewer),
) -> list[ResultOut]:
    """Every stored HLR result of one number, newest first."""
    e164 = to_e164(number, check_region(region))
    return [ResultOut.model_validate(row) for row in outputs.number_history(session, actor, e164)]


# --- risky operators ------------------------------------------------------------------------------------


@router.get("/risky-operators", response_model=list[RiskyOperatorOut])
def list_risky(
    q: str | None = Query(default=None, max_length=200),
    limit: int = Query(default=1000, ge=1, le=5000),
    session: Session = SESSION,
    _: Principal = Depends(viewer),
) -> list[RiskyOperatorOut]:
    return [RiskyOperatorOut.model_validate(row) for row in risky.list_operators(session, q, limit)]


@router.post("/risky-operators", response_model=RiskyOperatorOut, status_code=201)
def add_risky(
    body: RiskyOperatorIn, session: Session = SESSION, actor: Principal = Depends(admin)
) -> RiskyOperatorOut:
    return RiskyOperatorOut.model_validate(risky.add_operator(session, actor, body.name, body.mccmnc, body.note))


@router.delete("/risky-operators/{operator_id}", response_model=CountOut)
def remove_risky(operator_id: int, session: Session = SESSION, actor: Principal = Depends(admin)) -> CountOut:
    risky.remove_operator(session, actor, operator_id)
    return CountOut(count=risky.count_operators(session))


@router.post("/risky-operators/restore", response_model=CountOut)
def restore_risky(session: Session = SESSION, actor: Principal = Depends(admin)) -> CountOut:
    """Put back the original's names that are missing (admin entries are kept); returns how many."""
    return CountOut(count=risky.restore_seed(session, actor))


# --- outcome rules --------------------------------------------------------------------------------------


@router.get("/outcomes", response_model=list[OutcomeRuleOut])
def get_outcomes(session: Session = SESSION, _: Principal = Depends(viewer)) -> list[OutcomeRuleOut]:
    return [OutcomeRuleOut.model_validate(row) for row in outcomes.rules_table(session)]


@router.put("/outcomes", response_model=list[OutcomeRuleOut])
def put_outcomes(
    body: dict[str, RuleIn], session: Session = SESSION, actor: Principal = Depends(admin)
) -> list[OutcomeRuleOut]:
    """Override rows of the mapping (`{"DEAD": {"action": "monitor", "reason": "HLR_DEAD"}}`)."""
    outcomes.set_rules(session, actor, {key: rule.model_dump() for key, rule in body.items()})
    return [OutcomeRuleOut.model_validate(row) for row in outcomes.rules_table(session)]


@router.post("/outcomes/reset", response_model=list[OutcomeRuleOut])
def reset_outcomes(session: Session = SESSION, actor: Principal = Depends(admin)) -> list[OutcomeRuleOut]:
    outcomes.reset_rules(session, actor)
    return [OutcomeRuleOut.model_validate(row) for row in outcomes.rules_table(session)]
