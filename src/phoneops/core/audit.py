"""The audit log: every service that changes data or exports it writes one event here.

Paid provider calls, manual syncs and logins also say how they ended: `outcome` ("ok", "failed", or the
job's final status) is kept in the event's detail under that key (docs/operations.md lists the actions)."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from phoneops.core.models import AuditEvent
from phoneops.core.sorting import order_by

if TYPE_CHECKING:
    from phoneops.core.security import Principal


def audit(
    session: Session,
    actor: Principal,
    action: str,
    target_type: str | None = None,
    target_id: object = None,
    detail: dict[str, Any] | None = None,
    *,
    outcome: str | None = None,
) -> AuditEvent:
    detail = dict(detail or {})
    if outcome is not None:
        detail["outcome"] = outcome
    event = AuditEvent(
        actor_id=actor.user_id,
        actor=actor.username,
        action=action,
        target_type=target_type,
        target_id=None if target_id is None else str(target_id),
        client_ip=actor.client_ip,
        detail=detail,
    )
    session.add(event)
    return event


def first_actor(session: Session, action: str, target_type: str, target_id: object) -> str | None:
    """Who did `action` on a target first (e.g. who created a batch, when no user id says it: the CLI)."""
    return session.scalar(select(AuditEvent.actor).where(
        AuditEvent.action == action, AuditEvent.target_type == target_type, AuditEvent.target_id == str(target_id))
        .order_by(AuditEvent.id).limit(1))


def recent_events(
    session: Session, limit: int = 100, action: str | None = None, before_id: int | None = None
) -> list[AuditEvent]:
    query = select(AuditEvent).order_by(AuditEvent.id.desc()).limit(max(1, min(limit, 1000)))
    if action:
        query = query.where(AuditEvent.action == action)
    if before_id:
        query = query.where(AuditEvent.id < before_id)
    return list(session.scalars(query))


def _event_filters(action: str | None, actor: str | None, since: datetime | None, until: datetime | None) -> list[Any]:
    where: list[Any] = []
    if action:
        where.append(AuditEvent.action == action)
    if actor:
        where.append(AuditEvent.actor == actor)
    if since is not None:
        where.append(AuditEvent.at >= since)
    if until is not None:
        where.append(AuditEvent.at < until)
    return where


AUDIT_SORTS = {"at": AuditEvent.at, "actor": AuditEvent.actor, "action": AuditEvent.action,
               "target": AuditEvent.target_type}
AUDIT_DEFAULT_SORT = "-at"


def search_events(
    session: Session, *, action: str | None = None, actor: str | None = None, since: datetime | None = None,
    until: datetime | None = None, limit: int = 100, offset: int = 0, sort: str = AUDIT_DEFAULT_SORT,
) -> list[AuditEvent]:
    """Filtered, newest first unless `sort` (a key of `AUDIT_SORTS`, "-" first for descending) says otherwise;
    `offset` pages through them."""
    query = (select(AuditEvent).where(*_event_filters(action, actor, since, until))
             .order_by(*order_by(sort, AUDIT_SORTS, AuditEvent.id))
             .limit(max(1, min(limit, 10_000))).offset(max(0, offset)))
    return list(session.scalars(query))


def count_events(
    session: Session, *, action: str | None = None, actor: str | None = None, since: datetime | None = None,
    until: datetime | None = None,
) -> int:
    where = _event_filters(action, actor, since, until)
    return int(session.scalar(select(func.count(AuditEvent.id)).where(*where)) or 0)


def event_actions(session: Session) -> list[str]:
    return [str(a) for a in session.scalars(select(AuditEvent.action).distinct().order_by(AuditEvent.action))]
