"""Numbers pages through the app (session login + CSRF) and the CLI."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from support import login

UK = "+447911123456"


def test_pages_render_and_forms_work(client: Any, users: Any) -> None:
    users.create("operator", "otto")
    csrf = login(client, "otto")
    page = client.get("/numbers")
    assert page.status_code == 200
    assert "Numbers per list" in page.text
    saved = client.post("/numbers/status", data={"number": "07911123456", "status": "monitor", "reason": "CHECK",
                                                  "region": "GB", "csrf_token": csrf}, follow_redirects=True)
    assert saved.status_code == 200
    assert re.search(r'data-field="number-status">monitor<', saved.text)
    bad = client.post("/numbers/status", data={"number": "x", "status": "monitor", "reason": "CHECK",
                                               "region": "GB", "csrf_token": csrf})
    assert bad.status_code == 422
    assert "not a valid phone number" in bad.text
    for path in ("/numbers/lists/monitor", "/numbers/rules", "/numbers/imports", "/numbers/exports"):
        assert client.get(path).status_code == 200, path
    assert "*" in client.get("/numbers/lists/monitor").text
    upload = client.post("/numbers/imports", data={"target": "blacklist", "region": "GB", "csrf_token": csrf},
                         files={"file": ("x.csv", b"phone,reason,source\n07911123457,FRAUD,web\n", "text/csv")},
                         follow_redirects=True)
    assert upload.status_code == 200
    assert "x.csv" in upload.text and 'data-field="import-status"' in upload.text
    refused = client.post("/numbers/rules", data={"rules_json": "[]", "csrf_token": csrf})
    assert refused.status_code == 403


@pytest.fixture
def cli(db_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[CliRunner]:
    from phoneops.settings import reset_settings_cache

    monkeypatch.setenv("DATABASE_URL", db_url)
    reset_settings_cache()
    yield CliRunner()
    reset_settings_cache()


def test_cli_set_lookup_import_export(cli: CliRunner, tmp_path: Path, inline_jobs: list[str]) -> None:
    from phoneops.cli import _mount_domains, app

    _mount_domains()
    assert cli.invoke(app, ["numbers", "set", "07911123456", "blacklist", "--reason", "FRAUD", "--region", "GB"]).exit_code == 0
    shown = cli.invoke(app, ["numbers", "lookup", "+44 7911 123456"])
    assert shown.exit_code == 0
    assert "blacklist" in shown.output
    assert cli.invoke(app, ["numbers", "lookup", "garbage"]).exit_code == 1
    source = tmp_path / "in.csv"
    source.write_text("phone,reason,source\n+447911123457,FRAUD,web\nbad,FRAUD,web\n")
    previewed = cli.invoke(app, ["numbers", "import", str(source), "--target", "monitor", "--preview"])
    assert previewed.exit_code == 0, previewed.output
    assert "new 1, change 0, unchanged 0, refused 1" in previewed.output
    assert "nothing changed" in previewed.output
    imported = cli.invoke(app, ["numbers", "import", str(source), "--target", "monitor", "--yes"])
    assert imported.exit_code == 0, imported.output
    assert "applied" in imported.output
    import_id = re.search(r"import (\d+) \(list -> monitor", imported.output).group(1)  # type: ignore[union-attr]
    assert "monitor" in cli.invoke(app, ["numbers", "lookup", "+447911123457"]).output
    undone = cli.invoke(app, ["numbers", "undo", import_id])
    assert undone.exit_code == 0, undone.output
    assert "undone" in undone.output and "restored 1" in undone.output
    assert "on no list" in cli.invoke(app, ["numbers", "lookup", "+447911123457"]).output
    assert "already undone" in cli.invoke(app, ["numbers", "undo", import_id]).output
    broken = tmp_path / "broken.csv"
    broken.write_text('phone,reason,source\n+447911123458,R,web\n+447911123459,"R,web\n')
    failed = cli.invoke(app, ["numbers", "import", str(broken), "--target", "monitor", "--preview"])
    assert failed.exit_code == 1 and "line 3" in failed.output
    out = tmp_path / "out.csv"
    exported = cli.invoke(app, ["numbers", "export", "blacklist", "--out", str(out)])
    assert exported.exit_code == 0, exported.output
    assert UK in out.read_text()
    token = cli.invoke(app, ["numbers", "encrypt", "07911123456"]).output.split("\t")[1].strip()
    assert cli.invoke(app, ["numbers", "decrypt", token]).output.strip().endswith(UK)
