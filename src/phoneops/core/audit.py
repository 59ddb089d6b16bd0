"""The audit log: every service that changes data or exports it writes one event here."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from phoneops.core.models import AuditEvent

if TYPE_CHECKING:
    from phoneops.core.security import Principal


def audit(
    session: Session,
    actor: Principal,
    action: str,
    target_type: str | None = None,
    target_id: object = None,
    detail: dict[str, Any] | None = None,
) -> AuditEvent:
    event = AuditEvent(
        actor_id=actor.user_id,
        actor=actor.username,
        action=action,
        target_type=target_type,
        target_id=None if target_id is None else str(target_id),
        client_ip=actor.client_ip,
        detail=detail or {},
    )
    session.add(event)
    return event


def recent_events(
    session: Session, limit: int = 100, action: str | None = None, before_id: int | None = None
) -> list[AuditEvent]:
    query = select(AuditEvent).order_by(AuditEvent.id.desc()).limit(max(1, min(limit, 1000)))
    if action:
        query = query.where(AuditEvent.action == action)
    if before_id:
        query = query.where(AuditEvent.id < before_id)
    return list(session.scalars(query))
