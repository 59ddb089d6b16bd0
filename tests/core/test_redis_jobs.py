"""Jobs through RedisHuey: a real worker process consumes from Redis."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from phoneops.core import jobs
from phoneops.core.db import session_scope
from phoneops.core.models import Job
from phoneops.core.sample import start_sample
from phoneops.core.security import SYSTEM
from support import REDIS_URL, TMP, process_env, start_process, stop_process, unavailable


@pytest.fixture
def redis_url() -> str:
    if not REDIS_URL:
        unavailable("Redis job tests need PHONEOPS_TEST_REDIS_URL (e.g. redis://127.0.0.1:6379/15)")
    assert REDIS_URL
    import redis

    try:
        client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=3)
        client.flushdb()
    except Exception as exc:
        unavailable(f"Redis at PHONEOPS_TEST_REDIS_URL is not reachable: {exc}")
    return REDIS_URL


@pytest.mark.redis
def test_redis_worker_runs_jobs(db_url: str, redis_url: str, tmp_path: Path) -> None:
    from phoneops.core import queue

    huey = queue.build_huey(redis_url, tmp_path)
    assert type(huey).__name__ == "RedisHuey"
    jobs.set_enqueue_hook(queue.enqueuer(huey))
    with session_scope() as session:
        ids = [start_sample(session, SYSTEM, 5, 0.01).id for _ in range(3)]
    assert huey.pending_count() == 3
    env = process_env(db_url, REDIS_URL=redis_url, DATA_DIR=str(tmp_path))
    worker = start_process(["worker"], env, TMP / f"redis-worker-{os.getpid()}.log")
    try:
        deadline = time.monotonic() + 60
        while True:
            with session_scope() as session:
                statuses = [session.get(Job, i).status for i in ids]  # type: ignore[union-attr]
            if all(s == "succeeded" for s in statuses):
                break
            assert worker.poll() is None, "worker died"
            assert time.monotonic() < deadline, statuses
            time.sleep(0.2)
    finally:
        stop_process(worker)
    assert huey.pending_count() == 0
