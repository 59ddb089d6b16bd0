"""The authorization matrix: every registered route x (anonymous, viewer, operator, admin).

`DECISIONS` is the one table of who may call what: (method, path) -> the lowest role that may
(`PUBLIC` for no login). The routes come from the app itself (`iter_routes`), so a new route without a
decision, or a decision for a route that is gone, fails `test_every_route_has_a_decision`; the matrix
then calls each route as each caller and checks the answer:

- anonymous: 401 in the JSON error shape on the API, a redirect to /login on pages;
- below the route's role: 403;
- at or above it: anything but 401/403 (and no crash). Calls use harmless values (ids that do not
  exist, empty or invalid bodies), so an allowed call answers 404/422 or does nothing that matters.
"""

from __future__ import annotations

import re
from typing import Any

import pytest

from phoneops.core.routes import iter_routes
from support import login_form

PUBLIC, VIEWER, OPERATOR, ADMIN = "public", "viewer", "operator", "admin"
RANK = {VIEWER: 0, OPERATOR: 1, ADMIN: 2}
CALLERS = (None, VIEWER, OPERATOR, ADMIN)

DECISIONS: dict[tuple[str, str], str] = {
    # --- core: health, metrics, API docs, me, jobs, users, tokens, files, audit ---
    ("GET", "/health"): PUBLIC,
    ("GET", "/metrics"): VIEWER,
    ("GET", "/openapi.json"): VIEWER,
    ("GET", "/docs"): VIEWER,
    ("GET", "/api/me"): VIEWER,
    ("GET", "/api/jobs"): VIEWER,
    ("GET", "/api/jobs/{job_id}"): VIEWER,
    ("POST", "/api/jobs/{job_id}/cancel"): OPERATOR,
    ("POST", "/api/jobs/sample"): OPERATOR,
    ("GET", "/api/users"): ADMIN,
    ("POST", "/api/users"): ADMIN,
    ("POST", "/api/users/{username}/disable"): ADMIN,
    ("POST", "/api/users/{username}/enable"): ADMIN,
    ("PATCH", "/api/users/{username}"): ADMIN,
    ("POST", "/api/users/{username}/password"): ADMIN,
    ("POST", "/api/me/password"): VIEWER,  # one's own, with the current password
    ("GET", "/api/tokens"): VIEWER,  # own tokens; admins see all
    ("POST", "/api/tokens"): VIEWER,  # for oneself; admins for anyone
    ("DELETE", "/api/tokens/{token_id}"): VIEWER,  # own tokens; admins any
    ("GET", "/api/files"): VIEWER,  # lists only the files the caller may download
    ("POST", "/api/files"): OPERATOR,
    ("GET", "/api/files/{file_id}/download"): VIEWER,  # then per-kind rules (core.router.FILE_ROLES)
    ("GET", "/api/audit"): ADMIN,
    # --- sources (which lists pay: counts and money, no numbers) ---
    ("GET", "/api/sources"): VIEWER,
    ("GET", "/api/sources/report.csv"): VIEWER,
    ("GET", "/sources"): VIEWER,
    # --- webhooks (admin only) ---
    ("GET", "/api/webhooks"): ADMIN,
    ("POST", "/api/webhooks"): ADMIN,
    ("POST", "/api/webhooks/{endpoint_id}/disable"): ADMIN,
    ("POST", "/api/webhooks/{endpoint_id}/enable"): ADMIN,
    ("POST", "/api/webhooks/{endpoint_id}/test"): ADMIN,
    ("DELETE", "/api/webhooks/{endpoint_id}"): ADMIN,
    ("GET", "/api/webhooks/deliveries"): ADMIN,
    ("GET", "/api/webhooks/deliveries/{delivery_id}"): ADMIN,
    ("POST", "/api/webhooks/deliveries/{delivery_id}/resend"): ADMIN,
    ("GET", "/admin/webhooks"): ADMIN,
    ("POST", "/admin/webhooks"): ADMIN,
    ("POST", "/admin/webhooks/{endpoint_id}/test"): ADMIN,
    ("POST", "/admin/webhooks/{endpoint_id}/toggle"): ADMIN,
    ("GET", "/admin/webhooks/{endpoint_id}/remove"): ADMIN,
    ("POST", "/admin/webhooks/{endpoint_id}/remove"): ADMIN,
    ("POST", "/admin/webhooks/deliveries/{delivery_id}/resend"): ADMIN,
    # --- numbers ---
    ("GET", "/api/numbers/lookup"): VIEWER,
    ("POST", "/api/numbers/status"): OPERATOR,
    ("POST", "/api/numbers/bulk-status"): OPERATOR,
    ("GET", "/api/numbers/counts"): VIEWER,
    ("GET", "/api/numbers/lists/{status}"): VIEWER,
    ("GET", "/api/numbers/os-rules"): VIEWER,
    ("PUT", "/api/numbers/os-rules"): ADMIN,
    ("POST", "/api/numbers/os-rules/reset"): ADMIN,
    ("POST", "/api/numbers/os-rules/preview"): ADMIN,
    ("GET", "/api/numbers/classify"): VIEWER,
    ("POST", "/api/numbers/imports"): OPERATOR,
    ("GET", "/api/numbers/imports"): VIEWER,
    ("GET", "/api/numbers/imports/{import_id}/result"): VIEWER,
    ("GET", "/api/numbers/imports/{import_id}"): VIEWER,
    ("POST", "/api/numbers/imports/{import_id}/apply"): OPERATOR,  # then: an admin or who ran it
    ("POST", "/api/numbers/imports/{import_id}/discard"): OPERATOR,  # then: an admin or who ran it
    ("POST", "/api/numbers/imports/{import_id}/undo"): OPERATOR,  # then: an admin or who ran it; opt-outs admin
    ("GET", "/api/numbers/optouts"): VIEWER,  # masked unless admin
    ("GET", "/api/numbers/optouts/counts"): VIEWER,
    ("POST", "/api/numbers/optouts"): OPERATOR,
    ("POST", "/api/numbers/optouts/lift"): ADMIN,
    ("POST", "/api/numbers/exports"): OPERATOR,
    ("GET", "/api/numbers/exports"): VIEWER,
    ("GET", "/api/numbers/exports/{job_id}/download"): VIEWER,  # masked; plaintext exports admins only
    ("POST", "/api/numbers/tokens/encrypt"): OPERATOR,
    ("POST", "/api/numbers/tokens/decrypt"): ADMIN,
    ("GET", "/api/numbers/{number}"): VIEWER,  # the caller gives the number; the story shows it back
    ("GET", "/numbers"): VIEWER,
    ("GET", "/numbers/n/{key}"): VIEWER,  # masked for all but admins; the address is a blind index
    ("GET", "/numbers/find"): VIEWER,
    ("POST", "/numbers/status"): OPERATOR,
    ("GET", "/numbers/lists/{status}"): VIEWER,
    ("GET", "/numbers/lists/{status}/export.csv"): VIEWER,
    ("GET", "/numbers/rules"): VIEWER,
    ("POST", "/numbers/rules"): ADMIN,
    ("GET", "/numbers/imports"): VIEWER,
    ("POST", "/numbers/imports"): OPERATOR,
    ("GET", "/numbers/imports/{import_id}"): VIEWER,
    ("POST", "/numbers/imports/{import_id}/{action}"): OPERATOR,  # then: an admin or who ran it
    ("GET", "/numbers/optouts"): VIEWER,
    ("POST", "/numbers/optouts"): OPERATOR,
    ("POST", "/numbers/optouts/lift"): ADMIN,
    ("POST", "/numbers/optouts/feeds/{feed}"): OPERATOR,
    ("GET", "/numbers/exports"): VIEWER,
    ("POST", "/numbers/exports"): OPERATOR,
    # --- cleaning ---
    ("GET", "/api/cleaning/filters"): VIEWER,
    ("POST", "/api/cleaning/files"): OPERATOR,
    ("GET", "/api/cleaning/files"): VIEWER,
    ("GET", "/api/cleaning/files/{file_id}"): VIEWER,
    ("POST", "/api/cleaning/files/{file_id}/runs"): OPERATOR,
    ("POST", "/api/cleaning/files/{file_id}/encrypt"): OPERATOR,
    ("POST", "/api/cleaning/files/{file_id}/decrypt"): ADMIN,  # decrypting reveals numbers
    ("GET", "/api/cleaning/files/{file_id}/runs"): VIEWER,
    ("POST", "/api/cleaning/files/{file_id}/archive"): OPERATOR,
    ("POST", "/api/cleaning/files/{file_id}/restore"): OPERATOR,
    ("DELETE", "/api/cleaning/files/{file_id}"): OPERATOR,
    ("GET", "/api/cleaning/runs/{run_id}"): VIEWER,
    ("GET", "/api/cleaning/runs/{run_id}/stats"): VIEWER,
    ("GET", "/api/cleaning/runs/{run_id}/download/{which}"): OPERATOR,
    ("GET", "/cleaning"): VIEWER,
    ("GET", "/cleaning/encryption"): VIEWER,
    ("POST", "/cleaning/upload"): OPERATOR,
    ("GET", "/cleaning/files/{file_id}"): VIEWER,
    ("POST", "/cleaning/files/{file_id}/run"): OPERATOR,
    ("POST", "/cleaning/files/{file_id}/archive"): OPERATOR,
    ("POST", "/cleaning/files/{file_id}/restore"): OPERATOR,
    ("POST", "/cleaning/files/{file_id}/delete"): OPERATOR,
    ("GET", "/cleaning/runs/{run_id}/download/{which}"): OPERATOR,
    # --- voluum ---
    ("GET", "/api/voluum/status"): VIEWER,
    ("POST", "/api/voluum/traffic/sync"): OPERATOR,
    ("GET", "/api/voluum/traffic/days"): VIEWER,
    ("GET", "/api/voluum/traffic/days/{day}"): VIEWER,
    ("POST", "/api/voluum/conversions/sync"): OPERATOR,
    ("GET", "/api/voluum/conversions/syncs"): VIEWER,
    ("GET", "/api/voluum/conversions/counts"): VIEWER,
    ("GET", "/api/voluum/offers"): VIEWER,
    ("GET", "/api/voluum/campaigns"): VIEWER,
    ("POST", "/api/voluum/lookups/refresh"): OPERATOR,
    ("POST", "/api/voluum/costs"): OPERATOR,
    ("GET", "/api/voluum/costs"): VIEWER,
    ("POST", "/api/voluum/live-events"): OPERATOR,
    ("GET", "/api/voluum/live-events/counts"): VIEWER,
    ("GET", "/api/voluum/live-events/dead-letters"): OPERATOR,
    ("POST", "/api/voluum/smart-clean"): OPERATOR,
    ("POST", "/api/voluum/smart-clean/upload"): OPERATOR,
    ("POST", "/api/voluum/reg-search"): OPERATOR,
    ("GET", "/api/voluum/runs"): VIEWER,
    ("GET", "/api/voluum/runs/{job_id}/download"): VIEWER,  # masked below admin
    ("POST", "/api/voluum/runs/{job_id}/archive"): OPERATOR,  # and owner or admin (core.access)
    ("POST", "/api/voluum/runs/{job_id}/restore"): OPERATOR,
    ("DELETE", "/api/voluum/runs/{job_id}"): OPERATOR,
    ("GET", "/api/voluum/find"): VIEWER,
    ("GET", "/voluum"): VIEWER,
    ("POST", "/voluum/traffic"): OPERATOR,
    ("POST", "/voluum/conversions"): OPERATOR,
    ("POST", "/voluum/lookups/refresh"): OPERATOR,
    ("GET", "/voluum/find"): VIEWER,
    ("GET", "/voluum/smart"): VIEWER,
    ("POST", "/voluum/smart"): OPERATOR,
    ("POST", "/voluum/reg-search"): OPERATOR,
    ("POST", "/voluum/runs/{job_id}/archive"): OPERATOR,
    ("POST", "/voluum/runs/{job_id}/restore"): OPERATOR,
    ("POST", "/voluum/runs/{job_id}/delete"): OPERATOR,
    ("GET", "/voluum/costs"): VIEWER,
    ("POST", "/voluum/costs"): OPERATOR,
    ("GET", "/voluum/live"): VIEWER,
    # --- hlr ---
    ("POST", "/api/hlr/lookups"): OPERATOR,
    ("POST", "/api/hlr/estimates"): OPERATOR,
    ("GET", "/api/hlr/lookups"): VIEWER,
    ("GET", "/api/hlr/lookups/{lookup_id}"): VIEWER,
    ("POST", "/api/hlr/lookups/{lookup_id}/confirm"): OPERATOR,
    ("POST", "/api/hlr/lookups/{lookup_id}/resume"): OPERATOR,
    ("POST", "/api/hlr/lookups/{lookup_id}/release-review"): OPERATOR,
    ("POST", "/api/hlr/lookups/{lookup_id}/write-off-review"): OPERATOR,
    ("POST", "/api/hlr/lookups/{lookup_id}/cancel"): OPERATOR,
    ("GET", "/api/hlr/lookups/{lookup_id}/results"): VIEWER,
    ("GET", "/api/hlr/lookups/{lookup_id}/clean.csv"): OPERATOR,
    ("GET", "/api/hlr/lookups/{lookup_id}/raw.csv"): OPERATOR,
    ("GET", "/api/hlr/numbers"): VIEWER,
    ("GET", "/api/hlr/risky-operators"): VIEWER,
    ("POST", "/api/hlr/risky-operators"): ADMIN,
    ("DELETE", "/api/hlr/risky-operators/{operator_id}"): ADMIN,
    ("POST", "/api/hlr/risky-operators/restore"): ADMIN,
    ("GET", "/api/hlr/outcomes"): VIEWER,
    ("PUT", "/api/hlr/outcomes"): ADMIN,
    ("POST", "/api/hlr/outcomes/reset"): ADMIN,
    ("GET", "/hlr"): VIEWER,
    ("POST", "/hlr/lookups"): OPERATOR,
    ("POST", "/hlr/estimates"): OPERATOR,
    ("GET", "/hlr/lookups/{lookup_id}"): VIEWER,
    ("POST", "/hlr/lookups/{lookup_id}/confirm"): OPERATOR,
    ("POST", "/hlr/lookups/{lookup_id}/resume"): OPERATOR,
    ("POST", "/hlr/lookups/{lookup_id}/cancel"): OPERATOR,
    ("POST", "/hlr/lookups/{lookup_id}/release-review"): OPERATOR,
    ("GET", "/hlr/lookups/{lookup_id}/download/{which}"): OPERATOR,
    ("GET", "/hlr/risky"): VIEWER,
    ("POST", "/hlr/risky"): ADMIN,
    ("POST", "/hlr/risky/{operator_id}/delete"): ADMIN,
    ("POST", "/hlr/risky/restore"): ADMIN,
    ("GET", "/hlr/outcomes"): VIEWER,
    ("POST", "/hlr/outcomes"): ADMIN,
    ("POST", "/hlr/outcomes/reset"): ADMIN,
    # --- broadcasts ---
    ("GET", "/api/broadcasts/status"): VIEWER,
    ("POST", "/api/broadcasts/days"): OPERATOR,
    ("POST", "/api/broadcasts/unsubscribers/sync"): OPERATOR,
    ("GET", "/api/broadcasts/days"): VIEWER,
    ("GET", "/api/broadcasts/days/{day}"): VIEWER,
    ("GET", "/api/broadcasts/days/{day}/history.{fmt}"): VIEWER,
    ("POST", "/api/broadcasts/costs"): OPERATOR,
    ("GET", "/api/broadcasts/costs"): VIEWER,
    ("GET", "/api/broadcasts/live"): VIEWER,
    ("GET", "/api/broadcasts/analytics"): VIEWER,
    ("GET", "/api/broadcasts/analytics.csv"): VIEWER,
    ("GET", "/broadcasts"): VIEWER,
    ("POST", "/broadcasts/import"): OPERATOR,
    ("GET", "/broadcasts/days/{day}"): VIEWER,
    ("POST", "/broadcasts/days/{day}/costs"): OPERATOR,
    ("GET", "/broadcasts/live"): VIEWER,
    ("GET", "/broadcasts/analytics"): VIEWER,
    ("GET", "/api/broadcasts/rates"): VIEWER,
    ("PUT", "/api/broadcasts/rates/{day}"): ADMIN,
    ("DELETE", "/api/broadcasts/rates/{day}"): ADMIN,
    ("GET", "/broadcasts/rates"): ADMIN,
    ("POST", "/broadcasts/rates"): ADMIN,
    ("POST", "/broadcasts/rates/{day}/delete"): ADMIN,
    # --- ongage ---
    ("GET", "/api/ongage/status"): VIEWER,
    ("POST", "/api/ongage/sync"): OPERATOR,
    ("POST", "/api/ongage/unsubscribes/check"): OPERATOR,
    ("GET", "/api/ongage/sync/runs"): VIEWER,
    ("GET", "/api/ongage/contacts"): VIEWER,
    ("POST", "/api/ongage/contacts/requeue"): OPERATOR,
    ("POST", "/api/ongage/csv-jobs"): OPERATOR,
    ("GET", "/api/ongage/csv-jobs"): VIEWER,
    ("GET", "/api/ongage/csv-jobs/{job_id}"): VIEWER,
    ("PATCH", "/api/ongage/csv-jobs/{job_id}"): OPERATOR,
    ("POST", "/api/ongage/csv-jobs/{job_id}/start"): OPERATOR,
    ("POST", "/api/ongage/csv-jobs/{job_id}/pause"): OPERATOR,
    ("POST", "/api/ongage/csv-jobs/{job_id}/resume"): OPERATOR,
    ("POST", "/api/ongage/csv-jobs/{job_id}/cancel"): OPERATOR,
    ("GET", "/api/ongage/csv-jobs/{job_id}/rows"): VIEWER,
    ("GET", "/api/ongage/csv-jobs/{job_id}/rows.csv"): OPERATOR,
    ("GET", "/ongage"): VIEWER,
    ("POST", "/ongage/sync"): OPERATOR,
    ("POST", "/ongage/requeue"): OPERATOR,
    ("GET", "/ongage/csv-jobs"): VIEWER,
    ("POST", "/ongage/csv-jobs"): OPERATOR,
    ("GET", "/ongage/csv-jobs/{job_id}"): VIEWER,
    ("POST", "/ongage/csv-jobs/{job_id}/pace"): OPERATOR,
    ("POST", "/ongage/csv-jobs/{job_id}/{action}"): OPERATOR,
    # --- imei ---
    ("GET", "/api/imei/services"): VIEWER,
    ("GET", "/api/imei/services/{package_id}"): VIEWER,
    ("GET", "/api/imei/balance"): VIEWER,
    ("GET", "/api/imei/quote"): VIEWER,
    ("GET", "/api/imei/spend"): VIEWER,
    ("GET", "/api/imei/stats"): VIEWER,
    ("POST", "/api/imei/batches"): OPERATOR,
    ("POST", "/api/imei/batches/upload"): OPERATOR,
    ("POST", "/api/imei/orders"): OPERATOR,
    ("GET", "/api/imei/batches"): VIEWER,
    ("GET", "/api/imei/batches/{batch_id}"): VIEWER,
    ("POST", "/api/imei/batches/{batch_id}/resume"): OPERATOR,
    ("GET", "/api/imei/orders"): VIEWER,
    ("GET", "/api/imei/orders/export"): VIEWER,
    ("GET", "/api/imei/orders/{row_id}"): VIEWER,
    ("POST", "/api/imei/orders/{row_id}/refresh"): OPERATOR,
    ("GET", "/api/imei/review"): VIEWER,
    ("POST", "/api/imei/orders/{row_id}/attach-order"): OPERATOR,
    ("POST", "/api/imei/orders/{row_id}/write-off"): OPERATOR,
    ("POST", "/api/imei/sync"): OPERATOR,
    ("POST", "/api/imei/import"): OPERATOR,
    ("GET", "/imei"): VIEWER,
    ("GET", "/imei/services"): VIEWER,
    ("GET", "/imei/submit"): OPERATOR,
    ("POST", "/imei/submit"): OPERATOR,
    ("GET", "/imei/batches/{batch_id}"): VIEWER,
    ("POST", "/imei/batches/{batch_id}/resume"): OPERATOR,
    ("GET", "/imei/history"): VIEWER,
    ("GET", "/imei/history/export"): VIEWER,
    ("POST", "/imei/history/import"): OPERATOR,
    ("GET", "/imei/orders/{row_id}"): VIEWER,
    ("POST", "/imei/orders/{row_id}/refresh"): OPERATOR,
    ("GET", "/review"): VIEWER,
    ("POST", "/review/imei/{row_id}/attach"): OPERATOR,
    ("POST", "/review/imei/{row_id}/write-off"): OPERATOR,
    ("POST", "/review/hlr/{lookup_id}/write-off"): OPERATOR,
    ("POST", "/review/hlr/{lookup_id}/release"): OPERATOR,
    ("POST", "/imei/sync"): OPERATOR,
    ("GET", "/imei/stats"): VIEWER,
    # --- privacy (issue #9 item 8, landing in parallel: check these when it does) ---
    ("GET", "/api/privacy/erased"): ADMIN,
    ("GET", "/api/privacy/erasures"): ADMIN,
    ("POST", "/api/privacy/erasures"): ADMIN,
    ("GET", "/api/privacy/erasures/{erasure_id}"): ADMIN,
    ("POST", "/api/privacy/purge"): ADMIN,
    ("GET", "/api/privacy/retention"): ADMIN,
    ("GET", "/privacy"): ADMIN,
    ("POST", "/privacy/erase"): ADMIN,
    # --- UI core: login, dashboard, jobs, users, tokens, audit, file downloads ---
    ("GET", "/login"): PUBLIC,
    ("POST", "/login"): PUBLIC,
    ("POST", "/logout"): VIEWER,
    ("GET", "/"): VIEWER,
    ("GET", "/jobs"): VIEWER,
    ("GET", "/jobs/{job_id}"): VIEWER,
    ("GET", "/jobs/export.csv"): VIEWER,
    ("POST", "/jobs/sample"): OPERATOR,
    ("GET", "/admin/users"): ADMIN,
    ("POST", "/admin/users"): ADMIN,
    ("POST", "/admin/users/{username}/toggle"): ADMIN,
    ("POST", "/admin/users/{username}/role"): ADMIN,
    ("POST", "/admin/users/{username}/password"): ADMIN,
    ("GET", "/account/password"): VIEWER,
    ("POST", "/account/password"): VIEWER,
    ("GET", "/account/tokens"): VIEWER,
    ("POST", "/account/tokens"): VIEWER,
    ("POST", "/account/tokens/{token_id}/revoke"): VIEWER,
    ("GET", "/admin/audit"): ADMIN,
    ("GET", "/admin/audit/export.csv"): ADMIN,
    ("GET", "/files/{file_id}/download"): VIEWER,  # then per-kind rules (core.router.FILE_ROLES)
}

# Answered like the API (401 JSON) although outside /api.
API_LIKE = {"/metrics", "/openapi.json"}  # /docs is a page: anonymous visitors go to the login

# Harmless path values: nothing with these ids exists, so an allowed call answers 404 (or 422).
PATH_VALUES = {
    "action": "pause", "batch_id": "999999", "day": "2001-01-01", "fmt": "csv", "import_id": "999999",
    "job_id": "0" * 32, "lookup_id": "999999", "operator_id": "999999", "package_id": "999999",
    "row_id": "999999", "run_id": "999999", "status": "blacklist", "token_id": "999999",
    "username": "nobody-at-all", "which": "clean", "file_id": "999999", "erasure_id": "999999",
}
UUID_FILE_ID = "00000000-0000-4000-8000-000000000000"  # core files are keyed by UUID

# Bodies that fail validation after the role check, where an empty body would do real work.
INVALID_BODIES: dict[tuple[str, str], Any] = {
    ("POST", "/api/jobs/sample"): {"steps": 0},
    ("POST", "/api/tokens"): {"name": ["not", "a", "name"]},
    ("PUT", "/api/hlr/outcomes"): {"outcomes": "not a list"},
    ("POST", "/api/privacy/purge"): {"dry_run": "not a boolean"},
}


def app_routes(app: Any) -> set[tuple[str, str]]:
    found = set()
    for route in iter_routes(app):
        if route.path.startswith("/static"):
            continue
        for method in route.methods - {"HEAD", "OPTIONS"}:
            found.add((method, route.path))
    return found


def is_api(path: str) -> bool:
    return path.startswith("/api") or path in API_LIKE


def concrete(path: str) -> str:
    def value(match: re.Match[str]) -> str:
        name = match.group(1)
        if name == "file_id" and path.startswith(("/api/files", "/files")):
            return UUID_FILE_ID
        return PATH_VALUES.get(name, "999999")

    return re.sub(r"\{([^}]+)\}", value, path)


def _suggest(app: Any, missing: set[tuple[str, str]]) -> str:
    """Lines to paste into DECISIONS, with the role the route's dependency asks for (check it!)."""
    needs: dict[tuple[str, str], str] = {}
    for route in app.routes:
        contexts = getattr(route, "effective_route_contexts", None)
        for original, path in ([(c.original_route, c.path) for c in contexts()] if contexts else [(route, "")]):
            names: list[str] = []
            stack = [getattr(original, "dependant", None)]
            while stack:
                dependant = stack.pop()
                if dependant is None:
                    continue
                for sub in dependant.dependencies:
                    names.append(getattr(sub.call, "__name__", ""))
                    stack.append(sub)
            role = next((n.split("_")[1] for n in names if n.startswith("require_")), PUBLIC)
            for method in getattr(original, "methods", None) or ():
                needs[(method, path or getattr(original, "path", ""))] = role.upper()
    return "\n".join(f'    ("{m}", "{p}"): {needs.get((m, p), "?")},' for m, p in sorted(missing, key=lambda k: k[1]))


def test_every_route_has_a_decision(app: Any) -> None:
    routes = app_routes(app)
    missing = routes - DECISIONS.keys()
    stale = DECISIONS.keys() - routes
    assert not missing, "routes without an authorization decision; add to DECISIONS:\n" + _suggest(app, missing)
    assert not stale, f"decisions for routes that no longer exist: {sorted(stale)}"
    assert len(routes) > 200


def _call(client: Any, method: str, path: str, headers: dict[str, str]) -> Any:
    kwargs: dict[str, Any] = {}
    if (method, path) == ("POST", "/login"):
        kwargs["data"] = login_form(client)  # the form's own CSRF token (without it: 403, see test_auth)
    elif method != "GET":
        kwargs["json"] = INVALID_BODIES.get((method, path), {})
    if not is_api(path):
        headers = {**headers, "Accept": "text/html"}
    return client.request(method, concrete(path), headers=headers, follow_redirects=False, **kwargs)


def _error_code(response: Any) -> str | None:
    try:
        return str(response.json()["error"]["code"])
    except (ValueError, KeyError, TypeError):
        return None


def _not_configured(path: str, response: Any) -> bool:
    """503 is how a feature whose provider has no credentials answers (none are set in tests)."""
    if response.status_code != 503:
        return False
    return _error_code(response) == "provider_not_configured" or (not is_api(path) and "not configured" in response.text)


@pytest.mark.parametrize("caller", CALLERS, ids=lambda c: c or "anonymous")
def test_authorization_matrix(client: Any, app: Any, users: Any, caller: str | None) -> None:
    headers = users.headers(caller) if caller else {}
    wrong: list[str] = []
    for method, path in sorted(app_routes(app), key=lambda k: (k[1], k[0])):
        needed = DECISIONS.get((method, path))
        if needed is None:
            continue  # reported by test_every_route_has_a_decision
        response = _call(client, method, path, headers)
        status = response.status_code
        where = f"{caller or 'anonymous'} {method} {path} -> {status} {response.text[:160]!r}"
        if status >= 500 and not _not_configured(path, response):
            wrong.append(f"crash: {where}")
        elif needed == PUBLIC:
            if status in (401, 403):
                wrong.append(f"public route refused: {where}")
        elif caller is None:
            if is_api(path):
                if status != 401 or _error_code(response) != "unauthorized":
                    wrong.append(f"expected 401 unauthorized: {where}")
            elif status != 303 or not response.headers.get("location", "").startswith("/login"):
                wrong.append(f"expected a redirect to /login: {where}")
        elif RANK[caller] < RANK[needed]:
            if status != 403 or (is_api(path) and _error_code(response) != "forbidden"):
                wrong.append(f"expected 403 (needs {needed}): {where}")
        elif status in (401, 403):
            wrong.append(f"refused although {caller} >= {needed}: {where}")
    assert not wrong, "\n".join(wrong)


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


# --- route x token scope -------------------------------------------------------------------------
# A token's scopes narrow what its user's role allows. The scope a call needs, by this table: admin routes need
# `admin`; reading needs `read`; a change needs its domain's scope, the first prefix that matches here; any other
# change needs `numbers:write`.
WRITE_SCOPE: list[tuple[str, set[str]]] = [
    ("/api/imei", {"imei:spend"}),
    ("/api/hlr", {"hlr:spend"}),
    ("/api/cleaning", {"cleaning"}),
    ("/api/files", {"cleaning"}),
    ("/api/tokens", {"read"}),
    ("/api/me", {"read"}),
    ("/api/jobs", {"numbers:write", "cleaning", "hlr:spend", "imei:spend"}),
]
ROLE_SCOPES = {
    VIEWER: {"read"},
    OPERATOR: {"read", "numbers:write", "cleaning", "hlr:spend", "imei:spend"},
    ADMIN: {"read", "numbers:write", "cleaning", "hlr:spend", "imei:spend", "admin"},
}


# Admin-only actions whose route is a domain action (the admin role is checked inside): the domain's scope.
SCOPE_EXCEPTIONS = {("POST", "/api/cleaning/files/{file_id}/decrypt"): {"cleaning"}}


def needed_scopes(method: str, path: str, role: str) -> set[str]:
    if (method, path) in SCOPE_EXCEPTIONS:
        return SCOPE_EXCEPTIONS[(method, path)]
    if role == ADMIN:
        return {"admin"}
    if method == "GET":
        return {"read"}
    for prefix, scopes in WRITE_SCOPE:
        if path == prefix or path.startswith(prefix + "/"):
            return scopes
    return {"numbers:write"}


def test_route_scope_matrix(client: Any, app: Any, users: Any) -> None:
    from phoneops.core.db import session_scope
    from phoneops.core.security import SYSTEM, create_token

    for role in (OPERATOR, ADMIN):
        users.headers(role)  # the users exist
    tokens: dict[tuple[str, frozenset[str]], dict[str, str]] = {}

    def headers(role: str, scopes: set[str]) -> dict[str, str]:
        key = (role, frozenset(scopes))
        if key not in tokens:
            with session_scope() as s:
                _, plain = create_token(s, SYSTEM, f"{role}-user", "scoped", scopes=sorted(scopes))
            tokens[key] = {"Authorization": f"Bearer {plain}"}
        return tokens[key]

    wrong: list[str] = []
    checked = 0
    for method, path in sorted(app_routes(app), key=lambda k: (k[1], k[0])):
        role = DECISIONS.get((method, path))
        if role in (None, PUBLIC) or not path.startswith("/api"):
            continue
        holder = ADMIN if role == ADMIN else OPERATOR
        needed = needed_scopes(method, path, role)
        without = ROLE_SCOPES[holder] - needed
        refused = _call(client, method, path, headers(holder, without))
        if refused.status_code != 403 or _error_code(refused) != "insufficient_scope":
            wrong.append(f"{method} {path} with {sorted(without)}: expected 403 insufficient_scope, got "
                         f"{refused.status_code} {refused.text[:120]!r}")
        elif not any(scope in refused.json()["error"]["message"] for scope in needed):
            wrong.append(f"{method} {path}: the refusal does not name {sorted(needed)}: {refused.text[:160]}")
        allowed = _call(client, method, path, headers(holder, {sorted(needed)[0]}))
        if allowed.status_code in (401, 403):
            wrong.append(f"{method} {path} with {sorted(needed)[0]}: refused {allowed.status_code} {allowed.text[:120]!r}")
        checked += 1
    assert not wrong, "\n".join(wrong)
    assert checked > 100
