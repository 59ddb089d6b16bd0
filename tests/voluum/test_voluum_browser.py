"""Browser: an operator syncs a day of traffic from the Voluum page, sees the day's result, finds a number."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest

from phoneops.simulators import voluum_data as vd
from phoneops.simulators.voluum import DEFAULT_ACCESS_ID, DEFAULT_ACCESS_KEY

pytestmark = pytest.mark.browser

DAY = date(2025, 12, 31)


@pytest.fixture
def live_env(voluum_sim_url: str) -> dict[str, str]:
    return {"VOLUUM_BASE_URL": voluum_sim_url, "VOLUUM_ACCESS_ID": DEFAULT_ACCESS_ID,
            "VOLUUM_ACCESS_KEY": DEFAULT_ACCESS_KEY}


def visit(value: str, os_version: str, hour: int) -> dict[str, Any]:
    moment = datetime.combine(DAY, datetime.min.time(), tzinfo=UTC) + timedelta(hours=hour)
    return {"timestamp": vd.iso(moment), "customVariable1": value, "ip": "203.0.113.7", "osVersion": os_version,
            "browserVersion": "Safari 18", "visits": 1, "uniqueVisits": 1}


def test_sync_a_day_and_find_a_number(
    browser: Any, live_server: str, users: Any, voluum_sim: Any, load_data: Callable[..., Any]
) -> None:
    load_data(visits=[visit("447400123401", "IOS 18.6", 1), visit("447400123402", "Android 7.0", 2),
                      visit("{{phoneNumber}}", "IOS 18.6", 3)])
    users.create("operator", "otto")
    page = browser.new_page()
    page.goto(live_server + "/login?next=/voluum/live")  # (the dashboard shows every domain's cards)
    page.fill("input[name=username]", "otto")
    page.fill("input[name=password]", "correct-horse-battery")
    page.click("button[type=submit]")
    page.click("nav >> text=Voluum")
    page.fill("form[data-form=traffic] input[name=from]", DAY.isoformat())
    page.fill("form[data-form=traffic] input[name=to]", DAY.isoformat())
    page.click("form[data-form=traffic] button[type=submit]")
    try:
        page.wait_for_selector("tr[data-job-status=succeeded]", timeout=60_000)  # the row follows the job live
    except Exception as exc:  # say what the page showed instead
        raise AssertionError(page.inner_text("main")[:3000]) from exc
    page.reload()
    row = page.locator(f"tr[data-day='{DAY.isoformat()}']")
    assert row.locator("[data-field=numbers]").inner_text() == "2"
    assert "1" in row.inner_text()  # one value skipped: the placeholder

    page.click("text=Find a number")
    page.fill("input[name=number]", "07400 123402")
    page.click("form[action='/voluum/find'] button[type=submit]")
    page.wait_for_selector("[data-number-report]")
    assert page.inner_text("[data-field=number-status]") == "blacklist"  # Android 7
    assert "Android 7.0" in page.inner_text("table[data-table=traffic]")
