"""Smart cleaning and REG search: sources, filters, masking, API, CLI; archive, restore and delete of their runs."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from phoneops.core import jobs
from phoneops.core.db import session_scope
from phoneops.core.errors import ValidationFailed
from phoneops.core.models import AuditEvent, Job, StoredFile
from phoneops.core.security import SYSTEM, Principal, Role
from phoneops.core.storage import get_file, get_storage
from phoneops.numbers.lists import Authority, Verdict, apply_verdicts
from phoneops.voluum import conversions, live, smart
from phoneops.voluum.wire import Conversion as WireConversion

NOW = datetime.now(UTC)
TODAY = NOW.date()
REG_DAY = TODAY - timedelta(days=2)
ADMIN = Principal(None, "amy", Role.admin, via="cli")
OPERATOR = Principal(None, "otto", Role.operator, via="cli")
GB = "Marketing Services 1 - United Kingdom - X"


def phone(n: int) -> str:
    return f"+4474001234{n:02d}"  # GB (07911 123xxx would be Guernsey)


def conv(click: str, n: int, kind: str, offer: str, moment: datetime, campaign: str = GB) -> WireConversion:
    return WireConversion.from_row({
        "clickId": click, "transactionId": f"t-{click}", "conversionType": kind, "campaignId": "c-1",
        "campaignName": campaign, "offerId": offer, "offerName": f"Offer {offer[-1].upper()}",
        "customVariable1": phone(n)[1:], "postbackTimestamp": moment.isoformat(),
    })


def live_event(n: int, offer: str, moment: datetime) -> dict[str, Any]:
    return {"clickId": f"live-{n}-{offer}", "offerId": offer, "campaignId": "c-1",
            "timestamp": moment.isoformat(), "customVariables": [phone(n)]}


@pytest.fixture
def seeded(db_url: str) -> None:
    """GB whitelist: numbers 1-8 (9 on monitor, a US number whitelisted). Conversions and live events below."""
    reg_at = datetime.combine(REG_DAY, datetime.min.time(), tzinfo=UTC) + timedelta(hours=12)
    later = NOW - timedelta(minutes=30)
    with session_scope() as session:
        verdicts = [Verdict(phone(n), "whitelist", Authority.auto, "OS_VERSION", "VOLUUM") for n in range(1, 9)]
        verdicts += [Verdict(phone(9), "monitor", Authority.auto, "OS_VERSION", "VOLUUM"),
                     Verdict("+14155552671", "whitelist", Authority.auto, "OS_VERSION", "VOLUUM")]
        apply_verdicts(session, SYSTEM, verdicts)
        conversions.store(session, SYSTEM, [
            conv("k1", 1, "FTD", "offer-a", later),
            conv("k2", 2, "REG", "offer-a", reg_at),
            conv("k3", 3, "FTD", "offer-b", later),
            conv("k4r", 4, "REG", "offer-a", reg_at), conv("k4f", 4, "FTD", "offer-a", later),  # deposited later
            conv("k6", 6, "REG", "offer-a", reg_at),
            conv("k7", 7, "REG", "offer-b", reg_at),
            conv("k8", 8, "REG", "offer-a", reg_at, campaign="Promo - Germany"),
            conv("k10", 10, "REG", "offer-a", reg_at, campaign="Legacy test campaign"),
        ])
        live.ingest(session, [("m-1", [live_event(5, "offer-a", NOW - timedelta(hours=1)),
                                       live_event(3, "offer-b", NOW - timedelta(hours=1)),
                                       live_event(7, "offer-a", NOW - timedelta(hours=30))])], source="sqs")


def run(job_id: str) -> Job:
    assert jobs.run_job(job_id) == "succeeded"
    with session_scope() as session:
        job = jobs.get_job(session, job_id)
        session.expunge(job)
    return job


def output(job: Job) -> list[list[str]]:
    with session_scope() as session:
        data = b"".join(get_storage().iter_bytes(get_file(session, job.result["file_id"])))
    return list(csv.reader(io.StringIO(data.decode())))


def numbers_of(rows: list[list[str]]) -> list[str]:
    return [r[0] for r in rows[1:]]


# --- smart cleaning ------------------------------------------------------------------------------------


def test_country_whitelist_minus_converted_and_live(seeded: None) -> None:
    with session_scope() as session:
        plain = smart.start_smart_clean(session, ADMIN, offers=["offer-a"], country="GB",
                                        date_from=TODAY - timedelta(days=1), date_to=TODAY).id
        regs = smart.start_smart_clean(session, ADMIN, offers=["Offer A"], country="gb", date_from=TODAY,
                                       date_to=TODAY, filter_regs=True, filter_live=True).id
    first = run(plain)
    assert output(first)[0] == ["number", "country", "listed_at"]
    assert numbers_of(output(first)) == [phone(n) for n in (2, 3, 5, 6, 7, 8)]  # FTD on offer A dropped, in order
    assert (first.result["input"], first.result["converted"], first.result["kept"]) == (8, 2, 6)
    second = run(regs)
    assert numbers_of(output(second)) == [phone(3), phone(7)]  # REGs, FTDs, and 5 seen live on offer A
    assert second.result["live_24h"] == 1 and second.result["converted"] == 5


def test_non_admins_get_masked_numbers(seeded: None) -> None:
    with session_scope() as session:
        job_id = smart.start_smart_clean(session, OPERATOR, offers=["offer-a"], country="GB", date_from=TODAY,
                                         date_to=TODAY).id
    rows = numbers_of(output(run(job_id)))
    assert len(rows) == 6 and all("*" in r and r.endswith(phone(2)[-2:]) for r in rows[:1])


def test_uploaded_list_keeps_its_rows_and_order(seeded: None) -> None:
    text = ("name,phone\nAnn,07400 123401\nBob,+44 7400 123403\nCid,not a number\nDee,447400123402\n"
            "Eve,07400123403\nFay,07400 123405\n")
    with session_scope() as session:
        stored = get_storage().save_bytes(session, OPERATOR, text.encode(), kind="voluum-input", original_name="l.csv")
        job_id = smart.start_smart_clean(session, OPERATOR, offers=["offer-a"], file_id=stored.id,
                                         filter_live=True).id
    job = run(job_id)
    # rows as uploaded (a cell that could start a spreadsheet formula gets a leading quote, as in every export)
    assert output(job) == [["name", "phone"], ["Bob", "'+44 7400 123403"], ["Dee", "447400123402"]]
    assert {k: job.result[k] for k in ("input", "kept", "invalid", "duplicates", "converted", "live_24h")} == {
        "input": 6, "kept": 2, "invalid": 1, "duplicates": 1, "converted": 1, "live_24h": 1}


def test_bad_requests_create_nothing(seeded: None) -> None:
    with session_scope() as session:
        for kwargs, message in [
            ({"offers": []}, "at least one offer"),
            ({"offers": ["Offer Z"], "country": "GB", "date_from": TODAY, "date_to": TODAY}, "unknown offers"),
            ({"offers": ["offer-a"], "country": "XX", "date_from": TODAY, "date_to": TODAY}, "ISO 3166"),
            ({"offers": ["offer-a"], "country": "GB"}, "date range"),
            ({"offers": ["offer-a"], "country": "GB", "date_from": TODAY, "date_to": TODAY - timedelta(days=1)},
             "before it starts"),
        ]:
            with pytest.raises(ValidationFailed, match=message):
                smart.start_smart_clean(session, ADMIN, **kwargs)
        stored = get_storage().save_bytes(session, ADMIN, b"\x00\x01\x02" * 100, kind="x", original_name="b.bin")
        with pytest.raises(ValidationFailed, match="cannot be read"):
            smart.start_smart_clean(session, ADMIN, offers=["offer-a"], file_id=stored.id)
        with pytest.raises(ValidationFailed, match="unknown"):
            smart.start_reg_search(session, ADMIN, country="GB", date_from=TODAY, date_to=TODAY, offers=["nope"])
        assert session.scalar(select(func.count(Job.id))) == 0


# --- REG search ----------------------------------------------------------------------------------------


def test_reg_search_excludes_numbers_that_deposited(seeded: None) -> None:
    with session_scope() as session:
        chosen = smart.start_reg_search(session, ADMIN, country="GB", date_from=REG_DAY, date_to=REG_DAY,
                                        offers=["offer-a"]).id
        every = smart.start_reg_search(session, ADMIN, country="GB", date_from=REG_DAY, date_to=REG_DAY).id
        unknown = smart.start_reg_search(session, ADMIN, country="unknown", date_from=REG_DAY, date_to=REG_DAY).id
        outside = smart.start_reg_search(session, ADMIN, country="GB", date_from=TODAY, date_to=TODAY).id
    first = run(chosen)
    assert output(first)[0] == ["number", "country", "first_reg_at", "regs", "offer"]
    assert sorted(numbers_of(output(first))) == [phone(2), phone(6)]  # 4 deposited after the window: not REG-only
    assert (first.result["regs"], first.result["with_ftd"], first.result["reg_only"]) == (3, 1, 2)
    assert sorted(numbers_of(output(run(every)))) == [phone(2), phone(6), phone(7)]
    assert numbers_of(output(run(unknown))) == [phone(10)]
    assert run(outside).result["regs"] == 0


# --- API and CLI ---------------------------------------------------------------------------------------


def test_api_roles_uploads_and_downloads(seeded: None, client: Any, users: Any, inline_jobs: list[str]) -> None:
    viewer, operator, admin = users.headers("viewer"), users.headers("operator"), users.headers("admin")
    body = {"offers": ["offer-a"], "country": "GB", "from": str(TODAY), "to": str(TODAY)}
    assert client.post("/api/voluum/smart-clean", json=body, headers=viewer).status_code == 403
    by_admin = client.post("/api/voluum/smart-clean", json=body, headers=admin)
    assert by_admin.status_code == 202, by_admin.text
    job_id = by_admin.json()["id"]
    assert client.get(f"/api/jobs/{job_id}", headers=admin).json()["status"] == "succeeded"
    assert client.get(f"/api/voluum/runs/{job_id}/download", headers=operator).status_code == 403  # in full
    download = client.get(f"/api/voluum/runs/{job_id}/download", headers=admin)
    assert download.status_code == 200 and phone(2) in download.text

    by_operator = client.post("/api/voluum/smart-clean", json=body, headers=operator).json()
    masked = client.get(f"/api/voluum/runs/{by_operator['id']}/download", headers=viewer)
    assert masked.status_code == 200 and phone(2) not in masked.text and "*" in masked.text

    upload = client.post("/api/voluum/smart-clean/upload", headers=operator,
                         files={"file": ("mine.csv", b"07400 123401\n07400 123403\n", "text/csv")},
                         data={"offers": ["Offer A"], "filter_regs": "true"})
    assert upload.status_code == 202, upload.text
    # the uploaded list's own rows come back in full: to the user who started the run (or an admin) only
    assert client.get(f"/api/voluum/runs/{upload.json()['id']}/download", headers=viewer).status_code == 403
    result = client.get(f"/api/voluum/runs/{upload.json()['id']}/download", headers=operator)
    assert result.text.splitlines() == ["07400 123403"]

    files_before = client.get("/api/files", headers=admin).json()
    refused = client.post("/api/voluum/smart-clean/upload", headers=operator,
                          files={"file": ("x.csv", b"07400 123401\n", "text/csv")}, data={"offers": ["Offer Q"]})
    assert refused.status_code == 422 and "unknown offers" in refused.json()["error"]["message"]
    assert client.get("/api/files", headers=admin).json() == files_before  # nothing stored

    reg = client.post("/api/voluum/reg-search", headers=operator,
                      json={"country": "GB", "from": str(REG_DAY), "to": str(REG_DAY), "offers": ["offer-a"]})
    assert reg.status_code == 202
    assert client.get(f"/api/jobs/{reg.json()['id']}", headers=operator).json()["result"]["reg_only"] == 2
    runs = client.get("/api/voluum/runs", headers=viewer).json()
    assert len(runs) == 4 and {r["kind"] for r in runs} == {"voluum.smart_clean", "voluum.reg_search"}
    offers = client.get("/api/voluum/offers?country=GB", headers=viewer).json()
    assert [o["id"] for o in offers] == ["offer-a", "offer-b"]
    assert client.get("/api/voluum/offers?country=GBR", headers=viewer).status_code == 422
    with session_scope() as session:
        assert session.scalar(select(func.count(StoredFile.id)).where(StoredFile.kind == "voluum-input")) == 1


def test_cli_smart_clean_and_reg_search(seeded: None, db_url: str, tmp_path: Path,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    from phoneops.settings import reset_settings_cache
    from phoneops.voluum.cli import app

    monkeypatch.setenv("DATABASE_URL", db_url)
    reset_settings_cache()
    source = tmp_path / "list.csv"
    source.write_text("phone\n07400 123401\n07400 123402\n07400 123403\n")
    out = tmp_path / "clean.csv"
    result = CliRunner().invoke(app, ["smart-clean", "--offer", "Offer A", "--regs", "--file", str(source),
                                      "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert out.read_text().splitlines() == ["phone", "07400 123403"]
    regs = tmp_path / "regs.csv"
    result = CliRunner().invoke(app, ["reg-search", "--country", "GB", "--from", str(REG_DAY), "--to", str(REG_DAY),
                                      "--offer", "offer-a", "--out", str(regs)])
    assert result.exit_code == 0, result.output
    assert sorted(line.split(",")[0] for line in regs.read_text().splitlines()[1:]) == [phone(2), phone(6)]
    bad = CliRunner().invoke(app, ["reg-search", "--country", "GB", "--from", "x", "--to", str(REG_DAY)])
    assert bad.exit_code == 1 and "date like" in bad.output


# --- archive, restore, delete (the original's archive/delete of these files) -------------------------------


def _files(status: str) -> int:
    with session_scope() as session:
        return session.scalar(select(func.count(StoredFile.id)).where(
            StoredFile.kind.in_(("voluum-input", "voluum-result")), StoredFile.status == status)) or 0


def test_archive_restore_delete_by_owner_or_admin(seeded: None, client: Any, users: Any,
                                                  inline_jobs: list[str]) -> None:
    viewer, owner, admin = users.headers("viewer"), users.headers("operator"), users.headers("admin")
    other = {"Authorization": f"Bearer {users.create('operator', 'olga')}"}
    upload = client.post("/api/voluum/smart-clean/upload", headers=owner,
                         files={"file": ("mine.csv", b"07400 123401\n07400 123403\n", "text/csv")},
                         data={"offers": ["Offer A"]}).json()["id"]
    reg = client.post("/api/voluum/reg-search", headers=owner,
                      json={"country": "GB", "from": str(REG_DAY), "to": str(REG_DAY)}).json()["id"]
    listed = {r["id"] for r in client.get("/api/voluum/runs", headers=viewer).json()}
    assert listed == {upload, reg}
    assert _files("stored") == 3  # the upload and two results

    # who may: the owner or an admin; a viewer cannot call the route, another operator is refused by name
    assert client.post(f"/api/voluum/runs/{reg}/archive", headers=viewer).status_code == 403
    refused = client.post(f"/api/voluum/runs/{reg}/archive", headers=other)
    assert refused.status_code == 403 and "only the user who started this run" in refused.json()["error"]["message"]
    assert client.delete(f"/api/voluum/runs/{upload}", headers=other).status_code == 403
    assert {r["id"] for r in client.get("/api/voluum/runs", headers=viewer).json()} == {upload, reg}  # unchanged
    assert _files("stored") == 3

    archived = client.post(f"/api/voluum/runs/{reg}/archive", headers=owner)
    assert archived.status_code == 200 and archived.json()["id"] == reg
    assert [r["id"] for r in client.get("/api/voluum/runs", headers=viewer).json()] == [upload]
    assert [r["id"] for r in client.get("/api/voluum/runs?archived=true", headers=viewer).json()] == [reg]
    assert client.post(f"/api/voluum/runs/{reg}/archive", headers=owner).status_code == 409  # already
    assert client.get(f"/api/voluum/runs/{reg}/download", headers=owner).status_code == 200  # still there
    assert client.post(f"/api/voluum/runs/{reg}/restore", headers=admin).status_code == 200
    assert client.post(f"/api/voluum/runs/{reg}/restore", headers=admin).status_code == 409  # not archived
    assert {r["id"] for r in client.get("/api/voluum/runs", headers=viewer).json()} == {upload, reg}

    deleted = client.delete(f"/api/voluum/runs/{upload}", headers=owner)
    assert deleted.status_code == 200 and deleted.json() == {"id": upload, "status": "deleted", "files_removed": 2}
    assert _files("stored") == 1 and _files("deleted") == 2  # the uploaded list and its result left storage
    assert client.get(f"/api/voluum/runs/{upload}/download", headers=owner).status_code == 404
    assert client.delete(f"/api/voluum/runs/{upload}", headers=owner).status_code == 404
    assert client.post(f"/api/voluum/runs/{upload}/archive", headers=owner).status_code == 404
    assert [r["id"] for r in client.get("/api/voluum/runs", headers=viewer).json()] == [reg]
    assert client.delete(f"/api/voluum/runs/{reg}", headers=admin).json()["files_removed"] == 1
    assert client.get("/api/voluum/runs", headers=viewer).json() == []
    assert client.post("/api/voluum/runs/not-a-run/archive", headers=admin).status_code == 404
    with session_scope() as session:
        actions = session.scalars(select(AuditEvent.action).where(AuditEvent.action.like("voluum.run.%"))).all()
    assert sorted(actions) == ["voluum.run.archive", "voluum.run.delete", "voluum.run.delete", "voluum.run.restore"]


def test_a_running_run_is_refused(seeded: None, client: Any, users: Any) -> None:
    owner = users.headers("operator")
    queued = client.post("/api/voluum/reg-search", headers=owner,
                         json={"country": "GB", "from": str(REG_DAY), "to": str(REG_DAY)}).json()["id"]
    for call in (lambda: client.post(f"/api/voluum/runs/{queued}/archive", headers=owner),
                 lambda: client.delete(f"/api/voluum/runs/{queued}", headers=owner)):
        answer = call()
        assert answer.status_code == 409 and "cancel it or wait" in answer.json()["error"]["message"]
    assert [r["id"] for r in client.get("/api/voluum/runs", headers=owner).json()] == [queued]


def test_cli_lists_archives_restores_and_deletes(seeded: None, db_url: str, tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    from phoneops.settings import reset_settings_cache
    from phoneops.voluum.cli import app

    monkeypatch.setenv("DATABASE_URL", db_url)
    reset_settings_cache()
    runner = CliRunner()
    done = runner.invoke(app, ["reg-search", "--country", "GB", "--from", str(REG_DAY), "--to", str(REG_DAY)])
    assert done.exit_code == 0, done.output
    with session_scope() as session:
        from phoneops.voluum import runs

        job_id = runs.list_runs(session)[0].id
    listed = runner.invoke(app, ["runs", "list"])
    assert listed.exit_code == 0 and job_id in listed.output
    assert runner.invoke(app, ["runs", "archive", job_id]).exit_code == 0
    assert job_id not in runner.invoke(app, ["runs", "list"]).output
    assert job_id in runner.invoke(app, ["runs", "list", "--archived"]).output
    again = runner.invoke(app, ["runs", "archive", job_id])
    assert again.exit_code == 1 and "already archived" in again.output
    assert runner.invoke(app, ["runs", "restore", job_id]).exit_code == 0
    kept = runner.invoke(app, ["runs", "delete", job_id], input="n\n")
    assert kept.exit_code == 1 and _files("stored") == 1  # not confirmed: nothing deleted
    gone = runner.invoke(app, ["runs", "delete", job_id, "--yes"])
    assert gone.exit_code == 0 and "1 file removed" in gone.output
    assert _files("stored") == 0 and job_id not in runner.invoke(app, ["runs", "list"]).output
    missing = runner.invoke(app, ["runs", "delete", job_id, "--yes"])
    assert missing.exit_code == 1 and "no smart cleaning or REG search" in missing.output


@pytest.mark.browser
def test_archive_restore_delete_from_the_page(seeded: None, browser: Any, live_server: str, users: Any) -> None:
    shots = Path("/tmp/i13c")
    shots.mkdir(parents=True, exist_ok=True)
    users.create("operator", "otto")
    page = browser.new_page()
    page.on("dialog", lambda dialog: dialog.accept())  # the delete button asks first
    page.goto(live_server + "/login?next=/voluum/smart")
    page.fill("input[name=username]", "otto")
    page.fill("input[name=password]", "correct-horse-battery")
    page.click("button[type=submit]")
    page.wait_for_url("**/voluum/smart")
    page.fill("form[data-form=reg] input[name=country]", "GB")
    page.fill("form[data-form=reg] input[name=from]", str(REG_DAY))
    page.fill("form[data-form=reg] input[name=to]", str(REG_DAY))
    page.click("form[data-form=reg] button[type=submit]")
    page.wait_for_selector("tr[data-job-status=succeeded]", timeout=60_000)
    page.reload()
    page.screenshot(path=str(shots / "smart-runs.png"), full_page=True)
    job_id = page.get_attribute("tr[data-job-status=succeeded]", "data-job-id")
    page.click(f"tr[data-job-id='{job_id}'] [data-action=archive]")
    page.wait_for_load_state()
    assert "Run archived." in page.inner_text("main") and page.locator(f"tr[data-job-id='{job_id}']").count() == 0
    page.click("[data-link=archived-runs]")
    page.wait_for_url("**archived=true**")
    page.wait_for_selector(f"tr[data-job-id='{job_id}']", timeout=30_000)
    assert page.locator(f"tr[data-job-id='{job_id}']").count() == 1
    page.screenshot(path=str(shots / "smart-archived.png"), full_page=True)
    page.click(f"tr[data-job-id='{job_id}'] [data-action=restore]")
    page.wait_for_load_state()
    assert "Run restored." in page.inner_text("main") and page.locator(f"tr[data-job-id='{job_id}']").count() == 0
    page.goto(live_server + "/voluum/smart")
    page.click(f"tr[data-job-id='{job_id}'] [data-action=delete]")
    page.wait_for_load_state()
    assert "Run deleted (1 file removed)." in page.inner_text("main")
    assert page.locator(f"tr[data-job-id='{job_id}']").count() == 0
    assert _files("stored") == 0 and _files("deleted") == 1
