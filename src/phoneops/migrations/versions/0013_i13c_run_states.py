"""voluum: archived and deleted smart cleanings and REG searches

Revision ID: 0013_i13c_run_states
Revises: 0005_voluum
Create Date: 2026-12-06 07:20:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import phoneops.core.db

revision = "0013_i13c_run_states"
down_revision = "0005_voluum"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "voluum_run_states",
        sa.Column("job_id", sa.String(length=36), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("changed_by", sa.String(length=64), nullable=False),
        sa.Column("changed_at", phoneops.core.db.UtcDateTime(timezone=True), nullable=False),
        sa.Column("files_removed", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["job_id"], ["jobs.id"], name=op.f("fk_voluum_run_states_job_id_jobs"),
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("job_id", name=op.f("pk_voluum_run_states")),
    )


def downgrade() -> None:
    op.drop_table("voluum_run_states")
