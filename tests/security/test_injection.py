"""SQL injection, XSS and spreadsheet-formula probes through text inputs, uploaded CSV cells and file names.

Probes go in through every query parameter of every page and API read (search boxes), through the
free-text fields that are stored (token names, list reasons, risky-operator names and notes), through the
cells of an uploaded list and through file names. They must never crash anything, be stored literally,
come back escaped in HTML and neutralised in produced CSV files.
"""

from __future__ import annotations

import csv
import io
import re
from typing import Any

from security_kit import concrete, table_counts

from phoneops.core.csvio import FORMULA_START
from support import login_form

SQL = ["' OR '1'='1", "1; DROP TABLE users;--", "\" OR 1=1 --", "x' UNION SELECT password_hash FROM users--"]
XSS = ["<script>alert('xss')</script>", "\"><img src=x onerror=alert(1)>", "</textarea><svg onload=alert(1)>"]
FORMULAS = ["=HYPERLINK(\"http://evil.example\",\"x\")", "+SUM(1+1)*cmd|' /C calc'!A0", "-2+3", "@SUM(A1:A2)",
            "\t=1+1"]
PROBES = SQL + XSS + FORMULAS
RAW_MARKUP = re.compile(r"<script>alert|<img src=x onerror|<svg onload", re.I)


def _query_params(app: Any) -> list[tuple[str, str]]:
    """(path, name) for every string query parameter of every GET route (the search boxes and filters)."""
    found = []
    for route in app.routes:
        contexts = getattr(route, "effective_route_contexts", None)
        for ctx in contexts() if contexts else ():
            original = ctx.original_route
            if "GET" not in (getattr(original, "methods", None) or ()) or not hasattr(original, "dependant"):
                continue
            for param in original.dependant.query_params:
                if "str" in str(param.field_info.annotation):
                    found.append((ctx.path, param.name))
    return found


def test_probes_in_every_query_parameter(client: Any, app: Any, users: Any) -> None:
    admin = users.headers("admin")
    params = _query_params(app)
    assert len(params) > 30
    before = table_counts()
    wrong = []
    for path, name in params:
        for probe in PROBES:
            page = not path.startswith("/api")
            response = client.get(concrete(path), params={name: probe}, headers={**admin, "Accept": "text/html"}
                                  if page else admin)
            where = f"{path}?{name}={probe!r} -> {response.status_code}"
            if response.status_code >= 500 and response.status_code != 503:
                wrong.append(f"crash: {where} {response.text[:200]!r}")
            elif "text/html" in response.headers.get("content-type", "") and RAW_MARKUP.search(response.text):
                wrong.append(f"unescaped markup: {where}")
    assert not wrong, "\n".join(wrong)
    after = table_counts()
    changed = {t for t in after if after[t] != before.get(t)} - {"audit_log", "api_tokens"}
    assert not changed, f"reads wrote to {changed}"  # (exports are audited; nothing else may change)


def _cells_safe(text: str) -> list[str]:
    bad = []
    for row in csv.reader(io.StringIO(text)):
        for cell in row:
            if cell.startswith(FORMULA_START) and not re.fullmatch(r"[+-]\d+(\.\d+)?", cell):
                bad.append(cell)
    return bad


def test_stored_text_is_literal_escaped_and_neutralised(client: Any, users: Any, inline_jobs: list[str]) -> None:
    admin = users.headers("admin")
    probes = [p for p in PROBES if len(p) <= 64]
    # free-text fields that are stored
    for probe in probes:
        assert client.post("/api/tokens", json={"name": probe}, headers=admin).status_code == 201
        created = client.post("/api/hlr/risky-operators", json={"name": probe, "mccmnc": "23415", "note": probe},
                              headers=admin)
        assert created.status_code in (200, 201, 409), created.text
    names = {t["name"] for t in client.get("/api/tokens", headers=admin).json()}
    assert {p.strip() for p in probes} <= names  # stored as typed (names are trimmed)
    risky = client.get("/api/hlr/risky-operators", headers=admin).json()
    assert any(r["note"] == XSS[0] for r in risky), risky
    # an uploaded list whose cells are probes, under a hostile file name
    sheet = io.StringIO()
    writer = csv.writer(sheet, lineterminator="\n")
    writer.writerow(["phone", "reason", "source"])
    writer.writerows([f"+44791112{i:04d}", probe[:64], probe[:32]] for i, probe in enumerate(probes))
    body = sheet.getvalue().encode()
    imported = client.post("/api/numbers/imports", data={"target": "blacklist"}, headers=admin,
                           files={"file": ("<script>alert('xss')</script>.csv", body, "text/csv")})
    assert imported.status_code == 202, imported.text  # previewed first (jobs run inline here), then applied
    applied = client.post(f"/api/numbers/imports/{imported.json()['id']}/apply", headers=admin)
    assert applied.status_code == 202, applied.text
    looked_up = client.get("/api/numbers/lookup", params={"number": "+447911120005"}, headers=admin).json()
    assert looked_up["reason"] == probes[5][:64], looked_up  # stored literally
    result = client.get(f"/api/numbers/imports/{imported.json()['id']}/result", headers=admin)
    assert result.status_code == 200 and not _cells_safe(result.text), _cells_safe(result.text)
    export = client.post("/api/numbers/exports", json={"status": "blacklist", "plaintext": True}, headers=admin)
    assert export.status_code in (200, 201, 202), export.text
    download = client.get(f"/api/numbers/exports/{export.json()['id']}/download", headers=admin)
    assert download.status_code == 200 and "'=HYPERLINK" in download.text, download.text[:300]
    assert not _cells_safe(download.text), _cells_safe(download.text)
    cleaning = client.post("/api/cleaning/files", headers=admin,
                           files={"file": ("\"><img src=x onerror=alert(1)>.csv", body, "text/csv")})
    assert cleaning.status_code == 201, cleaning.text
    # every page that shows them escapes them
    for page in (f"/cleaning/files/{cleaning.json()['id']}", "/cleaning", "/account/tokens", "/hlr/risky", "/numbers/lists/blacklist", "/numbers/imports", "/admin/audit",
                 "/numbers?number=%2B447911120005", "/"):
        response = client.get(page, headers={**admin, "Accept": "text/html"})
        assert response.status_code == 200, (page, response.status_code)
        assert not RAW_MARKUP.search(response.text), page
    tokens_page = client.get("/account/tokens", headers=admin).text
    assert "&lt;script&gt;alert(" in tokens_page  # shown, escaped


def test_sql_probes_as_identifiers_change_nothing(client: Any, users: Any) -> None:
    """Probes where the API expects a name or an id: refused or not found, never run."""
    admin = users.headers("admin")
    before = table_counts()
    form = login_form(client)
    for probe in SQL:
        for method, path in (("POST", "/api/users/{}/disable"), ("GET", "/api/jobs/{}"), ("GET", "/api/files/{}/download"),
                             ("GET", "/api/broadcasts/days/{}"), ("GET", "/api/numbers/lists/{}")):
            response = client.request(method, path.format(probe), headers=admin)
            assert response.status_code in (404, 422), (path, probe, response.status_code, response.text[:200])
        login = client.post("/login", data={"username": probe, "password": probe, **form}, follow_redirects=False)
        assert login.status_code in (401, 429)  # refused; one address guessing many names is slowed down
    after = table_counts()
    # every refused login is recorded (throttling) and audited as a failure; nothing else changes
    assert {t for t in after if after[t] != before[t]} <= {"login_attempts", "audit_log"}
    assert client.get("/api/users", headers=admin).status_code == 200  # the users table is still there
