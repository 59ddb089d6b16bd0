"""Erasing one number everywhere: found nowhere afterwards (every table, every stored file), other numbers
untouched, audited without the plaintext, idempotent, and a bad request changes nothing."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from sqlalchemy import func, select

sys.path.insert(0, str(Path(__file__).parent))

from privacy_kit import (
    OTHER,
    TARGET,
    THIRD,
    db_traces,
    file_texts,
    file_traces,
    nsn,
    seed_everywhere,
    snapshot,
)

from phoneops.core.db import session_scope
from phoneops.core.models import AuditEvent, StoredFile
from phoneops.numbers.vault import get_vault


def _erase(client: Any, users: Any, number: str, region: str | None = "GB") -> dict[str, Any]:
    response = client.post("/api/privacy/erasures", headers=users.headers("admin"),
                           json={"number": number, "region": region})
    assert response.status_code == 202, response.text
    body = response.json()
    done = client.get(f"/api/privacy/erasures/{body['id']}", headers=users.headers("admin")).json()
    assert done["status"] == "done", done
    return dict(done)


def test_erased_number_is_found_nowhere_and_others_stay(client: Any, users: Any, inline_jobs: list[str]) -> None:
    from phoneops.cleaning.models import UsedNumber
    from phoneops.numbers.models import PhoneNumber
    from phoneops.voluum.models import Conversion, TrafficRow

    seeded = seed_everywhere(client, users)
    assert db_traces(TARGET, set()), "the seed must put the number in the database"
    assert len(file_traces(TARGET)) >= 4, "the seed must put the number in files"
    other_before = len(db_traces(OTHER, set()))
    assert other_before >= 8

    done = _erase(client, users, "0" + nsn(TARGET)[:4] + " " + nsn(TARGET)[4:])  # written as a national number
    counts = done["counts"]
    assert counts["phone_numbers"] == 1 and counts["number_events"] >= 1
    assert counts["used_numbers"] == 1 and counts["hlr_results"] == 1 and counts["hlr_lookup_items"] == 1
    assert counts["voluum_conversions"] == 1 and counts["voluum_traffic_rows"] == 1
    assert counts["voluum_live_raw_events"] == 1 and counts["voluum_live_events"] == 1
    assert counts["ongage_conversions"] == 1
    assert counts["files_rewritten"] >= 5 and counts["file_rows_removed"] >= 6
    assert done["masked"] == "+447*******56"

    # found nowhere: every table (blind index, sealed value, any writing, link tokens) and every stored file
    assert db_traces(TARGET, seeded["sealed"]) == []
    assert file_traces(TARGET) == []
    # a later conversions sync over the same window finds the anonymous rows "already stored"
    from phoneops.core.security import SYSTEM
    from phoneops.voluum import conversions
    from phoneops.voluum.wire import Conversion as WireConversion

    with session_scope() as session:
        again = conversions.store(session, SYSTEM, [WireConversion.from_row(r) for r in seeded["conversion_rows"]])
        assert (again.inserted, again.numbers_registered) == (0, 0)
    # a traffic re-sync of the same day and a redelivered live event read it as erased, never bring it back
    from phoneops.voluum import live, traffic

    with session_scope() as session:
        traffic.store_day(session, SYSTEM, seeded["traffic_day"], seeded["traffic_rows"], rules=[])
        live.ingest(session, [("msg-1-again", seeded["live_events"])], source="sqs")
    assert db_traces(TARGET, seeded["sealed"]) == []

    # the other numbers are untouched
    assert len(db_traces(OTHER, set())) == other_before
    vault = get_vault()
    with session_scope() as session:
        assert session.scalar(select(PhoneNumber.status).where(PhoneNumber.blind_index == vault.index(OTHER))) \
            == "monitor"
        assert session.get(UsedNumber, vault.index(OTHER)) is not None
        assert session.scalar(select(func.count()).select_from(Conversion)
                              .where(Conversion.blind_index == vault.index(OTHER))) == 1
        kinds = sorted(session.scalars(select(TrafficRow.number_kind)))
        assert kinds == ["erased", "phone"]  # the day's totals keep the anonymous row
        texts = {f.original_name: file_texts(f) for f in session.scalars(select(StoredFile))}
    assert any("07400 123457" in line for line in texts["semicolons.csv"])
    assert any("1234560" in line for line in texts["semicolons.csv"])  # a longer number is another number
    assert texts["semicolons.csv"][0] == "phone;name"
    assert any(OTHER in line for line in texts["book.xlsx"]) and any(THIRD in line for line in texts["book.xlsx"])
    assert len(texts["tokens.csv"]) == 2  # header + OTHER's token

    # audited, without the plaintext; the ledger tells the number was erased
    with session_scope() as session:
        actions = list(session.scalars(select(AuditEvent.action).where(AuditEvent.action.like("privacy.%"))))
    assert "privacy.erase.request" in actions and "privacy.erase" in actions and "privacy.erase.file" in actions
    check = client.get("/api/privacy/erased", params={"number": TARGET}, headers=users.headers("admin")).json()
    assert check["erased"] is True and check["requests"] == 1
    assert client.get("/api/privacy/erased", params={"number": OTHER},
                      headers=users.headers("admin")).json()["erased"] is False

    # idempotent: again, nothing left to remove and no file rewritten
    before = snapshot()["files"]
    again = _erase(client, users, TARGET)
    assert again["counts"] == {"files_scanned": again["counts"]["files_scanned"],
                               "files_skipped": again["counts"]["files_skipped"]}
    assert snapshot()["files"] == before


def test_bad_requests_change_nothing(client: Any, users: Any, inline_jobs: list[str]) -> None:
    seed_everywhere(client, users)
    users.headers("admin")
    before = snapshot()
    for body, code in (({"number": "not a number", "region": "GB"}, "invalid_number"),
                       ({"number": "07400 12345", "region": "GB"}, "invalid_number"),
                       ({"number": "07400 123456", "region": "QQ"}, "invalid_region"),
                       ({"number": "   ", "region": "GB"}, "invalid_number")):
        response = client.post("/api/privacy/erasures", headers=users.headers("admin"), json=body)
        assert response.status_code == 422, response.text
        assert response.json()["error"]["code"] == code
    assert client.post("/api/privacy/erasures", headers=users.headers("operator"),
                       json={"number": TARGET}).status_code == 403
    assert client.post("/api/privacy/erasures", json={"number": TARGET}).status_code == 401
    assert client.get("/api/privacy/erased", params={"number": "abc"}, headers=users.headers("admin")).status_code \
        == 422
    after = snapshot()
    for name in before["tables"]:
        if name != "api_tokens":  # a token's last use is recorded on each request
            assert after["tables"][name] == before["tables"][name], name
    assert after["files"] == before["files"]
