"""The `imei.batch` job against the simulator: intents, provider answers, reconciliation, typed errors, sync."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import select, update
from stdnum import luhn

from phoneops.core import jobs
from phoneops.core.db import session_scope, utcnow
from phoneops.core.models import Job
from phoneops.core.security import SYSTEM
from phoneops.imei import inputs, submission
from phoneops.imei.models import ImeiBatch, ImeiOrder
from phoneops.simulators._server import SimAdmin
from phoneops.simulators.gsm_fusion import DEFAULT_API_KEY, DEFAULT_USER

SERVICE = "1739"  # 0.08


def imei(serial: int) -> str:
    body = f"35332211{serial:06d}"
    return body + luhn.calc_check_digit(body)


@pytest.fixture
def gsm_env(
    gsm_sim: SimAdmin, gsm_sim_url: str, db_url: str, monkeypatch: pytest.MonkeyPatch
) -> Iterator[SimAdmin]:
    from phoneops.settings import reset_settings_cache

    monkeypatch.setenv("GSM_FUSION_BASE_URL", gsm_sim_url)
    monkeypatch.setenv("GSM_FUSION_USERNAME", DEFAULT_USER)
    monkeypatch.setenv("GSM_FUSION_API_KEY", DEFAULT_API_KEY)
    monkeypatch.setenv("IMEI_CONCURRENCY", "8")
    reset_settings_cache()
    yield gsm_sim
    reset_settings_cache()


def start(values: list[str], service: str | None = SERVICE, **kw: Any) -> tuple[int, str | None]:
    with session_scope() as session:
        batch, _ = submission.create_batch(session, SYSTEM, [inputs.InputRow(v) for v in values], service, **kw)
        return batch.id, batch.job_id


def orders(batch_id: int) -> dict[str, ImeiOrder]:
    with session_scope() as session:
        rows = session.scalars(select(ImeiOrder).where(ImeiOrder.batch_id == batch_id)).all()
        for row in rows:
            session.expunge(row)
        return {row.imei: row for row in rows}


def job(job_id: str) -> Job:
    with session_scope() as session:
        found = session.get(Job, job_id)
        assert found is not None
        session.expunge(found)
        return found


def summary(batch_id: int) -> dict[str, Any]:
    with session_scope() as session:
        return submission.batch_summary(session, submission.get_batch(session, batch_id))


def test_batch_places_each_imei_once_and_reports_a_summary(gsm_env: SimAdmin, inline_jobs: list[str]) -> None:
    with session_scope() as session:  # already ordered for this service earlier
        session.add(ImeiOrder(imei=imei(99), service_id=SERVICE, state="placed", order_id="777", fields={}))
    values = [imei(i) for i in range(40)] + ["12345", imei(3), imei(99), "3533221100000x"]
    batch_id, job_id = start(values)
    assert job_id in inline_jobs
    result = job(job_id)
    assert result.status == "succeeded", result.error
    stats = gsm_env.stats()
    assert stats["total_orders"] == 40
    assert stats["max_orders_per_imei"] == 1
    rows = orders(batch_id)
    assert len(rows) == 40
    assert {r.state for r in rows.values()} == {"placed"}
    assert all(r.order_id and r.status == "Pending" and r.attempts == 1 and r.placed_at for r in rows.values())
    assert result.result["placed"] == 40
    assert result.result["invalid"] == 2
    assert result.result["duplicates_in_batch"] == 1
    assert result.result["duplicates_in_history"] == 1
    assert Decimal(result.result["spend"]) == Decimal("3.20")
    assert result.progress_done == result.progress_total == 40
    assert result.counters["placed"] == 40


def test_provider_duplicate_is_a_duplicate_not_an_error(
    gsm_env: SimAdmin, gsm_client: Any, inline_jobs: list[str]
) -> None:
    gsm_client.place_order(imei(1), SERVICE)  # ordered elsewhere (another tool, the provider's site)
    batch_id, job_id = start([imei(1), imei(2)])
    assert job_id is not None
    assert job(job_id).status == "succeeded"
    rows = orders(batch_id)
    assert rows[imei(1)].state == "duplicate"
    assert rows[imei(1)].credits is None
    assert "duplicate" in (rows[imei(1)].error or "") and "IMEI already exists!" in (rows[imei(1)].error or "")
    assert rows[imei(2)].state == "placed"
    assert summary(batch_id)["duplicates_at_provider"] == 1
    assert job(job_id).counters["duplicates"] == 1
    assert gsm_env.stats()["max_orders_per_imei"] == 1


def test_invalid_api_key_fails_the_batch_clearly_and_sends_nothing(
    gsm_env: SimAdmin, inline_jobs: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from phoneops.settings import reset_settings_cache

    monkeypatch.setenv("GSM_FUSION_API_KEY", "WRONG-WRONG-WRONG-0000")
    reset_settings_cache()
    with session_scope() as session:  # the catalogue is cached from an earlier, valid key
        from phoneops.imei.catalogue import store_services
        from phoneops.imei.client import Service

        store_services(session, [Service(SERVICE, "Apple", "iPhone check", Decimal("0.08"), "1 min", "")])
    batch_id, job_id = start([imei(i) for i in range(5)])
    assert job_id is not None
    failed = job(job_id)
    assert failed.status == "failed"
    assert failed.error == "GSM Fusion rejected the API key (Invalid API Key!)"
    assert "WRONG-WRONG" not in (failed.error or "")
    rows = orders(batch_id)
    assert {(r.state, r.attempts) for r in rows.values()} == {("queued", 0)}  # refused: nothing was placed
    assert gsm_env.stats()["total_orders"] == 0
    with session_scope() as session:
        batch = session.get(ImeiBatch, batch_id)
        assert batch is not None and batch.status == "failed" and "Invalid API Key!" in (batch.error or "")
    # Fix the key, resume: everything is placed once.
    monkeypatch.setenv("GSM_FUSION_API_KEY", DEFAULT_API_KEY)
    reset_settings_cache()
    with session_scope() as session:
        submission.resume_batch(session, SYSTEM, batch_id)
    assert {r.state for r in orders(batch_id).values()} == {"placed"}
    assert gsm_env.stats()["total_orders"] == 5


def test_insufficient_credit_stops_with_a_clear_error(gsm_env: SimAdmin, inline_jobs: list[str]) -> None:
    gsm_env.configure(balance="0.16")
    batch_id, job_id = start([imei(i) for i in range(6)])
    assert job_id is not None
    failed = job(job_id)
    assert failed.status == "failed"
    assert failed.error is not None and "not enough credit" in failed.error
    states = [r.state for r in orders(batch_id).values()]
    assert states.count("placed") == 2
    assert states.count("queued") == 4
    assert gsm_env.stats()["total_orders"] == 2


def _intents(batch_id: int, attempts: dict[str, int]) -> None:
    """Leave rows as a killed worker would: intent committed (`sending`), no answer recorded."""
    with session_scope() as session:
        for value, count in attempts.items():
            session.execute(
                update(ImeiOrder).where(ImeiOrder.batch_id == batch_id, ImeiOrder.imei == value)
                .values(state="sending", attempts=count, sent_at=utcnow())
            )


def test_unsettled_intents_are_reconciled_before_anything_else_and_at_most_once(
    gsm_env: SimAdmin, gsm_client: Any, db_url: str
) -> None:
    batch_id, job_id = start([imei(1), imei(2), imei(3), imei(4)])  # no worker: the job stays queued
    assert job_id is not None
    gsm_client.place_order(imei(1), SERVICE)  # the first attempt for imei 1 reached the provider
    # imei 2's never left; imei 3's reconciliation was interrupted too (it never reached the provider either)
    _intents(batch_id, {imei(1): 1, imei(2): 1, imei(3): 2})
    before = gsm_env.stats()["calls"].get("placeorder", 0)
    assert jobs.run_job(job_id) == "succeeded"
    rows = orders(batch_id)
    assert rows[imei(1)].state == "review" and rows[imei(1)].review_reason == "no_order_id"
    assert "already exists" in (rows[imei(1)].error or "") and rows[imei(1)].placed_at is not None  # paid
    assert rows[imei(1)].attempts == 2
    assert rows[imei(2)].state == "placed"
    assert rows[imei(2)].notes and "reconciliation" in rows[imei(2)].notes
    assert rows[imei(3)].state == "placed" and rows[imei(3)].attempts == 3  # re-sent: never ordered before
    assert rows[imei(4)].state == "placed"
    calls = gsm_env.stats()["calls"]["placeorder"] - before
    assert calls == 4  # imei 1, 2 and 3 reconciled, imei 4 sent
    per_imei = gsm_env.stats()["orders_per_imei"]
    assert per_imei == {imei(i): 1 for i in range(1, 5)}
    result = summary(batch_id)
    assert result["needs_review"] == 1 and result["placed_without_order_id"] == 1 and result["placed"] == 3
    assert result["spend"] == "0.32"  # the order without an id is paid: counted


def test_lost_answer_is_kept_open_and_reconciled_later_not_resent(gsm_env: SimAdmin, db_url: str) -> None:
    batch_id, job_id = start([imei(i) for i in range(4)])
    assert job_id is not None
    # The provider places the first order but its answer is lost (HTTP 503 after the commit).
    gsm_env.configure(fail_next=1, fail_kind="status", fault_after_commit=True, fault_actions=["placeorder"])
    assert jobs.run_job(job_id) == "queued"  # parked: the unanswered order is reconciled later
    parked = job(job_id)
    assert parked.run_after is not None and "reconciled" in (parked.message or "")
    rows = orders(batch_id)
    open_rows = [r for r in rows.values() if r.state == "sending"]
    assert len(open_rows) == 1 and open_rows[0].attempts == 1
    assert sum(r.state == "placed" for r in rows.values()) == 3
    with session_scope() as session:
        session.execute(update(Job).where(Job.id == job_id).values(run_after=None))
    assert jobs.run_job(job_id) == "succeeded"
    settled = orders(batch_id)[open_rows[0].imei]
    assert settled.state == "review"
    assert gsm_env.stats()["max_orders_per_imei"] == 1
    assert gsm_env.stats()["total_orders"] == 4


def test_unreachable_provider_parks_the_job_without_sending(
    gsm_env: SimAdmin, db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from phoneops.settings import reset_settings_cache

    with session_scope() as session:
        from phoneops.imei.catalogue import store_services
        from phoneops.imei.client import Service

        store_services(session, [Service(SERVICE, "Apple", "iPhone check", Decimal("0.08"), "1 min", "")])
    monkeypatch.setenv("GSM_FUSION_BASE_URL", "http://127.0.0.1:9")  # nothing listens: connection refused
    reset_settings_cache()
    batch_id, job_id = start([imei(i) for i in range(3)])
    assert job_id is not None
    assert jobs.run_job(job_id) == "queued"
    assert "unreachable" in (job(job_id).message or "")
    assert {(r.state, r.attempts) for r in orders(batch_id).values()} == {("queued", 0)}


def test_status_sync_stores_parsed_results(gsm_env: SimAdmin, inline_jobs: list[str]) -> None:
    from phoneops.imei.sync import sync_open_orders

    batch_id, _ = start([imei(i) for i in range(5)])
    gsm_env.advance(500)  # Pending -> In Process -> Completed
    result = sync_open_orders()
    assert result["checked"] == 5
    assert result["by_status"] == {"Completed": 5}
    calls = gsm_env.stats()["calls"]["getimeis"]
    assert calls == 1  # many ids per call
    for row in orders(batch_id).values():
        assert row.status == "Completed"
        assert row.carrier and row.model and row.simlock and row.fmi and row.imei2
        assert row.code and "<br>" in row.code
        assert row.code_display and "\n" in row.code_display and "<" not in row.code_display
    assert sync_open_orders()["checked"] == 0  # final orders are not asked again


def test_periodic_status_sync_is_registered_every_five_minutes() -> None:
    import phoneops.imei.tasks  # noqa: F401

    spec = jobs.registered_periodic()["imei.status_sync"]
    assert spec.minute == "*/5"
    assert "imei.batch" in jobs.registered_jobs()


def _stopped(values: list[str]) -> tuple[int, str]:
    """A batch whose job was cancelled before it ran."""
    batch_id, job_id = start(values)
    assert job_id is not None
    with session_scope() as session:
        jobs.cancel_job(session, SYSTEM, job_id)
    return batch_id, job_id


def _imei_jobs() -> int:
    with session_scope() as session:
        return len(session.scalars(select(Job.id).where(Job.kind == submission.BATCH_KIND)).all())


def test_two_resumes_at_once_start_one_job(gsm_env: SimAdmin, monkeypatch: pytest.MonkeyPatch) -> None:
    """Two operators press Resume together: both read a stopped batch; the second to write finds its job
    changed and is told so, and no second job (a second sender of the same orders) is created."""
    from phoneops.core.errors import Conflict

    batch_id, _ = _stopped([imei(i) for i in range(300, 303)])
    real_get_job, rival = jobs.get_job, []

    def rival_resumes_first(session: Any, job_id: str) -> Job:
        if not rival:
            rival.append(True)
            with session_scope() as other:  # another request, committed while ours has only read
                rival.append(submission.resume_batch(other, SYSTEM, batch_id).job_id)
        return real_get_job(session, job_id)

    monkeypatch.setattr(jobs, "get_job", rival_resumes_first)
    with pytest.raises(Conflict, match="just resumed by another request"), session_scope() as session:
        submission.resume_batch(session, SYSTEM, batch_id)  # as a request: the error rolls its transaction back
    monkeypatch.setattr(jobs, "get_job", real_get_job)
    assert _imei_jobs() == 2  # the batch's first job and the rival's, not ours
    with session_scope() as session:
        batch = session.get(ImeiBatch, batch_id)
        assert batch is not None and batch.job_id == rival[1] and batch.status == "queued"


def test_a_resume_waits_while_the_cancelled_run_may_be_in_its_call(gsm_env: SimAdmin) -> None:
    """A cancel ends the job at once, but its worker may still be waiting for the provider's answer to an
    order it sent: a resume then would place that order once more. While an order is `sending`, a resume is
    refused with a Retry-After until the cancelled run's lease would have run out; then it goes ahead."""
    from datetime import timedelta

    from phoneops.core.errors import Conflict
    from phoneops.settings import get_settings

    batch_id, job_id = _stopped([imei(i) for i in range(310, 313)])
    with session_scope() as session:  # the cancelled run had sent one order and waits for its answer
        session.execute(update(ImeiOrder).where(ImeiOrder.batch_id == batch_id, ImeiOrder.imei == imei(310))
                        .values(state="sending", attempts=1, sent_at=utcnow()))
    with pytest.raises(Conflict, match="may still be at the provider") as refused, session_scope() as session:
        submission.resume_batch(session, SYSTEM, batch_id)
    lease = get_settings().job_lease_seconds
    assert refused.value.retry_after is not None and 0 < refused.value.retry_after <= lease
    assert _imei_jobs() == 1
    assert {r.state for r in orders(batch_id).values()} == {"queued", "sending"}  # nothing changed
    with session_scope() as session:  # the run's lease has run out: its worker is gone or has settled
        session.execute(update(Job).where(Job.id == job_id)
                        .values(finished_at=utcnow() - timedelta(seconds=lease + 1)))
    with session_scope() as session:
        resumed = submission.resume_batch(session, SYSTEM, batch_id)
        assert resumed.job_id != job_id and resumed.status == "queued"
    assert _imei_jobs() == 2
