"""`phoneops broadcasts ...` through Typer's CliRunner against the simulators."""

from __future__ import annotations

import csv
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pytest
from typer.testing import CliRunner

from phoneops.broadcasts.cli import app
from phoneops.simulators._server import SimAdmin, serve_in_thread
from phoneops.simulators.messagewhiz import DEFAULT_API_KEY
from phoneops.simulators.voluum import DEFAULT_ACCESS_ID, DEFAULT_ACCESS_KEY, VoluumSimConfig
from phoneops.simulators.voluum import create_app as voluum_app

runner = CliRunner()
DAY = date(2024, 3, 12)


@pytest.fixture(scope="module")
def voluum_url() -> Iterator[str]:
    config = VoluumSimConfig(start_date="2024-03-12", days=2, visits_per_day=100, rate_limit_per_s=None,
                             retry_after_s=0.0)
    with serve_in_thread(voluum_app(config)) as url:
        yield url


@pytest.fixture(autouse=True)
def cli_env(db_url: str, mw_sim: SimAdmin, mw_sim_url: str, voluum_url: str,
            monkeypatch: pytest.MonkeyPatch) -> Iterator[SimAdmin]:
    from phoneops.broadcasts.provider import reset_clients
    from phoneops.cli import console
    from phoneops.settings import reset_settings_cache
    from phoneops.voluum.provider import reset_clients as reset_voluum

    monkeypatch.setattr(console, "_width", 220)  # wide tables: no wrapped cells
    with SimAdmin(voluum_url) as voluum:
        voluum.reset()
        for name, value in {"DATABASE_URL": db_url, "MESSAGEWHIZ_BASE_URL": mw_sim_url,
                            "MESSAGEWHIZ_API_KEY": DEFAULT_API_KEY, "VOLUUM_BASE_URL": voluum_url,
                            "VOLUUM_ACCESS_ID": DEFAULT_ACCESS_ID, "VOLUUM_ACCESS_KEY": DEFAULT_ACCESS_KEY}.items():
            monkeypatch.setenv(name, value)
        reset_settings_cache()
        reset_clients()
        reset_voluum()
        yield voluum
        monkeypatch.undo()
        reset_settings_cache()
        reset_clients()
        reset_voluum()


def test_import_show_history_costs_and_analytics(tmp_path: Path, cli_env: SimAdmin) -> None:
    imported = runner.invoke(app, ["import", str(DAY)])
    assert imported.exit_code == 0, imported.output
    assert "succeeded" in imported.output and "12 broadcasts" in imported.output
    pushed = len(cli_env.orders())
    assert pushed >= 1

    listed = runner.invoke(app, ["days"])
    assert listed.exit_code == 0 and str(DAY) in listed.output
    shown = runner.invoke(app, ["show", str(DAY)])
    assert shown.exit_code == 0 and "no {{link:N}}" in shown.output

    out = tmp_path / "history.csv"
    copied = runner.invoke(app, ["history", str(DAY), "--out", str(out)])
    assert copied.exit_code == 0, copied.output
    assert len(list(csv.DictReader(out.open()))) == 12
    xlsx = tmp_path / "history.xlsx"
    assert runner.invoke(app, ["history", str(DAY), "--out", str(xlsx), "--format", "xlsx"]).exit_code == 0
    assert xlsx.read_bytes()[:2] == b"PK"

    again = runner.invoke(app, ["costs", str(DAY)])
    assert again.exit_code == 0 and "unchanged" in again.output and "sent" not in again.output
    assert len(cli_env.orders()) == pushed

    report = tmp_path / "campaigns.csv"
    analytics = runner.invoke(app, ["analytics", "--from", "2024-03-01", "--to", "2024-03-31", "--out", str(report)])
    assert analytics.exit_code == 0, analytics.output
    assert "total" in analytics.output and "no campaign" in analytics.output
    assert next(csv.reader(report.open()))[:2] == ["campaign_id", "campaign"]


def test_live_and_errors(cli_env: SimAdmin, monkeypatch: pytest.MonkeyPatch) -> None:
    from phoneops.broadcasts.provider import reset_clients
    from phoneops.settings import reset_settings_cache

    live = runner.invoke(app, ["live", "--search", "no-such-broadcast"])  # the seeded days are in the past
    assert live.exit_code == 0 and "no broadcast today" in live.output
    missing = runner.invoke(app, ["show", "2020-01-01"])
    assert missing.exit_code == 1 and "not been imported" in missing.output
    monkeypatch.delenv("MESSAGEWHIZ_API_KEY")
    reset_settings_cache()
    reset_clients()
    refused = runner.invoke(app, ["import", str(DAY)])
    assert refused.exit_code == 1 and "MESSAGEWHIZ_API_KEY" in refused.output
    unsubscribers = runner.invoke(app, ["unsubscribers"])  # the opt-out feed, through core.commands.start_job
    assert unsubscribers.exit_code == 1 and "MESSAGEWHIZ_API_KEY" in unsubscribers.output


def test_unsubscribers_command_records_opt_outs(cli_env: SimAdmin, mw_sim_url: str) -> None:
    import httpx

    from phoneops.core.db import session_scope
    from phoneops.numbers import optouts
    from phoneops.numbers.vault import get_vault

    loaded = httpx.post(f"{mw_sim_url}/_sim/data", json={"unsubscribers": {"Main": ["447911100007"]}})
    assert loaded.status_code == 200, loaded.text
    synced = runner.invoke(app, ["unsubscribers"])
    assert synced.exit_code == 0, synced.output
    with session_scope() as session:
        index = get_vault().index("+447911100007")
        assert optouts.opted_out(session, [index]) == {index: "sms_stop"}
    queued = runner.invoke(app, ["unsubscribers", "--queue"])
    assert queued.exit_code == 0 and "queued" in queued.output
