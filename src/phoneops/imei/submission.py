# Over 400 lines: submission is one transaction: parse, validate, dedupe, guard cost, record intents.
"""Submitting IMEIs: input parsing, validation, duplicates caught before spending, the cost guard, batches.

A submission (one IMEI or 20,000) becomes an `ImeiBatch` with one `ImeiOrder` row per IMEI to send, in
state `queued`, and an `imei.batch` job that places them (`phoneops.imei.placing`). Nothing is sent from
here: every check that can save money happens first —

- invalid IMEIs (python-stdnum: 15 digits with a valid Luhn digit, 14 digits completed) are reported;
- an IMEI repeated in the batch is sent once;
- an IMEI already ordered for the same service (our history) is skipped unless `force` (audited);
- an IMEI being ordered for the same service right now (queued or sending in any batch) is skipped, even
  with `force`: the database holds at most one active intent per IMEI and service (a partial unique index;
  rows are inserted with ON CONFLICT DO NOTHING, so two submissions racing cannot both queue it);
- count x price + today's spend + what running batches will spend must fit the daily budget, unless an
  admin confirms (audited).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, time
from decimal import Decimal
from typing import Any

from sqlalchemy import delete, func, insert, or_, select, text, true, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from phoneops.core.audit import audit
from phoneops.core.db import release, rowcount, utcnow
from phoneops.core.errors import Conflict, Forbidden, NotFound, ValidationFailed
from phoneops.core.jobs import create_job
from phoneops.core.security import Principal, Role
from phoneops.imei.balance import AccountQuote, check_quote, costs_by_account, quote_balances
from phoneops.imei.catalogue import services_by_id
from phoneops.imei.inputs import MAX_BATCH_ROWS, InputRow, provider_fields
from phoneops.imei.models import (
    ACTIVE_STATES,
    DUPLICATE,
    NO_ORDER_ID,
    ORDER_LIKE_STATES,
    PAID_STATES,
    PLACED,
    QUEUED,
    REVIEW,
    SENDING,
    ImeiBatch,
    ImeiOrder,
    ImeiService,
)
from phoneops.imei.provider import BALANCE_NOT_AVAILABLE, account_title, split_id
from phoneops.imei.validation import check_imei
from phoneops.settings import get_settings

BATCH_KIND = "imei.batch"  # the job that places a batch's orders (imei/tasks.py)

MAX_SKIPPED_KEPT = 5_000  # skipped rows listed on the batch; counts are always complete
_CHUNK = 500


# --- money --------------------------------------------------------------------------------------------


def today_start(now: datetime | None = None) -> datetime:
    now = now or utcnow()
    return datetime.combine(now.astimezone(UTC).date(), time.min, tzinfo=UTC)


def spend_today(session: Session) -> Decimal:
    """Credits of the orders the provider accepted today (UTC)."""
    total = session.scalar(
        select(func.coalesce(func.sum(ImeiOrder.credits), 0)).where(
            ImeiOrder.state.in_(PAID_STATES), ImeiOrder.placed_at >= today_start()
        )
    )
    return Decimal(str(total or 0))


def reserved_spend(session: Session) -> Decimal:
    """What queued or in-flight orders will cost if the provider accepts them."""
    total = session.scalar(
        select(func.coalesce(func.sum(ImeiOrder.credits), 0)).where(ImeiOrder.state.in_((QUEUED, SENDING)))
    )
    return Decimal(str(total or 0))


def money_text(value: Decimal) -> str:
    """A credit amount as text: two decimals unless the amount needs more (0.085 stays 0.085)."""
    cents = value.quantize(Decimal("0.01"))
    return f"{cents:.2f}" if cents == value else format(value.normalize(), "f")


@dataclass(frozen=True)
class CostQuote:
    count: int
    cost: Decimal
    spent_today: Decimal
    reserved: Decimal
    budget: Decimal
    over_budget: bool
    price: Decimal | None = None  # None when rows use several services
    balance: str = BALANCE_NOT_AVAILABLE
    balances: tuple[AccountQuote, ...] = ()  # guarded accounts (DHRU): cost there vs balance - minimum

    @property
    def remaining(self) -> Decimal:
        return self.budget - self.spent_today - self.reserved

    def to_dict(self) -> dict[str, Any]:
        return {
            "count": self.count, "price": None if self.price is None else money_text(self.price),
            "cost": money_text(self.cost), "spent_today": money_text(self.spent_today),
            "reserved": money_text(self.reserved), "budget": money_text(self.budget),
            "remaining": money_text(self.remaining), "over_budget": self.over_budget, "balance": self.balance,
            "balances": [b.to_dict() for b in self.balances],
            "balance_ok": all(b.fits for b in self.balances if b.balance is not None),
        }


def quote(session: Session, prices: Sequence[Decimal], service_ids: Sequence[str] = ()) -> CostQuote:
    """Cost against today's spend and the daily budget, and (`service_ids` parallel to `prices`) against the
    balance of every guarded account (read now)."""
    budget = get_settings().imei_daily_budget
    spent, reserved = spend_today(session), reserved_spend(session)
    cost = sum(prices, Decimal(0))
    distinct = set(prices)
    release(session)  # the balances are read from the providers with no pooled connection held (issue 21)
    balances = tuple(quote_balances(costs_by_account(zip(service_ids, prices, strict=False))))
    text = "; ".join(b.text() for b in balances) or BALANCE_NOT_AVAILABLE
    return CostQuote(
        count=len(prices), cost=cost, spent_today=spent, reserved=reserved, budget=budget,
        over_budget=spent + reserved + cost > budget, price=distinct.pop() if len(distinct) == 1 else None,
        balance=text, balances=balances,
    )


def _no_service(service_id: str) -> str:
    return f"{account_title(split_id(service_id)[0])} has no service {service_id!r} (see the services list)"


def quote_for(session: Session, service_id: str, count: int) -> CostQuote:
    services = services_by_id(session, [service_id])
    if service_id not in services:
        raise NotFound(_no_service(service_id))
    if not 0 <= count <= MAX_BATCH_ROWS:
        raise ValidationFailed(f"count must be between 0 and {MAX_BATCH_ROWS}")
    return quote(session, [services[service_id].price] * count, [service_id] * count)


# --- planning -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PlannedRow:
    imei: str
    service: ImeiService
    fields: dict[str, str]
    forced: bool


@dataclass
class Plan:
    """What a submission would send and what it skips, and what it would cost."""

    rows: list[PlannedRow]
    skipped: list[dict[str, Any]]
    total_input: int
    invalid: int
    duplicates_in_batch: int
    duplicates_in_history: int
    forced: int
    quote: CostQuote

    def summary(self) -> dict[str, Any]:
        return {
            "total_input": self.total_input, "to_send": len(self.rows), "invalid": self.invalid,
            "duplicates_in_batch": self.duplicates_in_batch, "duplicates_in_history": self.duplicates_in_history,
            "forced": self.forced, "quote": self.quote.to_dict(), "skipped": self.skipped[:MAX_SKIPPED_KEPT],
        }


def active_intents(session: Session, pairs: Iterable[tuple[str, str]]) -> dict[tuple[str, str | None], int | None]:
    """(imei, service) pairs being ordered right now (queued or sending) -> the batch doing it."""
    wanted = set(pairs)
    found: dict[tuple[str, str | None], int | None] = {}
    imeis = sorted({imei for imei, _ in wanted})
    for start in range(0, len(imeis), _CHUNK):
        rows = session.execute(
            select(ImeiOrder.imei, ImeiOrder.service_id, ImeiOrder.batch_id)
            .where(ImeiOrder.imei.in_(imeis[start : start + _CHUNK]), ImeiOrder.state.in_(ACTIVE_STATES))
        )
        found.update({(imei, service): batch for imei, service, batch in rows if (imei, service) in wanted})
    return found


def _insert_orders(session: Session, values: list[dict[str, Any]]) -> None:
    """INSERT ... ON CONFLICT DO NOTHING on the one-active-intent index (rows another submission queued first
    are left out; the caller counts what was inserted)."""
    where = text("state IN ('queued', 'sending')")
    dialect = session.get_bind().dialect.name
    for start in range(0, len(values), 5_000):
        chunk = values[start : start + 5_000]
        if dialect == "postgresql":
            session.execute(postgresql.insert(ImeiOrder).on_conflict_do_nothing(
                index_elements=["imei", "service_id"], index_where=where), chunk)
        elif dialect == "sqlite":
            session.execute(sqlite.insert(ImeiOrder).on_conflict_do_nothing(
                index_elements=["imei", "service_id"], index_where=where), chunk)
        else:
            session.execute(insert(ImeiOrder), chunk)


def history_duplicates(
    session: Session, pairs: Iterable[tuple[str, str]], *, besides_batch: int | None = None
) -> set[tuple[str, str | None]]:
    """(imei, service) pairs that already have an order (or may have one) in our history; `besides_batch`
    leaves that batch's own rows out."""
    wanted = set(pairs)
    found: set[tuple[str, str | None]] = set()
    imeis = sorted({imei for imei, _ in wanted})
    states = (*ORDER_LIKE_STATES, DUPLICATE)
    others = true() if besides_batch is None else or_(ImeiOrder.batch_id.is_(None), ImeiOrder.batch_id != besides_batch)
    for start in range(0, len(imeis), _CHUNK):
        chunk = imeis[start : start + _CHUNK]
        rows = session.execute(
            select(ImeiOrder.imei, ImeiOrder.service_id)
            .where(ImeiOrder.imei.in_(chunk), ImeiOrder.state.in_(states), others)
        )
        found.update((imei, service) for imei, service in rows if (imei, service) in wanted)
    return found


def plan(
    session: Session,
    rows: Sequence[InputRow],
    service_id: str | None,
    *,
    force: bool = False,
    fields: dict[str, Any] | None = None,
) -> Plan:
    """Validate and de-duplicate the input and price it; writes nothing."""
    if len(rows) > MAX_BATCH_ROWS:
        raise ValidationFailed(f"a batch holds at most {MAX_BATCH_ROWS} IMEIs")
    common = provider_fields(fields)
    default = (service_id or "").strip() or None
    wanted_services = {r.service_id.strip() for r in rows if r.service_id} | ({default} if default else set())
    services = services_by_id(session, sorted(wanted_services))
    if default and default not in services:
        raise NotFound(_no_service(default))
    skipped: list[dict[str, Any]] = []
    invalid = in_batch = 0
    seen: set[str] = set()
    candidates: list[PlannedRow] = []
    for row in rows:
        chosen = (row.service_id or "").strip() or default
        check = check_imei(row.value)
        reason = None
        if check.imei is None:
            reason = f"invalid IMEI: {check.error}"
        elif chosen is None:
            reason = "no service given"
        elif chosen not in services:
            reason = f"unknown service {chosen}"
        if reason is not None or check.imei is None or chosen is None:
            invalid += 1
            skipped.append({"value": row.value[:40], "line": row.line, "reason": reason})
            continue
        if check.imei in seen:
            in_batch += 1
            skipped.append({"value": check.imei, "line": row.line, "reason": "duplicate in this batch"})
            continue
        seen.add(check.imei)
        try:
            row_fields = {**common, **provider_fields(row.fields)}
        except ValidationFailed as exc:
            invalid += 1
            skipped.append({"value": check.imei, "line": row.line, "reason": exc.message})
            continue
        candidates.append(PlannedRow(check.imei, services[chosen], row_fields, False))
    known = history_duplicates(session, ((c.imei, c.service.package_id) for c in candidates))
    active = active_intents(session, ((c.imei, c.service.package_id) for c in candidates))
    planned: list[PlannedRow] = []
    in_history = forced = 0
    for candidate in candidates:
        pair = (candidate.imei, candidate.service.package_id)
        if pair in active:
            in_history += 1
            skipped.append({"value": candidate.imei, "line": None, "reason": f"being ordered for service "
                            f"{candidate.service.package_id} right now (batch {active[pair]})"})
            continue
        if pair in known:
            if not force:
                in_history += 1
                skipped.append({"value": candidate.imei, "line": None,
                                "reason": f"already ordered for service {candidate.service.package_id}"})
                continue
            forced += 1
            candidate = PlannedRow(candidate.imei, candidate.service, candidate.fields, True)
        planned.append(candidate)
    return Plan(
        rows=planned, skipped=skipped, total_input=len(rows), invalid=invalid, duplicates_in_batch=in_batch,
        duplicates_in_history=in_history, forced=forced,
        quote=quote(session, [p.service.price for p in planned], [p.service.package_id for p in planned]),
    )


# --- creating a batch ---------------------------------------------------------------------------------


def create_batch(
    session: Session,
    actor: Principal,
    rows: Sequence[InputRow],
    service_id: str | None,
    *,
    source: str = "text",
    file_name: str | None = None,
    force: bool = False,
    confirm_over_budget: bool = False,
    fields: dict[str, Any] | None = None,
) -> tuple[ImeiBatch, Plan]:
    """Check everything, store the batch and its queued orders, and start the `imei.batch` job."""
    if not rows:
        raise ValidationFailed("no IMEI given")
    result = plan(session, rows, service_id, force=force, fields=fields)
    check_quote(result.quote.balances)  # refused before anything is stored or paid
    if result.quote.over_budget and result.rows:
        if not confirm_over_budget:
            q = result.quote
            raise Conflict(
                f"over the daily budget: this batch costs {q.cost}, today's spend is {q.spent_today} "
                f"(+{q.reserved} in running batches) of {q.budget}; an admin must confirm it",
                code="over_budget", details=result.quote.to_dict(),
            )
        if not actor.can(Role.admin):
            raise Forbidden("only an admin can confirm a batch over the daily budget")
    first = result.rows[0].service if result.rows else None
    default = (service_id or "").strip() or (first.package_id if first else "")
    default_service = next((r.service for r in result.rows if r.service.package_id == default), first)
    batch = ImeiBatch(
        service_id=default,
        service_title=default_service.title if default_service else "",
        price=default_service.price if default_service else Decimal(0),
        source=source,
        file_name=file_name,
        status="queued" if result.rows else "done",
        force=force,
        over_budget_confirmed=bool(confirm_over_budget and result.quote.over_budget),
        fields=provider_fields(fields),
        total_input=result.total_input,
        to_send=len(result.rows),
        invalid=result.invalid,
        duplicates_in_batch=result.duplicates_in_batch,
        duplicates_in_history=result.duplicates_in_history,
        skipped=result.skipped[:MAX_SKIPPED_KEPT],
        created_by=actor.user_id,
        finished_at=None if result.rows else utcnow(),
    )
    session.add(batch)
    session.flush()
    now = utcnow()
    values = [
        {"batch_id": batch.id, "imei": r.imei, "service_id": r.service.package_id, "service_title": r.service.title,
         "state": QUEUED, "credits": r.service.price, "fields": r.fields, "forced": r.forced, "attempts": 0,
         "source": "batch", "created_at": now, "updated_at": now}
        for r in result.rows
    ]
    _insert_orders(session, values)
    if values:
        _drop_raced(session, batch.id, result, force=force)
        if result.duplicates_in_history != batch.duplicates_in_history:
            batch.to_send, batch.duplicates_in_history = len(result.rows), result.duplicates_in_history
            batch.skipped = result.skipped[:MAX_SKIPPED_KEPT]
            if not result.rows:
                batch.status, batch.finished_at = "done", utcnow()
    detail = {"source": source, "file_name": file_name, **{k: v for k, v in result.summary().items() if k != "skipped"}}
    audit(session, actor, "imei.batch.create", "imei_batch", batch.id, detail)
    if result.forced:
        audit(session, actor, "imei.force_recheck", "imei_batch", batch.id,
              {"count": result.forced, "imeis": [r.imei for r in result.rows if r.forced][:50]})
    if batch.over_budget_confirmed:
        audit(session, actor, "imei.budget_override", "imei_batch", batch.id, result.quote.to_dict())
    if result.rows:
        title = f"IMEI batch #{batch.id}: {len(result.rows)} x {batch.service_title or batch.service_id}"
        job = create_job(session, actor, BATCH_KIND, {"batch_id": batch.id}, title=title, total=len(result.rows))
        batch.job_id = job.id
    session.flush()
    return batch, result


def _drop_raced(session: Session, batch_id: int, result: Plan, *, force: bool) -> None:
    """Leave out the rows another submission got to between `plan`'s reads and our insert, and say so.

    Two ways to lose that race: the other intent is still active (queued or sending), so the unique index
    left our row out; or it went all the way to placed before our insert, so nothing conflicted and only a
    second look at the history, made after our insert (it sees every commit before it: SQLite's write lock
    is ours, PostgreSQL reads the latest commit per statement), finds it. A forced submission re-orders on
    purpose, so it skips that look."""
    inserted = set(session.scalars(select(ImeiOrder.imei).where(ImeiOrder.batch_id == batch_id)))
    queued = set() if force else {(r.imei, r.service.package_id) for r in result.rows if r.imei in inserted}
    late = history_duplicates(session, queued, besides_batch=batch_id) if queued else set()
    if late:
        gone = sorted(imei for imei, _ in late)
        for start in range(0, len(gone), _CHUNK):
            session.execute(delete(ImeiOrder).where(
                ImeiOrder.batch_id == batch_id, ImeiOrder.imei.in_(gone[start : start + _CHUNK])))
    kept, skipped = [], []
    for r in result.rows:
        if r.imei not in inserted:
            skipped.append({"value": r.imei, "line": None, "reason": f"being ordered for service "
                            f"{r.service.package_id} right now (another submission)"})
        elif (r.imei, r.service.package_id) in late:
            skipped.append({"value": r.imei, "line": None, "reason": f"already ordered for service "
                            f"{r.service.package_id} (by another submission a moment ago)"})
        else:
            kept.append(r)
    if skipped:
        result.rows = kept
        result.duplicates_in_history += len(skipped)
        result.skipped.extend(skipped)


def resume_batch(session: Session, actor: Principal, batch_id: int) -> ImeiBatch:
    """Start a new job for a stopped batch (e.g. after an invalid key or missing credit was fixed)."""
    from phoneops.core.jobs import ACTIVE, cancelled_run_seconds_left, get_job

    batch = get_batch(session, batch_id)
    previous = get_job(session, batch.job_id) if batch.job_id is not None else None
    if previous is not None and previous.status in ACTIVE:
        raise Conflict(f"batch {batch_id} is already running")
    left = session.scalar(
        select(func.count(ImeiOrder.id)).where(ImeiOrder.batch_id == batch_id, ImeiOrder.state.in_((QUEUED, SENDING)))
    )
    if not left:
        raise Conflict(f"batch {batch_id} has nothing left to send")
    wait = cancelled_run_seconds_left(previous)
    if wait is not None:
        _wait_for_cancelled_run(session, batch_id, wait)
    job = create_job(session, actor, BATCH_KIND, {"batch_id": batch.id},
                     title=f"IMEI batch #{batch.id} (resumed)", total=batch.to_send)
    # one job per resume: of two requests at once, the second finds the job changed and gets a 409 (its
    # transaction, the job it created included, rolls back); it sees every commit before it (SQLite: the
    # write lock is ours from here on; PostgreSQL: it waits for the rival's row lock, then re-checks)
    seen = ImeiBatch.job_id.is_(None) if batch.job_id is None else ImeiBatch.job_id == batch.job_id
    claimed = rowcount(session.execute(update(ImeiBatch).where(ImeiBatch.id == batch_id, seen)
                                       .values(job_id=job.id).execution_options(synchronize_session=False)))
    if claimed != 1:
        raise Conflict(f"batch {batch_id} was just resumed by another request; reload it")
    batch.job_id, batch.status, batch.error, batch.finished_at = job.id, "queued", None, None
    audit(session, actor, "imei.batch.resume", "imei_batch", batch.id, {"left": left})
    return batch


def _wait_for_cancelled_run(session: Session, batch_id: int, wait: int) -> None:
    """Refuse a resume while the batch's cancelled run may still be inside a paid call (`wait` seconds,
    `core.jobs.cancelled_run_seconds_left`): an order already sent is still answered to it, and a new run
    would find that order `sending` and place it once more (reconciling): paid twice by a provider that
    accepts repeats, and the first answer's order id lost (its settle no longer matches the order's
    attempt)."""
    sending = session.scalar(select(func.count(ImeiOrder.id)).where(
        ImeiOrder.batch_id == batch_id, ImeiOrder.state == SENDING))
    if sending:
        raise Conflict(f"batch {batch_id} was cancelled a moment ago and {sending} of its orders may still be "
                       f"at the provider: resume it in {wait} s", retry_after=wait)


def get_batch(session: Session, batch_id: int) -> ImeiBatch:
    batch = session.get(ImeiBatch, batch_id)
    if batch is None:
        raise NotFound(f"no IMEI batch {batch_id}")
    return batch


def list_batches(session: Session, limit: int = 50) -> list[ImeiBatch]:
    return list(session.scalars(select(ImeiBatch).order_by(ImeiBatch.id.desc()).limit(max(1, min(limit, 500)))))


def batch_counts(session: Session, batch_id: int) -> dict[str, int]:
    rows = session.execute(
        select(ImeiOrder.state, func.count(ImeiOrder.id))
        .where(ImeiOrder.batch_id == batch_id)
        .group_by(ImeiOrder.state)
    )
    return {str(state): int(count) for state, count in rows}


def batch_spend(session: Session, batch_id: int) -> Decimal:
    """Credits of the batch's orders the provider accepted or proved (a placed order whose id is unknown
    is paid too)."""
    total = session.scalar(
        select(func.coalesce(func.sum(ImeiOrder.credits), 0)).where(
            ImeiOrder.batch_id == batch_id,
            or_(ImeiOrder.state == PLACED, (ImeiOrder.state.in_(PAID_STATES)) & ImeiOrder.placed_at.is_not(None)),
        )
    )
    return Decimal(str(total or 0))


def batch_summary(session: Session, batch: ImeiBatch) -> dict[str, Any]:
    """The final (or running) summary: placed, duplicates, invalid, failed, needs review, spend."""
    counts = batch_counts(session, batch.id)
    return {
        "batch_id": batch.id, "status": batch.status, "to_send": batch.to_send, "total_input": batch.total_input,
        "placed": counts.get(PLACED, 0), "queued": counts.get(QUEUED, 0), "sending": counts.get(SENDING, 0),
        "duplicates": batch.duplicates_in_batch + batch.duplicates_in_history + counts.get(DUPLICATE, 0),
        "duplicates_in_batch": batch.duplicates_in_batch, "duplicates_in_history": batch.duplicates_in_history,
        "duplicates_at_provider": counts.get(DUPLICATE, 0), "invalid": batch.invalid,
        "failed": counts.get("failed", 0), "needs_review": counts.get("review", 0),
        "placed_without_order_id": session.scalar(select(func.count(ImeiOrder.id)).where(
            ImeiOrder.batch_id == batch.id, ImeiOrder.state == REVIEW, ImeiOrder.review_reason == NO_ORDER_ID)) or 0,
        "written_off": counts.get("written_off", 0),
        "spend": money_text(batch_spend(session, batch.id)), "error": batch.error,
    }


def balance_differences(session: Session) -> int:
    """Batches whose provider balance change differed from the spend we recorded (docs/imei.md)."""
    return int(
        session.scalar(
            select(func.count(ImeiBatch.id)).where(
                ImeiBatch.balance_difference.is_not(None), ImeiBatch.balance_difference != 0
            )
        )
        or 0
    )
