"""Every registered route refuses anonymous callers (but /health and the login page)."""

from __future__ import annotations

import re
from typing import Any

from phoneops.core.routes import iter_routes

PUBLIC = {("GET", "/health"), ("GET", "/login"), ("POST", "/login")}
MUTATING = {"POST", "PUT", "PATCH", "DELETE"}


def _concrete(path: str) -> str:
    return re.sub(r"\{[^}]+\}", "00000000-0000-0000-0000-000000000000", path)


def _routes(app: Any) -> list[tuple[str, str]]:
    found = []
    for route in iter_routes(app):
        if route.path.startswith("/static"):
            continue
        for method in sorted(route.methods - {"HEAD", "OPTIONS"}):
            found.append((method, route.path))
    return found


def test_anonymous_is_refused_everywhere(client: Any, app: Any) -> None:
    routes = _routes(app)
    assert len(routes) > 20
    for method, path in routes:
        if (method, path) in PUBLIC:
            continue
        response = client.request(method, _concrete(path), follow_redirects=False)
        if path.startswith("/api") or path in ("/metrics", "/openapi.json", "/docs"):
            assert response.status_code == 401, (method, path, response.status_code)
            assert response.json()["error"]["code"] == "unauthorized"
        else:
            assert response.status_code in (303, 401), (method, path, response.status_code)
            if response.status_code == 303:
                assert response.headers["location"].startswith("/login")


def test_viewer_token_cannot_mutate(client: Any, app: Any, users: Any) -> None:
    headers = users.headers("viewer")
    allowed_for_viewer = {("POST", "/api/tokens"), ("DELETE", "/api/tokens/{token_id}"), ("POST", "/logout"),
                          ("POST", "/account/tokens"), ("POST", "/account/tokens/{token_id}/revoke")}
    checked = 0
    for method, path in _routes(app):
        if method not in MUTATING or (method, path) in PUBLIC or (method, path) in allowed_for_viewer:
            continue
        if not path.startswith("/api"):
            continue
        response = client.request(method, _concrete(path), headers=headers, json={})
        assert response.status_code == 403, (method, path, response.status_code, response.text)
        checked += 1
    assert checked >= 5


def test_api_routes_are_typed_in_openapi(client: Any, app: Any, users: Any) -> None:
    schema = client.get("/openapi.json", headers=users.headers("viewer")).json()
    api_paths = {r.path for r in iter_routes(app) if r.in_schema and r.path.startswith("/api")}
    assert api_paths <= set(schema["paths"])
    docs = client.get("/docs", headers=users.headers("viewer"))
    assert docs.status_code == 200 and "/static/swagger/swagger-ui-bundle.js" in docs.text
    assert client.get("/static/swagger/swagger-ui-bundle.js").status_code == 200


def test_metrics_need_login_and_report_jobs(client: Any, users: Any) -> None:
    response = client.get("/metrics", headers=users.headers("viewer"))
    assert response.status_code == 200
    assert "phoneops_users_active" in response.text
