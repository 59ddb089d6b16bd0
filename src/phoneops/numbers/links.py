"""Links to a number's story page (`/numbers/n/{key}`, `phoneops.numbers.story`) from every page that shows
a number.

A page address is the number's blind index in hex, never the number: viewers see numbers masked, and the
address they follow does not reveal them either (nor does a browser's history). A page links the numbers that
have a story, those the number core knows or that were erased (`linked`); others stay plain text rather than
lead to "no number is known at this address".
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import select
from sqlalchemy.orm import Session

from phoneops.numbers.models import PhoneNumber
from phoneops.numbers.vault import get_vault
from phoneops.privacy.erase import erased_indexes

INDEX_BYTES = 32
BATCH = 1000


def key_of(e164: str) -> str:
    """The page address of a number (E.164)."""
    return get_vault().index(e164).hex()


def key_of_index(index: bytes | None) -> str:
    """The page address of a blind index; "" for none."""
    return index.hex() if index else ""


def linked(session: Session, keys: Iterable[str | None]) -> set[str]:
    """Which of these page addresses have a story page (a number the number core knows, or one erased)."""
    wanted: dict[bytes, str] = {}
    for key in keys:
        if not key:
            continue
        try:
            index = bytes.fromhex(key)
        except ValueError:
            continue
        if len(index) == INDEX_BYTES:
            wanted[index] = key
    indexes = list(wanted)
    found: set[bytes] = set()
    for start in range(0, len(indexes), BATCH):
        chunk = indexes[start:start + BATCH]
        found.update(session.scalars(select(PhoneNumber.blind_index).where(PhoneNumber.blind_index.in_(chunk))))
    found |= erased_indexes(session, [i for i in indexes if i not in found])
    return {wanted[i] for i in found}
