"""money: the admins' exchange rates, what a cost push converted, and one definition of a day's cost

A day's cost (`broadcast_days.cost`) becomes every counted broadcast, with or without a campaign
(docs/money.md); before, it left out those without a campaign (kept in `unattributed_cost`, now a part of it).

Revision ID: 0013_i13b_money
Revises: 0007_broadcasts
Create Date: 2026-12-06 07:30:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import phoneops.core.db

revision = "0013_i13b_money"
down_revision = "0007_broadcasts"
branch_labels = None
depends_on = None

MONEY = sa.Numeric(precision=14, scale=4)
RATE = sa.Numeric(precision=18, scale=8)


def upgrade() -> None:
    op.create_table(
        "broadcast_exchange_rates",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("from_currency", sa.String(length=3), nullable=False),
        sa.Column("to_currency", sa.String(length=3), nullable=False),
        sa.Column("rate", RATE, nullable=False),
        sa.Column("set_by", sa.String(length=64), nullable=False),
        sa.Column("set_at", phoneops.core.db.UtcDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_broadcast_exchange_rates")),
        sa.UniqueConstraint("day", "from_currency", "to_currency",
                            name=op.f("uq_broadcast_exchange_rates_day_from_currency_to_currency")),
    )
    op.create_index("ix_broadcast_exchange_rates_day", "broadcast_exchange_rates", ["day"], unique=False)
    op.add_column("broadcast_cost_pushes", sa.Column("billed_cost", MONEY, nullable=True))
    op.add_column("broadcast_cost_pushes", sa.Column("billed_currency", sa.String(length=3), nullable=True))
    op.add_column("broadcast_cost_pushes", sa.Column("rate", RATE, nullable=True))
    op.execute("UPDATE broadcast_days SET cost = cost + unattributed_cost")


def downgrade() -> None:
    op.execute("UPDATE broadcast_days SET cost = cost - unattributed_cost")
    with op.batch_alter_table("broadcast_cost_pushes") as batch_op:
        batch_op.drop_column("rate")
        batch_op.drop_column("billed_currency")
        batch_op.drop_column("billed_cost")
    op.drop_index("ix_broadcast_exchange_rates_day", table_name="broadcast_exchange_rates")
    op.drop_table("broadcast_exchange_rates")
