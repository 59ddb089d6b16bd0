"""hlr: the estimate leaves out opted-out numbers and numbers that cannot be mobile, and shows the credits saved

Revision ID: 0014_i16_hlr_excluded
Revises: 0009_i14_hlr_estimate
Create Date: 2026-12-06 07:40:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0014_i16_hlr_excluded"
down_revision = "0009_i14_hlr_estimate"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("hlr_lookups") as batch:
        batch.add_column(sa.Column("opted_out", sa.Integer(), nullable=False, server_default="0"))
        batch.add_column(sa.Column("not_mobile", sa.Integer(), nullable=False, server_default="0"))
        batch.add_column(sa.Column("not_mobile_types", sa.JSON(), nullable=False, server_default="{}"))
        batch.add_column(sa.Column("include_non_mobile", sa.Boolean(), nullable=False, server_default=sa.false()))
        batch.add_column(sa.Column("credits_saved", sa.Numeric(14, 2), nullable=False, server_default="0"))


def downgrade() -> None:
    with op.batch_alter_table("hlr_lookups") as batch:
        for column in ("credits_saved", "include_non_mobile", "not_mobile_types", "not_mobile", "opted_out"):
            batch.drop_column(column)
