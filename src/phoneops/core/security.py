# Over 400 lines: authentication in one place: passwords, tokens, sessions, CSRF, throttling.
"""Users, roles, passwords, API tokens, session cookies, CSRF and login throttling."""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from itsdangerous import BadSignature, URLSafeTimedSerializer
from sqlalchemy import delete, func, or_, select, update
from sqlalchemy.orm import Session

from phoneops.core.audit import audit
from phoneops.core.db import rowcount, utcnow
from phoneops.core.errors import Conflict, NotFound, TooManyRequests, Unauthorized, ValidationFailed
from phoneops.core.models import ApiToken, LoginAttempt, User, UserSession


class Role(StrEnum):
    viewer = "viewer"
    operator = "operator"
    admin = "admin"

    @property
    def rank(self) -> int:
        return {"viewer": 0, "operator": 1, "admin": 2}[self.value]

    def allows(self, needed: Role) -> bool:
        return self.rank >= needed.rank


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is acting: a user (through a session or a token) or the system (tasks, CLI)."""

    user_id: int | None
    username: str
    role: Role
    via: str = "system"  # session | token | system | cli
    client_ip: str | None = None
    csrf: str | None = None
    sid: str | None = None  # the browser session's id (via="session"): logout ends it
    # What an API token may do (see SCOPES); None for sessions, the CLI and the system: their role decides.
    scopes: frozenset[str] | None = None

    def can(self, needed: Role) -> bool:
        return self.role.allows(needed)

    def missing_scope(self, acceptable: tuple[str, ...]) -> str | None:
        """None when this caller holds one of `acceptable`; else the scope(s) to name in the refusal."""
        if self.scopes is None or any(scope in self.scopes for scope in acceptable):
            return None
        return " or ".join(acceptable)


SYSTEM = Principal(user_id=None, username="system", role=Role.admin, via="system")

_hasher = PasswordHasher()
_USERNAME = re.compile(r"^[A-Za-z0-9_.@-]{2,64}$")
MIN_PASSWORD = 10


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(password_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(password_hash, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def principal_for(user: User, via: str, client_ip: str | None = None, csrf: str | None = None,
                  sid: str | None = None) -> Principal:
    return Principal(user.id, user.username, Role(user.role), via=via, client_ip=client_ip, csrf=csrf, sid=sid)


def acting_for(session: Session, user_id: int | None, via: str = "job", name: str | None = None) -> Principal:
    """Who background work acts for: the user who started it (by id); else `name` (who started it without a
    user id, e.g. `cli`), or the system."""
    user = session.get(User, user_id) if user_id is not None else None
    if user is None:
        return Principal(user_id=None, username=name or "system", role=Role.admin, via=via)
    return principal_for(user, via)


# --- users -------------------------------------------------------------------------------------


def create_user(session: Session, actor: Principal, username: str, password: str, role: str) -> User:
    if not _USERNAME.match(username):
        raise ValidationFailed("username must be 2-64 letters, digits or _ . @ -")
    if len(password) < MIN_PASSWORD:
        raise ValidationFailed(f"password must be at least {MIN_PASSWORD} characters")
    try:
        role_value = Role(role)
    except ValueError:
        raise ValidationFailed(f"role must be one of {', '.join(r.value for r in Role)}") from None
    if session.scalar(select(User.id).where(func.lower(User.username) == username.lower())) is not None:
        raise Conflict(f"user {username!r} already exists")
    user = User(username=username, password_hash=hash_password(password), role=role_value.value)
    session.add(user)
    session.flush()
    audit(session, actor, "user.create", "user", user.id, {"username": username, "role": role_value.value})
    return user


def get_user(session: Session, username: str) -> User:
    user = session.scalar(select(User).where(User.username == username))
    if user is None:
        raise NotFound(f"no user {username!r}")
    return user


def list_users(session: Session) -> list[User]:
    return list(session.scalars(select(User).order_by(User.username)))


def _revoke_tokens(session: Session, user: User) -> int:
    revoked = 0
    for token in session.scalars(select(ApiToken).where(ApiToken.user_id == user.id, ApiToken.revoked_at.is_(None))):
        token.revoked_at = utcnow()
        revoked += 1
    return revoked


def _other_active_admins(session: Session, user: User) -> int:
    return session.scalar(select(func.count(User.id)).where(
        User.role == Role.admin.value, User.is_active.is_(True), User.id != user.id)) or 0


def set_user_active(session: Session, actor: Principal, username: str, active: bool, *,
                    revoke_tokens: bool = True) -> User:
    """Disable (every session ends at once; API tokens revoked unless `revoke_tokens` is False: a disabled
    user's tokens are refused anyway, kept ones work again on enable) or enable a user. Audited."""
    user = get_user(session, username)
    if not active and user.role == Role.admin.value and user.is_active and not _other_active_admins(session, user):
        raise Conflict(f"{username!r} is the last active admin; make another admin first")
    changed = user.is_active != active
    user.is_active = active
    detail: dict[str, Any] = {"username": username}
    if not active:
        user.session_version += 1
        detail["sessions_ended"] = end_sessions(session, user.id)
        if revoke_tokens:
            detail["tokens_revoked"] = _revoke_tokens(session, user)
    if changed or not active:
        audit(session, actor, "user.enable" if active else "user.disable", "user", user.id, detail)
    return user


def set_role(session: Session, actor: Principal, username: str, role: str) -> User:
    """Change a user's role (takes effect on their next request). Audited."""
    try:
        role_value = Role(role)
    except ValueError:
        raise ValidationFailed(f"role must be one of {', '.join(r.value for r in Role)}") from None
    user = get_user(session, username)
    if (user.role == Role.admin.value and role_value is not Role.admin and user.is_active
            and not _other_active_admins(session, user)):
        raise Conflict(f"{username!r} is the last active admin; make another admin first")
    before = user.role
    if before != role_value.value:
        user.role = role_value.value
        audit(session, actor, "user.role", "user", user.id, {"username": username, "from": before,
                                                             "to": role_value.value})
    return user


def set_password(session: Session, actor: Principal, username: str, password: str, *,
                 revoke_tokens: bool = False, keep_session: str | None = None) -> User:
    """Set a password (an admin's reset, or the user's own change through `change_password`): every session
    of the user ends at once but `keep_session` (the one making the change); API tokens are revoked when
    asked. Audited."""
    if len(password) < MIN_PASSWORD:
        raise ValidationFailed(f"password must be at least {MIN_PASSWORD} characters")
    user = get_user(session, username)
    user.password_hash = hash_password(password)
    detail: dict[str, Any] = {"username": username, "by": "self" if actor.user_id == user.id else "admin"}
    detail["sessions_ended"] = end_sessions(session, user.id, keep=keep_session)
    if keep_session is None:
        user.session_version += 1
    if revoke_tokens:
        detail["tokens_revoked"] = _revoke_tokens(session, user)
    audit(session, actor, "user.password", "user", user.id, detail)
    return user


def change_password(session: Session, actor: Principal, current: str, new: str, *, revoke_tokens: bool = False,
                    keep_session: str | None = None) -> User:
    """A user changes their own password: the current one is checked first (422 when wrong)."""
    if actor.user_id is None:
        raise ValidationFailed("only a user can change their own password")
    user = session.get(User, actor.user_id)
    if user is None:
        raise NotFound("no such user")
    if not verify_password(user.password_hash, current):
        raise ValidationFailed("the current password is not correct", code="wrong_password")
    if current == new:
        raise ValidationFailed("the new password must differ from the current one")
    return set_password(session, actor, user.username, new, revoke_tokens=revoke_tokens, keep_session=keep_session)


# --- login and throttling ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LoginPolicy:
    free_failures: int = 5  # failures of one name from one address before delays start
    max_delay: int = 300  # the longest wait between two tries (also the window failures are counted in)
    address_failures: int = 20  # failures from one address across all names per window


_dummy_hash: str | None = None


def _dummy() -> str:
    """A real hash to verify against for unknown names: the same work (and time) as for a known one."""
    global _dummy_hash
    if _dummy_hash is None:
        _dummy_hash = hash_password(secrets.token_urlsafe(24))
    return _dummy_hash


def _throttle_name(username: str) -> str:
    return username.strip().lower()[:64]


def login_wait(session: Session, username: str, client_ip: str | None, policy: LoginPolicy) -> int:
    """Seconds the caller must wait before trying this name from this address (0: may try now).

    Per (name, address): after `free_failures` failures, each next try waits 1, 2, 4 ... s after the last
    failure (capped at `max_delay`). Per address: `address_failures` failures across names per window.
    Guesses from one address never slow down another: the owner logs in from theirs."""
    now = utcnow()
    since = now - timedelta(seconds=policy.max_delay)
    name = _throttle_name(username)
    ip = client_ip or ""
    count, last = session.execute(
        select(func.count(LoginAttempt.id), func.max(LoginAttempt.at)).where(
            LoginAttempt.username == name, LoginAttempt.client_ip == ip,
            LoginAttempt.success.is_(False), LoginAttempt.at >= since,
        )
    ).one()
    wait = 0.0
    if count and count >= policy.free_failures and last is not None:
        delay = min(2 ** (count - policy.free_failures), policy.max_delay)
        last = last if last.tzinfo else last.replace(tzinfo=now.tzinfo)
        wait = max(wait, (last + timedelta(seconds=delay) - now).total_seconds())
    by_address, oldest = session.execute(
        select(func.count(LoginAttempt.id), func.min(LoginAttempt.at)).where(
            LoginAttempt.client_ip == ip, LoginAttempt.success.is_(False), LoginAttempt.at >= since,
        )
    ).one()
    if by_address and by_address >= policy.address_failures and oldest is not None:
        oldest = oldest if oldest.tzinfo else oldest.replace(tzinfo=now.tzinfo)
        wait = max(wait, (oldest + timedelta(seconds=policy.max_delay) - now).total_seconds())
    return int(wait) + (1 if wait > int(wait) else 0)


def authenticate(session: Session, username: str, password: str, client_ip: str | None,
                 policy: LoginPolicy | None = None) -> User:
    """Check a user name and password, throttled per (name, address) and per address (`login_wait`).

    Unknown, disabled and known names cost the same work (a password hash is always verified), so the
    answer's timing does not tell which names exist. Failures are recorded (the caller commits them)."""
    policy = policy or LoginPolicy()
    wait = login_wait(session, username, client_ip, policy)
    if wait > 0:
        raise TooManyRequests(f"too many failed logins from this address; try again in {wait} s",
                              retry_after=wait)
    user = session.scalar(select(User).where(User.username == username))
    verified = verify_password(user.password_hash if user is not None else _dummy(), password)
    ok = verified and user is not None and user.is_active
    name, ip = _throttle_name(username), client_ip or ""
    session.add(LoginAttempt(username=name, client_ip=ip, success=ok))
    if not ok or user is None:
        session.flush()
        raise Unauthorized("invalid username or password")
    session.execute(delete(LoginAttempt).where(  # this address's failures on this name only
        LoginAttempt.username == name, LoginAttempt.client_ip == ip, LoginAttempt.success.is_(False)))
    user.last_login_at = utcnow()
    return user


# --- API tokens --------------------------------------------------------------------------------

TOKEN_PREFIX = "po_"  # noqa: S105 - a public prefix, not a secret

# What a token may be allowed to do. A token never holds more than its user's role allows (ROLE_SCOPES), and
# what it may do is always cut to the role the user has now (a demoted user's tokens lose the rest).
SCOPES: tuple[str, ...] = ("read", "numbers:write", "cleaning", "hlr:spend", "imei:spend", "admin")
ROLE_SCOPES: dict[Role, frozenset[str]] = {
    Role.viewer: frozenset({"read"}),
    Role.operator: frozenset({"read", "numbers:write", "cleaning", "hlr:spend", "imei:spend"}),
    Role.admin: frozenset(SCOPES),
}
WRITE_SCOPES: tuple[str, ...] = ("numbers:write", "cleaning", "hlr:spend", "imei:spend")
# The scope a state-changing call needs, by path (the first prefix that matches); see `scopes_for`.
# Pages and the API share the table: `/api/imei/...` and `/imei/...` need the same scope.
_WRITE_SCOPE_BY_PREFIX: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("/imei", ("imei:spend",)),
    ("/hlr", ("hlr:spend",)),
    ("/cleaning", ("cleaning",)),
    ("/files", ("cleaning",)),
    ("/tokens", ("read",)),  # one's own tokens; a token never creates one with more than it holds
    ("/account", ("read",)),  # one's own account (password, sessions): self-service, like the pages
    ("/me", ("read",)),
    ("/logout", ("read",)),
    ("/jobs", WRITE_SCOPES),  # cancelling a job: whoever may start work may stop it
)
_SAFE = frozenset({"GET", "HEAD", "OPTIONS"})


def scopes_for(role_needed: Role, method: str, path: str) -> tuple[str, ...]:
    """The token scopes of which one lets a call through (`role_needed` is the route's role).

    Admin routes need `admin`; reading needs `read`; a change needs its domain's scope (IMEI orders
    `imei:spend`, HLR lookups `hlr:spend`, cleaning and uploads `cleaning`) and anything else that changes
    data `numbers:write`. docs/api.md has the table."""
    if role_needed is Role.admin:
        return ("admin",)
    if method.upper() in _SAFE:
        return ("read",)
    path = path.removeprefix("/api")
    for prefix, scopes in _WRITE_SCOPE_BY_PREFIX:
        if path == prefix or path.startswith(prefix + "/"):
            return scopes
    return ("numbers:write",)


def _check_scopes(actor: Principal, user: User, scopes: list[str] | None) -> list[str]:
    role = Role(user.role)
    allowed = ROLE_SCOPES[role]
    if scopes is None:
        chosen = set(allowed if actor.scopes is None else allowed & actor.scopes)
    else:
        unknown = sorted(set(scopes) - set(SCOPES))
        if unknown:
            raise ValidationFailed(f"unknown scope(s) {', '.join(unknown)}; allowed: {', '.join(SCOPES)}")
        beyond = sorted(set(scopes) - allowed)
        if beyond:
            raise ValidationFailed(
                f"a {role.value}'s token cannot have {', '.join(beyond)}; "
                f"it may have: {', '.join(s for s in SCOPES if s in allowed)}"
            )
        chosen = set(scopes)
        if actor.scopes is not None and not chosen <= actor.scopes:
            raise ValidationFailed("a token cannot create a token with scopes it does not hold itself")
    if not chosen:
        raise ValidationFailed("a token needs at least one scope")
    return [s for s in SCOPES if s in chosen]


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def create_token(
    session: Session, actor: Principal, username: str, name: str,
    scopes: list[str] | None = None, expires_in_days: int | None = None,
) -> tuple[ApiToken, str]:
    """Create a token for `username`; the plaintext is returned once and never stored.

    `scopes` default to everything the user's role allows (cut to the calling token's own scopes);
    `expires_in_days` None means the token lives until revoked."""
    user = get_user(session, username)
    if not user.is_active:
        raise Conflict(f"user {username!r} is disabled")
    chosen = _check_scopes(actor, user, scopes)
    if expires_in_days is not None and not 1 <= expires_in_days <= 3650:
        raise ValidationFailed("expires_in_days must be between 1 and 3650 (or empty for no expiry)")
    expires_at = utcnow() + timedelta(days=expires_in_days) if expires_in_days else None
    name = name.strip()[:100] or "token"
    plaintext = TOKEN_PREFIX + secrets.token_urlsafe(32)
    token = ApiToken(user_id=user.id, name=name, prefix=plaintext[:10], token_hash=_token_hash(plaintext),
                     scopes=chosen, expires_at=expires_at)
    session.add(token)
    session.flush()
    audit(session, actor, "token.create", "api_token", token.id,
          {"user": username, "name": name, "scopes": chosen,
           "expires_at": expires_at.isoformat() if expires_at else None})
    return token, plaintext


def token_scopes(token: ApiToken, user: User) -> frozenset[str]:
    """What a token may do now: its scopes, cut to its user's current role (older tokens: the whole role)."""
    allowed = ROLE_SCOPES[Role(user.role)]
    return allowed if token.scopes is None else allowed & frozenset(token.scopes)


def revoke_token(session: Session, actor: Principal, token: ApiToken) -> ApiToken:
    """Revoke a token; who may is checked by the caller with phoneops.core.access.token_for."""
    if token.revoked_at is None:
        token.revoked_at = utcnow()
        audit(session, actor, "token.revoke", "api_token", token.id, {"name": token.name})
    return token


def list_tokens(session: Session, user_id: int | None = None) -> list[tuple[ApiToken, str]]:
    query = select(ApiToken, User.username).join(User, User.id == ApiToken.user_id).order_by(ApiToken.id)
    if user_id is not None:
        query = query.where(ApiToken.user_id == user_id)
    return [(t, u) for t, u in session.execute(query).all()]


def user_for_token(session: Session, token: str) -> User | None:
    found = token_and_user(session, token)
    return None if found is None else found[1]


def token_and_user(session: Session, token: str) -> tuple[ApiToken, User] | None:
    """The live token and its user; None for an unknown, revoked or expired token or a disabled user."""
    if not token.startswith(TOKEN_PREFIX):
        return None
    row = session.execute(
        select(ApiToken, User)
        .join(User, User.id == ApiToken.user_id)
        .where(ApiToken.token_hash == _token_hash(token))
    ).first()
    if row is None:
        return None
    api_token, user = row
    now = utcnow()
    if api_token.revoked_at is not None or not user.is_active:
        return None
    if api_token.expires_at is not None and api_token.expires_at <= now:
        return None
    last = api_token.last_used_at
    if last is None or (now - last).total_seconds() > 60:
        _touch_token(api_token.id, now)
    return api_token, user


def _touch_token(token_id: int, now: datetime) -> None:
    """Record a token's use in its own short transaction, at most once a minute: a burst of requests on one
    token must not each hold that row's write lock for the length of the request (SQLite serialises them)."""
    from phoneops.core.db import session_scope

    stale = now - timedelta(seconds=60)
    with session_scope() as session:
        session.execute(
            update(ApiToken)
            .where(ApiToken.id == token_id, or_(ApiToken.last_used_at.is_(None), ApiToken.last_used_at < stale))
            .values(last_used_at=now)
        )


# --- session cookies and CSRF ------------------------------------------------------------------

SESSION_COOKIE = "phoneops_session"


class SessionCodec:
    """Signed session payloads: {"uid", "sv" (session version), "sid" (server-side session), "csrf"}."""

    def __init__(self, secret: str, max_age: int) -> None:
        self._s = URLSafeTimedSerializer(secret, salt="phoneops.session")
        self.max_age = max_age

    def issue(self, user: User, sid: str) -> tuple[str, str]:
        csrf = secrets.token_urlsafe(24)
        return self._s.dumps({"uid": user.id, "sv": user.session_version, "sid": sid, "csrf": csrf}), csrf

    def read(self, cookie: str) -> dict[str, Any] | None:
        try:
            data = self._s.loads(cookie, max_age=self.max_age)
        except BadSignature:
            return None
        if not isinstance(data, dict) or not {"uid", "sv", "sid", "csrf"} <= data.keys():
            return None
        return data


def _sid_hash(sid: str) -> str:
    return hashlib.sha256(sid.encode()).hexdigest()


def start_session(session: Session, user: User, client_ip: str | None, max_age: int) -> str:
    """A new server-side session for `user`; returns its id (for the signed cookie)."""
    sid = secrets.token_urlsafe(32)
    now = utcnow()
    session.add(UserSession(id=_sid_hash(sid), user_id=user.id, client_ip=client_ip, created_at=now,
                            expires_at=now + timedelta(seconds=max_age)))
    session.flush()
    return sid


def end_session(session: Session, sid: str) -> None:
    session.execute(update(UserSession).where(UserSession.id == _sid_hash(sid), UserSession.ended_at.is_(None))
                    .values(ended_at=utcnow()))


def end_sessions(session: Session, user_id: int, keep: str | None = None) -> int:
    """End every open session of a user (but `keep`, a session id); returns how many ended."""
    query = update(UserSession).where(UserSession.user_id == user_id, UserSession.ended_at.is_(None))
    if keep is not None:
        query = query.where(UserSession.id != _sid_hash(keep))
    return rowcount(session.execute(query.values(ended_at=utcnow())))


def user_for_session(session: Session, data: dict[str, Any]) -> User | None:
    row = session.execute(
        select(User, UserSession.expires_at).join(UserSession, UserSession.user_id == User.id)
        .where(UserSession.id == _sid_hash(str(data["sid"])), UserSession.ended_at.is_(None),
               User.id == int(data["uid"]))
    ).first()
    if row is None:
        return None
    user, expires_at = row
    if not user.is_active or user.session_version != data["sv"] or expires_at <= utcnow():
        return None
    return user


def csrf_matches(expected: str | None, given: str | None) -> bool:
    return bool(expected) and bool(given) and hmac.compare_digest(str(expected), str(given))


def recent_failures(session: Session, since: datetime) -> int:
    return session.scalar(
        select(func.count(LoginAttempt.id)).where(LoginAttempt.success.is_(False), LoginAttempt.at >= since)
    ) or 0
