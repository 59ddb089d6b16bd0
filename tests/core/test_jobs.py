from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import func, select, update

from phoneops.core import jobs
from phoneops.core.db import session_scope, utcnow
from phoneops.core.errors import Conflict, NotFound
from phoneops.core.models import Job, PeriodicRun, SampleTick
from phoneops.core.sample import start_sample
from phoneops.core.security import SYSTEM


def test_sample_job_runs_inline_through_the_api(client: Any, users: Any, inline_jobs: list[str]) -> None:
    headers = users.headers("operator")
    created = client.post("/api/jobs/sample", json={"steps": 5, "delay": 0}, headers=headers)
    assert created.status_code == 202
    job_id = created.json()["id"]
    assert inline_jobs == [job_id]
    job = client.get(f"/api/jobs/{job_id}", headers=users.headers("viewer")).json()
    assert job["status"] == "succeeded"
    assert job["progress_done"] == 5
    assert job["progress_total"] == 5
    listed = client.get("/api/jobs?status=succeeded", headers=headers).json()
    assert [j["id"] for j in listed] == [job_id]


def test_job_is_enqueued_only_after_commit(db_url: str) -> None:
    sent: list[str] = []
    jobs.set_enqueue_hook(lambda job_id, delay: sent.append(job_id))
    def fail_after_create() -> None:
        with session_scope() as session:
            start_sample(session, SYSTEM, 3, 0)
            raise RuntimeError("rollback")

    with pytest.raises(RuntimeError):
        fail_after_create()
    assert sent == []
    with session_scope() as session:
        job_id = start_sample(session, SYSTEM, 3, 0).id
        assert sent == []
    assert sent == [job_id]


def test_bad_params_create_nothing(client: Any, users: Any, session: Any) -> None:
    response = client.post("/api/jobs/sample", json={"steps": 0}, headers=users.headers("operator"))
    assert response.status_code == 422
    assert session.scalar(select(func.count()).select_from(Job)) == 0
    assert client.get("/api/jobs/nope", headers=users.headers("viewer")).status_code == 404


def test_expired_lease_is_requeued_and_resumes_from_checkpoint(db_url: str) -> None:
    sent: list[str] = []
    jobs.set_enqueue_hook(lambda job_id, delay: sent.append(job_id))
    with session_scope() as session:
        job_id = start_sample(session, SYSTEM, 6, 0).id
    # A worker claimed it, did 3 steps, then died (its heartbeat stopped long ago).
    with session_scope() as session:
        for step in range(3):
            session.add(SampleTick(job_id=job_id, step=step, worker="dead"))
        session.execute(update(Job).where(Job.id == job_id).values(
            status="running", lease_owner="dead", attempts=1, checkpoint={"next": 3},
            heartbeat_at=utcnow() - timedelta(minutes=5)))
    assert jobs.run_job(job_id) is None  # not claimable while "running"
    assert jobs.reap_expired() == [job_id]
    assert jobs.run_job(job_id) == "succeeded"
    with session_scope() as session:
        steps = session.scalars(select(SampleTick.step).where(SampleTick.job_id == job_id)).all()
        job = session.get(Job, job_id)
        assert job is not None
        assert sorted(steps) == list(range(6))
        assert job.counters["resumed_at"] == 3
        assert job.attempts == 2


def test_live_lease_is_not_reaped(db_url: str) -> None:
    with session_scope() as session:
        job_id = start_sample(session, SYSTEM, 2, 0).id
        session.flush()
        session.execute(update(Job).where(Job.id == job_id).values(
            status="running", lease_owner="alive", heartbeat_at=utcnow()))
    assert jobs.reap_expired() == []


def test_cancel(client: Any, users: Any, session: Any) -> None:
    headers = users.headers("operator")
    job_id = client.post("/api/jobs/sample", json={"steps": 3}, headers=headers).json()["id"]
    assert client.post(f"/api/jobs/{job_id}/cancel", headers=headers).json()["status"] == "cancelled"
    assert jobs.run_job(job_id) is None
    again = client.post(f"/api/jobs/{job_id}/cancel", headers=headers)
    assert again.status_code == 409
    with session_scope() as s, pytest.raises(Conflict):
        jobs.cancel_job(s, SYSTEM, job_id)


_real_get_job = jobs.get_job


def _worker_writes_after_our_read(monkeypatch: pytest.MonkeyPatch, where: dict[str, Any],
                                  values: dict[str, Any]) -> None:
    """A worker's conditional write (`values` where the job's columns equal `where`), in its own transaction,
    right after this request's `jobs.get_job` read the job (the test puts the real `get_job` back)."""

    def racing(session: Any, wanted: str) -> Job:
        found = _real_get_job(session, wanted)
        with session_scope() as other:
            other.execute(update(Job).where(Job.id == wanted, *(getattr(Job, k) == v for k, v in where.items()))
                          .values(**values))
        return found

    monkeypatch.setattr(jobs, "get_job", racing)


@pytest.mark.parametrize("ending", ["succeeded", "failed"])
def test_a_cancel_racing_the_job_s_end_keeps_the_end(db_url: str, monkeypatch: pytest.MonkeyPatch,
                                                     ending: str) -> None:
    """The job ends (its worker's own conditional write) after a cancel read it running and before the cancel
    wrote: the cancel used to write "cancelled" over the end, so a job whose work was done showed as
    cancelled. Now the end stays and the cancel is refused as for any ended job."""
    with session_scope() as session:
        job_id = start_sample(session, SYSTEM, 3, 0).id
        session.execute(update(Job).where(Job.id == job_id).values(status="running", lease_owner="w1"))
    _worker_writes_after_our_read(monkeypatch, {"status": "running"},
                                  {"status": ending, "lease_owner": None, "finished_at": utcnow()})
    with pytest.raises(Conflict, match=rf"already ended \({ending}\): there is nothing to cancel"), \
            session_scope() as session:
        jobs.cancel_job(session, SYSTEM, job_id)
    monkeypatch.setattr(jobs, "get_job", _real_get_job)
    with session_scope() as session:
        assert session.get(Job, job_id).status == ending  # type: ignore[union-attr]


def test_a_job_claimed_while_it_is_cancelled_is_still_cancelled(db_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """A worker claims the queued job between the cancel's read and its write: the cancel still wins (the
    worker stops at its next step), it is not refused."""
    with session_scope() as session:
        job_id = start_sample(session, SYSTEM, 3, 0).id
    _worker_writes_after_our_read(monkeypatch, {"status": "queued"}, {"status": "running", "lease_owner": "w1"})
    with session_scope() as session:
        assert jobs.cancel_job(session, SYSTEM, job_id).status == "cancelled"
    monkeypatch.setattr(jobs, "get_job", _real_get_job)
    with session_scope() as session:
        job = session.get(Job, job_id)
        assert job is not None and job.status == "cancelled" and job.lease_owner is None


def test_periodic_runs_once_per_slot(db_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(jobs, "_periodic", dict(jobs.registered_periodic()))  # the test's tick leaves with it
    calls: list[int] = []
    jobs.periodic("test.tick", minute="*")(lambda: calls.append(1))
    when = utcnow()
    results = [jobs.run_periodic("test.tick", when) for _ in range(3)]
    assert results == [True, False, False]
    assert calls == [1]
    assert jobs.run_periodic("test.tick", when + timedelta(minutes=1)) is True
    with session_scope() as session:
        assert session.scalar(select(func.count()).select_from(PeriodicRun)) == 2


def test_unknown_kind(db_url: str) -> None:
    with session_scope() as session, pytest.raises(NotFound):
        jobs.create_job(session, SYSTEM, "no.such.kind")
