"""Engine, sessions and the declarative base.

One transaction per request or task: entry points open a session with `session_scope()` (or the
`get_db` dependency), services only `flush()`, and the boundary commits or rolls back.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

from sqlalchemy import JSON, DateTime, Engine, Insert, MetaData, Table, Update, bindparam, create_engine, event
from sqlalchemy.orm import DeclarativeBase, Session, SessionTransaction, sessionmaker
from sqlalchemy.types import TypeDecorator

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def rowcount(result: Any) -> int:
    """Rows matched by an UPDATE/DELETE (`Session.execute` is typed as returning `Result`, which has no
    `rowcount`; the `CursorResult` it really returns for those statements has). 0 when the driver cannot tell."""
    return int(getattr(result, "rowcount", 0) or 0)


def core_table(model: type[Any]) -> Table:
    """A model's Core table (Core inserts/updates skip the ORM's per-row work on large batches)."""
    return cast(Table, model.__table__)


def execute_many(session: Session, statement: Insert | Update, rows: Sequence[Mapping[str, Any]]) -> None:
    """`session.execute(statement, rows)` for many rows of one shape, without SQLAlchemy's per-row parameter
    work (an import's apply spent ~45% of its time there): the statement is compiled once, each bound value
    is converted column by column with the very processors the dialect gives its type (`dialect_impl(...)
    .bind_processor`: what SQLAlchemy applies row by row), and the rows go to the driver's executemany in
    the session's transaction. Every row must carry the same keys; an INSERT's table columns missing from
    them get their scalar default, as SQLAlchemy would give them, and a column whose default is computed
    (a callable or SQL) must be given."""
    if not rows:
        return
    shape = rows[0].keys()
    keys = list(shape)
    if any(row.keys() != shape for row in rows):
        raise ValueError("execute_many needs rows of one shape (the same keys)")
    extra: dict[str, Any] = {}
    if isinstance(statement, Insert):
        for column in statement.table.columns:
            if column.key in keys or column.primary_key:
                continue
            default = column.default
            if default is None:
                continue
            if not default.is_scalar:
                raise ValueError(f"execute_many: give {column.key!r} (its default is computed per row)")
            extra[column.key] = default.arg  # type: ignore[attr-defined]
        statement = statement.values({k: bindparam(k) for k in [*keys, *extra]})
    connection = session.connection()
    dialect = connection.dialect
    compiled = statement.compile(dialect=dialect, for_executemany=True)  # no RETURNING (as executemany)
    names = list(compiled.positiontup or []) if compiled.positional else list(compiled.binds)
    columns: dict[str, list[Any]] = {}
    for name in dict.fromkeys(names):
        values = [row[name] for row in rows] if name in rows[0] else [extra[name]] * len(rows)
        process = compiled.binds[name].type.dialect_impl(dialect).bind_processor(dialect)
        columns[name] = values if process is None else _processed(values, process)
    if compiled.positional:
        params: list[Any] = list(zip(*(columns[name] for name in names), strict=True))
    else:
        params = [dict(zip(columns, values, strict=True)) for values in zip(*columns.values(), strict=True)]
    connection.exec_driver_sql(str(compiled), params)


def _processed(values: list[Any], process: Callable[[Any], Any]) -> list[Any]:
    """`process` of each value, once per distinct object: a batch's rows often share one value (its `now`),
    and converting a timestamp is most of SQLAlchemy's per-value work."""
    done: dict[int, Any] = {}
    out = []
    for value in values:
        key = id(value)
        if key not in done:
            done[key] = process(value)
        out.append(done[key])
    return out


def utcnow() -> datetime:
    return datetime.now(UTC)


class UtcDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC timestamps on every backend (SQLite stores naive values)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {datetime: UtcDateTime(), dict[str, Any]: JSON()}


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def _private_file(path: Path) -> None:
    """The database file (and the folders made for it) readable by the service user only (0600/0700); SQLite
    gives its -wal and -shm files the database file's mode."""
    missing = [p for p in path.parents if not p.exists()]
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        for created in missing:
            os.chmod(created, 0o700)
        if not path.exists():
            os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o600))
        elif path.stat().st_mode & 0o077:
            os.chmod(path, 0o600)
    except OSError:  # not ours to change (a read-only mount, another owner): SQLite reports what matters
        pass


def make_engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        path = url.split("///", 1)[1] if "///" in url else ""
        if path and path != ":memory:" and not path.startswith("file:"):
            _private_file(Path(path))
        # POOL_SIZE + POOL_OVERFLOW connections; the API admits as many requests at once (core.load) and gives
        # the request threadpool as many threads plus spares: an admitted request never waits on the pool
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30},
                               pool_size=POOL_SIZE["sqlite"][0], max_overflow=POOL_SIZE["sqlite"][1],
                               pool_timeout=POOL_TIMEOUT)
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    return create_engine(url, pool_pre_ping=True, pool_size=POOL_SIZE["other"][0],
                         max_overflow=POOL_SIZE["other"][1], pool_timeout=POOL_TIMEOUT)


# (pool_size, max_overflow) per backend; PostgreSQL's default max_connections (100) is shared by every API
# process and worker, so fewer there
POOL_SIZE = {"sqlite": (10, 30), "other": (10, 20)}
POOL_TIMEOUT = 10  # seconds a checkout waits before TimeoutError (answered 503 + Retry-After by the API)


def pool_capacity(url: str) -> int:
    size, overflow = POOL_SIZE["sqlite" if url.startswith("sqlite") else "other"]
    return size + overflow


_health_engines: dict[str, Engine] = {}


def health_engine() -> Engine:
    """An engine without a pool for /health: it never waits behind requests holding pooled connections."""
    from sqlalchemy.pool import NullPool

    url = _current_url()
    with _lock:
        if url not in _health_engines:
            args: dict[str, Any] = {"poolclass": NullPool}
            if url.startswith("sqlite"):
                args["connect_args"] = {"check_same_thread": False, "timeout": 1}
            else:
                args["connect_args"] = {"connect_timeout": 1}
            _health_engines[url] = create_engine(url, **args)
        return _health_engines[url]


_lock = threading.Lock()
_engines: dict[str, Engine] = {}
_factories: dict[str, sessionmaker[Session]] = {}
_url: str | None = None


def configure(url: str) -> None:
    """Point the process at a database (idempotent; engines are cached per URL)."""
    global _url
    with _lock:
        if url not in _engines:
            _engines[url] = make_engine(url)
            _factories[url] = sessionmaker(bind=_engines[url], expire_on_commit=False)
        _url = url


def _current_url() -> str:
    if _url is None:
        from phoneops.settings import get_settings

        configure(get_settings().database_url)
    assert _url is not None
    return _url


def get_engine() -> Engine:
    return _engines[_current_url()]


def session_factory() -> sessionmaker[Session]:
    return _factories[_current_url()]


def dispose_all() -> None:
    global _url
    with _lock:
        for engine in [*_engines.values(), *_health_engines.values()]:
            engine.dispose()
        _engines.clear()
        _health_engines.clear()
        _factories.clear()
        _url = None


@contextmanager
def session_scope() -> Iterator[Session]:
    """A unit of work: commit on success, roll back on error, always close."""
    session = session_factory()()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


def release(session: Session) -> bool:
    """Hand the session's pooled connection back before waiting on something slow (a provider call).

    A request or task step that has only read so far ends its transaction (a commit of nothing) and the
    connection returns to the pool; the session takes one again at its next query, and the objects it
    loaded stay usable (sessions do not expire on commit). A transaction that has written keeps its
    connection: ending it would commit half a unit of work. Returns whether the connection was released.
    """
    if session.new or session.dirty or session.deleted or session.info.get(_WROTE):
        return False
    if session.in_transaction():
        session.commit()
    return True


_WROTE = "phoneops.wrote"


@event.listens_for(Session, "after_flush")
def _note_flush(session: Session, _context: Any) -> None:
    session.info[_WROTE] = True


@event.listens_for(Session, "do_orm_execute")
def _note_write(state: Any) -> None:
    if state.is_insert or state.is_update or state.is_delete:
        state.session.info[_WROTE] = True


@event.listens_for(Session, "after_transaction_end")
def _forget_writes(session: Session, transaction: Any) -> None:
    if transaction.parent is None:
        session.info.pop(_WROTE, None)


def after_commit(session: Session, callback: Callable[[], None]) -> None:
    """Run `callback` once the session's transaction commits; drop it on rollback."""
    pending: list[Callable[[], None]] = session.info.setdefault("after_commit", [])
    pending.append(callback)


@event.listens_for(Session, "after_transaction_create")
def _mark_savepoint(session: Session, transaction: SessionTransaction) -> None:
    if transaction.nested:  # callbacks registered inside a savepoint go with it if it rolls back
        marks: dict[int, int] = session.info.setdefault("after_commit_marks", {})
        marks[id(transaction)] = len(session.info.get("after_commit", []))


@event.listens_for(Session, "after_commit")
def _run_after_commit(session: Session) -> None:
    if session.in_nested_transaction():
        return  # a savepoint was released: nothing is committed yet (SQLAlchemy fires after_commit for it too)
    session.info.pop("after_commit_marks", None)
    callbacks: list[Callable[[], None]] = session.info.pop("after_commit", [])
    for callback in callbacks:
        callback()


@event.listens_for(Session, "after_soft_rollback")
def _drop_after_commit(session: Session, previous: SessionTransaction) -> None:
    if previous.nested:  # a savepoint rolled back: only what was registered inside it is dropped
        mark = session.info.get("after_commit_marks", {}).pop(id(previous), None)
        if mark is not None and "after_commit" in session.info:
            del session.info["after_commit"][mark:]
        return
    session.info.pop("after_commit_marks", None)
    session.info.pop("after_commit", None)
