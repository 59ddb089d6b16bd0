"""imei: one active intent per IMEI and service (partial unique index); review reasons and resolutions

Revision ID: 0011_i14_imei_review
Revises: 0010_i18_result_columns
Create Date: 2026-12-06 04:40:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import phoneops.core.db

revision = "0011_i14_imei_review"
down_revision = "0010_i18_result_columns"
branch_labels = None
depends_on = None

_ACTIVE = "state IN ('queued', 'sending')"


def upgrade() -> None:
    op.add_column("imei_orders", sa.Column("review_reason", sa.String(length=24), nullable=True))
    op.add_column("imei_orders", sa.Column("resolved_by", sa.String(length=64), nullable=True))
    op.add_column("imei_orders", sa.Column("resolved_at", phoneops.core.db.UtcDateTime(timezone=True), nullable=True))
    # Intents racing before this index existed: the later ones cannot all be sent; a queued one is dropped,
    # a sending one (maybe sent) goes to review.
    bind = op.get_bind()
    rows = bind.execute(sa.text("SELECT id, imei, service_id, state FROM imei_orders "
                                "WHERE state IN ('queued', 'sending') ORDER BY id"))
    seen: set[tuple[str, str | None]] = set()
    for row_id, imei, service_id, state in rows.fetchall():
        if (imei, service_id) not in seen:
            seen.add((imei, service_id))
            continue
        if state == "queued":
            bind.execute(sa.text("UPDATE imei_orders SET state = 'failed', error = :e WHERE id = :i"),
                         {"e": "another order of this IMEI and service was in progress", "i": row_id})
        else:
            bind.execute(sa.text("UPDATE imei_orders SET state = 'review', review_reason = 'unsettled', error = :e "
                                 "WHERE id = :i"), {"e": "sent while another order of this IMEI and service was in "
                                                         "progress; check it", "i": row_id})
    op.create_index("uq_imei_orders_active_intent", "imei_orders", ["imei", "service_id"], unique=True,
                    sqlite_where=sa.text(_ACTIVE), postgresql_where=sa.text(_ACTIVE))


def downgrade() -> None:
    op.drop_index("uq_imei_orders_active_intent", table_name="imei_orders")
    for name in ("resolved_at", "resolved_by", "review_reason"):
        op.drop_column("imei_orders", name)
