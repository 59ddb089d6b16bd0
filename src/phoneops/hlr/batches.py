"""Batch mode of the `hlr.lookup` job: one provider batch per chunk of pending numbers, reconciled for free.

The intent (`HlrCall`, kind `batch`) moves `new -> created -> uploaded -> starting -> started -> settled`,
each state committed before the provider call it leads to; `phoneops.hlr.jobs` explains how every state is
resumed without paying twice. Only `start` is paid; create and upload are free, and reads (status,
results) are retried by the client.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any, TypeVar

import structlog
from sqlalchemy import select, update

from phoneops.core.db import session_scope, utcnow
from phoneops.hlr.client import HlrClient, HlrError, HlrInsufficientCredit, HlrRateLimited
from phoneops.hlr.engine import Runner, Stop, throttled
from phoneops.hlr.lookups import OPEN_BATCH_STATES
from phoneops.hlr.models import PENDING, SENDING, HlrCall, HlrLookupItem

T = TypeVar("T")
log = structlog.get_logger("phoneops.hlr.batches")


class BatchDriver:
    def __init__(self, runner: Runner, client: HlrClient) -> None:
        self.runner = runner
        self.client = client
        self.lookup_id = runner.lookup_id

    def run(self) -> None:
        """Drive the open batch, if any, then one new batch per chunk until no number is pending."""
        while True:
            with session_scope() as session:
                call_id = session.scalar(
                    select(HlrCall.id).where(HlrCall.lookup_id == self.lookup_id, HlrCall.kind == "batch",
                                             HlrCall.state.in_(OPEN_BATCH_STATES)).order_by(HlrCall.id).limit(1)
                )
            if call_id is None:
                work = self.runner.claim("batch", self.runner.batch_size)
                if work is None:
                    return
                call_id = work.call_id
            self.drive(call_id)

    # --- plumbing --------------------------------------------------------------------------------------

    def _call(self, call_id: int) -> HlrCall:
        with session_scope() as session:
            call = session.get(HlrCall, call_id)
            assert call is not None
            session.expunge(call)
            return call

    def _mark(self, call_id: int, message: str, **values: Any) -> None:
        """Commit the intent's new state with a lease-guarded step (a worker without the lease stops here)."""
        with session_scope() as session:
            session.execute(update(HlrCall).where(HlrCall.id == call_id).values(**values))
            self.runner.step(session, message=message)

    def _patiently(self, action: Callable[[], T]) -> T:
        """Run a batch call that is not charged when refused: 429s are backed off; other failures stop the run."""
        attempt = 0
        while True:
            try:
                return action()
            except HlrRateLimited as exc:
                attempt += 1
                throttled(self.runner, attempt, exc)
            except HlrInsufficientCredit:
                raise self.runner.no_credit() from None
            except HlrError as exc:
                raise self.runner.provider_stop(exc) from None

    # --- one batch -------------------------------------------------------------------------------------

    def drive(self, call_id: int) -> None:
        call = self._call(call_id)
        client = self.client
        resumed_started = call.state == "started"  # started by an earlier run: re-check that it moves
        if call.state == "new":
            days = max(0, min(self.runner.ttl_days, 30))
            batch = self._patiently(
                lambda: client.create_batch(
                    f"phoneops-hlr-{self.lookup_id}-{call_id}.csv", cache_days_private=days, cache_days_global=days
                )
            )
            self._mark(call_id, f"batch {batch.id} created", provider_batch_id=batch.id, state="created")
            call.state, call.provider_batch_id = "created", batch.id
        assert call.provider_batch_id is not None
        bid: str = call.provider_batch_id
        if call.state == "created":
            with session_scope() as session:
                numbers = [number for _, _, number in self.runner.work_of(session, call_id).items]
            found = self._patiently(lambda: client.get_batch(bid))
            if found.num_items == 0:
                self._patiently(lambda: client.upload_source(bid, numbers))
            elif found.num_items != len(numbers):
                self._abandon(call_id, f"batch {bid} holds {found.num_items} numbers, not {len(numbers)}: not started")
                return
            self._mark(call_id, f"batch {bid}: {len(numbers):,} numbers uploaded", state="uploaded")
            call.state = "uploaded"
        if call.state == "starting":
            # Interrupted around the paid start: we cannot tell from a status name whether it reached the
            # provider, so the start is sent again. A batch is processed (and paid) once: the provider either
            # starts it now or refuses a batch already started — both prove it runs.
            fresh = self._patiently(lambda: client.start_batch(bid))
            now = utcnow()
            self._mark(call_id, f"batch {bid} " + ("started" if fresh else "had started (the provider says so)"),
                       state="started", started_at=call.started_at or now, poll_since=now)
            call.state = "started"
        if call.state == "uploaded":
            self._mark(call_id, f"starting batch {bid}", state="starting")
            self._patiently(lambda: client.start_batch(bid))
            now = utcnow()
            self._mark(call_id, f"batch {bid} started", state="started", started_at=now, poll_since=now)
        self._poll_and_settle(call_id, bid, confirm_start=resumed_started)

    def _abandon(self, call_id: int, reason: str) -> None:
        """A batch we cannot trust is never started: its numbers go back to pending for a new batch."""
        with session_scope() as session:
            session.execute(
                update(HlrLookupItem)
                .where(HlrLookupItem.call_id == call_id, HlrLookupItem.state == SENDING)
                .values(state=PENDING, call_id=None)
            )
            session.execute(update(HlrCall).where(HlrCall.id == call_id).values(state="abandoned", error=reason))
            self.runner.step(session, message=reason)

    def _poll_and_settle(self, call_id: int, bid: str, *, confirm_start: bool = False) -> None:
        runner, client = self.runner, self.client
        call = self._call(call_id)
        deadline = (call.poll_since or utcnow()) + timedelta(seconds=runner.poll_max)
        while True:
            batch = self._patiently(lambda: client.get_batch(bid))
            if confirm_start and batch.num_complete == 0 and not batch.is_finished:
                # Resumed, nothing looked up yet: send the start again (free when it had started; see `drive`).
                confirm_start = False
                self._patiently(lambda: client.start_batch(bid))
                log.info("hlr.batch_start_resent", lookup_id=self.lookup_id, batch_id=bid)
                batch = self._patiently(lambda: client.get_batch(bid))
            with session_scope() as session:
                session.execute(update(HlrCall).where(HlrCall.id == call_id).values(num_complete=batch.num_complete))
                runner.step(session, message=f"batch {bid}: {batch.num_complete:,} of {batch.num_items:,} looked up "
                            f"({batch.status or 'running'})", extra_done=batch.num_complete)
            if batch.is_finished:
                break
            if utcnow() + timedelta(seconds=runner.poll_every) > deadline:
                with session_scope() as session:
                    session.execute(update(HlrCall).where(HlrCall.id == call_id).values(
                        error=f"not complete after {runner.poll_max:g} s of polling"))
                raise Stop(
                    "fail",
                    f"hlrlookup.com batch {bid} is still {batch.status or 'running'} "
                    f"({batch.num_complete:,} of {batch.num_items:,} done) after {runner.poll_max:g} s of "
                    "polling (HLR_POLL_MAX_SECONDS; its start was confirmed with the provider); its numbers "
                    f"stay open and are not paid again: resume the lookup (`phoneops hlr resume "
                    f"{self.lookup_id}` or Resume on its page) to poll it again, or cancel it",
                )
            runner.sleep(runner.poll_every)
        results = self._patiently(lambda: client.fetch_results(bid))
        with session_scope() as session:
            work = runner.work_of(session, call_id)
        if batch.is_failed:
            runner.settle(work, results, in_doubt=f"hlrlookup.com batch {bid} ended {batch.status}: this number may "
                          "have been looked up; not sent again", call_state="failed")
            raise Stop(
                "fail",
                f"hlrlookup.com batch {bid} ended {batch.status}; the results it returned are kept, "
                "its other numbers are marked for review",
            )
        if runner.settle(work, results).unprocessed:
            raise runner.no_credit()
