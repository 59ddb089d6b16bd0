"""Signed webhooks against a real local receiver: delivered and verifiable, retried when the receiver is down,
slow or answers 500, never blocking or failing the job that caused them; resend; admin only."""

from __future__ import annotations

import hashlib
import hmac
import http.server
import json
import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest

from support import free_port

SECRET = "whsec-0123456789abcdef"


class Receiver:
    """A webhook receiver on 127.0.0.1: answers `statuses` in turn (then 200), optionally slowly."""

    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/hook"
        self.statuses: list[int] = []
        self.delay = 0.0
        self.received: list[tuple[dict[str, str], bytes]] = []
        self._server: http.server.ThreadingHTTPServer | None = None

    def start(self) -> None:
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                receiver.received.append(({k.lower(): v for k, v in self.headers.items()}, body))
                time.sleep(receiver.delay)
                status = receiver.statuses.pop(0) if receiver.statuses else 200
                self.send_response(status)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    r.start()
    yield r
    r.stop()


def verify_signature(secret: str, header: str, body: bytes, tolerance: int = 300) -> bool:
    """The receiver's check, as docs/api.md shows it."""
    parts = dict(item.split("=", 1) for item in header.split(","))
    timestamp = int(parts["t"])
    expected = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return abs(time.time() - timestamp) <= tolerance and hmac.compare_digest(expected, parts["v1"])


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
