# Over 400 lines: the shell's pages (login, dashboard, jobs, users, tokens, audit), each a thin handler.
"""Pages of the shell: login, dashboard, jobs, users, API tokens, audit log."""

from __future__ import annotations

import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from urllib.parse import urlencode, urlparse

from fastapi import APIRouter, Depends, FastAPI, Form, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from phoneops.core import access, jobs, security
from phoneops.core import audit as audit_service
from phoneops.core.db import utcnow
from phoneops.core.deps import DbSession, client_ip, codec, optional_principal, page_admin, page_viewer
from phoneops.core.errors import AppError, ValidationFailed
from phoneops.core.models import StoredFile, User
from phoneops.core.security import SESSION_COOKIE, Principal, Role
from phoneops.core.sorting import checked_sort
from phoneops.settings import get_settings
from phoneops.ui.flash import redirect_with
from phoneops.ui.render import render

router = APIRouter(include_in_schema=False)


@dataclass(frozen=True)
class Card:
    """A dashboard tile; domains add theirs through `dashboard_cards(session)` in their views."""

    title: str
    value: str
    href: str | None = None
    chart: dict[str, float] | None = None


CardSource = Callable[[Session], list[Card]]


def add_dashboard_cards(app: FastAPI, sources: list[CardSource]) -> None:
    """Give `app`'s dashboard the domains' card functions (`dashboard_cards(session)` in their views). The entry
    point (`phoneops.app`) finds them through the registry and hands them in: ui sits below the registry."""
    app.state.dashboard_cards = [*getattr(app.state, "dashboard_cards", []), *sources]


def _safe_next(target: str | None) -> str:
    if not target:
        return "/"
    parsed = urlparse(target)
    if parsed.scheme or parsed.netloc or not target.startswith("/") or target.startswith("//"):
        return "/"
    return target


LOGIN_CSRF_COOKIE = "phoneops_login_csrf"


def _login_form(request: Request, next: str, *, error: str | None = None, status_code: int = 200) -> Response:
    """The login form with a fresh CSRF token, also set as a cookie (double submit: a page of another site
    can post the form but cannot read or set our cookie, so it cannot log a victim into its account)."""
    kept = request.cookies.get(LOGIN_CSRF_COOKIE, "")
    token = kept if re.fullmatch(r"[A-Za-z0-9_-]{32}", kept) else secrets.token_urlsafe(24)  # one per browser
    response = render(request, "login.html", None, status_code=status_code, next=_safe_next(next), error=error,
                      csrf=token)
    response.set_cookie(LOGIN_CSRF_COOKIE, token, max_age=3600, httponly=True, samesite="lax",
                        secure=get_settings().secure_cookies, path="/login")
    return response


def _set_session_cookie(response: Response, cookie: str) -> None:
    settings = get_settings()
    response.set_cookie(SESSION_COOKIE, cookie, max_age=settings.session_max_age_seconds, httponly=True,
                        samesite="lax", secure=settings.secure_cookies, path="/")


def issue_session(session: Session, response: Response, user: User, ip: str | None) -> None:
    """Start a server-side session for `user` and set its signed cookie on `response`."""
    settings = get_settings()
    sid = security.start_session(session, user, ip, settings.session_max_age_seconds)
    cookie, _csrf = codec().issue(user, sid)
    _set_session_cookie(response, cookie)


@router.get("/login", response_class=HTMLResponse)
def login_page(
    request: Request, next: str = "/", principal: Principal | None = Depends(optional_principal)
) -> Response:
    if principal is not None:
        return RedirectResponse(_safe_next(next), status_code=303)
    return _login_form(request, next)


@router.post("/login", response_class=HTMLResponse)
def login(
    request: Request,
    username: str = Form(""),
    password: str = Form(""),
    next: str = Form("/"),
    csrf_token: str = Form(""),
    session: Session = DbSession,
) -> Response:
    settings = get_settings()
    if not security.csrf_matches(request.cookies.get(LOGIN_CSRF_COOKIE), csrf_token):
        return _login_form(request, next, status_code=403,
                           error="The login form expired or was sent from another site; please log in again.")
    if not username.strip() or not password:
        who = Principal(user_id=None, username=username.strip()[:64] or "-", role=Role.viewer, via="login",
                        client_ip=client_ip(request))
        audit_service.audit(session, who, "login.failure", "user", None,
                            {"reason": "missing_fields", "ip": client_ip(request)}, outcome="refused")
        return _login_form(request, next, status_code=422, error="Enter your user name and password.")
    policy = security.LoginPolicy(free_failures=settings.login_max_failures, max_delay=settings.login_lockout_seconds,
                                  address_failures=settings.login_address_max_failures)
    try:
        user = security.authenticate(session, username.strip(), password, client_ip(request), policy)
    except AppError as exc:
        who = Principal(user_id=None, username=username.strip()[:64], role=Role.viewer, via="login",
                        client_ip=client_ip(request))
        audit_service.audit(session, who, "login.failure", "user", None, {"reason": exc.code, "ip": client_ip(request)},
                            outcome="refused")
        session.commit()  # keep the failed attempt for throttling (and its audit line)
        response = _login_form(request, next, error=exc.message, status_code=exc.status_code)
        if exc.retry_after:
            response.headers["Retry-After"] = str(exc.retry_after)
        return response
    response = RedirectResponse(_safe_next(next), status_code=303)
    issue_session(session, response, user, client_ip(request))
    audit_service.audit(session, Principal(user_id=user.id, username=user.username, role=Role(user.role),
                                              via="session", client_ip=client_ip(request)),
          "login.success", "user", user.id, {"ip": client_ip(request)}, outcome="ok")
    response.delete_cookie(LOGIN_CSRF_COOKIE, path="/login")
    return response


@router.post("/logout")
def logout(session: Session = DbSession, principal: Principal = Depends(page_viewer)) -> Response:
    """End the session server-side (the cookie stops working even if someone kept a copy)."""
    if principal.sid:
        security.end_session(session, principal.sid)
    audit_service.audit(session, principal, "logout", "user", principal.user_id, {}, outcome="ok")
    response = redirect_with("/login", "You are logged out.")
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


@router.get("/account/password", response_class=HTMLResponse)
def password_page(request: Request, principal: Principal = Depends(page_viewer)) -> Response:
    return render(request, "account_password.html", principal, error=None,
                  done=request.query_params.get("changed") == "1")


@router.post("/account/password", response_class=HTMLResponse)
def password_change(
    request: Request,
    current_password: str = Form(""),
    new_password: str = Form(""),
    repeat_password: str = Form(""),
    revoke_tokens: str = Form(""),
    session: Session = DbSession,
    principal: Principal = Depends(page_viewer),
) -> Response:
    """Change one's own password: every session of the user ends (this browser gets a new one) and, when
    ticked, every API token of the user is revoked."""
    try:
        if new_password != repeat_password:
            raise ValidationFailed("the two new passwords differ")
        user = security.change_password(session, principal, current_password, new_password,
                                        revoke_tokens=revoke_tokens in ("on", "true", "1", "yes"))
    except AppError as exc:
        session.rollback()
        return render(request, "account_password.html", principal, status_code=exc.status_code, error=exc.message,
                      done=False)
    response = redirect_with("/account/password?changed=1", "Password changed: your other sessions have ended.")
    issue_session(session, response, user, client_ip(request))
    return response


@router.get("/", response_class=HTMLResponse)
def dashboard(
    request: Request, session: Session = DbSession, principal: Principal = Depends(page_viewer)
) -> Response:
    counts = jobs.job_counts(session)
    cards = [
        Card("Jobs running", str(counts.get("running", 0) + counts.get("queued", 0)), "/jobs"),
        Card("Jobs failed", str(counts.get("failed", 0)), "/jobs?status=failed"),
        Card(
            "Files stored",
            str(session.scalar(select(func.count(StoredFile.id)).where(StoredFile.status != "deleted")) or 0),
        ),
        Card("Active users", str(session.scalar(select(func.count(User.id)).where(User.is_active.is_(True))) or 0)),
    ]
    sources: list[CardSource] = getattr(request.app.state, "dashboard_cards", [])
    for source in sources:
        cards.extend(source(session))
    recent = jobs.list_jobs(session, limit=8)
    return render(request, "dashboard.html", principal, cards=cards, job_counts=counts, recent=recent)


JOBS_PER_PAGE = 50


@dataclass(frozen=True)
class JobFilter:
    """The jobs table's filters, as the form sends them (empty = not set)."""

    status: str = ""
    kind: str = ""
    user: str = ""
    date_from: date | None = None
    date_to: date | None = None

    def query(self, session: Session) -> dict[str, Any]:
        user_id = None
        if self.user:
            user_id = session.scalar(select(User.id).where(User.username == self.user)) or -1
        return {
            "status": self.status or None, "kind": self.kind or None, "user_id": user_id,
            "since": datetime.combine(self.date_from, time.min, tzinfo=UTC) if self.date_from else None,
            "until": datetime.combine(self.date_to + timedelta(days=1), time.min, tzinfo=UTC) if self.date_to else None,
        }

    def qs(self) -> str:
        values = {"status": self.status, "kind": self.kind, "user": self.user,
                  "date_from": self.date_from or "", "date_to": self.date_to or ""}
        return urlencode({k: str(v) for k, v in values.items() if v})


def _job_filter(
    status: str = Query(default="", max_length=64), kind: str = Query(default="", max_length=64),
    user: str = Query(default="", max_length=64), date_from: date | None = None, date_to: date | None = None,
) -> JobFilter:
    return JobFilter(status, kind, user, date_from, date_to)


@router.get("/jobs", response_class=HTMLResponse)
def jobs_page(
    request: Request,
    filters: JobFilter = Depends(_job_filter),
    page: int = Query(default=1, ge=1, le=100_000),
    sort: str = Query(default="", max_length=32),
    session: Session = DbSession,
    principal: Principal = Depends(page_viewer),
) -> Response:
    where = filters.query(session)
    total = jobs.count_jobs(session, **where)
    pages = max(1, -(-total // JOBS_PER_PAGE))
    page = min(page, pages)
    sort, error = checked_sort(sort, jobs.JOB_SORTS, jobs.JOB_DEFAULT_SORT)
    rows = jobs.list_jobs(session, **where, limit=JOBS_PER_PAGE, offset=(page - 1) * JOBS_PER_PAGE, sort=sort)
    usernames = list(session.scalars(select(User.username).order_by(User.username)))
    return render(request, "jobs.html", principal, status_code=422 if error else 200, error=error, jobs=rows,
                  filters=filters, total=total, page=page, pages=pages, qs=_with_sort(filters.qs(), sort,
                  jobs.JOB_DEFAULT_SORT), filters_qs=filters.qs(), sort=sort, kinds=jobs.job_kinds(session),
                  usernames=usernames)


def _with_sort(qs: str, sort: str, default: str) -> str:
    return "&".join(part for part in (qs, "" if sort == default else urlencode({"sort": sort})) if part)


@router.get("/jobs/export.csv")
def jobs_export(
    filters: JobFilter = Depends(_job_filter),
    session: Session = DbSession,
    principal: Principal = Depends(page_viewer),
) -> Response:
    """The filtered jobs table as CSV (every page)."""
    from phoneops.core.csvio import csv_lines

    rows = jobs.list_jobs(session, **filters.query(session), limit=10_000)
    users: dict[int | None, str] = dict(session.execute(select(User.id, User.username)).all())

    def when(moment: datetime | None) -> str:
        return moment.isoformat(timespec="seconds") if moment else ""

    lines = csv_lines(
        ("id", "kind", "title", "status", "done", "total", "created_by", "created_at", "finished_at", "error"),
        ([j.id, j.kind, j.title, j.status, j.progress_done, j.progress_total, users.get(j.created_by, ""),
          when(j.created_at), when(j.finished_at), j.error or ""] for j in rows),
    )
    return Response("".join(lines), media_type="text/csv",
                    headers={"Content-Disposition": 'attachment; filename="jobs.csv"'})


@router.get("/jobs/{job_id}", response_class=HTMLResponse)
def job_page(
    request: Request, job_id: str, session: Session = DbSession, principal: Principal = Depends(page_viewer)
) -> Response:
    job = jobs.get_job(session, job_id)
    return render(request, "job.html", principal, job=job, origin=jobs.job_origin(job))


@router.post("/jobs/sample")
def start_sample_page(
    steps: int = Form(20), session: Session = DbSession, principal: Principal = Depends(page_viewer)
) -> Response:
    from phoneops.core.errors import Forbidden
    from phoneops.core.sample import start_sample

    if not principal.can(Role.operator):
        raise Forbidden("this needs the operator role")
    job = start_sample(session, principal, steps, 0.2)
    return redirect_with(f"/jobs/{job.id}", f"Sample job of {steps} steps started.")


@router.get("/admin/users", response_class=HTMLResponse)
def users_page(
    request: Request,
    session: Session = DbSession,
    principal: Principal = Depends(page_admin),
    error: str | None = None,
) -> Response:
    return render(
        request, "users.html", principal, users=security.list_users(session), error=error, roles=[r.value for r in Role]
    )


@router.post("/admin/users", response_class=HTMLResponse)
def users_create(
    request: Request,
    username: str = Form(...),
    password: str = Form(...),
    role: str = Form("viewer"),
    session: Session = DbSession,
    principal: Principal = Depends(page_admin),
) -> Response:
    try:
        security.create_user(session, principal, username.strip(), password, role)
    except AppError as exc:
        session.rollback()
        return render(
            request,
            "users.html",
            principal,
            status_code=exc.status_code,
            users=security.list_users(session),
            error=exc.message,
            roles=[r.value for r in Role],
        )
    return redirect_with("/admin/users", f"User {username.strip()} created ({role}).")


def _users_page_error(request: Request, session: Session, principal: Principal, exc: AppError) -> Response:
    session.rollback()
    return render(request, "users.html", principal, status_code=exc.status_code, users=security.list_users(session),
                  error=exc.message, roles=[r.value for r in Role])


def _ticked(value: str) -> bool:
    return value in ("on", "true", "1", "yes")


@router.post("/admin/users/{username}/toggle")
def users_toggle(
    request: Request, username: str, revoke_tokens: str = Form(""), session: Session = DbSession,
    principal: Principal = Depends(page_admin),
) -> Response:
    """Disable (sessions end at once; tokens revoked when ticked) or enable a user."""
    try:
        user = security.get_user(session, username)
        security.set_user_active(session, principal, username, not user.is_active, revoke_tokens=_ticked(revoke_tokens))
    except AppError as exc:
        return _users_page_error(request, session, principal, exc)
    done = "enabled" if user.is_active else "disabled: their sessions have ended"
    return redirect_with("/admin/users", f"User {username} {done}.")


@router.post("/admin/users/{username}/role")
def users_role(
    request: Request, username: str, role: str = Form(""), session: Session = DbSession,
    principal: Principal = Depends(page_admin),
) -> Response:
    try:
        security.set_role(session, principal, username, role)
    except AppError as exc:
        return _users_page_error(request, session, principal, exc)
    return redirect_with("/admin/users", f"User {username} is now {role}.")


@router.post("/admin/users/{username}/password")
def users_password(
    request: Request, username: str, password: str = Form(""), revoke_tokens: str = Form(""),
    session: Session = DbSession, principal: Principal = Depends(page_admin),
) -> Response:
    """An admin sets a new password for a user: the user's sessions end at once."""
    try:
        security.set_password(session, principal, username, password, revoke_tokens=_ticked(revoke_tokens))
    except AppError as exc:
        return _users_page_error(request, session, principal, exc)
    return redirect_with("/admin/users", f"Password of {username} reset: their sessions have ended.")


def _tokens_page(
    request: Request, session: Session, principal: Principal, *, created: str | None = None,
    error: str | None = None, form: dict[str, object] | None = None, status_code: int = 200,
) -> Response:
    user_id = None if principal.role is Role.admin else principal.user_id
    allowed = [s for s in security.SCOPES if s in security.ROLE_SCOPES[principal.role]]
    response = render(
        request, "tokens.html", principal, tokens=security.list_tokens(session, user_id), created=created,
        error=error, allowed_scopes=allowed, form=form or {"name": "", "scopes": ["read"], "expires_in_days": ""},
        now=utcnow(),
    )
    response.status_code = status_code
    return response


@router.get("/account/tokens", response_class=HTMLResponse)
def tokens_page(
    request: Request, session: Session = DbSession, principal: Principal = Depends(page_viewer)
) -> Response:
    return _tokens_page(request, session, principal)


@router.post("/account/tokens", response_class=HTMLResponse)
def tokens_create(
    request: Request,
    name: str = Form("token"),
    scopes: list[str] = Form(default_factory=list),
    expires_in_days: str = Form(""),
    session: Session = DbSession,
    principal: Principal = Depends(page_viewer),
) -> Response:
    form: dict[str, object] = {"name": name, "scopes": scopes, "expires_in_days": expires_in_days}
    days_text = expires_in_days.strip()
    if days_text and not days_text.isdigit():
        return _tokens_page(request, session, principal, error="Expires in: a whole number of days, or empty",
                            form=form, status_code=422)
    try:
        _token, plaintext = security.create_token(
            session, principal, principal.username, name, scopes=scopes or None,
            expires_in_days=int(days_text) if days_text else None,
        )
    except ValidationFailed as exc:
        return _tokens_page(request, session, principal, error=exc.message, form=form, status_code=422)
    session.flush()
    return _tokens_page(request, session, principal, created=plaintext)


@router.post("/account/tokens/{token_id}/revoke")
def tokens_revoke(
    token_id: int, session: Session = DbSession, principal: Principal = Depends(page_viewer)
) -> Response:
    token = access.token_for(session, principal, token_id)
    security.revoke_token(session, principal, token)
    return redirect_with("/account/tokens", f"Token {token.name!r} revoked.")


@router.get("/admin/audit", response_class=HTMLResponse)
def audit_page(
    request: Request,
    filters: JobFilter = Depends(_job_filter),
    action: str = Query(default="", max_length=64),
    page: int = Query(default=1, ge=1, le=100_000),
    sort: str = Query(default="", max_length=32),
    session: Session = DbSession,
    principal: Principal = Depends(page_admin),
) -> Response:
    """The audit log, newest first unless a column header says otherwise: filters by action, user and dates;
    real pages with the total."""
    where = filters.query(session)
    query = {"action": action or None, "actor": filters.user or None, "since": where["since"], "until": where["until"]}
    total = audit_service.count_events(session, **query)
    pages = max(1, -(-total // AUDIT_PER_PAGE))
    page = min(page, pages)
    sort, error = checked_sort(sort, audit_service.AUDIT_SORTS, audit_service.AUDIT_DEFAULT_SORT)
    events = audit_service.search_events(session, **query, limit=AUDIT_PER_PAGE, offset=(page - 1) * AUDIT_PER_PAGE,
                                         sort=sort)
    filters_qs = "&".join(part for part in (filters.qs(), urlencode({"action": action}) if action else "") if part)
    usernames = list(session.scalars(select(User.username).order_by(User.username)))
    return render(request, "audit.html", principal, status_code=422 if error else 200, error=error, events=events,
                  action=action, filters=filters, total=total, page=page, pages=pages,
                  qs=_with_sort(filters_qs, sort, audit_service.AUDIT_DEFAULT_SORT), filters_qs=filters_qs,
                  sort=sort, actions=audit_service.event_actions(session),
                  usernames=[*usernames, "cli", "system"])


AUDIT_PER_PAGE = 100


@router.get("/admin/audit/export.csv")
def audit_export(
    filters: JobFilter = Depends(_job_filter),
    action: str = Query(default="", max_length=64),
    sort: str = Query(default="", max_length=32),
    session: Session = DbSession,
    principal: Principal = Depends(page_admin),
) -> Response:
    """The filtered, sorted audit log as CSV (every page, at most 10,000 events); the export is itself audited."""
    import json

    from phoneops.core.csvio import csv_lines

    where = filters.query(session)
    query = {"action": action or None, "actor": filters.user or None, "since": where["since"], "until": where["until"]}
    events = audit_service.search_events(session, **query, limit=10_000,
                                         sort=sort or audit_service.AUDIT_DEFAULT_SORT)
    lines = csv_lines(
        ("at", "user", "action", "target_type", "target_id", "client_ip", "detail"),
        ([e.at.isoformat(timespec="seconds"), e.actor, e.action, e.target_type or "", e.target_id or "",
          e.client_ip or "", json.dumps(e.detail, sort_keys=True)] for e in events),
    )
    audit_service.audit(session, principal, "audit.export", None, None,
                        {"rows": len(events), **{k: str(v) for k, v in query.items() if v}})
    return Response("".join(lines), media_type="text/csv",
                    headers={"Content-Disposition": 'attachment; filename="audit.csv"'})


@router.get("/files/{file_id}/download")
def download_page(
    file_id: str, session: Session = DbSession, principal: Principal = Depends(page_viewer)
) -> Response:
    from phoneops.core.router import downloadable, file_response

    return file_response(session, principal, downloadable(session, principal, file_id))
