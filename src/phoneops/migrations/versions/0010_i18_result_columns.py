"""imei: result texts as typed columns, the provider's raw answer per order

Revision ID: 0010_i18_result_columns
Revises: 0002_imei
Create Date: 2026-12-06 04:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010_i18_result_columns"
down_revision = "0002_imei"
branch_labels = None
depends_on = None

_TEXTS = (
    ("brand", 255),
    ("serial", 64),
    ("meid", 32),
    ("icloud", 255),
    ("blacklist", 255),
    ("warranty", 255),
    ("purchase_date", 255),
    ("activation", 255),
    ("country", 255),
)


def upgrade() -> None:
    for name, size in _TEXTS:
        op.add_column("imei_orders", sa.Column(name, sa.String(length=size), nullable=True))
    op.add_column("imei_orders", sa.Column("purchased_on", sa.Date(), nullable=True))
    for name in ("fmi_on", "blacklisted", "sim_locked"):
        op.add_column("imei_orders", sa.Column(name, sa.Boolean(), nullable=True))
    op.add_column("imei_orders", sa.Column("result_extra", sa.JSON(), nullable=True))
    op.add_column("imei_orders", sa.Column("raw_response", sa.Text(), nullable=True))
    op.create_index("ix_imei_orders_result_flags", "imei_orders", ["fmi_on", "blacklisted", "sim_locked"])


def downgrade() -> None:
    op.drop_index("ix_imei_orders_result_flags", table_name="imei_orders")
    with op.batch_alter_table("imei_orders") as batch:
        for name in ("raw_response", "result_extra", "sim_locked", "blacklisted", "fmi_on", "purchased_on"):
            batch.drop_column(name)
        for name, _ in reversed(_TEXTS):
            batch.drop_column(name)
