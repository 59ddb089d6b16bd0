"""Ongage CSV jobs against the simulator: upload checks (a refused file leaves nothing behind), enforced
transitions (409), the worker's pace, pause and resume, per-row outcomes, reconciliation of rows left in
flight, the API, the pages and the CLI."""

from __future__ import annotations

import csv
import io
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select, update
from typer.testing import CliRunner

from phoneops.core import jobs
from phoneops.core.db import session_scope
from phoneops.core.errors import Conflict, ValidationFailed
from phoneops.core.models import Job, StoredFile
from phoneops.core.security import SYSTEM
from phoneops.core.storage import get_storage
from phoneops.ongage import service_csv
from phoneops.ongage.models import OngageCsvJob, OngageCsvRow
from phoneops.simulators._server import SimAdmin
from phoneops.simulators.ongage import DEFAULT_ACCOUNT_CODE, DEFAULT_LIST_ID, DEFAULT_PASSWORD, DEFAULT_USERNAME
from support import login

HEADER = ["List_ID", "Email", "Country", "Source", "Mobile", "conversion_type", "Original_source", "HLR_Status", "Uuid"]


def csv_bytes(count: int, *, header: list[str] = HEADER, list_id: str = DEFAULT_LIST_ID, start: int = 1) -> bytes:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    for n in range(start, start + count):
        row = {"List_ID": list_id, "Email": f"user{n}@example.com", "Country": "GB", "Source": "GB_REG",
               "Mobile": f"4479111{n:05d}", "conversion_type": "REG", "Original_source": "sms",
               "HLR_Status": "LIVE", "Uuid": f"uuid-{n}"}
        writer.writerow([row.get(h, "") for h in header])
    return buffer.getvalue().encode()


def _reset() -> None:
    from phoneops.ongage.provider import reset_clients
    from phoneops.settings import reset_settings_cache

    reset_settings_cache()
    reset_clients()


@pytest.fixture
def ongage(ongage_sim: SimAdmin, ongage_sim_url: str, db_url: str, monkeypatch: pytest.MonkeyPatch
           ) -> Iterator[SimAdmin]:
    for name, value in {"ONGAGE_BASE_URL": ongage_sim_url, "ONGAGE_LIST_ID": DEFAULT_LIST_ID,
                        "ONGAGE_USERNAME": DEFAULT_USERNAME, "ONGAGE_PASSWORD": DEFAULT_PASSWORD,
                        "ONGAGE_ACCOUNT_CODE": DEFAULT_ACCOUNT_CODE, "DATABASE_URL": db_url}.items():
        monkeypatch.setenv(name, value)
    _reset()
    yield ongage_sim
    monkeypatch.undo()
    _reset()


def create(data: bytes, **pace: Any) -> int:
    with session_scope() as session:
        upload = get_storage().save_bytes(session, SYSTEM, data, kind="upload", original_name="contacts.csv")
        return service_csv.create_csv_job(session, SYSTEM, upload, service_csv.Pace(**pace)).id


def move(job_id: int, action: str) -> OngageCsvJob:
    with session_scope() as session:
        job = service_csv.transition(session, SYSTEM, job_id, action)
        session.expunge(job)
        return job


def counts(job_id: int) -> dict[str, int]:
    with session_scope() as session:
        return service_csv.row_counts(session, job_id)


def csv_job(job_id: int) -> OngageCsvJob:
    with session_scope() as session:
        job = service_csv.get_csv_job(session, job_id)
        session.expunge(job)
        return job


def run_worker(job_id: int) -> str | None:
    worker = csv_job(job_id).worker_job_id
    assert worker is not None
    return jobs.run_job(worker)


def _files_on_disk() -> set[Path]:
    return {p for p in get_storage().root.rglob("*") if p.is_file() and p.parent.name != "tmp"}


def test_a_refused_file_leaves_nothing_behind(ongage: SimAdmin) -> None:
    on_disk = _files_on_disk()
    with session_scope() as session:
        before = session.scalar(select(func.count(StoredFile.id)))
    for data, reason in [(csv_bytes(3, header=HEADER[:-1]), "Uuid"), (csv_bytes(0), "no row"),
                         (b"", "empty"), (b"\x00\x01\x02" * 100, "cannot be read")]:
        with pytest.raises(ValidationFailed, match=reason):
            create(data)
    with session_scope() as session:
        assert session.scalar(select(func.count(OngageCsvJob.id))) == 0
        assert session.scalar(select(func.count(OngageCsvRow.id))) == 0
        assert session.scalar(select(func.count(StoredFile.id))) == before
    assert _files_on_disk() == on_disk  # no file left on disk for a refused upload


def test_transitions_are_enforced(ongage: SimAdmin) -> None:
    job_id = create(csv_bytes(3))
    assert csv_job(job_id).status == "draft"
    for action in ("pause", "resume"):
        with pytest.raises(Conflict):
            move(job_id, action)
    started = move(job_id, "start")
    assert started.status == "running" and started.worker_job_id is not None
    with pytest.raises(Conflict):
        move(job_id, "start")
    assert move(job_id, "pause").status == "paused"
    with pytest.raises(Conflict):
        move(job_id, "pause")
    assert move(job_id, "cancel").status == "cancelled"
    for action in ("start", "pause", "resume", "cancel"):
        with pytest.raises(Conflict):
            move(job_id, action)
    with session_scope() as session, pytest.raises(Conflict):
        service_csv.set_pace(session, SYSTEM, job_id, interval_seconds=5)
    with session_scope() as session, pytest.raises(ValidationFailed):
        service_csv.set_pace(session, SYSTEM, create(csv_bytes(1)), lower_limit=5, upper_limit=2)


def test_the_worker_keeps_the_pace_and_marks_each_row(ongage: SimAdmin) -> None:
    ongage.configure(fail_emails=["user2@example.com", "user6@example.com"], fail_reason="Bad address")
    job_id = create(csv_bytes(7) + b"100001,,GB,x,1,REG,sms,LIVE,u\n",
                    interval_seconds=1, lower_limit=3, upper_limit=3, batch_size=2)
    assert counts(job_id)["failed"] == 1  # no email: failed at once
    move(job_id, "start")
    started = time.monotonic()
    assert run_worker(job_id) == "succeeded"
    assert time.monotonic() - started >= 1.9  # 3 sends of up to 3 rows, 1 s apart
    assert ongage.stats()["calls"]["upsert"] == 5  # 2 + 1, 2 + 1, 1 contacts per call
    job = csv_job(job_id)
    assert (job.status, job.rows_sent, job.rows_failed, job.worker_job_id) == ("done", 5, 3, None)
    with session_scope() as session:
        rows = {r.email: r for r in service_csv.list_rows(session, job_id, limit=100)}
    assert rows["user2@example.com"].status == "failed" and rows["user2@example.com"].error == "Bad address"
    assert rows["user1@example.com"].status == "sent" and rows["user1@example.com"].outcome == "created"
    assert rows[""].error == service_csv.NO_EMAIL
    stored = ongage.orders(email="user1@example.com")[0]
    assert stored["fields"] == {"country": "GB", "source": "GB_REG", "mobile": "447911100001",
                                "conversion_type": "REG", "original_source": "sms", "hlr_status": "LIVE",
                                "uuid": "uuid-1"}
    with pytest.raises(Conflict):
        move(job_id, "cancel")  # done is final


def test_pause_and_resume_send_every_row_once(ongage: SimAdmin) -> None:
    job_id = create(csv_bytes(12), interval_seconds=1, lower_limit=2, upper_limit=2, batch_size=2)
    move(job_id, "start")
    first_worker = csv_job(job_id).worker_job_id
    outcome: list[str | None] = []
    thread = threading.Thread(target=lambda: outcome.append(run_worker(job_id)))
    thread.start()
    deadline = time.monotonic() + 20
    while counts(job_id)["sent"] < 4:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    move(job_id, "pause")
    thread.join(15)
    assert outcome == ["succeeded"]
    with session_scope() as session:
        worker = session.get(Job, first_worker)
        assert worker is not None and worker.result["stopped"] == "paused"
    paused_at = counts(job_id)
    assert paused_at["sending"] == 0 and 4 <= paused_at["sent"] < 12
    time.sleep(1.2)
    assert counts(job_id) == paused_at  # nothing sent while paused
    resumed = move(job_id, "resume")
    assert resumed.worker_job_id not in (None, first_worker)
    assert run_worker(job_id) == "succeeded"
    assert csv_job(job_id).status == "done" and counts(job_id)["sent"] == 12
    received = ongage.orders()
    assert len(received) == 12 and {c["receipts"] for c in received} == {1}


def test_rows_left_in_flight_are_reconciled_not_sent_again(ongage: SimAdmin) -> None:
    from phoneops.ongage.provider import get_client

    job_id = create(csv_bytes(4), interval_seconds=1, lower_limit=10, upper_limit=10, batch_size=10)
    move(job_id, "start")
    get_client().upsert_contacts([{"email": "user1@example.com", "fields": {"uuid": "uuid-1"}}])  # reached Ongage
    with session_scope() as session:  # ... then the worker died before recording the answer
        session.execute(update(OngageCsvRow).where(OngageCsvRow.csv_job_id == job_id, OngageCsvRow.row_no <= 2)
                        .values(status="sending", send_id="00000000-0000-0000-0000-000000000001"))
    assert run_worker(job_id) == "succeeded"
    with session_scope() as session:
        rows = {r.row_no: r for r in service_csv.list_rows(session, job_id)}
    assert rows[1].status == "sent" and rows[1].outcome == "reconciled"
    assert rows[2].status == "sent" and rows[2].outcome == "created"  # not at Ongage: sent now
    assert {c["email"]: c["receipts"] for c in ongage.orders()} == {f"user{n}@example.com": 1 for n in range(1, 5)}
    assert ongage.stats()["calls"]["get_contact"] == 2


def test_unknown_list_fails_its_rows_and_a_refused_login_fails_the_job(ongage: SimAdmin,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    job_id = create(csv_bytes(2, list_id="999999") + csv_bytes(2, start=3).split(b"\n", 1)[1],
                    interval_seconds=1, lower_limit=10, upper_limit=10)
    move(job_id, "start")
    assert run_worker(job_id) == "succeeded"
    with session_scope() as session:
        rows = {r.row_no: r for r in service_csv.list_rows(session, job_id)}
    assert rows[1].status == "failed" and "not found" in (rows[1].error or "")
    assert rows[3].status == "sent" and csv_job(job_id).status == "done"

    second = create(csv_bytes(2), interval_seconds=1)
    move(second, "start")
    monkeypatch.setenv("ONGAGE_PASSWORD", "not-the-password-1")
    _reset()
    assert run_worker(second) == "failed"
    failed = csv_job(second)
    assert failed.status == "failed" and "login" in (failed.error or "") and "not-the-password" not in failed.error
    assert counts(second)["pending"] == 2  # nothing counted against the rows
    monkeypatch.setenv("ONGAGE_PASSWORD", DEFAULT_PASSWORD)
    _reset()
    assert move(second, "resume").status == "running"
    assert run_worker(second) == "succeeded" and csv_job(second).status == "done"


def test_api_pages_and_cli(client: Any, users: Any, ongage: SimAdmin, tmp_path: Path,
                           monkeypatch: pytest.MonkeyPatch) -> None:
    viewer, operator = users.headers("viewer"), users.headers("operator")
    files = {"file": ("contacts.csv", csv_bytes(5), "text/csv")}
    assert client.post("/api/ongage/csv-jobs", files=files, headers=viewer).status_code == 403
    refused = client.post("/api/ongage/csv-jobs", files={"file": ("x.csv", csv_bytes(2, header=HEADER[1:]), "text/csv")},
                          headers=operator)
    assert refused.status_code == 422 and refused.json()["error"]["details"]["missing"] == ["List_ID"]
    created = client.post("/api/ongage/csv-jobs", files=files, data={"interval_seconds": "1", "upper_limit": "5",
                                                                     "batch_size": "5"}, headers=operator)
    assert created.status_code == 201, created.text
    job = created.json()
    assert (job["status"], job["rows_total"], job["counts"]["pending"]) == ("draft", 5, 5)
    job_id = job["id"]
    assert client.post(f"/api/ongage/csv-jobs/{job_id}/pause", headers=operator).status_code == 409
    paced = client.patch(f"/api/ongage/csv-jobs/{job_id}", json={"lower_limit": 5}, headers=operator).json()
    assert (paced["lower_limit"], paced["upper_limit"], paced["interval_seconds"]) == (5, 5, 1.0)
    assert client.patch(f"/api/ongage/csv-jobs/{job_id}", json={"interval_seconds": 0.1},
                        headers=operator).status_code == 422
    started = client.post(f"/api/ongage/csv-jobs/{job_id}/start", headers=operator)
    assert started.status_code == 200 and started.json()["status"] == "running"
    assert jobs.run_job(started.json()["worker_job_id"]) == "succeeded"
    detail = client.get(f"/api/ongage/csv-jobs/{job_id}", headers=viewer).json()
    assert detail["status"] == "done" and detail["counts"]["sent"] == 5
    rows = client.get(f"/api/ongage/csv-jobs/{job_id}/rows", params={"status": "sent"}, headers=viewer).json()
    assert len(rows) == 5 and rows[0]["outcome"] == "created"
    exported = client.get(f"/api/ongage/csv-jobs/{job_id}/rows.csv", headers=operator)
    assert exported.status_code == 200 and exported.text.count("\n") == 6
    assert client.get(f"/api/ongage/csv-jobs/{job_id}/rows.csv", headers=viewer).status_code == 403
    assert [j["id"] for j in client.get("/api/ongage/csv-jobs", headers=viewer).json()] == [job_id]
    assert client.get("/api/ongage/csv-jobs/999", headers=viewer).status_code == 404

    users.create("operator", "oscar")
    csrf = login(client, "oscar")
    page = client.post("/ongage/csv-jobs", files={"file": ("page.csv", csv_bytes(3, start=50), "text/csv")},
                       data={"csrf_token": csrf, "interval_seconds": "1", "lower_limit": "1", "upper_limit": "3",
                             "batch_size": "500"}, follow_redirects=False)
    assert page.status_code == 303
    page_job = int(page.headers["location"].rsplit("/", 1)[1])
    shown = client.get(f"/ongage/csv-jobs/{page_job}")
    assert shown.status_code == 200 and 'data-action="start"' in shown.text and 'data-action="pause"' not in shown.text
    client.post(f"/ongage/csv-jobs/{page_job}/start", data={"csrf_token": csrf})
    shown = client.get(f"/ongage/csv-jobs/{page_job}")
    assert 'data-action="pause"' in shown.text and 'data-field="csv-status">running' in shown.text
    again = client.post(f"/ongage/csv-jobs/{page_job}/start", data={"csrf_token": csrf})
    assert again.status_code == 409 and "cannot start" in again.text
    bad = client.post("/ongage/csv-jobs", files={"file": ("bad.csv", b"Email\nx@y.z\n", "text/csv")},
                      data={"csrf_token": csrf})
    assert bad.status_code == 422 and "List_ID" in bad.text
    assert client.get("/ongage/csv-jobs").status_code == 200 and client.get("/ongage").status_code == 200

    from phoneops.cli import console
    from phoneops.ongage.cli import app

    monkeypatch.setattr(console, "_width", 220)
    runner = CliRunner()
    source = tmp_path / "cli.csv"
    source.write_bytes(csv_bytes(4, start=100))
    uploaded = runner.invoke(app, ["csv", "upload", str(source), "--interval", "1", "--upper", "4"])
    assert uploaded.exit_code == 0, uploaded.output
    assert "draft" in uploaded.output and "4 rows" in uploaded.output
    cli_job = int(uploaded.output.split("job ", 1)[1].split()[0])
    assert runner.invoke(app, ["csv", "pause", str(cli_job)]).exit_code == 1  # 409: a draft cannot pause
    assert runner.invoke(app, ["csv", "pace", str(cli_job), "--lower", "4"]).exit_code == 0
    assert runner.invoke(app, ["csv", "start", str(cli_job)]).exit_code == 0
    assert run_worker(cli_job) == "succeeded"
    followed = runner.invoke(app, ["csv", "follow", str(cli_job)])
    assert followed.exit_code == 0 and "done" in followed.output and "4 sent" in followed.output
    listed = runner.invoke(app, ["csv", "list"])
    assert listed.exit_code == 0 and "cli.csv" in listed.output
