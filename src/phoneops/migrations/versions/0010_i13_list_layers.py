"""numbers: what each automatic source said, kept apart from the one status (precedence, docs/lists.md)

Revision ID: 0010_i13_list_layers
Revises: 0003_numbers
Create Date: 2026-12-06 04:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010_i13_list_layers"
down_revision = "0003_numbers"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("phone_numbers") as batch:
        batch.add_column(sa.Column("auto_status", sa.String(length=16), nullable=True))
        batch.add_column(sa.Column("auto_reason", sa.String(length=64), nullable=True))
        batch.add_column(sa.Column("auto_source", sa.String(length=32), nullable=True))
        batch.add_column(sa.Column("hlr_status", sa.String(length=16), nullable=True))
        batch.add_column(sa.Column("hlr_reason", sa.String(length=64), nullable=True))
        batch.add_column(sa.Column("last_verdict", sa.String(length=160), nullable=True))
    with op.batch_alter_table("number_events") as batch:
        batch.add_column(sa.Column("verdict", sa.String(length=16), nullable=True))
        batch.add_column(sa.Column("note", sa.String(length=200), nullable=True))
    # What the automatic sources had decided so far is the status they hold today.
    op.execute(
        "UPDATE phone_numbers SET auto_status = status, auto_reason = reason, auto_source = source "
        "WHERE authority = 'auto'"
    )
    op.execute("UPDATE phone_numbers SET hlr_status = status, hlr_reason = reason WHERE authority = 'hlr'")


def downgrade() -> None:
    with op.batch_alter_table("number_events") as batch:
        batch.drop_column("note")
        batch.drop_column("verdict")
    with op.batch_alter_table("phone_numbers") as batch:
        for name in ("last_verdict", "hlr_reason", "hlr_status", "auto_source", "auto_reason", "auto_status"):
            batch.drop_column(name)
