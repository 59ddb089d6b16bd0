"""Erasing one number everywhere, on request: rows, free text and JSON, stored files. Audited, idempotent.

`request_erasure` reads the number (any writing, with a default region), records the request in the ledger (blind
index, masked form, who, when; the sealed number only until the job ends) and starts the `privacy.erase` job. The
job works in committed steps with a checkpoint, so a killed worker resumes where it was:

1. rows keyed by the blind index (`places.erase_rows`), in one transaction;
2. every free-text / JSON column of every table, in batches of rows, scrubbed by `Matcher`;
3. every stored file (uploads and produced CSV / XLSX), one file per step (`files.erase_from_file`).

The ledger row then holds the counts per place and no longer holds the sealed number. Running it again for the same
number finds nothing and reports zeros. No audit entry ever holds the plaintext: the masked form and the ledger id.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any

from sqlalchemy import Column, func, select, update
from sqlalchemy.orm import Session

from phoneops.core.audit import audit
from phoneops.core.db import session_scope, utcnow
from phoneops.core.errors import NotFound, ValidationFailed
from phoneops.core.jobs import JobContext, create_job
from phoneops.core.models import StoredFile
from phoneops.core.security import Principal, Role
from phoneops.core.storage import get_storage
from phoneops.numbers.normalize import normalize
from phoneops.numbers.vault import get_vault, mask
from phoneops.privacy import places
from phoneops.privacy.files import erase_from_file
from phoneops.privacy.matching import Matcher
from phoneops.privacy.models import DONE, FAILED, QUEUED, RUNNING, Erasure
from phoneops.settings import get_settings

KIND = "privacy.erase"


def read_number(raw: str, region: str | None) -> tuple[str, str]:
    """(E.164, region used); a clear 422 for an unknown region or a value that is not a valid number."""
    import phonenumbers

    chosen = (region or get_settings().default_region or "").strip().upper()
    if chosen not in phonenumbers.SUPPORTED_REGIONS:
        raise ValidationFailed(f"unknown region code {region!r}: use an ISO 3166 code such as GB or US",
                               code="invalid_region")
    if not isinstance(raw, str) or not raw.strip():
        raise ValidationFailed("give the number to erase", code="invalid_number")
    found = normalize(raw, chosen)
    if found.e164 is None:
        raise ValidationFailed(f"not a valid phone number ({found.reason}); nothing was changed",
                               code="invalid_number", details={"reason": str(found.reason)})
    return found.e164, chosen


def request_erasure(session: Session, actor: Principal, raw: str, region: str | None = None) -> Erasure:
    e164, chosen = read_number(raw, region)
    vault = get_vault()
    index = vault.index(e164)
    record = Erasure(blind_index=index, masked=mask(e164), country=normalize(e164, chosen).country,
                     region=chosen, sealed=vault.seal(e164, index), status=QUEUED,
                     requested_by=actor.username[:64], counts={})
    session.add(record)
    session.flush()
    job = create_job(session, actor, KIND, {"erasure_id": record.id, "actor": actor.username},
                     title=f"Erase {record.masked}")
    record.job_id = job.id
    audit(session, actor, "privacy.erase.request", "erasure", record.id, {"number": record.masked, "job_id": job.id})
    return record


def get_erasure(session: Session, erasure_id: int) -> Erasure:
    record = session.get(Erasure, erasure_id)
    if record is None:
        raise NotFound(f"no erasure {erasure_id}")
    return record


def list_erasures(session: Session, limit: int = 100) -> list[Erasure]:
    query = select(Erasure).order_by(Erasure.id.desc()).limit(max(1, min(limit, 1000)))
    return list(session.scalars(query))


@dataclass
class ErasedCheck:
    erased: bool
    last_erased_at: str | None
    requests: int


def was_erased(session: Session, raw: str, region: str | None = None) -> ErasedCheck:
    """Whether a number was erased (from the ledger, by blind index)."""
    e164, _ = read_number(raw, region)
    return erased_check(session, get_vault().index(e164))


def erased_check(session: Session, index: bytes) -> ErasedCheck:
    rows = list(session.scalars(select(Erasure).where(Erasure.blind_index == index, Erasure.status == DONE)))
    last = max((r.finished_at for r in rows if r.finished_at), default=None)
    return ErasedCheck(bool(rows), last.isoformat() if last else None, len(rows))


def erased_blind_indexes(session: Session) -> frozenset[bytes]:
    """Every erased number's blind index (erasures are rare: a provider sync loads them once per run)."""
    return frozenset(session.scalars(select(Erasure.blind_index).where(Erasure.status == DONE)))


def erased_indexes(session: Session, indexes: list[bytes]) -> set[bytes]:
    """Which of these blind indexes were erased (for ingestion code that must not bring a number back)."""
    if not indexes:
        return set()
    found: set[bytes] = set()
    for start in range(0, len(indexes), 1000):
        chunk = indexes[start:start + 1000]
        found.update(session.scalars(select(Erasure.blind_index).where(Erasure.blind_index.in_(chunk))))
    return found


# --- the job --------------------------------------------------------------------------------------------------


def _encode_key(value: Any) -> Any:
    if isinstance(value, bytes):
        return {"hex": value.hex()}
    if isinstance(value, date):
        return {"date": value.isoformat()}
    return value


def _decode_key(value: Any) -> Any:
    if isinstance(value, dict) and "hex" in value:
        return bytes.fromhex(value["hex"])
    if isinstance(value, dict) and "date" in value:
        return date.fromisoformat(value["date"])
    return value


def _add(counts: dict[str, Any], key: str, value: int) -> None:
    if value:
        counts[key] = int(counts.get(key, 0)) + value


def _scrub_batch(session: Session, matcher: Matcher, table: Any, key: Column[Any], columns: list[Column[Any]],
                 after: Any) -> tuple[Any, int, bool]:
    """One batch of one table: (last key, values replaced, more rows to read)."""
    seen = 0
    last = after
    replaced = 0
    for pk, values in places.scan_batch(session, table, key, columns, after):
        seen += 1
        last = pk
        changes: dict[str, Any] = {}
        for name, value in values.items():
            if value is None:
                continue
            new, hits = matcher.scrub(value)
            if hits:
                changes[name] = new[: columns_length(table, name)] if isinstance(new, str) else new
                replaced += hits
        if changes:
            session.execute(update(table).where(key == pk).values(**changes))
    return last, replaced, seen >= places.TEXT_BATCH


def columns_length(table: Any, name: str) -> int | None:
    length = getattr(table.c[name].type, "length", None)
    return int(length) if length else None


def _actor(ctx: JobContext) -> Principal:
    return Principal(ctx.created_by, str(ctx.params.get("actor") or "system"), Role.admin, via="job")


@dataclass
class _Run:
    """The erase job's state between committed steps (all of it goes into the checkpoint)."""

    ctx: JobContext
    erasure_id: int
    matcher: Matcher
    actor: Principal
    counts: dict[str, Any]
    done: int
    total: int

    def step(self, session: Session, checkpoint: dict[str, Any], message: str) -> None:
        self.done += 1
        self.total = max(self.total, self.done)
        self.ctx.step(session, checkpoint={**checkpoint, "counts": self.counts, "done": self.done,
                                           "total": self.total},
                      done=self.done, total=self.total, counters=self.counts, message=message)


def _files_count() -> int:
    with session_scope() as session:
        return int(session.scalar(select(func.count()).select_from(StoredFile)
                                  .where(StoredFile.status != "deleted")) or 0)


def _text_phase(run: _Run, position: int, after: Any) -> None:
    tables = places.text_columns()
    while position < len(tables):
        table, key, columns = tables[position]
        with session_scope() as session:
            last, replaced, more = _scrub_batch(session, run.matcher, table, key, columns, after)
            _add(run.counts, f"text:{table.name}", replaced)
            if more:  # the same table again from `last`: progress counts tables, not batches
                state = {"phase": "text", "table": position, "after": _encode_key(last), "counts": run.counts,
                         "done": run.done, "total": run.total}
                run.ctx.step(session, checkpoint=state)
                after = last
                continue
            position, after = position + 1, None
            run.step(session, {"phase": "text", "table": position, "after": None}, f"text of {table.name} scanned")


def _file_phase(run: _Run, after_file: str) -> None:
    storage = get_storage()
    while True:
        with session_scope() as session:
            row = session.scalar(
                select(StoredFile).where(StoredFile.status != "deleted", StoredFile.id > after_file)
                .order_by(StoredFile.id).limit(1)
            )
            if row is None:
                return
            try:
                outcome = erase_from_file(session, storage, row, run.matcher)
            except NotFound:
                _add(run.counts, "files_missing", 1)
            else:
                _add(run.counts, "files_scanned", 1)
                if outcome.kind == "skipped":
                    _add(run.counts, "files_skipped", 1)
                if outcome.rows_removed:
                    _add(run.counts, "files_rewritten", 1)
                    _add(run.counts, "file_rows_removed", outcome.rows_removed)
                    audit(session, run.actor, "privacy.erase.file", "file", row.id,
                          {"erasure_id": run.erasure_id, "rows_removed": outcome.rows_removed})
            after_file = row.id
            run.step(session, {"phase": "files", "file_after": after_file}, f"file {row.id} scanned")


def run_erasure(ctx: JobContext) -> dict[str, Any]:
    """The `privacy.erase` job: rows, then text (batches per table), then files (one per step); resumable."""
    erasure_id = int(ctx.params["erasure_id"])
    with session_scope() as session:
        record = get_erasure(session, erasure_id)
        if record.sealed is None:  # finished before (a redelivered message): nothing left to do
            return {"erasure_id": erasure_id, "counts": record.counts}
        e164 = get_vault().open(record.sealed, record.blind_index)
        index, region = record.blind_index, record.region
        record.status = RUNNING
    checkpoint = dict(ctx.checkpoint)
    phase = checkpoint.get("phase", "rows")
    run = _Run(ctx, erasure_id, Matcher(e164, [region, get_settings().default_region]), _actor(ctx),
               dict(checkpoint.get("counts", {})), int(checkpoint.get("done", 0)),
               int(checkpoint.get("total", 0)) or 1 + len(places.text_columns()) + _files_count())
    if phase == "rows":
        with session_scope() as session:
            for place, count in places.erase_rows(session, index).items():
                _add(run.counts, place, count)
            run.step(session, {"phase": "text", "table": 0, "after": None}, "rows keyed by the number erased")
        phase = "text"
    if phase == "text":
        _text_phase(run, int(checkpoint.get("table", 0)), _decode_key(checkpoint.get("after")))
        phase = "files"
    _file_phase(run, str(checkpoint.get("file_after") or ""))  # only a files-phase checkpoint has one
    with session_scope() as session:
        record = get_erasure(session, erasure_id)
        record.status, record.counts, record.sealed, record.finished_at = DONE, run.counts, None, utcnow()
        audit(session, run.actor, "privacy.erase", "erasure", erasure_id,
              {"number": record.masked, "counts": run.counts})
    return {"erasure_id": erasure_id, "counts": run.counts}


def mark_failed(erasure_id: int, error: str) -> None:
    """The job ended without finishing: the sealed number is dropped too (request the erasure again)."""
    with session_scope() as session:
        session.execute(update(Erasure).where(Erasure.id == erasure_id, Erasure.status != DONE)
                        .values(status=FAILED, error=error[:2000], sealed=None, finished_at=utcnow()))


def erasures_for(session: Session, blind_index: bytes) -> list[dict[str, Any]]:
    """Erasure requests for one number, newest first (for a number's story page)."""
    rows = session.scalars(
        select(Erasure).where(Erasure.blind_index == blind_index).order_by(Erasure.requested_at.desc())
    )
    return [{"id": e.id, "status": e.status, "masked": e.masked, "country": e.country, "requested_by": e.requested_by,
             "requested_at": e.requested_at.isoformat(),
             "finished_at": e.finished_at.isoformat() if e.finished_at else None, "error": e.error}
            for e in rows]
