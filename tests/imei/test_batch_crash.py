"""A 2,000-IMEI batch survives three SIGKILLed workers: one order per IMEI at the provider, one row in history.

Real `python -m phoneops worker` processes run the batch against the simulator (its own process, small
latency); the test kills the worker with SIGKILL at three random points, starts a new one each time, and
checks the provider's own count of orders per IMEI against our history.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select
from stdnum import luhn

from phoneops.core import jobs, queue
from phoneops.core.db import session_scope
from phoneops.core.models import Job
from phoneops.core.security import SYSTEM
from phoneops.imei import inputs, submission
from phoneops.imei.models import ImeiOrder
from phoneops.simulators._server import SimAdmin, wait_until_up
from phoneops.simulators.gsm_fusion import DEFAULT_API_KEY, DEFAULT_USER
from support import TMP, free_port, process_env, start_process, stop_process

pytestmark = pytest.mark.slow

COUNT = 2000
KILLS = 3
SERVICE = "1739"


def imei(serial: int) -> str:
    body = f"35990000{serial:06d}"
    return body + luhn.calc_check_digit(body)


@pytest.fixture
def sim_process(tmp_path: Path) -> Iterator[str]:
    port = free_port()
    log = (TMP / f"gsm-sim-{os.getpid()}-{port}.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "phoneops.simulators", "gsm_fusion", "--port", str(port), "--latency-ms", "25",
         "--initial-balance", "100000", "--reject-ratio", "0"],
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_up(url, timeout=20)
        yield url
    finally:
        stop_process(proc)
        log.close()


def _progress(job_id: str) -> tuple[str, int]:
    with session_scope() as session:
        job = session.get(Job, job_id)
        assert job is not None
        return job.status, job.progress_done


def test_three_sigkills_during_a_2000_imei_batch_place_each_imei_exactly_once(
    db_url: str, sim_process: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from phoneops.settings import reset_settings_cache

    gsm = {"GSM_FUSION_BASE_URL": sim_process, "GSM_FUSION_USERNAME": DEFAULT_USER,
           "GSM_FUSION_API_KEY": DEFAULT_API_KEY, "IMEI_CONCURRENCY": "10", "IMEI_DAILY_BUDGET": "100000"}
    for name, value in gsm.items():
        monkeypatch.setenv(name, value)
    reset_settings_cache()
    huey_dir = tmp_path / "queue"
    env = process_env(db_url, DATA_DIR=str(huey_dir), JOB_LEASE_SECONDS="5", WORKER_THREADS="2", **gsm)
    huey = queue.build_huey(None, huey_dir)  # enqueue into the SqliteHuey the workers read
    task = huey.task(name="phoneops.run_job")(lambda job_id: None)
    jobs.set_enqueue_hook(lambda job_id, delay: task(job_id))
    values = [imei(i) for i in range(COUNT)]
    with session_scope() as session:
        batch, plan = submission.create_batch(session, SYSTEM, [inputs.InputRow(v) for v in values], SERVICE)
        batch_id, job_id = batch.id, batch.job_id
    assert job_id is not None and len(plan.rows) == COUNT
    seed = int(os.environ.get("PHONEOPS_TEST_SEED", time.time()))
    rng = random.Random(seed)
    kill_at = sorted(rng.sample(range(100, COUNT - 300, 50), KILLS))
    print(f"seed={seed} kill_at={kill_at}")

    workers: list[subprocess.Popen[bytes]] = []
    try:
        for number, threshold in enumerate(kill_at, start=1):
            log_path = TMP / f"imei-worker{number}-{os.getpid()}.log"
            worker = start_process(["worker"], env, log_path)
            workers.append(worker)
            deadline = time.monotonic() + 120
            while _progress(job_id)[1] < threshold:
                assert worker.poll() is None, log_path.read_text()[-3000:]
                assert time.monotonic() < deadline, f"worker {number} stalled at {_progress(job_id)} (seed {seed})"
                time.sleep(rng.uniform(0.01, 0.08))
            os.killpg(worker.pid, signal.SIGKILL)
            worker.wait(10)
            assert _progress(job_id)[0] == "running"
            # The next worker takes over once the lease (5 s) has expired; starting it a little before that
            # keeps its queue polling from backing off while it waits.
            time.sleep(3)
        last = start_process(["worker"], env, TMP / f"imei-worker-last-{os.getpid()}.log")
        workers.append(last)
        deadline = time.monotonic() + 180
        while _progress(job_id)[0] != "succeeded":
            status = _progress(job_id)[0]
            assert status in ("queued", "running"), f"job ended {status} (seed {seed})"
            assert time.monotonic() < deadline, f"batch did not finish: {_progress(job_id)} (seed {seed})"
            time.sleep(0.3)
    finally:
        for worker in workers:
            if worker.poll() is None:
                stop_process(worker)

    with SimAdmin(sim_process) as admin:
        stats = admin.stats()
        provider_orders = {o["order_id"]: o["imei"] for o in admin.orders()}
    assert stats["max_orders_per_imei"] == 1, f"an IMEI was paid twice (seed {seed})"
    assert stats["total_orders"] == COUNT
    assert sorted(stats["orders_per_imei"]) == sorted(values)

    with session_scope() as session:
        rows = session.scalars(select(ImeiOrder).where(ImeiOrder.batch_id == batch_id)).all()
        job = session.get(Job, job_id)
        assert job is not None
        attempts = job.attempts
        assert len(rows) == COUNT and {r.imei for r in rows} == set(values)  # one row per IMEI
        states = {r.state for r in rows}
        assert states <= {"placed", "review"}, states  # nothing left queued or unsettled
        placed = [r for r in rows if r.state == "placed"]
        review = [r for r in rows if r.state == "review"]
        for row in placed:  # every settled order is the provider's order for that IMEI
            assert row.order_id is not None and provider_orders[row.order_id] == row.imei
        assert len({r.order_id for r in placed}) == len(placed)
        for row in review:  # left for a human only when the provider already had it (never resent blindly)
            assert row.attempts == 2 and row.imei in stats["orders_per_imei"]
        assert all(1 <= r.attempts <= 2 for r in rows)  # sent once, reconciled at most once
        # Only what a worker held open when it died is reconciled: intents marked ahead (2 x 10 claimed,
        # 2 x 10 queued), 10 calls in flight and answers received but not yet settled (~0.1 s worth).
        reconciled = sum(r.attempts == 2 for r in rows)
        assert len(review) <= reconciled <= KILLS * 100, (len(review), reconciled)
    assert attempts >= KILLS + 1
    print(f"placed={len(placed)} review={len(review)} job_attempts={attempts}")
