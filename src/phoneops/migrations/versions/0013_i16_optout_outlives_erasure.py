"""numbers: an opt-out outlives the erasure of its number (number_id SET NULL instead of CASCADE, nullable)

The opt-out row stays keyed by the blind index alone when privacy erases the number, so the number is still
refused if it ever comes back (docs/optouts.md, "Erasure").

Revision ID: 0013_i16_optout_outlives_erasure
Revises: 0010_i16_optouts_imports
Create Date: 2026-12-06 07:30:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0013_i16_optout_outlives_erasure"
down_revision = "0010_i16_optouts_imports"
branch_labels = None
depends_on = None

_FK = "fk_number_optouts_number_id_phone_numbers"
_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    with op.batch_alter_table("number_optouts", schema=None) as batch_op:
        batch_op.drop_constraint(_FK, type_="foreignkey")
        batch_op.alter_column("number_id", existing_type=_ID, nullable=True)
        batch_op.create_foreign_key(_FK, "phone_numbers", ["number_id"], ["id"], ondelete="SET NULL")


def downgrade() -> None:
    op.execute("DELETE FROM number_optouts WHERE number_id IS NULL")
    with op.batch_alter_table("number_optouts", schema=None) as batch_op:
        batch_op.drop_constraint(_FK, type_="foreignkey")
        batch_op.alter_column("number_id", existing_type=_ID, nullable=False)
        batch_op.create_foreign_key(_FK, "phone_numbers", ["number_id"], ["id"], ondelete="CASCADE")
