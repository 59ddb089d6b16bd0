"""Browser test: upload a list in the UI, start cleaning, watch the bar reach 100%, see stats, download."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cleaning_kit import GB_1, SAMPLE, csv_bytes, read_csv, seed_lists

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
                         TMP / f"serve-cleaning-{os.getpid()}-{port}.log")
    try:
        wait_http(f"http://127.0.0.1:{port}/health")
        yield f"http://127.0.0.1:{port}"
    finally:
        stop_process(proc)


def test_upload_clean_watch_and_download(browser: Any, live_server: str, users: Any, tmp_path: Path) -> None:
    users.create("operator", "olga")
    seed_lists()
    source = tmp_path / "spring campaign.csv"
    source.write_bytes(csv_bytes(SAMPLE))
    page = browser.new_page(accept_downloads=True)
    page.goto(live_server + "/login?next=/cleaning")
    page.fill("input[name=username]", "olga")
    page.fill("input[name=password]", "correct-horse-battery")
    page.click("button[type=submit]")
    page.wait_for_selector("h1:has-text('List cleaning')")
    page.set_input_files("input[name=file]", str(source))
    page.click("button:has-text('Upload')")
    page.wait_for_url("**/cleaning/files/*", timeout=30_000)
    page.wait_for_selector("h1:has-text('spring campaign.csv')")
    assert "phone" in page.inner_text("dl.grid")
    page.check("input[name=filters][value=monitor]")
    page.check("input[name=line_type]")
    page.check("input[name=sms_only]")
    page.click("summary:has-text('Line types that can receive SMS')")
    assert page.is_checked("input[name=sms_types][value=mobile]")
    assert not page.is_checked("input[name=sms_types][value=voip]")
    page.screenshot(path=str(TMP / "cleaning-line-type-form.png"), full_page=True)
    page.click("button:has-text('Start cleaning')")
    page.wait_for_selector("[data-live-job][data-job-status=succeeded], [data-live-job][data-job-status=failed]",
                           timeout=60_000)
    assert page.get_attribute("[data-live-job]", "data-job-status") == "succeeded", page.inner_text("main")
    page.wait_for_selector("[data-field=summary]", timeout=30_000)
    assert page.get_attribute(".progress", "aria-valuenow") == "100"
    assert "4 of 8 rows kept" in page.inner_text("[data-field=summary]")
    stats = page.inner_text("[data-field=stats]")
    assert "blacklisted" in stats and "monitored" in stats and "duplicate" in stats
    assert page.locator("svg.chart").count() == 2
    with page.expect_download() as info:
        page.click("[data-download=clean]")
    download = info.value
    assert download.suggested_filename == "clean_spring campaign.csv"
    rows = read_csv(Path(download.path()).read_text())
    assert rows[0] == ["name", "phone", "line_type", "city"]
    assert rows[1] == ["ann", GB_1, "mobile", "London"]
