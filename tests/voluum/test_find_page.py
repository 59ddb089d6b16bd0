"""The Voluum find page (`/voluum/find`): HLR answers as readable fields, an opt-out shown as one.

The HLR result comes from a real lookup against the HLR simulator over HTTP; the opt-out is recorded through
the API, as a person would.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from phoneops.core import jobs, storage
from phoneops.core.db import session_scope
from phoneops.core.security import SYSTEM
from phoneops.hlr import risky
from phoneops.hlr.lookups import FileSource, create_lookup, get_lookup
from phoneops.simulators._server import SimAdmin, serve_in_thread
from phoneops.simulators.hlr_lookup import DEFAULT_API_KEY, DEFAULT_API_SECRET, HlrSimConfig, create_app
from support import login

LOOKED_UP, OPTED_OUT = "+447400123456", "+447400123457"


@pytest.fixture(scope="module")
def hlr_url() -> Iterator[str]:
    with serve_in_thread(create_app(HlrSimConfig(retry_after_s=0.0, batch_items_per_second=0.0))) as url:
        yield url


@pytest.fixture
def seeded(hlr_url: str, client: Any, users: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """LOOKED_UP: a real-time HLR lookup answered DEAD. OPTED_OUT: a STOP reply recorded, on no list."""
    from phoneops.settings import reset_settings_cache

    with SimAdmin(hlr_url) as admin:
        admin.reset()
        admin.configure(overrides={LOOKED_UP[1:]: {"live_status": "DEAD"}})
    for name, value in {"HLR_BASE_URL": hlr_url, "HLR_BATCH_BASE_URL": hlr_url, "HLR_API_KEY": DEFAULT_API_KEY,
                        "HLR_API_SECRET": DEFAULT_API_SECRET}.items():
        monkeypatch.setenv(name, value)
    reset_settings_cache()
    with session_scope() as session:
        risky.restore_seed(session, SYSTEM)
        stored = storage.get_storage().save_bytes(session, SYSTEM, f"phone\n{LOOKED_UP}\n".encode(), kind="upload",
                                                  original_name="check.csv")
        lookup_id = create_lookup(session, SYSTEM, FileSource(stored.id, "phone", "GB"), mode="realtime",
                                  confirm=True).id
    with session_scope() as session:
        job_id = get_lookup(session, lookup_id).job_id
    assert job_id is not None and jobs.run_job(job_id) == "succeeded"
    added = client.post("/api/numbers/optouts", json={"number": OPTED_OUT, "reason": "sms_stop",
                                                      "detail": "STOP to 12345", "region": "GB"},
                        headers=users.headers("operator"))
    assert added.status_code == 201, added.text
    yield
    reset_settings_cache()


def test_find_page_shows_hlr_fields_and_the_opt_out(client: Any, users: Any, seeded: None) -> None:
    users.create("viewer", "vera")
    login(client, "vera")
    page = client.get("/voluum/find", params={"number": LOOKED_UP})
    assert page.status_code == 200, page.text
    hlr = re.search(r'<table class="table" data-table="hlr">.*?</table>', page.text, re.S)
    assert hlr is not None
    cells = re.findall(r"<td[^>]*>(.*?)</td>", hlr.group(0), re.S)
    assert "DEAD" in cells and any("blacklist HLR_FAILED" in c for c in cells)  # fields, one per cell
    assert '"live_status"' not in page.text and "&#34;live_status&#34;" not in page.text  # no raw JSON
    assert 'data-field="optout"' not in page.text  # never opted out: nothing said

    other = client.get("/voluum/find", params={"number": OPTED_OUT})
    assert other.status_code == 200
    shown = re.search(r'<p class="alert error" data-field="optout">(.*?)</p>', other.text, re.S)
    assert shown is not None and shown.group(1).startswith("Opted out (sms_stop, api)")
    assert "no SMS goes to this number" in shown.group(1)
    assert re.search(r'data-field="number-status">on no list</span> <span class="badge blacklist">opted out', other.text)
    assert "No HLR results." in other.text

    api = client.get("/api/voluum/find", params={"number": OPTED_OUT}, headers=users.headers("viewer")).json()
    assert api["optout"]["active"] is True and api["optout"]["reason"] == "sms_stop"
    assert client.get("/api/voluum/find", params={"number": LOOKED_UP},
                      headers=users.headers("viewer")).json()["optout"] is None


@pytest.mark.browser
def test_find_page_in_a_browser(browser: Any, live_server: str, users: Any, seeded: None, tmp_path: Path) -> None:
    users.create("viewer", "vic")
    page = browser.new_page()
    page.goto(live_server + "/login")
    page.fill("input[name=username]", "vic")
    page.fill("input[name=password]", "correct-horse-battery")
    page.click("button[type=submit]")
    page.wait_for_load_state()
    for number, name in ((LOOKED_UP, "find-hlr"), (OPTED_OUT, "find-optout")):
        page.goto(live_server + "/voluum/find")
        page.fill("input[name=number]", number)
        page.click("form[action='/voluum/find'] button[type=submit]")
        page.wait_for_selector("[data-number-report]")
        page.screenshot(path=str(tmp_path / f"{name}.png"), full_page=True)
        if number == LOOKED_UP:
            row = page.inner_text("[data-table=hlr] tbody tr")
            assert "DEAD" in row and "HLR_FAILED" in row and "{" not in row
        else:
            assert page.inner_text("[data-field=optout]").startswith("Opted out (sms_stop, api)")
            assert page.inner_text("[data-field=number-status]") == "on no list"
