"""`core.db.execute_many` stores exactly what `session.execute(statement, rows)` stores, on both backends:
the same raw values (timestamps, JSON, bytes, nulls, defaults) read back behind SQLAlchemy's types."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from sqlalchemy import bindparam, insert, select, text, update

from phoneops.core.db import core_table, execute_many
from phoneops.numbers.models import NumberEvent, PhoneNumber

AT = datetime(2026, 12, 7, 3, 4, 5, 123456, tzinfo=UTC)


def _numbers(prefix: bytes, n: int) -> list[dict[str, Any]]:
    return [{"blind_index": prefix + i.to_bytes(4, "big") * 7, "sealed": b"\x01sealed" + bytes([i % 256]),
             "country": ("GB", None)[i % 2], "status": ("blacklist", "monitor", None)[i % 3],
             "authority": "manual", "reason": "r'\"%s" if i % 4 else None, "source": "BENCH",
             "listed_at": AT + timedelta(seconds=i) if i % 3 != 2 else None,
             # another zone: stored as UTC, as the column type does it
             "first_seen_at": AT.astimezone(timezone(timedelta(hours=5))), "updated_at": AT,
             "last_verdict": f"manual|blacklist|{i}"} for i in range(n)]


def _raw(session: Any, table: str, where: str, order: str) -> list[tuple[Any, ...]]:
    """The stored values as the driver returns them (no SQLAlchemy type processing), ids left out."""
    rows = session.execute(text(f"SELECT * FROM {table} WHERE {where} ORDER BY {order}")).all()  # noqa: S608
    return [tuple(v for k, v in row._mapping.items() if k != "id" and k != "number_id") for row in rows]


def test_inserts_and_updates_store_what_sqlalchemy_stores(session: Any) -> None:
    numbers = core_table(PhoneNumber)
    session.execute(insert(numbers), _numbers(b"A", 30))
    execute_many(session, insert(numbers), _numbers(b"B", 30))
    first_byte = "substr(hex(blind_index), 1, 2) = '{}'" if session.bind.dialect.name == "sqlite" else \
        "substring(encode(blind_index, 'hex') from 1 for 2) = '{}'"
    stored = _raw(session, "phone_numbers", first_byte.format("41"), "blind_index")  # b"A..."
    ours = _raw(session, "phone_numbers", first_byte.format("42"), "blind_index")  # b"B..."
    assert len(stored) == len(ours) == 30
    assert [r[1:] for r in ours] == [r[1:] for r in stored]  # all but the blind index itself

    ids = {bytes(bi): i for i, bi in session.execute(select(PhoneNumber.id, PhoneNumber.blind_index))}
    events = core_table(NumberEvent)
    for prefix, run in ((b"A", lambda rows: session.execute(insert(events), rows)),
                        (b"B", lambda rows: execute_many(session, insert(events), rows))):
        run([{"number_id": ids[prefix + i.to_bytes(4, "big") * 7], "at": AT, "status": "blacklist",
              "verdict": None, "previous_status": None, "authority": "manual", "reason": "x", "source": "s",
              "actor": "admin", "evidence": {"import_id": i, "file": "list.csv", "nested": [1, "é", None]},
              "note": None} for i in range(30)])
    changes = [{"number_id": ids[b"B" + i.to_bytes(4, "big") * 7], "status": "whitelist",
                "listed_at": AT + timedelta(days=1), "last_verdict": "manual|whitelist"} for i in range(0, 30, 2)]
    statement = update(numbers).where(numbers.c.id == bindparam("number_id")).values(
        {k: bindparam(k) for k in ("status", "listed_at", "last_verdict")})
    session.execute(statement, [{**c, "number_id": ids[b"A" + (i * 2).to_bytes(4, "big") * 7]}
                                for i, c in enumerate(changes)])
    execute_many(session, statement, changes)
    rows = session.execute(select(PhoneNumber.blind_index, PhoneNumber.status, PhoneNumber.listed_at,
                                  PhoneNumber.last_verdict).order_by(PhoneNumber.blind_index)).all()
    a = [tuple(r[1:]) for r in rows if bytes(r[0])[:1] == b"A"]
    b = [tuple(r[1:]) for r in rows if bytes(r[0])[:1] == b"B"]
    assert a == b and sum(1 for r in b if r[0] == "whitelist") == 15
    assert b[0][1] == AT + timedelta(days=1)
    raw_events = _raw(session, "number_events", "1 = 1", "id")
    assert raw_events[:30] == raw_events[30:] and len(raw_events) == 60


def test_defaults_and_bad_shapes(session: Any) -> None:
    events = core_table(NumberEvent)
    session.execute(insert(core_table(PhoneNumber)), _numbers(b"C", 1))
    number_id = session.execute(select(PhoneNumber.id)).scalar_one()
    execute_many(session, insert(events), [{"number_id": number_id, "at": AT, "status": None, "authority": "manual",
                                            "actor": "a", "evidence": {}}])
    event = session.execute(select(NumberEvent)).scalar_one()
    assert (event.verdict, event.note, event.evidence) == (None, None, {})
    with pytest.raises(ValueError, match="one shape"):
        execute_many(session, insert(events), [{"number_id": number_id, "at": AT}, {"number_id": number_id}])
    with pytest.raises(ValueError, match="'at'"):  # its default is computed per row: SQLAlchemy would call it
        execute_many(session, insert(events), [{"number_id": number_id, "status": None, "authority": "manual",
                                                "actor": "a", "evidence": {}}])
    with pytest.raises(ValueError, match="'evidence'"):
        execute_many(session, insert(events), [{"number_id": number_id, "at": AT, "status": None,
                                                "authority": "manual", "actor": "a"}])
    execute_many(session, insert(events), [])  # nothing to do
    assert len(session.execute(select(NumberEvent.id)).all()) == 1
