"""Browser: upload a whitelist import, read its preview, apply it, undo it; record and lift an opt-out."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from support import TMP

pytestmark = pytest.mark.browser

SHOTS = Path(TMP) / "screenshots"


def _login(page: Any, live_server: str, name: str) -> None:
    page.goto(live_server + "/login")
    page.fill("input[name=username]", name)
    page.fill("input[name=password]", "correct-horse-battery")
    page.click("button[type=submit]")


def _status_is(page: Any, status: str) -> None:
    for _ in range(60):  # the page refreshes itself every 2 s while a job works
        if page.inner_text("[data-field=import-status]") == status:
            return
        page.wait_for_timeout(500)
        page.reload()
    raise AssertionError(f"import never reached {status}: {page.inner_text('[data-field=import-status]')}")


def test_preview_apply_undo_and_opt_outs(browser: Any, live_server: str, users: Any, tmp_path: Path) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    users.create("admin", "amy")
    page = browser.new_page(viewport={"width": 1280, "height": 1000})
    _login(page, live_server, "amy")
    source = tmp_path / "vip.csv"
    source.write_text("phone,reason,source\n07911 123456,VIP,crm\n+447911123457,VIP,crm\nnot a number,VIP,crm\n")
    page.goto(live_server + "/numbers/imports")
    page.set_input_files("form[data-form=import] input[name=file]", str(source))
    page.select_option("form[data-form=import] select[name=target]", "whitelist")
    page.click("form[data-form=import] button[type=submit]")
    _status_is(page, "preview")
    assert page.inner_text("[data-field=new]") == "2" and page.inner_text("[data-field=refused]") == "1"
    assert "nothing has changed yet" in page.inner_text("[data-field=preview-note]")
    assert "invalid: not_a_number" in page.inner_text("[data-sample=refused]")
    page.screenshot(path=str(SHOTS / "import-preview.png"), full_page=True)
    page.click("form[data-action=apply] button")
    _status_is(page, "applied")
    page.click("form[data-action=undo] button")
    _status_is(page, "undone")
    assert "restored 2" in page.inner_text("[data-field=undo-result]")
    page.screenshot(path=str(SHOTS / "import-undone.png"), full_page=True)

    page.goto(live_server + "/numbers/optouts")
    page.fill("form[data-form=optout] input[name=number]", "07911 123456")
    page.select_option("form[data-form=optout] select[name=reason]", "sms_stop")
    page.click("form[data-form=optout] button[type=submit]")
    assert "Opted out." in page.inner_text("[data-flash]")
    assert "+447911123456" in page.inner_text("[data-table=optouts]")
    assert page.inner_text("[data-count=sms_stop]") == "1"
    page.screenshot(path=str(SHOTS / "optouts.png"), full_page=True)
    page.fill("form[data-form=lift] input[name=number]", "+447911123456")
    page.fill("form[data-form=lift] input[name=reason]", "texted by mistake")
    page.click("form[data-form=lift] button[type=submit]")
    assert "Opt-out lifted." in page.inner_text("[data-flash]")
    assert page.inner_text("[data-count=total]") == "0"
