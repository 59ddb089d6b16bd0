"""Paid IMEI orders never stranded: reconciliation re-sends what was never ordered, proven placements are
counted in spend and given a way out (attach the order id, match from an export, write off — audited), one
active intent per IMEI and service in the database, and a second order id stops the batch."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from stdnum import luhn

from phoneops.core import jobs
from phoneops.core.db import session_scope, utcnow
from phoneops.core.models import AuditEvent
from phoneops.core.security import SYSTEM
from phoneops.imei import inputs, submission
from phoneops.imei.models import ImeiOrder
from phoneops.simulators._server import SimAdmin
from phoneops.simulators.gsm_fusion import DEFAULT_API_KEY, DEFAULT_USER

SERVICE = "1739"  # 0.08


def imei(serial: int) -> str:
    body = f"35441100{serial:06d}"
    return body + luhn.calc_check_digit(body)


@pytest.fixture
def gsm_env(gsm_sim: SimAdmin, gsm_sim_url: str, db_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[SimAdmin]:
    from phoneops.settings import reset_settings_cache

    monkeypatch.setenv("GSM_FUSION_BASE_URL", gsm_sim_url)
    monkeypatch.setenv("GSM_FUSION_USERNAME", DEFAULT_USER)
    monkeypatch.setenv("GSM_FUSION_API_KEY", DEFAULT_API_KEY)
    monkeypatch.setenv("IMEI_CONCURRENCY", "4")
    reset_settings_cache()
    yield gsm_sim
    reset_settings_cache()


def start(values: list[str], **kw: Any) -> tuple[int, str | None]:
    with session_scope() as session:
        batch, _ = submission.create_batch(session, SYSTEM, [inputs.InputRow(v) for v in values], SERVICE, **kw)
        return batch.id, batch.job_id


def rows(batch_id: int) -> dict[str, ImeiOrder]:
    with session_scope() as session:
        found = session.scalars(select(ImeiOrder).where(ImeiOrder.batch_id == batch_id)).all()
        for row in found:
            session.expunge(row)
        return {row.imei: row for row in found}


def killed_mid_send(batch_id: int, values: list[str], attempts: int = 1) -> None:
    """What a worker SIGKILLed mid-send (or mid-reconciliation) leaves: intents `sending`, no answer."""
    with session_scope() as session:
        session.execute(update(ImeiOrder).where(ImeiOrder.batch_id == batch_id, ImeiOrder.imei.in_(values))
                        .values(state="sending", attempts=attempts, sent_at=utcnow()))


def audits(action: str) -> list[AuditEvent]:
    with session_scope() as session:
        found = list(session.scalars(select(AuditEvent).where(AuditEvent.action == action)))
        for event in found:
            session.expunge(event)
        return found


def test_a_kill_during_reconciliation_strands_nothing_and_paid_orders_are_counted(
    gsm_env: SimAdmin, gsm_client: Any, client: Any, users: Any
) -> None:
    values = [imei(i) for i in range(6)]
    batch_id, job_id = start(values)
    assert job_id is not None
    gsm_client.place_order(values[0], SERVICE)  # imei 0's first attempt reached the provider before the kill
    # Killed mid-reconciliation: imei 1 and 2 were never ordered (their reconciliation never left either).
    killed_mid_send(batch_id, values[:1])
    killed_mid_send(batch_id, values[1:3], attempts=2)
    assert jobs.run_job(job_id) == "succeeded"
    found = rows(batch_id)
    assert {v: found[v].state for v in values} == {values[0]: "review", **dict.fromkeys(values[1:], "placed")}
    assert all(found[v].order_id for v in values[1:])  # re-sent, not stranded: every result is reachable
    assert found[values[0]].review_reason == "no_order_id" and found[values[0]].placed_at is not None
    assert gsm_env.stats()["max_orders_per_imei"] == 1
    with session_scope() as session:
        summary = submission.batch_summary(session, submission.get_batch(session, batch_id))
        # Counted in spend the moment it was proven placed: 6 x 0.08, what GSM Fusion charged.
        assert summary["spend"] == "0.48" and summary["placed_without_order_id"] == 1
        assert submission.spend_today(session) == Decimal("0.48")
    # The Needs review screen's API lists it, with why and that it was paid.
    listed = client.get("/api/imei/review", headers=users.headers("viewer")).json()
    row = next(r for r in listed["imei"] if r["imei"] == values[0])
    assert row["reason"] == "no_order_id" and row["paid"] is True
    row_id = row["id"]
    operator = users.headers("operator")
    # Bad input is refused and leaves the row untouched.
    assert client.post(f"/api/imei/orders/{row_id}/attach-order", json={"order_id": "not an id!"},
                       headers=operator).status_code == 422
    taken = found[values[1]].order_id
    answer = client.post(f"/api/imei/orders/{row_id}/attach-order", json={"order_id": taken}, headers=operator)
    assert answer.status_code == 409 and "already belongs" in answer.text
    assert client.post(f"/api/imei/orders/{row_id}/write-off", json={"reason": "  "},
                       headers=operator).status_code == 422
    assert client.post(f"/api/imei/orders/{row_id}/attach-order", json={"order_id": "77"},
                       headers=users.headers("viewer")).status_code == 403
    assert rows(batch_id)[values[0]].state == "review"
    # The way out: the order id from the provider's panel.
    real_id = next(o["order_id"] for o in gsm_env.orders() if o["imei"] == values[0])
    done = client.post(f"/api/imei/orders/{row_id}/attach-order", json={"order_id": str(real_id)}, headers=operator)
    assert done.status_code == 200, done.text
    assert done.json()["state"] == "placed" and done.json()["order_id"] == str(real_id)
    assert [e.target_id for e in audits("imei.review.attach_order_id")] == [str(row_id)]
    assert client.post(f"/api/imei/orders/{row_id}/write-off", json={"reason": "x"},
                       headers=operator).status_code == 409  # not in review any more
    with session_scope() as session:
        assert submission.spend_today(session) == Decimal("0.48")  # paid once, counted once


def test_write_off_and_match_from_an_export(gsm_env: SimAdmin, gsm_client: Any, tmp_path: Any) -> None:
    from phoneops.imei import imports, review

    values = [imei(i) for i in range(10, 13)]
    batch_id, job_id = start(values)
    assert job_id is not None
    for value in values[:2]:
        gsm_client.place_order(value, SERVICE)
    killed_mid_send(batch_id, values[:2])
    assert jobs.run_job(job_id) == "succeeded"
    found = rows(batch_id)
    assert [found[v].state for v in values] == ["review", "review", "placed"]
    with session_scope() as session:
        review.write_off(session, SYSTEM, found[values[0]].id, "customer cancelled the check")
    export = tmp_path / "export.csv"
    export.write_text("SERVICE,IMEI NO.,CREDITS,STATUS,CODE\n"
                      f"{SERVICE},{values[1]},0.08,Completed,Model: iPhone 12<br>Find My iPhone: OFF\n")
    with session_scope() as session:
        imports.import_provider_export(session, SYSTEM, export, "export.csv")
    found = rows(batch_id)
    assert found[values[0]].state == "written_off" and "customer cancelled" in (found[values[0]].notes or "")
    assert found[values[1]].state == "imported" and found[values[1]].status == "Completed"
    assert found[values[1]].resolved_by == "system"
    assert [e.target_id for e in audits("imei.review.write_off")] == [str(found[values[0]].id)]
    with session_scope() as session:
        assert submission.spend_today(session) == Decimal("0.24")  # all three were paid, and still count


def test_one_active_intent_per_imei_and_service(gsm_env: SimAdmin, db_url: str) -> None:
    values = [imei(i) for i in range(20, 24)]
    first, first_job = start(values)  # queued, no worker yet
    second, _ = start([values[0], values[1], imei(30)])
    with session_scope() as session:
        later = submission.get_batch(session, second)
        assert later.to_send == 1 and later.duplicates_in_history == 2
        assert any("being ordered" in s["reason"] and f"batch {first}" in s["reason"] for s in later.skipped)
    # Even `force` cannot queue a second active intent, and the database refuses one outright.
    third, _ = start([values[2]], force=True)
    with session_scope() as session:
        assert submission.get_batch(session, third).to_send == 0
    with session_scope() as session:
        session.add(ImeiOrder(imei=values[3], service_id=SERVICE, state="sending", fields={}))
        with pytest.raises(IntegrityError):
            session.flush()
        session.rollback()
    assert first_job is not None and jobs.run_job(first_job) == "succeeded"
    assert gsm_env.stats()["max_orders_per_imei"] == 1
    with session_scope() as session:  # placed: no longer active, a forced re-check may queue it again
        again, _ = submission.create_batch(session, SYSTEM, [inputs.InputRow(values[0])], SERVICE, force=True)
        assert again.to_send == 1


def test_a_second_order_id_stops_the_batch_and_puts_both_in_review(
    gsm_env: SimAdmin, monkeypatch: pytest.MonkeyPatch
) -> None:
    from phoneops.settings import reset_settings_cache

    monkeypatch.setenv("IMEI_CONCURRENCY", "1")
    reset_settings_cache()
    gsm_env.configure(duplicate_scope="off", latency_ms=150)  # a provider that no longer refuses repeats
    values = [imei(i) for i in range(40, 44)]
    batch_id, job_id = start(values)
    assert job_id is not None
    with session_scope() as session:  # an order of the same IMEI and service placed outside this batch
        session.add(ImeiOrder(imei=values[0], service_id=SERVICE, state="placed", order_id="123456", source="api",
                              credits=Decimal("0.08"), fields={}, placed_at=utcnow()))
    assert jobs.run_job(job_id) == "failed"
    with session_scope() as session:
        both = list(session.scalars(select(ImeiOrder).where(ImeiOrder.imei == values[0])))
        assert {o.state for o in both} == {"review"} and {o.review_reason for o in both} == {"second_order_id"}
        assert len({o.order_id for o in both}) == 2
        batch = submission.get_batch(session, batch_id)
        assert batch.status == "failed" and "second order id" in (batch.error or "")
        sent = session.scalar(select(func.count(ImeiOrder.id)).where(ImeiOrder.batch_id == batch_id,
                                                                       ImeiOrder.state == "placed"))
        assert sent is not None and sent < len(values)  # stopped: not every IMEI was sent
    assert len(audits("imei.second_order_id")) == 1
