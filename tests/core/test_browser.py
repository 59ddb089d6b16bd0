"""Browser test: log in through the real page in headless Chromium and see the dashboard."""

from __future__ import annotations

from typing import Any

import pytest

pytestmark = pytest.mark.browser


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


def test_api_docs_render_the_openapi_31_schema(browser: Any, live_server: str, users: Any) -> None:
    """/docs is Swagger UI 5 from a package (no CDN): it renders the app's OpenAPI 3.1 operations."""
    users.create("viewer", "vic")
    page = browser.new_page()
    outside: list[str] = []
    page.on("request", lambda r: outside.append(r.url) if not r.url.startswith((live_server, "data:")) else None)
    page.goto(live_server + "/docs")
    assert "/login" in page.url  # a page: anonymous visitors log in first
    page.fill("input[name=username]", "vic")
    page.fill("input[name=password]", "correct-horse-battery")
    page.click("button[type=submit]")
    page.wait_for_selector(".opblock", timeout=30_000)
    assert page.locator(".opblock").count() > 50
    assert page.locator(".opblock-summary-path[data-path='/api/imei/orders']").count() >= 1
    assert "OAS 3.1" in page.inner_text(".information-container")
    assert not outside, outside
