"""`phoneops backup` / `phoneops restore` through the CLI: a consistent SQLite snapshot while the app writes, a round
trip that keeps the previous database, refusal of files that are not phoneops databases (nothing changed), and
pg_dump on PostgreSQL."""

from __future__ import annotations

import hashlib
import shutil
import sqlite3
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, insert, select
from typer.testing import CliRunner

from phoneops.cli import app
from phoneops.core import db
from phoneops.core.models import AuditEvent
from support import scratch_database, unavailable

runner = CliRunner()


@pytest.fixture
def own_sqlite(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A fresh, migrated SQLite database of this test only (restore swaps the file under it)."""
    from phoneops.settings import reset_settings_cache

    url = f"sqlite:///{tmp_path / 'live' / 'phoneops.db'}"
    monkeypatch.setenv("DATABASE_URL", url)
    reset_settings_cache()
    migrated = runner.invoke(app, ["migrate"])
    assert migrated.exit_code == 0, migrated.output
    db.configure(url)
    yield url
    db.dispose_all()
    monkeypatch.undo()
    reset_settings_cache()


def _audit_pairs(count: int, tag: str) -> None:
    """`count` transactions of two audit rows each (a consistent snapshot holds whole pairs only)."""
    for n in range(count):
        with db.session_factory()() as session, session.begin():
            session.execute(insert(AuditEvent), [{"actor": "writer", "action": tag, "target_id": str(n),
                                                  "detail": {"pad": "x" * 200}, "at": db.utcnow()}] * 2)


def _rows(path: Path, tag: str) -> int:
    with sqlite3.connect(path) as conn:
        return int(conn.execute("SELECT count(*) FROM audit_log WHERE action = ?", (tag,)).fetchone()[0])


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_sqlite_backup_while_writing_and_restore_round_trip(own_sqlite: str, tmp_path: Path) -> None:
    live = Path(own_sqlite.split("///", 1)[1])
    _audit_pairs(1500, "seed")
    stop = threading.Event()
    written = [0]

    def writer() -> None:
        while not stop.is_set():
            _audit_pairs(1, "during")
            written[0] += 1

    thread = threading.Thread(target=writer, daemon=True)
    thread.start()
    try:
        while written[0] < 5:
            stop.wait(0.01)
        result = runner.invoke(app, ["backup", str(tmp_path / "backups" / "one.db")])
    finally:
        stop.set()
        thread.join(timeout=10)
    assert result.exit_code == 0, result.output
    backup = tmp_path / "backups" / "one.db"
    assert "backup written to" in result.output and "bytes" in result.output and "audit_log" in result.output
    flat = " ".join(result.output.split())
    assert "stored files are not in the database: back up" in flat and "tar czf" in flat  # where the files are
    assert not list(backup.parent.glob(".*tmp"))  # the temporary file was renamed, not left behind
    with sqlite3.connect(backup) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    during = _rows(backup, "during")
    assert _rows(backup, "seed") == 3000 and during % 2 == 0 and during >= 10  # whole transactions only

    # more writes after the backup; restore brings the backup's state back and keeps the current file aside
    _audit_pairs(3, "after")
    refused = runner.invoke(app, ["restore", str(backup)])
    assert refused.exit_code == 1 and "--yes" in refused.output
    in_use = runner.invoke(app, ["restore", str(backup), "--yes"])  # this process still has the database open
    assert in_use.exit_code == 1 and "in use" in in_use.output
    assert _rows(live, "after") == 6
    db.dispose_all()  # the app stops: its -wal/-shm files go away
    restored = runner.invoke(app, ["restore", str(backup), "--yes"])
    assert restored.exit_code == 0, restored.output
    assert "previous database was kept" in restored.output and "migrated" in restored.output
    assert (_rows(live, "seed"), _rows(live, "during"), _rows(live, "after")) == (3000, during, 0)
    kept = list(live.parent.glob("phoneops.db.before-restore-*"))
    assert len(kept) == 1 and _rows(kept[0], "after") == 6
    db.configure(own_sqlite)
    with db.session_factory()() as session:  # the app reads the restored database
        assert session.scalar(select(func.count()).select_from(AuditEvent).where(AuditEvent.action == "seed")) \
            == 3000


def test_restore_refuses_what_is_not_a_phoneops_database(own_sqlite: str, tmp_path: Path) -> None:
    live = Path(own_sqlite.split("///", 1)[1])
    _audit_pairs(2, "seed")
    db.dispose_all()
    before = _digest(live)
    other = tmp_path / "other.db"
    with sqlite3.connect(other) as conn:
        conn.execute("CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT)")
    text = tmp_path / "notes.txt"
    text.write_text("hello\n")
    broken = tmp_path / "broken.db"
    broken.write_bytes(b"SQLite format 3\x00" + b"\x00" * 200)
    for path, message in ((other, "not a phoneops database"), (text, "not an SQLite database"),
                          (broken, "cannot be read"), (tmp_path / "missing.db", "no file")):
        result = runner.invoke(app, ["restore", str(path), "--yes", "--force"])
        assert result.exit_code == 1, result.output
        assert message in result.output.replace("\n", " "), result.output
    assert _digest(live) == before
    assert not list(live.parent.glob("*before-restore*"))


def test_backup_through_the_cli_on_each_backend(db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from phoneops.core.security import SYSTEM, create_user
    from phoneops.settings import reset_settings_cache

    with db.session_factory()() as session, session.begin():
        create_user(session, SYSTEM, "backed-up", "correct-horse-battery", "viewer")
    monkeypatch.setenv("DATABASE_URL", db_url)
    reset_settings_cache()
    dest = tmp_path / "phoneops.backup"
    if db_url.startswith("postgresql") and shutil.which("pg_dump") is None:
        unavailable("the PostgreSQL backup test needs pg_dump on PATH")
    try:
        result = runner.invoke(app, ["backup", str(dest)])
    finally:
        reset_settings_cache()
    assert result.exit_code == 0, result.output
    assert dest.stat().st_size > 0 and "users" in result.output
    if db_url.startswith("postgresql"):
        assert dest.read_bytes()[:5] == b"PGDMP"
        listing = subprocess.run(["pg_restore", "--list", str(dest)], capture_output=True, text=True, check=True)
        assert "TABLE DATA public users" in listing.stdout and "alembic_version" in listing.stdout
        _pg_restore_round_trip(db_url, dest, monkeypatch)
    else:
        with sqlite3.connect(dest) as conn:
            assert conn.execute("SELECT username FROM users").fetchall() == [("backed-up",)]
            assert conn.execute("SELECT count(*) FROM alembic_version").fetchone()[0] >= 1


def _pg_restore_round_trip(db_url: str, dump: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`phoneops restore` into a scratch database: the users come back and migrations are at the heads."""
    from sqlalchemy import create_engine, text

    from phoneops.settings import reset_settings_cache

    with scratch_database("phoneops_restore") as scratch:
        try:
            not_a_dump = dump.with_name("plain.sql")
            not_a_dump.write_text("DROP TABLE users;\n")
            monkeypatch.setenv("DATABASE_URL", scratch)
            reset_settings_cache()
            refused = runner.invoke(app, ["restore", str(not_a_dump), "--yes"])
            assert refused.exit_code == 1 and "not a pg_dump custom-format archive" in refused.output
            restored = runner.invoke(app, ["restore", str(dump), "--yes"])
            assert restored.exit_code == 0, restored.output
            engine = create_engine(scratch)
            with engine.connect() as conn:
                assert conn.execute(text("SELECT username FROM users")).scalars().all() == ["backed-up"]
                assert conn.execute(text("SELECT count(*) FROM alembic_version")).scalar_one() >= 1
            engine.dispose()
        finally:
            reset_settings_cache()
            db.dispose_all()


def test_missing_pg_dump_gives_the_exact_command(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from phoneops.privacy import backup

    monkeypatch.setattr(backup.shutil, "which", lambda name: None)
    with pytest.raises(backup.ToolMissing) as caught:
        backup.backup("postgresql+psycopg://app:secret@db.example:5433/phoneops", tmp_path / "x.dump")
    message: Any = caught.value.message
    assert "pg_dump --format=custom" in message and "PGHOST=db.example PGPORT=5433 PGUSER=app" in message
    assert "secret" not in message
