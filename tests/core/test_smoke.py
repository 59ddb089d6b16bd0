from __future__ import annotations

from typing import Any


def test_health_is_public_and_reports_providers(client: Any) -> None:
    response = client.get("/health")
    assert response.status_code == 200
    body = response.json()
    assert body["database"]["ok"] is True
    assert body["providers"]["gsm_fusion"] == "not configured"
    assert body["jobs"]["ok"] is True


def test_me_with_token(client: Any, users: Any) -> None:
    response = client.get("/api/me", headers=users.headers("viewer"))
    assert response.status_code == 200
    assert response.json()["role"] == "viewer"
