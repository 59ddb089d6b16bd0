"""Honest surfaces: the CLI's batches/resume/review, CSV columns by header name, impossible IMEIs refused
before paying, an empty service list keeps the catalogue, a JSON error served as text/html is a typed error,
and the audit of paid calls, syncs, refreshes and logins."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select, update
from stdnum import luhn
from typer.testing import CliRunner

from phoneops.core.db import session_scope, utcnow
from phoneops.core.errors import ValidationFailed
from phoneops.core.models import AuditEvent
from phoneops.imei import catalogue, inputs, submission
from phoneops.imei.cli import app
from phoneops.imei.client import GsmFusionClient, GsmInvalidUser
from phoneops.imei.models import ImeiOrder, ImeiService
from phoneops.imei.validation import check_imei
from phoneops.simulators._server import SimAdmin
from phoneops.simulators.gsm_fusion import DEFAULT_API_KEY, DEFAULT_USER

runner = CliRunner()
SERVICE = "1739"


def imei(serial: int) -> str:
    body = f"35117700{serial:06d}"
    return body + luhn.calc_check_digit(body)


@pytest.fixture
def cli_env(gsm_sim: SimAdmin, gsm_sim_url: str, db_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[SimAdmin]:
    from phoneops.core.logging import configure_logging
    from phoneops.settings import get_settings, reset_settings_cache

    for name, value in {"DATABASE_URL": db_url, "GSM_FUSION_BASE_URL": gsm_sim_url,
                        "GSM_FUSION_USERNAME": DEFAULT_USER, "GSM_FUSION_API_KEY": DEFAULT_API_KEY}.items():
        monkeypatch.setenv(name, value)
    reset_settings_cache()
    yield gsm_sim
    settings = get_settings()
    configure_logging(settings.log_json, settings.log_level)
    reset_settings_cache()  # not left cached with this test's credentials (monkeypatch restores the env later)


def invoke(*args: str) -> Any:
    return runner.invoke(app, list(args), catch_exceptions=False)


def actions() -> list[str]:
    with session_scope() as session:
        return list(session.scalars(select(AuditEvent.action).order_by(AuditEvent.id)))


@pytest.mark.parametrize("body", ["00000000000000", "88888888888888", "00101300000000"])
def test_impossible_imeis_are_refused_before_paying(body: str) -> None:
    value = body + luhn.calc_check_digit(body)
    assert luhn.is_valid(value)  # they pass the check digit...
    assert check_imei(value).imei is None and "impossible IMEI" in (check_imei(value).error or "")
    assert check_imei(imei(1)).imei == imei(1)


def test_csv_service_columns_by_header_name(tmp_path: Path) -> None:
    agreeing = tmp_path / "a.csv"
    agreeing.write_text(f"network_id,imei,service_id\n{SERVICE},{imei(1)},{SERVICE}\n2101,{imei(2)},\n")
    rows = inputs.rows_from_table(agreeing)
    assert [(r.value, r.service_id) for r in rows] == [(imei(1), SERVICE), (imei(2), "2101")]
    disagreeing = tmp_path / "b.csv"
    disagreeing.write_text(f"imei,service_id,network_id\n{imei(1)},7,{SERVICE}\n")
    with pytest.raises(ValidationFailed, match="disagree on the service"):
        inputs.rows_from_table(disagreeing)


def test_an_empty_service_list_keeps_the_catalogue(cli_env: SimAdmin, monkeypatch: pytest.MonkeyPatch) -> None:
    with session_scope() as session:
        assert catalogue.refresh(session) > 0
    monkeypatch.setattr(GsmFusionClient, "imei_services", lambda self: [])
    with session_scope() as session:
        warning = catalogue.ensure_fresh(session, force=True)
        assert warning is not None and "empty service list" in warning
    with session_scope() as session:
        active = session.scalars(select(ImeiService.package_id).where(ImeiService.active.is_(True))).all()
        assert SERVICE in active


def test_a_json_error_served_as_html_is_a_typed_error() -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=b'{"apiversion":"2.0.0","ERROR":[{"MESSAGE":"Invalid User!"}]}',
                              headers={"Content-Type": "text/html"})

    with GsmFusionClient("http://gsm.invalid", DEFAULT_USER, DEFAULT_API_KEY,
                         transport=httpx.MockTransport(answer)) as client, pytest.raises(GsmInvalidUser) as caught:
        client.imei_services()
    assert "Invalid User!" in str(caught.value)


def test_cli_batches_resume_review_and_audits(cli_env: SimAdmin, gsm_client: Any, tmp_path: Path) -> None:
    source = tmp_path / "imeis.csv"
    source.write_text("imei,model_no\n" + "\n".join(imei(i) for i in range(3)) + "\n000000000000000\n")
    done = invoke("batch", str(source), "--service", SERVICE)
    assert done.exit_code == 0, done.output
    assert "3 to send, 1 invalid" in done.output
    listed = invoke("batches")
    assert listed.exit_code == 0 and "done" in listed.output
    # A batch stopped with work left (as after a fixed API key): `imei resume` finishes it.
    stopped = tmp_path / "more.csv"
    stopped.write_text("imei\n" + "\n".join(imei(i) for i in range(10, 13)) + "\n")
    queued = invoke("batch", str(stopped), "--service", SERVICE, "--queue")
    assert queued.exit_code == 0, queued.output
    with session_scope() as session:
        batch = submission.list_batches(session, 1)[0]
        batch.status, batch.error = "failed", "GSM Fusion rejected the API key"
        batch_id = batch.id
        from phoneops.core.models import Job

        session.execute(update(Job).where(Job.id == batch.job_id).values(status="failed"))
    resumed = invoke("resume", str(batch_id))
    assert resumed.exit_code == 0, resumed.output
    assert cli_env.stats()["total_orders"] == 6
    assert "nothing left to send" in invoke("resume", str(batch_id)).output
    # Review: a proven placement without an order id, listed and resolved from the CLI.
    with session_scope() as session:
        row = ImeiOrder(imei=imei(20), service_id=SERVICE, state="review", review_reason="no_order_id",
                        credits=Decimal("0.08"), placed_at=utcnow(), error="order id unknown", fields={})
        session.add(row)
        session.flush()
        row_id = row.id
    shown = invoke("review")
    assert shown.exit_code == 0 and "IMEI orders in review (1)" in shown.output
    assert invoke("review", "write-off", str(row_id)).exit_code != 0  # a reason is required
    attached = invoke("review", "attach", str(row_id), "900999")
    assert attached.exit_code == 0, attached.output
    assert invoke("review").output.strip().endswith("nothing needs review")
    outside = gsm_client.place_order(imei(30), SERVICE).order_id
    with session_scope() as session:
        session.add(ImeiOrder(imei=imei(30), service_id=SERVICE, state="placed", order_id=outside, fields={},
                              credits=Decimal("0.08"), placed_at=utcnow()))
    assert invoke("status", outside, "--refresh").exit_code == 0
    assert invoke("sync").exit_code == 0
    seen = actions()
    for action in ("imei.batch.create", "imei.batch.run", "imei.batch.resume", "imei.review.attach_order_id",
                   "imei.order.refresh", "imei.sync"):
        assert action in seen, action
    with session_scope() as session:
        run = session.scalars(select(AuditEvent).where(AuditEvent.action == "imei.batch.run")).first()
        assert run is not None and run.detail["placed"] == 3 and run.detail["spend"] == "0.24"


def test_cli_batch_reports_what_the_worker_that_took_its_job_did(cli_env: SimAdmin, tmp_path: Path) -> None:
    """Issue 14 item 6: a `phoneops worker` takes the batch's job before the command's own run does; the command
    follows that worker's run to its end and reports what it really placed (not "batch paused, 0 placed")."""
    import re
    import threading
    import time

    from phoneops.core import jobs
    from phoneops.core.models import Job

    cli_env.configure(latency_ms=150)  # the worker's run lasts while the command looks
    ran: list[str | None] = []

    def a_worker_takes_it(job_id: str, delay: float | None) -> None:
        worker = threading.Thread(target=lambda: ran.append(jobs.run_job(job_id, "other-worker")), daemon=True)
        worker.start()
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:  # the worker holds the job before the command starts its own run
            with session_scope() as session:
                if session.get(Job, job_id).status == "running":  # type: ignore[union-attr]
                    return
            time.sleep(0.01)

    jobs.set_enqueue_hook(a_worker_takes_it)
    source = tmp_path / "imeis.csv"
    source.write_text("imei\n" + "\n".join(imei(i) for i in range(40, 46)) + "\n")
    done = invoke("batch", str(source), "--service", SERVICE)
    assert done.exit_code == 0, done.output
    assert ran == ["succeeded"]  # the other worker ran it to the end; the command's own run found it taken
    assert "paused" not in done.output and "error" not in done.output
    assert re.search(r"│\s*6\s*│\s*0\s*│\s*0\s*│\s*0\s*│\s*0\s*│", done.output), done.output  # placed 6, the rest 0
    assert cli_env.stats()["total_orders"] == 6
