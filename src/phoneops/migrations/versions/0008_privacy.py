"""privacy: the erasure ledger

Revision ID: 0008_privacy
Revises: 0001_core
Create Date: 2026-11-23 09:30:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import phoneops.core.db

revision = "0008_privacy"
down_revision = "0001_core"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "privacy_erasures",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("blind_index", sa.LargeBinary(length=32), nullable=False),
        sa.Column("masked", sa.String(length=32), nullable=False),
        sa.Column("country", sa.String(length=2), nullable=True),
        sa.Column("region", sa.String(length=2), nullable=False),
        sa.Column("sealed", sa.LargeBinary(length=128), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("job_id", sa.String(length=36), nullable=True),
        sa.Column("counts", sa.JSON(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("requested_by", sa.String(length=64), nullable=False),
        sa.Column("requested_at", phoneops.core.db.UtcDateTime(timezone=True), nullable=False),
        sa.Column("finished_at", phoneops.core.db.UtcDateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_privacy_erasures")),
    )
    op.create_index("ix_privacy_erasures_blind_index", "privacy_erasures", ["blind_index"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_privacy_erasures_blind_index", table_name="privacy_erasures")
    op.drop_table("privacy_erasures")
