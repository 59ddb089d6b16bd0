"""The cleaning API: upload, run (202, 409 while running), stats, downloads, archive and delete, roles."""

from __future__ import annotations

from typing import Any

import pytest
from cleaning_kit import GB_1, SAMPLE, US_1, csv_bytes, read_csv


def _upload(client: Any, users: Any, data: bytes, name: str = "My List.csv", role: str = "operator",
            **form: str) -> Any:
    return client.post("/api/cleaning/files", headers=users.headers(role), files={"file": (name, data, "text/csv")},
                       data=form)


def test_upload_run_stats_and_downloads(client: Any, users: Any, lists: None, inline_jobs: list[str]) -> None:
    up = _upload(client, users, csv_bytes(SAMPLE), region="gb")
    assert up.status_code == 201, up.text
    body = up.json()
    assert (body["columns"], body["phone_column"], body["has_header"], body["region"]) == (
        ["name", "phone", "city"], 1, True, "GB")
    assert body["sample"][0] == ["ann", "07400 123456", "London"]
    started = client.post(f"/api/cleaning/files/{body['id']}/runs", headers=users.headers("operator"),
                          json={"filters": ["monitor", "used"]})
    assert started.status_code == 202, started.text
    run_id = started.json()["id"]
    run = client.get(f"/api/cleaning/runs/{run_id}", headers=users.headers("viewer")).json()
    assert run["status"] == "succeeded", run
    assert run["options"]["filters"] == ["optout", "blacklist", "monitor", "used"]
    stats = client.get(f"/api/cleaning/runs/{run_id}/stats", headers=users.headers("viewer")).json()
    assert stats["outcomes"] == {"kept": 3, "invalid": 1, "duplicate": 1, "blacklisted": 1, "monitored": 1,
                                 "already_used": 1}
    assert stats["countries"]["US"] == {"kept": 1}
    clean = client.get(f"/api/cleaning/runs/{run_id}/download/clean", headers=users.headers("operator"))
    assert clean.status_code == 200
    assert 'filename="clean_My List.csv"' in clean.headers["content-disposition"]
    assert read_csv(clean.content)[1:3] == [["ann", GB_1, "London"], ["bob", US_1, "San Francisco"]]
    rejected = client.get(f"/api/cleaning/runs/{run_id}/download/rejected", headers=users.headers("operator"))
    assert 'filename="rejected_My List.csv"' in rejected.headers["content-disposition"]
    assert [r[3] for r in read_csv(rejected.content)[1:]] == [
        "invalid", "duplicate", "blacklisted", "monitored", "already_used"]
    job = client.get(f"/api/jobs/{run['job_id']}", headers=users.headers("viewer")).json()
    assert (job["status"], job["progress_done"], job["progress_total"]) == ("succeeded", 8, 8)
    listed = client.get("/api/cleaning/files", headers=users.headers("viewer")).json()
    assert [f["status"] for f in listed] == ["done"]
    assert client.get(f"/api/cleaning/runs/{run_id}/download/clean", headers=users.headers("viewer")).status_code == 403
    names = [f["name"] for f in client.get("/api/cleaning/filters", headers=users.headers("viewer")).json()]
    assert names[:3] == ["optout", "blacklist", "monitor"] and "used" in names
    metrics = client.get("/metrics", headers=users.headers("viewer")).text
    assert 'phoneops_cleaning_runs{kind="clean",status="succeeded"} 1.0' in metrics
    assert 'phoneops_cleaning_files{purpose="clean",status="done"} 1.0' in metrics


def test_second_run_is_refused_while_one_runs(client: Any, users: Any, db_url: str) -> None:
    """Jobs are not run here (no worker): the first run stays queued, so the file stays running."""
    file_id = _upload(client, users, csv_bytes(SAMPLE)).json()["id"]
    first = client.post(f"/api/cleaning/files/{file_id}/runs", headers=users.headers("operator"), json={})
    assert first.status_code == 202
    second = client.post(f"/api/cleaning/files/{file_id}/runs", headers=users.headers("operator"), json={})
    assert second.status_code == 409
    assert second.json()["error"]["code"] == "run_in_progress"
    assert client.delete(f"/api/cleaning/files/{file_id}", headers=users.headers("operator")).status_code == 409
    # the job ends (cancelled by someone): the file is free again
    job_id = first.json()["job_id"]
    assert client.post(f"/api/jobs/{job_id}/cancel", headers=users.headers("operator")).status_code == 200
    third = client.post(f"/api/cleaning/files/{file_id}/runs", headers=users.headers("operator"), json={})
    assert third.status_code == 202, third.text


def test_the_guard_holds_across_sessions(db_url: str) -> None:
    """Two sessions (as two API processes would) race for the same file: one wins, one gets 409."""
    import pytest
    from cleaning_kit import upload

    from phoneops.cleaning import service
    from phoneops.core.db import session_factory
    from phoneops.core.errors import Conflict
    from phoneops.core.security import SYSTEM

    file_id = upload(csv_bytes(SAMPLE))
    first, second = session_factory()(), session_factory()()
    try:
        service.start_clean(first, SYSTEM, file_id)
        first.commit()
        with pytest.raises(Conflict):
            service.start_clean(second, SYSTEM, file_id)
        second.rollback()
    finally:
        first.close()
        second.close()


def test_archive_and_delete_remove_stored_files(client: Any, users: Any, inline_jobs: list[str]) -> None:
    from phoneops.core.storage import get_storage

    file_id = _upload(client, users, csv_bytes(SAMPLE)).json()["id"]
    run = client.post(f"/api/cleaning/files/{file_id}/runs", headers=users.headers("operator"), json={}).json()
    detail = client.get(f"/api/cleaning/files/{file_id}", headers=users.headers("viewer")).json()
    assert detail["status"] == "done" and detail["runs"][0]["id"] == run["id"]
    archived = client.post(f"/api/cleaning/files/{file_id}/archive", headers=users.headers("operator"))
    assert archived.json()["status"] == "archived"
    assert client.get("/api/cleaning/files", headers=users.headers("viewer")).json() == []
    assert len(client.get("/api/cleaning/files?archived=true", headers=users.headers("viewer")).json()) == 1
    assert client.post(f"/api/cleaning/files/{file_id}/runs", headers=users.headers("operator"),
                       json={}).status_code == 409
    run = client.get(f"/api/cleaning/runs/{run['id']}", headers=users.headers("viewer")).json()
    paths = [get_storage().path_for(i) for i in (run["output_file_id"], run["rejected_file_id"])]
    assert all(p.exists() for p in paths)
    deleted = client.delete(f"/api/cleaning/files/{file_id}", headers=users.headers("operator"))
    assert deleted.status_code == 200 and deleted.json()["status"] == "deleted"
    assert not any(p.exists() for p in paths)
    assert client.get(f"/api/cleaning/files/{file_id}", headers=users.headers("viewer")).status_code == 404
    from phoneops.cleaning.models import CleaningFile
    from phoneops.core.db import session_scope

    with session_scope() as session:
        assert session.get(CleaningFile, file_id).sample == []
    assert client.get(f"/api/cleaning/runs/{run['id']}/download/clean",
                      headers=users.headers("operator")).status_code == 404
    events = client.get("/api/audit?action=cleaning.delete", headers=users.headers("admin")).json()
    assert events[0]["detail"]["files_removed"] == 3


def test_roles(client: Any, users: Any, db_url: str) -> None:
    assert _upload(client, users, csv_bytes(SAMPLE), role="viewer").status_code == 403
    assert client.get("/api/cleaning/files").status_code == 401


def test_pages_render_and_show_errors(client: Any, users: Any, inline_jobs: list[str]) -> None:
    from support import login

    users.create("operator", "opal")
    csrf = login(client, "opal")
    for path, text in (("/cleaning", "Upload a list"), ("/cleaning?archived=true", "Archived lists"),
                       ("/cleaning/encryption", "Encryption files")):
        page = client.get(path)
        assert page.status_code == 200 and text in page.text, path
    bad = client.post("/cleaning/upload", data={"csrf_token": csrf, "purpose": "clean"},
                      files={"file": ("empty.csv", b"", "text/csv")})
    assert bad.status_code == 422 and "the file is empty" in bad.text
    sent = client.post("/cleaning/upload", data={"csrf_token": csrf, "purpose": "clean", "region": "GB"},
                       files={"file": ("ok.csv", csv_bytes(SAMPLE), "text/csv")}, follow_redirects=False)
    assert sent.status_code == 303
    location = sent.headers["location"]
    refused = client.post(location + "/run", data={"csrf_token": csrf, "phone_column": "7"})
    assert refused.status_code == 422 and "unknown column" in refused.text
    ran = client.post(location + "/run", data={"csrf_token": csrf, "phone_column": "2", "filters": "monitor"},
                      follow_redirects=False)
    assert ran.status_code == 303
    page = client.get(location)
    assert "rows kept" in page.text and "clean_ok.csv" not in page.text and "svg" in page.text
    assert "Kept numbers per country" in page.text
    dashboard = client.get("/")
    assert "Lists cleaned" in dashboard.text


def test_line_type_and_sms_filter_through_the_api(client: Any, users: Any, lists: None,
                                                  inline_jobs: list[str]) -> None:
    rows = [["name", "phone"], ["ann", "07400 123456"], ["bob", "020 7946 0000"], ["cat", US_1]]
    file_id = _upload(client, users, csv_bytes(rows), region="GB").json()["id"]
    bad = client.post(f"/api/cleaning/files/{file_id}/runs", headers=users.headers("operator"),
                      json={"sms_only": True, "sms_types": ["mobile", "landline"]})
    assert bad.status_code == 422 and "landline" in bad.text
    assert client.get(f"/api/cleaning/files/{file_id}", headers=users.headers("viewer")).json()["status"] != "running"
    started = client.post(f"/api/cleaning/files/{file_id}/runs", headers=users.headers("operator"),
                          json={"line_type": True, "sms_only": True, "sms_types": ["", " "]})  # empty: default set
    assert started.status_code == 202, started.text
    run = client.get(f"/api/cleaning/runs/{started.json()['id']}", headers=users.headers("viewer")).json()
    assert run["options"]["sms_types"] == ["fixed_line_or_mobile", "mobile"]
    clean = client.get(f"/api/cleaning/runs/{run['id']}/download/clean", headers=users.headers("operator"))
    assert read_csv(clean.content) == [["name", "phone", "line_type"], ["ann", GB_1, "mobile"],
                                       ["cat", US_1, "fixed_line_or_mobile"]]
    rejected = client.get(f"/api/cleaning/runs/{run['id']}/download/rejected", headers=users.headers("operator"))
    assert read_csv(rejected.content)[1] == ["bob", "020 7946 0000", "cannot_receive_sms", "fixed_line"]


def test_without_the_native_module_a_run_cleans_the_same_and_the_log_says_it_is_slower(
    client: Any, users: Any, lists: None, inline_jobs: list[str], logs: list[dict[str, Any]], monkeypatch: Any
) -> None:
    """An install that could not build the native blind-index module (no C compiler) gives the same files, and
    every run says in the log why it is slower."""
    from phoneops.numbers import crypto

    if crypto.blind_index_backend() != "native":
        pytest.skip("the native blind-index module was not built here")
    files = {}
    for backend in ("native", "python"):
        if backend == "python":
            monkeypatch.setattr(crypto, "_native", lambda: None)
        up = _upload(client, users, csv_bytes(SAMPLE), region="gb")
        started = client.post(f"/api/cleaning/files/{up.json()['id']}/runs", headers=users.headers("operator"),
                              json={"filters": ["monitor", "used"]})
        run_id = started.json()["id"]
        assert client.get(f"/api/cleaning/runs/{run_id}", headers=users.headers("viewer")).json()["status"] == (
            "succeeded")
        files[backend] = [client.get(f"/api/cleaning/runs/{run_id}/download/{kind}",
                                     headers=users.headers("operator")).content for kind in ("clean", "rejected")]
        warned = [e for e in logs if e["event"] == "cleaning.slow_blind_indexes"]
        assert [e["run_id"] for e in warned] == ([run_id] if backend == "python" else [])
    assert files["python"] == files["native"]
    assert read_csv(files["python"][0])[1] == ["ann", GB_1, "London"]
    assert "OpenSSL" in warned[0]["detail"] and warned[0]["log_level"] == "warning"
