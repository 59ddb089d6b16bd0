"""numbers: an index of (status, blind_index) that a cleaning run's scan of the lists reads instead of the table

A run against big lists reads every listed number's blind index. Through the table SQLite reads every whole
row (the sealed number, the dates, the reasons); through this index it reads ~45 bytes a number, in key
ranges (`cleaning.filters`; docs/operations.md, the cleaning run). Measured on 10M listed numbers:
~2.4 CPU-s against ~3.1-3.6 for the table, in the step where the run's processes compete for the cores.
Building it takes ~12 s per 10M numbers; a downgrade drops it.

Revision ID: 0017_i20_list_scan_index
Revises: 0013_i16_optout_outlives_erasure
Create Date: 2026-12-07 23:00:00.000000
"""

from __future__ import annotations

from alembic import op

revision = "0017_i20_list_scan_index"
down_revision = "0013_i16_optout_outlives_erasure"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_phone_numbers_status_blind_index", "phone_numbers", ["status", "blind_index"])


def downgrade() -> None:
    op.drop_index("ix_phone_numbers_status_blind_index", table_name="phone_numbers")
