"""Browser: today's broadcasts appear live (server-sent events) on the live page, grouped by list and filtered
by name, while the MessageWhiz simulator gains broadcasts."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from phoneops.simulators._server import SimAdmin
from phoneops.simulators.messagewhiz import DEFAULT_API_KEY

pytestmark = pytest.mark.browser


@pytest.fixture
def live_env(mw_sim_url: str) -> dict[str, str]:
    return {"MESSAGEWHIZ_BASE_URL": mw_sim_url, "MESSAGEWHIZ_API_KEY": DEFAULT_API_KEY}


def broadcast(bid: int, name: str, minutes_ago: int, recipients: int) -> dict[str, Any]:
    now = datetime.now(UTC)
    sent = now - timedelta(minutes=minutes_ago)
    if sent.date() != now.date():  # just after midnight: keep it today, in the same order
        sent = now.replace(hour=0, minute=0, second=0) + timedelta(seconds=60 - minutes_ago)
    return {"id": bid, "name": name, "send_date": sent.strftime("%Y-%m-%dT%H:%M:%S.000Z"), "state": 4,
            "message_body": "Hi {{link:7000001}}", "real_price": recipients * 3, "recipient_count": recipients,
            "dlr": {"sent_count": 0, "delivered_count": recipients - 1, "undelivered_count": 1, "rejected_count": 0},
            "broadcastConversion": {"uniqueClicks": 2, "totalClicks": 3, "conversion": "2.00"}}


def test_live_view_shows_broadcasts_appearing(browser: Any, live_server: str, users: Any, mw_sim: SimAdmin,
                                             mw_sim_url: str) -> None:
    def load(*items: dict[str, Any]) -> None:
        httpx.post(f"{mw_sim_url}/_sim/data", json={"broadcasts": list(items)}, timeout=10).raise_for_status()

    load(broadcast(598000001, "UK_promo_list_chunk#1.csv", 30, 100))
    users.create("viewer", "vera")
    page = browser.new_page()
    page.goto(live_server + "/login")
    page.fill("input[name=username]", "vera")
    page.fill("input[name=password]", "correct-horse-battery")
    page.click("button[type=submit]")
    page.goto(live_server + "/broadcasts/live?every=2")
    page.wait_for_selector("tr[data-broadcast='598000001']", timeout=15_000)
    group = page.locator("section[data-group='UK_promo_list']")
    assert "UK_promo_list_chunk#1.csv" in group.inner_text()

    load(broadcast(598000002, "UK_promo_list_chunk#2.csv", 5, 50),
         broadcast(598000003, "IT_bonus_list.csv", 1, 70))  # sent after the page opened
    page.wait_for_selector("tr[data-broadcast='598000002']", timeout=15_000)
    page.wait_for_selector("tr[data-broadcast='598000003']", timeout=15_000)
    assert group.locator("tr[data-broadcast]").count() == 2  # the two chunks of one list, together
    page.wait_for_function(
        "document.querySelector(\"section[data-group='UK_promo_list'] [data-field=group-totals]\")"
        ".textContent.startsWith('2 broadcasts')", timeout=15_000)
    assert "150 recipients" in group.locator("[data-field=group-totals]").inner_text()
    newest = page.locator("section[data-group]").first.get_attribute("data-group")
    assert newest == "IT_bonus_list"  # groups newest first

    page.fill("input[data-live-search]", "IT_bonus")
    page.wait_for_function("document.querySelectorAll('tr[data-broadcast]').length === 1", timeout=15_000)
    assert page.locator("tr[data-broadcast='598000003']").count() == 1
    page.wait_for_function("document.querySelector('[data-live-state]').textContent.startsWith('updated')",
                           timeout=15_000)
    page.close()  # ends the event stream before the server stops
