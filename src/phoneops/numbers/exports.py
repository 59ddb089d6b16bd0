"""List exports to CSV as background jobs: plaintext numbers for admins only, every export audited.

The job reads the list in pages of plain column values and has each page rendered (numbers opened, masked
unless plaintext, CSV lines) by `numbers.export_lines.render_page`: in worker processes for a big list, a few
pages in flight, written to the stored file in order (bench/list_export.py has the figures)."""

from __future__ import annotations

import multiprocessing
import os
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from phoneops.core.audit import audit
from phoneops.core.csvio import csv_lines
from phoneops.core.db import session_scope
from phoneops.core.jobs import JobContext, create_job, job_handler, list_jobs
from phoneops.core.models import Job
from phoneops.core.security import Principal, Role
from phoneops.core.storage import get_storage
from phoneops.numbers.export_lines import PageRow, render_page
from phoneops.numbers.lists import LISTS
from phoneops.numbers.models import PhoneNumber
from phoneops.settings import get_settings

KIND = "numbers.export"
HEADER = ["number", "country", "status", "authority", "reason", "source", "listed_at"]
PAGE = 5000
POOL_MIN = 50_000  # rows from which pages are rendered in worker processes (starting them costs ~1 s)
_COLUMNS = (PhoneNumber.sealed, PhoneNumber.blind_index, PhoneNumber.country, PhoneNumber.status,
            PhoneNumber.authority, PhoneNumber.reason, PhoneNumber.source, PhoneNumber.listed_at)


def start_export(session: Session, actor: Principal, status: str) -> Job:
    from phoneops.core.errors import ValidationFailed

    if status not in LISTS:
        raise ValidationFailed(f"status must be one of {', '.join(LISTS)}")
    reveal = actor.can(Role.admin)
    job = create_job(
        session,
        actor,
        KIND,
        {"status": status, "plaintext": reveal, "actor": actor.username},
        title=f"Export {status}{' (plaintext)' if reveal else ' (masked)'}",
    )
    audit(session, actor, "numbers.export", "job", job.id, {"status": status, "plaintext": reveal})
    return job


def exports(session: Session, limit: int = 50) -> list[Job]:
    return list_jobs(session, kind=KIND, limit=limit)


def _pages(status: str) -> Iterator[list[PageRow]]:
    """The list's rows in id order, `PAGE` at a time, as plain column values (no ORM object per row)."""
    last_id = 0
    while True:
        with session_scope() as session:
            page = session.execute(
                select(PhoneNumber.id, *_COLUMNS)
                .where(PhoneNumber.status == status, PhoneNumber.id > last_id)
                .order_by(PhoneNumber.id)
                .limit(PAGE)
            ).all()
        if not page:
            return
        last_id = page[-1][0]
        yield [tuple(row[1:]) for row in page]  # type: ignore[misc]


def _rendered(pages: Iterator[list[PageRow]], reveal: bool, total: int) -> Iterator[tuple[int, bytes]]:
    """(rows, CSV bytes) of each page in order: rendered in worker processes for a big list (at most two
    pages per worker in flight, so memory stays bounded), here for a small one or when no pool starts."""
    ring = tuple(get_settings().key_ring())
    workers = max(1, min(os.cpu_count() or 1, 4))
    pool = _pool(workers) if total >= POOL_MIN and workers > 1 else None
    if pool is None:
        for page in pages:
            yield len(page), render_page(ring, reveal, page)
        return
    try:
        pending: deque[tuple[int, Future[bytes]]] = deque()
        for page in pages:
            pending.append((len(page), pool.submit(render_page, ring, reveal, page)))
            if len(pending) >= 2 * workers:
                rows, future = pending.popleft()
                yield rows, future.result()
        while pending:
            rows, future = pending.popleft()
            yield rows, future.result()
    finally:
        pool.shutdown(cancel_futures=True)


def _pool(workers: int) -> ProcessPoolExecutor | None:
    pool = ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn"))
    try:
        pool.submit(render_page, (), False, []).result(timeout=60)
    except Exception:  # cannot start processes here (a sandbox, no /dev/shm): render in this process
        pool.shutdown(cancel_futures=True)
        return None
    return pool


@job_handler(KIND, title="List export", max_attempts=3, origin=lambda p: ("Exports", "/numbers/exports"))
def _run_export(ctx: JobContext) -> dict[str, Any]:
    status = str(ctx.params["status"])
    reveal = bool(ctx.params.get("plaintext"))
    actor = Principal(ctx.created_by, str(ctx.params.get("actor", "system")), Role.admin, via="job")
    with session_scope() as session:
        total = session.scalar(select(func.count()).select_from(PhoneNumber).where(PhoneNumber.status == status))
    total = int(total or 0)
    ctx.progress(done=0, total=total)
    count = 0
    with session_scope() as session:
        with get_storage().writer(
            session, actor, kind="export", original_name=f"{status}_export.csv", content_type="text/csv"
        ) as (out, created):
            out.write("".join(csv_lines(HEADER, [])).encode("utf-8"))
            for rows, data in _rendered(_pages(status), reveal, total):
                out.write(data)
                count += rows
                ctx.progress(done=count)
        file_id = created[0].id
    return {"file_id": file_id, "rows": count, "status": status, "plaintext": reveal}
