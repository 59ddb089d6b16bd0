from __future__ import annotations

from collections.abc import Iterator

import pytest
from typer.testing import CliRunner

from phoneops.cli import app

runner = CliRunner()


@pytest.fixture(autouse=True)
def cli_database(db_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The CLI reads DATABASE_URL from the environment like in production."""
    from phoneops.settings import reset_settings_cache

    monkeypatch.setenv("DATABASE_URL", db_url)
    reset_settings_cache()
    yield
    reset_settings_cache()


def test_user_and_token_commands(db_url: str) -> None:
    created = runner.invoke(app, ["user", "create", "carol", "--role", "operator", "--password", "long-enough-pw"])
    assert created.exit_code == 0, created.output
    assert "carol" in created.output
    dupe = runner.invoke(app, ["user", "create", "carol", "--password", "long-enough-pw"])
    assert dupe.exit_code == 1
    assert "already exists" in dupe.output
    listed = runner.invoke(app, ["user", "list"])
    assert "carol" in listed.output
    assert "operator" in listed.output
    token = runner.invoke(app, ["token", "create", "carol", "--name", "ci"])
    assert token.exit_code == 0
    assert "po_" in token.output
    revoked = runner.invoke(app, ["token", "revoke", "1"])
    assert revoked.exit_code == 0
    missing = runner.invoke(app, ["token", "revoke", "999"])
    assert missing.exit_code == 1
    disabled = runner.invoke(app, ["user", "disable", "carol"])
    assert disabled.exit_code == 0
    assert "no" in runner.invoke(app, ["user", "list"]).output


def test_bad_role_is_refused(db_url: str) -> None:
    result = runner.invoke(app, ["user", "create", "dave", "--role", "root", "--password", "long-enough-pw"])
    assert result.exit_code == 1
    assert "role must be one of" in result.output
