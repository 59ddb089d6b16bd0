"""core: server-side sessions; login attempts by address (issue 21)

Revision ID: 0010_i21_sessions
Revises: 0001_core
Create Date: 2026-12-06 04:40:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import phoneops.core.db

revision = "0010_i21_sessions"
down_revision = "0001_core"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "user_sessions",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("client_ip", sa.String(length=64), nullable=True),
        sa.Column("created_at", phoneops.core.db.UtcDateTime(timezone=True), nullable=False),
        sa.Column("expires_at", phoneops.core.db.UtcDateTime(timezone=True), nullable=False),
        sa.Column("ended_at", phoneops.core.db.UtcDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], name=op.f("fk_user_sessions_user_id_users"),
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_user_sessions")),
    )
    op.create_index(op.f("ix_user_sessions_user_id"), "user_sessions", ["user_id"], unique=False)
    op.create_index("ix_login_attempts_client_ip_at", "login_attempts", ["client_ip", "at"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_login_attempts_client_ip_at", table_name="login_attempts")
    op.drop_index(op.f("ix_user_sessions_user_id"), table_name="user_sessions")
    op.drop_table("user_sessions")
