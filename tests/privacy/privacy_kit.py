"""Helpers of the privacy tests: put one number in every place the product keeps numbers, then look for it.

`seed_everywhere` goes through each domain's own entry points where they exist (cleaning upload and run through the
API, Voluum conversions / traffic / live ingestion services, list verdicts) and writes rows directly only for
places whose entry point needs a paid provider (HLR results, Ongage sync state). `traces` scans every table of
the database (reflected, not from our models) and every stored file for the number in any form.
"""

from __future__ import annotations

import csv
import io
import re
import zipfile
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import MetaData, select

from phoneops.core import db
from phoneops.core.audit import audit
from phoneops.core.db import session_scope
from phoneops.core.jobs import create_job
from phoneops.core.models import AuditEvent, StoredFile
from phoneops.core.security import SYSTEM
from phoneops.core.storage import get_storage
from phoneops.numbers.crypto import InvalidToken, looks_like_token
from phoneops.numbers.lists import Authority, Verdict, apply_verdicts
from phoneops.numbers.normalize import normalize
from phoneops.numbers.vault import get_vault

TARGET = "+447400123456"
TARGET_NATIONAL = "07400 123456"
OTHER = "+447400123457"  # differs in the last digit only
THIRD = "+447911123456"
TOKENISH = re.compile(r"[A-Za-z0-9_.-]{25,}")
SEPARATORS = re.compile(r"[\s\-().]")


def nsn(e164: str) -> str:
    return e164[3:]  # +44: the national significant number


def _xlsx(rows: list[list[Any]]) -> bytes:
    from openpyxl import Workbook

    book = Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.title = "numbers"
    for row in rows:
        sheet.append(row)
    second = book.create_sheet("more")
    second.append(["phone", "note"])
    second.append([TARGET, "second sheet"])
    second.append([THIRD, "second sheet"])
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def seed_everywhere(client: Any, users: Any) -> dict[str, Any]:
    """TARGET (and OTHER / THIRD beside it) in lists, events, results, free text and files. Needs inline jobs."""
    from phoneops.cleaning.models import UsedNumber
    from phoneops.hlr.models import HlrLookup, HlrLookupItem, HlrResult
    from phoneops.ongage.models import OngageConversion, OngageCsvJob, OngageCsvRow
    from phoneops.voluum import conversions, live, traffic
    from phoneops.voluum.models import Conversion, DeadLetter
    from phoneops.voluum.wire import Conversion as WireConversion

    vault = get_vault()
    # a cleaning run through the API: upload (sample kept with the file), clean + rejected files, main database
    upload = b"name,phone,city\nann,07400 123456,London\nbob,07400 123457,Leeds\ncid,07911 123456,York\n"
    up = client.post("/api/cleaning/files", headers=users.headers("operator"),
                     files={"file": ("list.csv", upload, "text/csv")}, data={"region": "GB"})
    assert up.status_code == 201, up.text
    run = client.post(f"/api/cleaning/files/{up.json()['id']}/runs", headers=users.headers("operator"),
                      json={"add_to_used": True})
    assert run.status_code == 202, run.text
    assert client.get(f"/api/cleaning/runs/{run.json()['id']}", headers=users.headers("viewer")).json()["status"] \
        == "succeeded"
    now = datetime.now(UTC)
    with session_scope() as session:
        assert session.get(UsedNumber, vault.index(TARGET)) is not None
        apply_verdicts(session, SYSTEM, [
            Verdict(TARGET, "blacklist", Authority.manual, reason="MANUAL", source="test", evidence={"note": TARGET}),
            Verdict(OTHER, "monitor", Authority.manual, reason="MANUAL", source="test"),
        ])
        rows = [{"clickId": f"click-{n}", "transactionId": f"tx-{n}", "conversionType": "REG",
                 "campaignName": "Camp - GB", "campaignId": "c1", "offerId": "o1", "offerName": "Offer",
                 "postbackTimestamp": (now - timedelta(hours=n)).isoformat(), "customVariable1": value,
                 "customVariable2": value}
                for n, value in enumerate([nsn(TARGET), "44" + nsn(OTHER)], start=1)]
        conversions.store(session, SYSTEM, [WireConversion.from_row(r) for r in rows])
        traffic_day = date.today() - timedelta(days=1)
        traffic_rows = [
            ("ts-1", {"customVariable1": "44" + nsn(TARGET), "osVersion": "iOS 18", "browserVersion": "Safari 18",
                      "ip": "203.0.113.5", "visits": 2, "clicks": 1, "customVariable2": TARGET}),
            ("ts-1", {"customVariable1": "44" + nsn(OTHER), "osVersion": "Android 14", "browserVersion": "Chrome",
                      "ip": "203.0.113.6", "visits": 1, "clicks": 1}),
        ]
        traffic.store_day(session, SYSTEM, traffic_day, traffic_rows, rules=[])
        event = {"clickId": "click-live", "campaignId": "c1", "offerId": "o1", "timestamp": now.isoformat(),
                 "customVariables": [vault.cipher.encrypt(TARGET), TARGET_NATIONAL], "ip": "203.0.113.7"}
        other_event = {**event, "clickId": "click-live-2", "customVariables": [OTHER, ""]}
        live.ingest(session, [("msg-1", [event, other_event])], source="sqs")
        session.add(DeadLetter(source="sqs", message_id="bad-1", error="not JSON",
                               body='{"customVariables": ["' + TARGET + '", ' + ' and ' + OTHER))
        # HLR and Ongage state (their entry points pay a provider): rows as their jobs write them
        lookup = HlrLookup(title=f"check {TARGET}", source_kind="list", source={"numbers": [TARGET_NATIONAL]},
                           created_by="tester")
        session.add(lookup)
        session.flush()
        for e164 in (TARGET, OTHER):
            index = vault.index(e164)
            result = HlrResult(blind_index=index, lookup_id=lookup.id, live_status="LIVE",
                               raw={"msisdn_note": "was " + e164})
            session.add(result)
            session.flush()
            session.add(HlrLookupItem(lookup_id=lookup.id, blind_index=index, sealed=vault.seal(e164, index),
                                      state="done", result_id=result.id))
        conversion = session.scalar(select(Conversion).where(Conversion.blind_index == vault.index(TARGET)))
        assert conversion is not None
        session.add(OngageConversion(conversion_id=conversion.id, country="GB", kind="REG", status="sent",
                                     contact_id="contact-77"))
        csv_job = OngageCsvJob(name="contacts", created_by="tester")
        session.add(csv_job)
        session.flush()
        session.add(OngageCsvRow(csv_job_id=csv_job.id, row_no=1, email=nsn(TARGET) + "@sms.example.com",
                                 fields={"phone": TARGET, "first_name": "Ann"}))
        session.add(OngageCsvRow(csv_job_id=csv_job.id, row_no=2, email="44" + nsn(OTHER) + "@sms.example.com",
                                 fields={"phone": OTHER}))
        # free text: a job's params, an audit entry
        create_job(session, SYSTEM, "sample.count", {"numbers": [TARGET, OTHER], "steps": 1})
        audit(session, SYSTEM, "test.note", None, None,
              {"text": f"call {TARGET_NATIONAL} or 07400 123457", "n": int("44" + nsn(TARGET))})
        # stored files: national writing, an int cell in XLSX (two sheets), a link token, a number inside a longer one
        store = get_storage()
        store.save_bytes(session, SYSTEM, ("phone;name\r\n" + TARGET_NATIONAL + ";ann\r\n07400 123457;bob\r\n"
                                            "+44 7400 1234560;long\r\n").encode("latin-1"),
                         kind="upload", original_name="semicolons.csv")
        store.save_bytes(session, SYSTEM, _xlsx([["phone", "name"], [int("44" + nsn(TARGET)), "ann"],
                                                 [OTHER, "bob"]]), kind="upload", original_name="book.xlsx")
        store.save_bytes(session, SYSTEM, f"token,x\n{vault.cipher.encrypt(TARGET)},1\n"
                                          f"{vault.cipher.encrypt(OTHER)},2\n".encode(),
                         kind="cleaning_encrypt", original_name="tokens.csv")
        store.save_bytes(session, SYSTEM, b"\x00\x01binary\x00\x02" * 50, kind="upload", original_name="blob.bin")
    return {"sealed": _sealed_values(), "conversion_rows": rows, "traffic_day": traffic_day,
            "traffic_rows": traffic_rows, "live_events": [event]}


def _sealed_values() -> set[bytes]:
    from phoneops.hlr.models import HlrLookupItem
    from phoneops.numbers.models import PhoneNumber

    index = get_vault().index(TARGET)
    with session_scope() as session:
        found = set(session.scalars(select(PhoneNumber.sealed).where(PhoneNumber.blind_index == index)))
        found |= set(session.scalars(select(HlrLookupItem.sealed).where(HlrLookupItem.blind_index == index)))
    return found


def _text_holds(text: str, e164: str) -> bool:
    if nsn(e164) in SEPARATORS.sub("", text).replace(nsn(e164) + "0", ""):  # "+44 7400 1234560" is another number
        return True
    cipher = get_vault().cipher
    for candidate in TOKENISH.findall(text):
        if looks_like_token(candidate):
            try:
                opened = cipher.decrypt(candidate)
            except InvalidToken:
                continue  # not one of ours: cannot hold the number
            if normalize(opened, "GB").e164 == e164:
                return True
    return False


def db_traces(e164: str, sealed: set[bytes]) -> list[str]:
    """Every (table.column) of the database holding the number: blind index, sealed value, any writing, token."""
    index = get_vault().index(e164)
    meta = MetaData()
    meta.reflect(bind=db.get_engine())
    found = []
    with db.get_engine().connect() as conn:
        for table in meta.sorted_tables:
            for row in conn.execute(select(table)):
                for column, value in row._mapping.items():
                    if isinstance(value, bytes | memoryview):
                        raw = bytes(value)
                        if table.name == "privacy_erasures" and column == "blind_index":
                            continue  # the ledger keeps the blind index by design
                        if raw == index or raw in sealed or index in raw:
                            found.append(f"{table.name}.{column}")
                    elif value is not None and _text_holds(str(value), e164):
                        found.append(f"{table.name}.{column}")
    return found


def file_texts(row: StoredFile) -> list[str]:
    """A stored file as text: CSV decoded, XLSX every cell of every sheet, other files as latin-1."""
    data = b"".join(get_storage().iter_bytes(row))
    if data.startswith(b"PK\x03\x04"):
        from openpyxl import load_workbook

        with zipfile.ZipFile(io.BytesIO(data)):
            pass
        book = load_workbook(io.BytesIO(data), read_only=True)
        texts = [" ".join("" if v is None else str(v) for v in values)
                 for sheet in book.worksheets for values in sheet.iter_rows(values_only=True)]
        book.close()
        return texts
    return data.decode("latin-1").splitlines()


def file_traces(e164: str) -> list[str]:
    found = []
    with session_scope() as session:
        for row in session.scalars(select(StoredFile).where(StoredFile.status != "deleted")):
            if any(_text_holds(line, e164) for line in file_texts(row)):
                found.append(f"{row.kind}:{row.original_name}")
    return found


def csv_rows(data: bytes, delimiter: str = ",") -> list[list[str]]:
    return list(csv.reader(io.StringIO(data.decode("utf-8-sig")), delimiter=delimiter))


def snapshot() -> dict[str, Any]:
    """Every row of every table and every stored file's digest: to prove that nothing changed."""
    meta = MetaData()
    meta.reflect(bind=db.get_engine())
    tables: dict[str, Any] = {}
    with db.get_engine().connect() as conn:
        for table in meta.sorted_tables:
            tables[table.name] = sorted(repr(tuple(r)) for r in conn.execute(select(table)))
    with session_scope() as session:
        digests = {r.id: (r.sha256, r.size, r.status) for r in session.scalars(select(StoredFile))}
        audits = int(session.query(AuditEvent).count())
    return {"tables": tables, "files": digests, "audits": audits}
