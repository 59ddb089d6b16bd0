"""Browser test: the Needs review screen resolves an IMEI order placed without a known order id by attaching
the order id from the provider's panel (headless Chromium against a real `phoneops serve`)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from phoneops.core.db import session_scope, utcnow
from phoneops.core.models import AuditEvent
from phoneops.imei.models import ImeiOrder
from support import TMP, free_port, process_env, start_process, stop_process, wait_http

pytestmark = pytest.mark.browser

SCREENSHOTS = TMP / "screenshots"


@pytest.fixture
def review_server(db_url: str, tmp_path: Path) -> Iterator[str]:
    port = free_port()
    proc = start_process(["serve", "--port", str(port)], process_env(db_url, DATA_DIR=str(tmp_path)),
                         TMP / f"review-serve-{os.getpid()}-{port}.log")
    try:
        wait_http(f"http://127.0.0.1:{port}/health")
        yield f"http://127.0.0.1:{port}"
    finally:
        stop_process(proc)


def test_attach_an_order_id_on_the_needs_review_screen(browser: Any, review_server: str, users: Any) -> None:
    with session_scope() as session:
        stuck = ImeiOrder(imei="354411000009991", service_id="1739", service_title="iPhone check", state="review",
                          review_reason="no_order_id", credits=Decimal("0.08"), placed_at=utcnow(), sent_at=utcnow(),
                          error="placed (and paid) before the interruption; order id unknown", fields={})
        other = ImeiOrder(imei="354411000009992", service_id="1739", service_title="iPhone check", state="review",
                          review_reason="unsettled", credits=Decimal("0.08"), sent_at=utcnow(), fields={})
        session.add_all([stuck, other])
        session.flush()
        stuck_id = stuck.id
    users.create("operator", "rita")
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.goto(review_server + "/login")
    page.fill("input[name=username]", "rita")
    page.fill("input[name=password]", "correct-horse-battery")
    page.click("button[type=submit]")
    page.wait_for_selector("h1:has-text('Dashboard')")
    page.click("nav.nav a:has-text('Review')")
    page.wait_for_selector("h1:has-text('Needs review')")
    row = page.locator(f"tr[data-row='{stuck_id}']")
    assert "placed and paid, order id unknown" in row.inner_text() and "$0.08" in row.inner_text()
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "review-before.png"), full_page=True)
    row.locator("[data-attach] button").click()  # empty: the browser refuses it (required)
    assert page.locator(f"tr[data-row='{stuck_id}']").count() == 1
    row.locator("input[name=order_id]").fill("900777")
    row.locator("[data-attach] button").click()
    page.wait_for_selector("[data-flash]:has-text('Order id 900777 attached')")
    assert page.locator(f"tr[data-row='{stuck_id}']").count() == 0
    assert page.locator("tr[data-row]").count() == 1  # the other one is still there
    page.screenshot(path=str(SCREENSHOTS / "review-after.png"), full_page=True)
    with session_scope() as session:
        resolved = session.get(ImeiOrder, stuck_id)
        assert resolved is not None and resolved.state == "placed" and resolved.order_id == "900777"
        assert resolved.resolved_by == "rita"
        event = session.scalars(select(AuditEvent).where(AuditEvent.action == "imei.review.attach_order_id")).one()
        assert event.target_id == str(stuck_id)
