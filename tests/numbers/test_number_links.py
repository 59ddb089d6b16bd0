"""Every page that shows a number links it to the number's story page (`/numbers/n/{key}`, the blind index:
never the number), masked for viewers; a number without a story stays plain text (issue 13 item 3)."""

from __future__ import annotations

import os
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
from phoneops.numbers import optouts
from phoneops.numbers.links import key_of
from phoneops.simulators._server import SimAdmin, serve_in_thread
from phoneops.simulators.hlr_lookup import DEFAULT_API_KEY, DEFAULT_API_SECRET, HlrSimConfig, create_app

NUMBER = "+447400123456"  # known: opted out, looked up
STRANGER = "+447825123456"  # in an uploaded list only: no story
SHOTS = Path(os.environ.get("PHONEOPS_TEST_SHOTS", "/tmp/i13c"))


@pytest.fixture(scope="module")
def hlr_url() -> Iterator[str]:
    with serve_in_thread(create_app(HlrSimConfig(retry_after_s=0.0, batch_items_per_second=0.0))) as url:
        yield url


@pytest.fixture
def hlr_env(hlr_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    from phoneops.settings import reset_settings_cache

    with SimAdmin(hlr_url) as admin:
        admin.reset()
    for name, value in {"HLR_BASE_URL": hlr_url, "HLR_BATCH_BASE_URL": hlr_url, "HLR_API_KEY": DEFAULT_API_KEY,
                        "HLR_API_SECRET": DEFAULT_API_SECRET}.items():
        monkeypatch.setenv(name, value)
    reset_settings_cache()
    yield
    reset_settings_cache()


def seed() -> int:
    """NUMBER looked up in an HLR lookup (run as a worker would), then opted out (an opted-out number is left
    out of lookups); the lookup's id."""
    with session_scope() as session:
        risky.restore_seed(session, SYSTEM)
        stored = storage.get_storage().save_bytes(
            session, SYSTEM, f"phone\n{NUMBER}\n".encode(), kind="upload", original_name="check.csv")
        lookup_id = create_lookup(session, SYSTEM, FileSource(stored.id, "phone", "GB"), mode="realtime",
                                  confirm=True).id
    with session_scope() as session:
        job_id = get_lookup(session, lookup_id).job_id
    assert job_id is not None
    jobs.run_job(job_id)  # (already run when the test runs jobs inline)
    with session_scope() as session:
        assert jobs.get_job(session, job_id).status == "succeeded"
    with session_scope() as session:
        optouts.add(session, SYSTEM, NUMBER, "complaint", region="GB")
    return lookup_id


def _links(html: str) -> list[str]:
    return re.findall(r'href="/numbers/n/([0-9a-f]+)" data-number-link', html)


def test_pages_link_known_numbers_and_leave_others_plain(client: Any, users: Any, hlr_env: None,
                                                         inline_jobs: list[str]) -> None:
    lookup_id = seed()
    key = key_of(NUMBER)
    viewer, admin = users.headers("viewer"), users.headers("admin")
    html = {"Accept": "text/html"}
    up = client.post("/api/cleaning/files", headers=users.headers("operator"),
                     files={"file": ("people.csv", f"name,phone\nann,{NUMBER}\nbob,{STRANGER}\n".encode())})
    assert up.status_code == 201, up.text
    erased = client.post("/api/privacy/erasures", headers=admin, json={"number": "+14155552671"})
    assert erased.status_code == 202, erased.text
    listed = client.post("/api/numbers/imports", data={"target": "blacklist", "region": "GB"}, headers=admin,
                         files={"file": ("bad.csv", f"phone,reason,source\n{NUMBER},COMPLAINT,partner\n"
                                         f"{STRANGER},COMPLAINT,partner\n".encode(), "text/csv")})
    assert listed.status_code == 202, listed.text
    pages = {
        f"/numbers/imports/{listed.json()['id']}": [key],  # previewed: the new number has no story yet
        f"/hlr/lookups/{lookup_id}": [key],
        "/numbers/optouts": [key],
        f"/voluum/find?number={NUMBER[1:]}&region=GB": [key],
        f"/cleaning/files/{up.json()['id']}": [key],  # bob's number has no story: plain text
    }
    for path, keys in pages.items():
        page = client.get(path, headers={**viewer, **html})
        assert page.status_code == 200, (path, page.text[:300])
        assert _links(page.text) == keys, path
        if "find" not in path:  # Voluum find shows the number its caller typed
            assert "7400123456" not in page.text, path  # viewers: masked, in the text and in the address
    stranger = client.get(f"/cleaning/files/{up.json()['id']}", headers={**admin, **html}).text
    assert STRANGER in stranger and _links(stranger) == [key]  # shown in full to an admin, but not linked
    privacy = client.get("/privacy", headers={**admin, **html})
    assert _links(privacy.text) == [key_of("+14155552671")]  # an erased number's story is its erasure
    assert client.get(f"/numbers/n/{key_of('+14155552671')}", headers={**viewer, **html}).status_code == 200
    for target in {k for keys in pages.values() for k in keys}:
        story = client.get(f"/numbers/n/{target}", headers={**viewer, **html})
        assert story.status_code == 200 and "data-number-story" in story.text and "7400123456" not in story.text


@pytest.mark.browser
def test_a_viewer_clicks_numbers_through_to_their_story(browser: Any, live_server: str, client: Any, users: Any,
                                                        hlr_env: None) -> None:
    lookup_id = seed()
    up = client.post("/api/cleaning/files", headers=users.headers("operator"),
                     files={"file": ("people.csv", f"name,phone\nann,{NUMBER}\nbob,{STRANGER}\n".encode())})
    assert up.status_code == 201, up.text
    users.create("admin", "amy")
    users.create("viewer", "vera")
    erased = client.post("/api/privacy/erasures", headers=users.headers("admin"), json={"number": "+14155552671"})
    assert erased.status_code == 202, erased.text
    key = key_of(NUMBER)
    SHOTS.mkdir(parents=True, exist_ok=True)
    page = browser.new_page()
    page.goto(live_server + "/login")
    page.fill("input[name=username]", "vera")
    page.fill("input[name=password]", "correct-horse-battery")
    page.click("button[type=submit]")
    page.wait_for_load_state()
    for name, path in (("hlr-lookup", f"/hlr/lookups/{lookup_id}"), ("optouts", "/numbers/optouts"),
                       ("voluum-find", f"/voluum/find?number={NUMBER[1:]}&region=GB"),
                       ("cleaning-file", f"/cleaning/files/{up.json()['id']}")):
        page.goto(live_server + path)
        link = page.locator("[data-number-link]").first
        shown = link.inner_text()
        if name == "voluum-find":
            assert shown == NUMBER  # the number its caller typed
        else:
            assert shown != NUMBER and shown.endswith("56") and "*" in shown, (name, shown)  # masked for viewers
        page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)
        link.click()
        page.wait_for_selector("[data-number-story]")
        assert page.url == f"{live_server}/numbers/n/{key}", name
        assert "7400123456" not in page.url and "7400123456" not in page.content()
        masked = page.inner_text("[data-field=number]")
        assert masked.startswith("+447") and masked.endswith("56") and "*" in masked
    page.screenshot(path=str(SHOTS / "story.png"), full_page=True)
    admin = browser.new_page()  # the privacy page is the admins': an erased number's story is its erasure
    admin.goto(live_server + "/login")
    admin.fill("input[name=username]", "amy")
    admin.fill("input[name=password]", "correct-horse-battery")
    admin.click("button[type=submit]")
    admin.wait_for_load_state()
    admin.goto(live_server + "/privacy")
    admin.screenshot(path=str(SHOTS / "privacy.png"), full_page=True)
    admin.click("[data-number-link]")
    admin.wait_for_selector("[data-number-story]")
    assert admin.url == f"{live_server}/numbers/n/{key_of('+14155552671')}" and "4155552671" not in admin.url

