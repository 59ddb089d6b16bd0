"""The privacy page (admin only, CSRF, confirmation), the `phoneops privacy` commands, the erase job's progress."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from phoneops.core.db import session_scope
from phoneops.core.models import Job
from phoneops.core.security import SYSTEM
from phoneops.numbers.lists import Authority, Verdict, apply_verdicts
from phoneops.numbers.models import PhoneNumber
from phoneops.numbers.vault import get_vault
from phoneops.privacy.cli import app
from phoneops.privacy.models import Erasure

runner = CliRunner()
NUMBER = "+447400123456"


def _listed(*numbers: str) -> None:
    with session_scope() as session:
        apply_verdicts(session, SYSTEM, [Verdict(n, "blacklist", Authority.manual, reason="MANUAL") for n in numbers])


def _known(number: str) -> bool:
    with session_scope() as session:
        return session.scalar(select(PhoneNumber.id).where(PhoneNumber.blind_index == get_vault().index(number))) \
            is not None


def test_page_is_admin_only_and_erases_with_confirmation(client: Any, users: Any, inline_jobs: list[str]) -> None:
    from support import login

    _listed(NUMBER, "+447400123457")
    users.create("operator", "olga")
    login(client, "olga")
    assert client.get("/privacy").status_code == 403
    client.post("/logout", data={})
    client.cookies.clear()
    users.create("admin", "ada")
    csrf = login(client, "ada")
    page = client.get("/privacy")
    assert page.status_code == 200 and "Erase a number" in page.text and "kept forever" in page.text
    assert client.post("/privacy/erase", data={"number": NUMBER, "confirm": "yes"}).status_code == 403  # no CSRF
    unconfirmed = client.post("/privacy/erase", data={"csrf_token": csrf, "number": NUMBER, "region": "GB"})
    assert unconfirmed.status_code == 400 and "confirm" in unconfirmed.text
    bad = client.post("/privacy/erase", data={"csrf_token": csrf, "number": "12ab", "region": "GB", "confirm": "yes"})
    assert bad.status_code == 422 and "not a valid phone number" in bad.text
    assert _known(NUMBER)
    sent = client.post("/privacy/erase", data={"csrf_token": csrf, "number": "07400 123456", "region": "GB",
                                               "confirm": "yes"}, follow_redirects=False)
    assert sent.status_code == 303
    ledger = client.get("/privacy").text
    assert "+447*******56" in ledger and "phone_numbers: 1" in ledger and NUMBER not in ledger
    assert not _known(NUMBER) and _known("+447400123457")
    with session_scope() as session:
        job = session.scalars(select(Job).where(Job.kind == "privacy.erase")).one()
        record = session.scalars(select(Erasure)).one()
        assert (job.status, job.progress_done, record.sealed) == ("succeeded", job.progress_total, None)
        assert job.counters["phone_numbers"] == 1 and NUMBER not in str(job.params)


@pytest.fixture
def cli_db(db_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    from phoneops.core import jobs
    from phoneops.settings import reset_settings_cache

    monkeypatch.setenv("DATABASE_URL", db_url)
    reset_settings_cache()
    yield
    jobs.set_enqueue_hook(lambda job_id, delay: None)
    reset_settings_cache()


def test_cli_erase_check_and_ledger(cli_db: None) -> None:
    _listed(NUMBER)
    bad = runner.invoke(app, ["erase", "0740012345x", "--region", "GB", "--yes"])
    assert bad.exit_code == 1 and "not a valid phone number" in bad.output
    assert _known(NUMBER)
    unconfirmed = runner.invoke(app, ["erase", NUMBER], input="n\n")
    assert unconfirmed.exit_code == 1 and _known(NUMBER)
    done = runner.invoke(app, ["erase", "447400123456", "--yes"])
    assert done.exit_code == 0, done.output
    assert "phone_numbers" in done.output and "succeeded" in done.output
    assert not _known(NUMBER)
    check = runner.invoke(app, ["check", "07400123456", "--region", "GB"])
    assert check.exit_code == 0 and "erased (1 time(s)" in check.output
    assert "not erased" in runner.invoke(app, ["check", "+447400123457"]).output
    ledger = runner.invoke(app, ["ledger"])
    assert "+447*******56" in ledger.output and NUMBER not in ledger.output
    again = runner.invoke(app, ["erase", NUMBER, "--yes"])
    assert again.exit_code == 0 and "phone_numbers" not in again.output  # nothing left: idempotent
    from phoneops.privacy.erase import erased_blind_indexes, erased_indexes

    with session_scope() as session:  # what ingestion code asks before storing a number again
        index, other = get_vault().index(NUMBER), get_vault().index("+447400123457")
        assert erased_blind_indexes(session) == {index}
        assert erased_indexes(session, [index, other]) == {index}


def test_api_roles_and_retention(client: Any, users: Any) -> None:
    for role, status in (("viewer", 403), ("operator", 403), ("admin", 200)):
        assert client.get("/api/privacy/erasures", headers=users.headers(role)).status_code == status
        assert client.get("/api/privacy/retention", headers=users.headers(role)).status_code == status
    body = client.get("/api/privacy/retention", headers=users.headers("admin")).json()
    assert body == {"tracker_events_days": 0, "hlr_raw_days": 0, "tracker_cutoff": None, "hlr_cutoff": None}
    job = client.post("/api/privacy/purge", headers=users.headers("admin"), json={"dry_run": True})
    assert job.status_code == 202 and job.json()["kind"] == "privacy.purge"
    assert client.post("/api/privacy/purge", headers=users.headers("operator"), json={}).status_code == 403
    assert client.get("/api/privacy/erasures/999", headers=users.headers("admin")).status_code == 404
    assert client.get("/api/privacy/erasures/99999999999", headers=users.headers("admin")).status_code == 422


def test_a_lost_worker_resumes_the_erasure_where_it_stopped(
    db_url: str, inline_jobs: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from datetime import timedelta

    from phoneops.core.db import utcnow
    from phoneops.core.jobs import LeaseLost, reap_expired
    from phoneops.core.storage import get_storage
    from phoneops.privacy import erase

    _listed(NUMBER)
    with session_scope() as session:
        for n in range(3):
            get_storage().save_bytes(session, SYSTEM, f"phone\n{NUMBER}\n+447400123457\nrow {n}\n".encode(),
                                     kind="upload", original_name=f"f{n}.csv")
    real = erase.erase_from_file
    calls: list[str] = []

    def dies_on_the_second_file(session: Any, storage: Any, row: Any, matcher: Any) -> Any:
        calls.append(row.id)
        if len(calls) == 2:
            raise LeaseLost("worker gone")  # as if the worker was killed after the first file's step
        return real(session, storage, row, matcher)

    monkeypatch.setattr(erase, "erase_from_file", dies_on_the_second_file)
    with session_scope() as session:
        erasure_id = erase.request_erasure(session, SYSTEM, NUMBER).id
    with session_scope() as session:
        record = erase.get_erasure(session, erasure_id)
        assert record.status == "running" and record.sealed is not None
        assert not _known(NUMBER)  # the rows step was committed before the loss
    monkeypatch.setattr(erase, "erase_from_file", real)
    assert reap_expired(utcnow() + timedelta(minutes=5))  # the lease expired: requeued and run again inline
    with session_scope() as session:
        record = erase.get_erasure(session, erasure_id)
        assert (record.status, record.sealed) == ("done", None)
        assert record.counts["files_scanned"] == 3 and record.counts["file_rows_removed"] == 3
        assert record.counts["phone_numbers"] == 1  # counted once, not again on resume
        job = session.get(Job, record.job_id)
        assert job is not None and job.attempts == 2 and job.progress_done == job.progress_total
