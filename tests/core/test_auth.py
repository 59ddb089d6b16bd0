from __future__ import annotations

from typing import Any

from sqlalchemy import func, select

from phoneops.core.models import AuditEvent, User
from support import login


def test_login_page_and_dashboard(client: Any, users: Any) -> None:
    users.create("viewer", "vera")
    assert client.get("/", follow_redirects=False).headers["location"].startswith("/login")
    login(client, "vera")
    page = client.get("/")
    assert page.status_code == 200
    assert "Dashboard" in page.text and "vera" in page.text
    cookie = client.cookies.get("phoneops_session")
    assert cookie


def test_session_cookie_flags(client: Any, users: Any) -> None:
    users.create("viewer", "vera")
    response = client.post("/login", data={"username": "vera", "password": "correct-horse-battery"},
                           follow_redirects=False)
    header = response.headers["set-cookie"].lower()
    assert "httponly" in header and "samesite=lax" in header


def test_wrong_password_and_throttling(client: Any, users: Any) -> None:
    users.create("viewer", "vera")
    for _ in range(5):
        bad = client.post("/login", data={"username": "vera", "password": "nope-nope-nope"})
        assert bad.status_code == 401
        assert "invalid username or password" in bad.text
    locked = client.post("/login", data={"username": "vera", "password": "correct-horse-battery"})
    assert locked.status_code == 429


def test_open_redirect_refused(client: Any, users: Any) -> None:
    users.create("viewer", "vera")
    response = client.post(
        "/login", data={"username": "vera", "password": "correct-horse-battery", "next": "https://evil.example/"},
        follow_redirects=False,
    )
    assert response.headers["location"] == "/"


def test_forms_need_csrf(client: Any, users: Any, session: Any) -> None:
    users.create("admin", "ada")
    csrf = login(client, "ada")
    refused = client.post("/admin/users", data={"username": "bob", "password": "0123456789ab", "role": "viewer"})
    assert refused.status_code == 403
    assert session.scalar(select(func.count()).select_from(User).where(User.username == "bob")) == 0
    ok = client.post("/admin/users", data={"username": "bob", "password": "0123456789ab", "role": "viewer",
                                           "csrf_token": csrf}, follow_redirects=False)
    assert ok.status_code == 303
    assert session.scalar(select(func.count()).select_from(User).where(User.username == "bob")) == 1


def test_cookie_api_calls_need_csrf_header(client: Any, users: Any) -> None:
    users.create("operator", "ola")
    csrf = login(client, "ola")
    assert client.post("/api/jobs/sample", json={"steps": 1}).status_code == 403
    assert client.post("/api/jobs/sample", json={"steps": 1}, headers={"X-CSRF-Token": csrf}).status_code == 202


def test_token_lifecycle(client: Any, users: Any) -> None:
    headers = users.headers("operator")
    created = client.post("/api/tokens", json={"name": "ci"}, headers=headers)
    assert created.status_code == 201
    token = created.json()["token"]
    assert token.startswith("po_")
    mine = {"Authorization": f"Bearer {token}"}
    assert client.get("/api/me", headers=mine).status_code == 200
    listed = client.get("/api/tokens", headers=headers).json()
    assert all("token" not in t for t in listed)
    assert client.delete(f"/api/tokens/{created.json()['id']}", headers=headers).status_code == 200
    assert client.get("/api/me", headers=mine).status_code == 401


def test_roles(client: Any, users: Any, session: Any) -> None:
    viewer, operator, admin = users.headers("viewer"), users.headers("operator"), users.headers("admin")
    body = {"username": "newbie", "password": "0123456789ab", "role": "viewer"}
    assert client.post("/api/users", json=body, headers=viewer).status_code == 403
    assert client.post("/api/users", json=body, headers=operator).status_code == 403
    assert client.post("/api/jobs/sample", json={"steps": 1}, headers=viewer).status_code == 403
    assert client.post("/api/jobs/sample", json={"steps": 1}, headers=operator).status_code == 202
    assert client.get("/api/users", headers=operator).status_code == 403
    created = client.post("/api/users", json=body, headers=admin)
    assert created.status_code == 201
    assert session.scalar(select(func.count()).select_from(AuditEvent).where(AuditEvent.action == "user.create")) >= 1


def test_disabled_user_loses_tokens_and_sessions(client: Any, users: Any) -> None:
    headers = users.headers("viewer")
    admin = users.headers("admin")
    assert client.post("/api/users/viewer-user/disable", headers=admin).status_code == 200
    assert client.get("/api/me", headers=headers).status_code == 401


def test_bad_input_changes_nothing(client: Any, users: Any, session: Any) -> None:
    admin = users.headers("admin")
    before = session.scalar(select(func.count()).select_from(User))
    short = client.post("/api/users", json={"username": "x y", "password": "0123456789ab"}, headers=admin)
    assert short.status_code == 422
    assert short.json()["error"]["code"] == "validation_error"
    dupe = client.post("/api/users", json={"username": "admin-user", "password": "0123456789ab"}, headers=admin)
    assert dupe.status_code == 409
    assert session.scalar(select(func.count()).select_from(User)) == before
