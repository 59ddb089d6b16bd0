"""Files: uploads streamed to disk under a size limit, stored under their id, never a user's name."""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import unicodedata
import uuid
from collections.abc import AsyncIterator, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

from sqlalchemy import select
from sqlalchemy.orm import Session

from phoneops.core.audit import audit
from phoneops.core.db import utcnow
from phoneops.core.errors import NotFound, PayloadTooLarge
from phoneops.core.models import StoredFile
from phoneops.core.security import Principal

CHUNK = 1024 * 1024


def safe_name(name: str | None, default: str = "file") -> str:
    """A display/download name: no directories, no control characters, bounded length."""
    base = (name or "").replace("\\", "/").rsplit("/", 1)[-1]
    base = unicodedata.normalize("NFKC", base)
    base = re.sub(r"[\x00-\x1f\x7f\"<>|:*?]", "_", base).strip(" .")
    return base[:200] or default


class Storage:
    """Local-disk storage rooted at `root`; files live at root/<id[:2]>/<id>."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def path_for(self, file_id: str) -> Path:
        uuid.UUID(file_id)  # ids are UUIDs: nothing user-supplied reaches the path
        return self.root / file_id[:2] / file_id

    def _tmp(self) -> Path:
        tmp = self.root / "tmp"
        tmp.mkdir(parents=True, exist_ok=True)
        return tmp / uuid.uuid4().hex

    async def save_stream(
        self,
        session: Session,
        actor: Principal,
        chunks: AsyncIterator[bytes],
        *,
        kind: str,
        original_name: str | None,
        content_type: str | None,
        max_bytes: int,
    ) -> StoredFile:
        tmp = self._tmp()
        digest = hashlib.sha256()
        size = 0
        try:
            with tmp.open("wb") as out:
                async for chunk in chunks:
                    size += len(chunk)
                    if size > max_bytes:
                        raise PayloadTooLarge(
                            f"file is larger than the upload limit of {max_bytes // (1024 * 1024)} MB",
                            details={"limit_bytes": max_bytes},
                        )
                    digest.update(chunk)
                    out.write(chunk)
            return self._register(session, actor, tmp, kind, original_name, content_type, size, digest.hexdigest())
        finally:
            tmp.unlink(missing_ok=True)

    def save_bytes(
        self, session: Session, actor: Principal, data: bytes, *, kind: str, original_name: str,
        content_type: str | None = None,
    ) -> StoredFile:
        tmp = self._tmp()
        try:
            tmp.write_bytes(data)
            return self._register(
                session, actor, tmp, kind, original_name, content_type, len(data), hashlib.sha256(data).hexdigest()
            )
        finally:
            tmp.unlink(missing_ok=True)

    @contextmanager
    def writer(
        self, session: Session, actor: Principal, *, kind: str, original_name: str, content_type: str | None = None
    ) -> Iterator[tuple[BinaryIO, list[StoredFile]]]:
        """Write a produced file; the StoredFile row is appended to the yielded list on success."""
        tmp = self._tmp()
        created: list[StoredFile] = []
        try:
            with tmp.open("w+b") as out:
                yield out, created
            digest = hashlib.sha256()
            with tmp.open("rb") as f:
                for block in iter(lambda: f.read(CHUNK), b""):
                    digest.update(block)
            created.append(
                self._register(
                    session, actor, tmp, kind, original_name, content_type, tmp.stat().st_size, digest.hexdigest()
                )
            )
        finally:
            tmp.unlink(missing_ok=True)

    def _register(
        self, session: Session, actor: Principal, tmp: Path, kind: str, original_name: str | None,
        content_type: str | None, size: int, sha: str,
    ) -> StoredFile:
        file_id = str(uuid.uuid4())
        dest = self.path_for(file_id)
        dest.parent.mkdir(parents=True, exist_ok=True)
        os.replace(tmp, dest)
        row = StoredFile(
            id=file_id, kind=kind, original_name=safe_name(original_name), content_type=content_type,
            size=size, sha256=sha, status="stored", owner_id=actor.user_id,
        )
        session.add(row)
        session.flush()
        return row

    def open(self, row: StoredFile) -> BinaryIO:
        if row.status == "deleted":
            raise NotFound(f"file {row.id} was deleted")
        path = self.path_for(row.id)
        if not path.exists():
            raise NotFound(f"file {row.id} is missing from storage")
        return path.open("rb")

    @contextmanager
    def local_path(self, row: StoredFile) -> Iterator[Path]:
        """A readable local path to the file's bytes for the duration of the block (readers that need a path)."""
        with self.open(row):
            pass  # raises NotFound for deleted or missing files
        yield self.path_for(row.id)

    def replace_content(self, session: Session, row: StoredFile, source: Path) -> None:
        """Swap the file's bytes for `source` (moved in), keeping its id; size and checksum follow. Caller audits."""
        if row.status == "deleted":
            raise NotFound(f"file {row.id} was deleted")
        digest = hashlib.sha256()
        with source.open("rb") as f:
            for block in iter(lambda: f.read(CHUNK), b""):
                digest.update(block)
        dest = self.path_for(row.id)
        dest.parent.mkdir(parents=True, exist_ok=True)
        os.replace(source, dest)
        row.size, row.sha256, row.updated_at = dest.stat().st_size, digest.hexdigest(), utcnow()
        session.flush()

    def iter_bytes(self, row: StoredFile) -> Iterable[bytes]:
        with self.open(row) as f:
            yield from iter(lambda: f.read(CHUNK), b"")

    def delete(self, session: Session, actor: Principal, row: StoredFile) -> None:
        self.path_for(row.id).unlink(missing_ok=True)
        row.status = "deleted"
        row.updated_at = utcnow()
        audit(session, actor, "file.delete", "file", row.id, {"name": row.original_name, "kind": row.kind})

    def copy_to(self, row: StoredFile, dest: Path) -> None:
        with self.open(row) as src, dest.open("wb") as out:
            shutil.copyfileobj(src, out, CHUNK)


def get_file(session: Session, file_id: str) -> StoredFile:
    try:
        uuid.UUID(file_id)
    except ValueError:
        raise NotFound(f"no file {file_id}") from None
    row = session.get(StoredFile, file_id)
    if row is None:
        raise NotFound(f"no file {file_id}")
    return row


def list_files(session: Session, kind: str | None = None, limit: int = 100) -> list[StoredFile]:
    query = select(StoredFile).where(StoredFile.status != "deleted").order_by(StoredFile.created_at.desc())
    if kind:
        query = query.where(StoredFile.kind == kind)
    return list(session.scalars(query.limit(max(1, min(limit, 1000)))))


def get_storage() -> Storage:
    from phoneops.settings import get_settings

    return Storage(get_settings().storage_root)
