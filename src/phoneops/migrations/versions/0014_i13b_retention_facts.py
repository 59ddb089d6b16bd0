"""retention keeps derived facts: per-number conversion and traffic facts of purged raw rows

Revision ID: 0014_i13b_retention_facts
Revises: 0005_voluum
Create Date: 2026-12-06 07:50:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import phoneops.core.db

revision = "0014_i13b_retention_facts"
down_revision = "0005_voluum"
branch_labels = None
depends_on = None

BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "voluum_conversion_facts",
        sa.Column("id", BIG_ID, nullable=False),
        sa.Column("blind_index", sa.LargeBinary(length=32), nullable=True),
        sa.Column("kind", sa.String(length=8), nullable=False),
        sa.Column("offer_id", sa.String(length=64), nullable=False),
        sa.Column("offer_name", sa.String(length=255), nullable=False),
        sa.Column("country", sa.String(length=2), nullable=True),
        sa.Column("campaign_id", sa.String(length=64), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("visit_day", sa.Date(), nullable=True),
        sa.Column("conversions", sa.Integer(), nullable=False),
        sa.Column("first_at", phoneops.core.db.UtcDateTime(timezone=True), nullable=True),
        sa.Column("last_at", phoneops.core.db.UtcDateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_voluum_conversion_facts")),
    )
    op.create_index("ix_voluum_conversion_facts_blind_index", "voluum_conversion_facts", ["blind_index"])
    op.create_index("ix_voluum_conversion_facts_country_kind_first_at", "voluum_conversion_facts",
                    ["country", "kind", "first_at"])
    op.create_table(
        "voluum_traffic_facts",
        sa.Column("id", BIG_ID, nullable=False),
        sa.Column("blind_index", sa.LargeBinary(length=32), nullable=False),
        sa.Column("os_version", sa.String(length=120), nullable=False),
        sa.Column("rows", sa.Integer(), nullable=False),
        sa.Column("visits", sa.Integer(), nullable=False),
        sa.Column("clicks", sa.Integer(), nullable=False),
        sa.Column("first_day", sa.Date(), nullable=False),
        sa.Column("last_day", sa.Date(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_voluum_traffic_facts")),
        sa.UniqueConstraint("blind_index", "os_version", name=op.f("uq_voluum_traffic_facts_blind_index_os_version")),
    )


def downgrade() -> None:
    op.drop_table("voluum_traffic_facts")
    op.drop_index("ix_voluum_conversion_facts_country_kind_first_at", table_name="voluum_conversion_facts")
    op.drop_index("ix_voluum_conversion_facts_blind_index", table_name="voluum_conversion_facts")
    op.drop_table("voluum_conversion_facts")
