"""Real `phoneops worker` processes SIGKILLed three times at random points during an HLR lookup.

Batch mode (the default): every state of a batch intent is reconciled with the provider for free, so every
number is looked up exactly once and every result is stored. Real-time mode: a kill between a call and its
settlement leaves that call (<= 80 numbers) in doubt; it is settled through the provider's private cache —
so every number is looked up and charged exactly once.

To keep the test short, after each kill the dead worker's lease is expired by hand (the reaper's timing is
proven in tests/core/test_worker_kill.py); the next worker requeues the job at start-up.
"""

from __future__ import annotations

import os
import random
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, update

from phoneops.core import storage
from phoneops.core.db import session_scope, utcnow
from phoneops.core.models import Job
from phoneops.core.security import SYSTEM
from phoneops.hlr import risky
from phoneops.hlr.lookups import FileSource, create_lookup, get_lookup, item_counts
from phoneops.hlr.models import HlrLookupItem
from phoneops.numbers.vault import get_vault
from phoneops.simulators._server import SimAdmin
from phoneops.simulators.hlr_lookup import DEFAULT_API_KEY, DEFAULT_API_SECRET
from support import TMP, process_env, start_process, stop_process

pytestmark = pytest.mark.slow
SEED = int(os.environ.get("PHONEOPS_TEST_KILL_SEED", str(random.randrange(1_000_000))))


def _job(job_id: str) -> tuple[str, int, str | None]:
    with session_scope() as session:
        job = session.get(Job, job_id)
        assert job is not None
        return job.status, job.progress_done, job.lease_owner


def _run_with_kills(
    db_url: str, tmp_path: Path, sim_url: str, monkeypatch: pytest.MonkeyPatch, numbers: list[str], mode: str,
    batch_size: int, kill_after: Callable[[random.Random], float],
) -> tuple[int, list[int]]:
    """Run a lookup on worker processes, SIGKILLing the worker three times; returns (lookup id, progress at kills)."""
    huey_dir = tmp_path / "queue"
    env = process_env(db_url, DATA_DIR=str(huey_dir), JOB_LEASE_SECONDS="5", WORKER_THREADS="2",
                      HLR_BASE_URL=sim_url, HLR_BATCH_BASE_URL=sim_url, HLR_API_KEY=DEFAULT_API_KEY,
                      HLR_API_SECRET=DEFAULT_API_SECRET, HLR_POLL_EVERY_SECONDS="0.1")
    from phoneops.core import jobs, queue

    def run_job(job_id: str) -> None:  # a stand-in with the worker's task name (Huey keys tasks by module.name)
        pass

    run_job.__module__ = queue.__name__
    huey = queue.build_huey(None, huey_dir)
    task = huey.task(name="phoneops.run_job")(run_job)
    jobs.set_enqueue_hook(lambda job_id, delay: task(job_id))
    with session_scope() as session:
        risky.restore_seed(session, SYSTEM)
        body = ("phone\n" + "\n".join(numbers) + "\n").encode()
        file_id = storage.get_storage().save_bytes(session, SYSTEM, body, kind="upload", original_name="k.csv").id
    from phoneops.settings import reset_settings_cache

    monkeypatch.setenv("HLR_API_KEY", DEFAULT_API_KEY)
    monkeypatch.setenv("HLR_API_SECRET", DEFAULT_API_SECRET)
    reset_settings_cache()
    with session_scope() as session:
        lookup = create_lookup(session, SYSTEM, FileSource(file_id, "phone", "GB"), mode=mode, batch_size=batch_size,
                               confirm=True)
        lookup_id, job_id = lookup.id, lookup.job_id
    reset_settings_cache()
    assert job_id is not None
    dead: set[str | None] = {None}
    rng = random.Random(SEED)
    at_kills: list[int] = []
    for attempt in range(1, 5):
        log = TMP / f"hlr-worker{attempt}-{os.getpid()}.log"
        worker = start_process(["worker"], env, log)
        try:
            if attempt == 4:
                deadline = time.monotonic() + 120
                while _job(job_id)[0] not in ("succeeded", "failed"):
                    assert worker.poll() is None, log.read_text()[-3000:]
                    assert time.monotonic() < deadline, f"lookup did not finish: {_job(job_id)}"
                    time.sleep(0.1)
                break
            deadline = time.monotonic() + 60
            while _job(job_id)[0] != "running" or _job(job_id)[2] in dead:  # until this worker holds the job
                assert worker.poll() is None, log.read_text()[-3000:]
                assert time.monotonic() < deadline, f"worker {attempt} did not take the job: {_job(job_id)}"
                time.sleep(0.02)
            time.sleep(kill_after(rng))
            os.killpg(worker.pid, signal.SIGKILL)
            worker.wait(10)
            status, done, owner = _job(job_id)
            dead.add(owner)
            assert status == "running", f"the job ended before kill {attempt} ({status}); seed {SEED}"
            at_kills.append(done)
            with session_scope() as session:  # the dead worker's lease expires now rather than in 5 s
                session.execute(update(Job).where(Job.id == job_id).values(heartbeat_at=utcnow().replace(year=2000)))
        finally:
            stop_process(worker)
    jobs.set_enqueue_hook(lambda job_id, delay: None)
    assert _job(job_id)[0] == "succeeded", f"seed {SEED}: {_job(job_id)}"
    print(f"hlr kill test ({mode}): seed {SEED}, progress at the kills {at_kills} of {len(numbers)}")
    return lookup_id, at_kills


def _states(lookup_id: int) -> dict[str, str]:
    """Each number's final state (digits -> state)."""
    vault = get_vault()
    with session_scope() as session:
        rows = session.execute(select(HlrLookupItem.blind_index, HlrLookupItem.sealed, HlrLookupItem.state)
                               .where(HlrLookupItem.lookup_id == lookup_id)).all()
    return {vault.open(sealed, index).lstrip("+"): state for index, sealed, state in rows}


def test_batch_lookup_sigkilled_three_times_looks_every_number_up_exactly_once(
    db_url: str, tmp_path: Path, hlr_sim: SimAdmin, hlr_sim_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    numbers = [f"+447911{n:06d}" for n in range(10_000, 12_400)]
    hlr_sim.configure(batch_items_per_second=400.0)  # each batch of 300 takes ~0.75 s on the provider
    lookup_id, at_kills = _run_with_kills(db_url, tmp_path, hlr_sim_url, monkeypatch, numbers, "batch", 300,
                                          lambda rng: rng.uniform(0.2, 1.6))
    stats: dict[str, Any] = hlr_sim.stats()
    assert stats["lookups_per_number"] == {n[1:]: 1 for n in numbers}, f"seed {SEED}, kills at {at_kills}"
    assert stats["total_paid_lookups"] == len(numbers) and stats["max_lookups_per_number"] == 1
    with session_scope() as session:
        assert item_counts(session, lookup_id) == {"done": len(numbers)}
        assert get_lookup(session, lookup_id).looked_up == len(numbers)
        assert session.get(Job, get_lookup(session, lookup_id).job_id).attempts == 4  # type: ignore[union-attr]


def test_realtime_lookup_sigkilled_three_times_never_pays_twice(
    db_url: str, tmp_path: Path, hlr_sim: SimAdmin, hlr_sim_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    numbers = [f"+447911{n:06d}" for n in range(13_000, 14_600)]
    hlr_sim.configure(latency_ms=120)
    lookup_id, at_kills = _run_with_kills(db_url, tmp_path, hlr_sim_url, monkeypatch, numbers, "realtime", 80,
                                          lambda rng: rng.uniform(0.1, 0.9))
    stats: dict[str, Any] = hlr_sim.stats()
    states = _states(lookup_id)
    # Calls lost to a kill are settled through the provider's private cache: every number ends looked up,
    # once, charged at most once, and the lookup's spend is what the provider charged.
    assert set(states.values()) == {"done"}, f"seed {SEED}: {at_kills}"
    assert stats["lookups_per_number"] == {n[1:]: 1 for n in numbers}, f"seed {SEED}"
    assert stats["max_charges_per_number"] == 1, f"seed {SEED}"
    with session_scope() as session:
        assert float(get_lookup(session, lookup_id).credits_spent) == stats["credits_spent"], f"seed {SEED}"
