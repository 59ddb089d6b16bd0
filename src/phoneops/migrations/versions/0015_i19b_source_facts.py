"""kept facts for the sources report: revenue on conversion facts, clicks per number and day of purged traffic

Revision ID: 0015_i19b_source_facts
Revises: 0014_i13b_retention_facts
Create Date: 2026-12-06 08:30:00.000000

Nothing is invented (docs/retention.md): the revenue of conversions purged before this revision is gone with
their raw rows, so their facts keep revenue NULL (the report counts their REG/FTD with no revenue). Clicks per
day are filled only from traffic facts whose rows were all of one day (first day = last day); a fact spanning
days cannot say which day its clicks were on, so it fills nothing.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0015_i19b_source_facts"
down_revision = "0014_i13b_retention_facts"
branch_labels = None
depends_on = None

BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    with op.batch_alter_table("voluum_conversion_facts") as batch:
        batch.add_column(sa.Column("revenue", sa.Numeric(precision=14, scale=4), nullable=True))
    op.create_table(
        "voluum_traffic_day_facts",
        sa.Column("id", BIG_ID, nullable=False),
        sa.Column("blind_index", sa.LargeBinary(length=32), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("clicks", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_voluum_traffic_day_facts")),
        sa.UniqueConstraint("blind_index", "day", name=op.f("uq_voluum_traffic_day_facts_blind_index_day")),
    )
    op.create_index("ix_voluum_traffic_day_facts_day", "voluum_traffic_day_facts", ["day"])
    op.execute(
        "INSERT INTO voluum_traffic_day_facts (blind_index, day, clicks) "
        "SELECT blind_index, first_day, SUM(clicks) FROM voluum_traffic_facts "
        "WHERE first_day = last_day GROUP BY blind_index, first_day"
    )


def downgrade() -> None:
    op.drop_index("ix_voluum_traffic_day_facts_day", table_name="voluum_traffic_day_facts")
    op.drop_table("voluum_traffic_day_facts")
    with op.batch_alter_table("voluum_conversion_facts") as batch:
        batch.drop_column("revenue")
