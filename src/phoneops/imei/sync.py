"""Status sync: open orders (Pending, In Process) refreshed with `getimeis`, many ids per call.

Runs every 5 minutes (`imei.status_sync` periodic task), on demand (`imei.sync` job, `phoneops imei sync`)
and for one order (`refresh_order`, used by the order page and `phoneops imei wait`). The result `code`
is stored raw, as clean display text, and parsed into result columns (`phoneops.imei.results`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import structlog
from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from phoneops.core.audit import audit
from phoneops.core.db import release, session_scope, utcnow
from phoneops.core.errors import AppError
from phoneops.core.http import ProviderError
from phoneops.core.security import Principal
from phoneops.imei.client import OrderStatus
from phoneops.imei.models import PLACED, ImeiOrder
from phoneops.imei.parsing import FINAL_STATUSES, OPEN_STATUSES
from phoneops.imei.provider import StatusSource, as_app_error, sync_pool
from phoneops.imei.results import store_result

log = structlog.get_logger("phoneops.imei.sync")

IDS_PER_CALL = 100
ROWS_PER_STEP = 500


def apply_statuses(session: Session, statuses: Sequence[OrderStatus]) -> dict[str, int]:
    """Store `getimeis` answers on our orders (matched by order id); returns counts by new status."""
    by_id = {s.order_id: s for s in statuses}
    counts: dict[str, int] = {}
    if not by_id:
        return counts
    rows = session.scalars(select(ImeiOrder).where(ImeiOrder.order_id.in_(list(by_id))))
    now = utcnow()
    for order in rows:
        assert order.order_id is not None
        answer = by_id[order.order_id]
        order.status = answer.status[:16] if answer.status else order.status
        order.synced_at = now
        if answer.package and not order.service_title:
            order.service_title = answer.package[:255]
        if answer.raw:
            order.raw_response = answer.raw
        if answer.code:
            store_result(order, answer.code)
        key = order.status or "unknown"
        counts[key] = counts.get(key, 0) + 1
    session.flush()
    return counts


def _open_ids(session: Session, limit: int, after_id: int) -> list[tuple[int, str]]:
    rows = session.execute(
        select(ImeiOrder.id, ImeiOrder.order_id)
        .where(
            ImeiOrder.state == PLACED,
            ImeiOrder.order_id.is_not(None),
            or_(ImeiOrder.status.is_(None), ImeiOrder.status.in_(sorted(OPEN_STATUSES))),
            ImeiOrder.id > after_id,
        )
        .order_by(ImeiOrder.id)
        .limit(limit)
    ).all()
    return [(int(row_id), str(order_id)) for row_id, order_id in rows]


def count_open(session: Session) -> int:
    from sqlalchemy import func

    return int(
        session.scalar(
            select(func.count(ImeiOrder.id)).where(
                ImeiOrder.state == PLACED,
                ImeiOrder.order_id.is_not(None),
                or_(ImeiOrder.status.is_(None), ImeiOrder.status.in_(sorted(OPEN_STATUSES))),
            )
        )
        or 0
    )


def sync_open_orders(
    client: StatusSource | None = None, progress: Callable[[int, dict[str, int]], None] | None = None
) -> dict[str, Any]:
    """Refresh every open order, `ROWS_PER_STEP` per transaction; returns counts by status."""
    own = client is None
    client = client or sync_pool()
    totals: dict[str, int] = {}
    checked = 0
    after_id = 0
    try:
        while True:
            with session_scope() as session:
                batch = _open_ids(session, ROWS_PER_STEP, after_id)
            if not batch:
                break
            after_id = batch[-1][0]
            statuses = client.get_imeis([order_id for _, order_id in batch], chunk_size=IDS_PER_CALL)
            with session_scope() as session:
                for status, count in apply_statuses(session, statuses).items():
                    totals[status] = totals.get(status, 0) + count
            checked += len(batch)
            if progress is not None:
                progress(checked, totals)
    finally:
        if own:
            client.close()
    log.info("imei.sync_done", checked=checked, **totals)
    return {"checked": checked, "by_status": totals}


def refresh_order(session: Session, order: ImeiOrder, client: StatusSource | None = None) -> ImeiOrder:
    """Ask the provider for one order now (no-op for rows without an order id)."""
    if not order.order_id:
        return order
    own = client is None
    client = client or sync_pool(timeout=15.0)
    release(session)  # no pooled connection held while the provider answers (issue 21)
    try:
        statuses = client.get_imeis([order.order_id])
        apply_statuses(session, statuses)
    except ProviderError as exc:
        raise as_app_error(exc) from None
    finally:
        if own:
            client.close()
    return order


def refresh_audited(session: Session, actor: Principal, order: ImeiOrder, via: str) -> ImeiOrder:
    """A user's refresh of one order (API, page, CLI), audited with its outcome. On a provider error the
    failure is audited in `session` and the error re-raised: the caller keeps (commits) that audit line."""
    detail: dict[str, Any] = {"order_id": order.order_id, "via": via}
    try:
        refresh_order(session, order)
    except AppError as exc:
        audit(session, actor, "imei.order.refresh", "imei_order", order.id, {**detail, "error": exc.message},
              outcome="failed")
        raise
    audit(session, actor, "imei.order.refresh", "imei_order", order.id, {**detail, "status": order.status},
          outcome="ok")
    return order


def is_final(order: ImeiOrder) -> bool:
    return order.status in FINAL_STATUSES or not order.order_id
