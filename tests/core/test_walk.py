"""The guard that walks the product as people do (headless Chromium, the real server with every provider's
simulator): for admin, operator and viewer, every page reachable from the navigation (and its tabs), every
page of the route table without path values, every same-site link on them, and every form submitted with
the values the page pre-fills (GET forms once more with their optional fields empty). Fails on a 4xx/5xx,
raw JSON, a Python traceback, a broken link, a nav link that refuses its own role, or an action (a POST
form) whose next page says nothing about it. New pages join by
themselves: they are found from the navigation and the route table. One browser per role, reused."""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlparse

import pytest

from phoneops.core.routes import iter_routes
from phoneops.simulators._server import serve_in_thread
from phoneops.simulators.demo import PROVIDERS

pytestmark = pytest.mark.browser

ROLES = ("viewer", "operator", "admin")
RANK = {"viewer": 0, "operator": 1, "admin": 2}
# Forms whose pre-filled submit destroys or ends something the walk still needs (the session, users, data).
UNSAFE_ACTIONS = re.compile(r"/logout|/delete|/erase|/toggle|/revoke|/cancel|/restore|/disable|/undo|/purge|/tokens$")
# Links that are not pages of their own.
SKIP_LINKS = re.compile(r"^/(logout|static/|docs|openapi\.json|metrics)")
MAX_LINKS_PER_SHAPE = 2
# What a page shows after an action: the flash, or the message of a form shown again.
MESSAGE = "[data-flash], .alert[role=alert], .alert[role=status]"
# Found by this walk, reported to the lead for its owner (voluum): remove once fixed so the walk covers it.


@pytest.fixture(scope="module")
def simulators() -> Iterator[dict[str, str]]:
    """Every provider served by its simulator, as in the demo."""
    env: dict[str, str] = {}
    with contextlib.ExitStack() as stack:
        for provider in PROVIDERS:
            url = stack.enter_context(serve_in_thread(provider.build(dict(os.environ)), port=0))
            env.update(provider.settings(url))
        yield env


@pytest.fixture
def live_env(simulators: dict[str, str]) -> dict[str, str]:
    return simulators


def _shape(path: str) -> str:
    return re.sub(r"/[0-9a-f-]{6,}|/\d+", "/N", path)


class Walk:
    def __init__(self, base: str, role: str, page: Any) -> None:
        self.base, self.role, self.page = base, role, page
        self.problems: list[str] = []
        self.visited: set[str] = set()
        self.checked: dict[str, int] = {}
        self.shapes: dict[str, int] = {}
        self.forms: set[tuple[str, str, str]] = set()  # (method, action, fields): each form once per role

    def problem(self, text: str) -> None:
        self.problems.append(f"[{self.role}] {text}")

    def check_page(self, what: str, response: Any) -> bool:
        if response is None:
            self.problem(f"{what}: no response")
            return False
        status = response.status
        content_type = response.headers.get("content-type", "")
        body = self.page.content() if "html" in content_type else response.text()
        if status >= 400:
            self.problem(f"{what}: HTTP {status} {body[:200]!r}")
            return False
        if "json" in content_type:
            self.problem(f"{what}: raw JSON {body[:200]!r}")
            return False
        if "Traceback (most recent call last)" in body:
            self.problem(f"{what}: a Python traceback")
            return False
        return True

    def visit(self, path: str) -> None:
        if path in self.visited:
            return
        self.visited.add(path)
        response = self.page.goto(self.base + path, wait_until="domcontentloaded")
        if self.check_page(f"GET {path}", response):
            self.links_on_page(path)
            self.forms_on_page(path)

    def links_on_page(self, where: str) -> None:
        hrefs = self.page.eval_on_selector_all("a[href]", "els => els.map(e => e.getAttribute('href'))")
        for href in hrefs:
            parsed = urlparse(href)
            if parsed.scheme or parsed.netloc or not href.startswith("/") or SKIP_LINKS.match(href):
                continue
            path = href.split("#", 1)[0]
            if path in self.checked:
                continue
            shape = _shape(parsed.path)
            if self.shapes.get(shape, 0) >= MAX_LINKS_PER_SHAPE:
                continue
            self.shapes[shape] = self.shapes.get(shape, 0) + 1
            answer = self.page.request.get(self.base + path, max_redirects=5)
            self.checked[path] = answer.status
            if answer.status >= 400:
                self.problem(f"broken link on {where}: {path} -> {answer.status}")
            elif "html" in answer.headers.get("content-type", "") and "Traceback (most recent" in answer.text():
                self.problem(f"link on {where}: {path} shows a traceback")

    def forms_on_page(self, where: str) -> None:
        count = self.page.locator("main form").count()
        for index in range(count):
            for empty_optional in (False, True):
                if index or empty_optional:
                    self.page.goto(self.base + where, wait_until="domcontentloaded")
                form = self.page.locator("main form").nth(index)
                if form.count() == 0:
                    break
                method = (form.get_attribute("method") or "get").lower()
                action = form.get_attribute("action") or where
                if method == "post" and (empty_optional or UNSAFE_ACTIONS.search(action)):
                    break
                fields = form.evaluate("f => [...f.elements].map(e => e.name).join(',')")
                key = (method, _shape(action), fields + (":empty" if empty_optional else ""))
                if key in self.forms:
                    continue
                self.forms.add(key)
                if form.evaluate("f => !!f.querySelector('input[type=file][required]')"):
                    break  # needs a file the walk has not got
                if not form.evaluate("f => !!f.querySelector('button:not([type=button]):not([type=reset]), input[type=submit]')"):
                    break  # no submit button: a person cannot send it
                if empty_optional:
                    form.evaluate("""f => { for (const el of f.elements) {
                        if (el.required || el.type === 'hidden' || el.type === 'submit' || el.type === 'button') continue;
                        if (el.type === 'checkbox' || el.type === 'radio') { el.checked = false; continue; }
                        if (el.tagName === 'SELECT') { if ([...el.options].some(o => o.value === '')) el.value = ''; continue; }
                        el.value = ''; } }""")
                if not form.evaluate("f => f.checkValidity()"):
                    continue  # a browser would not send it
                what = f"{method.upper()} form {index} on {where} -> {action}{' (optional fields empty)' if empty_optional else ''}"
                try:
                    with self.page.expect_navigation(timeout=8_000, wait_until="domcontentloaded") as nav:
                        form.evaluate("f => f.requestSubmit()")
                except Exception:  # noqa: S112 - a form handled by the page's script (no navigation)
                    continue
                if self.check_page(what, nav.value) and method == "post" and not self.page.locator(MESSAGE).count():
                    self.problem(f"{what}: the page after the action shows no message (flash)")


@pytest.mark.timeout(1500)
def test_walk_every_page_and_form_as_each_role(browser: Any, live_server: str, users: Any, app: Any) -> None:
    route_pages = sorted(
        r.path for r in iter_routes(app)
        if "GET" in r.methods and not r.in_schema and "{" not in r.path and not SKIP_LINKS.match(r.path)
        and not r.path.startswith(("/api", "/login")) and not r.path.endswith(("/export", "/download", ".csv", ".xlsx"))
    )
    problems: list[str] = []
    for role in ROLES:
        users.create(role, f"walk-{role}")
        context = browser.new_context()
        page = context.new_page()
        page.set_default_timeout(30_000)
        page.goto(live_server + "/login")
        page.fill("input[name=username]", f"walk-{role}")
        page.fill("input[name=password]", "correct-horse-battery")
        page.click("button[type=submit]")
        page.wait_for_url(live_server + "/")
        walk = Walk(live_server, role, page)
        nav = page.eval_on_selector_all("header nav a[href]", "els => els.map(e => e.getAttribute('href'))")
        assert len(nav) >= 8, nav
        tabs: list[str] = []
        for path in nav:
            if SKIP_LINKS.match(path):
                continue
            walk.visit(path)
            page.goto(live_server + path, wait_until="domcontentloaded")
            tabs += page.eval_on_selector_all("nav.tabs a[href], .tabs a[href]",
                                              "els => els.map(e => e.getAttribute('href'))")
        for path in dict.fromkeys(tabs):
            if path.startswith("/") and "?" not in path:
                walk.visit(path)
        # pages of the route table the navigation does not lead to: allowed, or a 403 page with the nav
        for path in route_pages:
            if path in walk.visited:
                continue
            response = page.goto(live_server + path, wait_until="domcontentloaded")
            if response is not None and response.status == 403:
                if page.locator("header nav").count() == 0:
                    walk.problem(f"403 page of {path} has no navigation")
                continue
            walk.visited.add(path)
            walk.check_page(f"GET {path} (route table)", response)
        problems += walk.problems
        print(f"{role}: {len(walk.visited)} pages, {len(walk.checked)} links, {len(walk.forms)} forms")
        context.close()
    assert not problems, "\n".join(problems)
