"""The CSV job proof: 10,000 rows with 3% rejected contacts, paused and resumed once, its worker SIGKILLed once,
ends with exactly the accepted rows marked sent and each accepted contact received once by the simulator."""

from __future__ import annotations

import csv
import io
import os
import signal
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import select

from phoneops.core import jobs, queue
from phoneops.core.db import session_scope
from phoneops.core.models import Job
from phoneops.core.security import SYSTEM
from phoneops.core.storage import get_storage
from phoneops.ongage import service_csv
from phoneops.ongage.models import OngageCsvRow
from phoneops.simulators._server import SimAdmin
from phoneops.simulators.ongage import DEFAULT_ACCOUNT_CODE, DEFAULT_LIST_ID, DEFAULT_PASSWORD, DEFAULT_USERNAME
from support import TMP, process_env, start_process, stop_process

pytestmark = pytest.mark.slow
ROWS = 10_000


def contacts_csv() -> bytes:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(service_csv.REQUIRED)
    for n in range(1, ROWS + 1):
        writer.writerow([DEFAULT_LIST_ID, f"contact{n}@example.com", "GB", "GB_REG", f"4479{n:08d}", "REG", "sms",
                         "LIVE", f"uuid-{n}"])
    return buffer.getvalue().encode()


def progress(job_id: int) -> tuple[str, dict[str, int]]:
    with session_scope() as session:
        return service_csv.get_csv_job(session, job_id).status, service_csv.row_counts(session, job_id)


def wait_for(what: str, check: Callable[[], bool], timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def test_paused_resumed_and_killed_job_sends_each_accepted_contact_once(
    db_url: str, tmp_path: Path, ongage_sim: SimAdmin, ongage_sim_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    ongage_sim.configure(fail_fraction=0.03)
    ongage_env = {"ONGAGE_BASE_URL": ongage_sim_url, "ONGAGE_LIST_ID": DEFAULT_LIST_ID,
                  "ONGAGE_USERNAME": DEFAULT_USERNAME, "ONGAGE_PASSWORD": DEFAULT_PASSWORD,
                  "ONGAGE_ACCOUNT_CODE": DEFAULT_ACCOUNT_CODE}
    for name, value in ongage_env.items():
        monkeypatch.setenv(name, value)
    from phoneops.settings import reset_settings_cache

    reset_settings_cache()
    huey_dir = tmp_path / "queue"
    env = process_env(db_url, DATA_DIR=str(huey_dir), JOB_LEASE_SECONDS="5", WORKER_THREADS="2", **ongage_env)
    huey = queue.build_huey(None, huey_dir)  # enqueue into the SqliteHuey file the workers read
    task = huey.task(name="phoneops.run_job")(lambda job_id: None)
    jobs.set_enqueue_hook(lambda job_id, delay: task(job_id))

    with session_scope() as session:
        upload = get_storage().save_bytes(session, SYSTEM, contacts_csv(), kind="upload", original_name="10k.csv")
        job_id = service_csv.create_csv_job(session, SYSTEM, upload, service_csv.Pace(
            interval_seconds=1, lower_limit=1000, upper_limit=1000, batch_size=100)).id
    with session_scope() as session:
        service_csv.transition(session, SYSTEM, job_id, "start")

    logs = [TMP / f"ongage-worker{n}-{os.getpid()}-{job_id}.log" for n in (1, 2)]
    first = start_process(["worker"], env, logs[0])
    second = None
    try:
        wait_for("2,000 rows", lambda: progress(job_id)[1]["sent"] >= 2000)
        with session_scope() as session:
            service_csv.transition(session, SYSTEM, job_id, "pause")
        wait_for("the worker to let go", lambda: _worker_of(job_id) is None)
        paused = progress(job_id)
        assert paused[0] == "paused" and paused[1]["sending"] == 0
        time.sleep(1.5)
        assert progress(job_id) == paused  # nothing moves while paused
        with session_scope() as session:
            service_csv.transition(session, SYSTEM, job_id, "resume")

        wait_for("6,000 rows", lambda: progress(job_id)[1]["sent"] >= 6000)
        assert first.poll() is None, logs[0].read_text()[-2000:]
        os.killpg(first.pid, signal.SIGKILL)
        first.wait(10)
        killed_at = progress(job_id)
        assert killed_at[0] == "running" and killed_at[1]["pending"] > 0

        second = start_process(["worker"], env, logs[1])
        wait_for("the job to finish", lambda: progress(job_id)[0] == "done", timeout=180)
    finally:
        stop_process(first)
        if second is not None:
            stop_process(second)
        jobs.set_enqueue_hook(lambda job_id, delay: None)

    status, counts = progress(job_id)
    assert status == "done"
    received = {c["email"]: c["receipts"] for c in ongage_sim.orders()}  # the contacts Ongage accepted
    with session_scope() as session:
        sent = set(session.scalars(select(OngageCsvRow.email).where(OngageCsvRow.csv_job_id == job_id,
                                                                    OngageCsvRow.status == "sent")))
        failed = session.scalars(select(OngageCsvRow).where(OngageCsvRow.csv_job_id == job_id,
                                                            OngageCsvRow.status == "failed")).all()
        workers = session.scalars(select(Job).where(Job.kind == service_csv.KIND)).all()
    assert counts == {"pending": 0, "sending": 0, "sent": len(received), "failed": ROWS - len(received)}
    assert sent == set(received)  # exactly the accepted rows are marked sent ...
    assert set(received.values()) == {1}  # ... and each accepted contact reached Ongage once
    assert 0.02 * ROWS < len(failed) < 0.04 * ROWS
    assert all(r.error == "Invalid email address" for r in failed)
    assert len(workers) == 2 and max(w.attempts for w in workers) == 2  # resumed once, requeued once after the kill
    stats = ongage_sim.stats()
    assert stats["rate_limited"] == 0 and stats["max_in_flight"] <= 10


def _worker_of(job_id: int) -> str | None:
    with session_scope() as session:
        return service_csv.get_csv_job(session, job_id).worker_job_id
