"""Browser test: a DHRU batch with the balance beside the estimate, results as columns, history filters."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from stdnum import luhn

from phoneops.simulators._server import SimAdmin, serve_in_thread
from phoneops.simulators.dhru import DEFAULT_API_KEY, DEFAULT_USER, DhruSimConfig, create_app
from support import CHROMIUM, TMP, free_port, process_env, start_process, stop_process, unavailable, wait_http

pytestmark = pytest.mark.browser
FMI_OFF_CLEAN = ("Model: iPhone 12 - IMEI: {imei} - Carrier: T-Mobile USA - SIM Lock: Unlocked - FMI: OFF - "
                 "Blacklist: Clean")
FMI_ON = "Model: iPhone 13 Pro<br>Find My iPhone: ON<br>iCloud Status: Clean<br>Blacklist Status: CLEAN"


def imei(serial: int) -> str:
    body = f"35778800{serial:06d}"
    return body + luhn.calc_check_digit(body)


@pytest.fixture
def browser() -> Iterator[Any]:
    if not Path(CHROMIUM).exists():
        unavailable(f"browser tests need Chromium at {CHROMIUM} (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        instance = pw.chromium.launch(executable_path=CHROMIUM, headless=True,
                                      args=["--no-sandbox", "--disable-gpu", "--no-first-run"])
        yield instance
        instance.close()


@pytest.fixture
def dhru_server(db_url: str, tmp_path: Path) -> Iterator[tuple[str, SimAdmin]]:
    config = DhruSimConfig(pending_seconds=0, in_process_seconds=0, results={
        imei(1): ("4", FMI_OFF_CLEAN.format(imei=imei(1))), imei(2): ("4", FMI_ON)})
    with serve_in_thread(create_app(config)) as sim_url, SimAdmin(sim_url) as admin:
        port = free_port()
        accounts = [{"name": "alpha", "base_url": sim_url, "username": DEFAULT_USER, "api_key": DEFAULT_API_KEY,
                     "label": "Reseller Alpha"}]
        env = process_env(db_url, DATA_DIR=str(tmp_path), JOB_LEASE_SECONDS="5", DHRU_ACCOUNTS=json.dumps(accounts),
                          IMEI_MIN_BALANCE="5", GSM_FUSION_USERNAME="")
        proc = start_process(["serve", "--port", str(port), "--embedded-worker"], env,
                             TMP / f"dhru-serve-{os.getpid()}-{port}.log")
        try:
            wait_http(f"http://127.0.0.1:{port}/health", timeout=90)  # a loaded CI machine starts slowly
            yield f"http://127.0.0.1:{port}", admin
        finally:
            stop_process(proc)


def test_dhru_batch_balance_results_table_and_filters(browser: Any, dhru_server: tuple[str, SimAdmin],
                                                      users: Any) -> None:
    base, sim = dhru_server
    users.create("operator", "rita")
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.goto(base + "/login")
    page.fill("input[name=username]", "rita")
    page.fill("input[name=password]", "correct-horse-battery")
    page.click("button[type=submit]")
    page.wait_for_selector("h1:has-text('Dashboard')")
    page.goto(base + "/imei/submit")
    page.select_option("select[name=service_id]", "alpha:101")
    page.fill("textarea[name=text]", "\n".join([imei(1), imei(2), imei(3)]))
    page.click("button[value=preview]")
    balance = page.inner_text("[data-field=quote-balance]")
    assert "Reseller Alpha: 500.00 (minimum 5.00, this batch 0.18)" in balance
    page.screenshot(path=str(TMP / "imei-submit-balance.png"), full_page=True)
    page.click("button[value=submit]")
    page.wait_for_url("**/imei/batches/*")
    batch_url = page.url
    for _ in range(60):  # the batch runs on the embedded worker; its balance row appears once it is done
        if page.locator("[data-balance]").count() and "→ —" not in page.inner_text("[data-balance]"):
            break
        page.wait_for_timeout(500)
        page.goto(batch_url)
    assert "$500.00 → $499.82" in page.inner_text("[data-balance]")
    assert page.inner_text("[data-field=balance-difference]").startswith("0")
    page.screenshot(path=str(TMP / "imei-batch-balance.png"), full_page=True)
    assert sim.stats()["total_orders"] == 3
    page.goto(base + "/imei/history")
    page.click("button:has-text('Sync open orders now')")
    rows = page.locator("[data-orders] tbody tr[data-order-state]")
    for _ in range(60):  # the sync job runs on the embedded worker
        page.goto(base + "/imei/history?fmi=off&blacklist=clean&carrier=&model=")
        if rows.count() == 1:
            break
        page.wait_for_timeout(500)
    assert rows.count() == 1 and imei(1) in rows.first.inner_text()
    assert page.locator("select[name=fmi]").input_value() == "off"
    page.screenshot(path=str(TMP / "imei-history-filters.png"), full_page=True)
    rows.first.locator("a").first.click()
    page.wait_for_selector("[data-result-table]")
    assert page.inner_text("[data-result='Carrier']") == "T-Mobile USA"
    assert page.inner_text("[data-result='Find My iPhone']") == "OFF"
    page.screenshot(path=str(TMP / "imei-order-results.png"), full_page=True)
    print(f"screenshots in {TMP}")
