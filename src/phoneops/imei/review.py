"""Orders in review and their ways out: attach the order id, match them from a provider export, write off.

An order is in `review` when no automatic step can settle it (`ImeiOrder.review_reason`):

- `no_order_id`: proven placed and paid (the provider said "IMEI already exists" / "Duplicate IMEI" when it was
  reconciled), but its order id is unknown, so its result can never be fetched. Counted in spend since it was proven.
- `second_order_id`: the provider gave a second order id for the same IMEI and service.
- `unsettled`: an answer we could not read.

Ways out, each audited: `attach_order_id` (typed in from the provider's panel: the row becomes `placed` and
the next status sync fetches its result), an imported provider export (`phoneops.imei.imports` matches rows
in review), and `write_off` with a reason (kept in spend when it was paid, never resent).
"""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from phoneops.core.audit import audit
from phoneops.core.db import utcnow
from phoneops.core.errors import Conflict, NotFound, ValidationFailed
from phoneops.core.security import Principal
from phoneops.imei.models import NO_ORDER_ID, PLACED, REVIEW, WRITTEN_OFF, ImeiOrder
from phoneops.imei.provider import account_title, join_id, split_id

REASONS = {
    NO_ORDER_ID: "placed and paid, order id unknown",
    "second_order_id": "the provider gave a second order id",
    "unsettled": "answer could not be read",
}
_ORDER_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
MAX_REASON = 500


def review_rows(session: Session, limit: int = 200) -> list[ImeiOrder]:
    """Orders in review, oldest first."""
    return list(session.scalars(
        select(ImeiOrder).where(ImeiOrder.state == REVIEW).order_by(ImeiOrder.id).limit(max(1, min(limit, 1000)))
    ))


def review_count(session: Session) -> int:
    return int(session.scalar(select(func.count(ImeiOrder.id)).where(ImeiOrder.state == REVIEW)) or 0)


def describe_row(order: ImeiOrder) -> dict[str, Any]:
    return {
        "id": order.id, "batch_id": order.batch_id, "imei": order.imei, "service_id": order.service_id,
        "service_title": order.service_title, "order_id": order.order_id,
        "reason": order.review_reason or "unsettled",
        "reason_text": REASONS.get(order.review_reason or "unsettled", order.review_reason or ""),
        "paid": order.placed_at is not None, "credits": None if order.credits is None else str(order.credits),
        "error": order.error, "sent_at": order.sent_at, "placed_at": order.placed_at,
    }


def _in_review(session: Session, row_id: int) -> ImeiOrder:
    order = session.get(ImeiOrder, row_id, with_for_update=True)
    if order is None:
        raise NotFound(f"no IMEI order {row_id}")
    if order.state != REVIEW:
        raise Conflict(f"IMEI order {row_id} is {order.state}, not in review")
    return order


def attach_order_id(session: Session, actor: Principal, row_id: int, order_id: str) -> ImeiOrder:
    """Give an order in review the provider's order id (from the provider's panel): it becomes `placed` and
    its result is fetched by the next status sync."""
    order = _in_review(session, row_id)
    account = split_id(order.service_id)[0]
    typed = (order_id or "").strip()
    given, remote = split_id(typed)
    if ":" in typed and given != account:
        raise ValidationFailed(f"order {typed!r} is not of {account_title(account)}, whose service this order is")
    if not _ORDER_ID.match(remote):
        raise ValidationFailed(f"the order id is {account_title(account)}'s order number "
                               "(letters, digits, - or _; up to 64)")
    value = join_id(account, remote)  # a DHRU account's orders are stored as `<account>:<reference>`
    holder = session.scalar(select(ImeiOrder.id).where(ImeiOrder.order_id == value, ImeiOrder.id != order.id))
    if holder is not None:
        raise Conflict(f"order id {value} already belongs to IMEI order {holder}")
    before = {"order_id": order.order_id, "reason": order.review_reason}
    now = utcnow()
    order.state, order.order_id = PLACED, value
    order.status = order.status or "Pending"
    order.placed_at = order.placed_at or order.sent_at or now
    order.order_date = order.order_date or order.placed_at
    order.notes = f"order id attached by {actor.username}"
    order.error, order.review_reason = None, None
    order.resolved_by, order.resolved_at = actor.username, now
    session.flush()
    audit(session, actor, "imei.review.attach_order_id", "imei_order", order.id,
          {"imei": order.imei, "order_id": value, "before": before})
    return order


def write_off(session: Session, actor: Principal, row_id: int, reason: str) -> ImeiOrder:
    """Close an order in review without a result, with the reason (it stays in spend if it was paid)."""
    text = (reason or "").strip()
    if not text:
        raise ValidationFailed("say why the order is written off (a reason is required)")
    if len(text) > MAX_REASON:
        raise ValidationFailed(f"the reason is at most {MAX_REASON} characters")
    order = _in_review(session, row_id)
    before = order.review_reason
    now = utcnow()
    order.state, order.notes = WRITTEN_OFF, f"written off by {actor.username}: {text}"
    order.resolved_by, order.resolved_at = actor.username, now
    session.flush()
    audit(session, actor, "imei.review.write_off", "imei_order", order.id,
          {"imei": order.imei, "reason": text, "review_reason": before, "paid": order.placed_at is not None})
    return order
