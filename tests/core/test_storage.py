from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import func, select

from phoneops.core.models import AuditEvent, StoredFile
from phoneops.core.storage import get_storage, safe_name


def test_upload_and_download(client: Any, users: Any, session: Any) -> None:
    headers = users.headers("operator")
    up = client.post("/api/files", files={"file": ("../../etc/passwd", b"a,b\n1,2\n", "text/csv")}, headers=headers)
    assert up.status_code == 201, up.text
    body = up.json()
    assert body["original_name"] == "passwd"
    assert body["size"] == 8
    path = get_storage().path_for(body["id"])
    assert path.read_bytes() == b"a,b\n1,2\n"
    assert body["id"] in str(path)
    down = client.get(f"/api/files/{body['id']}/download", headers=users.headers("operator"))
    assert down.status_code == 200
    assert down.content == b"a,b\n1,2\n"
    assert 'filename="passwd"' in down.headers["content-disposition"]
    assert session.scalar(select(func.count()).select_from(AuditEvent).where(AuditEvent.action == "file.download")) == 1


def test_upload_over_limit_is_413_and_stores_nothing(client: Any, users: Any, session: Any,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    from phoneops.settings import get_settings

    monkeypatch.setattr(type(get_settings()), "max_upload_bytes", property(lambda self: 1024))
    up = client.post("/api/files", files={"file": ("big.csv", b"x" * 5000, "text/csv")}, headers=users.headers("operator"))
    assert up.status_code == 413
    assert up.json()["error"]["code"] == "payload_too_large"
    assert session.scalar(select(func.count()).select_from(StoredFile)) == 0
    tmp = get_storage().root / "tmp"
    assert not any(tmp.iterdir())


def test_viewer_cannot_upload(client: Any, users: Any) -> None:
    up = client.post("/api/files", files={"file": ("a.csv", b"1", "text/csv")}, headers=users.headers("viewer"))
    assert up.status_code == 403


def test_unknown_file_is_404(client: Any, users: Any) -> None:
    assert client.get("/api/files/not-a-uuid/download", headers=users.headers("viewer")).status_code == 404


@pytest.mark.parametrize(("raw", "expected"), [
    ("..\\..\\win.ini", "win.ini"), ("a\x00b.csv", "a_b.csv"), ("", "file"), ("/", "file"),
    ('x"; y=.csv', "x_; y=.csv"),
])
def test_safe_name(raw: str, expected: str) -> None:
    assert safe_name(raw) == expected
