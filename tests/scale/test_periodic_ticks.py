"""Periodic tasks keep their schedule while long jobs hold every worker thread.

A real `phoneops worker` (RedisHuey, one thread) on PostgreSQL finds a long job waiting when it starts. Its
every-minute ticks must still run in their own minute — not queued behind the job, and not filed under the
minute they finally ran in (which would lose the slot they were due for).
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cluster import Cluster, fresh_redis, product_schedules, run_cli, scratch_postgres, wait_until
from sqlalchemy import create_engine, text

pytestmark = [pytest.mark.slow, pytest.mark.postgres, pytest.mark.redis]
SLOT = "%Y-%m-%dT%H:%M"


def test_ticks_run_in_their_minute_while_a_long_job_holds_the_only_thread(tmp_path: Path) -> None:
    every_minute = sorted(n for n, when in product_schedules().items() if when == ("*", "*"))
    assert every_minute, "no every-minute periodic task is registered"
    redis_url = fresh_redis()
    with scratch_postgres() as db_url:
        deployment = Cluster.create(db_url, redis_url, tmp_path, JOB_LEASE_SECONDS="6", WORKER_THREADS="1")
        engine = create_engine(db_url)
        try:
            run_cli(["migrate"], deployment.env)
            if datetime.now(UTC).second > 48:  # the job must outlast the next minute boundary comfortably
                time.sleep(61 - datetime.now(UTC).second)
            seconds = 60 - datetime.now(UTC).second + 10
            out = run_cli(["jobs", "sample", "--steps", str(seconds * 4), "--delay", "0.25", "--no-wait"],
                          deployment.env)
            job_id = out.split("job ", 1)[1].split()[0]
            deployment.start_worker("ticker")

            def job() -> tuple[str, datetime | None, datetime | None]:
                with engine.connect() as conn:
                    status, started, finished = conn.execute(text(
                        "SELECT status, started_at, finished_at FROM jobs WHERE id = :id"), {"id": job_id}).one()
                return str(status), started, finished

            wait_until("the job to end", lambda: job()[0] == "succeeded", timeout=150, poll=0.5,
                       alive=deployment.check_alive)
            _, job_started, job_finished = job()
            assert job_started is not None and job_finished is not None
            assert job_finished.minute != job_started.minute  # the job spanned a minute boundary
            checked = datetime.now(UTC)
            with engine.connect() as conn:
                runs = conn.execute(text("SELECT name, slot, started_at FROM periodic_runs ORDER BY started_at")).all()
        finally:
            deployment.stop()
            engine.dispose()
    first_minute = job_started.astimezone(UTC).replace(second=0, microsecond=0, tzinfo=None)
    last_minute = (checked - timedelta(minutes=1)).replace(second=0, microsecond=0, tzinfo=None)
    for name in every_minute:
        mine = [(slot, started) for n, slot, started in runs if n == name]
        assert mine, f"{name} never ran"
        first_slot, first_started = mine[0]
        # Not starved: the first tick ran while the job held the only thread ...
        assert first_started < job_finished, f"{name} first ran at {first_started}, after the job ({job_finished})"
        # ... in the minute it was due for, and no minute the worker lived through was skipped.
        assert first_slot == first_started.astimezone(UTC).strftime(SLOT), (first_slot, first_started)
        slots = {slot for slot, _ in mine}
        wanted = set()
        moment = first_minute
        while moment <= last_minute:
            wanted.add(moment.strftime(SLOT))
            moment += timedelta(minutes=1)
        assert wanted <= slots, f"{name} missed slots {sorted(wanted - slots)} (ran in {sorted(slots)})"
