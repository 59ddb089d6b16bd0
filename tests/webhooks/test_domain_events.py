"""The domains' own events reach a subscribed endpoint over real HTTP, signed: import.applied and import.undone
(numbers imports), budget.reached (an HLR lookup above its confirmation budget), batch.paused (the IMEI balance
guard) and review.needed (an IMEI order or HLR numbers in doubt). No event carries a phone number."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import update
from stdnum import luhn

from phoneops.core.db import session_scope
from phoneops.core.security import SYSTEM
from phoneops.settings import reset_settings_cache
from phoneops.simulators._server import SimAdmin, serve_in_thread
from webhook_receiver import SECRET, Receiver, events_of, receiver

__all__ = ["receiver"]  # the fixture

UK = ["+447911123456", "+447911123457", "+447911123458"]


def imei(serial: int) -> str:
    body = f"35332211{serial:06d}"
    return body + luhn.calc_check_digit(body)


def _subscribe(client: Any, users: Any, receiver: Receiver, events: list[str]) -> None:
    response = client.post("/api/webhooks", json={"url": receiver.url, "secret": SECRET, "events": events},
                           headers=users.headers("admin"))
    assert response.status_code == 201, response.text


def _no_plaintext(receiver: Receiver, numbers: list[str]) -> None:
    for _, body in receiver.received:
        assert not any(n.lstrip("+").encode() in body for n in numbers), body


def test_an_import_applied_and_undone_are_delivered(
    client: Any, users: Any, receiver: Receiver, inline_jobs: list[str]
) -> None:
    _subscribe(client, users, receiver, ["import.applied", "import.undone"])
    op = users.headers("operator")
    data = ("Phone,Reason,Source\n" + "".join(f"{n},FRAUD,partner\n" for n in UK)).encode()
    started = client.post("/api/numbers/imports", data={"region": "GB", "target": "blacklist"}, headers=op,
                          files={"file": ("partner.csv", data, "text/csv")})
    assert started.status_code == 202, started.text
    import_id = started.json()["id"]
    assert receiver.received == []  # a preview changes nothing and says nothing
    assert client.post(f"/api/numbers/imports/{import_id}/apply", headers=op).status_code == 202
    applied = events_of(receiver)["import.applied"]
    assert [(e["import_id"], e["changed"], e["new_numbers"], e["by"]) for e in applied] == [
        (import_id, 3, 3, "operator-user")]
    assert client.post(f"/api/numbers/imports/{import_id}/undo", headers=op).status_code == 202
    undone = events_of(receiver)["import.undone"]
    assert [(e["import_id"], e["restored"], e["refused"]) for e in undone] == [(import_id, 3, 0)]
    _no_plaintext(receiver, UK)


def test_an_hlr_lookup_above_its_budget_tells_budget_reached(
    client: Any, users: Any, receiver: Receiver, inline_jobs: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from phoneops.simulators.hlr_lookup import DEFAULT_API_KEY, DEFAULT_API_SECRET, HlrSimConfig, create_app

    _subscribe(client, users, receiver, ["budget.reached", "review.needed"])
    op = users.headers("operator")
    with serve_in_thread(create_app(HlrSimConfig(retry_after_s=0.0, batch_items_per_second=0.0))) as url:
        for name, value in {"HLR_BASE_URL": url, "HLR_BATCH_BASE_URL": url, "HLR_API_KEY": DEFAULT_API_KEY,
                            "HLR_API_SECRET": DEFAULT_API_SECRET, "HLR_POLL_EVERY_SECONDS": "0.02",
                            "HLR_CONFIRM_ABOVE_CREDITS": "2"}.items():
            monkeypatch.setenv(name, value)
        reset_settings_cache()
        body = ("msisdn\n" + "\n".join(UK) + "\n").encode()
        file_id = client.post("/api/files", files={"file": ("list.csv", body, "text/csv")}, headers=op).json()["id"]
        small = client.post("/api/hlr/lookups", json={"file_id": file_id, "start": False}, headers=op)
        assert small.status_code in (200, 201), small.text
        [event] = events_of(receiver)["budget.reached"]
        assert event["lookup_id"] == small.json()["id"] and event["budget"] == 2
        assert "above the confirmation budget of 2" in event["reason"]
        # Under the budget: no event.
        monkeypatch.setenv("HLR_CONFIRM_ABOVE_CREDITS", "100")
        reset_settings_cache()
        client.post("/api/hlr/lookups", json={"file_id": file_id, "start": False}, headers=op)
        assert len(events_of(receiver)["budget.reached"]) == 1
    reset_settings_cache()
    _no_plaintext(receiver, UK)


@pytest.fixture
def dhru_env(db_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[SimAdmin, str]]:
    from phoneops.simulators.dhru import DEFAULT_API_KEY, DEFAULT_USER, DhruSimConfig, create_app

    config = DhruSimConfig(users={DEFAULT_USER: DEFAULT_API_KEY}, pending_seconds=60, in_process_seconds=60,
                           reject_ratio=0.0)
    with serve_in_thread(create_app(config)) as url, SimAdmin(url) as admin:
        monkeypatch.delenv("GSM_FUSION_USERNAME", raising=False)
        monkeypatch.setenv("DHRU_ACCOUNTS", json.dumps([{"name": "alpha", "base_url": url, "username": DEFAULT_USER,
                                                         "api_key": DEFAULT_API_KEY}]))
        monkeypatch.setenv("IMEI_CONCURRENCY", "2")
        monkeypatch.setenv("IMEI_MIN_BALANCE", "1.00")
        monkeypatch.setenv("IMEI_BALANCE_CHECK_EVERY", "3")
        reset_settings_cache()
        yield admin, url
    reset_settings_cache()


def test_imei_batches_tell_batch_paused_and_review_needed(
    client: Any, users: Any, receiver: Receiver, dhru_env: tuple[SimAdmin, str], inline_jobs: list[str]
) -> None:
    from phoneops.imei import inputs, submission
    from phoneops.imei.dhru import DhruClient
    from phoneops.imei.models import ImeiOrder
    from phoneops.simulators.dhru import DEFAULT_API_KEY, DEFAULT_USER

    sim, url = dhru_env
    _subscribe(client, users, receiver, ["batch.paused", "review.needed"])
    # The balance guard pauses a batch before it crosses the minimum balance: batch.paused.
    with session_scope() as session:
        sim.configure(balance={DEFAULT_USER: "500"})  # the quote passes; the run then sees 1.31
        batch, _ = submission.create_batch(session, SYSTEM, [inputs.InputRow(imei(i)) for i in range(12)],
                                           "alpha:101")
        paused_id = batch.id
        sim.configure(balance={DEFAULT_USER: "1.31"})
    [paused] = events_of(receiver)["batch.paused"]
    assert paused["batch_id"] == paused_id and "minimum balance" in paused["reason"]
    assert "review.needed" not in events_of(receiver)
    # An order left `sending` by a killed worker that the provider already holds: in review, review.needed.
    sim.configure(balance={DEFAULT_USER: "500"})
    first = imei(40)
    with DhruClient("alpha", url, DEFAULT_USER, DEFAULT_API_KEY) as dhru:
        dhru.place_order(first, "101")  # reached the provider before the kill
    with session_scope() as session:
        batch, _ = submission.create_batch(session, SYSTEM, [inputs.InputRow(imei(40 + i)) for i in range(3)],
                                           "alpha:101")
        review_id = batch.id
        session.flush()
        session.execute(update(ImeiOrder).where(ImeiOrder.batch_id == review_id, ImeiOrder.imei == first)
                        .values(state="sending", attempts=1))
    [review] = events_of(receiver)["review.needed"]
    assert (review["batch_id"], review["needs_review"], review["new"]) == (review_id, 1, 1)
    assert review["page"] == "/review"
    assert len(events_of(receiver)["batch.paused"]) == 1
    _no_plaintext(receiver, [imei(i) for i in range(50)])


def test_an_hlr_run_that_leaves_numbers_in_doubt_tells_review_needed(
    client: Any, users: Any, receiver: Receiver, inline_jobs: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from phoneops.core import storage
    from phoneops.hlr.lookups import FileSource, create_lookup, item_counts
    from phoneops.simulators.hlr_lookup import DEFAULT_API_KEY, DEFAULT_API_SECRET, HlrSimConfig, create_app

    _subscribe(client, users, receiver, ["review.needed"])
    with serve_in_thread(create_app(HlrSimConfig(retry_after_s=0.0, batch_items_per_second=0.0))) as url, \
            SimAdmin(url) as sim:
        for name, value in {"HLR_BASE_URL": url, "HLR_BATCH_BASE_URL": url, "HLR_API_KEY": DEFAULT_API_KEY,
                            "HLR_API_SECRET": DEFAULT_API_SECRET, "HLR_POLL_EVERY_SECONDS": "0.02"}.items():
            monkeypatch.setenv(name, value)
        reset_settings_cache()

        def lookup(numbers: list[str]) -> int:
            with session_scope() as session:
                file_id = storage.get_storage().save_bytes(
                    session, SYSTEM, ("phone\n" + "\n".join(numbers) + "\n").encode(), kind="upload",
                    original_name="list.csv").id
            with session_scope() as session:  # confirmed: its job runs when this commits
                return create_lookup(session, SYSTEM, FileSource(file_id, "phone", "GB"), confirm=True).id

        done = lookup(UK[:1])  # a run that ends well says nothing
        assert "review.needed" not in events_of(receiver)
        sim.configure(fail_batches=True)  # the provider's batch fails: the numbers sent are in doubt
        doubt = lookup(UK[1:])  # (the first is answered from the fresh result of the run above)
        with session_scope() as session:
            assert item_counts(session, done) == {"done": 1} and item_counts(session, doubt) == {"review": 2}
    reset_settings_cache()
    [review] = events_of(receiver)["review.needed"]
    assert review == {"domain": "hlr", "lookup_id": doubt, "needs_review": 2, "new": 2,
                      "page": f"/hlr/lookups/{doubt}"}
    _no_plaintext(receiver, UK)
