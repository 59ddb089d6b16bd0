"""Browser test: submit a small IMEI batch in the real UI (headless Chromium) and watch it complete live."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from stdnum import luhn

from phoneops.simulators._server import SimAdmin
from phoneops.simulators.gsm_fusion import DEFAULT_API_KEY, DEFAULT_USER
from support import CHROMIUM, TMP, free_port, process_env, start_process, stop_process, unavailable, wait_http

pytestmark = pytest.mark.browser
SERVICE = "1739"


def imei(serial: int) -> str:
    body = f"35667700{serial:06d}"
    return body + luhn.calc_check_digit(body)


@pytest.fixture
def browser() -> Iterator[Any]:
    if not Path(CHROMIUM).exists():
        unavailable(f"browser tests need Chromium at {CHROMIUM} (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        instance = pw.chromium.launch(
            executable_path=CHROMIUM, headless=True,
            args=["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"],
        )
        yield instance
        instance.close()


@pytest.fixture
def imei_server(db_url: str, tmp_path: Path, gsm_sim: SimAdmin, gsm_sim_url: str) -> Iterator[str]:
    """`phoneops serve --embedded-worker` pointed at the GSM Fusion simulator."""
    gsm_sim.configure(latency_ms=250)  # slow enough to see the bar move
    port = free_port()
    env = process_env(
        db_url, DATA_DIR=str(tmp_path), JOB_LEASE_SECONDS="5", GSM_FUSION_BASE_URL=gsm_sim_url,
        GSM_FUSION_USERNAME=DEFAULT_USER, GSM_FUSION_API_KEY=DEFAULT_API_KEY, IMEI_CONCURRENCY="2",
    )
    proc = start_process(["serve", "--port", str(port), "--embedded-worker"], env,
                         TMP / f"imei-serve-{os.getpid()}-{port}.log")
    try:
        wait_http(f"http://127.0.0.1:{port}/health")
        yield f"http://127.0.0.1:{port}"
    finally:
        stop_process(proc)


def test_submit_a_small_batch_and_watch_it_complete(
    browser: Any, imei_server: str, users: Any, gsm_sim: SimAdmin
) -> None:
    users.create("operator", "irene")
    page = browser.new_page()
    page.goto(imei_server + "/login")
    page.fill("input[name=username]", "irene")
    page.fill("input[name=password]", "correct-horse-battery")
    page.click("button[type=submit]")
    page.wait_for_selector("h1:has-text('Dashboard')")
    page.click("nav.nav a:has-text('Devices')")
    page.wait_for_selector("h1:has-text('Device checks')")
    page.click("nav.tabs a:has-text('Submit')")
    page.select_option("select[name=service_id]", SERVICE)
    page.fill("textarea[name=text]", "\n".join([imei(i) for i in range(8)] + ["12345"]))
    page.click("button[value=preview]")
    quote = page.inner_text("[data-field=quote]")
    assert "8 \u00d7 $0.08 = $0.64" in quote
    assert "8 to send · 1 invalid" in page.inner_text("[data-field=plan]")
    page.click("button[value=submit]")
    page.wait_for_url("**/imei/batches/*")
    page.wait_for_selector("[data-live-job][data-job-status=succeeded]", timeout=60_000)
    assert page.get_attribute(".progress", "aria-valuenow") == "100"
    page.wait_for_selector("[data-counter=placed]:has-text('8')", timeout=10_000)
    page.wait_for_selector("[data-field=batch-status]:has-text('done')", timeout=10_000)
    page.wait_for_function(  # the orders table follows without a reload
        "document.querySelectorAll('[data-batch-orders] tr[data-order-state=placed]').length === 8", timeout=10_000
    )
    assert page.inner_text("[data-counter=spend]") == "$0.64"
    assert page.inner_text("[data-counter=invalid]") == "1"
    assert gsm_sim.stats()["total_orders"] == 8
    page.click("nav.tabs a:has-text('History')")
    page.wait_for_selector("[data-history-search]")
    assert page.locator("tr[data-order-state=placed]").count() == 8
