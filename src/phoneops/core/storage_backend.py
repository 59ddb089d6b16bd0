"""The storage API every backend implements (`Storage`), with the name and id rules they share.

`phoneops.core.storage` holds the local-disk backend and picks the configured one (`get_storage()`);
`phoneops.core.storage_s3` holds the S3 backend. Both build on this module, which knows neither.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import re
import shutil
import unicodedata
import uuid
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Iterable, Iterator
from contextlib import ExitStack, contextmanager, suppress
from pathlib import Path
from typing import Any, BinaryIO, cast

from sqlalchemy import event
from sqlalchemy.orm import Session, SessionTransaction
from starlette.concurrency import run_in_threadpool

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


def private_dir(path: Path) -> None:
    """Create a directory (and its missing parents) readable by the service user only (0700)."""
    missing = [p for p in (path, *path.parents) if not p.exists()]
    path.mkdir(parents=True, exist_ok=True)
    for created in missing:
        with contextlib.suppress(OSError):
            os.chmod(created, 0o700)


def checked_id(file_id: str) -> str:
    """File ids are UUIDs: nothing user-supplied reaches a path or an object key."""
    return str(uuid.UUID(file_id))


def file_digest(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


class _Digesting:
    """A produced file's handle whose SHA-256 follows what is written, so the file is not read again to store
    it (a 300 MB cleaning output: ~0.2 s less at the end of the run). A writer that moves in the file (seek,
    truncate) gets no digest here: the file is read at the end instead. No `fileno`: a library writing to the
    descriptor directly would bypass the digest, so it is told to call `write` (as with a BytesIO)."""

    def __init__(self, handle: BinaryIO) -> None:
        self._handle = handle
        self._digest = hashlib.sha256()
        self._moved = False

    def write(self, data: bytes | bytearray | memoryview) -> int:
        written = self._handle.write(data)  # a buffered file: all of `data`, or an error
        self._digest.update(data)
        return written

    def writelines(self, lines: Iterable[bytes]) -> None:
        for line in lines:
            self.write(line)

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        self._moved = True
        return self._handle.seek(offset, whence)

    def truncate(self, size: int | None = None) -> int:
        self._moved = True
        return self._handle.truncate(size)

    def fileno(self) -> int:
        raise io.UnsupportedOperation("fileno")

    def __getattr__(self, name: str) -> Any:
        return getattr(self._handle, name)

    def hexdigest(self) -> str | None:
        return None if self._moved else self._digest.hexdigest()


def _readable(row: StoredFile) -> None:
    if row.status == "deleted":
        raise NotFound(f"file {row.id} was deleted")


class Storage(ABC):
    """Stored files: bytes in a backend, one `StoredFile` row each. Writes go through a local temp file."""

    # --- what a backend provides ----------------------------------------------------------------

    @abstractmethod
    def scratch_dir(self) -> Path:
        """A local directory for temporary files (created on demand)."""

    @abstractmethod
    def _put(self, tmp: Path, file_id: str, content_type: str | None) -> None:
        """Store the bytes of the local file `tmp` under `file_id` (tmp may be moved or left for the caller)."""

    @abstractmethod
    def _open(self, row: StoredFile) -> BinaryIO:
        """The file's bytes, readable; NotFound when they are missing."""

    @abstractmethod
    def _remove(self, file_id: str) -> None:
        """Remove the bytes stored under `file_id` (no error when there are none)."""

    @abstractmethod
    @contextmanager
    def _local_copy(self, row: StoredFile) -> Iterator[Path]:
        """A local path holding the file's bytes for the block."""

    # --- writing -------------------------------------------------------------------------------

    def _tmp(self) -> Path:
        tmp = self.scratch_dir()
        private_dir(tmp)
        path = tmp / uuid.uuid4().hex
        os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))  # readable by the service user only
        return path

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
            # storing the bytes (S3: an upload) and the row's insert (which may wait on a locked SQLite
            # database) run in the threadpool, never on the event loop that answers /health
            return await run_in_threadpool(self._register, session, actor, tmp, kind, original_name, content_type,
                                           size, digest.hexdigest())
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
            with tmp.open("w+b") as handle:
                out = _Digesting(handle)
                yield cast(BinaryIO, out), created
            sha = out.hexdigest() or file_digest(tmp)
            created.append(
                self._register(session, actor, tmp, kind, original_name, content_type, tmp.stat().st_size, sha)
            )
        finally:
            tmp.unlink(missing_ok=True)

    def _register(
        self, session: Session, actor: Principal, tmp: Path, kind: str, original_name: str | None,
        content_type: str | None, size: int, sha: str,
    ) -> StoredFile:
        """Store the bytes first: a failed store leaves no row; a failed insert leaves no bytes."""
        file_id = str(uuid.uuid4())
        self._put(tmp, file_id, content_type)
        try:
            row = StoredFile(
                id=file_id, kind=kind, original_name=safe_name(original_name), content_type=content_type,
                size=size, sha256=sha, status="stored", owner_id=actor.user_id,
            )
            session.add(row)
            session.flush()
        except BaseException:
            with suppress(Exception):  # the insert's error is the one to report
                self._remove(file_id)
            raise
        return row

    def replace_content(self, session: Session, row: StoredFile, source: Path) -> None:
        """Swap the file's bytes for `source` (moved in), keeping its id; size and checksum follow. Caller audits."""
        _readable(row)
        checked_id(row.id)
        size, sha = source.stat().st_size, file_digest(source)
        try:
            self._put(source, row.id, row.content_type)
        finally:
            source.unlink(missing_ok=True)
        row.size, row.sha256, row.updated_at = size, sha, utcnow()
        session.flush()

    # --- reading -------------------------------------------------------------------------------

    def open(self, row: StoredFile) -> BinaryIO:
        """The file's bytes as a binary stream (close it); NotFound when deleted or missing."""
        _readable(row)
        checked_id(row.id)
        return self._open(row)

    def iter_bytes(self, row: StoredFile) -> Iterable[bytes]:
        with self.open(row) as f:
            yield from iter(lambda: f.read(CHUNK), b"")

    def copy_to(self, row: StoredFile, dest: Path) -> None:
        with self.open(row) as src, dest.open("wb") as out:
            shutil.copyfileobj(src, out, CHUNK)

    @contextmanager
    def local_path(self, row: StoredFile) -> Iterator[Path]:
        """A readable local path to the file's bytes for the duration of the block (readers that need a path).

        Treat it as read-only: on local disk it is the stored file itself; elsewhere a temp copy removed after.
        """
        _readable(row)
        checked_id(row.id)
        with self._local_copy(row) as path:
            yield path

    def session_local_path(self, session: Session, row: StoredFile) -> Path:
        """`local_path` for code that hands the path on: it stays readable until `session`'s transaction ends."""
        if not session.in_transaction():
            session.begin()  # so there is a transaction whose end releases the path
        stack = ExitStack()
        path = stack.enter_context(self.local_path(row))

        def release(_session: Session, transaction: SessionTransaction) -> None:
            if transaction.parent is None:
                stack.close()  # closing twice does nothing

        event.listen(session, "after_transaction_end", release)
        return path

    # --- removing ------------------------------------------------------------------------------

    def delete(self, session: Session, actor: Principal, row: StoredFile) -> None:
        self._remove(checked_id(row.id))
        row.status = "deleted"
        row.updated_at = utcnow()
        audit(session, actor, "file.delete", "file", row.id, {"name": row.original_name, "kind": row.kind})

    def discard(self, row: StoredFile) -> None:
        """Remove the bytes of a file whose row is being rolled back (a refused upload, a failed run): no audit."""
        self._remove(checked_id(row.id))
