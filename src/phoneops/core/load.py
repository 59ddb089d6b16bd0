"""Bursts degrade gracefully: a bound on requests in flight, sized with the database pool and the threads.

- `InflightLimit` (ASGI middleware): at most `limit` requests are worked on at once (`default_limit`: the
  database pool's connections, at most four per core); a request arriving when all are taken waits up to `wait` seconds
  for one, then gets `503 {"error": {"code": "busy"}}` with `Retry-After` at once instead of queueing into
  pool timeouts. `/health`, `/static` and `/metrics` are never held back.
- The request threadpool gets `limit + spare` threads, so every admitted request has a thread and a
  connection, and the few that do not touch the database (static files) are not starved.
- `health_checks()` runs on its own two threads with its own connection (no pool), so `/health` answers
  within a second whatever the API is doing.
- `big_heap()`: a job holding a large structure for minutes (the rows of a 200k-row import) freezes the heap
  while it works, so the interpreter's full garbage collections, which stop every thread of the process (the
  event loop answering `/health` too) for as long as they walk the heap, do not walk those rows again and again.
"""

from __future__ import annotations

import asyncio
import gc
import json
import os
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any

import structlog
from starlette.types import ASGIApp, Receive, Scope, Send

log = structlog.get_logger("phoneops.load")

EXEMPT_PREFIXES = ("/health", "/static", "/metrics")
SPARE_THREADS = 8


def default_limit(pool_capacity: int) -> int:
    """Requests in flight per process: no more than the pool's connections, and no more than four per core
    (past that, threads only fight over the GIL and the event loop, which answers /health, starves)."""
    return max(4, min(pool_capacity, 4 * (os.cpu_count() or 1)))


class InflightLimit:
    def __init__(self, app: ASGIApp, limit: int, wait: float) -> None:
        self.app = app
        self.limit = max(1, limit)
        self.wait = wait
        self.inflight = 0
        self.refused = 0
        self._sized = False

    def _size_threads(self) -> None:
        """Give the request threadpool one thread per admitted request plus spares (once, in the loop)."""
        import anyio.to_thread

        limiter = anyio.to_thread.current_default_thread_limiter()
        limiter.total_tokens = max(limiter.total_tokens, self.limit + SPARE_THREADS)
        self._sized = True

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or str(scope.get("path", "")).startswith(EXEMPT_PREFIXES):
            await self.app(scope, receive, send)
            return
        if not self._sized:
            self._size_threads()
        if self.inflight >= self.limit:
            deadline = time.monotonic() + self.wait
            while self.inflight >= self.limit:  # no await between this check and the increment below
                if time.monotonic() >= deadline:
                    self.refused += 1
                    log.warning("http.busy", path=scope.get("path"), inflight=self.inflight, limit=self.limit)
                    await _busy(send)
                    return
                await asyncio.sleep(0.005)
        self.inflight += 1
        try:
            await self.app(scope, receive, send)
        finally:
            self.inflight -= 1


async def _busy(send: Send) -> None:
    body = json.dumps({"error": {"code": "busy", "message": "the server is busy; retry in a moment"}}).encode()
    await send({"type": "http.response.start", "status": 503,
                "headers": [(b"content-type", b"application/json"), (b"retry-after", b"1"),
                            (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


_health_threads = ThreadPoolExecutor(max_workers=2, thread_name_prefix="health")
HEALTH_BUDGET = 0.9  # seconds: /health answers within a second


def _database_check() -> dict[str, Any]:
    from sqlalchemy import text

    from phoneops.core import db

    engine = db.health_engine()
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        return {"ok": True, "backend": engine.dialect.name}
    except Exception as exc:
        return {"ok": False, "error": type(exc).__name__}


def _jobs_check() -> dict[str, Any]:
    from phoneops.core.queue import describe

    return describe()


async def health_checks() -> dict[str, dict[str, Any]]:
    """Database and job queue, each on the health threads, answered within HEALTH_BUDGET: a check still
    running then is reported as slow (alive but busy), not as down."""
    loop = asyncio.get_running_loop()
    futures = {"database": loop.run_in_executor(_health_threads, _database_check),
               "jobs": loop.run_in_executor(_health_threads, _jobs_check)}
    done, _pending = await asyncio.wait(futures.values(), timeout=HEALTH_BUDGET)
    checks: dict[str, dict[str, Any]] = {}
    for name, future in futures.items():
        if future in done and future.exception() is None:
            checks[name] = future.result()
        elif future in done:
            checks[name] = {"ok": False, "error": type(future.exception()).__name__}
        else:
            checks[name] = {"ok": True, "slow": True, "note": f"no answer within {HEALTH_BUDGET} s (busy)"}
    return checks


_frozen = 0
_frozen_lock = threading.Lock()


@contextmanager
def big_heap() -> Iterator[None]:
    """Within: objects alive at entry are left out of garbage collections (`gc.freeze`); at the last exit they
    are collectable again (`gc.unfreeze`). Measured on a 60k-row import: full collections of 1-3 s each, every
    few seconds, and `/health` waiting as long; with the heap frozen they walk only what is new."""
    global _frozen
    with _frozen_lock:
        _frozen += 1
        gc.freeze()
    try:
        yield
    finally:
        with _frozen_lock:
            _frozen -= 1
            if _frozen == 0:
                gc.unfreeze()
