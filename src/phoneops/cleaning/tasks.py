"""Background runs: ``cleaning.run`` (clean a list) and ``cleaning.encrypt`` (encrypt / decrypt a file).

A run is all or nothing: result files, stats, main-database additions and the run's status are committed in
one transaction at its end. A worker killed mid-run leaves nothing half-written; the reaper requeues the job
and the run starts again from the file (cleaning is deterministic). Any failure puts the file back to
``failed`` with the message, so it can be run again.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import structlog

from phoneops.cleaning.encryption import transform_table
from phoneops.cleaning.filters import resolve
from phoneops.cleaning.models import CleaningFile, CleaningRun
from phoneops.cleaning.pipeline import CleanOptions, clean_table, estimate_rows
from phoneops.cleaning.reading import Layout, utf8_source
from phoneops.cleaning.service import CLEAN_KIND, ENCRYPT_KIND
from phoneops.cleaning.used import add_used
from phoneops.core.audit import audit
from phoneops.core.db import get_engine, session_scope, utcnow
from phoneops.core.errors import AppError, NotFound
from phoneops.core.jobs import JobCancelled, JobContext, LeaseLost, job_handler
from phoneops.core.models import StoredFile
from phoneops.core.security import Principal, Role
from phoneops.core.storage import get_file, get_storage
from phoneops.numbers.crypto import blind_index_backend
from phoneops.settings import get_settings
from phoneops.sources import service as sources

log = structlog.get_logger("phoneops.cleaning.tasks")

PROGRESS_EVERY = 0.5  # seconds between progress writes


@dataclass(frozen=True)
class RunSpec:
    run_id: int
    file_id: int
    kind: str
    options: dict[str, Any]
    layout: Layout
    upload_id: str
    original_name: str
    actor: Principal

    def output_name(self, prefix: str) -> str:
        ext = ".tsv" if self.layout.delimiter == "\t" else ".csv"
        return f"{prefix}_{Path(self.original_name).stem}{ext}"

    @property
    def content_type(self) -> str:
        return "text/tab-separated-values" if self.layout.delimiter == "\t" else "text/csv"


def _load(ctx: JobContext) -> RunSpec | dict[str, Any]:
    run_id = int(ctx.params["run_id"])
    with session_scope() as session:
        run = session.get(CleaningRun, run_id)
        if run is None:
            raise NotFound(f"run {run_id} no longer exists")
        if run.status == "succeeded":  # a replay after the final commit: nothing left to do
            return {"run_id": run.id, **{k: v for k, v in run.stats.items() if k in ("rows", "kept")}}
        record = session.get(CleaningFile, run.file_id)
        if record is None or record.upload_id is None:
            raise NotFound("the uploaded file no longer exists")
        run.status, run.started_at = "running", run.started_at or utcnow()
        layout = Layout(record.table_kind, record.encoding, record.delimiter, record.has_header, list(record.columns))
        actor = Principal(user_id=ctx.created_by, username=run.created_by, role=Role.operator, via="system")
        return RunSpec(run.id, record.id, run.kind, dict(run.options), layout, record.upload_id,
                       record.original_name, actor)


def _finish(spec: RunSpec, status: str, error: str) -> None:
    with session_scope() as session:
        run = session.get(CleaningRun, spec.run_id)
        record = session.get(CleaningFile, spec.file_id)
        if run is not None:
            run.status, run.error, run.finished_at = status, error, utcnow()
        if record is not None and record.status == "running":
            record.status = "ready" if status == "cancelled" else "failed"
            record.error, record.active_run_id, record.last_run_id = error, None, spec.run_id


def _succeed(session: Any, spec: RunSpec, stats: dict[str, Any], outputs: dict[str, str | None]) -> None:
    run = session.get(CleaningRun, spec.run_id)
    record = session.get(CleaningFile, spec.file_id)
    run.stats, run.status, run.finished_at, run.error = stats, "succeeded", utcnow(), None
    run.output_file_id, run.rejected_file_id = outputs.get("output"), outputs.get("rejected")
    record.status, record.error, record.active_run_id, record.last_run_id = "done", None, None, run.id


def _execute(ctx: JobContext, work: Callable[[JobContext, RunSpec, Path], dict[str, Any]]) -> dict[str, Any]:
    loaded = _load(ctx)
    if not isinstance(loaded, RunSpec):
        return loaded
    spec = loaded
    storage = get_storage()
    try:
        with session_scope() as session:
            upload = get_file(session, spec.upload_id)
        storage.scratch_dir().mkdir(parents=True, exist_ok=True)
        with storage.local_path(upload) as path, \
                tempfile.TemporaryDirectory(dir=storage.scratch_dir(), prefix="run-") as workdir:
            return work(ctx, spec, utf8_source(path, spec.layout, Path(workdir)))
    except LeaseLost:
        raise
    except JobCancelled:
        _finish(spec, "cancelled", "cancelled by a user")
        raise
    except AppError as exc:
        _finish(spec, "failed", exc.message)
        raise
    except Exception as exc:
        _finish(spec, "failed", f"internal error: {type(exc).__name__}")
        raise


def _reporter(ctx: JobContext, total: int) -> Callable[[int, str], None]:
    last = [0.0]

    def report(done: int, message: str) -> None:
        now = time.monotonic()
        if now - last[0] >= PROGRESS_EVERY:
            last[0] = now
            ctx.progress(done=min(done, max(total - 1, 0)), total=total, message=message)

    return report


def _forget(created: list[list[StoredFile]]) -> None:
    storage = get_storage()
    for rows in created:
        for row in rows:
            storage.discard(row)


def _clean(ctx: JobContext, spec: RunSpec, source: Path) -> dict[str, Any]:
    options = spec.options
    total = estimate_rows(source)
    if blind_index_backend() != "native":  # said at every run: the operator may not read /metrics
        log.warning("cleaning.slow_blind_indexes", run_id=spec.run_id,
                    detail="the native blind-index module was not built at install (no C compiler or OpenSSL "
                           "headers; docs/operations.md, 'Blind indexes'): hashing runs in Python, several "
                           "times slower")
    ctx.progress(done=0, total=total, message="reading")
    storage = get_storage()
    with session_scope() as session:
        labelled = sources.label_of(session, "cleaning", spec.file_id) is not None
    clean_rows: list[StoredFile] = []
    rejected_rows: list[StoredFile] = []
    try:
        with session_scope() as session:
            with storage.writer(session, spec.actor, kind="cleaning_clean", original_name=spec.output_name("clean"),
                                content_type=spec.content_type) as (clean_out, clean_rows), \
                 storage.writer(session, spec.actor, kind="cleaning_rejected",
                                original_name=spec.output_name("rejected"),
                                content_type=spec.content_type) as (rejected_out, rejected_rows):
                result = clean_table(
                    get_engine(), source, spec.layout,
                    CleanOptions(int(options["phone_column"]), str(options["region"]), resolve(options["filters"]),
                                 with_digest=bool(options.get("add_to_used")) or labelled,
                                 line_type=bool(options.get("line_type")),
                                 sms_types=tuple(options["sms_types"]) if options.get("sms_types") else None),
                    get_settings().blind_key(), clean_out, rejected_out, _reporter(ctx, total),
                )
            stats = result.stats()
            if options.get("add_to_used"):
                stats["added_to_used"] = add_used(session, result.kept, spec.run_id)
            if labelled:  # the list's valid numbers, kept or not, by blind index only
                stats["source_numbers"] = sources.record(session, "cleaning", spec.file_id, result.members())
            _succeed(session, spec, stats, {"output": clean_rows[0].id, "rejected": rejected_rows[0].id})
            audit(session, spec.actor, "cleaning.run", "cleaning_file", spec.file_id,
                  {"run_id": spec.run_id, "rows": result.rows, "outcomes": result.outcomes,
                   "added_to_used": stats.get("added_to_used")})
            ctx.step(session, done=result.rows, total=result.rows, counters=result.outcomes,
                     message=f"{result.outcomes.get('kept', 0):,} of {result.rows:,} rows kept")
    except BaseException:
        _forget([clean_rows, rejected_rows])
        raise
    return {"run_id": spec.run_id, "rows": result.rows, "kept": result.outcomes.get("kept", 0)}


def _encrypt(ctx: JobContext, spec: RunSpec, source: Path) -> dict[str, Any]:
    from phoneops.numbers.vault import get_vault

    total = estimate_rows(source)
    ctx.progress(done=0, total=total, message="reading")
    storage = get_storage()
    prefix = "encrypted" if spec.kind == "encrypt" else "decrypted"
    created: list[StoredFile] = []
    try:
        with session_scope() as session:
            with storage.writer(session, spec.actor, kind=f"cleaning_{prefix}", original_name=spec.output_name(prefix),
                                content_type=spec.content_type) as (out, created):
                stats = transform_table(
                    source, spec.layout, phone_column=int(spec.options["phone_column"]), direction=spec.kind,
                    region=str(spec.options["region"]), cipher=get_vault().cipher, out=out,
                    progress=_reporter(ctx, total),
                )
            _succeed(session, spec, stats, {"output": created[0].id})
            audit(session, spec.actor, f"cleaning.{spec.kind}", "cleaning_file", spec.file_id,
                  {"run_id": spec.run_id, **stats})
            ctx.step(session, done=stats["rows"], total=stats["rows"], counters=stats,
                     message=f"{stats['converted']:,} of {stats['rows']:,} rows {prefix}")
    except BaseException:
        _forget([created])
        raise
    return {"run_id": spec.run_id, **stats}


def _file_page(params: dict[str, Any]) -> tuple[str, str]:
    return f"File {params['file_id']}", f"/cleaning/files/{int(params['file_id'])}"


@job_handler(CLEAN_KIND, title="Clean a list", max_attempts=3, origin=_file_page)
def run_cleaning(ctx: JobContext) -> dict[str, Any]:
    return _execute(ctx, _clean)


@job_handler(ENCRYPT_KIND, title="Encrypt or decrypt a file", max_attempts=3, origin=_file_page)
def run_encryption(ctx: JobContext) -> dict[str, Any]:
    return _execute(ctx, _encrypt)
