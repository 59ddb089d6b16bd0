"""The API tokens page and the webhooks admin page in Chromium, as an admin uses them: create a scoped expiring
token; add an endpoint, send a test to a real receiver, see the delivery and its attempt; remove the endpoint
through its confirm page."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from webhook_receiver import SECRET, Receiver, receiver, verify_signature

__all__ = ["receiver"]  # the fixture
SHOTS = Path(os.environ.get("PHONEOPS_SCREENSHOTS", "/tmp/i19"))


def test_tokens_and_webhooks_pages(browser: Any, live_server: str, users: Any, receiver: Receiver) -> None:
    users.create("admin", "ada")
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.goto(live_server + "/login")
    page.fill("input[name=username]", "ada")
    page.fill("input[name=password]", "correct-horse-battery")
    page.click("button[type=submit]")
    page.wait_for_selector("h1:has-text('Dashboard')")
    SHOTS.mkdir(parents=True, exist_ok=True)
    # API tokens: a reporting token, read only, for 30 days.
    page.click("nav.nav a:has-text('API tokens')")
    page.fill("input[name=name]", "reporting script")
    page.check("input[name=scopes][value=read]")
    page.fill("input[name=expires_in_days]", "30")
    page.click("form[action='/account/tokens'] button[type=submit]")
    page.wait_for_selector("text=po_")
    body = page.inner_text("main")
    assert "reporting script" in body and "read" in body
    page.screenshot(path=str(SHOTS / "tokens.png"), full_page=True)
    # Webhooks: add an endpoint, send a test; the receiver gets it signed; the page shows the attempt.
    page.click("nav.nav a:has-text('Webhooks')")
    page.fill("input[name=url]", receiver.url)
    page.fill("input[name=secret]", SECRET)
    page.check("input[name=events][value=ping]")
    page.click("form[action='/admin/webhooks'] button[type=submit]")
    page.wait_for_selector(f"code:has-text('{receiver.url}')")
    page.click("button:has-text('Send test')")
    deadline = time.monotonic() + 30
    while not receiver.received and time.monotonic() < deadline:
        time.sleep(0.2)
    [(headers, raw)] = receiver.received
    assert verify_signature(SECRET, headers["phoneops-signature"], raw)
    page.reload()
    while "delivered" not in page.inner_text("main") and time.monotonic() < deadline:
        time.sleep(0.2)  # the receiver has the request; the attempt is recorded once its answer is read
        page.reload()
    assert "delivered" in page.inner_text("main") and "200" in page.inner_text("main")
    page.screenshot(path=str(SHOTS / "webhooks.png"), full_page=True)
    # Remove it: a confirm page says what goes; Cancel keeps it, Remove endpoint deletes it.
    page.click("a:has-text('Remove…')")
    page.wait_for_selector("h1:has-text('Remove webhook endpoint')")
    assert receiver.url in page.inner_text("main") and "(1 delivery)" in page.inner_text("main")
    page.screenshot(path=str(SHOTS / "webhooks-remove.png"), full_page=True)
    page.click("a:has-text('Cancel')")
    page.wait_for_selector(f"code:has-text('{receiver.url}')")
    page.click("a:has-text('Remove…')")
    page.click("button:has-text('Remove endpoint')")
    page.wait_for_selector("text=No endpoints yet")
    assert "removed with its delivery history" in page.inner_text("main")
    page.screenshot(path=str(SHOTS / "webhooks-removed.png"), full_page=True)
