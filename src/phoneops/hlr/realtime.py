"""Real-time mode of the `hlr.lookup` job: one paid `POST /apiv2/hlr` per <= 80 pending numbers.

Each call's intent (`HlrCall`, kind `realtime`) is committed `sending` before the call and settled right
after it. A call whose fate is unknown — the worker died before settling it (the intent is still
`sending`), or the provider answered 5xx / timed out (`in_doubt`) — is settled through the provider's
private cache (docs/providers/hlr_cache.md): its numbers are asked again with `cache_days_private` covering
the time since the lost call and the global cache off. A number the lost call looked up comes back from
our private cache for free; one it never reached is looked up now, paid once. Either way each number is
charged exactly once, and asking again is safe however often a kill interrupts it. A free answer for a
chargeable result is the lost call's lookup: its credit is counted in the lookup's spend. A call older
than the private cache keeps (30 days) cannot be settled for free: its numbers go to `review`.
"""

from __future__ import annotations

import math
from datetime import UTC

from sqlalchemy import select, update

from phoneops.core.db import session_scope, utcnow
from phoneops.hlr.client import HlrClient, HlrError, HlrInsufficientCredit, HlrRateLimited
from phoneops.hlr.engine import Runner, Stop, throttled
from phoneops.hlr.models import SENDING, HlrCall
from phoneops.hlr.provider import describe
from phoneops.hlr.wire import MAX_NUMBERS_PER_REQUEST

INTERRUPTED = ("interrupted during its call more than the provider's private cache keeps (30 days): it may "
               "have been looked up and paid; not sent again — check it before looking it up again")
PRIVATE_CACHE_MAX_DAYS = 30  # the provider's private cache keeps results this long (and accepts at most 30)
IN_DOUBT = ("sent, but the call's answer was lost ({why}); settled through the provider's private cache on the "
            "next try (charged once)")


class RealtimeDriver:
    def __init__(self, runner: Runner, client: HlrClient) -> None:
        self.runner = runner
        self.client = client

    def options(self) -> dict[str, object]:
        """As the original's batches: the provider's caches for as long as our TTL (at most 30 days)."""
        days = max(0, min(self.runner.ttl_days, 30))
        return {"cache_days_private": days, "cache_days_global": days, "save_to_cache": "YES"}

    def reconcile(self) -> None:
        """Settle every call in doubt (left `sending` by a dead worker, or `in_doubt` after a 5xx/timeout)
        through the provider's private cache; see the module's notes."""
        runner = self.runner
        with session_scope() as session:
            calls = list(session.execute(
                select(HlrCall.id, HlrCall.created_at).where(
                    HlrCall.lookup_id == runner.lookup_id, HlrCall.kind == "realtime",
                    HlrCall.state.in_((SENDING, "settling", "in_doubt"))).order_by(HlrCall.id)
            ))
            works = [(runner.work_of(session, call_id), created) for call_id, created in calls]
        for work, created in works:
            if not work.items:
                runner.settle(work, ())
                continue
            age = utcnow() - (created if created.tzinfo else created.replace(tzinfo=UTC))
            days = max(1, math.ceil(age.total_seconds() / 86_400))
            if days > PRIVATE_CACHE_MAX_DAYS:
                runner.settle(work, (), in_doubt=INTERRUPTED, call_state="in_doubt_review")
                continue
            with session_scope() as session:  # the re-ask is an attempt of the same intent
                session.execute(update(HlrCall).where(HlrCall.id == work.call_id).values(state="settling"))
                runner.step(session, message=f"call {work.call_id}: settling {len(work.items)} numbers in doubt "
                            "through the provider's private cache")
            numbers = [number for _, _, number in work.items]
            try:
                results = self.client.lookup_call(numbers, cache_days_private=days, cache_days_global=0,
                                                  save_to_cache="YES")
            except HlrInsufficientCredit as exc:  # not in the cache and no credit: never charged, back to pending
                runner.settle(work, exc.results, unprocessed=exc.unprocessed, recheck=True)
                raise runner.no_credit() from None
            except HlrError as exc:  # still in doubt: the intent stays open, asked again on the next run
                self._keep_in_doubt(work.call_id, describe(exc))
                if isinstance(exc, HlrRateLimited):
                    raise Stop("park", describe(exc), exc.retry_after) from None
                raise runner.provider_stop(exc) from None
            runner.settle(work, results, recheck=True)

    def _keep_in_doubt(self, call_id: int, why: str) -> None:
        with session_scope() as session:
            session.execute(update(HlrCall).where(HlrCall.id == call_id).values(state="in_doubt", error=why[:500]))

    def run(self) -> None:
        runner = self.runner
        self.reconcile()
        attempt = 0
        options = self.options()
        # After a call in doubt (the provider failing, or down), one number goes first: an outage costs
        # one number in review per try, not a full call's worth; a call that comes back restores the size.
        size = 1 if self._last_call_in_doubt() else MAX_NUMBERS_PER_REQUEST
        while (work := runner.claim("realtime", size)) is not None:
            try:
                results = self.client.lookup_call([number for _, _, number in work.items], **options)
            except HlrInsufficientCredit as exc:  # what was paid is kept; the rest goes back to pending
                runner.settle(work, exc.results, unprocessed=exc.unprocessed)
                raise runner.no_credit() from None
            except HlrRateLimited as exc:  # not charged: back off, then send the same numbers again
                runner.revert(work, "rate limited (HTTP 429), backing off")
                attempt += 1
                throttled(runner, attempt, exc)
                continue
            except HlrError as exc:
                if exc.maybe_sent:  # 5xx, timeout, unreadable answer: in doubt, settled on the next try
                    runner.settle(work, exc.results, in_doubt=IN_DOUBT.format(why=describe(exc)),
                                  missing_state=SENDING, call_state="in_doubt")
                    raise Stop("park", describe(exc)) from None
                runner.revert(work, describe(exc))
                raise runner.provider_stop(exc) from None
            attempt = 0
            runner.settle(work, results)
            size = MAX_NUMBERS_PER_REQUEST

    def _last_call_in_doubt(self) -> bool:
        with session_scope() as session:
            state = session.scalar(
                select(HlrCall.state)
                .where(
                    HlrCall.lookup_id == self.runner.lookup_id, HlrCall.kind == "realtime", HlrCall.state != "unsent"
                )
                .order_by(HlrCall.id.desc())
                .limit(1)
            )
        return state == "in_doubt"
