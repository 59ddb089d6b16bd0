"""Files: uploads streamed to a local temp file under a size limit, then stored under their id, never a user's name.

Two backends share one API, `phoneops.core.storage_backend.Storage`, and `get_storage()` picks the
configured one: `LocalStorage` keeps files under STORAGE_ROOT on this machine;
`phoneops.core.storage_s3.S3Storage` keeps them in an S3-compatible bucket so API processes and workers on
different machines see the same files. Callers never see where bytes live: they read through `open` /
`iter_bytes` / `copy_to`, or `local_path` when a reader needs a path.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

from sqlalchemy import select
from sqlalchemy.orm import Session

from phoneops.core.errors import NotFound
from phoneops.core.models import StoredFile
from phoneops.core.storage_backend import CHUNK, Storage, checked_id, file_digest, private_dir, safe_name
from phoneops.core.storage_s3 import S3Storage
from phoneops.settings import get_settings

# The backend API's names, for callers that know only this module.
__all__ = ["CHUNK", "LocalStorage", "Storage", "checked_id", "file_digest", "get_file", "get_storage",
           "list_files", "private_dir", "safe_name"]


class LocalStorage(Storage):
    """Local-disk storage rooted at `root`; files live at root/<id[:2]>/<id>."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def path_for(self, file_id: str) -> Path:
        file_id = checked_id(file_id)
        return self.root / file_id[:2] / file_id

    def scratch_dir(self) -> Path:
        return self.root / "tmp"  # same file system as the files: a stored file is moved in atomically

    def _put(self, tmp: Path, file_id: str, content_type: str | None) -> None:
        dest = self.path_for(file_id)
        private_dir(dest.parent)
        staged = self._tmp()
        shutil.move(tmp, staged)  # a rename unless `tmp` lives on another file system
        os.chmod(staged, 0o600)
        os.replace(staged, dest)

    def _open(self, row: StoredFile) -> BinaryIO:
        path = self.path_for(row.id)
        if not path.exists():
            raise NotFound(f"file {row.id} is missing from storage")
        return path.open("rb")

    def _remove(self, file_id: str) -> None:
        self.path_for(file_id).unlink(missing_ok=True)

    @contextmanager
    def _local_copy(self, row: StoredFile) -> Iterator[Path]:
        with self._open(row):
            pass  # raises NotFound for a missing file
        yield self.path_for(row.id)


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
    """The configured backend (STORAGE_BACKEND): files on this machine or in a shared S3 bucket."""
    settings = get_settings()
    if settings.storage_backend == "s3":
        return S3Storage.from_settings(settings)
    return LocalStorage(settings.storage_root)
