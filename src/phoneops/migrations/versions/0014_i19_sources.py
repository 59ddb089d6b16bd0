"""sources: labelled lists and the numbers (blind indexes) each brought

Revision ID: 0014_i19_sources
Revises: 0012_i19_webhooks
Create Date: 2026-12-06 07:45:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import phoneops.core.db

revision = "0014_i19_sources"
down_revision = "0012_i19_webhooks"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "source_numbers",
        sa.Column("source", sa.String(length=64), nullable=False),
        sa.Column("blind_index", sa.LargeBinary(length=32), nullable=False),
        sa.Column("kept", sa.Boolean(), nullable=False),
        sa.Column("via", sa.String(length=16), nullable=False),
        sa.Column("first_at", phoneops.core.db.UtcDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("source", "blind_index", name=op.f("pk_source_numbers")),
    )
    op.create_index("ix_source_numbers_blind_index", "source_numbers", ["blind_index"], unique=False)
    op.create_table(
        "source_lists",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("source", sa.String(length=64), nullable=False),
        sa.Column("via", sa.String(length=16), nullable=False),
        sa.Column("ref", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("numbers", sa.Integer(), nullable=False),
        sa.Column("kept", sa.Integer(), nullable=False),
        sa.Column("created_by", sa.String(length=64), nullable=False),
        sa.Column("created_at", phoneops.core.db.UtcDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_source_lists")),
    )
    op.create_index("ix_source_lists_via_ref", "source_lists", ["via", "ref"], unique=True)
    op.create_index("ix_source_lists_source", "source_lists", ["source"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_source_lists_source", table_name="source_lists")
    op.drop_index("ix_source_lists_via_ref", table_name="source_lists")
    op.drop_table("source_lists")
    op.drop_index("ix_source_numbers_blind_index", table_name="source_numbers")
    op.drop_table("source_numbers")
