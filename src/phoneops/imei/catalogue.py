"""The services catalogue: every account's services (GSM Fusion `imeiservices`, DHRU `imeiservicelist`) cached
in our database with a TTL.

All workers and web processes share the cache (it is a table). A refresh upserts every package and
marks the ones that left the list inactive; when the provider cannot be reached the stale list is
served with a warning instead of an empty page (the original showed "0 services").
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import structlog
from sqlalchemy import func, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from phoneops.core.db import release, utcnow
from phoneops.core.errors import NotFound, UpstreamError, ValidationFailed
from phoneops.core.http import ProviderError
from phoneops.imei.client import Service
from phoneops.imei.models import ImeiService
from phoneops.imei.provider import GSM, accounts, as_app_error, describe, join_id, sync_pool
from phoneops.settings import get_settings

log = structlog.get_logger("phoneops.imei.catalogue")
SERVICE_KINDS = ("imei", "file")


@dataclass(frozen=True)
class Catalogue:
    """The services (filtered), when they were fetched, and a warning when the list is stale."""

    services: list[ImeiService]
    categories: list[str]
    fetched_at: datetime | None
    stale: bool
    warning: str | None


def _last_fetch(session: Session) -> datetime | None:
    return session.scalar(select(func.max(ImeiService.fetched_at)).where(ImeiService.active.is_(True)))


def _oldest_account_fetch(session: Session) -> datetime | None:
    """When the least recently fetched configured account was fetched; None when one has never been (an
    account added since the last refresh: its services must be fetched now, not after the TTL)."""
    rows = session.execute(select(ImeiService.account, func.max(ImeiService.fetched_at))
                           .where(ImeiService.active.is_(True)).group_by(ImeiService.account)).all()
    fetched: dict[str, datetime] = {row[0]: row[1] for row in rows}
    dates = [fetched.get(account) for account in accounts()]
    if not dates:  # nothing configured: the cache is all there is
        return max(fetched.values(), default=None)
    if any(d is None for d in dates):
        return None
    return min(d for d in dates if d is not None)


def store_services(session: Session, services: Sequence[Service], kind: str = "imei", account: str = GSM) -> int:
    """Upsert a fetched package list of one account (one statement; safe with concurrent refreshes).

    An empty list never wipes the cached catalogue (a provider hiccup, not a closed shop)."""
    if not services:
        log.warning("imei.services_empty", account=account, kind=kind)
        return 0
    now = utcnow()
    rows = [
        {"package_id": join_id(account, s.package_id), "kind": kind, "account": account,
         "category": s.category[:255], "title": s.title[:255], "price": s.price,
         "delivery_time": s.delivery_time[:100], "details": s.details, "active": True, "fetched_at": now}
        for s in services
    ]
    if rows:
        dialect = session.get_bind().dialect.name
        insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
        statement = insert(ImeiService)
        changing = {c: statement.excluded[c] for c in rows[0] if c != "package_id"}
        session.execute(statement.on_conflict_do_update(index_elements=["package_id"], set_=changing), rows)
    gone = update(ImeiService).where(ImeiService.kind == kind, ImeiService.account == account).values(active=False)
    if rows:
        gone = gone.where(ImeiService.package_id.not_in([r["package_id"] for r in rows]))
    session.execute(gone)
    session.flush()
    return len(rows)


@dataclass(frozen=True)
class _Fetched:
    lists: list[tuple[str, list[Service], list[Service] | None]]  # account, imei services, file services
    failure: ProviderError | None
    empty: list[str]


def _fetch() -> _Fetched:
    """Every account's service lists, from the providers only (no database: see `refresh`)."""
    lists: list[tuple[str, list[Service], list[Service] | None]] = []
    failure: ProviderError | None = None
    empty: list[str] = []
    with sync_pool(timeout=15.0) as pool:
        for account in accounts():
            try:
                services = pool.imei_services(account)
                files = pool.file_services(account)
            except ProviderError as exc:
                log.warning("imei.services_refresh_failed", account=account, error=exc.message)
                failure = failure or exc
                continue
            if not services:  # an empty list is a provider hiccup, not "every service is gone": keep them
                log.warning("imei.services_empty_kept_catalogue", account=account)
                empty.append(account)
                continue
            lists.append((account, services, files))
    return _Fetched(lists, failure, empty)


def _store(session: Session, fetched: _Fetched) -> int:
    count = 0
    for account, services, files in fetched.lists:
        count += store_services(session, services, account=account)
        if files is not None:
            count += store_services(session, files, kind="file", account=account)
    if fetched.failure is not None:
        raise as_app_error(fetched.failure)
    if fetched.empty:
        raise UpstreamError(f"{', '.join(fetched.empty)} answered an empty service list; the cached catalogue is kept")
    log.info("imei.services_refreshed", count=count)
    return count


def refresh(session: Session) -> int:
    """Fetch every account's service list now and store it; when an account fails the others are still
    stored, then its failure is raised as a clear AppError. The lists are fetched with no pooled connection
    held (`db.release`) and stored afterwards."""
    release(session)
    return _store(session, _fetch())


def ensure_fresh(session: Session, *, force: bool = False) -> str | None:
    """Refresh the cache when older than IMEI_SERVICES_TTL_SECONDS; returns a warning if it had to stay stale."""
    settings = get_settings()
    last = _last_fetch(session)
    oldest = _oldest_account_fetch(session)
    ttl = timedelta(seconds=settings.imei_services_ttl_seconds)
    if not force and oldest is not None and utcnow() - oldest < ttl:
        return None
    released = release(session)  # the provider calls below hold no pooled connection (issue 21)
    try:
        fetched = _fetch()
        with session.begin_nested():
            _store(session, fetched)
    except Exception as exc:
        if last is None:
            raise
        message = describe(exc) if isinstance(exc, ProviderError) else getattr(exc, "message", str(exc))
        log.warning("imei.services_stale", error=message)
        warning: str | None = f"showing the list fetched at {last:%Y-%m-%d %H:%M} UTC: {message}"
    else:
        warning = None
    if released:
        # The refresh is a unit of work of its own: committed now, the connection goes back to the pool, so the
        # caller's next provider call (an order's balance check) does not wait holding it (issue 21).
        session.commit()
    return warning


def catalogue(
    session: Session, *, search: str | None = None, category: str | None = None, refresh_now: bool = False,
    account: str | None = None, kind: str = "imei",
) -> Catalogue:
    """Active services, searched by title/category (case-insensitive), filtered by exact category and account."""
    warning = ensure_fresh(session, force=refresh_now)
    if kind not in SERVICE_KINDS:
        raise ValidationFailed(f"service type must be one of {', '.join(SERVICE_KINDS)} (got {kind!r})")
    query = select(ImeiService).where(ImeiService.active.is_(True), ImeiService.kind == kind)
    if account:
        query = query.where(ImeiService.account == account)
    if search and search.strip():
        like = f"%{search.strip().lower()}%"
        query = query.where(or_(func.lower(ImeiService.title).like(like), func.lower(ImeiService.category).like(like)))
    all_categories = sorted(
        {c for c in session.scalars(select(ImeiService.category).where(ImeiService.active.is_(True))) if c}
    )
    if category:
        query = query.where(ImeiService.category == category)
    services = list(session.scalars(query.order_by(ImeiService.category, ImeiService.title)))
    last = _last_fetch(session)
    return Catalogue(services, all_categories, last, warning is not None, warning)


def get_service(session: Session, package_id: str) -> ImeiService:
    """One active service (refreshing the cache when stale); unknown → NotFound."""
    ensure_fresh(session)
    service = session.get(ImeiService, str(package_id).strip())
    if service is None or not service.active or service.kind != "imei":
        raise NotFound(f"no device-check service {package_id!r} (see the services list)")
    return service


def services_by_id(session: Session, package_ids: Sequence[str]) -> dict[str, ImeiService]:
    """Active services among `package_ids` (cache refreshed when stale)."""
    ensure_fresh(session)
    ids = sorted({str(p).strip() for p in package_ids})
    if not ids:
        return {}
    found = session.scalars(
        select(ImeiService).where(
            ImeiService.package_id.in_(ids), ImeiService.active.is_(True), ImeiService.kind == "imei"
        )
    )
    return {s.package_id: s for s in found}
