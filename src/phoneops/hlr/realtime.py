"""Real-time mode of the `hlr.lookup` job: one paid `POST /apiv2/hlr` per <= 80 pending numbers.

Each call's intent (`HlrCall`, kind `realtime`) is committed `sending` before the call and settled right
after it. The provider offers no way to ask what an interrupted call did without paying again, so an
intent found still `sending` when the job resumes is `in_doubt`: its numbers go to `review` (reported,
never resent). A kill therefore leaves at most one call in doubt. See `phoneops.hlr.jobs`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from sqlalchemy import select

from phoneops.core.db import session_scope
from phoneops.hlr.client import HlrClient, HlrError, HlrInsufficientCredit, HlrRateLimited
from phoneops.hlr.models import SENDING, HlrCall
from phoneops.hlr.service import describe
from phoneops.hlr.wire import MAX_NUMBERS_PER_REQUEST

if TYPE_CHECKING:
    from phoneops.hlr.jobs import LookupRunner

INTERRUPTED = ("interrupted during its call: it may have been looked up and paid; not sent again — check it "
               "before looking it up again")  # fmt: skip


class RealtimeDriver:
    def __init__(self, runner: LookupRunner, client: HlrClient) -> None:
        self.runner = runner
        self.client = client

    def options(self) -> dict[str, object]:
        """As the original's batches: the provider's caches for as long as our TTL (at most 30 days)."""
        days = max(0, min(self.runner.ttl_days, 30))
        return {"cache_days_private": days, "cache_days_global": days, "save_to_cache": "YES"}

    def reconcile(self) -> None:
        """Intents left `sending` by a dead worker: in doubt, their numbers are reported, not resent."""
        runner = self.runner
        with session_scope() as session:
            calls = list(session.scalars(
                select(HlrCall.id).where(HlrCall.lookup_id == runner.lookup_id, HlrCall.kind == "realtime",
                                         HlrCall.state == SENDING)
            ))  # fmt: skip
            works = [runner.work_of(session, call_id) for call_id in calls]
        for work in works:
            runner.settle(work, (), in_doubt=INTERRUPTED, call_state="in_doubt")

    def run(self) -> None:
        from phoneops.hlr.jobs import PARK_SECONDS, RATE_LIMIT_TRIES, Stop, backoff

        runner = self.runner
        self.reconcile()
        throttled = 0
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
                throttled += 1
                if throttled >= RATE_LIMIT_TRIES:
                    raise Stop("park", describe(exc), max(PARK_SECONDS, exc.retry_after or 0)) from None
                runner.sleep(backoff(throttled, exc.retry_after))
                continue
            except HlrError as exc:
                if exc.maybe_sent:  # 5xx, timeout, unreadable answer: in doubt, never resent
                    runner.settle(work, exc.results, in_doubt=f"{describe(exc)}: it may have been looked up and "
                                  "paid; not sent again", call_state="in_doubt")  # fmt: skip
                    raise Stop("park", describe(exc)) from None
                runner.revert(work, describe(exc))
                raise runner.provider_stop(exc) from None
            throttled = 0
            runner.settle(work, results)
            size = MAX_NUMBERS_PER_REQUEST

    def _last_call_in_doubt(self) -> bool:
        with session_scope() as session:
            state = session.scalar(
                select(HlrCall.state)
                .where(HlrCall.lookup_id == self.runner.lookup_id, HlrCall.kind == "realtime",
                       HlrCall.state != "unsent")
                .order_by(HlrCall.id.desc())
                .limit(1)
            )
        return state == "in_doubt"
