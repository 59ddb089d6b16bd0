"""What the `hlr.lookup` runner (`phoneops.hlr.jobs`) and its two drivers (`batches`, `realtime`) share.

The drivers call the provider; the runner claims, settles and ends the run. A driver sees the runner only
through `Runner`, the protocol below, so the dependency goes one way: `jobs` builds a driver and hands
itself over; the drivers import this module, never `jobs`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Protocol

from sqlalchemy.orm import Session

from phoneops.hlr.client import HlrError, HlrRateLimited, HlrResult
from phoneops.hlr.models import REVIEW
from phoneops.hlr.provider import describe

RATE_LIMIT_TRIES = 6  # consecutive 429s backed off in the worker before the job is parked
PARK_SECONDS = 30.0  # the longest a failing provider makes the job wait (and the least, for repeated 429s)
WAIT_SECONDS = 5.0  # the least a job waits for numbers another lookup has in flight


class Stop(Exception):
    """The run stops early: `no_credit` and `fail` end it with `message`, `park` retries it later (after
    `delay` seconds at least, the growing outage delay of `phoneops.core.jobs` otherwise), `wait` retries it
    after `delay` seconds (numbers in flight in another lookup: no outage)."""

    def __init__(self, kind: str, message: str, delay: float | None = None) -> None:
        super().__init__(message)
        self.kind, self.message = kind, message
        self.delay = delay


@dataclass(frozen=True)
class Work:
    """The numbers of one intent: (item id, blind index, E.164)."""

    call_id: int
    items: list[tuple[int, bytes, str]]


@dataclass
class Settled:
    done: int = 0
    review: int = 0
    failed: int = 0
    unprocessed: int = 0
    credits: Decimal = field(default_factory=lambda: Decimal(0))


def backoff(attempt: int, retry_after: float | None) -> float:
    """Seconds to wait after the `attempt`-th consecutive 429 (the provider's hint when it gives one)."""
    if retry_after is not None:
        return float(min(max(retry_after, 0.05), 60.0))
    return float(min(0.25 * 2 ** (attempt - 1), 8.0))


class Runner(Protocol):
    """What a driver uses of the lookup runner (`phoneops.hlr.jobs.LookupRunner`)."""

    lookup_id: int
    batch_size: int
    ttl_days: int
    poll_every: float
    poll_max: float
    sleep: Callable[[float], None]

    def step(self, session: Session, message: str | None = None, extra_done: int = 0) -> None: ...

    def claim(self, kind: str, limit: int) -> Work | None: ...

    def work_of(self, session: Session, call_id: int) -> Work: ...

    def revert(self, work: Work, error: str) -> None: ...

    def settle(self, work: Work, results: Sequence[HlrResult], *, unprocessed: Sequence[str] = (),
               in_doubt: str | None = None, missing_state: str = REVIEW, call_state: str = "settled",
               recheck: bool = False) -> Settled: ...

    def provider_stop(self, exc: HlrError) -> Stop: ...

    def no_credit(self) -> Stop: ...


def throttled(runner: Runner, attempt: int, exc: HlrRateLimited) -> None:
    """After the `attempt`-th consecutive 429 (not charged): wait, or park the job once there were too many."""
    if attempt >= RATE_LIMIT_TRIES:
        raise Stop("park", describe(exc), max(PARK_SECONDS, exc.retry_after or 0)) from None
    runner.sleep(backoff(attempt, exc.retry_after))
