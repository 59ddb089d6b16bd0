"""Browser: an operator uploads a CSV of contacts, sets its pace, starts it and watches it finish; the
Ongage page shows the conversion sync."""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

import pytest

from phoneops.simulators._server import SimAdmin
from phoneops.simulators.ongage import DEFAULT_ACCOUNT_CODE, DEFAULT_LIST_ID, DEFAULT_PASSWORD, DEFAULT_USERNAME

pytestmark = pytest.mark.browser
HEADER = ["List_ID", "Email", "Country", "Source", "Mobile", "conversion_type", "Original_source", "HLR_Status", "Uuid"]


@pytest.fixture
def live_env(ongage_sim_url: str) -> dict[str, str]:
    return {"ONGAGE_BASE_URL": ongage_sim_url, "ONGAGE_LIST_ID": DEFAULT_LIST_ID, "ONGAGE_USERNAME": DEFAULT_USERNAME,
            "ONGAGE_PASSWORD": DEFAULT_PASSWORD, "ONGAGE_ACCOUNT_CODE": DEFAULT_ACCOUNT_CODE}


def test_upload_start_and_finish_a_csv_job(browser: Any, live_server: str, users: Any, ongage_sim: SimAdmin,
                                          tmp_path: Path) -> None:
    ongage_sim.configure(fail_emails=["b3@example.com"])
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(HEADER)
    for n in range(1, 21):
        writer.writerow([DEFAULT_LIST_ID, f"b{n}@example.com", "GB", "GB_REG", f"44791100{n:04d}", "REG", "sms",
                         "LIVE", f"u{n}"])
    source = tmp_path / "contacts.csv"
    source.write_text(buffer.getvalue())

    users.create("operator", "opal")
    page = browser.new_page()
    page.goto(live_server + "/login")
    page.fill("input[name=username]", "opal")
    page.fill("input[name=password]", "correct-horse-battery")
    page.click("button[type=submit]")
    page.click("nav >> text=Ongage")
    assert "Conversion sync" in page.inner_text("h2")
    page.click("text=CSV jobs")
    page.set_input_files("form[data-form=upload] input[name=file]", str(source))
    page.fill("form[data-form=upload] input[name=interval_seconds]", "1")
    page.fill("form[data-form=upload] input[name=upper_limit]", "10")
    page.fill("form[data-form=upload] input[name=lower_limit]", "10")
    page.click("form[data-form=upload] button[type=submit]")
    page.wait_for_selector("[data-field=csv-status]")
    assert page.inner_text("[data-field=csv-status]") == "draft"
    assert page.inner_text("[data-field=left]") == "20"
    page.click("form[data-action=start] button")
    page.wait_for_selector("tr[data-job-status=succeeded]", timeout=30_000)  # the worker row follows the job
    page.reload()
    assert page.inner_text("[data-field=csv-status]") == "done"
    assert page.inner_text("[data-field=sent]") == "19" and page.inner_text("[data-field=failed]") == "1"
    page.click("text=failed (1)")
    assert "b3@example.com" in page.inner_text("table[data-table=rows]")
    page.close()
