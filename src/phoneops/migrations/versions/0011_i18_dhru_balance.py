"""imei: the provider account of each service (DHRU accounts side by side), the balance guard on batches

Revision ID: 0011_i18_dhru_balance
Revises: 0010_i18_result_columns
Create Date: 2026-12-06 04:30:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011_i18_dhru_balance"
down_revision = "0010_i18_result_columns"
branch_labels = None
depends_on = None

MONEY = sa.Numeric(12, 4)


def upgrade() -> None:
    op.add_column(
        "imei_services",
        sa.Column("account", sa.String(length=32), nullable=False, server_default="gsm_fusion"),
    )
    op.create_index("ix_imei_services_account", "imei_services", ["account"])
    op.add_column("imei_batches", sa.Column("balance_account", sa.String(length=32), nullable=True))
    op.add_column("imei_batches", sa.Column("balance_start", MONEY, nullable=True))
    op.add_column("imei_batches", sa.Column("balance_end", MONEY, nullable=True))
    op.add_column("imei_batches", sa.Column("balance_difference", MONEY, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("imei_batches") as batch:
        for name in ("balance_difference", "balance_end", "balance_start", "balance_account"):
            batch.drop_column(name)
    op.drop_index("ix_imei_services_account", table_name="imei_services")
    with op.batch_alter_table("imei_services") as batch:
        batch.drop_column("account")
