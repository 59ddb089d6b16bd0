"""`phoneops sources report`: the report for a period as a table, as CSV to a file (audited) or to standard
output, through the CLI; bad dates and a reversed period are refused with a clear error and nothing written."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select
from typer.testing import CliRunner

from phoneops.sources.cli import app

runner = CliRunner()
NOW = datetime.now(UTC)


@pytest.fixture
def cli_env(db_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    from phoneops.core import commands
    from phoneops.core.logging import configure_logging
    from phoneops.settings import get_settings, reset_settings_cache

    monkeypatch.setenv("DATABASE_URL", db_url)
    reset_settings_cache()
    for console in (commands.console, commands.err):  # wide enough that no table cell wraps
        monkeypatch.setattr(console, "width", 250)
    yield
    reset_settings_cache()
    settings = get_settings()
    configure_logging(settings.log_json, settings.log_level)


def invoke(*args: str) -> Any:
    return runner.invoke(app, list(args), catch_exceptions=False)


def _exports() -> int:
    from phoneops.core.db import session_scope
    from phoneops.core.models import AuditEvent

    with session_scope() as session:
        return int(session.scalar(select(func.count()).select_from(AuditEvent)
                                  .where(AuditEvent.action == "sources.export")) or 0)


def test_sources_cli_reports_a_period_as_table_and_csv(cli_env: None, tmp_path: Path) -> None:
    from phoneops.core.db import session_scope
    from phoneops.core.security import SYSTEM
    from phoneops.numbers.vault import get_vault
    from phoneops.sources import service
    from phoneops.voluum import conversions
    from phoneops.voluum.wire import Conversion

    vault = get_vault()
    phones = ["+447911123451", "+447911123452"]
    with session_scope() as session:
        service.label_list(session, SYSTEM, "Partner-Z", "import", "z1", "z.csv")
        service.record(session, "import", "z1", [(vault.index(p), True) for p in phones])
        conversions.store(session, SYSTEM, [Conversion.from_row({
            "clickId": f"z{i}", "transactionId": f"tz{i}", "conversionType": kind, "campaignId": "c-1",
            "offerId": "o-1", "customVariable1": phone[1:], "revenue": revenue,
            "postbackTimestamp": (NOW - timedelta(days=days)).isoformat()})
            for i, (phone, kind, revenue, days) in enumerate([(phones[0], "REG", "0", 1), (phones[0], "FTD", "120", 1),
                                                              (phones[1], "FTD", "60", 50)])])
    table = invoke("report")
    assert table.exit_code == 0, table.output
    assert "partner-z" in table.output and "120.00" in table.output  # the FTD 50 days back is outside
    assert "180.00" not in table.output and _exports() == 0  # a table is no export
    since = str((NOW - timedelta(days=60)).date())
    out = tmp_path / "sources.csv"
    wrote = invoke("report", "--from", since, "--csv", str(out))
    assert wrote.exit_code == 0, wrote.output
    rows = list(csv.DictReader(io.StringIO(out.read_text())))
    assert [(r["source"], r["period_start"], r["regs"], r["ftds"], r["revenue"]) for r in rows] == [
        ("partner-z", since, "1", "2", "180.00")]
    assert _exports() == 1
    piped = invoke("report", "--from", since, "--csv", "-")
    assert piped.exit_code == 0 and piped.output == out.read_text() and _exports() == 2
    assert not any(p.lstrip("+") in piped.output + table.output for p in phones)

    for args, message in ((("--from", "2026-02-30"), "dates are YYYY-MM-DD"),
                          (("--from", "yesterday"), "dates are YYYY-MM-DD"),
                          (("--from", "2026-03-01", "--to", "2026-02-01"), "ends (2026-02-01) before it starts"),
                          (("--from", "2024-01-01", "--to", "2026-01-01"), "at most 366 days")):
        bad = tmp_path / "bad.csv"
        refused = invoke("report", *args, "--csv", str(bad))
        assert refused.exit_code == 1 and message in refused.output, refused.output
        assert not bad.exists()
    assert _exports() == 2
