"""A 2,000-IMEI batch survives three SIGKILLed workers: one order per IMEI at the provider, one row in history.

Real `python -m phoneops worker` processes run the batch against the simulator (its own process, small
latency); the test kills the worker with SIGKILL at three random points, starts a new one each time, and
checks the provider's own count of orders per IMEI against our history.
"""

from __future__ import annotations

import os
import random
import subprocess
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
from phoneops.simulators._server import SimAdmin
from phoneops.simulators.gsm_fusion import DEFAULT_API_KEY, DEFAULT_USER
from support import process_env, run_workers_killing_at, simulator_process, stop_process

pytestmark = pytest.mark.slow

COUNT = 2000
KILLS = 3
SERVICE = "1739"


def imei(serial: int) -> str:
    body = f"35990000{serial:06d}"
    return body + luhn.calc_check_digit(body)


@pytest.fixture
def sim_process() -> Iterator[str]:
    flags = ("--latency-ms", "25", "--initial-balance", "100000", "--reject-ratio", "0")
    with simulator_process("gsm_fusion", *flags) as url:
        yield url


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
        run_workers_killing_at(job_id, env, kill_at, workers, seed=seed, label="imei")
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
            assert row.attempts >= 2 and row.imei in stats["orders_per_imei"]
        # Sent once, and reconciled once more per kill at most: a kill in the middle of a reconciliation
        # (two kills close together) leaves that row to be reconciled again by the next worker.
        assert all(1 <= r.attempts <= 1 + KILLS for r in rows), (seed, max(r.attempts for r in rows))
        # Only what a worker held open when it died is reconciled: intents marked ahead (2 x 10 claimed,
        # 2 x 10 queued), 10 calls in flight and answers received but not yet settled (~0.1 s worth).
        reconciled = sum(r.attempts >= 2 for r in rows)
        assert len(review) <= reconciled <= KILLS * 100, (len(review), reconciled)
    assert attempts >= KILLS + 1
    print(f"placed={len(placed)} review={len(review)} job_attempts={attempts}")
