"""FastAPI dependencies: the request's session, who is calling, and what they may do."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import replace

from fastapi import Depends, Request
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from phoneops.core.db import session_factory
from phoneops.core.errors import Forbidden, Unauthorized
from phoneops.core.security import (
    SESSION_COOKIE,
    Principal,
    Role,
    SessionCodec,
    csrf_matches,
    principal_for,
    scopes_for,
    token_and_user,
    token_scopes,
    user_for_session,
)
from phoneops.settings import get_settings

SAFE_METHODS = {"GET", "HEAD", "OPTIONS"}


class LoginRequired(Unauthorized):
    """Raised for pages: the handler turns it into a redirect to /login."""


def get_db(request: Request) -> Iterator[Session]:
    """One transaction per request, committed at the boundary.

    Use it through `DbSession` (`Depends(get_db, scope="function")`): the commit then happens when the endpoint returns,
    before the response is sent (FastAPI's default "request" scope commits after the client has the
    answer, so a client following a redirect could read before the write lands).
    """
    session = session_factory()()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


# The request's session, committed before the response is sent (see get_db).
DbSession = Depends(get_db, scope="function")


def client_ip(request: Request) -> str | None:
    return request.client.host if request.client else None


def codec() -> SessionCodec:
    settings = get_settings()
    return SessionCodec(settings.session_secret.get_secret_value(), settings.session_max_age_seconds)


async def _principal(request: Request, session: Session) -> Principal | None:
    auth = request.headers.get("authorization", "")
    if auth.lower().startswith("bearer "):
        # blocking database work runs in the threadpool: on the event loop, a request waiting for a pooled
        # connection would stall the very loop the requests holding connections need to finish
        found = await run_in_threadpool(token_and_user, session, auth[7:].strip())
        if found is None:
            raise Unauthorized("invalid, expired or revoked API token")
        token, owner = found
        return replace(principal_for(owner, "token", client_ip(request)), scopes=token_scopes(token, owner))
    cookie = request.cookies.get(SESSION_COOKIE)
    if not cookie:
        return None
    data = codec().read(cookie)
    if data is None:
        return None
    user = await run_in_threadpool(user_for_session, session, data)
    if user is None:
        return None
    principal = principal_for(user, "session", client_ip(request), csrf=str(data["csrf"]), sid=str(data["sid"]))
    if request.method not in SAFE_METHODS:
        given = request.headers.get("x-csrf-token")
        if given is None and request.headers.get("content-type", "").startswith(
            ("application/x-www-form-urlencoded", "multipart/form-data")
        ):
            form = await request.form()
            value = form.get("csrf_token")
            given = value if isinstance(value, str) else None
        if not csrf_matches(principal.csrf, given):
            raise Forbidden("missing or invalid CSRF token", code="csrf")
    return principal


def require(role: Role, *, page: bool = False) -> Callable[..., object]:
    async def dependency(request: Request, session: Session = DbSession) -> Principal:
        principal = await _principal(request, session)
        if principal is None:
            raise (LoginRequired if page else Unauthorized)("authentication required")
        if not principal.can(role):
            request.state.principal = principal  # the 403 page keeps the signed-in navigation
            raise Forbidden(f"this needs the {role.value} role")
        missing = principal.missing_scope(scopes_for(role, request.method, request.url.path))
        if missing is not None:
            raise Forbidden(f"this API token lacks the scope {missing}", code="insufficient_scope",
                            details={"missing_scope": missing})
        request.state.principal = principal
        if session.in_transaction():
            # hand the connection back before the handler runs: one that then waits on a provider, a file or
            # the client does not hold a pooled connection meanwhile (it takes one again when it queries)
            await run_in_threadpool(session.commit)
        return principal

    dependency.__name__ = f"require_{role.value}{'_page' if page else ''}"
    return dependency


viewer = require(Role.viewer)
operator = require(Role.operator)
admin = require(Role.admin)
page_viewer = require(Role.viewer, page=True)
page_operator = require(Role.operator, page=True)
page_admin = require(Role.admin, page=True)


async def optional_principal(request: Request, session: Session = DbSession) -> Principal | None:
    try:
        return await _principal(request, session)
    except (Unauthorized, Forbidden):
        return None
