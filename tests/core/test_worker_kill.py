"""A worker SIGKILLed mid-job: another worker resumes it and every step happens exactly once."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

from sqlalchemy import func, select

from phoneops.core.db import session_scope
from phoneops.core.models import Job, SampleTick
from phoneops.core.sample import start_sample
from phoneops.core.security import SYSTEM
from support import TMP, process_env, start_process, stop_process


def _progress(job_id: str) -> tuple[str, int]:
    with session_scope() as session:
        job = session.get(Job, job_id)
        assert job is not None
        return job.status, job.progress_done


def test_sigkilled_worker_job_completes_exactly_once(db_url: str, tmp_path: Path) -> None:
    huey_dir = tmp_path / "queue"
    env = process_env(db_url, DATA_DIR=str(huey_dir), JOB_LEASE_SECONDS="5", WORKER_THREADS="2")
    from phoneops.core import jobs, queue
    from phoneops.settings import load_settings

    # Enqueue into the same SqliteHuey file the worker processes read.
    huey = queue.build_huey(None, huey_dir)
    jobs.set_enqueue_hook(queue.enqueuer(huey))
    assert load_settings(DATA_DIR=str(huey_dir)).data_dir == huey_dir
    with session_scope() as session:
        job_id = start_sample(session, SYSTEM, 40, 0.1).id

    first = start_process(["worker"], env, TMP / f"worker1-{os.getpid()}.log")
    deadline = time.monotonic() + 60
    while _progress(job_id)[1] < 10:
        assert first.poll() is None, (TMP / f"worker1-{os.getpid()}.log").read_text()[-2000:]
        assert time.monotonic() < deadline, "first worker made no progress"
        time.sleep(0.1)
    os.killpg(first.pid, signal.SIGKILL)
    first.wait(10)
    status, done_at_kill = _progress(job_id)
    assert status == "running"
    assert done_at_kill < 40

    second = start_process(["worker"], env, TMP / f"worker2-{os.getpid()}.log")
    try:
        deadline = time.monotonic() + 90
        while _progress(job_id)[0] != "succeeded":
            assert time.monotonic() < deadline, f"job did not finish: {_progress(job_id)}"
            time.sleep(0.2)
    finally:
        stop_process(second)
    with session_scope() as session:
        steps = session.scalars(select(SampleTick.step).where(SampleTick.job_id == job_id)).all()
        workers = session.scalar(select(func.count(func.distinct(SampleTick.worker))).where(SampleTick.job_id == job_id))
        job = session.get(Job, job_id)
        assert job is not None
        assert sorted(steps) == list(range(40))  # each step once: none lost, none repeated
        assert workers == 2
        assert job.attempts == 2
        assert job.counters["resumed_at"] >= 10
