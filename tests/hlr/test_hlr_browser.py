"""Browser: upload a list, watch the lookup's status page follow its job, see the breakdown, download the files."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from phoneops.core import storage
from phoneops.core.db import session_scope
from phoneops.core.security import SYSTEM
from phoneops.hlr import risky
from phoneops.simulators._server import SimAdmin
from phoneops.simulators.hlr_lookup import DEFAULT_API_KEY, DEFAULT_API_SECRET

pytestmark = pytest.mark.browser


@pytest.fixture
def live_env(hlr_sim_url: str, hlr_sim: SimAdmin) -> dict[str, str]:
    hlr_sim.configure(latency_ms=40)  # slow enough to see the job running
    return {"HLR_BASE_URL": hlr_sim_url, "HLR_BATCH_BASE_URL": hlr_sim_url, "HLR_API_KEY": DEFAULT_API_KEY,
            "HLR_API_SECRET": DEFAULT_API_SECRET, "HLR_POLL_EVERY_SECONDS": "0.2"}


def test_lookup_from_upload_to_downloads(
    browser: Any, live_server: str, users: Any, hlr_sim: SimAdmin, tmp_path: Path
) -> None:
    with session_scope() as session:
        risky.restore_seed(session, SYSTEM)
    users.create("admin", "amy")
    numbers = [f"+447911{n:06d}" for n in range(5000, 5400)]
    source = tmp_path / "campaign.csv"
    source.write_text("phone,name\n" + "".join(f"{n},x\n" for n in numbers))

    page = browser.new_page()
    page.goto(live_server + "/login?next=/jobs")
    page.fill("input[name=username]", "amy")
    page.fill("input[name=password]", "correct-horse-battery")
    page.click("button[type=submit]")
    page.click("nav >> text=HLR")
    page.set_input_files("form[data-hlr-start] input[name=file]", str(source))
    page.select_option("form[data-hlr-start] select[name=mode]", "realtime")
    page.click("form[data-hlr-start] button[type=submit]")
    page.wait_for_selector("[data-hlr-lookup]")
    assert "400" in page.inner_text("[data-counter=to_lookup]")
    page.wait_for_selector("[data-field=lookup-status]:text('succeeded')", timeout=60_000)
    assert page.inner_text("[data-counter=looked_up]") == "400"
    assert page.locator("[data-breakdown] svg").count() >= 1
    assert "clean" in page.inner_text("[data-breakdown]")
    with page.expect_download() as clean:
        page.click("[data-download=clean]")
    lines = Path(clean.value.path()).read_text().splitlines()
    assert lines[0] == "phone_number" and set(lines[1:]) <= set(numbers) and len(lines) > 100
    with page.expect_download() as raw:
        page.click("[data-download=raw]")
    assert len(Path(raw.value.path()).read_text().splitlines()) == 401
    assert hlr_sim.stats()["total_paid_lookups"] == 400

    page.click("nav.tabs >> text=Risky operators")
    page.wait_for_selector("form[data-risky-add]")
    page.fill("form[data-risky-add] input[name=name]", "Brand New Mobile")
    page.click("form[data-risky-add] button[type=submit]")
    page.wait_for_selector("[data-risky] code:text-is('brandnewmobile')")


def test_the_form_leaves_out_opted_out_and_non_mobile_numbers_unless_asked(
    browser: Any, live_server: str, users: Any, hlr_sim: SimAdmin, tmp_path: Path
) -> None:
    from phoneops.numbers import optouts

    with session_scope() as session:
        optouts.add(session, SYSTEM, "+447911006000", "sms_stop", region="GB")
    users.create("operator", "olly")
    source = tmp_path / "mixed.csv"
    source.write_text("phone\n+447911006000\n+447911006001\n+447911006002\n+441212345678\n+448001234567\n")
    page = browser.new_page()
    page.goto(live_server + "/login?next=/hlr")
    page.fill("input[name=username]", "olly")
    page.fill("input[name=password]", "correct-horse-battery")
    page.click("button[type=submit]")
    page.set_input_files("form[data-hlr-start] input[name=file]", str(source))
    page.click("form[data-hlr-start] button[type=submit]")
    page.wait_for_selector("[data-left-out]")
    assert page.inner_text("[data-counter=opted_out]") == "1"
    assert page.inner_text("[data-counter=not_mobile]") == "2 (fixed line 1, toll free 1)"
    assert page.inner_text("[data-counter=credits_saved]") == "3"
    assert page.inner_text("[data-counter=to_lookup]") == "2"
    if os.environ.get("PHONEOPS_SCREENSHOTS"):
        page.screenshot(path=os.path.join(os.environ["PHONEOPS_SCREENSHOTS"], "hlr-left-out.png"), full_page=True)

    page.goto(live_server + "/hlr")
    page.set_input_files("form[data-hlr-start] input[name=file]", str(source))
    page.check("form[data-hlr-start] input[name=include_non_mobile]")
    page.click("form[data-hlr-start] button[type=submit]")
    page.wait_for_selector("[data-left-out]")
    assert page.inner_text("[data-counter=not_mobile]") == "0"
    assert page.inner_text("[data-counter=numbers]") == "4"
    if os.environ.get("PHONEOPS_SCREENSHOTS"):
        page.goto(live_server + "/hlr")
        page.screenshot(path=os.path.join(os.environ["PHONEOPS_SCREENSHOTS"], "hlr-form.png"), full_page=True)


def test_the_background_estimate_from_the_form_shows_its_progress_then_the_estimate(
    browser: Any, live_server: str, users: Any, tmp_path: Path
) -> None:
    users.create("operator", "otto")
    source = tmp_path / "big.csv"
    source.write_text("phone\n" + "".join(f"07911{n:06d}\n" for n in range(7000, 7300)) + "+441212345678\nnope\n")
    page = browser.new_page()
    page.goto(live_server + "/login?next=/hlr")
    page.fill("input[name=username]", "otto")
    page.fill("input[name=password]", "correct-horse-battery")
    page.click("button[type=submit]")
    page.set_input_files("form[data-hlr-start] input[name=file]", str(source))
    page.click("form[data-hlr-start] button[data-hlr-estimate]")
    page.wait_for_selector("[data-job-id]")
    assert "/jobs/" in page.url and "HLR estimate of big.csv" in page.inner_text("h1")
    page.wait_for_selector("[data-field=status]:text('succeeded')", timeout=60_000)
    page.wait_for_selector("[data-field=result]:has-text('To lookup')")
    result = " ".join(page.inner_text("[data-field=result]").split())
    assert "To lookup 300 " in result and "Not mobile 1 " in result and "Invalid 1 " in result
    assert page.get_attribute("[data-progress-for]", "aria-valuenow") == "100"
    if os.environ.get("PHONEOPS_SCREENSHOTS"):
        page.screenshot(path=os.path.join(os.environ["PHONEOPS_SCREENSHOTS"], "hlr-estimate-job.png"), full_page=True)
    page.goto(live_server + "/hlr")  # a list has no file to read: a clear error on the form
    page.click("form[data-hlr-start] button[data-hlr-estimate]")
    assert "the background estimate reads a file" in page.inner_text("[role=alert]")
    if os.environ.get("PHONEOPS_SCREENSHOTS"):
        page.screenshot(path=os.path.join(os.environ["PHONEOPS_SCREENSHOTS"], "hlr-estimate-form.png"), full_page=True)


def test_cancel_on_a_page_left_open_says_the_lookup_had_already_ended(
    browser: Any, live_server: str, live_env: dict[str, str], users: Any, hlr_sim: SimAdmin,
    monkeypatch: pytest.MonkeyPatch
) -> None:
    """Olga's page of a lookup not yet started still offers Cancel; meanwhile an admin starts it and it runs to
    the end. Her click says the lookup had already ended, and changes nothing."""
    from sqlalchemy import select

    from phoneops.core import jobs
    from phoneops.core.models import User
    from phoneops.core.security import principal_for
    from phoneops.hlr import lookups
    from support import TMP

    for name, value in live_env.items():
        monkeypatch.setenv(name, value)  # the server's HLR settings, for the admin's side run in this process
    users.create("operator", "olga")
    with session_scope() as session:  # Olga's lookup, estimated, not started yet
        risky.restore_seed(session, SYSTEM)
        olga = principal_for(session.scalars(select(User).where(User.username == "olga")).one(), "session")
        stored = storage.get_storage().save_bytes(session, olga, b"phone\n+447911004200\n+447911004201\n",
                                                  kind="upload", original_name="two.csv").id
        lookup_id = lookups.create_lookup(session, olga, lookups.FileSource(stored, "phone", "GB"), mode="realtime",
                                          start=False).id
    page = browser.new_page()
    page.goto(live_server + f"/login?next=/hlr/lookups/{lookup_id}")
    page.fill("input[name=username]", "olga")
    page.fill("input[name=password]", "correct-horse-battery")
    page.click("button[type=submit]")
    page.wait_for_selector("[data-hlr-lookup]")
    assert page.locator("button:text-is('Cancel')").count() == 1
    with session_scope() as session:  # the admin's start, and its job run to the end
        job_id = lookups.confirm_lookup(session, SYSTEM, lookup_id).job_id
    assert job_id is not None
    jobs.run_job(job_id)
    with session_scope() as session:
        assert lookups.get_lookup(session, lookup_id).status == "succeeded"
    page.click("button:text-is('Cancel')")  # Olga's page still offers it
    page.wait_for_selector("[data-flash]")
    page.screenshot(path=str(TMP / "hlr-cancel-after-end.png"), full_page=True)
    assert page.inner_text("[data-flash]") == (f"Not done: HLR lookup {lookup_id} already ended (succeeded): there "
                                               "is nothing to cancel")
    assert "error" in (page.get_attribute("[data-flash]", "class") or "")
    assert page.inner_text("[data-field=lookup-status]") == "succeeded"
    assert page.locator("button:text-is('Cancel')").count() == 0
    assert hlr_sim.stats()["total_paid_lookups"] == 2
