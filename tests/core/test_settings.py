from __future__ import annotations

import re
from pathlib import Path

import pytest

from phoneops.settings import Settings, SettingsError, load_settings

ROOT = Path(__file__).resolve().parents[2]


def test_missing_variable_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SESSION_SECRET")
    with pytest.raises(SettingsError, match="SESSION_SECRET"):
        load_settings()


def test_malformed_key_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AES_KEYS", "k1:not-a-key")
    with pytest.raises(SettingsError, match=r"AES_KEYS.*32 bytes"):
        load_settings()
    monkeypatch.setenv("AES_KEYS", "no-colon")
    with pytest.raises(SettingsError, match="AES_KEYS"):
        load_settings()


def test_bad_database_url_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", "mysql://x")
    with pytest.raises(SettingsError, match="DATABASE_URL"):
        load_settings()


def test_lists_and_empty_values(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VOLUUM_TRAFFIC_SOURCE_IDS", "abc, def")
    monkeypatch.setenv("ONGAGE_COUNTRIES", "gb,ie")
    monkeypatch.setenv("GSM_FUSION_API_KEY", "")
    settings = load_settings()
    assert settings.voluum_traffic_source_ids == ["abc", "def"]
    assert settings.ongage_countries == ["GB", "IE"]
    assert settings.providers()["gsm_fusion"] is False
    assert settings.key_ring()[0][0] == "k2"


def test_every_setting_is_documented_in_env_example() -> None:
    documented = set(re.findall(r"^([A-Z][A-Z0-9_]+)=", (ROOT / ".env.example").read_text(), re.M))
    names = {field.alias for field in Settings.model_fields.values()}
    missing = names - documented
    assert not missing, f"not in .env.example: {sorted(missing)}"
    assert "PHONEOPS_ADMIN_PASSWORD" in documented


def test_readme_documents_the_two_commands_and_cli() -> None:
    readme = (ROOT / "README.md").read_text()
    assert "make demo" in readme and "make test" in readme
    makefile = (ROOT / "Makefile").read_text()
    assert re.search(r"^demo:", makefile, re.M) and re.search(r"^test:", makefile, re.M)
    for command in ("phoneops migrate", "phoneops serve", "phoneops worker", "phoneops user create",
                    "phoneops token create", "phoneops token revoke"):
        assert command in readme
