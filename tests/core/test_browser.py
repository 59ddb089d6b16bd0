"""Browser test: log in through the real page in headless Chromium and see the dashboard."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from support import CHROMIUM, TMP, free_port, process_env, start_process, stop_process, unavailable, wait_http

pytestmark = pytest.mark.browser


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
def live_server(db_url: str, tmp_path: Path) -> Iterator[str]:
    """The real `phoneops serve` with an embedded worker, on a free port."""
    port = free_port()
    env = process_env(db_url, DATA_DIR=str(tmp_path), JOB_LEASE_SECONDS="5")
    proc = start_process(["serve", "--port", str(port), "--embedded-worker"], env,
                         TMP / f"serve-{os.getpid()}-{port}.log")
    try:
        wait_http(f"http://127.0.0.1:{port}/health")
        yield f"http://127.0.0.1:{port}"
    finally:
        stop_process(proc)


def test_login_and_dashboard(browser: Any, live_server: str, users: Any) -> None:
    users.create("operator", "olga")
    page = browser.new_page()
    page.goto(live_server + "/")
    assert "/login" in page.url
    page.fill("input[name=username]", "olga")
    page.fill("input[name=password]", "wrong-password")
    page.click("button[type=submit]")
    assert "invalid username or password" in page.inner_text(".alert")
    page.fill("input[name=username]", "olga")
    page.fill("input[name=password]", "correct-horse-battery")
    page.click("button[type=submit]")
    page.wait_for_selector("h1:has-text('Dashboard')")
    assert "olga" in page.inner_text(".who")
    # Start the sample job and watch its bar reach 100% live.
    page.click("a[href='/jobs']")
    page.fill("input[name=steps]", "5")
    page.click("button:has-text('Start sample job')")
    page.wait_for_selector("[data-live-job][data-job-status=succeeded]", timeout=30_000)
    assert page.get_attribute(".progress", "aria-valuenow") == "100"
    page.click("button:has-text('Log out')")
    page.wait_for_url("**/login")
