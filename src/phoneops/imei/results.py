"""Result texts stored on orders as columns (`phoneops.imei.parsing`), and re-parsing stored texts.

Every path that receives a result text (status sync, single refresh, provider export import) stores it
through `store_result`, so the raw text, the clean display text and the columns always agree. After a
parser change, `reparse_all` (`phoneops imei reparse`) rewrites the columns of every stored text.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import structlog
from sqlalchemy import select
from sqlalchemy.orm import Session

from phoneops.core.audit import audit
from phoneops.core.db import session_scope
from phoneops.core.security import Principal
from phoneops.imei.models import ImeiOrder
from phoneops.imei.parsing import COLUMNS, ParsedResult, parse_code

log = structlog.get_logger("phoneops.imei.results")

RESULT_COLUMNS = tuple(COLUMNS)
FLAG_COLUMNS = ("fmi_on", "blacklisted", "sim_locked", "purchased_on")
REPARSE_CHUNK = 500


def result_values(parsed: ParsedResult) -> dict[str, Any]:
    """Column → value for an order, from a parsed text (None for columns the text does not fill)."""
    values: dict[str, Any] = {column: parsed.columns.get(column) for column in RESULT_COLUMNS}
    values.update(fmi_on=parsed.fmi_on, blacklisted=parsed.blacklisted, sim_locked=parsed.sim_locked,
                  purchased_on=parsed.purchased_on, result_extra=dict(parsed.extra) or None,
                  code_display=parsed.display or None)
    return values


def store_result(order: ImeiOrder, code: str | None) -> ParsedResult:
    """Keep `code` raw on the order and fill every result column from it."""
    parsed = parse_code(code)
    order.code = code or None
    for column, value in result_values(parsed).items():
        setattr(order, column, value)
    return parsed


def result_table(order: ImeiOrder) -> list[tuple[str, str]]:
    """(label, value) rows for the order page: the known columns found, then the extra pairs."""
    from phoneops.imei.parsing import COLUMN_LABELS

    rows = [(COLUMN_LABELS[c], str(getattr(order, c))) for c in RESULT_COLUMNS if getattr(order, c)]
    rows += [(label, value) for label, value in (order.result_extra or {}).items()]
    return rows


def reparse_all(actor: Principal, progress: Callable[[int, int], None] | None = None) -> dict[str, int]:
    """Parse every stored result text again (after a parser change); `REPARSE_CHUNK` rows per transaction.

    Returns {"checked": rows with a text, "changed": rows whose columns changed}; audited once."""
    checked = changed = 0
    after = 0
    while True:
        with session_scope() as session:
            orders = list(
                session.scalars(
                    select(ImeiOrder).where(ImeiOrder.id > after, ImeiOrder.code.is_not(None))
                    .order_by(ImeiOrder.id).limit(REPARSE_CHUNK)
                )
            )
            if not orders:
                break
            for order in orders:
                values = result_values(parse_code(order.code))
                if any(getattr(order, k) != v for k, v in values.items()):
                    for column, value in values.items():
                        setattr(order, column, value)
                    changed += 1
            after = orders[-1].id
            checked += len(orders)
        if progress is not None:
            progress(checked, changed)
    with session_scope() as session:
        _audit_reparse(session, actor, checked, changed)
    log.info("imei.reparsed", checked=checked, changed=changed)
    return {"checked": checked, "changed": changed}


def _audit_reparse(session: Session, actor: Principal, checked: int, changed: int) -> None:
    audit(session, actor, "imei.reparse", "imei_orders", None, {"checked": checked, "changed": changed})
