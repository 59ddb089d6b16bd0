"""Uploads: hostile file names, oversize files and an xlsx decompression bomb, on every upload endpoint."""

from __future__ import annotations

import io
import os
import re
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from security_kit import assert_error_shape, table_counts
from sqlalchemy import select

from phoneops.core.models import StoredFile
from phoneops.settings import get_settings, reset_settings_cache
from support import TMP

NUMBERS_CSV = b"phone,reason,source\n+447911123456,probe,test\n+447911123457,probe,test\n"

# Every route taking an UploadFile, with the other form fields a real upload sends. A new upload route
# without an entry fails test_every_upload_route_is_probed.
UPLOADS: dict[str, dict[str, Any]] = {
    "/api/files": {},
    "/api/numbers/imports": {"target": "blacklist"},
    "/api/cleaning/files": {},
    "/api/voluum/smart-clean/upload": {"offers": ["Offer A"]},
    "/api/ongage/csv-jobs": {},
    "/api/imei/batches/upload": {},
    "/api/imei/import": {},
    "/numbers/imports": {"target": "blacklist"},
    "/cleaning/upload": {},
    "/voluum/smart": {"source": "file", "offers": ["Offer A"]},
    "/hlr/lookups": {"source": "file"},
    "/hlr/estimates": {"source": "file"},
    "/ongage/csv-jobs": {},
    "/imei/submit": {"action": "preview"},
    "/imei/history/import": {},
}
# Routes that accept this CSV with no provider configured (the others refuse it first: 422/503).
STORES = {"/api/files", "/api/numbers/imports", "/api/cleaning/files", "/numbers/imports", "/cleaning/upload",
          "/imei/history/import", "/hlr/estimates"}

HOSTILE_NAMES = [
    "../../etc/passwd",
    "..\\..\\windows\\x.csv",
    "/etc/cron.d/evil.csv",
    "C:\\Windows\\Temp\\evil.csv",
    "nul\x00byte.csv",
    "x" * 3000 + ".csv",
    "....//....//dots.csv",
    "<script>alert(1)</script>.csv",
]


def upload_routes(app: Any) -> set[str]:
    found = set()
    for route in app.routes:
        contexts = getattr(route, "effective_route_contexts", None)
        for ctx in contexts() if contexts else ():
            dependant = getattr(ctx.original_route, "dependant", None)
            if dependant and any("UploadFile" in str(f.field_info.annotation) for f in dependant.body_params):
                found.add(ctx.path)
    return found


def test_every_upload_route_is_probed(app: Any) -> None:
    assert upload_routes(app) == set(UPLOADS)


def _files_outside_storage() -> set[Path]:
    root = get_settings().storage_root.resolve()
    seen = set()
    for base in {TMP.resolve(), Path.cwd().resolve()}:
        for dirpath, dirnames, filenames in os.walk(base):
            dirnames[:] = [d for d in dirnames if d not in (".git", ".venv", "node_modules")]
            for name in filenames:
                path = Path(dirpath, name).resolve()
                if root not in path.parents:
                    seen.add(path)
    return seen


def _stored_files_problems() -> list[str]:
    from phoneops.core.db import session_scope
    from phoneops.core.storage import get_storage

    problems = []
    root = get_settings().storage_root.resolve()
    with session_scope() as s:
        for row in s.scalars(select(StoredFile)):
            name = row.original_name
            if re.search(r"[\\/\x00-\x1f]", name) or name.startswith(".") or len(name) > 200:
                problems.append(f"unsafe stored name {name!r}")
            path = get_storage().path_for(row.id).resolve()
            if root not in path.parents or path.name != row.id:
                problems.append(f"file {row.id} stored at {path}")
    return problems


def _text_values() -> Iterator[tuple[str, str]]:
    """Every string (and JSON text) stored anywhere: table name and value."""
    from sqlalchemy import String, Text, inspect, table
    from sqlalchemy.types import JSON

    from phoneops.core import db

    engine = db.get_engine()
    inspector = inspect(engine)
    with engine.connect() as conn:
        for name in inspector.get_table_names():
            columns = [c["name"] for c in inspector.get_columns(name) if isinstance(c["type"], String | Text | JSON)]
            if not columns:
                continue
            from sqlalchemy import column

            for row in conn.execute(select(*[column(c) for c in columns]).select_from(table(name))):
                for value in row:
                    if value is not None:
                        yield name, str(value)


@pytest.mark.parametrize("name", HOSTILE_NAMES, ids=lambda n: repr(n[:24]))
def test_hostile_file_names_stay_inside_storage(client: Any, users: Any, name: str) -> None:
    admin = users.headers("admin")
    before = _files_outside_storage()
    wrong = []
    statuses: dict[str, int] = {}
    for path, fields in UPLOADS.items():
        response = client.post(path, headers=admin, data=fields, files={"file": (name, NUMBERS_CSV, "text/csv")},
                               follow_redirects=False)
        statuses[path] = response.status_code
        if response.status_code >= 500 and response.status_code != 503:
            wrong.append(f"{path} -> {response.status_code} {response.text[:200]!r}")
    assert not wrong, "\n".join(wrong)
    assert _files_outside_storage() == before, "a file was written outside STORAGE_ROOT"
    assert not _stored_files_problems()
    from phoneops.core.db import session_scope

    with session_scope() as s:
        rows = list(s.scalars(select(StoredFile)))
        ids = [r.id for r in rows]
    assert all(statuses[p] < 400 for p in STORES), f"the uploads that store files did not: {statuses}"
    # /imei/history/import reads its file and keeps none (the numbers imports kept a result file until their
    # preview became a job, which hid it)
    assert len(rows) >= len(STORES) - 1
    for table_name, value in _text_values():
        assert "../" not in value and "..\\" not in value and "\x00" not in value, (table_name, value[:200])
        assert "/etc/" not in value and "C:\\" not in value, (table_name, value[:200])
    for file_id in ids:
        down = client.get(f"/api/files/{file_id}/download", headers=admin)
        assert down.status_code == 200
        disposition = down.headers["content-disposition"]
        shown = re.search(r'filename="([^"]*)"', disposition)
        assert shown and "/" not in shown.group(1) and "\\" not in shown.group(1) and len(shown.group(1)) <= 200
        assert "\r" not in disposition and "\n" not in disposition


@pytest.fixture
def one_mb_limit(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("MAX_UPLOAD_MB", "1")
    reset_settings_cache()
    assert get_settings().max_upload_bytes == 1024 * 1024
    yield
    monkeypatch.delenv("MAX_UPLOAD_MB")
    reset_settings_cache()


def test_oversize_uploads_are_413_and_leave_nothing(client: Any, users: Any, one_mb_limit: None, session: Any) -> None:
    from phoneops.voluum.models import Offer

    session.add(Offer(offer_id="offer-a", name="Offer A"))  # so smart cleaning gets as far as the file
    session.commit()
    admin = users.headers("admin")
    big = NUMBERS_CSV + b"+447911123458,probe,test\n" * 60_000  # ~1.5 MB
    before = table_counts()
    tmp = get_settings().storage_root / "tmp"
    wrong = []
    for path, fields in UPLOADS.items():
        response = client.post(path, headers=admin, data=fields, files={"file": ("big.csv", big, "text/csv")},
                               follow_redirects=False)
        if response.status_code == 503 and "imei" in path:
            continue  # the provider check comes first: nothing is read
        location = response.headers.get("location", "")
        if response.status_code == 303 and not path.startswith("/api") and "upload+limit" in location:
            continue  # a page that reports the refusal on the page it redirects to
        if response.status_code != 413:
            wrong.append(f"{path} -> {response.status_code} {response.text[:200]!r}")
            continue
        if path.startswith("/api"):
            assert assert_error_shape(response, path)["code"] == "payload_too_large"
        else:  # pages show the form again with the reason
            assert "upload limit" in response.text, path
    assert not wrong, "\n".join(wrong)
    assert table_counts() == before
    assert not tmp.exists() or not any(tmp.iterdir())


def _xlsx_bomb(inflated_mb: int) -> bytes:
    """A valid-looking workbook whose one sheet inflates to `inflated_mb` MB of repeated rows."""
    row = "".join(f'<c r="A{{n}}" t="inlineStr"><is><t>+4479111{i:05d}</t></is></c>' for i in range(1))
    header = ('<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
              '<worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"><sheetData>')
    footer = "</sheetData></worksheet>"
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
        archive.writestr("[Content_Types].xml", (
            '<?xml version="1.0" encoding="UTF-8"?><Types xmlns="http://schemas.openxmlformats.org/package/2006/'
            'content-types"><Default Extension="rels" ContentType="application/vnd.openxmlformats-package.'
            'relationships+xml"/><Default Extension="xml" ContentType="application/xml"/><Override PartName="/xl/'
            'workbook.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml"/>'
            '<Override PartName="/xl/worksheets/sheet1.xml" ContentType="application/vnd.openxmlformats-'
            'officedocument.spreadsheetml.worksheet+xml"/></Types>'))
        archive.writestr("_rels/.rels", (
            '<?xml version="1.0" encoding="UTF-8"?><Relationships xmlns="http://schemas.openxmlformats.org/package/'
            '2006/relationships"><Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/'
            'relationships/officeDocument" Target="xl/workbook.xml"/></Relationships>'))
        archive.writestr("xl/workbook.xml", (
            '<?xml version="1.0" encoding="UTF-8"?><workbook xmlns="http://schemas.openxmlformats.org/spreadsheetml/'
            '2006/main" xmlns:r="http://schemas.openxmlformats.org/officeDocument/2006/relationships"><sheets>'
            '<sheet name="s" sheetId="1" r:id="rId1"/></sheets></workbook>'))
        archive.writestr("xl/_rels/workbook.xml.rels", (
            '<?xml version="1.0" encoding="UTF-8"?><Relationships xmlns="http://schemas.openxmlformats.org/package/'
            '2006/relationships"><Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/'
            'relationships/worksheet" Target="worksheets/sheet1.xml"/></Relationships>'))
        with archive.open("xl/worksheets/sheet1.xml", "w") as sheet:
            sheet.write(header.encode())
            line = f'<row r="1">{row}</row>'.replace("{n}", "1").encode()
            chunk = line * (1024 * 1024 // len(line) + 1)
            for _ in range(inflated_mb):
                sheet.write(chunk)
            sheet.write(footer.encode())
    return buffer.getvalue()


def test_xlsx_bomb_is_refused_with_bounded_memory(client: Any, users: Any, inline_jobs: list[str]) -> None:
    import resource

    bomb = _xlsx_bomb(300)
    assert len(bomb) < 2 * 1024 * 1024  # a small upload ...
    with zipfile.ZipFile(io.BytesIO(bomb)) as archive:
        assert sum(i.file_size for i in archive.infolist()) > 300 * 1024 * 1024  # ... that inflates to 300 MB
    admin = users.headers("admin")
    peak_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    outcomes = {}
    for path in ("/api/numbers/imports", "/api/cleaning/files", "/api/imei/import", "/api/ongage/csv-jobs"):
        response = client.post(path, headers=admin, data=UPLOADS[path],
                               files={"file": ("bomb.xlsx", bomb, "application/vnd.ms-excel")})
        outcomes[path] = response.status_code
        assert response.status_code < 500, (path, response.text[:300])
        if response.status_code >= 400:
            error = assert_error_shape(response, path)
            assert "size" in error["message"] or "spreadsheet" in error["message"], (path, error)
        else:
            job_id = response.json().get("job_id") or response.json().get("id")
            job = client.get(f"/api/jobs/{job_id}", headers=admin).json() if job_id else {}
            assert job.get("status") in (None, "failed"), (path, job)
    grown_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - peak_before) / 1024
    assert grown_mb < 150, f"memory grew by {grown_mb:.0f} MB reading the bomb ({outcomes})"


def _bad_files() -> dict[str, tuple[str, bytes]]:
    """Files people do upload by mistake: name, bytes."""
    good_xlsx = io.BytesIO()
    import openpyxl

    book = openpyxl.Workbook()
    book.active.append(["phone"])  # type: ignore[union-attr]
    book.active.append(["+447911123456"])  # type: ignore[union-attr]
    book.save(good_xlsx)
    xlsx = good_xlsx.getvalue()
    return {
        "empty csv": ("empty.csv", b""),
        "empty xlsx": ("empty.xlsx", b""),
        "binary": ("photo.csv", bytes(range(256)) * 64),
        "nul bytes": ("nul.csv", b"phone\n+4479\x00111\x0023456\n"),
        "truncated xlsx": ("cut.xlsx", xlsx[: len(xlsx) // 2]),
        "zip not a workbook": ("other.xlsx", _zip_of({"hello.txt": b"hi"})),
        "encrypted xlsx": ("secret.xlsx", b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 2048),
        "malformed csv": ("quotes.csv", b'phone,name\n"+447911123456,"unclosed\n+447911123457,x"y"z\n'),
        "csv named xlsx": ("wrong.xlsx", NUMBERS_CSV),  # read by content: accepted
        "workbook named csv": ("wrong.csv", xlsx),
    }


def _zip_of(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def test_bad_files_get_a_clear_422_never_a_500(app: Any, users: Any, session: Any) -> None:
    """Empty, binary, NUL, truncated, encrypted or malformed CSV/XLSX on every upload path: a 4xx with a
    message (a page shows the form again), never a 5xx, and nothing stored for a refused file."""
    from phoneops.voluum.models import Offer

    session.add(Offer(offer_id="offer-a", name="Offer A"))
    session.commit()
    from fastapi.testclient import TestClient

    admin = users.headers("admin")
    wrong = []
    client = TestClient(app, base_url="http://127.0.0.1", raise_server_exceptions=False)
    for label, (name, data) in _bad_files().items():
        for path, fields in UPLOADS.items():
            if path == "/api/files":
                continue  # stores any bytes as they are (nothing reads them)
            before = table_counts()
            response = client.post(path, headers={**admin, "Accept": "text/html" if not path.startswith("/api")
                                                   else "application/json"},
                                   data=fields, files={"file": (name, data, "application/octet-stream")},
                                   follow_redirects=False)
            status = response.status_code
            where = f"{label} -> {path}: {status} {response.text[:160]!r}"
            if status == 503 and ("not configured" in response.text or "not_configured" in response.text):
                continue  # the provider check comes first: nothing is read
            if status >= 500:
                wrong.append(f"5xx: {where}")
            elif status < 400 and label not in ("malformed csv", "csv named xlsx", "workbook named csv"):
                if path.startswith("/api") or status != 303:
                    wrong.append(f"accepted: {where}")
            elif status >= 400 and path.startswith("/api"):
                message = assert_error_shape(response, path)["message"]
                if not message or "internal" in message:
                    wrong.append(f"no clear message: {where}")
            if status >= 400:
                after = table_counts()
                grown = {t for t in after if after[t] > before.get(t, 0) and t not in ("audit_log", "login_attempts")}
                if grown:
                    wrong.append(f"refused but stored rows in {sorted(grown)}: {where}")
    assert not wrong, "\n".join(wrong)
