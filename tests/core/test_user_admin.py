"""User administration through the API, the pages and the CLI: roles, password reset and change,
disable/enable; sessions end at once, tokens on request, everything audited, the last admin kept."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from phoneops.cli import app as cli
from support import login

PW = "correct-horse-battery"


def _browser(app: Any) -> TestClient:
    return TestClient(app, base_url="http://127.0.0.1")


def _logged_in(browser: TestClient) -> bool:
    return browser.get("/", follow_redirects=False).status_code == 200


def _actions(client: Any, admin: dict[str, str], action: str) -> list[dict[str, Any]]:
    return list(client.get(f"/api/audit?action={action}", headers=admin).json())


def test_api_role_reset_disable_end_sessions_and_are_audited(client: Any, app: Any, users: Any) -> None:
    admin = users.headers("admin")
    token = {"Authorization": f"Bearer {users.create('viewer', 'vera')}"}
    with _browser(app) as browser:
        login(browser, "vera")
        assert client.get("/api/me", headers=token).json()["role"] == "viewer"

        promoted = client.patch("/api/users/vera", json={"role": "operator"}, headers=admin)
        assert promoted.status_code == 200 and promoted.json()["role"] == "operator"
        assert client.get("/api/me", headers=token).json()["role"] == "operator"  # at once
        assert client.patch("/api/users/vera", json={"role": "root"}, headers=admin).status_code == 422

        reset = client.post("/api/users/vera/password", json={"password": "another-long-one"}, headers=admin)
        assert reset.status_code == 200
        assert not _logged_in(browser)  # the old session ended at once
        assert client.get("/api/me", headers=token).status_code == 200  # tokens kept unless asked
        client.post("/api/users/vera/password", json={"password": "a-third-long-one", "revoke_tokens": True},
                    headers=admin)
        assert client.get("/api/me", headers=token).status_code == 401

        login(browser, "vera", "a-third-long-one")
        assert _logged_in(browser)
        made = client.post("/api/tokens", headers=admin, json={"username": "vera", "name": "kept"})
        kept = {"Authorization": f"Bearer {made.json()['token']}"}
        disabled = client.patch("/api/users/vera", json={"is_active": False, "revoke_tokens": False}, headers=admin)
        assert disabled.status_code == 200 and disabled.json()["is_active"] is False
        assert not _logged_in(browser)
        assert client.get("/api/me", headers=kept).status_code == 401  # a disabled user's token is refused
        client.patch("/api/users/vera", json={"is_active": True}, headers=admin)
        assert client.get("/api/me", headers=kept).status_code == 200  # kept: it works again
    assert [e["detail"]["to"] for e in _actions(client, admin, "user.role")] == ["operator"]
    assert len(_actions(client, admin, "user.password")) == 2
    assert _actions(client, admin, "user.disable") and _actions(client, admin, "user.enable")


def test_the_last_admin_cannot_be_demoted_or_disabled(client: Any, users: Any) -> None:
    admin = users.headers("admin")
    assert client.patch("/api/users/admin-user", json={"role": "viewer"}, headers=admin).status_code == 409
    assert client.post("/api/users/admin-user/disable", headers=admin).status_code == 409
    assert client.get("/api/me", headers=admin).json()["role"] == "admin"
    users.create("admin", "second-admin")
    assert client.patch("/api/users/admin-user", json={"role": "operator"}, headers=admin).status_code == 200


def test_own_password_change(client: Any, app: Any, users: Any) -> None:
    token = {"Authorization": f"Bearer {users.create('operator', 'ola')}"}
    with _browser(app) as other_browser:
        login(other_browser, "ola")
        wrong = client.post("/api/me/password", headers=token,
                            json={"current_password": "not-it-at-all", "new_password": "brand-new-password"})
        assert wrong.status_code == 422 and _logged_in(other_browser)  # nothing changed
        csrf = login(client, "ola")
        page = client.get("/account/password")
        assert page.status_code == 200 and "revoke my API tokens" in page.text
        differ = client.post("/account/password", data={"csrf_token": csrf, "current_password": PW,
                                                        "new_password": "brand-new-password",
                                                        "repeat_password": "brand-new-passwordX"})
        assert differ.status_code == 422 and "differ" in differ.text
        changed = client.post("/account/password", data={"csrf_token": csrf, "current_password": PW,
                                                          "new_password": "brand-new-password",
                                                          "repeat_password": "brand-new-password",
                                                          "revoke_tokens": "on"}, follow_redirects=False)
        assert changed.status_code == 303
        assert _logged_in(client)  # this browser got a new session
        assert not _logged_in(other_browser)  # every other one ended
        assert client.get("/api/me", headers=token).status_code == 401  # revoked as asked
        login(other_browser, "ola", "brand-new-password")


def test_admin_page_changes_role_resets_and_toggles(client: Any, users: Any) -> None:
    users.create("admin", "ada")
    users.create("viewer", "vic")
    csrf = login(client, "ada")
    page = client.get("/admin/users")
    assert page.status_code == 200 and 'action="/admin/users/vic/role"' in page.text
    assert client.post("/admin/users/vic/role", data={"csrf_token": csrf, "role": "operator"},
                       follow_redirects=False).status_code == 303
    short = client.post("/admin/users/vic/password", data={"csrf_token": csrf, "password": "short"})
    assert short.status_code == 422 and "at least 10" in short.text  # the page again, with the message
    assert client.post("/admin/users/vic/password", data={"csrf_token": csrf, "password": "a-long-new-one"},
                       follow_redirects=False).status_code == 303
    assert client.post("/admin/users/vic/toggle", data={"csrf_token": csrf},
                       follow_redirects=False).status_code == 303
    listed = {u["username"]: u for u in client.get("/api/users", headers=users.headers("admin")).json()}
    assert listed["vic"]["role"] == "operator" and listed["vic"]["is_active"] is False


@pytest.fixture
def cli_env(db_url: str, monkeypatch: pytest.MonkeyPatch) -> Any:
    from phoneops.settings import reset_settings_cache

    monkeypatch.setenv("DATABASE_URL", db_url)
    reset_settings_cache()
    yield
    reset_settings_cache()


def test_cli_role_password_enable(cli_env: Any, client: Any, users: Any) -> None:
    runner = CliRunner()
    users.create("viewer", "cora")
    assert runner.invoke(cli, ["user", "role", "cora", "operator"]).exit_code == 0
    bad = runner.invoke(cli, ["user", "role", "cora", "root"])
    assert bad.exit_code == 1 and "role must be one of" in bad.output
    done = runner.invoke(cli, ["user", "password", "cora", "--password", "cli-set-password"])
    assert done.exit_code == 0, done.output
    assert runner.invoke(cli, ["user", "password", "cora", "--password", "short"]).exit_code == 1
    assert runner.invoke(cli, ["user", "disable", "cora", "--keep-tokens"]).exit_code == 0
    assert runner.invoke(cli, ["user", "enable", "cora"]).exit_code == 0
    login(client, "cora", "cli-set-password")
    assert client.get("/api/me").json()["role"] == "operator"
    listed = runner.invoke(cli, ["user", "list"]).output
    assert "cora" in listed and "operator" in listed
