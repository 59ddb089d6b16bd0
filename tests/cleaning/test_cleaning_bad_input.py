"""Bad input gives a clear error on that file; nothing else changes; the file (or the upload) can be retried."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest
from cleaning_kit import SAMPLE, csv_bytes


def _upload(client: Any, users: Any, data: bytes, name: str = "bad.csv", **form: str) -> Any:
    return client.post("/api/cleaning/files", headers=users.headers("operator"),
                       files={"file": (name, data, "text/csv")}, data=form)


def _counts(client: Any, users: Any) -> tuple[int, int]:
    from sqlalchemy import func, select

    from phoneops.core.db import session_scope
    from phoneops.core.models import StoredFile

    files = client.get("/api/cleaning/files", headers=users.headers("viewer")).json()
    with session_scope() as session:
        stored = session.scalar(select(func.count(StoredFile.id))) or 0
    return len(files), stored


def _stored_on_disk() -> int:
    from phoneops.core.storage import get_storage

    root = get_storage().root
    return sum(1 for p in root.rglob("*") if p.is_file() and p.parent.name != "tmp") if root.exists() else 0


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "the file is empty"),
        (b"\n\n  \n", "the file is empty"),
        (b"name,phone,city\n", "header but no data rows"),
        (bytes(range(256)) * 40, "NUL bytes, so it is not a text table"),
        (b"PK\x03\x04" + b"\x00junk" * 100, "spreadsheet cannot be opened"),
        (b"name,phone\nann,07400123456\nbob,07825123456,extra,cells\n", "ragged"),
    ],
    ids=["empty", "blank-lines", "header-only", "binary", "broken-xlsx", "ragged-early"],
)
def test_unreadable_uploads_are_refused_and_leave_nothing(
    client: Any, users: Any, db_url: str, data: bytes, message: str
) -> None:
    before, on_disk = _counts(client, users), _stored_on_disk()
    response = _upload(client, users, data)
    assert response.status_code == 422, response.text
    assert message in response.json()["error"]["message"]
    assert response.json()["error"]["message"].startswith("bad.csv: ")
    assert _counts(client, users) == before
    assert _stored_on_disk() == on_disk
    assert _upload(client, users, csv_bytes(SAMPLE)).status_code == 201  # a good upload goes through


def test_unknown_column_and_region(client: Any, users: Any, db_url: str, inline_jobs: list[str]) -> None:
    assert _upload(client, users, csv_bytes(SAMPLE), phone_column="mobile").status_code == 422
    wrong_region = _upload(client, users, csv_bytes(SAMPLE), region="XX")
    assert wrong_region.status_code == 422
    assert wrong_region.json()["error"]["code"] == "invalid_region"
    file_id = _upload(client, users, csv_bytes(SAMPLE)).json()["id"]
    for body, code in (({"phone_column": "mobile"}, "unknown_column"), ({"phone_column": 9}, "unknown_column"),
                       ({"region": "ZZZ"}, "invalid_region"), ({"filters": ["nope"]}, "unknown_filter")):
        refused = client.post(f"/api/cleaning/files/{file_id}/runs", headers=users.headers("operator"), json=body)
        assert refused.status_code == 422, body
        assert refused.json()["error"]["code"] == code
        assert "phone" in refused.json()["error"]["message"] or code != "unknown_column"
    detail = client.get(f"/api/cleaning/files/{file_id}", headers=users.headers("viewer")).json()
    assert detail["status"] == "ready" and detail["runs"] == []
    ok = client.post(f"/api/cleaning/files/{file_id}/runs", headers=users.headers("operator"),
                     json={"phone_column": "PHONE", "region": "gb"})
    assert ok.status_code == 202
    assert client.get(f"/api/cleaning/runs/{ok.json()['id']}", headers=users.headers("viewer")).json()["status"] \
        == "succeeded"


def test_phone_column_not_detected_must_be_chosen(client: Any, users: Any, db_url: str) -> None:
    up = _upload(client, users, b"a,b\nx,y\nz,w\n")
    assert up.status_code == 201 and up.json()["phone_column"] is None
    refused = client.post(f"/api/cleaning/files/{up.json()['id']}/runs", headers=users.headers("operator"), json={})
    assert refused.status_code == 422
    assert "choose the phone column" in refused.json()["error"]["message"]


def test_ragged_row_late_in_the_file_fails_the_run_with_its_line(
    client: Any, users: Any, db_url: str, inline_jobs: list[str]
) -> None:
    rows = [["name", "phone"]] + [[f"n{i}", f"+1415555{i:04d}"] for i in range(400)]
    data = csv_bytes(rows) + b"late,+14155550999,extra\n"
    file_id = _upload(client, users, data).json()["id"]
    run = client.post(f"/api/cleaning/files/{file_id}/runs", headers=users.headers("operator"), json={}).json()
    run = client.get(f"/api/cleaning/runs/{run['id']}", headers=users.headers("viewer")).json()
    assert run["status"] == "failed"
    assert "line 402 has 3 cells" in run["error"]
    assert run["output_file_id"] is None and run["rejected_file_id"] is None
    detail = client.get(f"/api/cleaning/files/{file_id}", headers=users.headers("viewer")).json()
    assert detail["status"] == "failed" and "line 402" in detail["error"]
    retry = client.post(f"/api/cleaning/files/{file_id}/runs", headers=users.headers("operator"), json={})
    assert retry.status_code == 202  # the file can be run again (it fails again the same clear way)


@pytest.fixture
def small_limit(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    from phoneops.settings import reset_settings_cache

    monkeypatch.setenv("MAX_UPLOAD_MB", "1")
    reset_settings_cache()
    yield
    monkeypatch.delenv("MAX_UPLOAD_MB")
    reset_settings_cache()


def test_file_over_the_size_limit_is_413(client: Any, users: Any, db_url: str, small_limit: None) -> None:
    before, on_disk = _counts(client, users), _stored_on_disk()
    big = b"phone\n" + b"+14155552671\n" * 90_000
    assert len(big) > 1024 * 1024
    response = _upload(client, users, big)
    assert response.status_code == 413
    assert "upload limit of 1 MB" in response.json()["error"]["message"]
    assert _counts(client, users) == before
    assert _stored_on_disk() == on_disk
    assert os.environ["MAX_UPLOAD_MB"] == "1"


def test_one_pipe_or_comma_in_a_single_column_list_does_not_refuse_it(
    client: Any, users: Any, db_url: str, inline_jobs: list[str]
) -> None:
    """A `|` (or `,`) in one value of a one-column list is part of that value, not a delimiter that makes every
    other row ragged (issue 13)."""
    data = b"phone\n07400 123456\n07825 123456\ncall after 6 | 07956 123456\n+14155552671\n+33 6 12 34 56 78\n"
    up = _upload(client, users, data, "single.csv")
    assert up.status_code == 201, up.text
    assert (up.json()["columns"], up.json()["has_header"]) == (["phone"], True)
    run = client.post(f"/api/cleaning/files/{up.json()['id']}/runs", headers=users.headers("operator"), json={})
    assert run.status_code == 202, run.text
    done = client.get(f"/api/cleaning/runs/{run.json()['id']}", headers=users.headers("viewer")).json()
    assert done["status"] == "succeeded" and done["stats"]["rows"] == 5, done
    with_comma = _upload(client, users, b"07400 123456\n07825 123456\n07956 123456, mobile\n", "comma.csv")
    assert with_comma.status_code == 201 and with_comma.json()["columns"] == ["column_1"], with_comma.text
    # a real pipe-separated table is still read as one
    table = _upload(client, users, b"name|phone\nann|07400 123456\nbob|07825 123456\n", "pipes.csv")
    assert table.status_code == 201 and table.json()["columns"] == ["name", "phone"]
