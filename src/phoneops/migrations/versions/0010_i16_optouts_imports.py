"""numbers: opt-outs that stick; list imports with a preview and an undo

Revision ID: 0010_i16_optouts_imports
Revises: 0010_i13_list_layers
Create Date: 2026-12-06 04:10:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import phoneops.core.db

revision = "0010_i16_optouts_imports"
down_revision = "0010_i13_list_layers"  # phone_numbers.last_verdict, restored by an undo
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("manual_imports", schema=None) as batch_op:
        batch_op.add_column(sa.Column("kind", sa.String(length=16), nullable=False, server_default="list"))
        batch_op.add_column(sa.Column("region", sa.String(length=2), nullable=True))
        batch_op.add_column(sa.Column("params", sa.JSON(), nullable=False, server_default="{}"))
        batch_op.add_column(sa.Column("preview", sa.JSON(), nullable=False, server_default="{}"))
        batch_op.add_column(sa.Column("changed", sa.Integer(), nullable=False, server_default="0"))
        batch_op.add_column(sa.Column("new_numbers", sa.Integer(), nullable=False, server_default="0"))
        batch_op.add_column(sa.Column("job_id", sa.String(length=36), nullable=True))
        batch_op.add_column(sa.Column("applied_at", phoneops.core.db.UtcDateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("last_event_id", sa.BigInteger(), nullable=True))
        batch_op.add_column(sa.Column("undone_at", phoneops.core.db.UtcDateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("undone_by", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("undo", sa.JSON(), nullable=False, server_default="{}"))

    op.create_table(
        "import_changes",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("import_id", sa.Integer(), nullable=False),
        sa.Column("number_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("what", sa.String(length=8), nullable=False),
        sa.Column("existed", sa.Boolean(), nullable=False),
        sa.Column("before_status", sa.String(length=16), nullable=True),
        sa.Column("before_authority", sa.String(length=8), nullable=True),
        sa.Column("before_reason", sa.String(length=64), nullable=True),
        sa.Column("before_source", sa.String(length=32), nullable=True),
        sa.Column("before_listed_at", phoneops.core.db.UtcDateTime(timezone=True), nullable=True),
        sa.Column("before_last_verdict", sa.String(length=160), nullable=True),
        sa.Column("after_status", sa.String(length=16), nullable=True),
        sa.Column("after_authority", sa.String(length=8), nullable=True),
        sa.ForeignKeyConstraint(["import_id"], ["manual_imports.id"],
                                name=op.f("fk_import_changes_import_id_manual_imports"), ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["number_id"], ["phone_numbers.id"],
                                name=op.f("fk_import_changes_number_id_phone_numbers"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_import_changes")),
    )
    op.create_index(op.f("ix_import_changes_import_id"), "import_changes", ["import_id"], unique=False)
    op.create_index(op.f("ix_import_changes_number_id"), "import_changes", ["number_id"], unique=False)

    op.create_table(
        "number_optouts",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("number_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("blind_index", sa.LargeBinary(length=32), nullable=False),
        sa.Column("state", sa.String(length=8), nullable=False),
        sa.Column("reason", sa.String(length=24), nullable=False),
        sa.Column("source", sa.String(length=32), nullable=False),
        sa.Column("detail", sa.String(length=200), nullable=True),
        sa.Column("opted_out_at", phoneops.core.db.UtcDateTime(timezone=True), nullable=False),
        sa.Column("recorded_by", sa.String(length=64), nullable=False),
        sa.Column("import_id", sa.Integer(), nullable=True),
        sa.Column("lifted_at", phoneops.core.db.UtcDateTime(timezone=True), nullable=True),
        sa.Column("lifted_by", sa.String(length=64), nullable=True),
        sa.Column("lift_reason", sa.String(length=200), nullable=True),
        sa.ForeignKeyConstraint(["number_id"], ["phone_numbers.id"],
                                name=op.f("fk_number_optouts_number_id_phone_numbers"), ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["import_id"], ["manual_imports.id"],
                                name=op.f("fk_number_optouts_import_id_manual_imports"), ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_number_optouts")),
        sa.UniqueConstraint("number_id", name=op.f("uq_number_optouts_number_id")),
    )
    op.create_index(op.f("ix_number_optouts_blind_index"), "number_optouts", ["blind_index"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_number_optouts_blind_index"), table_name="number_optouts")
    op.drop_table("number_optouts")
    op.drop_index(op.f("ix_import_changes_number_id"), table_name="import_changes")
    op.drop_index(op.f("ix_import_changes_import_id"), table_name="import_changes")
    op.drop_table("import_changes")
    with op.batch_alter_table("manual_imports", schema=None) as batch_op:
        for column in ("undo", "undone_by", "undone_at", "last_event_id", "applied_at", "job_id", "new_numbers",
                       "changed", "preview", "params", "region", "kind"):
            batch_op.drop_column(column)
