"""`phoneops imei ...` commands against the simulator (jobs run inside the command)."""

from __future__ import annotations

import csv
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from openpyxl import load_workbook
from stdnum import luhn
from typer.testing import CliRunner

from phoneops.imei.cli import app
from phoneops.simulators._server import SimAdmin
from phoneops.simulators.gsm_fusion import DEFAULT_API_KEY, DEFAULT_USER

runner = CliRunner()
SERVICE = "1739"


def imei(serial: int) -> str:
    body = f"35223300{serial:06d}"
    return body + luhn.calc_check_digit(body)


@pytest.fixture
def cli_env(
    gsm_sim: SimAdmin, gsm_sim_url: str, db_url: str, monkeypatch: pytest.MonkeyPatch
) -> Iterator[SimAdmin]:
    """The CLI reads everything from the environment, like in production."""
    from phoneops.core.logging import configure_logging
    from phoneops.settings import get_settings, reset_settings_cache

    for name, value in {"DATABASE_URL": db_url, "GSM_FUSION_BASE_URL": gsm_sim_url,
                        "GSM_FUSION_USERNAME": DEFAULT_USER, "GSM_FUSION_API_KEY": DEFAULT_API_KEY}.items():
        monkeypatch.setenv(name, value)
    reset_settings_cache()
    yield gsm_sim
    reset_settings_cache()
    settings = get_settings()
    configure_logging(settings.log_json, settings.log_level)  # the runner's captured stderr is closed now


def invoke(*args: str) -> Any:
    return runner.invoke(app, list(args), catch_exceptions=False)


def test_services_submit_duplicate_status_wait_sync(cli_env: SimAdmin, gsm_client: Any) -> None:
    listed = invoke("services", "--search", "samsung")
    assert listed.exit_code == 0, listed.output
    assert "2101" in listed.output and "1739" not in listed.output
    placed = invoke("submit", imei(1), "--service", SERVICE)
    assert placed.exit_code == 0, placed.output
    assert "placed: order" in placed.output and "Pending" in placed.output
    again = invoke("submit", imei(1), "--service", SERVICE)
    assert again.exit_code == 1
    assert "duplicate:" in again.output and "already ordered" in again.output and "--force" in again.output
    gsm_client.place_order(imei(2), SERVICE)
    at_provider = invoke("submit", imei(2), "--service", SERVICE)
    assert at_provider.exit_code == 1
    assert "duplicate:" in at_provider.output and "IMEI already exists!" in at_provider.output
    invalid = invoke("submit", "12345", "--service", SERVICE)
    assert invalid.exit_code == 1 and "invalid IMEI" in invalid.output
    status = invoke("status", imei(1))
    assert status.exit_code == 0 and "Pending" in status.output
    order_id = next(o["order_id"] for o in cli_env.orders(imei=imei(1)))
    cli_env.advance(1000)
    waited = invoke("wait", order_id, "--interval", "0.1", "--timeout", "5")
    assert waited.exit_code == 0, waited.output
    assert "Completed" in waited.output and "Carrier:" in waited.output
    synced = invoke("sync")
    assert synced.exit_code == 0 and "synced 0 open orders" in synced.output  # already final


def test_invalid_api_key_reaches_the_cli(cli_env: SimAdmin, monkeypatch: pytest.MonkeyPatch) -> None:
    from phoneops.settings import reset_settings_cache

    assert invoke("services").exit_code == 0  # cache the catalogue with the good key
    monkeypatch.setenv("GSM_FUSION_API_KEY", "BAD0-BAD0-BAD0-BAD0-BAD2")
    reset_settings_cache()
    result = invoke("submit", imei(5), "--service", SERVICE)
    assert result.exit_code == 1
    assert "GSM Fusion rejected the API key (Invalid API Key!)" in result.output
    assert "BAD0-BAD0" not in result.output
    monkeypatch.delenv("GSM_FUSION_USERNAME")
    reset_settings_cache()
    off = invoke("services")
    assert off.exit_code == 1 and "GSM_FUSION_USERNAME" in off.output


def test_batch_export_and_import(cli_env: SimAdmin, tmp_path: Path) -> None:
    source = tmp_path / "imeis.csv"
    source.write_text("imei\n" + "\n".join(imei(i) for i in range(10, 20)) + f"\n{imei(10)}\nnot-an-imei\n")
    done = invoke("batch", str(source), "--service", SERVICE)
    assert done.exit_code == 0, done.output
    assert "10 to send, 1 invalid, 1 duplicates skipped" in done.output
    assert "$0.80" in done.output
    assert cli_env.stats()["total_orders"] == 10
    out_csv, out_xlsx = tmp_path / "orders.csv", tmp_path / "orders.xlsx"
    assert invoke("export", str(out_csv)).exit_code == 0
    rows = list(csv.reader(out_csv.open()))
    assert rows[0][:2] == ["SERVICE", "IMEI NO."] and len(rows) == 11
    assert invoke("export", str(out_xlsx), "--status", "Pending").exit_code == 0
    sheet = load_workbook(out_xlsx).active
    assert sheet is not None and sheet.max_row == 11
    imported = invoke("import", str(out_xlsx))
    assert imported.exit_code == 0, imported.output
    assert "0 new, 10 updated" in imported.output  # our own orders: updated, never duplicated


def test_batch_output_json_status_of_several_ids_and_services_by_type(cli_env: SimAdmin, tmp_path: Path) -> None:
    import json

    source = tmp_path / "imeis.csv"
    source.write_text("imei\n" + "\n".join(imei(i) for i in range(30, 33)) + "\n12345\n")
    results = tmp_path / "out" / "results.json"
    results.parent.mkdir()
    done = invoke("batch", str(source), "--service", SERVICE, "--output", str(results))
    assert done.exit_code == 0, done.output
    written = json.loads(results.read_text())
    placed = [r for r in written if r["success"]]
    assert len(placed) == 3 and all(r["order_id"] and r["status"] == "Pending" for r in placed)
    assert [r for r in written if not r["success"]] == [
        {"imei": "12345", "order_id": None, "service_id": None, "state": "skipped", "status": None, "success": False,
         "error": "invalid IMEI: " + next(r["error"] for r in written if r["imei"] == "12345").split(": ", 1)[1],
         "credits": None}]
    ids = [r["order_id"] for r in placed]
    several = invoke("status", f"{ids[0]},{ids[1]}", ids[2])
    assert several.exit_code == 0 and all(i in several.output for i in ids)
    unknown = invoke("status", ids[0], "999999999")
    assert unknown.exit_code == 1 and "no order for 999999999" in unknown.output and ids[0] in unknown.output
    files = invoke("services", "--type", "file")
    assert files.exit_code == 0 and "5001" in files.output and "1739" not in files.output
    bad = invoke("services", "--type", "server")
    assert bad.exit_code == 1 and "service type must be one of imei, file" in bad.output
    not_imei = invoke("submit", imei(40), "--service", "5001")  # a file service cannot take an IMEI order
    assert not_imei.exit_code == 1
