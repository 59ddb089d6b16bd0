# Over 400 lines: the crash-safe batch engine: reserve, pay once, reconcile, settle, one protocol.
"""The crash-safe batch engine behind the `imei.batch` job: place every queued order exactly once.

The order rows are the intents (see `phoneops.imei.models`). For each chunk of rows:

1. the rows go `queued → sending` with `attempts + 1`, committed together with a lease-guarded job step
   (a worker that lost its lease cannot mark, hence cannot send);
2. each IMEI is sent with one `placeorder` call, `IMEI_CONCURRENCY` calls in flight;
3. answers are settled in small transactions as they arrive, each row updated only if it is still the
   intent that was sent (`state = sending AND attempts = n`), so a stale worker cannot overwrite a newer
   decision.

On (re)start, rows left `sending` are reconciled before anything new is sent. Neither GSM Fusion nor DHRU
offers a lookup by IMEI, so reconciling means placing the same IMEI and service once more — safe however often a
kill interrupts it, because the provider refuses repeats:

- accepted → no earlier attempt reached the provider: settle with the new order id;
- "IMEI already exists!" / "Duplicate IMEI" → an earlier attempt was placed (and paid) but its id is
  unknown: `review` with reason `no_order_id`, counted in spend at once (`placed_at`), never resent; a way
  out is on the "Needs review" screen (attach the order id, match it from an export, write it off);
- refused otherwise → `failed` with the provider's reason (not placed);
- no answer again (5xx, timeout: the provider failing or down) → the row stays open and the job waits;
- an answer we cannot read → `review` (`unsettled`).

So a batch ends `done` only when every row is placed (with or without a known order id), a proven
duplicate, refused by the provider or invalid — each with its reason.

The "provider refuses repeats" assumption is checked: an order id for an IMEI and service that already has
another order id (not a forced re-check) stops the batch, logs an alert, and puts both rows in review
(`second_order_id`).

While the provider looks down (`NO_ANSWER_STOP` orders in a row without an answer, or the first
reconciliation without one), nothing more is sent: the job waits with a growing delay and resumes.

Errors that prove the request never left (`maybe_sent=False`) put the row back as it was.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
from collections import Counter
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, TypeVar, cast

import structlog
from sqlalchemy import Table, bindparam, select, update
from sqlalchemy.orm import Session

from phoneops.core.audit import audit, first_actor
from phoneops.core.db import session_scope, utcnow
from phoneops.core.errors import AppError
from phoneops.core.http import (
    ProviderAuthError,
    ProviderError,
    ProviderRateLimited,
    ProviderTimeout,
    ProviderUnavailable,
)
from phoneops.core.jobs import JobCancelled, JobContext, LeaseLost, RetryLater
from phoneops.core.security import SYSTEM, acting_for
from phoneops.imei.balance import BalanceGuard, guard_for
from phoneops.imei.balance import close as close_balance
from phoneops.imei.client import DeviceCheckRefused, ImeiAlreadyExists, InsufficientCredit, PlacedOrder
from phoneops.imei.models import (
    DUPLICATE,
    FAILED,
    IMPORTED,
    NO_ORDER_ID,
    PLACED,
    QUEUED,
    REVIEW,
    SECOND_ORDER_ID,
    SENDING,
    UNSETTLED,
    ImeiBatch,
    ImeiOrder,
)
from phoneops.imei.provider import AsyncPool, account_title, async_pool, describe, split_id
from phoneops.imei.submission import batch_counts, batch_spend, batch_summary, money_text
from phoneops.settings import get_settings
from phoneops.webhooks import service as webhooks

log = structlog.get_logger("phoneops.imei.placing")

ORDERS = cast(Table, ImeiOrder.__table__)
RECONCILE_DELAY_SECONDS = 60.0  # let the provider finish a request that timed out before placing it again
NO_ANSWER_STOP = 3  # this many orders in a row without an answer: the provider looks down, stop sending
SETTLE_EVERY_SECONDS = 0.1  # answers received but not yet settled when a worker dies end in `review`
KEEP = "sending"  # outcome: no answer, the intent stays open for reconciliation
REVERT = "revert"  # outcome: the call provably did not place anything; the row goes back as it was
T = TypeVar("T")


@dataclass(frozen=True)
class Work:
    """One intent being sent; `attempts` is the value committed with it (1 = first send)."""

    id: int
    imei: str
    service_id: str
    fields: dict[str, str]
    attempts: int
    credits: Decimal | None
    forced: bool = False


@dataclass(frozen=True)
class Outcome:
    work: Work
    state: str
    order_id: str | None = None
    status: str | None = None
    error: str | None = None
    reason: str | None = None  # review reason
    raw: str | None = None  # the provider's answer, kept on the order

    def params(self, now: Any) -> dict[str, Any]:
        w = self.work
        state, attempts = self.state, w.attempts
        if state == REVERT:
            attempts = w.attempts - 1
            state = QUEUED if attempts == 0 else SENDING
        placed = state == PLACED
        paid = placed or self.reason == NO_ORDER_ID
        return {
            "b_id": w.id, "b_expected": w.attempts, "b_state": state, "b_attempts": attempts,
            "b_order_id": self.order_id, "b_status": self.status,
            "b_credits": w.credits if state in (PLACED, REVIEW, QUEUED, SENDING) else None,
            "b_error": self.error, "b_placed_at": now if paid else None, "b_order_date": now if placed else None,
            "b_review_reason": self.reason if state == REVIEW else None,
            "b_notes": "placed on reconciliation: the interrupted attempt never reached the provider"
            if placed and w.attempts > 1 else None,
            "b_raw": self.raw,
        }


@dataclass(frozen=True)
class Stop:
    """Why the batch stops early: `fail` (clear error), `retry` (park the job while `provider` — the account
    that did not answer — is unavailable, at least `delay` seconds), `lost`, `cancelled`."""

    kind: str
    message: str
    delay: float | None = None
    provider: str = "the provider"


def provider_of(work: Work) -> str:
    """The account a work item's service belongs to, as users read it ("GSM Fusion", a DHRU label)."""
    return account_title(split_id(work.service_id)[0])


_SETTLE = (
    update(ORDERS)
    .where(ORDERS.c.id == bindparam("b_id"), ORDERS.c.state == SENDING, ORDERS.c.attempts == bindparam("b_expected"))
    .values(
        state=bindparam("b_state"), attempts=bindparam("b_attempts"), order_id=bindparam("b_order_id"),
        status=bindparam("b_status"), credits=bindparam("b_credits"), error=bindparam("b_error"),
        placed_at=bindparam("b_placed_at"), order_date=bindparam("b_order_date"), notes=bindparam("b_notes"),
        review_reason=bindparam("b_review_reason"), raw_response=bindparam("b_raw"),
    )
)


def classify(work: Work, answer: PlacedOrder | BaseException, *, reconciling: bool) -> tuple[Outcome, Stop | None]:
    """What one placeorder answer means for its intent, and whether the whole batch must stop."""
    if isinstance(answer, PlacedOrder):
        return Outcome(work, PLACED, order_id=answer.order_id, status=answer.status or "Pending",
                       raw=answer.raw or None), None
    if isinstance(answer, ImeiAlreadyExists):
        if reconciling:
            text = ("placed (and paid) before the interruption — the provider says the IMEI already exists — but "
                    "its order id is unknown: attach it, match it from a provider export, or write it off")
            return Outcome(work, REVIEW, error=text, reason=NO_ORDER_ID), None
        return Outcome(work, DUPLICATE, error=describe(answer)), None
    if isinstance(answer, ProviderAuthError | InsufficientCredit):
        return Outcome(work, REVERT), Stop("fail", describe(answer))
    if isinstance(answer, DeviceCheckRefused):  # refused: not placed (a placed earlier attempt answers "exists")
        return Outcome(work, FAILED, error=describe(answer)), None
    if isinstance(answer, ProviderError) and not answer.maybe_sent:
        delay = answer.retry_after if isinstance(answer, ProviderRateLimited) and answer.retry_after else None
        return Outcome(work, REVERT), Stop("retry", describe(answer), delay, provider_of(work))
    text = describe(answer) if isinstance(answer, ProviderError) else f"{type(answer).__name__}: {answer}"
    if reconciling and isinstance(answer, ProviderUnavailable | ProviderTimeout):
        # No answer again (the provider failing or down): the intent stays open, reconciled once more later.
        # Safe: placing the same IMEI again can only be accepted if no earlier attempt was placed.
        return Outcome(work, REVERT), Stop("retry", text, provider=provider_of(work))
    if reconciling:
        return Outcome(work, REVIEW, error=f"unreadable answer while reconciling: {text}", reason=UNSETTLED), None
    return Outcome(work, KEEP, error=f"no answer ({text}); will be reconciled"), None


def _run_async(factory: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """asyncio.run, also when called from a thread that already runs a loop (inline test jobs)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(factory())
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(lambda: asyncio.run(factory())).result()


@dataclass
class BatchRunner:
    ctx: JobContext
    batch_id: int
    client: AsyncPool
    concurrency: int
    guard: BalanceGuard | None = None
    to_send: int = 0
    invalid: int = 0
    counts: Counter[str] = field(default_factory=Counter)
    spend: Decimal = Decimal(0)
    start_counts: Counter[str] = field(default_factory=Counter)  # at the start of this run (its audit line)
    start_spend: Decimal = Decimal(0)
    stop: Stop | None = None
    kept: int = 0
    review_before: int = 0  # orders in review when this run started (review.needed names the new ones)
    no_answer: int = 0  # orders in a row without an answer
    _pending: list[Outcome] = field(default_factory=list)
    _wake: asyncio.Event = field(default_factory=asyncio.Event)
    _closing: bool = False

    # --- database steps (each one short transaction, run in a thread) -------------------------------

    def _progress(self, session: Session, message: str | None = None) -> None:
        done = sum(self.counts[s] for s in (PLACED, DUPLICATE, FAILED, REVIEW))
        self.ctx.step(
            session, done=done, total=self.to_send, message=message,
            counters={"placed": self.counts[PLACED], "duplicates": self.counts[DUPLICATE],
                      "failed": self.counts[FAILED], "needs_review": self.counts[REVIEW],
                      "invalid": self.invalid, "spend": money_text(self.spend)},
        )

    def load(self) -> None:
        with session_scope() as session:
            batch = session.get(ImeiBatch, self.batch_id)
            if batch is None:
                raise AppError(f"IMEI batch {self.batch_id} is gone")
            batch.status, batch.error = "running", None
            self.to_send, self.invalid = batch.to_send, batch.invalid
            self.counts.update(batch_counts(session, self.batch_id))
            self.review_before = self.counts[REVIEW]
            self.spend = batch_spend(session, self.batch_id)
            self.start_counts, self.start_spend = Counter(self.counts), self.spend
            if self.guard is not None:  # read guarded balances before anything is sent
                left = session.scalars(
                    select(ImeiOrder.service_id).where(ImeiOrder.batch_id == self.batch_id,
                                                       ImeiOrder.state.in_((QUEUED, SENDING))).distinct()
                )
                read = self.guard.start(split_id(s or "")[0] for s in left)
                if batch.balance_start is None and read:  # the first run's reading is the batch's start
                    batch.balance_account, batch.balance_start = sorted(read.items())[0]
            self._progress(session, "reconciling unsettled orders" if self.counts[SENDING] else "sending")

    def claim(self, limit: int) -> list[Work]:
        """Commit the next `limit` intents (queued → sending) with a lease-guarded job step."""
        with session_scope() as session:
            rows = session.execute(
                select(ImeiOrder.id, ImeiOrder.imei, ImeiOrder.service_id, ImeiOrder.fields, ImeiOrder.attempts,
                       ImeiOrder.credits, ImeiOrder.forced)
                .where(ImeiOrder.batch_id == self.batch_id, ImeiOrder.state == QUEUED)
                .order_by(ImeiOrder.id).limit(limit)
            ).all()
            if not rows:
                return []
            if self.guard is not None:  # nothing that would cross an account's minimum balance is sent
                rows = rows[: self.guard.admit([(r.service_id or "", r.credits) for r in rows])]
                if not rows:  # the admitted rows before the pause are still sent
                    if self.guard.paused:
                        self._set_stop(Stop("paused", self.guard.paused))
                    return []
            session.execute(
                update(ImeiOrder).where(ImeiOrder.id.in_([r.id for r in rows]), ImeiOrder.state == QUEUED)
                .values(state=SENDING, attempts=ImeiOrder.attempts + 1, sent_at=utcnow(), error=None)
            )
            self._progress(session)
        return [Work(r.id, r.imei, r.service_id or "", dict(r.fields or {}), r.attempts + 1, r.credits, r.forced)
                for r in rows]

    def claim_unsettled(self) -> list[Work]:
        """Rows left `sending` by an earlier run: commit one more reconciliation attempt for each (placing
        again is safe however often it is interrupted: see the module's notes)."""
        with session_scope() as session:
            rows = session.execute(
                select(ImeiOrder.id, ImeiOrder.imei, ImeiOrder.service_id, ImeiOrder.fields, ImeiOrder.attempts,
                       ImeiOrder.credits, ImeiOrder.forced)
                .where(ImeiOrder.batch_id == self.batch_id, ImeiOrder.state == SENDING).order_by(ImeiOrder.id)
            ).all()
            if not rows:
                return []
            session.execute(
                update(ImeiOrder).where(ImeiOrder.id.in_([r.id for r in rows]), ImeiOrder.state == SENDING)
                .values(attempts=ImeiOrder.attempts + 1, sent_at=utcnow())
            )
            self.counts[SENDING] = 0
            self._progress(session, f"reconciling {len(rows)} unsettled orders")
        return [Work(r.id, r.imei, r.service_id or "", dict(r.fields or {}), r.attempts + 1, r.credits,
                     r.forced) for r in rows]

    def settle(self, outcomes: list[Outcome]) -> None:
        now = utcnow()
        with session_scope() as session:
            session.execute(_SETTLE, [o.params(now) for o in outcomes])
            for o in outcomes:
                if self.guard is not None:
                    self.guard.release(o.work.service_id, o.work.credits, o.state in (PLACED, REVIEW, KEEP))
                if o.state in (PLACED, DUPLICATE, FAILED, REVIEW):
                    self.counts[o.state] += 1
                if (o.state == PLACED or o.reason == NO_ORDER_ID) and o.work.credits is not None:
                    self.spend += o.work.credits
            self._check_second_orders(session, [o for o in outcomes if o.state == PLACED and not o.work.forced])
            try:
                self._progress(session)
            except (LeaseLost, JobCancelled) as exc:  # keep the settlements: they are facts
                self._set_stop(Stop("cancelled" if isinstance(exc, JobCancelled) else "lost", type(exc).__name__))

    def _check_second_orders(self, session: Session, placed: list[Outcome]) -> None:
        """The provider refuses repeats — checked: a second order id for an IMEI and service stops the batch,
        raises an alert and puts both orders in review."""
        if not placed:
            return
        # One query for the whole chunk (not one per answer): settling must stay short, since answers received
        # but not yet settled when a worker dies end in review.
        candidates = session.scalars(
            select(ImeiOrder).where(
                ImeiOrder.imei.in_({o.work.imei for o in placed}), ImeiOrder.order_id.is_not(None),
                ImeiOrder.state.in_((PLACED, IMPORTED, REVIEW)))
        ).all()
        by_key: dict[tuple[str, str | None], list[ImeiOrder]] = {}
        for row in candidates:
            by_key.setdefault((row.imei, row.service_id), []).append(row)
        for outcome in placed:
            work = outcome.work
            earlier = [e for e in by_key.get((work.imei, work.service_id), [])
                       if e.id != work.id and e.order_id != outcome.order_id]
            if not earlier:
                continue
            ids = [work.id, *(e.id for e in earlier)]
            order_ids = [outcome.order_id, *(e.order_id for e in earlier)]
            text = (f"{provider_of(work)} gave a second order id for IMEI {work.imei} and service {work.service_id} "
                    f"(orders {', '.join(str(i) for i in order_ids)}): both are in review")
            session.execute(update(ImeiOrder).where(ImeiOrder.id.in_(ids)).values(
                state=REVIEW, review_reason=SECOND_ORDER_ID, error=text))
            self.counts[PLACED] -= 1
            self.counts[REVIEW] += 1
            audit(session, SYSTEM, "imei.second_order_id", "imei_batch", self.batch_id,
                  {"imei": work.imei, "service_id": work.service_id, "order_ids": order_ids, "rows": ids})
            log.error("imei.alert.second_order_id", batch_id=self.batch_id, imei=work.imei,
                      service_id=work.service_id, order_ids=order_ids)
            self._set_stop(Stop("fail", f"{text}. The batch is stopped: the provider accepted a repeat order, "
                                "so more orders may be paid twice; check both orders, then resume the batch"))

    def finish(self, status: str, error: str | None = None) -> dict[str, Any]:
        with session_scope() as session:
            batch = session.get(ImeiBatch, self.batch_id)
            assert batch is not None
            batch.status, batch.error = status, error
            if status in ("done", "failed", "cancelled"):
                batch.finished_at = utcnow()
            if status in ("done", "paused") and self.guard is not None:  # balance change vs recorded spend
                close_balance(session, None, batch, self.guard.pool)
            summary = batch_summary(session, batch)
            self._audit_run(session, batch, summary, status, error)
            if status == "paused":
                webhooks.notify(session, "batch.paused", {"domain": "imei", "batch_id": self.batch_id,
                                                          "reason": error, "placed": summary["placed"],
                                                          "spend": summary["spend"]})
            if summary["needs_review"] > self.review_before:
                webhooks.notify(session, "review.needed", {
                    "domain": "imei", "batch_id": self.batch_id, "needs_review": summary["needs_review"],
                    "new": summary["needs_review"] - self.review_before, "page": "/review"})
            return summary

    def _audit_run(self, session: Session, batch: ImeiBatch, summary: dict[str, Any], status: str,
                   error: str | None) -> None:
        """The paid calls of this run (job step), one audit line for whoever started the batch: what this run
        placed, charged and failed, and the batch's totals. A single order (a batch of one: the API's
        /orders, `phoneops imei submit`) is audited as the order itself: `imei.order.place`."""
        actor = acting_for(session, batch.created_by, name=first_actor(session, "imei.batch.create", "imei_batch",
                                                                     batch.id))
        run = {k: self.counts[s] - self.start_counts[s] for k, s in
               (("placed", PLACED), ("duplicates_at_provider", DUPLICATE), ("failed", FAILED),
                ("needs_review", REVIEW))}
        detail = {"job_id": self.ctx.job_id, "status": status, "error": error,
                  "run": {**run, "charged": money_text(self.spend - self.start_spend)},
                  **{k: summary[k] for k in ("placed", "placed_without_order_id", "duplicates_at_provider",
                                             "failed", "needs_review", "spend")}}
        if batch.to_send != 1:
            audit(session, actor, "imei.batch.run", "imei_batch", self.batch_id, detail, outcome=status)
            return
        order = session.scalars(select(ImeiOrder).where(ImeiOrder.batch_id == self.batch_id)).first()
        if order is None:
            return
        settled = order.state not in (QUEUED, SENDING)
        audit(session, actor, "imei.order.place", "imei_order", order.id,
              {**detail, "batch_id": self.batch_id, "imei": order.imei, "service_id": order.service_id,
               "order_id": order.order_id, "state": order.state, "reason": order.review_reason or order.error},
              outcome=order.state if settled else status)

    # --- the async part ---------------------------------------------------------------------------------

    def _set_stop(self, stop: Stop) -> None:
        if self.stop is None or (self.stop.kind == "retry" and stop.kind != "retry"):
            self.stop = stop

    async def _db(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.to_thread(fn, *args)

    def _record(self, outcome: Outcome, stop: Stop | None) -> None:
        if stop is not None:
            self._set_stop(stop)
        if outcome.state == KEEP:
            self.kept += 1
        self._pending.append(outcome)
        self._wake.set()

    async def _settler(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._pending:
                chunk, self._pending = self._pending, []
                try:
                    await self._db(self.settle, chunk)
                except Exception as exc:  # unsettled rows stay `sending`: the next run reconciles them
                    log.exception("imei.settle_failed", batch_id=self.batch_id)
                    self._set_stop(Stop("fail", f"internal error while recording answers: {type(exc).__name__}"))
                if not self._closing:  # gather answers for a moment: one transaction per ~30 answers
                    await asyncio.sleep(SETTLE_EVERY_SECONDS)
            if self._closing:
                return

    async def _place(self, work: Work, *, reconciling: bool) -> None:
        answer: PlacedOrder | BaseException
        try:
            answer = await self.client.place_order(work.imei, work.service_id, **work.fields)
        except Exception as exc:
            answer = exc
        outcome, stop = classify(work, answer, reconciling=reconciling)
        if outcome.state not in (PLACED, DUPLICATE):
            log.warning("imei.place_outcome", order_row=work.id, state=outcome.state, error=outcome.error)
        self.no_answer = self.no_answer + 1 if outcome.state == KEEP else 0
        if stop is None and self.no_answer >= NO_ANSWER_STOP:  # looks down: send nothing more for now
            stop = Stop("retry", f"{self.no_answer} orders in a row got no answer ({outcome.error})",
                        provider=provider_of(outcome.work))
        self._record(outcome, stop)

    async def _reconcile(self) -> None:
        try:
            works = await self._db(self.claim_unsettled)
        except (LeaseLost, JobCancelled) as exc:
            self._set_stop(Stop("cancelled" if isinstance(exc, JobCancelled) else "lost", type(exc).__name__))
            return
        if works:  # one first: while the provider is down, the others are not sent at all
            await self._place(works[0], reconciling=True)
        for work in works[1:] if self.stop is not None else ():
            self._record(Outcome(work, REVERT), None)
        if self.stop is None:
            await asyncio.gather(*(self._place(w, reconciling=True) for w in works[1:]))

    async def _send_all(self) -> None:
        queue: asyncio.Queue[Work | None] = asyncio.Queue(maxsize=self.concurrency * 2)

        async def producer() -> None:
            try:
                while self.stop is None:
                    works = await self._db(self.claim, self.concurrency * 2)
                    if not works:
                        break
                    for work in works:
                        await queue.put(work)
            except (LeaseLost, JobCancelled) as exc:
                self._set_stop(Stop("cancelled" if isinstance(exc, JobCancelled) else "lost", type(exc).__name__))
            except Exception as exc:  # nothing of the failed chunk was committed, hence nothing sent
                log.exception("imei.claim_failed", batch_id=self.batch_id)
                self._set_stop(Stop("fail", f"internal error while recording intents: {type(exc).__name__}"))
            finally:
                for _ in range(self.concurrency):
                    await queue.put(None)

        async def sender() -> None:
            while (work := await queue.get()) is not None:
                if self.stop is not None and self.stop.kind != "paused":  # marked, never sent: put it back
                    self._record(Outcome(work, REVERT), None)
                    continue
                await self._place(work, reconciling=False)

        await asyncio.gather(producer(), *(sender() for _ in range(self.concurrency)))

    async def run(self) -> None:
        settler = asyncio.create_task(self._settler())
        try:
            await self._reconcile()
            if self.stop is None:
                await self._send_all()
        finally:
            self._closing = True
            self._wake.set()
            await settler
            await self.client.aclose()


def run_batch(ctx: JobContext) -> dict[str, Any]:
    """The `imei.batch` handler: reconcile, send, settle; stop clearly on auth/credit errors."""
    settings = get_settings()
    batch_id = int(ctx.params["batch_id"])
    try:
        client = async_pool(settings)
    except AppError as exc:
        with session_scope() as session:
            batch = session.get(ImeiBatch, batch_id)
            if batch is not None:
                batch.status, batch.error = "failed", exc.message
        raise
    guard = guard_for(settings)
    try:
        return _run_guarded(ctx, BatchRunner(ctx, batch_id, client, settings.imei_concurrency, guard=guard))
    finally:
        guard.pool.close()


def _run_guarded(ctx: JobContext, runner: BatchRunner) -> dict[str, Any]:
    batch_id, client = runner.batch_id, runner.client
    try:
        runner.load()
    except BaseException as exc:
        _run_async(client.aclose)
        if isinstance(exc, ProviderError):  # a guarded balance could not be read: nothing was sent
            runner.finish("waiting", describe(exc))
            raise RetryLater.outage(ctx, "the provider", describe(exc), exc.retry_after) from None
        raise
    _run_async(runner.run)
    stop = runner.stop
    if stop is not None:
        if stop.kind == "lost":
            raise LeaseLost(ctx.job_id)
        if stop.kind == "cancelled":
            runner.finish("cancelled", "cancelled by a user")
            raise JobCancelled(ctx.job_id)
        if stop.kind == "fail":
            runner.finish("failed", stop.message)
            raise AppError(stop.message, code="imei_batch_stopped")
        if stop.kind == "paused":
            runner.finish("paused", stop.message)
            raise AppError(stop.message, code="imei_batch_paused")
        runner.finish("waiting", stop.message)
        raise RetryLater.outage(ctx, stop.provider, stop.message, stop.delay)
    if runner.kept:
        message = f"{runner.kept} orders got no answer; they are reconciled in {RECONCILE_DELAY_SECONDS:.0f} s"
        runner.finish("waiting", message)
        raise RetryLater(message, RECONCILE_DELAY_SECONDS)
    summary = runner.finish("done")
    log.info("imei.batch_done", batch_id=batch_id, placed=summary["placed"], review=summary["needs_review"])
    return summary
