"""HLR pages served by the app (forms with CSRF): start a lookup, its status page, risky operators, outcomes."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest

from phoneops.core.db import session_scope
from phoneops.core.security import SYSTEM
from phoneops.hlr import risky
from phoneops.settings import reset_settings_cache
from phoneops.simulators._server import SimAdmin
from phoneops.simulators.hlr_lookup import DEFAULT_API_KEY, DEFAULT_API_SECRET
from support import login

NUMBERS = [f"+447911{n:06d}" for n in range(4000, 4010)]


@pytest.fixture
def hlr_env(hlr_sim: SimAdmin, hlr_sim_url: str, db_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[SimAdmin]:
    from phoneops.settings import reset_settings_cache

    for name, value in {"HLR_BASE_URL": hlr_sim_url, "HLR_BATCH_BASE_URL": hlr_sim_url,
                        "HLR_API_KEY": DEFAULT_API_KEY, "HLR_API_SECRET": DEFAULT_API_SECRET,
                        "HLR_POLL_EVERY_SECONDS": "0.02"}.items():
        monkeypatch.setenv(name, value)
    reset_settings_cache()
    with session_scope() as session:
        risky.restore_seed(session, SYSTEM)
    yield hlr_sim
    reset_settings_cache()


def test_start_a_lookup_from_the_page(client: Any, users: Any, hlr_env: SimAdmin, inline_jobs: list[str]) -> None:
    users.create("operator", "olga")
    csrf = login(client, "olga")
    page = client.get("/hlr")
    assert page.status_code == 200 and "Look numbers up" in page.text and "No lookups yet." in page.text
    body = ("phone\n" + "\n".join(NUMBERS) + "\nnot-a-number\n").encode()
    started = client.post("/hlr/lookups", data={"csrf_token": csrf, "source": "file", "region": "GB",
                                                "mode": "realtime"},
                          files={"file": ("mine.csv", body, "text/csv")}, follow_redirects=False)
    assert started.status_code == 303, started.text
    status = client.get(started.headers["location"])
    assert status.status_code == 200
    assert 'data-field="lookup-status">succeeded' in status.text
    assert re.search(r'data-counter="looked_up">10<', status.text)
    assert "data-breakdown" in status.text and "<svg" in status.text
    clean = client.get(started.headers["location"] + "/download/clean")
    assert clean.status_code == 200 and clean.text.startswith("phone_number")
    assert "mine.csv" in client.get("/hlr").text
    only_done = client.get(started.headers["location"], params={"state": "done"})
    assert NUMBERS[0] not in only_done.text and "data-number-link>+447*******00</a>" in only_done.text  # masked
    assert only_done.text.count("looked up</td>") == 10

    no_file = client.post("/hlr/lookups", data={"csrf_token": csrf, "source": "file"}, follow_redirects=False)
    assert no_file.status_code == 422 and "choose a file" in no_file.text
    no_csrf = client.post("/hlr/lookups", data={"source": "list", "status": "monitor"}, follow_redirects=False)
    assert no_csrf.status_code == 403


def _four_awaiting_confirmation(client: Any, users: Any, monkeypatch: pytest.MonkeyPatch) -> tuple[str, str]:
    """Olga (operator) uploads four numbers above a budget of 2 credits: (her CSRF token, the lookup's page)."""
    monkeypatch.setenv("HLR_CONFIRM_ABOVE_CREDITS", "2")
    reset_settings_cache()
    users.create("operator", "olga")
    csrf = login(client, "olga")
    body = ("phone\n" + "\n".join(NUMBERS[:4]) + "\n").encode()
    started = client.post("/hlr/lookups", data={"csrf_token": csrf, "source": "file"},
                          files={"file": ("four.csv", body, "text/csv")}, follow_redirects=False)
    return csrf, started.headers["location"]


def test_confirmation_on_the_status_page(
    client: Any, users: Any, hlr_env: SimAdmin, inline_jobs: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    csrf, where = _four_awaiting_confirmation(client, users, monkeypatch)
    page = client.get(where).text
    assert "awaiting confirmation" in page and "Confirm: spend up to 4 credits" in page
    assert hlr_env.stats()["total_paid_lookups"] == 0
    confirmed = client.post(where + "/confirm", data={"csrf_token": csrf}, follow_redirects=True)
    assert confirmed.status_code == 200 and 'data-field="lookup-status">succeeded' in confirmed.text
    assert hlr_env.stats()["total_paid_lookups"] == 4


def test_cancel_clicked_on_a_page_left_open_after_the_lookup_ended(
    client: Any, users: Any, hlr_env: SimAdmin, inline_jobs: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Olga's page still shows Cancel (the lookup awaited confirmation); meanwhile an admin confirmed it and it
    ran to the end. Her click answers what happened, in the page's words, and changes nothing."""
    csrf, where = _four_awaiting_confirmation(client, users, monkeypatch)
    assert f'action="{where}/cancel"' in client.get(where).text  # what her open page offers
    from phoneops.hlr import lookups

    lookup_id = int(where.rsplit("/", 1)[1])
    with session_scope() as session:  # someone else confirms; the embedded worker runs it to the end
        lookups.confirm_lookup(session, SYSTEM, lookup_id)
    assert 'data-field="lookup-status">succeeded' in client.get(where).text
    clicked = client.post(where + "/cancel", data={"csrf_token": csrf}, follow_redirects=True)
    assert clicked.status_code == 200
    assert (f"Not done: HLR lookup {lookup_id} already ended (succeeded): there is nothing to cancel"
            in clicked.text.replace("&#39;", "'"))
    assert 'data-field="lookup-status">succeeded' in clicked.text and f'action="{where}/cancel"' not in clicked.text
    assert hlr_env.stats()["total_paid_lookups"] == 4


def test_risky_and_outcome_pages(client: Any, users: Any, hlr_env: SimAdmin) -> None:
    users.create("admin", "ada")
    csrf = login(client, "ada")
    page = client.get("/hlr/risky", params={"q": "truphone"})
    assert page.status_code == 200 and "truphonelimited" in page.text and "4 of 269 operators" in page.text
    added = client.post("/hlr/risky", data={"csrf_token": csrf, "name": "Odd Net", "mccmnc": "23401"},
                        follow_redirects=True)
    assert "oddnet" in added.text and "of 270 operators" in added.text and "Added Odd Net" in added.text
    bad = client.post("/hlr/risky", data={"csrf_token": csrf, "mccmnc": "1"})
    assert bad.status_code == 422 and "5 or 6 digits" in bad.text
    rules = client.get("/hlr/outcomes")
    assert "HLR_RISKY_NETWORK" in rules.text
    saved = client.post("/hlr/outcomes", data={"csrf_token": csrf, "action_DEAD": "monitor", "reason_DEAD": "HLR_DEAD"},
                        follow_redirects=True)
    assert saved.status_code == 200 and 'value="HLR_DEAD"' in saved.text and "changed" in saved.text
    reset = client.post("/hlr/outcomes/reset", data={"csrf_token": csrf}, follow_redirects=True)
    assert 'value="HLR_DEAD"' not in reset.text


def test_viewers_read_but_cannot_start(client: Any, users: Any, hlr_env: SimAdmin) -> None:
    users.create("viewer", "vic")
    csrf = login(client, "vic")
    page = client.get("/hlr")
    assert page.status_code == 200 and "Look numbers up" not in page.text
    refused = client.post("/hlr/lookups", data={"csrf_token": csrf, "source": "list", "status": "monitor"},
                          follow_redirects=False)
    assert refused.status_code == 403
    assert client.get("/hlr/lookups/42").status_code == 404
