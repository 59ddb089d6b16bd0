"""Before anything is sent: catalogue cache, input files, validation, duplicates, the cost guard."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest
from openpyxl import Workbook
from sqlalchemy import func, select
from stdnum import luhn

from phoneops.core.db import session_scope
from phoneops.core.errors import Conflict, Forbidden, NotFound, ProviderNotConfigured, ValidationFailed
from phoneops.core.models import AuditEvent
from phoneops.core.security import SYSTEM, Principal, Role
from phoneops.imei import balance, catalogue, inputs, submission
from phoneops.imei.models import ImeiOrder, ImeiService
from phoneops.simulators._server import SimAdmin
from phoneops.simulators.gsm_fusion import DEFAULT_API_KEY, DEFAULT_USER

SERVICE = "1739"  # 0.08
OPERATOR = Principal(user_id=None, username="olga", role=Role.operator, via="session")


def imei(serial: int) -> str:
    body = f"35441100{serial:06d}"
    return body + luhn.calc_check_digit(body)


@pytest.fixture
def gsm_env(
    gsm_sim: SimAdmin, gsm_sim_url: str, db_url: str, monkeypatch: pytest.MonkeyPatch
) -> Iterator[SimAdmin]:
    from phoneops.settings import reset_settings_cache

    monkeypatch.setenv("GSM_FUSION_BASE_URL", gsm_sim_url)
    monkeypatch.setenv("GSM_FUSION_USERNAME", DEFAULT_USER)
    monkeypatch.setenv("GSM_FUSION_API_KEY", DEFAULT_API_KEY)
    reset_settings_cache()
    yield gsm_sim
    reset_settings_cache()


def audits(action: str) -> list[AuditEvent]:
    with session_scope() as session:
        found = list(session.scalars(select(AuditEvent).where(AuditEvent.action == action)))
        for event in found:
            session.expunge(event)
        return found


# --- catalogue ----------------------------------------------------------------------------------------


def test_catalogue_is_cached_searchable_and_served_stale_when_the_provider_fails(
    gsm_env: SimAdmin, monkeypatch: pytest.MonkeyPatch
) -> None:
    with session_scope() as session:
        found = catalogue.catalogue(session)
        assert {s.package_id for s in found.services} >= {"1739", "1740", "2101", "2250", "3001"}
        assert "Apple" in found.categories and found.warning is None
        assert found.services[0].price > 0
        apple = catalogue.catalogue(session, search="iphone")
        assert {s.package_id for s in apple.services} >= {"1739", "1740", "3001"}
        assert all("iphone" in s.title.lower() or "iphone" in s.category.lower() for s in apple.services)
        assert {s.package_id for s in catalogue.catalogue(session, category="Samsung").services} == {"2101"}
    calls = gsm_env.stats()["calls"]["imeiservices"]
    with session_scope() as session:
        catalogue.catalogue(session)
        catalogue.get_service(session, SERVICE)
    assert gsm_env.stats()["calls"]["imeiservices"] == calls  # within the TTL: no provider call
    gsm_env.configure(fail_next=5, fail_kind="status", fault_actions=["imeiservices"])
    with session_scope() as session:
        stale = catalogue.catalogue(session, refresh_now=True)
    assert stale.stale and stale.warning and "showing the list fetched at" in stale.warning
    assert len(stale.services) >= 5
    with session_scope() as session, pytest.raises(NotFound):
        catalogue.get_service(session, "999999")


def test_services_that_leave_the_list_are_deactivated(gsm_env: SimAdmin) -> None:
    from phoneops.imei.client import Service

    with session_scope() as session:
        catalogue.store_services(session, [Service("1", "A", "one", Decimal("1"), "", ""),
                                           Service("2", "A", "two", Decimal("2"), "", "")])
        catalogue.store_services(session, [Service("2", "A", "two v2", Decimal("2.5"), "", "")])
    with session_scope() as session:
        one, two = session.get(ImeiService, "1"), session.get(ImeiService, "2")
        assert one is not None and not one.active
        assert two is not None and two.active and two.title == "two v2" and two.price == Decimal("2.5")


def test_provider_without_credentials_is_switched_off(db_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from phoneops.imei.provider import credentials
    from phoneops.settings import reset_settings_cache

    monkeypatch.delenv("GSM_FUSION_API_KEY", raising=False)
    reset_settings_cache()
    with pytest.raises(ProviderNotConfigured) as caught:
        credentials()
    assert caught.value.status_code == 503
    assert caught.value.details == {"provider": "GSM Fusion", "variables": ["GSM_FUSION_USERNAME", "GSM_FUSION_API_KEY"]}


# --- input ----------------------------------------------------------------------------------------------


def test_text_rows_and_validation(gsm_env: SimAdmin) -> None:
    fourteen = imei(5)[:14]
    rows = inputs.rows_from_text(f"{imei(1)}\n\n {imei(2)} , {fourteen}\n123\n{imei(1)}\n{imei(3)[:-1]}0")
    with session_scope() as session:
        plan = submission.plan(session, rows, SERVICE)
    assert [p.imei for p in plan.rows] == [imei(1), imei(2), imei(5)]  # 14 digits completed with Luhn
    assert plan.invalid == 2 or plan.invalid == 1  # a wrong check digit may be right by chance
    reasons = [s["reason"] for s in plan.skipped]
    assert any("invalid IMEI" in r for r in reasons)
    assert "duplicate in this batch" in reasons
    assert plan.duplicates_in_batch == 1
    assert plan.quote.cost == Decimal("0.08") * 3


def test_csv_and_xlsx_files_with_service_and_provider_fields(gsm_env: SimAdmin, tmp_path: Path) -> None:
    csv_file = tmp_path / "in.csv"
    csv_file.write_text(f"IMEI,Service,Model No,ignored\n{imei(1)},1740,A2482,x\n{imei(2)},,,\n\nnope,,,\n")
    rows = inputs.rows_from_table(csv_file)
    assert [(r.value, r.service_id, r.fields) for r in rows] == [
        (imei(1), "1740", {"modelNo": "A2482"}), (imei(2), None, {}), ("nope", None, {}),
    ]
    book = Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.append(["Imei", "serviceId"])
    sheet.append([int(imei(3)), 2101])  # Excel stores IMEIs as numbers
    sheet.append([imei(4), None])
    xlsx = tmp_path / "in.xlsx"
    book.save(xlsx)
    xrows = inputs.rows_from_table(xlsx)
    assert [(r.value, r.service_id) for r in xrows] == [(imei(3), "2101"), (imei(4), None)]
    with session_scope() as session:
        plan = submission.plan(session, rows + xrows, SERVICE)
    by_imei = {p.imei: p for p in plan.rows}
    assert by_imei[imei(1)].service.package_id == "1740" and by_imei[imei(1)].fields == {"modelNo": "A2482"}
    assert by_imei[imei(2)].service.package_id == SERVICE
    assert by_imei[imei(3)].service.package_id == "2101"
    assert plan.quote.price is None  # mixed services
    assert plan.quote.cost == Decimal("0.20") + Decimal("0.08") + Decimal("0.05") + Decimal("0.08")
    missing = tmp_path / "bad.csv"
    missing.write_text("number\n123\n")
    with pytest.raises(ValidationFailed, match="column named 'imei'"):
        inputs.rows_from_table(missing)


def test_unknown_provider_field_is_refused(gsm_env: SimAdmin) -> None:
    with session_scope() as session, pytest.raises(ValidationFailed, match="unknown provider field"):
        submission.plan(session, [inputs.InputRow(imei(1))], SERVICE, fields={"colour": "red"})


# --- duplicates against history, force ----------------------------------------------------------------


def test_history_duplicates_are_skipped_unless_forced_and_audited(gsm_env: SimAdmin, db_url: str) -> None:
    with session_scope() as session:
        session.add(ImeiOrder(imei=imei(1), service_id=SERVICE, state="placed", order_id="5", fields={}))
        session.add(ImeiOrder(imei=imei(2), service_id="2101", state="placed", order_id="6", fields={}))
    values = [inputs.InputRow(imei(1)), inputs.InputRow(imei(2))]
    with session_scope() as session:
        batch, plan = submission.create_batch(session, OPERATOR, values, SERVICE)
        assert plan.duplicates_in_history == 1  # same IMEI, other service: not a duplicate
        assert [p.imei for p in plan.rows] == [imei(2)]
        assert batch.duplicates_in_history == 1
    with session_scope() as session:
        batch, plan = submission.create_batch(session, OPERATOR, values[:1], SERVICE)
        assert batch.job_id is None and batch.status == "done" and batch.to_send == 0
        assert plan.skipped[0]["reason"] == f"already ordered for service {SERVICE}"
    with session_scope() as session:
        batch, plan = submission.create_batch(session, OPERATOR, values[:1], SERVICE, force=True)
        assert plan.forced == 1 and batch.job_id is not None
        forced_id = batch.id
    with session_scope() as session:
        row = session.scalar(select(ImeiOrder).where(ImeiOrder.batch_id == forced_id))
        assert row is not None and row.forced
    [event] = audits("imei.force_recheck")
    assert event.actor == "olga" and event.detail["imeis"] == [imei(1)]


def test_an_order_placed_between_the_plan_and_the_insert_is_not_queued_again(
    gsm_env: SimAdmin, db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The race a CI run caught: another submission of the same IMEI commits, is placed and leaves the active
    states after this submission read the history but before it inserted its rows. Nothing conflicts on the
    one-active-intent index then, so only a second look after the insert keeps the IMEI from being paid twice;
    the other rows of the batch go on, and a forced submission still re-orders."""
    real_check = balance.check_quote
    raced = [imei(70), imei(72)]

    def other_submission_gets_there_first(balances: object) -> None:
        with session_scope() as other:  # its own connection and commit, as another request's
            for value in raced:
                other.add(ImeiOrder(imei=value, service_id=SERVICE, state="placed", order_id=value[-4:], fields={}))
        real_check(balances)  # type: ignore[arg-type]

    monkeypatch.setattr(submission, "check_quote", other_submission_gets_there_first)
    rows = [inputs.InputRow(imei(i)) for i in (70, 71, 72)]
    with session_scope() as session:
        batch, plan = submission.create_batch(session, OPERATOR, rows, SERVICE)
        batch_id = batch.id
        assert [p.imei for p in plan.rows] == [imei(71)]
        assert batch.to_send == 1 and batch.duplicates_in_history == 2 and batch.job_id is not None
        reasons = {s["value"]: s["reason"] for s in batch.skipped}
        assert reasons == dict.fromkeys(raced, f"already ordered for service {SERVICE} (by another submission a moment ago)")
    with session_scope() as session:
        queued = session.scalars(select(ImeiOrder.imei).where(ImeiOrder.batch_id == batch_id)).all()
        assert queued == [imei(71)]
        per_imei = dict(session.execute(select(ImeiOrder.imei, func.count()).group_by(ImeiOrder.imei)).all())
        assert per_imei == {imei(70): 1, imei(71): 1, imei(72): 1}
    monkeypatch.setattr(submission, "check_quote", real_check)
    with session_scope() as session:  # everything raced away: the batch is done, no job
        batch, plan = submission.create_batch(session, OPERATOR, rows[:1], SERVICE)
        assert batch.to_send == 0 and batch.status == "done" and batch.job_id is None
    raced = [imei(73)]
    monkeypatch.setattr(submission, "check_quote", other_submission_gets_there_first)
    with session_scope() as session:  # forced: the user asked for a second order, audited
        batch, plan = submission.create_batch(session, OPERATOR, [inputs.InputRow(imei(73))], SERVICE, force=True)
        assert batch.to_send == 1 and [p.imei for p in plan.rows] == [imei(73)]


# --- cost guard -----------------------------------------------------------------------------------------


def test_over_budget_is_refused_unless_an_admin_confirms(
    gsm_env: SimAdmin, db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from phoneops.core.db import utcnow
    from phoneops.settings import reset_settings_cache

    monkeypatch.setenv("IMEI_DAILY_BUDGET", "1.00")
    reset_settings_cache()
    with session_scope() as session:  # 0.50 already spent today, 0.16 reserved by a running batch
        session.add(ImeiOrder(imei=imei(90), service_id=SERVICE, state="placed", order_id="1", credits=Decimal("0.5"),
                              placed_at=utcnow(), fields={}))
        session.add(ImeiOrder(imei=imei(91), service_id=SERVICE, state="queued", credits=Decimal("0.16"), fields={}))
    rows = [inputs.InputRow(imei(i)) for i in range(5)]  # 5 x 0.08 = 0.40 -> 1.06 > 1.00
    with session_scope() as session:
        q = submission.quote_for(session, SERVICE, 5)
        assert (q.cost, q.spent_today, q.reserved, q.budget, q.over_budget) == (
            Decimal("0.40"), Decimal("0.5"), Decimal("0.16"), Decimal("1.00"), True)
        assert q.balance == "not available from the provider"
        with pytest.raises(Conflict) as refused:
            submission.create_batch(session, OPERATOR, rows, SERVICE)
        assert refused.value.status_code == 409 and refused.value.code == "over_budget"
        assert refused.value.details["cost"] == "0.40"
        with pytest.raises(Forbidden):
            submission.create_batch(session, OPERATOR, rows, SERVICE, confirm_over_budget=True)
    with session_scope() as session:
        assert session.scalar(select(func.count(ImeiOrder.id)).where(ImeiOrder.batch_id.is_not(None))) == 0
        batch, _ = submission.create_batch(session, SYSTEM, rows, SERVICE, confirm_over_budget=True)
        assert batch.over_budget_confirmed and batch.job_id
    [event] = audits("imei.budget_override")
    assert event.detail["over_budget"] is True
    with session_scope() as session:  # within budget: no confirmation needed
        small = submission.quote_for(session, SERVICE, 0)
        assert not small.over_budget or small.cost == 0
