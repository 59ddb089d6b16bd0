"""hlr: the estimate counts numbers in review elsewhere and numbers recently paid apart

Revision ID: 0009_i14_hlr_estimate
Revises: 0006_hlr
Create Date: 2026-12-06 04:20:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009_i14_hlr_estimate"
down_revision = "0006_hlr"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("hlr_lookups") as batch:
        batch.add_column(sa.Column("in_review", sa.Integer(), nullable=False, server_default="0"))
        batch.add_column(sa.Column("recently_paid", sa.Integer(), nullable=False, server_default="0"))


def downgrade() -> None:
    with op.batch_alter_table("hlr_lookups") as batch:
        batch.drop_column("recently_paid")
        batch.drop_column("in_review")
