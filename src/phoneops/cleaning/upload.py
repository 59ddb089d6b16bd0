"""Uploading a table for cleaning or encryption, and managing the uploaded files (list, archive, delete).

An upload is streamed to storage under the size limit (413 above it), then inspected: a file that cannot
be read (empty, header only, binary, ragged first rows, unknown column or region) is refused with a 422
that says why, and nothing is kept — the user fixes the file or the options and uploads again.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from phoneops.cleaning.models import CleaningFile, CleaningRun
from phoneops.cleaning.reading import check_region, inspect_table
from phoneops.core import access
from phoneops.core.audit import audit
from phoneops.core.errors import AppError, Conflict, NotFound, ValidationFailed
from phoneops.core.models import StoredFile
from phoneops.core.security import Principal
from phoneops.core.storage import CHUNK, get_file, get_storage
from phoneops.numbers.normalize import normalize
from phoneops.numbers.vault import get_vault
from phoneops.settings import get_settings
from phoneops.sources import service as sources

PURPOSES = ("clean", "encrypt")
ALIASES = {"cleaning": "clean", "encryption": "encrypt"}  # the words the pages use


def check_purpose(purpose: str) -> str:
    """`clean` or `encrypt` (the pages' words `cleaning` / `encryption` accepted); anything else is a 422, never
    an empty list."""
    value = (purpose or "").strip().lower()
    value = ALIASES.get(value, value)
    if value not in PURPOSES:
        raise ValidationFailed(f"purpose must be one of {', '.join(PURPOSES)} (got {purpose[:40]!r})",
                               code="invalid_purpose")
    return value
IDLE = ("ready", "done", "failed")


def _parse_header(header: str | bool | None) -> bool | None:
    if header is None or isinstance(header, bool):
        return header
    value = header.strip().lower()
    if value in ("", "auto"):
        return None
    if value in ("yes", "true", "1", "on"):
        return True
    if value in ("no", "false", "0", "off"):
        return False
    raise ValidationFailed("header must be auto, yes or no")


async def upload_stream(
    session: Session, actor: Principal, chunks: AsyncIterator[bytes], *, filename: str | None,
    content_type: str | None = None, purpose: str = "clean", region: str | None = None,
    phone_column: str | None = None, header: str | bool | None = None, source_label: str | None = None,
) -> CleaningFile:
    """Store an upload (streamed, size-limited) and register it as a cleaning or encryption file; a cleaning
    file may carry a source label (its numbers count for that source on the sources page)."""
    purpose = check_purpose(purpose)
    label = sources.normalise_label(source_label)  # refused before anything is stored
    code = check_region(region, get_settings().default_region)
    wants_header = _parse_header(header)
    stored = await get_storage().save_stream(
        session, actor, chunks, kind=f"cleaning_{purpose}_upload", original_name=filename,
        content_type=content_type, max_bytes=get_settings().max_upload_bytes,
    )
    record = await run_in_threadpool(  # the table is read: on a worker thread, never on the event loop
        register_upload, session, actor, stored, purpose=purpose, region=code, phone_column=phone_column,
        header=wants_header)
    if purpose == "clean":
        sources.label_list(session, actor, label, "cleaning", record.id, record.original_name)
    return record


def upload_path(
    session: Session, actor: Principal, path: Path, *, purpose: str = "clean", region: str | None = None,
    phone_column: str | None = None, header: str | bool | None = None, name: str | None = None,
    source_label: str | None = None,
) -> CleaningFile:
    """The same from a local file (CLI, bench)."""

    async def chunks() -> AsyncIterator[bytes]:
        with path.open("rb") as handle:
            while block := handle.read(CHUNK):
                yield block

    return asyncio.run(upload_stream(session, actor, chunks(), filename=name or path.name, purpose=purpose,
                                     region=region, phone_column=phone_column, header=header,
                                     source_label=source_label))


def register_upload(
    session: Session, actor: Principal, stored: StoredFile, *, purpose: str, region: str,
    phone_column: str | None, header: bool | None,
) -> CleaningFile:
    storage = get_storage()
    try:
        with storage.local_path(stored) as path:
            found = inspect_table(path, region=region, header=header, phone_column=phone_column)
    except AppError as exc:
        storage.discard(stored)  # the row goes with the rolled-back transaction
        exc.message = f"{stored.original_name}: {exc.message}"
        raise
    layout = found.layout
    record = CleaningFile(
        purpose=purpose, upload_id=stored.id, original_name=stored.original_name, status="ready",
        table_kind=layout.table_kind, encoding=layout.encoding, delimiter=layout.delimiter,
        has_header=layout.has_header, columns=layout.columns, phone_column=found.phone_column, region=region,
        sample=[], size=stored.size, created_by=actor.username,
    )
    session.add(record)
    session.flush()
    record.sample_sealed = seal_sample(record, found.sample)
    audit(session, actor, "cleaning.upload", "cleaning_file", record.id,
          {"name": stored.original_name, "size": stored.size, "purpose": purpose, "file": stored.id})
    return record


def _sample_context(record: CleaningFile) -> str:
    return f"cleaning_file:{record.id}"


def seal_sample(record: CleaningFile, rows: list[list[str]]) -> str | None:
    """The first rows of an upload sealed like every other number at rest (numbers vault)."""
    if not rows:
        return None
    return get_vault().seal_text(json.dumps(rows), _sample_context(record))


def sample_rows(record: CleaningFile) -> list[list[str]]:
    """The first rows in full (for the code; what a person sees goes through `shown_sample`)."""
    if record.sample_sealed:
        rows = json.loads(get_vault().open_text(record.sample_sealed, _sample_context(record)))
        return [[str(cell) for cell in row] for row in rows]
    return [list(row) for row in record.sample or []]


def shown_sample(record: CleaningFile, actor: Principal) -> list[list[str]]:
    """The first rows as `actor` may see them (phoneops.core.access, samples: masked for viewers)."""
    rows = sample_rows(record)
    if access.reveals(actor, access.Obj.sample, record.created_by):
        return rows
    return [[access.mask_cell(cell) for cell in row] for row in rows]


def sample_keys(record: CleaningFile) -> list[str]:
    """Per sample row, the page address of its phone cell's number (`phoneops.numbers.links`), "" when the cell
    is not a number: the file page links the numbers without putting them in a URL."""
    if record.phone_column is None:
        return []
    vault, column = get_vault(), record.phone_column
    keys = []
    for row in sample_rows(record):
        e164 = normalize(row[column], record.region).e164 if column < len(row) else None
        keys.append(vault.index(e164).hex() if e164 else "")
    return keys


def get_cleaning_file(session: Session, file_id: int, purpose: str | None = None) -> CleaningFile:
    record = session.get(CleaningFile, file_id)
    if record is None or record.status == "deleted" or (purpose and record.purpose != purpose):
        raise NotFound(f"no file {file_id}")
    return record


def list_cleaning_files(
    session: Session, purpose: str | None = "clean", *, archived: bool = False, limit: int = 200
) -> list[CleaningFile]:
    query = select(CleaningFile).order_by(CleaningFile.id.desc()).limit(max(1, min(limit, 1000)))
    if purpose:
        query = query.where(CleaningFile.purpose == check_purpose(purpose))
    if archived:
        query = query.where(CleaningFile.status == "archived")
    else:
        query = query.where(CleaningFile.status.not_in(("archived", "deleted")))
    return list(session.scalars(query))


def archive_file(session: Session, actor: Principal, file_id: int) -> CleaningFile:
    record = get_cleaning_file(session, file_id)
    if record.status == "running":
        raise Conflict("the file is being processed; archive it once the run ends")
    record.status = "archived"
    audit(session, actor, "cleaning.archive", "cleaning_file", record.id, {"name": record.original_name})
    return record


def restore_file(session: Session, actor: Principal, file_id: int) -> CleaningFile:
    record = get_cleaning_file(session, file_id)
    if record.status != "archived":
        raise Conflict("the file is not archived")
    record.status = "done" if record.last_run_id else "ready"
    audit(session, actor, "cleaning.restore", "cleaning_file", record.id, {"name": record.original_name})
    return record


def delete_file(session: Session, actor: Principal, file_id: int) -> CleaningFile:
    """Delete a file: its upload and every result file leave storage; the row stays as a tombstone."""
    record = get_cleaning_file(session, file_id)
    if record.status == "running":
        raise Conflict("the file is being processed; delete it once the run ends")
    storage = get_storage()
    ids = [record.upload_id]
    for run in session.scalars(select(CleaningRun).where(CleaningRun.file_id == record.id)):
        ids += [run.output_file_id, run.rejected_file_id]
    removed = 0
    for stored_id in filter(None, ids):
        stored = get_file(session, stored_id)
        if stored.status != "deleted":
            storage.delete(session, actor, stored)
            removed += 1
    record.status, record.sample, record.sample_sealed = "deleted", [], None  # the sample rows hold numbers
    audit(session, actor, "cleaning.delete", "cleaning_file", record.id,
          {"name": record.original_name, "files_removed": removed})
    return record
