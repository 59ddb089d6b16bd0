"""CSRF: every POST page refuses a logged-in browser session without the right token, and every form has it."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

from security_kit import concrete, table_counts

from phoneops.core.routes import iter_routes
from support import login

TEMPLATES = Path(__file__).parents[2] / "src" / "phoneops" / "ui" / "templates"


def _post_pages(app: Any) -> list[str]:
    return sorted({r.path for r in iter_routes(app) if "POST" in r.methods and not r.path.startswith("/api")
                   and r.path != "/login"})


def test_every_post_page_refuses_a_session_without_the_right_token(client: Any, app: Any, users: Any) -> None:
    users.create("admin", "csrf-admin")
    good = login(client, "csrf-admin")
    pages = _post_pages(app)
    assert len(pages) > 40
    before = table_counts()
    wrong: list[str] = []
    for path in pages:
        url = concrete(path)
        attempts = {
            "no token": client.post(url, data={"name": "x"}, follow_redirects=False),
            "wrong token": client.post(url, data={"csrf_token": good[::-1], "name": "x"}, follow_redirects=False),
            "wrong token, multipart": client.post(url, data={"csrf_token": "forged"},
                                                  files={"file": ("a.csv", b"+447911123456\n", "text/csv")},
                                                  follow_redirects=False),
            "JSON without header": client.post(url, json={"csrf_token": good}, follow_redirects=False),
        }
        for what, response in attempts.items():
            if response.status_code != 403 or "CSRF" not in response.text:
                wrong.append(f"{what}: POST {path} -> {response.status_code} {response.text[:120]!r}")
    assert not wrong, "\n".join(wrong)
    assert table_counts() == before  # nothing was written, not even an audit line or a job
    # the session still works, and the token (field or header) is what lets a form through
    created = client.post("/account/tokens", data={"csrf_token": good, "name": "from-the-form"})
    assert created.status_code == 200 and "from-the-form" in created.text
    by_header = client.post("/api/tokens", json={"name": "by-header"}, headers={"X-CSRF-Token": good})
    assert by_header.status_code == 201


def test_a_forged_form_changes_nothing(client: Any, users: Any, session: Any) -> None:
    """The classic attack: a cross-site form creating an admin, with a guessed or missing token."""
    from sqlalchemy import func, select

    from phoneops.core.models import AuditEvent, User

    users.create("admin", "csrf-admin")
    good = login(client, "csrf-admin")
    form = {"username": "mallory", "password": "a-long-enough-password", "role": "admin"}
    for token in (None, "", "x" * len(good), good[:-1]):
        data = form if token is None else {**form, "csrf_token": token}
        assert client.post("/admin/users", data=data, follow_redirects=False).status_code == 403
    session.expire_all()
    assert session.scalar(select(func.count()).select_from(User).where(User.username == "mallory")) == 0
    assert session.scalar(select(func.count()).select_from(AuditEvent).where(AuditEvent.action == "user.create")) == 1  # csrf-admin only
    ok = client.post("/admin/users", data={**form, "csrf_token": good}, follow_redirects=False)
    assert ok.status_code in (200, 303), ok.text
    assert session.scalar(select(func.count()).select_from(User).where(User.username == "mallory")) == 1


class _Forms(HTMLParser):
    """Collects every <form method=post> with the csrf_token values found inside it."""

    def __init__(self) -> None:
        super().__init__()
        self.forms: list[dict[str, Any]] = []
        self._open: dict[str, Any] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {k: v or "" for k, v in attrs}
        if tag == "form":
            self._open = {"action": values.get("action", ""), "post": values.get("method", "").lower() == "post",
                          "tokens": []}
            self.forms.append(self._open)
        elif tag == "input" and self._open is not None and values.get("name") == "csrf_token":
            self._open["tokens"].append(values.get("value", ""))

    def handle_endtag(self, tag: str) -> None:
        if tag == "form":
            self._open = None


def test_every_rendered_post_form_carries_the_token(client: Any, app: Any, users: Any) -> None:
    users.create("admin", "csrf-admin")
    good = login(client, "csrf-admin")
    pages = sorted({r.path for r in iter_routes(app) if "GET" in r.methods and not r.path.startswith(("/api", "/static"))
                    and "{" not in r.path and r.path not in ("/login", "/metrics", "/openapi.json", "/docs")
                    and not r.path.endswith("/export")})
    cleaning = client.post("/api/cleaning/files", headers=users.headers("admin"),
                           files={"file": ("a.csv", b"phone\n+447911123456\n", "text/csv")})
    assert cleaning.status_code == 201, cleaning.text
    pages.append(f"/cleaning/files/{cleaning.json()['id']}")  # a detail page with several forms
    forms = 0
    missing: list[str] = []
    for path in pages:
        response = client.get(path)
        if response.status_code != 200 or "text/html" not in response.headers.get("content-type", ""):
            continue
        parser = _Forms()
        parser.feed(response.text)
        for form in parser.forms:
            if form["post"]:
                forms += 1
                if form["tokens"] != [good]:
                    missing.append(f"{path}: form to {form['action']!r} has csrf_token {form['tokens']}")
    assert forms > 20
    assert not missing, "\n".join(missing)


def test_every_post_form_in_the_templates_carries_the_token() -> None:
    """Forms on pages that need data to render (detail pages) are checked in their templates."""
    missing = []
    checked = 0
    for template in sorted(TEMPLATES.rglob("*.html")):
        if template.name == "login.html":
            continue  # before login there is no session to bind a token to
        text = template.read_text()
        for match in re.finditer(r"<form\b[^>]*>(.*?)</form>", text, re.S | re.I):
            if not re.search(r"method=[\"']?post", match.group(0)[:300], re.I):
                continue
            checked += 1
            if not re.search(r"name=[\"']csrf_token[\"'][^>]*value=[\"']\{\{\s*csrf\s*\}\}", match.group(1)):
                missing.append(f"{template.relative_to(TEMPLATES)}: {match.group(0)[:100]!r}")
    assert checked > 30
    assert not missing, "\n".join(missing)
