"""`phoneops backup` / `phoneops restore`: the database only (stored files live in STORAGE_ROOT or the S3 bucket).

SQLite
    backup: sqlite3's online backup API copies a consistent snapshot while the app keeps writing (WAL mode:
    readers never block writers), into a temporary file next to the destination that is then renamed.
    restore: the file must be a phoneops database (an `alembic_version` row, `PRAGMA integrity_check` = ok, the
    core tables). The target must not be in use (its -wal / -shm files exist while any process has it open)
    unless forced. The current database is first copied to `<db>.before-restore-<UTC time>`, the backup is copied
    to a temporary file next to the target and swapped in with one rename, then migrations run to the heads.
PostgreSQL
    backup: ``pg_dump --format=custom`` (credentials passed in the environment, never on the command line).
    restore: ``pg_restore --clean --if-exists --no-owner`` into the configured database, then migrations.
    Without the client tools on PATH the exact command to run is given instead.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import create_engine, func, inspect, select, table
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool

from phoneops.core.errors import AppError, Conflict, ValidationFailed

CORE_TABLES = ("users", "jobs", "audit_log", "files")


class BackupError(AppError):
    status_code = 500
    code = "backup_failed"


class ToolMissing(AppError):
    """pg_dump / pg_restore not on PATH: the message carries the exact command to run."""

    status_code = 503
    code = "tool_missing"


@dataclass
class BackupResult:
    path: Path
    size: int
    counts: dict[str, int] = field(default_factory=dict)
    backend: str = "sqlite"


@dataclass
class RestoreResult:
    target: str
    previous_copy: Path | None
    counts: dict[str, int] = field(default_factory=dict)


def is_sqlite(url: str) -> bool:
    return url.startswith("sqlite")


def sqlite_path(url: str) -> Path:
    database = make_url(url).database
    if not database or database == ":memory:":
        raise ValidationFailed("an in-memory SQLite database cannot be backed up or restored")
    return Path(database)


def _sqlite_counts(path: Path) -> dict[str, int]:
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as conn:
        names = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table' "
                                            "AND name NOT LIKE 'sqlite_%' ORDER BY name")]
        return {n: int(conn.execute(f'SELECT count(*) FROM "{n}"').fetchone()[0]) for n in names}  # noqa: S608


def _temp_next_to(dest: Path) -> Path:
    dest.parent.mkdir(parents=True, exist_ok=True)
    return dest.with_name(f".{dest.name}.{uuid.uuid4().hex[:8]}.tmp")


def _sqlite_copy(source: Path, dest: Path) -> None:
    """A consistent copy of a live SQLite database through the online backup API (one step: one snapshot)."""
    src = sqlite3.connect(source, timeout=30)
    try:
        out = sqlite3.connect(dest)
        try:
            src.backup(out)
        finally:
            out.close()
    finally:
        src.close()


def backup_sqlite(url: str, dest: Path) -> BackupResult:
    source = sqlite_path(url)
    if not source.exists():
        raise ValidationFailed(f"no database at {source}")
    if dest.resolve() == source.resolve():
        raise ValidationFailed("the backup cannot overwrite the database itself")
    tmp = _temp_next_to(dest)
    try:
        _sqlite_copy(source, tmp)
        with sqlite3.connect(tmp) as conn:  # a standalone file: no -wal next to it
            conn.execute("PRAGMA journal_mode=DELETE")
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)
    return BackupResult(dest, dest.stat().st_size, _sqlite_counts(dest))


def check_sqlite_backup(path: Path) -> dict[str, int]:
    """Refuse anything that is not an intact phoneops database; its row counts otherwise."""
    if not path.is_file():
        raise ValidationFailed(f"no file at {path}")
    with path.open("rb") as handle:
        if handle.read(16) != b"SQLite format 3\x00":
            raise ValidationFailed(f"{path} is not an SQLite database (nothing was changed)", code="not_phoneops")
    try:
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as conn:
            check = conn.execute("PRAGMA integrity_check").fetchone()
            if not check or check[0] != "ok":
                raise ValidationFailed(f"{path} fails the integrity check: {check[0] if check else '?'}",
                                       code="corrupt_backup")
            names = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
            missing = [t for t in ("alembic_version", *CORE_TABLES) if t not in names]
            if missing:
                raise ValidationFailed(f"{path} is not a phoneops database (no {', '.join(missing)}); "
                                       "nothing was changed", code="not_phoneops")
            if not conn.execute("SELECT version_num FROM alembic_version").fetchall():
                raise ValidationFailed(f"{path} has no migration version; nothing was changed", code="not_phoneops")
    except sqlite3.DatabaseError as exc:
        raise ValidationFailed(f"{path} cannot be read as a database: {exc}", code="not_phoneops") from None
    return _sqlite_counts(path)


def sqlite_in_use(path: Path) -> bool:
    """While any process has a WAL database open, its -wal and -shm files exist (removed by the last close)."""
    return any(Path(f"{path}{suffix}").exists() for suffix in ("-wal", "-shm"))


def restore_sqlite(url: str, source: Path, *, force: bool = False) -> RestoreResult:
    from phoneops.core.migrate import upgrade

    target = sqlite_path(url)
    check_sqlite_backup(source)
    if target.exists() and source.resolve() == target.resolve():
        raise ValidationFailed("the backup is the database itself")
    if sqlite_in_use(target) and not force:
        raise Conflict(f"{target} looks in use (its -wal/-shm files exist): stop the API, workers and consumers "
                       "first, or pass --force", code="database_in_use")
    previous: Path | None = None
    if target.exists():
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        previous = target.with_name(f"{target.name}.before-restore-{stamp}")
        _sqlite_copy(target, previous)
    tmp = _temp_next_to(target)
    try:
        _sqlite_copy(source, tmp)
        with sqlite3.connect(tmp) as conn:
            conn.execute("PRAGMA journal_mode=DELETE")
        for suffix in ("-wal", "-shm"):  # an old log must never be replayed onto the restored file
            Path(f"{target}{suffix}").unlink(missing_ok=True)
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    upgrade(url)
    return RestoreResult(str(target), previous, _sqlite_counts(target))


# --- PostgreSQL ------------------------------------------------------------------------------------------------


def _pg_env(url: str) -> tuple[dict[str, str], str]:
    """libpq environment for the URL (password never on the command line) and the database name."""
    parsed = make_url(url)
    env = dict(os.environ)
    for key, value in (("PGHOST", parsed.host), ("PGPORT", parsed.port), ("PGUSER", parsed.username),
                       ("PGPASSWORD", parsed.password)):
        if value is not None:
            env[key] = str(value)
    return env, str(parsed.database or "")


def pg_dump_command(url: str, dest: Path) -> list[str]:
    _, database = _pg_env(url)
    return ["pg_dump", "--format=custom", "--no-owner", f"--file={dest}", f"--dbname={database}"]


def pg_restore_command(url: str, source: Path) -> list[str]:
    _, database = _pg_env(url)
    return ["pg_restore", "--clean", "--if-exists", "--no-owner", "--single-transaction", f"--dbname={database}",
            str(source)]


def _shown(command: list[str], url: str) -> str:
    parsed = make_url(url)
    prefix = " ".join(f"{k}={v}" for k, v in (("PGHOST", parsed.host), ("PGPORT", parsed.port),
                                               ("PGUSER", parsed.username)) if v)
    return f"{prefix} PGPASSWORD=... {' '.join(command)}".strip()


def _pg_counts(url: str) -> dict[str, int]:
    engine = create_engine(url, poolclass=NullPool)
    try:
        names = sorted(inspect(engine).get_table_names())
        with engine.connect() as conn:
            return {n: int(conn.scalar(select(func.count()).select_from(table(n))) or 0) for n in names}
    finally:
        engine.dispose()


def backup_postgres(url: str, dest: Path) -> BackupResult:
    if shutil.which("pg_dump") is None:
        raise ToolMissing("pg_dump is not on PATH; install the PostgreSQL client and run: "
                          + _shown(pg_dump_command(url, dest), url))
    env, _ = _pg_env(url)
    tmp = _temp_next_to(dest)
    try:
        done = subprocess.run(pg_dump_command(url, tmp), env=env, capture_output=True, text=True, check=False)  # noqa: S603
        if done.returncode != 0:
            raise BackupError(f"pg_dump failed: {done.stderr.strip()[-500:]}")
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)
    return BackupResult(dest, dest.stat().st_size, _pg_counts(url), backend="postgresql")


def restore_postgres(url: str, source: Path) -> RestoreResult:
    from phoneops.core.migrate import upgrade

    if not source.is_file():
        raise ValidationFailed(f"no file at {source}")
    with source.open("rb") as handle:
        if handle.read(5) != b"PGDMP":
            raise ValidationFailed(f"{source} is not a pg_dump custom-format archive; nothing was changed",
                                   code="not_phoneops")
    if shutil.which("pg_restore") is None:
        raise ToolMissing("pg_restore is not on PATH; install the PostgreSQL client and run: "
                          + _shown(pg_restore_command(url, source), url))
    env, _ = _pg_env(url)
    done = subprocess.run(pg_restore_command(url, source), env=env, capture_output=True, text=True, check=False)  # noqa: S603
    if done.returncode != 0:
        raise BackupError(f"pg_restore failed: {done.stderr.strip()[-500:]}")
    upgrade(url)
    return RestoreResult(make_url(url).render_as_string(hide_password=True), None, _pg_counts(url))


def backup(url: str, dest: Path) -> BackupResult:
    return backup_sqlite(url, dest) if is_sqlite(url) else backup_postgres(url, dest)


def restore(url: str, source: Path, *, force: bool = False) -> RestoreResult:
    return restore_sqlite(url, source, force=force) if is_sqlite(url) else restore_postgres(url, source)


def files_note(storage_backend: str, storage_root: Path, bucket: str | None, prefix: str) -> str:
    """Where the stored files are (not in the database): what to back up besides it."""
    if storage_backend == "s3":
        return (f"stored files are not in the database: they are in s3://{bucket}/{prefix}; keep bucket "
                f"versioning on or copy them, e.g. aws s3 sync s3://{bucket}/{prefix} ./phoneops-files")
    return (f"stored files are not in the database: back up {storage_root} too, "
            f"e.g. tar czf phoneops-files.tgz -C {storage_root} .")
