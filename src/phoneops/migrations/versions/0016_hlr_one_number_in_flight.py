"""hlr: at most one lookup item per number in flight (`sending`) across all lookups (partial unique index)

Revision ID: 0016_hlr_one_number_in_flight
Revises: 0014_i16_hlr_excluded
Create Date: 2026-12-07 10:00:00.000000

Before this revision two lookups could claim one number at the same moment, so a database may hold a number
`sending` in two (or more) lookups, which the index refuses. Decision (as for IMEI intents in
0011_i14_imei_review): per number the oldest intent (lowest call id, then item id) stays in flight and is
settled by its lookup as before; every other one goes to `review`, with a note saying why, and counts in its
lookup's `review`. Its call may have reached the provider (and been paid), so it is never sent again
automatically: an operator releases it (it is then answered for free by the kept lookup's fresh result, once
that one has settled) or writes it off. The answer such a call may still bring is not stored for that item
(its number's answer is stored by the lookup that kept it). Nothing is deleted; a downgrade drops the index
only (the items stay in review).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0016_hlr_one_number_in_flight"
down_revision = "0014_i16_hlr_excluded"
branch_labels = None
depends_on = None

_IN_FLIGHT = "state = 'sending'"
_NOTE = ("in flight in two lookups at once (before the one-intent-per-number index; lookup #{kept} kept it): "
         "may have been looked up and paid; not sent again, check it")


def upgrade() -> None:
    bind = op.get_bind()
    rows = bind.execute(sa.text(
        "SELECT id, lookup_id, blind_index FROM hlr_lookup_items WHERE state = 'sending' AND blind_index IN "
        "(SELECT blind_index FROM hlr_lookup_items WHERE state = 'sending' GROUP BY blind_index HAVING COUNT(*) > 1) "
        "ORDER BY blind_index, call_id, id"
    )).fetchall()
    kept: dict[bytes, int] = {}
    moved: dict[int, int] = {}  # lookup id -> items moved to review
    for item_id, lookup_id, blind_index in rows:
        key = bytes(blind_index)
        if key not in kept:
            kept[key] = int(lookup_id)
            continue
        bind.execute(sa.text("UPDATE hlr_lookup_items SET state = 'review', note = :note WHERE id = :id"),
                     {"note": _NOTE.format(kept=kept[key])[:200], "id": item_id})
        moved[int(lookup_id)] = moved.get(int(lookup_id), 0) + 1
    for lookup_id, count in moved.items():
        bind.execute(sa.text("UPDATE hlr_lookups SET review = review + :n WHERE id = :id"),
                     {"n": count, "id": lookup_id})
    op.create_index("uq_hlr_lookup_items_in_flight", "hlr_lookup_items", ["blind_index"], unique=True,
                    sqlite_where=sa.text(_IN_FLIGHT), postgresql_where=sa.text(_IN_FLIGHT))


def downgrade() -> None:
    op.drop_index("uq_hlr_lookup_items_in_flight", table_name="hlr_lookup_items")
