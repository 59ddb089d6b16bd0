"""Scoped, expiring API tokens: what a reporting script's token may not do, and how tokens are made."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from typer.testing import CliRunner

from support import login


def _token(client: Any, headers: dict[str, str], **body: Any) -> Any:
    return client.post("/api/tokens", json={"name": "t", **body}, headers=headers)


def test_a_reporting_token_reads_but_cannot_spend(client: Any, users: Any) -> None:
    op = users.headers("operator")
    created = _token(client, op, name="dashboard", scopes=["read"], expires_in_days=30)
    assert created.status_code == 201, created.text
    assert created.json()["scopes"] == ["read"] and created.json()["expires_at"]
    report = {"Authorization": f"Bearer {created.json()['token']}"}
    assert client.get("/api/imei/orders", headers=report).status_code == 200
    order = client.post("/api/imei/orders", json={"service_id": "1739", "imei": "356938035643809"}, headers=report)
    assert order.status_code == 403
    error = order.json()["error"]
    assert error["code"] == "insufficient_scope" and "imei:spend" in error["message"]
    assert error["details"] == {"missing_scope": "imei:spend"}
    lookup = client.post("/api/hlr/lookups", json={}, headers=report)
    assert lookup.status_code == 403 and "hlr:spend" in lookup.json()["error"]["message"]
    # the same user's unscoped session/token keeps its role's powers
    assert client.post("/api/imei/orders", json={}, headers=op).status_code == 422


def test_scopes_never_exceed_the_role_and_bad_values_create_nothing(client: Any, users: Any) -> None:
    viewer = users.headers("viewer")
    before = len(client.get("/api/tokens", headers=viewer).json())
    beyond = _token(client, viewer, scopes=["read", "imei:spend"])
    assert beyond.status_code == 422 and "imei:spend" in beyond.json()["error"]["message"]
    unknown = _token(client, viewer, scopes=["everything"])
    assert unknown.status_code == 422 and "allowed: read, numbers:write" in unknown.json()["error"]["message"]
    assert _token(client, viewer, expires_in_days=0).status_code == 422
    assert len(client.get("/api/tokens", headers=viewer).json()) == before
    # by default a token gets what the role allows
    default = _token(client, viewer)
    assert default.status_code == 201 and default.json()["scopes"] == ["read"]


def test_a_token_cannot_mint_a_stronger_token(client: Any, users: Any) -> None:
    op = users.headers("operator")
    narrow = {"Authorization": f"Bearer {_token(client, op, scopes=['read']).json()['token']}"}
    stronger = _token(client, narrow, scopes=["read", "imei:spend"])
    assert stronger.status_code == 422
    implicit = _token(client, narrow)  # default scopes: cut to what the calling token holds
    assert implicit.status_code == 201 and implicit.json()["scopes"] == ["read"]


def test_an_expired_token_is_refused(client: Any, users: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from phoneops.core import security
    from phoneops.core.db import utcnow

    op = users.headers("operator")
    token = _token(client, op, scopes=["read"], expires_in_days=1).json()["token"]
    headers = {"Authorization": f"Bearer {token}"}
    assert client.get("/api/me", headers=headers).status_code == 200
    later = utcnow() + timedelta(days=1, minutes=1)
    monkeypatch.setattr(security, "utcnow", lambda: later)
    refused = client.get("/api/me", headers=headers)
    assert refused.status_code == 401 and "expired" in refused.json()["error"]["message"]


def test_cli_creates_and_lists_scoped_tokens(db_url: str, users: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from phoneops.cli import app
    from phoneops.settings import reset_settings_cache

    monkeypatch.setenv("DATABASE_URL", db_url)  # the CLI reads it from the environment, as in production
    reset_settings_cache()
    users.create("operator", "scripter")
    runner = CliRunner()
    made = runner.invoke(app, ["token", "create", "scripter", "--name", "nightly", "--scope", "read",
                               "--scope", "cleaning", "--expires-in-days", "7"])
    assert made.exit_code == 0, made.output
    assert "scopes read cleaning" in made.output and "expires" in made.output
    listed = runner.invoke(app, ["token", "list", "scripter"], env={"COLUMNS": "200"})
    assert listed.exit_code == 0, listed.output
    assert "nightly" in listed.output and "read cleaning" in listed.output and "active" in listed.output
    refused = runner.invoke(app, ["token", "create", "scripter", "--scope", "admin"])
    assert refused.exit_code != 0 and "cannot have admin" in refused.output


def test_tokens_page_creates_a_scoped_expiring_token_and_reports_bad_input(client: Any, users: Any) -> None:
    users.create("operator", "pat")
    csrf = login(client, "pat")
    bad = client.post("/account/tokens", data={"csrf_token": csrf, "name": "x", "expires_in_days": "soon"})
    assert bad.status_code == 422 and "whole number of days" in bad.text and "<form" in bad.text
    empty = client.post("/account/tokens", data={"csrf_token": csrf, "name": "dash", "scopes": ["read"],
                                                 "expires_in_days": ""})
    assert empty.status_code == 200 and "data-new-token" in empty.text
    made = client.post("/account/tokens", data={"csrf_token": csrf, "name": "spender",
                                                "scopes": ["read", "imei:spend"], "expires_in_days": "3"})
    assert made.status_code == 200
    page = client.get("/account/tokens").text
    assert "imei:spend" in page and "never" in page  # the scopes and the no-expiry token are listed
    assert 'value="admin"' not in page  # an operator is never offered the admin scope
