"""cleaning: the first rows of an upload sealed at rest (issue 21)

Revision ID: 0009_i21_sealed_samples
Revises: 0004_cleaning
Create Date: 2026-12-06 04:30:00.000000

Samples stored before were plaintext: they are cleared (they are only a preview on the file page; the
migration has no keys to seal them).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009_i21_sealed_samples"
down_revision = "0004_cleaning"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("cleaning_files") as batch:
        batch.add_column(sa.Column("sample_sealed", sa.Text(), nullable=True))
    op.execute(sa.text("UPDATE cleaning_files SET sample = '[]'"))


def downgrade() -> None:
    with op.batch_alter_table("cleaning_files") as batch:
        batch.drop_column("sample_sealed")
