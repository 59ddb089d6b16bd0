from __future__ import annotations

from typing import Any

from sqlalchemy import func, select

from phoneops.core.models import AuditEvent, User
from support import login, login_form


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
    response = client.post("/login", data={"username": "vera", "password": "correct-horse-battery",
                                           **login_form(client)}, follow_redirects=False)
    header = response.headers["set-cookie"].lower()
    assert "httponly" in header and "samesite=lax" in header


def test_login_form_needs_its_csrf_token(client: Any, users: Any) -> None:
    users.create("viewer", "vera")
    good = {"username": "vera", "password": "correct-horse-battery"}
    forged = client.post("/login", data=good, follow_redirects=False)  # a page of another site posting the form
    assert forged.status_code == 403 and "phoneops_session" not in forged.headers.get("set-cookie", "")
    form = login_form(client)
    client.cookies.delete("phoneops_login_csrf")  # the token without its cookie (another browser) is refused too
    assert client.post("/login", data={**good, **form}, follow_redirects=False).status_code == 403
    assert client.post("/login", data={**good, **login_form(client)}, follow_redirects=False).status_code == 303


def test_empty_login_fields_re_render_the_form(client: Any) -> None:
    response = client.post("/login", data={"username": "", "password": "", **login_form(client)})
    assert response.status_code == 422 and "Enter your user name and password" in response.text


def _other_address(app: Any) -> Any:
    from fastapi.testclient import TestClient

    return TestClient(app, base_url="http://127.0.0.1", client=("203.0.113.9", 40000))


def test_wrong_password_slows_that_address_not_the_owner(client: Any, app: Any, users: Any) -> None:
    users.create("viewer", "vera")
    form = login_form(client)
    for _ in range(5):
        bad = client.post("/login", data={"username": "vera", "password": "nope-nope-nope", **form})
        assert bad.status_code == 401 and "invalid username or password" in bad.text
    slowed = client.post("/login", data={"username": "vera", "password": "correct-horse-battery", **form})
    assert slowed.status_code == 429 and int(slowed.headers["retry-after"]) >= 1
    with _other_address(app) as owner:  # the owner, from their own address, is not locked out
        ok = owner.post("/login", data={"username": "vera", "password": "correct-horse-battery",
                                        **login_form(owner)}, follow_redirects=False)
        assert ok.status_code == 303


def test_one_address_guessing_many_names_is_limited(client: Any, app: Any, users: Any,
                                                    monkeypatch: Any) -> None:
    monkeypatch.setenv("LOGIN_ADDRESS_MAX_FAILURES", "6")
    from phoneops.settings import reset_settings_cache

    reset_settings_cache()
    users.create("viewer", "vera")
    form = login_form(client)
    statuses = [client.post("/login", data={"username": f"name{n}", "password": "guess-guess-1", **form}).status_code
                for n in range(8)]
    assert statuses[:6] == [401] * 6 and statuses[6:] == [429, 429]
    with _other_address(app) as owner:
        ok = owner.post("/login", data={"username": "vera", "password": "correct-horse-battery",
                                        **login_form(owner)}, follow_redirects=False)
        assert ok.status_code == 303
    reset_settings_cache()


def test_unknown_names_cost_the_same_work(client: Any, users: Any, monkeypatch: Any) -> None:
    """No timing oracle: a password hash is verified for unknown, disabled and known names alike."""
    from phoneops.core import security

    users.create("viewer", "vera")
    calls: list[str] = []
    real = security.verify_password
    monkeypatch.setattr(security, "verify_password", lambda h, p: calls.append(h[:9]) or real(h, p))
    form = login_form(client)
    for name in ("vera", "nobody-here", "vera"):
        assert client.post("/login", data={"username": name, "password": "wrong-wrong-1", **form}).status_code == 401
    assert len(calls) == 3 and all(c.startswith("$argon2") for c in calls)


def test_passwords_are_hashed_with_the_products_argon2id_cost(
    client: Any, users: Any, product_password_hasher: Any
) -> None:
    """The suite hashes its users' passwords at argon2's cheapest cost (tests/conftest.py); the product's own
    hasher, used here, makes RFC 9106 low-memory argon2id hashes, and logins verify them."""
    from phoneops.core.db import session_scope

    users.create("viewer", "vera")
    with session_scope() as s:
        stored = s.scalar(select(User.password_hash).where(User.username == "vera"))
    assert stored is not None and stored.startswith("$argon2id$v=19$m=65536,t=3,p=4$"), stored
    assert not product_password_hasher.check_needs_rehash(stored)
    login(client, "vera")
    form = login_form(client)
    for name in ("vera", "nobody-here"):
        assert client.post("/login", data={"username": name, "password": "wrong-wrong-1", **form}).status_code == 401


def test_logout_ends_the_session_server_side(client: Any, users: Any) -> None:
    users.create("viewer", "vera")
    csrf = login(client, "vera")
    kept = client.cookies.get("phoneops_session")
    assert client.post("/logout", data={"csrf_token": csrf}, follow_redirects=False).status_code == 303
    client.cookies.set("phoneops_session", kept)  # someone kept a copy of the cookie
    again = client.get("/", follow_redirects=False)
    assert again.status_code == 303 and again.headers["location"].startswith("/login")


def test_open_redirect_refused(client: Any, users: Any) -> None:
    users.create("viewer", "vera")
    response = client.post(
        "/login", data={"username": "vera", "password": "correct-horse-battery", "next": "https://evil.example/",
                        **login_form(client)},
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
