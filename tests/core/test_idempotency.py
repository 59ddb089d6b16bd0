"""Idempotency-Key on the API: replays, refusals, in-flight requests, sessions and the OpenAPI schema."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from fastapi import Depends
from fastapi.testclient import TestClient

from support import login


def _tokens(client: Any, headers: dict[str, str]) -> list[dict[str, Any]]:
    response = client.get("/api/tokens", headers=headers)
    assert response.status_code == 200
    result: list[dict[str, Any]] = response.json()
    return result


def test_same_key_same_body_replays_the_first_answer_without_doing_the_work_again(client: Any, users: Any) -> None:
    op = users.headers("operator")
    before = len(_tokens(client, op))
    first = client.post("/api/tokens", json={"name": "report"}, headers={**op, "Idempotency-Key": "k-1"})
    assert first.status_code == 201, first.text
    assert "idempotent-replayed" not in first.headers
    second = client.post("/api/tokens", json={"name": "report"}, headers={**op, "Idempotency-Key": "k-1"})
    assert second.status_code == 201
    assert second.headers["idempotent-replayed"] == "true"
    assert second.json() == first.json()  # the same token, once: the plaintext was shown for the first call only
    assert len(_tokens(client, op)) == before + 1
    # Another key is another request.
    third = client.post("/api/tokens", json={"name": "report"}, headers={**op, "Idempotency-Key": "k-2"})
    assert third.status_code == 201 and third.json()["id"] != first.json()["id"]
    assert len(_tokens(client, op)) == before + 2


def test_same_key_with_another_body_is_refused_and_changes_nothing(client: Any, users: Any) -> None:
    op = users.headers("operator")
    assert client.post("/api/tokens", json={"name": "a"}, headers={**op, "Idempotency-Key": "k"}).status_code == 201
    count = len(_tokens(client, op))
    other = client.post("/api/tokens", json={"name": "b"}, headers={**op, "Idempotency-Key": "k"})
    assert other.status_code == 422
    assert other.json()["error"]["code"] == "idempotency_key_reused"
    # Another path with the same key is another request too.
    elsewhere = client.post("/api/jobs/sample", json={"steps": 1}, headers={**op, "Idempotency-Key": "k"})
    assert elsewhere.status_code == 422
    assert len(_tokens(client, op)) == count


def test_keys_belong_to_one_caller(client: Any, users: Any) -> None:
    op, admin = users.headers("operator"), users.headers("admin")
    mine = client.post("/api/tokens", json={"name": "x"}, headers={**op, "Idempotency-Key": "shared"})
    theirs = client.post("/api/tokens", json={"name": "x"}, headers={**admin, "Idempotency-Key": "shared"})
    assert mine.status_code == theirs.status_code == 201
    assert mine.json()["id"] != theirs.json()["id"]
    assert "idempotent-replayed" not in theirs.headers


@pytest.mark.parametrize("key", [b"", b"a" * 201, "naïve".encode(), b"with space"])
def test_a_malformed_key_is_refused_before_any_work(client: Any, users: Any, key: bytes) -> None:
    op = users.headers("operator")
    count = len(_tokens(client, op))
    response = client.post("/api/tokens", json={"name": "x"}, headers={**op, "Idempotency-Key": key})
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "idempotency_key_invalid"
    assert len(_tokens(client, op)) == count


def test_a_failed_request_keeps_nothing_so_the_retry_runs(client: Any, users: Any) -> None:
    admin = users.headers("admin")
    body = {"username": "newbie", "password": "short", "role": "viewer"}
    refused = client.post("/api/users", json=body, headers={**admin, "Idempotency-Key": "u-1"})
    assert refused.status_code == 422, refused.text
    again = client.post("/api/users", json=body, headers={**admin, "Idempotency-Key": "u-1"})
    assert again.status_code == 422 and "idempotent-replayed" not in again.headers
    good = {**body, "password": "a-long-enough-password"}
    # the refused body was not kept, but the key is still bound to nothing: a corrected body runs
    created = client.post("/api/users", json=good, headers={**admin, "Idempotency-Key": "u-1"})
    assert created.status_code == 201, created.text
    replay = client.post("/api/users", json=good, headers={**admin, "Idempotency-Key": "u-1"})
    assert replay.status_code == 201 and replay.headers["idempotent-replayed"] == "true"


def test_a_browser_session_has_its_own_key_space_and_multipart_retries_match(client: Any, users: Any) -> None:
    users.create("operator", "olga")
    csrf = login(client, "olga")
    headers = {"X-CSRF-Token": csrf, "Idempotency-Key": "upload-1"}
    files = {"file": ("list.csv", b"number\n+4915112345678\n", "text/csv")}
    first = client.post("/api/files", files=files, headers=headers)
    # httpx draws a new multipart boundary per request: the retry still matches the first request
    second = client.post("/api/files", files=files, headers=headers)
    assert first.status_code == 201, first.text
    assert second.status_code == 201 and second.headers["idempotent-replayed"] == "true"
    assert second.json()["id"] == first.json()["id"]
    changed = client.post("/api/files", files={"file": ("list.csv", b"number\n+4915112345679\n", "text/csv")},
                          headers=headers)
    assert changed.status_code == 422


def test_while_the_first_request_runs_the_same_key_answers_409(app: Any, users: Any) -> None:
    from phoneops.core.deps import operator

    started, release = threading.Event(), threading.Event()

    def slow(_: Any = Depends(operator)) -> dict[str, str]:
        started.set()
        release.wait(60)
        return {"done": "yes"}

    app.add_api_route("/api/test-slow", slow, methods=["POST"])
    op = {**users.headers("operator"), "Idempotency-Key": "slow-1"}
    answers: list[Any] = []
    with TestClient(app, base_url="http://127.0.0.1") as client:
        first = threading.Thread(target=lambda: answers.append(client.post("/api/test-slow", headers=op)))
        first.start()
        assert started.wait(60)
        busy = client.post("/api/test-slow", headers=op)
        assert busy.status_code == 409
        assert busy.json()["error"]["code"] == "idempotency_in_progress"
        assert busy.headers["retry-after"] == "1"
        release.set()
        first.join(60)
        assert answers[0].status_code == 200
        replay = client.post("/api/test-slow", headers=op)
        assert replay.status_code == 200 and replay.json() == {"done": "yes"}
        assert replay.headers["idempotent-replayed"] == "true"


def test_expired_keys_are_forgotten(client: Any, users: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from datetime import timedelta

    from phoneops.core import idempotency
    from phoneops.core.db import utcnow

    op = users.headers("operator")
    first = client.post("/api/tokens", json={"name": "e"}, headers={**op, "Idempotency-Key": "old"})
    assert first.status_code == 201
    later = utcnow() + timedelta(hours=25)
    monkeypatch.setattr(idempotency, "utcnow", lambda: later)
    again = client.post("/api/tokens", json={"name": "e"}, headers={**op, "Idempotency-Key": "old"})
    assert again.status_code == 201 and "idempotent-replayed" not in again.headers
    assert again.json()["id"] != first.json()["id"]
    assert idempotency.purge_expired() == 0  # the expired row was replaced; the new one lives on


def test_the_schema_documents_the_header_on_every_state_changing_api_operation(client: Any, users: Any) -> None:
    schema = client.get("/openapi.json", headers=users.headers("viewer")).json()
    checked = 0
    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            names = {p["name"] for p in operation.get("parameters", [])}
            if path.startswith("/api/") and method in {"post", "put", "patch", "delete"}:
                assert "Idempotency-Key" in names, (method, path)
                checked += 1
            else:
                assert "Idempotency-Key" not in names, (method, path)
    assert checked > 20
