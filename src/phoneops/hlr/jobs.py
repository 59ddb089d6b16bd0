# Over 400 lines: the crash-safe lookup engine: claim, pay once, settle, resume, one protocol.
"""The `hlr.lookup` job: look every pending number up once, whatever kills the worker, and settle it.

Every paid call has an intent row (`HlrCall`), committed — together with its numbers moving
`pending -> sending` and a lease-guarded job step — BEFORE the call, and settled after it in one
transaction with the results, the list verdicts and the job's progress. A worker that lost its lease
cannot commit an intent, hence cannot pay. This module holds the runner (claim, settle, finish); the two
ways of calling the provider are `phoneops.hlr.batches` and `phoneops.hlr.realtime`.

Batch mode (the default, the original's flow) is reconciled with the provider, for free, at every point:

| intent state | what the resumed job does                                                             |
|--------------|---------------------------------------------------------------------------------------|
| `new`        | create a batch (a batch created just before a kill stays empty, unstarted and free)     |
| `created`    | GET the batch: 0 items -> upload; the expected count -> uploaded; else abandon it       |
| `uploaded`   | commit `starting`, then start it (the paid call)                                        |
| `starting`   | GET the batch: still `NEW` -> start it; anything else -> it started                     |
| `started`    | poll every HLR_POLL_EVERY_SECONDS up to HLR_POLL_MAX_SECONDS, fetch the results, settle |

Reading a batch's results is free and repeatable, so a kill between the results and the settle costs
nothing: every number is looked up exactly once. A batch never completed within HLR_POLL_MAX_SECONDS
fails the job with that reason and stays open: resuming polls it again.

Real-time mode (<= 80 numbers per call): an intent found still `sending` on resume (the worker died
between committing it and settling it) or left `in_doubt` by a 5xx / timeout is settled through the
provider's private cache (`phoneops.hlr.realtime`): its numbers are asked again with the private cache on,
free for those the lost call looked up, so each number is charged exactly once. A 429 and errors raised
before the request left are not charged: the numbers go back to `pending` and the job backs off. Numbers
in `review` (a failed batch, a call older than the private cache) are sent again only by an operator's
explicit decision (`lookups.release_review`) or written off.

One number is in flight in one lookup at a time (`LookupRunner.claim`): a number another lookup has
`sending` is not claimed; the job claims the rest, then waits, parked with the reason ("waiting for N
numbers being looked up by lookup #X"), until that lookup settles it, and then takes its fresh result for
free. A number held by a stopped lookup (failed, cancelled: nobody settles it until it is resumed) goes to
`review` with a note naming that lookup, so a run never ends with numbers left pending.

`INSUFFICIENT_CREDIT` keeps every paid result, puts the numbers without one back to `pending` and stops
the job with a clear message; resuming after a top-up looks up only those.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from datetime import timedelta
from decimal import Decimal
from typing import Any

import structlog
from sqlalchemy import exists, func, insert, literal_column, select, true, update
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session, aliased
from sqlalchemy.sql.elements import ColumnClause

from phoneops.core.audit import audit, first_actor
from phoneops.core.db import rowcount, session_scope, utcnow
from phoneops.core.errors import AppError
from phoneops.core.jobs import ACTIVE as ACTIVE_JOBS
from phoneops.core.jobs import JobCancelled, JobContext, RetryLater
from phoneops.core.models import Job
from phoneops.core.security import Principal, Role, acting_for
from phoneops.hlr import engine, outputs
from phoneops.hlr.batches import BatchDriver
from phoneops.hlr.client import (
    INSUFFICIENT_CREDIT,
    HlrAuthError,
    HlrBadRequest,
    HlrError,
    HlrResult,
)
from phoneops.hlr.engine import Settled, Stop, Work
from phoneops.hlr.lookups import fresh_results, get_lookup, item_counts
from phoneops.hlr.models import (
    CACHED,
    DONE,
    FAILED,
    IN_FLIGHT_INDEX,
    LOOKUP_FAILED,
    NEEDS_CREDIT,
    PENDING,
    REVIEW,
    RUNNING,
    SENDING,
    SUCCEEDED,
    HlrCall,
    HlrLookup,
    HlrLookupItem,
)
from phoneops.hlr.models import HlrResult as ResultRow
from phoneops.hlr.outcomes import Decided, OutcomeMap, load_map, verdicts
from phoneops.hlr.provider import CREDITS_PER_LOOKUP, credits_text, describe
from phoneops.hlr.provider import client as make_client
from phoneops.hlr.realtime import RealtimeDriver
from phoneops.hlr.wire import e164
from phoneops.numbers.lists import apply_verdicts
from phoneops.numbers.vault import get_vault
from phoneops.settings import get_settings
from phoneops.webhooks import service as webhooks

log = structlog.get_logger("phoneops.hlr.jobs")

_NUMBER_FIELDS = ("detected_telephone_number", "formatted_telephone_number")


def _stored_raw(result: HlrResult) -> dict[str, Any]:
    """The provider's record without the number itself (no plaintext at rest)."""
    raw = {k: v for k, v in result.raw.items() if k not in _NUMBER_FIELDS}
    params = raw.get("request_parameters")
    if isinstance(params, dict):
        raw["request_parameters"] = {k: v for k, v in params.items() if k != "telephone_number"}
    return raw


class LookupRunner:
    def __init__(self, ctx: JobContext, lookup_id: int) -> None:
        self.ctx = ctx
        self.lookup_id = lookup_id
        self.actor = Principal(user_id=ctx.created_by, username=f"hlr-lookup-{lookup_id}", role=Role.admin)
        settings = get_settings()
        self.poll_every = settings.hlr_poll_every_seconds
        self.poll_max = settings.hlr_poll_max_seconds
        self.mode = "batch"
        self.batch_size = 10_000
        self.ttl_days = settings.hlr_cache_ttl_days
        self.outcomes: OutcomeMap | None = None
        self.sleep: Callable[[float], None] = time.sleep
        self.start_credits = Decimal(0)  # spent before this run (its audit line says what the run charged)
        self.review_before = 0  # numbers in review when this run started

    # --- progress --------------------------------------------------------------------------------------

    def step(self, session: Session, message: str | None = None, extra_done: int = 0) -> None:
        counts = item_counts(session, self.lookup_id)
        lookup = session.get(HlrLookup, self.lookup_id)
        spent = lookup.credits_spent if lookup is not None else Decimal(0)
        settled = sum(n for state, n in counts.items() if state not in (PENDING, SENDING))
        self.ctx.step(
            session, done=settled + extra_done, total=sum(counts.values()), message=message,
            counters={"cached": counts.get(CACHED, 0), "looked_up": counts.get(DONE, 0),
                      "needs_review": counts.get(REVIEW, 0), "failed": counts.get(FAILED, 0),
                      "pending": counts.get(PENDING, 0) + counts.get(SENDING, 0), "credits_spent": credits_text(spent)},
        )

    def _set_lookup(self, **values: Any) -> None:
        with session_scope() as session:
            session.execute(update(HlrLookup).where(HlrLookup.id == self.lookup_id).values(**values))

    # --- the run ---------------------------------------------------------------------------------------

    def run(self) -> dict[str, Any]:
        with session_scope() as session:
            lookup = get_lookup(session, self.lookup_id)
            self.mode, self.batch_size, self.ttl_days = lookup.mode, lookup.batch_size, lookup.ttl_days
            lookup.status, lookup.error = RUNNING, None
            self.start_credits = lookup.credits_spent
            counts = item_counts(session, self.lookup_id)
            open_work = counts.get(PENDING, 0) + counts.get(SENDING, 0)
            self.review_before = counts.get(REVIEW, 0)
            self.step(session, message="looking numbers up" if open_work else "all numbers have fresh results")
        try:
            if open_work:
                with make_client() as client:
                    (RealtimeDriver if self.mode == "realtime" else BatchDriver)(self, client).run()
        except Stop as stop:
            return self._stopped(stop)
        except AppError as exc:
            self._end(LOOKUP_FAILED, error=exc.message)
            raise
        return self.finish()

    def _stopped(self, stop: Stop) -> dict[str, Any]:
        if stop.kind == "wait":  # for other lookups' calls: no outage, the job comes back after the delay
            self._set_lookup(message=f"waiting {stop.message}")
            with session_scope() as session:
                lookup = get_lookup(session, self.lookup_id)
                if lookup.credits_spent != self.start_credits:  # this run's paid calls, before the job waits
                    self._audit_run(session, lookup, "waiting", stop.message)
            raise RetryLater(stop.message, stop.delay if stop.delay is not None else engine.WAIT_SECONDS)
        if stop.kind == "park":
            self._set_lookup(message=f"waiting: {stop.message}")
            with session_scope() as session:  # this step's paid calls, before the job waits
                self._audit_run(session, get_lookup(session, self.lookup_id), "waiting", stop.message)
            later = RetryLater.outage(self.ctx, "hlrlookup.com", stop.message, stop.delay)
            if stop.delay is None:  # failing or in doubt: the growing delay, at most PARK_SECONDS
                later.delay_seconds = min(later.delay_seconds, engine.PARK_SECONDS)
            raise later
        status = NEEDS_CREDIT if stop.kind == "no_credit" else LOOKUP_FAILED
        self._end(status, error=stop.message)
        raise AppError(stop.message)

    def _end(self, status: str, *, error: str | None) -> None:
        """Stop: keep every result, write the files of what was obtained."""
        with session_scope() as session:
            lookup = get_lookup(session, self.lookup_id)
            self._apply_cached(session)
            outputs.write_outputs(session, self.actor, lookup)
            lookup.status, lookup.error, lookup.finished_at = status, error, utcnow()
            self._audit_run(session, lookup, status, error)
            self._tell_review(session, item_counts(session, self.lookup_id))

    def _audit_run(self, session: Session, lookup: HlrLookup, status: str, error: str | None) -> None:
        """The paid calls of this run (job step), one audit line for whoever started the lookup: the numbers
        by state, the credits this run charged and the lookup's total."""
        actor = acting_for(session, self.ctx.created_by,
                           name=first_actor(session, "hlr.lookup_create", "hlr_lookup", lookup.id))
        audit(session, actor, "hlr.lookup_run", "hlr_lookup", lookup.id,
              {"job_id": self.ctx.job_id, "mode": lookup.mode, "status": status, "error": error,
               "counts": item_counts(session, self.lookup_id), "credits_spent": credits_text(lookup.credits_spent),
               "run_credits": credits_text(lookup.credits_spent - self.start_credits)}, outcome=status)

    def finish(self) -> dict[str, Any]:
        with session_scope() as session:
            lookup = get_lookup(session, self.lookup_id)
            self._apply_cached(session)
            outputs.write_outputs(session, self.actor, lookup)
            lookup.status, lookup.finished_at, lookup.error = SUCCEEDED, utcnow(), None
            counts = item_counts(session, self.lookup_id)
            lookup.message = outputs.summary_line(lookup, counts)
            self._audit_run(session, lookup, SUCCEEDED, None)
            self.step(session, message=lookup.message)
            self._tell_review(session, counts)
            return {"lookup_id": lookup.id, "numbers": lookup.numbers, "cached": counts.get(CACHED, 0),
                    "looked_up": counts.get(DONE, 0), "needs_review": counts.get(REVIEW, 0),
                    "failed": counts.get(FAILED, 0), "credits_spent": credits_text(lookup.credits_spent),
                    "clean_file_id": lookup.clean_file_id, "raw_file_id": lookup.raw_file_id}

    def _tell_review(self, session: Session, counts: dict[str, int]) -> None:
        """review.needed when this run left more numbers in doubt than it found (docs/api.md)."""
        if counts.get(REVIEW, 0) > self.review_before:
            webhooks.notify(session, "review.needed", {
                "domain": "hlr", "lookup_id": self.lookup_id, "needs_review": counts.get(REVIEW, 0),
                "new": counts.get(REVIEW, 0) - self.review_before, "page": f"/hlr/lookups/{self.lookup_id}"})

    # --- outcomes --------------------------------------------------------------------------------------

    def _map(self, session: Session) -> OutcomeMap:
        if self.outcomes is None:
            self.outcomes = load_map(session)
        return self.outcomes

    def _apply_cached(self, session: Session) -> None:
        """Numbers answered from a fresh earlier result: decide them with today's mapping and risky list."""
        vault, mapping, after = get_vault(), self._map(session), 0
        while True:
            rows = session.execute(
                select(HlrLookupItem.id, HlrLookupItem.blind_index, HlrLookupItem.sealed, ResultRow)
                .join(ResultRow, ResultRow.id == HlrLookupItem.result_id)
                .where(HlrLookupItem.lookup_id == self.lookup_id, HlrLookupItem.state == CACHED,
                       HlrLookupItem.id > after)
                .order_by(HlrLookupItem.id)
                .limit(5000)
            ).all()
            if not rows:
                return
            decided, updates = [], []
            for item_id, index, sealed, result in rows:
                decision = mapping.decide(result.live_status, *outputs.serving_network(result))
                evidence = {"lookup_id": self.lookup_id, "live_status": result.live_status, "cached": True,
                            "looked_up_at": result.looked_up_at.isoformat()}
                decided.append(Decided(vault.open(sealed, index), bytes(index), decision, evidence))
                updates.append({"id": item_id, "outcome": decision.rule.action, "reason": decision.rule.reason})
            session.execute(update(HlrLookupItem), updates)
            apply_verdicts(session, self.actor, verdicts(session, decided))
            after = rows[-1][0]

    # --- claiming (the intents) ------------------------------------------------------------------------

    def claim(self, kind: str, limit: int) -> Work | None:
        """Commit the intent for the next `limit` pending numbers (None when none is left).

        One number is in flight in one lookup at a time: a number another lookup has `sending` (at the
        provider, or in doubt) is left pending here, and the job waits for that lookup (`Stop("wait")`),
        whose fresh result then answers it for free. The intent is a conditional UPDATE (pending, not in flight
        elsewhere, no fresh result) that must take every selected item, else the claim starts again: what
        a rival committed since the SELECT is then seen. Two claims passing that condition at once
        (PostgreSQL, READ COMMITTED) are stopped by the partial unique index `IN_FLIGHT_INDEX`: the loser
        rolls back and starts again too."""
        races = 0
        while True:
            try:
                claimed = self._claim_once(kind, limit)
            except (_Raced, DBAPIError) as exc:
                if isinstance(exc, DBAPIError) and not _lost_race(exc):
                    raise
                races += 1
                log.info("hlr.claim_raced", lookup_id=self.lookup_id, races=races)
                if races >= CLAIM_RACES:
                    raise Stop("wait", "for other lookups claiming the same numbers at the same moment",
                               engine.WAIT_SECONDS) from None
                continue
            if claimed is not _AGAIN:
                return claimed if isinstance(claimed, Work) else None

    def _claim_once(self, kind: str, limit: int) -> Work | object | None:
        with session_scope() as session:
            rows = session.execute(
                select(HlrLookupItem.id, HlrLookupItem.blind_index, HlrLookupItem.sealed)
                .where(HlrLookupItem.lookup_id == self.lookup_id, HlrLookupItem.state == PENDING,
                       not_in_flight_elsewhere())
                .order_by(HlrLookupItem.id)
                .limit(limit)
            ).all()
            if not rows:
                return self._none_claimable(session)
            # Looked up since the estimate (another lookup, a resumed one): not paid again.
            fresh = fresh_results(session, [bytes(r.blind_index) for r in rows], self.ttl_days)
            if fresh:
                session.execute(update(HlrLookupItem), [
                    {"id": r.id, "state": CACHED, "result_id": fresh[bytes(r.blind_index)]}
                    for r in rows if bytes(r.blind_index) in fresh
                ])
                rows = [r for r in rows if bytes(r.blind_index) not in fresh]
                if not rows:
                    self.step(session)
                    return _AGAIN
            call = HlrCall(lookup_id=self.lookup_id, kind=kind, state=SENDING if kind == "realtime" else "new",
                           numbers=len(rows))
            session.add(call)
            session.flush()
            taken = 0
            ids = [r.id for r in rows]
            for begin in range(0, len(ids), CLAIM_CHUNK):
                taken += rowcount(session.execute(
                    update(HlrLookupItem)
                    .where(HlrLookupItem.id.in_(ids[begin : begin + CLAIM_CHUNK]), HlrLookupItem.state == PENDING,
                           not_in_flight_elsewhere(), self._no_fresh_result())
                    .values(state=SENDING, call_id=call.id)
                    .execution_options(synchronize_session=False)
                ))
            if taken != len(rows):  # a rival claimed or settled some of them since the SELECT
                raise _Raced
            self.step(session, message=f"{kind} call {call.id}: {len(rows)} numbers")
            call_id = call.id
        vault = get_vault()
        return Work(call_id, [(r.id, bytes(r.blind_index), vault.open(r.sealed, r.blind_index)) for r in rows])

    def _no_fresh_result(self) -> Any:
        """No result younger than the TTL for the item's number (settled by a rival since our SELECT)."""
        if self.ttl_days <= 0:
            return true()
        cutoff = utcnow() - timedelta(days=self.ttl_days)
        return ~exists().where(ResultRow.blind_index == HlrLookupItem.blind_index, ResultRow.looked_up_at >= cutoff)

    def _none_claimable(self, session: Session) -> object | None:
        """Nothing claimable: done (None), or numbers in flight in other lookups. A live lookup's (its job
        queued or running) are waited for; a stopped lookup's stay open until someone resumes it, so they
        go to review here, with a note naming it (released later, they are answered by its result)."""
        rival, blocked = aliased(HlrLookupItem), aliased(HlrLookupItem)
        found = session.execute(
            select(rival.lookup_id, func.count(blocked.id), Job.status)
            .select_from(blocked)
            .join(rival, (rival.blind_index == blocked.blind_index) & (rival.state == _SENDING_LITERAL))
            .join(HlrLookup, HlrLookup.id == rival.lookup_id)
            .outerjoin(Job, Job.id == HlrLookup.job_id)
            .where(blocked.lookup_id == self.lookup_id, blocked.state == PENDING)
            .group_by(rival.lookup_id, Job.status)
            .order_by(rival.lookup_id)
        ).all()
        if not found:
            left = session.scalar(select(func.count(HlrLookupItem.id)).where(
                HlrLookupItem.lookup_id == self.lookup_id, HlrLookupItem.state == PENDING))
            return _AGAIN if left else None  # left: the rival settled since the SELECT; claim them now
        live = [(int(lookup_id), int(n)) for lookup_id, n, status in found if status in ACTIVE_JOBS]
        stopped = [int(lookup_id) for lookup_id, _n, status in found if status not in ACTIVE_JOBS]
        if stopped:
            self._review_blocked(session, stopped)
            return _AGAIN
        numbers = sum(n for _, n in live)
        names = ", ".join(f"#{lookup_id}" for lookup_id, _ in live)
        reason = (f"for {numbers:,} number{'s' if numbers != 1 else ''} being looked up by "
                  f"lookup{'s' if len(live) > 1 else ''} {names} (not paid twice: their results answer this "
                  "lookup for free)")
        raise Stop("wait", reason, max(engine.WAIT_SECONDS, min(self.poll_every, engine.PARK_SECONDS)))

    def _review_blocked(self, session: Session, stopped: list[int]) -> None:
        for rival_id in stopped:
            rival = aliased(HlrLookupItem)
            moved = rowcount(session.execute(
                update(HlrLookupItem)
                .where(HlrLookupItem.lookup_id == self.lookup_id, HlrLookupItem.state == PENDING,
                       exists().where(rival.blind_index == HlrLookupItem.blind_index, rival.lookup_id == rival_id,
                                      rival.state == _SENDING_LITERAL))
                .values(state=REVIEW, note=STOPPED_RIVAL.format(lookup=rival_id)[:200])
                .execution_options(synchronize_session=False)
            ))
            session.execute(update(HlrLookup).where(HlrLookup.id == self.lookup_id)
                            .values(review=HlrLookup.review + moved))
            log.info("hlr.blocked_by_stopped_lookup", lookup_id=self.lookup_id, rival=rival_id, numbers=moved)
        self.step(session, message=f"numbers in flight in stopped lookup(s) {', '.join(f'#{i}' for i in stopped)}: "
                  "in review")

    def work_of(self, session: Session, call_id: int) -> Work:
        rows = session.execute(
            select(HlrLookupItem.id, HlrLookupItem.blind_index, HlrLookupItem.sealed)
            .where(HlrLookupItem.call_id == call_id, HlrLookupItem.state == SENDING)
            .order_by(HlrLookupItem.id)
        ).all()
        vault = get_vault()
        return Work(call_id, [(r.id, bytes(r.blind_index), vault.open(r.sealed, r.blind_index)) for r in rows])

    def revert(self, work: Work, error: str) -> None:
        """The call provably did not happen: its numbers go back to pending."""
        with session_scope() as session:
            session.execute(
                update(HlrLookupItem)
                .where(HlrLookupItem.call_id == work.call_id, HlrLookupItem.state == SENDING)
                .values(state=PENDING, call_id=None)
            )
            session.execute(
                update(HlrCall).where(HlrCall.id == work.call_id).values(state="unsent", error=error[:500],
                                                                         settled_at=utcnow())
            )
            self.step(session, message=error)

    # --- settling --------------------------------------------------------------------------------------

    def settle(
        self,
        work: Work,
        results: Sequence[HlrResult],
        *,
        unprocessed: Sequence[str] = (),
        in_doubt: str | None = None,
        missing_state: str = REVIEW,
        call_state: str = "settled",
        recheck: bool = False,
    ) -> Settled:
        """Store the results of one call and everything that follows from them, in one transaction.

        `recheck`: the call re-asked numbers of a lost call with the private cache on; a free answer for a
        chargeable result is the lost call's lookup, whose credit is counted now."""
        args = (work, results, unprocessed, in_doubt, missing_state, call_state, recheck)
        try:
            return self._settle_once(*args, guard=True)
        except JobCancelled:
            # Cancelled while the call was in flight: what was paid is still kept.
            self._settle_once(*args, guard=False)
            raise

    def _settle_once(
        self, work: Work, results: Sequence[HlrResult], unprocessed: Sequence[str], in_doubt: str | None,
        missing_state: str, call_state: str, recheck: bool, *, guard: bool,
    ) -> Settled:
        by_number = {number: (item_id, index) for item_id, index, number in work.items}
        now = utcnow()
        out = Settled()
        with session_scope() as session:
            mapping = self._map(session)
            rows: list[tuple[int, dict[str, Any]]] = []
            decided: list[Decided] = []
            item_updates: list[dict[str, Any]] = []
            seen: set[int] = set()
            for result in results:
                key = e164(result.submitted) if e164(result.submitted) in by_number else result.number
                if key not in by_number or by_number[key][0] in seen:
                    continue
                item_id, index = by_number[key]
                seen.add(item_id)
                if result.error == INSUFFICIENT_CREDIT:
                    item_updates.append({"id": item_id, "state": PENDING, "call_id": None})
                    out.unprocessed += 1
                    continue
                if not result.ok:
                    item_updates.append({"id": item_id, "state": FAILED,
                                         "note": f"hlrlookup.com error {result.error} {result.detail}".strip()[:200]})
                    out.failed += 1
                    continue
                network = result.network
                name, mccmnc = (network.name, network.mccmnc) if network is not None else ("", "")
                credits = result.credits_spent
                if recheck and not credits and chargeable(result):
                    credits = Decimal(CREDITS_PER_LOOKUP)  # answered by the private cache: the lost call paid
                rows.append((item_id, {
                    "blind_index": index, "lookup_id": self.lookup_id, "call_id": work.call_id, "looked_up_at": now,
                    "live_status": result.live_status[:32], "number_type": result.number_type[:32],
                    "original_network": result.original_network_name[:200],
                    "original_mccmnc": result.original_mccmnc[:8], "current_network": result.current_network_name[:200],
                    "current_mccmnc": result.current_mccmnc[:8],
                    "country_iso3": (network.country_iso3 if network is not None else "")[:3],
                    "ported": result.is_ported, "credits_spent": credits,
                    "provider_uuid": result.uuid[:64],
                    "provider_time": result.timestamp if result.timestamp and result.timestamp.tzinfo else None,
                    "raw": _stored_raw(result),
                }))
                out.done += 1
                out.credits += credits
                decision = mapping.decide(result.live_status, name, mccmnc)
                evidence = {"lookup_id": self.lookup_id, "live_status": result.live_status, "network": name,
                            "mccmnc": mccmnc, "ported": result.is_ported}
                decided.append(Decided(key, index, decision, evidence))
                item_updates.append({"id": item_id, "state": DONE, "outcome": decision.rule.action,
                                     "reason": decision.rule.reason})
            unprocessed_keys = {e164(n) for n in unprocessed}
            for item_id, _index, number in work.items:
                if item_id in seen:
                    continue
                if number in unprocessed_keys:
                    item_updates.append({"id": item_id, "state": PENDING, "call_id": None})
                    out.unprocessed += 1
                else:
                    note = in_doubt or "sent, but no result came back for this number"
                    item_updates.append({"id": item_id, "state": missing_state, "note": note[:200]})
                    out.review += int(missing_state == REVIEW)
                    out.failed += int(missing_state == FAILED)
            result_ids: dict[int, int] = {}
            if rows:  # a plain executemany, then the ids by blind index (unique within the call)
                session.execute(insert(ResultRow), [row for _, row in rows])
                ids: dict[bytes, int] = {
                    bytes(index): int(rid) for index, rid in session.execute(
                        select(ResultRow.blind_index, ResultRow.id).where(ResultRow.call_id == work.call_id))
                }
                result_ids = {item_id: ids[bytes(row["blind_index"])] for item_id, row in rows}
            for change in item_updates:
                if change["id"] in result_ids:
                    change["result_id"] = result_ids[change["id"]]
            _bulk_update(session, item_updates)
            session.execute(
                update(HlrCall).where(HlrCall.id == work.call_id).values(
                    state=call_state, credits=out.credits, settled_at=now, error=in_doubt and in_doubt[:500])
            )
            session.execute(
                update(HlrLookup).where(HlrLookup.id == self.lookup_id).values(
                    looked_up=HlrLookup.looked_up + out.done, review=HlrLookup.review + out.review,
                    failed=HlrLookup.failed + out.failed, credits_spent=HlrLookup.credits_spent + out.credits)
            )
            if decided:
                apply_verdicts(session, self.actor, verdicts(session, decided))
            if guard:
                self.step(session, message=f"call {work.call_id}: {out.done} looked up"
                           + (f", {out.review} in doubt" if out.review else ""))
        log.info("hlr.settled", lookup_id=self.lookup_id, call_id=work.call_id, done=out.done, review=out.review,
                 failed=out.failed, unprocessed=out.unprocessed, credits=str(out.credits))
        return out

    def provider_stop(self, exc: HlrError) -> Stop:
        if isinstance(exc, HlrAuthError | HlrBadRequest):
            return Stop("fail", describe(exc))
        return Stop("park", describe(exc))

    def no_credit(self) -> Stop:
        with session_scope() as session:
            counts = item_counts(session, self.lookup_id)
        left = counts.get(PENDING, 0) + counts.get(SENDING, 0)
        return Stop("no_credit", f"the hlrlookup.com account is out of credit: {left:,} numbers are not looked up "
                    "yet (every result already paid for is kept); top up the account, then resume the lookup")


def chargeable(result: HlrResult) -> bool:
    """Whether a fresh lookup of this result costs a credit (NO_COVERAGE and non-numbers are free)."""
    return result.ok and result.live_status != "NO_COVERAGE" and result.number_type not in ("UNKNOWN", "")


def _bulk_update(session: Session, rows: list[dict[str, Any]]) -> None:
    """UPDATE items by primary key; rows with the same keys go in one executemany."""
    groups: dict[tuple[str, ...], list[dict[str, Any]]] = {}
    for row in rows:
        groups.setdefault(tuple(sorted(row)), []).append(row)
    for same in groups.values():
        session.execute(update(HlrLookupItem), same)


class _Raced(Exception):
    """A rival lookup claimed (or settled) some of the selected numbers between the SELECT and the UPDATE."""


_AGAIN = object()  # `_claim_once`: look again (numbers answered from fresh results, a rival settled, ...)
CLAIM_RACES = 20  # claims lost in a row to rivals before the job waits a moment
CLAIM_CHUNK = 5000  # ids per conditional UPDATE
# A literal (not a bound parameter), so PostgreSQL matches the partial index's predicate in every plan.
_SENDING_LITERAL: ColumnClause[Any] = literal_column(f"'{SENDING}'")
STOPPED_RIVAL = ("in flight in lookup #{lookup}, which stopped before settling it (it may have been paid there): "
                 "resume lookup #{lookup}, then release this number (answered free from its result)")


def not_in_flight_elsewhere() -> Any:
    """The item's number is not `sending` in another lookup (the claim's condition; see `LookupRunner.claim`)."""
    rival = aliased(HlrLookupItem)
    return ~exists().where(rival.blind_index == HlrLookupItem.blind_index, rival.state == _SENDING_LITERAL)


def _lost_race(exc: DBAPIError) -> bool:
    """The claim's UPDATE hit the one-number-in-flight index (another claim won) or a deadlock between two
    such claims (PostgreSQL aborts one of them): it rolled back and may start again."""
    text = str(exc.orig)
    return (IN_FLIGHT_INDEX in text or "hlr_lookup_items.blind_index" in text
            or getattr(exc.orig, "sqlstate", None) == "40P01")
