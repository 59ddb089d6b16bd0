"""Browser: look up a number, blacklist it, see it in the list and in its history."""

from __future__ import annotations

from typing import Any

import pytest

pytestmark = pytest.mark.browser


def test_set_status_and_look_up(browser: Any, live_server: str, users: Any) -> None:
    users.create("admin", "amy")
    page = browser.new_page()
    page.goto(live_server + "/login")
    page.fill("input[name=username]", "amy")
    page.fill("input[name=password]", "correct-horse-battery")
    page.click("button[type=submit]")
    page.click("nav >> text=Numbers")
    page.fill("form[action='/numbers/status'] input[name=number]", "07911 123456")
    page.select_option("form[action='/numbers/status'] select[name=status]", "blacklist")
    page.fill("form[action='/numbers/status'] input[name=reason]", "COMPLAINT")
    page.click("form[action='/numbers/status'] button[type=submit]")
    page.wait_for_selector("[data-number-result]")
    assert page.inner_text("[data-field=number-status]") == "blacklist"
    assert "COMPLAINT" in page.inner_text("[data-number-result] table")
    page.click("nav.tabs >> a[href='/numbers/lists/blacklist']")  # the tab, not the word in the flash
    page.wait_for_url("**/numbers/lists/blacklist")
    assert "+447911123456" in page.inner_text("table")  # admins see numbers in full
