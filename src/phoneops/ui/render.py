"""Template rendering shared by every domain's views.py."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse, Response
from fastapi.templating import Jinja2Templates
from sqlalchemy.orm import Session

from phoneops import __version__
from phoneops.core.errors import AppError
from phoneops.core.routes import iter_routes
from phoneops.core.security import Principal, Role
from phoneops.ui.charts import bar_chart, column_chart, cost_revenue_chart
from phoneops.ui.flash import clear_flash, read_flash
from phoneops.ui.notices import job_notice, mark_seen

HERE = Path(__file__).parent
STATIC_DIR = HERE / "static"
templates = Jinja2Templates(directory=str(HERE / "templates"))
templates.env.globals["bar_chart"] = bar_chart
templates.env.globals["column_chart"] = column_chart
templates.env.globals["cost_revenue_chart"] = cost_revenue_chart
templates.env.globals["version"] = __version__


def human_pairs(data: object) -> list[tuple[str, str]]:
    """A job's counters or result as (label, value) lines a person reads: `rows_skipped` -> "Rows skipped",
    12345 -> "12,345"; nested values stay compact JSON. (static/app.js does the same for live updates.)"""
    if not isinstance(data, dict):
        return [] if data in (None, "", [], {}) else [("Value", json.dumps(data, default=str))]
    pairs = []
    for key, value in data.items():
        label = str(key).replace("_", " ").strip().capitalize() or "?"
        if isinstance(value, bool) or value is None:
            text = {True: "yes", False: "no", None: "—"}[value]
        elif isinstance(value, int):
            text = f"{value:,}"
        elif isinstance(value, float):
            text = f"{value:,.2f}".rstrip("0").rstrip(".")
        elif isinstance(value, str):
            text = value
        else:
            text = json.dumps(value, default=str)
        pairs.append((label, text))
    return pairs


templates.env.globals["human_pairs"] = human_pairs


@dataclass(frozen=True)
class NavItem:
    label: str
    path: str
    area: str
    role: Role = Role.viewer  # the least role that may open it: the nav shows each role only what it may use


# Every area of the product, in menu order. An area without pages yet shows as "coming".
NAV: tuple[NavItem, ...] = (
    NavItem("Dashboard", "/", "core"),
    NavItem("Numbers", "/numbers", "numbers"),
    NavItem("Cleaning", "/cleaning", "cleaning"),
    NavItem("Voluum", "/voluum", "voluum"),
    NavItem("HLR", "/hlr", "hlr"),
    NavItem("Broadcasts", "/broadcasts", "broadcasts"),
    NavItem("Sources", "/sources", "sources"),
    NavItem("Ongage", "/ongage", "ongage"),
    NavItem("Devices", "/imei", "imei"),
    NavItem("Privacy", "/privacy", "privacy", Role.admin),
    NavItem("Review", "/review", "imei"),
    NavItem("Jobs", "/jobs", "core"),
)


def _available_paths(request: Request) -> set[str]:
    cached: set[str] | None = getattr(request.app.state, "page_paths", None)
    if cached is None:
        cached = {r.path for r in iter_routes(request.app)}
        request.app.state.page_paths = cached
    return cached


def render(
    request: Request,
    template: str,
    principal: Principal | None,
    status_code: int = 200,
    **context: Any,
) -> HTMLResponse:
    paths = _available_paths(request)
    nav = [
        {"label": item.label, "path": item.path, "ready": item.path in paths,
         "active": request.url.path == item.path or (item.path != "/" and request.url.path.startswith(item.path))}
        for item in NAV
        if principal is None or principal.can(item.role)
    ]
    flash = read_flash(request)
    notice, seen = job_notice(request, principal)
    response = templates.TemplateResponse(
        request,
        template,
        {"principal": principal, "nav": nav, "csrf": principal.csrf if principal else "", "flash": flash,
         "job_notice": notice, **context},
        status_code=status_code,
    )
    if flash is not None:
        clear_flash(response)  # shown once
    if seen:
        mark_seen(response)
    return response


def error_page(request: Request, status: int, message: str) -> HTMLResponse:
    principal = getattr(request.state, "principal", None)
    return render(request, "error.html", principal, status_code=status, status=status, message=message)


def form_error(session: Session, exc: AppError, page: Callable[..., Response], *args: Any, **kwargs: Any) -> Response:
    """A form's action failed as expected: undo its writes and show the form's page again with the error, at the
    error's status (422, 409, ...). `page(*args, **kwargs)` is the handler's own page function."""
    session.rollback()
    return page(*args, error=exc.message, status_code=exc.status_code, **kwargs)
