"""Stored files by kind: raw uploads and produced lists are for their owner or operators, not every viewer."""

from __future__ import annotations

from typing import Any

from security_kit import assert_error_shape
from sqlalchemy import func, select

from phoneops.core.models import AuditEvent

LIST = b"phone,reason,source\n+447911123456,complaint,test\n"


def _downloads(session: Any) -> int:
    session.expire_all()
    return int(session.scalar(select(func.count()).select_from(AuditEvent).where(AuditEvent.action == "file.download")))


def test_raw_uploads_are_for_the_owner_and_operators(client: Any, users: Any, session: Any) -> None:
    owner, viewer, admin = users.headers("operator"), users.headers("viewer"), users.headers("admin")
    other_operator = {"Authorization": "Bearer " + users.create("operator", "second-operator")}
    uploaded = client.post("/api/files", files={"file": ("list.csv", LIST, "text/csv")}, headers=owner).json()
    url = f"/api/files/{uploaded['id']}/download"

    refused = client.get(url, headers=viewer)
    assert refused.status_code == 403
    assert "owner" in assert_error_shape(refused)["message"]
    page = client.get(f"/files/{uploaded['id']}/download", headers={**viewer, "Accept": "text/html"})
    assert page.status_code == 403 and "+447911123456" not in page.text
    assert uploaded["id"] not in {f["id"] for f in client.get("/api/files", headers=viewer).json()}
    assert _downloads(session) == 0

    for headers in (owner, other_operator, admin):
        response = client.get(url, headers=headers)
        assert response.status_code == 200 and response.content == LIST
    assert client.get(f"/files/{uploaded['id']}/download", headers=owner).content == LIST
    assert uploaded["id"] in {f["id"] for f in client.get("/api/files", headers=owner).json()}
    assert _downloads(session) == 4


def test_import_results_hold_plaintext_numbers(client: Any, users: Any, inline_jobs: list[str]) -> None:
    operator, viewer = users.headers("operator"), users.headers("viewer")
    imported = client.post("/api/numbers/imports", data={"target": "blacklist"}, headers=operator,
                           files={"file": ("list.csv", LIST, "text/csv")})
    assert imported.status_code == 202, imported.text
    url = f"/api/numbers/imports/{imported.json()['id']}/result"
    assert client.get(url, headers=viewer).status_code == 403
    result = client.get(url, headers=operator)
    assert result.status_code == 200 and "+447911123456" in result.text
    listed = client.get("/api/numbers/imports", headers=viewer)
    assert listed.status_code == 200  # the imports themselves stay visible


def test_plaintext_exports_are_for_admins_even_through_the_generic_route(
    client: Any, users: Any, inline_jobs: list[str]
) -> None:
    operator, admin = users.headers("operator"), users.headers("admin")
    client.post("/api/numbers/status", json={"number": "+447911123456", "status": "blacklist", "reason": "x"},
                headers=admin)
    by_admin = client.post("/api/numbers/exports", json={"status": "blacklist", "plaintext": True}, headers=admin)
    assert by_admin.status_code == 202, by_admin.text
    file_id = client.get(f"/api/jobs/{by_admin.json()['id']}", headers=admin).json()["result"]["file_id"]
    assert client.get(f"/api/files/{file_id}/download", headers=operator).status_code == 403
    assert "+447911123456" in client.get(f"/api/files/{file_id}/download", headers=admin).text
    by_operator = client.post("/api/numbers/exports", json={"status": "blacklist"}, headers=operator)
    own = client.get(f"/api/jobs/{by_operator.json()['id']}", headers=operator).json()["result"]["file_id"]
    masked = client.get(f"/api/files/{own}/download", headers=operator)  # its owner
    assert masked.status_code == 200 and "+447911123456" not in masked.text


def test_files_without_numbers_stay_open_to_viewers(client: Any, users: Any, session: Any) -> None:
    from phoneops.core.router import FILE_ROLES
    from phoneops.core.security import SYSTEM
    from phoneops.core.storage import get_storage

    row = get_storage().save_bytes(session, SYSTEM, b"Campaign ID,Price\n1,2.00\n", kind="broadcast_history",
                                   original_name="history.csv")
    session.commit()
    assert FILE_ROLES["broadcast_history"].value == "viewer"
    assert client.get(f"/api/files/{row.id}/download", headers=users.headers("viewer")).status_code == 200
