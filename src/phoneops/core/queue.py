"""The Huey side of jobs: SqliteHuey by default, RedisHuey when REDIS_URL is set.

Built lazily (nothing at import time). It carries "run job X" messages; everything a user sees lives in
the `jobs` table (see `phoneops.core.jobs`). Periodic tasks do not travel as messages: each worker's scheduler
runs a due task at once in a thread of its own, for the minute it checked (`TickScheduler`), so a tick never
waits behind long jobs holding every worker thread, and the `periodic_runs` slot is the one it was due for.
"""

from __future__ import annotations

import threading
from datetime import datetime
from pathlib import Path
from typing import Any

import huey as huey_api
import structlog
from huey import Huey, crontab
from huey.consumer import Consumer, Scheduler

from phoneops.core import jobs
from phoneops.core.db import utcnow

log = structlog.get_logger("phoneops.queue")

_lock = threading.Lock()
_huey: Huey | None = None
_run_task: Any = None


def _run_tick(task: Any) -> None:
    try:
        task.execute()
    except Exception:  # run_periodic records the handler's own errors; this is the slot bookkeeping failing
        log.exception("queue.tick_failed", task=task.name)


class TickScheduler(Scheduler):  # type: ignore[misc]  # huey is untyped
    """Huey's scheduler, except that due periodic tasks run here and now, each in a thread of its own, with the
    minute checked (instead of being queued behind jobs and filed under whatever minute they finally run in).
    Every worker's scheduler does this; `periodic_runs` lets one run per slot through."""

    def enqueue_periodic_tasks(self, now: datetime | None) -> None:
        moment = now or utcnow()
        for task in self.huey.read_periodic(moment):
            task.kwargs = {**task.kwargs, "when": moment}
            threading.Thread(target=_run_tick, args=(task,), daemon=True, name=f"tick-{task.name}").start()


class TickConsumer(Consumer):  # type: ignore[misc]  # huey is untyped
    scheduler_class = TickScheduler


class _TickingHuey:
    def create_consumer(self, **options: Any) -> Consumer:
        return TickConsumer(self, **options)


# Same names as Huey's (they show in /health): Huey's engines with the ticking consumer.
class RedisHuey(_TickingHuey, huey_api.RedisHuey):  # type: ignore[misc]  # huey is untyped
    pass


class SqliteHuey(_TickingHuey, huey_api.SqliteHuey):  # type: ignore[misc]  # huey is untyped
    pass


def build_huey(redis_url: str | None, data_dir: Path, name: str = "phoneops") -> Huey:
    if redis_url:
        return RedisHuey(name=name, url=redis_url, results=False, utc=True)
    data_dir.mkdir(parents=True, exist_ok=True)
    return SqliteHuey(name=name, filename=str(data_dir / "queue.db"), results=False, utc=True)


def run_job_message(job_id: str) -> None:
    """What a "run job X" message does in a worker."""
    jobs.run_job(job_id)


def run_job_task(huey: Huey) -> Any:
    """The "run job X" task on `huey` (Huey keys tasks by module and name: one definition for all)."""
    return huey.task(name="phoneops.run_job")(run_job_message)


def enqueuer(huey: Huey) -> Any:
    """An enqueue hook sending "run job X" messages to `huey` (tests point jobs at a worker's queue)."""
    task = run_job_task(huey)

    def send_to(job_id: str, delay: float | None) -> None:
        if delay:
            task.schedule(args=(job_id,), delay=delay)
        else:
            task(job_id)

    return send_to


def _register(huey: Huey) -> Any:
    # The periodic tasks are those registered when the queue is first used: the entry points (`phoneops.app`,
    # `phoneops.cli`) load every domain's tasks first (core knows no domain, see docs/architecture.md).
    task = run_job_task(huey)

    for spec in jobs.registered_periodic().values():
        def tick(name: str = spec.name, when: datetime | None = None) -> None:
            jobs.run_periodic(name, when)

        huey.periodic_task(crontab(minute=spec.minute, hour=spec.hour), name=f"periodic.{spec.name}")(tick)
    return task


def get_huey() -> Huey:
    global _huey, _run_task
    with _lock:
        if _huey is None:
            from phoneops.settings import get_settings

            settings = get_settings()
            huey = build_huey(settings.redis_url, settings.data_dir)
            _run_task = _register(huey)
            _huey = huey
        return _huey


def reset() -> None:
    global _huey, _run_task
    with _lock:
        _huey, _run_task = None, None


def send(job_id: str, delay: float | None = None) -> None:
    get_huey()
    assert _run_task is not None
    if delay:
        _run_task.schedule(args=(job_id,), delay=delay)
    else:
        _run_task(job_id)


def describe() -> dict[str, Any]:
    """For /health: which engine and whether it answers."""
    huey = get_huey()
    engine = type(huey).__name__
    try:
        pending = huey.pending_count()
        return {"engine": engine, "ok": True, "pending": pending}
    except Exception as exc:
        return {"engine": engine, "ok": False, "error": type(exc).__name__}


def start_consumer(workers: int, periodic: bool = True) -> Any:
    """Start a consumer in this process without taking over signals (embedded/demo mode)."""
    huey = get_huey()
    consumer = huey.create_consumer(workers=workers, worker_type="thread", periodic=periodic, max_delay=1.0)
    consumer.start()
    return consumer
