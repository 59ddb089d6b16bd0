"""Signed webhooks against a real local receiver: delivered and verifiable, retried when the receiver is down,
slow or answers 500, never blocking or failing the job that caused them; resend; admin only."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest

from webhook_receiver import SECRET, Receiver, receiver, verify_signature

__all__ = ["receiver"]  # the fixture


def _register(client: Any, admin: dict[str, str], url: str, events: list[str] | None = None) -> dict[str, Any]:
    response = client.post("/api/webhooks", json={"url": url, "secret": SECRET,
                                                  "events": events or ["job.finished", "job.failed"]}, headers=admin)
    assert response.status_code == 201, response.text
    result: dict[str, Any] = response.json()
    return result


def _deliveries(client: Any, admin: dict[str, str]) -> list[dict[str, Any]]:
    result: list[dict[str, Any]] = client.get("/api/webhooks/deliveries", headers=admin).json()
    return result


def test_a_finished_job_is_delivered_signed(client: Any, users: Any, receiver: Receiver, inline_jobs: list[str]) -> None:
    admin = users.headers("admin")
    _register(client, admin, receiver.url)
    job = client.post("/api/jobs/sample", json={"steps": 2, "delay": 0}, headers=users.headers("operator")).json()
    assert client.get(f"/api/jobs/{job['id']}", headers=admin).json()["status"] == "succeeded"
    assert len(receiver.received) == 1
    headers, body = receiver.received[0]
    assert verify_signature(SECRET, headers["phoneops-signature"], body)
    assert not verify_signature("another-secret-value", headers["phoneops-signature"], body)
    event = json.loads(body)
    assert event["event"] == "job.finished" and headers["phoneops-event"] == "job.finished"
    assert event["data"]["job_id"] == job["id"] and event["data"]["status"] == "succeeded"
    [delivery] = _deliveries(client, admin)
    assert delivery["status"] == "delivered" and delivery["attempts"] == 1
    detail = client.get(f"/api/webhooks/deliveries/{delivery['id']}", headers=admin).json()
    assert "attempt_log" in detail, detail
    assert [a["status_code"] for a in detail["attempt_log"]] == [200]


def test_a_receiver_answering_500_is_retried_until_it_accepts(
    client: Any, users: Any, receiver: Receiver, inline_jobs: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from phoneops.webhooks import service

    monkeypatch.setattr(service, "RETRY_FIRST_SECONDS", 0.0)  # no wait between tries in this test
    admin = users.headers("admin")
    endpoint = _register(client, admin, receiver.url, ["ping"])
    receiver.statuses = [500, 500, 503]
    assert client.post(f"/api/webhooks/{endpoint['id']}/test", headers=admin).status_code == 202
    [delivery] = _deliveries(client, admin)
    assert delivery["status"] == "delivered" and delivery["attempts"] == 4
    detail = client.get(f"/api/webhooks/deliveries/{delivery['id']}", headers=admin).json()
    assert [a["status_code"] for a in detail["attempt_log"]] == [500, 500, 503, 200]
    assert len({body for _, body in receiver.received}) == 1  # the same event each time


def test_a_down_or_slow_receiver_waits_visibly_and_never_fails_the_job(
    client: Any, users: Any, receiver: Receiver, inline_jobs: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from phoneops.core import jobs
    from phoneops.core.db import utcnow
    from phoneops.webhooks import service

    admin = users.headers("admin")
    _register(client, admin, receiver.url)
    receiver.stop()  # down
    job = client.post("/api/jobs/sample", json={"steps": 1, "delay": 0}, headers=users.headers("operator")).json()
    assert client.get(f"/api/jobs/{job['id']}", headers=admin).json()["status"] == "succeeded"
    [delivery] = _deliveries(client, admin)
    assert delivery["status"] == "pending" and delivery["attempts"] == 1 and "ConnectError" in delivery["last_error"]
    waiting = client.get(f"/api/jobs/{delivery['job_id']}", headers=admin).json()
    assert waiting["status"] == "queued" and "webhook receiver" in waiting["message"]
    # It comes back, but slow: the attempt times out and waits again (a growing delay).
    receiver.start()
    receiver.delay = 1.5
    monkeypatch.setattr(service, "TIMEOUT_SECONDS", 0.5)
    later = utcnow() + timedelta(seconds=service.retry_delay(1) + 1)
    monkeypatch.setattr(jobs, "utcnow", lambda: later)
    jobs.run_job(delivery["job_id"])
    slow = client.get(f"/api/webhooks/deliveries/{delivery['id']}", headers=admin).json()
    assert slow["status"] == "pending" and slow["attempts"] == 2 and "Timeout" in slow["last_error"]
    # Past a day of trying, the delivery fails for good (and can be resent).
    monkeypatch.setattr(service, "utcnow", lambda: utcnow() + timedelta(hours=25))
    monkeypatch.setattr(jobs, "utcnow", lambda: utcnow() + timedelta(hours=25))
    jobs.run_job(delivery["job_id"])
    failed = client.get(f"/api/webhooks/deliveries/{delivery['id']}", headers=admin).json()
    assert failed["status"] == "failed" and failed["attempts"] == 3
    monkeypatch.undo()
    receiver.delay = 0
    resent = client.post(f"/api/webhooks/deliveries/{delivery['id']}/resend", headers=admin)
    assert resent.status_code == 202
    assert client.get(f"/api/webhooks/deliveries/{resent.json()['id']}", headers=admin).json()["status"] == "delivered"


def test_a_failing_listener_never_fails_the_job(
    client: Any, users: Any, inline_jobs: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from phoneops.webhooks import service

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("webhook store unavailable")

    _register(client, users.headers("admin"), "http://127.0.0.1:9/never")
    monkeypatch.setattr(service, "emit", broken)
    job = client.post("/api/jobs/sample", json={"steps": 1, "delay": 0}, headers=users.headers("operator")).json()
    assert client.get(f"/api/jobs/{job['id']}", headers=users.headers("admin")).json()["status"] == "succeeded"


def test_bad_endpoints_are_refused_and_only_admins_manage_them(client: Any, users: Any) -> None:
    admin, op = users.headers("admin"), users.headers("operator")
    for body, word in [
        ({"url": "ftp://example.org/x", "secret": SECRET, "events": ["ping"]}, "http(s)"),
        ({"url": "https://example.org/x", "secret": SECRET, "events": ["everything"]}, "unknown: everything"),
    ]:
        refused = client.post("/api/webhooks", json=body, headers=admin)
        assert refused.status_code == 422 and word in refused.json()["error"]["message"]
    assert client.post("/api/webhooks", json={"url": "https://example.org/x", "secret": "short", "events": ["ping"]},
                       headers=admin).status_code == 422
    assert client.get("/api/webhooks", headers=admin).json() == []
    assert client.get("/api/webhooks", headers=op).status_code == 403


def test_webhooks_page_adds_an_endpoint_and_shows_errors(client: Any, users: Any) -> None:
    from support import login

    users.create("admin", "ada")
    csrf = login(client, "ada")
    bad = client.post("/admin/webhooks", data={"csrf_token": csrf, "url": "", "secret": "", "events": ["ping"]})
    assert bad.status_code == 422 and "http(s) address" in bad.text and "<form" in bad.text
    good = client.post("/admin/webhooks", data={"csrf_token": csrf, "url": "https://example.org/h",
                                                "secret": SECRET, "events": ["job.failed"]}, follow_redirects=True)
    assert good.status_code == 200 and "https://example.org/h" in good.text and "job.failed" in good.text
    assert SECRET not in good.text


def test_an_endpoint_is_removed_with_its_deliveries_by_an_admin_only_and_audited(
    client: Any, users: Any, receiver: Receiver, inline_jobs: list[str]
) -> None:
    from support import login

    admin, op = users.headers("admin"), users.headers("operator")
    kept, gone = _register(client, admin, receiver.url, ["ping"]), _register(client, admin, receiver.url, ["ping"])
    for endpoint in (kept, gone):
        assert client.post(f"/api/webhooks/{endpoint['id']}/test", headers=admin).status_code == 202
    assert len(_deliveries(client, admin)) == 2
    # Refused: not an admin, no such endpoint; nothing removed.
    assert client.delete(f"/api/webhooks/{gone['id']}", headers=op).status_code == 403
    assert client.delete("/api/webhooks/999999", headers=admin).status_code == 404
    assert client.delete("/api/webhooks/0", headers=admin).status_code == 422
    assert len(client.get("/api/webhooks", headers=admin).json()) == 2
    assert client.delete(f"/api/webhooks/{gone['id']}", headers=admin).status_code == 204
    assert [e["id"] for e in client.get("/api/webhooks", headers=admin).json()] == [kept["id"]]
    assert [d["endpoint_id"] for d in _deliveries(client, admin)] == [kept["id"]]  # its history went with it
    assert client.delete(f"/api/webhooks/{gone['id']}", headers=admin).status_code == 404
    # The page: a confirm step; without its confirmation or without the CSRF token nothing is deleted.
    users.create("admin", "ada")
    csrf = login(client, "ada")
    url = f"/admin/webhooks/{kept['id']}/remove"
    assert f'href="{url}"' in client.get("/admin/webhooks").text
    asked = client.get(url)
    assert asked.status_code == 200 and receiver.url in asked.text and "(1 delivery)" in asked.text
    assert client.post(url, data={"confirm": "yes"}).status_code == 403  # no CSRF token
    unconfirmed = client.post(url, data={"csrf_token": csrf}, follow_redirects=False)
    assert unconfirmed.status_code == 303 and unconfirmed.headers["location"] == url
    assert len(client.get("/api/webhooks", headers=admin).json()) == 1
    removed = client.post(url, data={"csrf_token": csrf, "confirm": "yes"}, follow_redirects=True)
    assert removed.status_code == 200 and "No endpoints yet" in removed.text
    assert client.get("/api/webhooks", headers=admin).json() == [] and _deliveries(client, admin) == []
    assert client.get(url).status_code == 404
    audited = client.get("/api/audit", params={"action": "webhook.remove"}, headers=admin).json()
    assert sorted((e["target_id"], e["actor"]) for e in audited) == sorted(
        [(str(gone["id"]), "admin-user"), (str(kept["id"]), "ada")])
