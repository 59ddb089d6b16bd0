"""A number's whole story on every surface (service, API, CLI, page): status and history, tracker traffic and
live events, HLR results of a real lookup against the simulator, imports, erasure state."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select
from typer.testing import CliRunner

from phoneops.cli import app as cli_app
from phoneops.core import jobs, storage
from phoneops.core.db import session_scope
from phoneops.core.security import SYSTEM
from phoneops.hlr import risky
from phoneops.hlr.lookups import FileSource, create_lookup, get_lookup
from phoneops.numbers.models import PhoneNumber
from phoneops.numbers.story import key_of
from phoneops.ongage.service_sync import enroll
from phoneops.simulators._server import SimAdmin, serve_in_thread
from phoneops.simulators.hlr_lookup import DEFAULT_API_KEY, DEFAULT_API_SECRET, HlrSimConfig, create_app
from phoneops.voluum import conversions, live, traffic
from phoneops.voluum.wire import Conversion as WireConversion
from support import login as login_form

NUMBER = "+447400123456"


@pytest.fixture(scope="module")
def hlr_url() -> Iterator[str]:
    with serve_in_thread(create_app(HlrSimConfig(retry_after_s=0.0, batch_items_per_second=0.0))) as url:
        yield url


@pytest.fixture
def hlr_env(hlr_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, str]]:
    from phoneops.settings import reset_settings_cache

    with SimAdmin(hlr_url) as admin:
        admin.reset()
        admin.configure(overrides={NUMBER[1:]: {"live_status": "DEAD"}})
    env = {"HLR_BASE_URL": hlr_url, "HLR_BATCH_BASE_URL": hlr_url, "HLR_API_KEY": DEFAULT_API_KEY,
           "HLR_API_SECRET": DEFAULT_API_SECRET}
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    reset_settings_cache()
    yield env
    reset_settings_cache()


def hlr_lookup(numbers: list[str]) -> None:
    """A real-time HLR lookup of `numbers` through the HLR service, its job run as a worker would."""
    with session_scope() as session:
        risky.restore_seed(session, SYSTEM)
        stored = storage.get_storage().save_bytes(
            session, SYSTEM, ("phone\n" + "\n".join(numbers) + "\n").encode(), kind="upload",
            original_name="check.csv")
        lookup_id = create_lookup(session, SYSTEM, FileSource(stored.id, "phone", "GB"), mode="realtime",
                                  confirm=True).id
    with session_scope() as session:
        job_id = get_lookup(session, lookup_id).job_id
    assert job_id is not None
    assert jobs.run_job(job_id) == "succeeded"


def login(page: Any, server: str, username: str) -> None:
    page.goto(server + "/login")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", "correct-horse-battery")
    page.click("button[type=submit]")
    page.wait_for_load_state()


def tracked() -> None:
    """The number as the tracker saw it: an Android 9 day of traffic (monitor) and a live event."""
    with session_scope() as session:
        traffic.store_day(session, SYSTEM, date(2026, 1, 5), [("src-a", {
            "customVariable1": NUMBER[1:], "osVersion": "Android 9", "visits": 3, "clicks": 2})])
        live.ingest(session, [("m-1", [{
            "clickId": "c1", "campaignId": "camp-1", "offerId": "offer-1", "timestamp": "2026-01-06T10:00:00.000Z",
            "os": "Android", "osVersion": "9", "customVariables": [NUMBER[1:]] + [""] * 9}])], source="http")


def test_the_api_tells_the_whole_story(client: Any, users: Any, hlr_env: dict[str, str]) -> None:
    tracked()
    hlr_lookup([NUMBER])
    op = users.headers("operator")
    buffer = io.StringIO()
    csv.writer(buffer).writerows([["phone", "reason", "source"], [NUMBER, "COMPLAINT", "partner"]])
    imported = client.post("/api/numbers/imports", data={"target": "blacklist", "region": "GB"},
                           files={"file": ("complaints.csv", buffer.getvalue().encode(), "text/csv")}, headers=op)
    assert imported.status_code == 202, imported.text  # previewed, then applied (docs/imports.md)
    assert jobs.run_job(imported.json()["job_id"]) == "succeeded"
    applied = client.post(f"/api/numbers/imports/{imported.json()['id']}/apply", headers=op)
    assert jobs.run_job(applied.json()["job_id"]) == "succeeded"

    answer = client.get("/api/numbers/07400 123456", params={"region": "GB"}, headers=users.headers("viewer"))
    assert answer.status_code == 200, answer.text
    story = answer.json()
    assert story["number"] == NUMBER and story["country"] == "GB" and story["known"] is True
    assert story["key"] == key_of(NUMBER)
    status = story["status"]
    assert (status["status"], status["authority"], status["reason"]) == ("blacklist", "manual", "COMPLAINT")
    assert [e["source"] for e in reversed(status["history"])] == ["VOLUUM", "HLR", "partner"]
    [hlr] = story["hlr"]
    assert (hlr["live_status"], hlr["outcome"], hlr["reason"]) == ("DEAD", "blacklist", "HLR_FAILED")
    voluum = story["voluum"]
    assert (voluum["traffic_rows"], voluum["traffic_visits"], voluum["traffic_clicks"]) == (1, 3, 2)
    assert voluum["traffic"][0]["category"] == "monitor"
    assert voluum["live"]["campaign_id"] == "camp-1" and len(voluum["live_events"]) == 1
    assert [i["file"] for i in story["imports"]] == ["complaints.csv"]
    assert story["erasures"] == [] and story["cleaning"] is None and story["ongage"] == []


def test_bad_and_unknown_numbers(client: Any, users: Any, session: Any) -> None:
    viewer = users.headers("viewer")
    for bad in ("not-a-number", "12", "1' OR '1'='1", "9" * 70):
        response = client.get(f"/api/numbers/{bad}", headers=viewer)
        assert response.status_code == 422, (bad, response.text)
    assert client.get(f"/api/numbers/{NUMBER}", params={"region": ""}, headers=viewer).status_code == 200
    unknown = client.get("/api/numbers/+14155552671", headers=viewer).json()
    assert unknown["known"] is False and unknown["status"] is None and unknown["hlr"] == []
    assert client.get(f"/api/numbers/{NUMBER}").status_code == 401
    assert session.scalar(select(func.count()).select_from(PhoneNumber)) == 0  # looking changes nothing


def test_cli_lookup_from_another_folder(db_url: str, hlr_env: dict[str, str], monkeypatch: pytest.MonkeyPatch,
                                        tmp_path: Path) -> None:
    from phoneops.cli import _mount_domains
    from phoneops.settings import reset_settings_cache

    _mount_domains()
    tracked()
    hlr_lookup([NUMBER])
    monkeypatch.setenv("DATABASE_URL", db_url)
    monkeypatch.chdir(tmp_path)
    reset_settings_cache()
    result = CliRunner().invoke(cli_app, ["numbers", "lookup", "07400 123456", "--region", "GB"])
    assert result.exit_code == 0, result.output
    assert "blacklist" in result.output and "DEAD" in result.output and "HLR_FAILED" in result.output
    assert "1 traffic rows" in result.output
    as_json = CliRunner().invoke(cli_app, ["numbers", "lookup", NUMBER, "--json"])
    assert as_json.exit_code == 0 and '"live_status": "DEAD"' in as_json.output
    bad = CliRunner().invoke(cli_app, ["numbers", "lookup", "nope"])
    assert bad.exit_code == 1 and "not a valid phone number" in bad.output


@pytest.mark.browser
def test_the_number_page_shows_hlr_results(browser: Any, live_server: str, users: Any,
                                           hlr_env: dict[str, str], tmp_path: Path) -> None:
    tracked()
    hlr_lookup([NUMBER])
    users.create("admin", "amy")
    users.create("viewer", "vera")
    page = browser.new_page()
    login(page, live_server, "amy")
    page.goto(live_server + "/numbers/lists/blacklist")
    page.click("[data-number-link]")
    page.wait_for_selector("[data-number-story]")
    assert page.inner_text("[data-field=number]") == NUMBER
    assert page.inner_text("[data-field=number-status]") == "blacklist"
    hlr = page.inner_text("[data-table=hlr]")
    assert "DEAD" in hlr and "HLR_FAILED" in hlr
    assert "Android 9" in page.inner_text("[data-table=traffic]")
    page.screenshot(path=str(tmp_path / "number-admin.png"), full_page=True)
    viewer = browser.new_page()
    login(viewer, live_server, "vera")
    viewer.goto(live_server + "/numbers/lists/blacklist")
    viewer.click("[data-number-link]")
    viewer.wait_for_selector("[data-number-story]")
    shown = viewer.inner_text("[data-field=number]")
    assert shown != NUMBER and "7400123456" not in viewer.content()
    assert "DEAD" in viewer.inner_text("[data-table=hlr]")
    # the lookup form goes to the page too
    viewer.goto(live_server + "/numbers/find?number=07400+123456&region=GB")
    assert viewer.url.endswith(f"/numbers/n/{key_of(NUMBER)}")
    viewer.screenshot(path=str(tmp_path / "number-viewer.png"), full_page=True)
    missing = viewer.goto(live_server + "/numbers/n/00ff")
    assert missing is not None and missing.status == 422


def test_the_story_names_the_cleaning_run_and_the_ongage_state(client: Any, users: Any,
                                                               inline_jobs: list[str]) -> None:
    """Item 3: the cleaning run that used the number (with its file) and where its conversion stands at Ongage,
    through the API and the page (the whole-story test above pins both empty for a number without them)."""
    op = users.headers("operator")
    with session_scope() as session:
        conversions.store(session, SYSTEM, [WireConversion.from_row({
            "clickId": "k1", "transactionId": "t1", "conversionType": "FTD", "campaignName": "A - United Kingdom - B",
            "offerId": "offer-a", "offerName": "Offer A", "customVariable1": NUMBER,
            "postbackTimestamp": "2026-01-06 10:59:30 AM"})])
        assert enroll(session, ["GB"], datetime(2026, 1, 1, tzinfo=UTC)) == 1
    up = client.post("/api/cleaning/files", headers=op, data={"region": "GB"},
                     files={"file": ("june list.csv", b"phone\n07400 123456\n", "text/csv")})
    assert up.status_code == 201, up.text
    run = client.post(f"/api/cleaning/files/{up.json()['id']}/runs", headers=op, json={"add_to_used": True})
    assert run.status_code == 202, run.text
    run_id = run.json()["id"]

    story = client.get(f"/api/numbers/{NUMBER}", headers=users.headers("viewer")).json()
    assert story["cleaning"]["run_id"] == run_id and story["cleaning"]["file_name"] == "june list.csv"
    assert story["cleaning"]["run_status"] == "succeeded"
    [state] = story["ongage"]
    assert (state["kind"], state["country"], state["status"], state["attempts"]) == ("FTD", "GB", "pending", 0)

    users.create("viewer", "vera")
    client.cookies.clear()
    login_form(client, "vera")
    page = client.get(f"/numbers/n/{key_of(NUMBER)}")
    assert page.status_code == 200
    assert f"used by cleaning run {run_id} of" in page.text and "june list.csv" in page.text
    ongage = page.text.split('data-table="ongage"', 1)[1].split("</table>", 1)[0]
    assert "<td>FTD</td><td>GB</td><td>pending</td><td>0</td>" in ongage


def test_an_erased_number_tells_only_that_it_was_erased(client: Any, users: Any, inline_jobs: list[str]) -> None:
    """Item 3, erasure state: after an erasure the story says so (API and page) and shows nothing else."""
    tracked()
    erased = client.post("/api/privacy/erasures", headers=users.headers("admin"),
                         json={"number": NUMBER, "region": "GB"})
    assert erased.status_code == 202, erased.text
    story = client.get(f"/api/numbers/{NUMBER}", headers=users.headers("viewer")).json()
    [erasure] = story["erasures"]
    assert (erasure["status"], erasure["masked"], erasure["requested_by"]) == ("done", "+447*******56", "admin-user")
    assert story["known"] is False and story["status"] is None and story["voluum"]["traffic_rows"] == 0
    users.create("viewer", "vera")
    client.cookies.clear()
    login_form(client, "vera")
    page = client.get(f"/numbers/n/{key_of(NUMBER)}")
    assert page.status_code == 200 and 'data-field="erasure"' in page.text and "Erased on" in page.text
    assert "7400123456" not in page.text
