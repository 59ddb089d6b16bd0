# Over 400 lines: an import's preview, apply and undo share one row model and one transaction rule.
"""List imports you can preview and undo (docs/imports.md).

Kinds of import, one pipeline:
- `list`: a CSV (phone, reason, source; optional OS version, user agent, IP) into the blacklist, the monitor
  list or the whitelist, as manual decisions;
- `optout`: a CSV of opt-outs (phone, reason in numbers.optouts.REASONS; optional source, detail);
- `inbound`: a CSV of inbound SMS (phone + message): replies that are STOP keywords become `sms_stop` opt-outs;
- `bulk`: numbers sent to the API's bulk set, stored as a one-column file, all set to one status.

Every import is first a preview (a background job): how many numbers are new, change (from -> to), are
unchanged or refused (and why), with a sample of each and a per-row result file. Nothing changes until the
user confirms (`apply`, a job; one transaction, so an import is applied whole or not at all). An applied
import records, per number it changed, the state before; `undo` (a job with progress, resumable) restores
each number's previous status and authority exactly, as history events ("undone: import 42"), and refuses,
listing them, the numbers a later change touched. Undoing twice is harmless.
Headers are matched loosely (case, spaces, underscores and dashes ignored). A file that cannot be parsed
fails its preview with the line number, and changes nothing.
"""

from __future__ import annotations

import csv
import io
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import bindparam, func, insert, or_, select, update
from sqlalchemy.orm import Session

from phoneops.core.audit import audit
from phoneops.core.csvio import TableError, iter_rows, neutralise, normalise_header, sniff_table
from phoneops.core.db import core_table, execute_many, session_scope, utcnow
from phoneops.core.errors import AppError, Conflict, Forbidden, NotFound, ValidationFailed
from phoneops.core.jobs import JobContext, create_job, job_handler
from phoneops.core.load import big_heap
from phoneops.core.models import StoredFile
from phoneops.core.security import Principal, Role
from phoneops.core.storage import get_storage
from phoneops.numbers import optouts
from phoneops.numbers.lists import SEVERITY, Authority, Touched, Verdict, apply_verdicts
from phoneops.numbers.models import ImportChange, ManualImport, NumberEvent, NumberOptOut, PhoneNumber
from phoneops.numbers.normalize import normalize_column
from phoneops.numbers.vault import get_vault, mask
from phoneops.settings import get_settings
from phoneops.sources import service as sources
from phoneops.webhooks import service as webhooks

KINDS = ("list", "optout", "inbound", "bulk")
TARGETS = ("blacklist", "monitor", "whitelist")
BULK_TARGETS = (*TARGETS, "none")
OPTOUT_TARGET = "opted_out"
MAX_ROWS = 2_000_000
SAMPLE = 10
BATCH = 5000
PREVIEW_KIND, APPLY_KIND, UNDO_KIND = "numbers.import_preview", "numbers.import_apply", "numbers.import_undo"
CATEGORIES = ("new", "change", "unchanged", "refused")

# header aliases (after normalise_header) per column
_ALIASES = {
    "phone": ("phone", "number", "msisdn", "mobile", "phonenumber", "e164", "from", "sender", "originator",
              "fromnumber", "sourceaddress", "sourceaddr"),
    "reason": ("reason",),
    "source": ("source",),
    "os_version": ("osversion", "os"),
    "user_agent": ("useragent", "ua"),
    "ip": ("ip", "ipaddress"),
    "detail": ("detail", "details", "note", "notes", "comment"),
    "message": ("message", "text", "body", "content", "sms", "reply", "messagetext", "messagebody"),
}
_REQUIRED = {"list": ("phone", "reason", "source"), "optout": ("phone", "reason"),
             "inbound": ("phone", "message"), "bulk": ("phone",)}


@dataclass
class Row:
    line: int
    cells: list[str]
    fields: dict[str, str]
    e164: str | None = None
    index: bytes | None = None  # the blind index of e164, computed once by plan()
    country: str | None = None  # its region (`normalize`'s, which is `country_of(e164)`)
    category: str = "refused"
    outcome: str = ""
    before: str | None = None
    after: str | None = None


@dataclass
class Plan:
    header: list[str]
    rows: list[Row] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        found = Counter(row.category for row in self.rows)
        return {"rows": len(self.rows), **{c: found.get(c, 0) for c in CATEGORIES}}


# --- reading a file ---------------------------------------------------------------------------------------


def _columns(header: list[str], kind: str) -> dict[str, int]:
    found: dict[str, int] = {}
    for position, name in enumerate(header):
        key = normalise_header(name)
        for column, aliases in _ALIASES.items():
            if key in aliases and column not in found:
                found[column] = position
                break
    return {k: v for k, v in found.items() if k in (*_REQUIRED[kind], *_optional(kind))}


def _optional(kind: str) -> tuple[str, ...]:
    return {"list": ("os_version", "user_agent", "ip"), "optout": ("source", "detail"), "inbound": (),
            "bulk": ()}[kind]


def _lines(path: Path, name: str) -> Iterator[tuple[int, list[str]]]:
    """(line number, cells) of every row; a CSV syntax error fails with its line number."""
    try:
        info = sniff_table(path)
    except TableError as exc:
        raise ValidationFailed(f"{name}: {exc}") from None
    if info.kind == "xlsx":
        try:
            for number, row in enumerate(iter_rows(path, info), start=1):
                yield number, row
        except TableError as exc:
            raise ValidationFailed(f"{name}: {exc}") from None
        return
    with path.open("r", encoding=info.encoding, errors="strict", newline="") as handle:
        reader = csv.reader(handle, delimiter=info.delimiter, strict=True)
        while True:
            try:
                row = next(reader)
            except StopIteration:
                return
            except csv.Error as exc:
                raise ValidationFailed(
                    f"{name}: line {reader.line_num}: malformed CSV ({exc})", details={"line": reader.line_num}
                ) from None
            except UnicodeDecodeError:
                raise ValidationFailed(
                    f"{name}: line {reader.line_num + 1}: text not readable as {info.encoding}",
                    details={"line": reader.line_num + 1},
                ) from None
            if any("\x00" in cell for cell in row):
                raise ValidationFailed(
                    f"{name}: line {reader.line_num}: binary content (NUL bytes)", details={"line": reader.line_num}
                )
            yield reader.line_num, row


def read_file(path: Path, name: str, kind: str) -> tuple[list[str], dict[str, int], list[Row]]:
    """The header, the columns found and every non-empty row with its fields (no database work)."""
    lines = _lines(path, name)
    first = next(lines, None)
    if first is None:
        raise ValidationFailed(f"{name}: the file is empty")
    header = first[1]
    columns = _columns(header, kind)
    missing = [c for c in _REQUIRED[kind] if c not in columns]
    if missing:
        raise ValidationFailed(
            f"{name}: missing required column(s): {', '.join(missing)}",
            details={"missing": missing, "header": header[:50]},
        )
    rows: list[Row] = []
    width = len(header)
    for line, cells in lines:
        if not any(cell.strip() for cell in cells):
            continue
        if len(cells) > width and any(cell.strip() for cell in cells[width:]):
            raise ValidationFailed(
                f"{name}: line {line}: {len(cells)} fields but the header has {width} (misaligned row)",
                details={"line": line},
            )
        if len(rows) >= MAX_ROWS:
            raise ValidationFailed(f"{name}: more than {MAX_ROWS} rows")
        fields = {col: (cells[pos].strip() if pos < len(cells) else "") for col, pos in columns.items()}
        rows.append(Row(line=line, cells=cells, fields=fields))
    if not rows:
        raise ValidationFailed(f"{name}: the file has a header but no rows")
    if kind == "optout":
        unknown = [(r.line, r.fields.get("reason", "")) for r in rows
                   if r.fields.get("reason", "").strip().lower() not in optouts.REASONS]
        if unknown:
            shown = "; ".join(f"line {line}: {value!r}" for line, value in unknown[:10])
            more = f" (and {len(unknown) - 10} more)" if len(unknown) > 10 else ""
            raise ValidationFailed(
                f"{name}: unknown opt-out reason(s): {shown}{more}. Allowed reasons: {', '.join(optouts.REASONS)}",
                details={"allowed": list(optouts.REASONS), "lines": [line for line, _ in unknown[:100]]},
            )
    return header, columns, rows


def check_header(path: Path, name: str, kind: str) -> None:
    """Fail fast (before any row is read) on an empty file, a binary file or missing columns."""
    lines = _lines(path, name)
    first = next(lines, None)
    if first is None:
        raise ValidationFailed(f"{name}: the file is empty")
    columns = _columns(first[1], kind)
    missing = [c for c in _REQUIRED[kind] if c not in columns]
    if missing:
        raise ValidationFailed(
            f"{name}: missing required column(s): {', '.join(missing)}",
            details={"missing": missing, "header": first[1][:50]},
        )
    if next(lines, None) is None:
        raise ValidationFailed(f"{name}: the file has a header but no rows")


# --- planning: what each row would do ----------------------------------------------------------------------


def _normalise(rows: list[Row], region: str, kind: str) -> None:
    for row in rows:
        absent = [c for c in _REQUIRED[kind] if not row.fields.get(c)]
        if absent:
            row.outcome = f"missing field: {', '.join(absent)}"
    todo = [row for row in rows if not row.outcome]
    for start in range(0, len(todo), 50_000):
        chunk = todo[start : start + 50_000]
        frame = normalize_column([row.fields["phone"] for row in chunk], region)
        for row, e164, reason, country in zip(chunk, frame["e164"].to_list(), frame["reason"].to_list(),
                                              frame["country"].to_list(), strict=True):
            if e164 is None:
                row.outcome = f"invalid: {reason}"
            else:
                row.e164, row.country = e164, country
    seen: dict[str, int] = {}
    for row in rows:
        if row.e164 is None:
            continue
        if row.e164 in seen:
            row.outcome, row.e164 = f"duplicate in file (line {seen[row.e164]})", None
        else:
            seen[row.e164] = row.line


def _target(record: ManualImport) -> str | None:
    target = record.target
    return None if target == "none" else target


def plan(session: Session, record: ManualImport, path: Path) -> Plan:
    """Read the import's file and decide every row against the numbers as they are now."""
    header, _, rows = read_file(path, record.original_name, record.kind)
    region = record.region or get_settings().default_region
    _normalise(rows, region, record.kind)
    result = Plan(header, rows)
    valid = [row for row in rows if row.e164]
    if record.kind in ("list", "bulk"):
        target = _target(record)
        indexes = _index(valid)
        state: dict[bytes, tuple[str | None, str | None]] = {}
        for start in range(0, len(indexes), BATCH):
            for index, status, authority in session.execute(
                select(PhoneNumber.blind_index, PhoneNumber.status, PhoneNumber.authority).where(
                    PhoneNumber.blind_index.in_(indexes[start : start + BATCH])
                )
            ):
                state[index] = (status, authority)
        for row, index in zip(valid, indexes, strict=True):
            known = index in state
            status = state[index][0] if known else None
            row.before, row.after = status, target
            if not known:
                if target is None:
                    row.category, row.outcome = "unchanged", "not on any list"
                else:
                    row.category, row.outcome = "new", f"new: added to {target}"
            elif record.kind == "list" and target != "whitelist" and SEVERITY[status] >= SEVERITY[target]:
                if state[index][1] == Authority.manual.value:
                    row.category, row.outcome = "unchanged", f"already listed ({status})"
                else:  # docs/lists.md: an automatic listing becomes a manual decision; the stronger list stays
                    row.after = status
                    row.category = "change"
                    row.outcome = f"already listed ({status}), now a manual decision"
            elif status == target:
                row.category, row.outcome = "unchanged", f"already {status or 'on no list'}"
            else:
                row.category, row.outcome = "change", f"change: {status or 'none'} -> {target or 'none'}"
    else:
        candidates = []
        for row in valid:
            if record.kind == "inbound" and not optouts.is_stop_reply(row.fields.get("message", "")):
                row.outcome, row.e164 = "not a STOP reply (ignored)", None
                continue
            candidates.append(row)
        indexes = _index(candidates)
        stored: set[bytes] = set()
        active: dict[bytes, str] = {}
        for start in range(0, len(indexes), BATCH):
            batch = indexes[start : start + BATCH]
            stored.update(session.scalars(select(PhoneNumber.blind_index).where(PhoneNumber.blind_index.in_(batch))))
            active.update(optouts.opted_out(session, batch))
        for row, index in zip(candidates, indexes, strict=True):
            reason = _optout_reason(record, row)
            row.after = f"{OPTOUT_TARGET} ({reason})"
            if index in active:
                row.category, row.outcome, row.before = "unchanged", f"already opted out ({active[index]})", row.after
            elif index not in stored:
                row.category, row.outcome = "new", f"new: opted out ({reason})"
            else:
                row.category, row.outcome = "change", f"change: opted out ({reason})"
    for row in rows:
        if not row.e164:
            row.category = "refused"
    return result


def _index(rows: list[Row]) -> list[bytes]:
    """The blind indexes of rows with a number, in order, each kept on its row (preview, apply and the
    sources page reuse them: an HMAC per number, computed once per plan)."""
    indexes = get_vault().index_many([row.e164 for row in rows if row.e164])
    for row, index in zip(rows, indexes, strict=True):
        row.index = index
    return indexes


def _optout_reason(record: ManualImport, row: Row) -> str:
    if record.kind == "inbound":
        return "sms_stop"
    return row.fields.get("reason", "").strip().lower()


def _preview_of(plan_: Plan, reveal: bool) -> dict[str, Any]:
    counts = plan_.counts()
    samples: dict[str, list[dict[str, Any]]] = {c: [] for c in CATEGORIES}
    transitions: Counter[str] = Counter()
    refused: Counter[str] = Counter()
    for row in plan_.rows:
        if row.category in ("change", "new"):
            transitions[f"{row.before or 'none'} -> {row.after or 'none'}"] += 1
        if row.category == "refused":
            refused[row.outcome.split(" (line")[0].split(":")[0]] += 1
        if len(samples[row.category]) < SAMPLE:
            value = row.e164 or row.fields.get("phone", "")
            samples[row.category].append({
                "line": row.line, "number": value if reveal else mask(value), "from": row.before, "to": row.after,
                "outcome": row.outcome, "key": row.index.hex() if row.e164 and row.index else "",
            })
    return {"counts": counts, "transitions": dict(transitions), "refused_reasons": dict(refused), "samples": samples}


def _result_file(session: Session, actor: Principal, record: ManualImport, plan_: Plan) -> StoredFile:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow([neutralise(h) for h in [*plan_.header, "line", "e164", "category", "result"]])
    for row in plan_.rows:
        writer.writerow([neutralise(v) for v in [*row.cells, row.line, row.e164 or "", row.category, row.outcome]])
    return get_storage().save_bytes(
        session, actor, buffer.getvalue().encode("utf-8"), kind="import_result",
        original_name=f"result_{Path(record.original_name).stem}.csv", content_type="text/csv",
    )


# --- starting, confirming, discarding, undoing ------------------------------------------------------------


def _actor_of(ctx: JobContext) -> Principal:
    return Principal(ctx.created_by, str(ctx.params.get("actor", "system")), Role(ctx.params.get("role", "operator")),
                     via="job")


def _job_params(actor: Principal, import_id: int, **extra: Any) -> dict[str, Any]:
    return {"import_id": import_id, "actor": actor.username, "role": actor.role.value, **extra}


def start_import(
    session: Session,
    actor: Principal,
    stored: StoredFile,
    *,
    kind: str = "list",
    target: str | None = None,
    region: str,
    params: dict[str, Any] | None = None,
    source_label: str | None = None,
) -> ManualImport:
    """Check the file's header and queue its preview (nothing changes until `confirm`); `source_label` names
    the list on the sources page (its numbers are recorded there when the import is applied)."""
    if kind not in KINDS:
        raise ValidationFailed(f"kind must be one of {', '.join(KINDS)}")
    if kind == "list" and target not in TARGETS:
        raise ValidationFailed(f"target must be one of {', '.join(TARGETS)}")
    if kind == "bulk" and target not in BULK_TARGETS:
        raise ValidationFailed(f"status must be one of {', '.join(BULK_TARGETS)}")
    if kind in ("optout", "inbound"):
        target = OPTOUT_TARGET
    path = get_storage().session_local_path(session, stored)  # NotFound when deleted or missing
    check_header(path, stored.original_name, kind)
    record = ManualImport(
        kind=kind, target=str(target), file_id=stored.id, original_name=stored.original_name, status="previewing",
        region=region, params=params or {}, created_by=actor.username, preview={}, undo={},
    )
    session.add(record)
    session.flush()
    sources.label_list(session, actor, source_label, "import", record.id, stored.original_name)
    job = create_job(session, actor, PREVIEW_KIND, _job_params(actor, record.id),
                     title=f"Preview import {record.id} ({stored.original_name})")
    record.job_id = job.id
    audit(session, actor, "numbers.import.preview", "manual_import", record.id,
          {"kind": kind, "target": target, "file": stored.original_name})
    return record


def start_bulk(
    session: Session, actor: Principal, numbers: Sequence[str], status: str | None, reason: str, *, region: str
) -> ManualImport:
    """An API bulk set as an import: the numbers are kept as a one-column file and previewed first."""
    if not reason or not reason.strip():
        raise ValidationFailed("a reason is required")
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["phone"])
    writer.writerows([value] for value in numbers)
    stored = get_storage().save_bytes(session, actor, buffer.getvalue().encode("utf-8"), kind="import",
                                      original_name="api-bulk-set.csv", content_type="text/csv")
    return start_import(session, actor, stored, kind="bulk", target=status or "none", region=region,
                        params={"reason": reason.strip()[:64], "source": "API"})


def confirm(session: Session, actor: Principal, import_id: int) -> ManualImport:
    """Apply a previewed import (a job); confirming twice queues it once."""
    record = _locked(session, import_id)
    _may_act(actor, record, "apply")
    if record.status in ("applying", "applied"):
        return record
    if record.status != "preview":
        raise Conflict(f"import {import_id} is {record.status}: only a finished preview can be applied")
    record.status = "applying"
    job = create_job(session, actor, APPLY_KIND, _job_params(actor, import_id),
                     title=f"Apply import {import_id} ({record.original_name})")
    record.job_id = job.id
    audit(session, actor, "numbers.import.apply", "manual_import", import_id, {"kind": record.kind})
    return record


def discard(session: Session, actor: Principal, import_id: int) -> ManualImport:
    record = _locked(session, import_id)
    _may_act(actor, record, "discard")
    if record.status == "discarded":
        return record
    if record.status not in ("preview", "failed", "previewing"):
        raise Conflict(f"import {import_id} is {record.status}: only a preview can be discarded")
    record.status = "discarded"
    audit(session, actor, "numbers.import.discard", "manual_import", import_id, {})
    return record


def undo(session: Session, actor: Principal, import_id: int) -> ManualImport:
    """Queue the undo of an applied import; asking again (or after it finished) changes nothing."""
    record = _locked(session, import_id)
    _may_act(actor, record, "undo")
    if record.status in ("undoing", "undone"):
        return record
    if record.status != "applied":
        raise Conflict(f"import {import_id} is {record.status}: only an applied import can be undone")
    days = get_settings().import_undo_days
    if record.applied_at is None or record.applied_at < utcnow() - timedelta(days=days):
        raise Conflict(f"import {import_id} was applied more than {days} days ago: too old to undo "
                       "(IMPORT_UNDO_DAYS)")
    record.status = "undoing"
    total = session.scalar(select(func.count()).select_from(ImportChange).where(ImportChange.import_id == import_id))
    job = create_job(session, actor, UNDO_KIND, _job_params(actor, import_id),
                     title=f"Undo import {import_id} ({record.original_name})", total=total or 0)
    record.job_id = job.id
    audit(session, actor, "numbers.import.undo", "manual_import", import_id, {"kind": record.kind})
    return record


def _locked(session: Session, import_id: int) -> ManualImport:
    record = session.scalar(select(ManualImport).where(ManualImport.id == import_id).with_for_update())
    if record is None:
        raise NotFound(f"no import {import_id}")
    return record


def _may_act(actor: Principal, record: ManualImport, what: str) -> None:
    if record.kind in ("optout", "inbound") and what == "undo" and not actor.can(Role.admin):
        raise Forbidden("undoing an opt-out import lifts opt-outs: admins only")
    if actor.can(Role.admin) or (actor.can(Role.operator) and record.created_by == actor.username):
        return
    raise Forbidden(f"only an admin or {record.created_by} (who ran import {record.id}) can {what} it")


# --- the jobs ------------------------------------------------------------------------------------------------


def _fail(import_id: int, message: str) -> None:
    with session_scope() as session:
        record = session.get(ManualImport, import_id)
        if record is not None and record.status in ("previewing", "applying"):
            record.status = "failed" if record.status == "previewing" else "preview"
            record.error = message


def _import_page(params: dict[str, Any]) -> tuple[str, str]:
    return f"Import {params['import_id']}", f"/numbers/imports/{int(params['import_id'])}"


@job_handler(PREVIEW_KIND, title="Import preview", max_attempts=3, origin=_import_page)
def _run_preview(ctx: JobContext) -> dict[str, Any]:
    import_id = int(ctx.params["import_id"])
    actor = _actor_of(ctx)
    try:
        with session_scope() as session:
            record = get_import(session, import_id)
            if record.status != "previewing":
                return {"import_id": import_id, "status": record.status}
            stored = session.get(StoredFile, record.file_id) if record.file_id else None
            if stored is None:
                raise NotFound(f"the file of import {import_id} is gone")
            path = get_storage().session_local_path(session, stored)
            ctx.step(session, message="reading the file")
            with big_heap():  # what the process holds now; then the plan's rows too (see core.load)
                plan_ = plan(session, record, path)
                with big_heap():
                    counts = plan_.counts()
                    record.preview = _preview_of(plan_, reveal=False)
                    record.rows, record.rejected = counts["rows"], counts["refused"]
                    record.added, record.already_listed = counts["new"], counts["unchanged"]
                    record.changed = counts["change"]
                    record.result_file_id = _result_file(session, actor, record, plan_).id
            record.status, record.error = "preview", None
            ctx.step(session, done=counts["rows"], total=counts["rows"], counters=counts, message="preview ready")
    except AppError as exc:
        _fail(import_id, exc.message)
        raise
    return {"import_id": import_id, **counts}


@dataclass(frozen=True)
class _Spec:
    id: int
    kind: str
    target: str | None
    params: dict[str, Any]
    name: str
    file_id: str | None


@job_handler(APPLY_KIND, title="Import apply", max_attempts=3, origin=_import_page)
def _run_apply(ctx: JobContext) -> dict[str, Any]:
    """Apply in batches of 5,000, each committed with its change records and the job's progress; a worker
    killed midway resumes by planning again (what was applied is then unchanged) and going on."""
    with big_heap():  # what the process holds now; the plan's rows too once planned (see core.load)
        return _apply(ctx)


def _apply(ctx: JobContext) -> dict[str, Any]:
    import_id = int(ctx.params["import_id"])
    actor = _actor_of(ctx)
    try:
        with session_scope() as session:
            record = get_import(session, import_id)
            if record.status != "applying":
                return {"import_id": import_id, "status": record.status}
            stored = session.get(StoredFile, record.file_id) if record.file_id else None
            if stored is None:
                raise NotFound(f"the file of import {import_id} is gone")
            plan_ = plan(session, record, get_storage().session_local_path(session, stored))
            spec = _Spec(record.id, record.kind, _target(record), dict(record.params or {}), record.original_name,
                         record.file_id)
    except AppError as exc:
        _fail(import_id, exc.message)
        raise
    with big_heap():  # the plan's rows live through every batch: not walked by each full collection
        return _apply_batches(ctx, import_id, actor, spec, plan_)


def _apply_batches(ctx: JobContext, import_id: int, actor: Principal, spec: _Spec, plan_: Plan) -> dict[str, Any]:
    todo = [row for row in plan_.rows if row.category in ("new", "change") and row.e164]
    changed = int(ctx.checkpoint.get("changed", 0))
    created = int(ctx.checkpoint.get("created", 0))
    done_before = int(ctx.checkpoint.get("done", 0))
    total = done_before + len(todo)
    for start in range(0, len(todo), BATCH):
        chunk = todo[start : start + BATCH]
        with session_scope() as session:
            if spec.kind in ("list", "bulk"):
                batch_changed, batch_created = _apply_list(session, actor, spec, chunk)
            else:
                batch_changed, batch_created = _apply_optouts(session, actor, spec, chunk)
            changed, created = changed + batch_changed, created + batch_created
            done = done_before + start + len(chunk)
            ctx.step(session, checkpoint={"changed": changed, "created": created, "done": done}, done=done,
                     total=total, counters={"changed": changed, "new_numbers": created},
                     message=f"applied {done:,} of {total:,}")
    with session_scope() as session:
        record = get_import(session, import_id)
        counts = plan_.counts()
        record.rows, record.rejected = counts["rows"], counts["refused"]
        record.changed, record.new_numbers = changed, created
        record.status, record.applied_at, record.error = "applied", utcnow(), None
        record.last_event_id = session.scalar(select(func.max(NumberEvent.id))) or 0
        audit(session, actor, "numbers.import.applied", "manual_import", import_id,
              {"kind": record.kind, "changed": changed, "new_numbers": created})
        if sources.label_of(session, "import", import_id):  # the list's valid numbers, by blind index only
            sources.record(session, "import", import_id, ((r.index, True) for r in plan_.rows if r.e164 and r.index))
        webhooks.notify(session, "import.applied", {
            "import_id": import_id, "kind": record.kind, "name": record.original_name, "rows": record.rows,
            "refused": record.rejected, "changed": changed, "new_numbers": created, "by": actor.username})
        ctx.step(session, done=total, total=total, counters={"changed": changed, "new_numbers": created},
                 message=f"applied: {changed:,} numbers changed ({created:,} new)")
    return {"import_id": import_id, "changed": changed, "new_numbers": created}


def _apply_list(session: Session, actor: Principal, spec: _Spec, chunk: list[Row]) -> tuple[int, int]:
    """The chunk's verdicts, with the plan's blind indexes, and one change record per number whose status,
    authority, reason or source they changed (or that they registered), from the states `apply_verdicts`
    read and wrote (no reads of the chunk before and after)."""
    verdicts, indexes, countries = [], [], []
    for row in chunk:
        assert row.e164 is not None
        assert row.index is not None
        evidence: dict[str, Any] = {}
        if spec.kind == "bulk":
            reason, source = str(spec.params.get("reason", "BULK")), "API"
        else:
            reason, source = row.fields["reason"][:64], row.fields["source"][:32]
            evidence = {k: row.fields[k] for k in ("os_version", "user_agent", "ip") if row.fields.get(k)}
        evidence.update(import_id=spec.id, import_file=spec.name[:255], file_id=spec.file_id)
        status = row.after if spec.kind == "list" else spec.target
        verdicts.append(Verdict(row.e164, status, Authority.manual, reason, source, evidence))
        indexes.append(row.index)
        countries.append(row.country)
    touched: list[Touched] = []
    apply_verdicts(session, actor, verdicts, indexes=indexes, countries=countries, touched=touched)
    changes = []
    created = 0
    for number in touched:
        was, now_ = number.before, number.after
        if was is not None and (was.status, was.authority, was.reason, was.source) == (
            now_.status, now_.authority, now_.reason, now_.source
        ):
            continue
        changes.append({
            "import_id": spec.id, "number_id": number.number_id, "what": "list", "existed": was is not None,
            "before_status": was.status if was else None, "before_authority": was.authority if was else None,
            "before_reason": was.reason if was else None, "before_source": was.source if was else None,
            "before_listed_at": number.before_listed_at if was else None,
            "before_last_verdict": number.before_last_verdict if was else None, "after_status": now_.status,
            "after_authority": now_.authority,
        })
        created += was is None
    if changes:
        execute_many(session, insert(core_table(ImportChange)), changes)
    return len(changes), created


def _apply_optouts(session: Session, actor: Principal, spec: _Spec, chunk: list[Row]) -> tuple[int, int]:
    source = "inbound_csv" if spec.kind == "inbound" else "import"
    entries = []
    for row in chunk:
        assert row.e164 is not None
        reason = "sms_stop" if spec.kind == "inbound" else row.fields.get("reason", "").strip().lower()
        detail = row.fields.get("detail") or (row.fields.get("message", "")[:60] if spec.kind == "inbound" else None)
        entries.append(optouts.OptOutEntry(row.e164, reason, (row.fields.get("source") or source)[:32],
                                           detail or None))
    result = optouts.record_optouts(session, actor, entries, import_id=spec.id, direct=True)
    changes = [
        {"import_id": spec.id, "number_id": number_id, "what": "optout", "existed": existed, "before_status": prev,
         "after_status": OPTOUT_TARGET}
        for number_id, existed, prev in result.touched
    ]
    if changes:
        session.execute(insert(core_table(ImportChange)), changes)
    return len(changes), result.new_numbers


@job_handler(UNDO_KIND, title="Import undo", max_attempts=5, origin=_import_page)
def _run_undo(ctx: JobContext) -> dict[str, Any]:
    import_id = int(ctx.params["import_id"])
    actor = _actor_of(ctx)
    with session_scope() as session:
        record = get_import(session, import_id)
        if record.status != "undoing":
            return {"import_id": import_id, "status": record.status, **record.undo}
        total = session.scalar(
            select(func.count()).select_from(ImportChange).where(ImportChange.import_id == import_id)
        )
        watermark = record.last_event_id or 0
    after = int(ctx.checkpoint.get("after", 0))
    counters: dict[str, Any] = dict(ctx.checkpoint.get("counters") or {"restored": 0, "refused": 0})
    refused_sample: list[dict[str, Any]] = list(ctx.checkpoint.get("refused_sample") or [])
    while True:
        with session_scope() as session:
            changes = session.execute(
                select(ImportChange.__table__).where(ImportChange.import_id == import_id, ImportChange.id > after)
                .order_by(ImportChange.id).limit(BATCH)
            ).all()
            if not changes:
                break
            restored, refused = _undo_batch(session, actor, import_id, list(changes), watermark)
            counters["restored"] += restored
            counters["refused"] += len(refused)
            refused_sample.extend(refused[: max(0, 100 - len(refused_sample))])
            after = changes[-1].id
            ctx.step(session, checkpoint={"after": after, "counters": counters, "refused_sample": refused_sample},
                     done=counters["restored"] + counters["refused"], total=total, counters=counters,
                     message=f"restored {counters['restored']:,}, refused {counters['refused']:,}")
    with session_scope() as session:
        record = get_import(session, import_id)
        record.status, record.undone_at, record.undone_by = "undone", utcnow(), actor.username
        record.undo = {**counters, "refused_numbers": refused_sample}
        audit(session, actor, "numbers.import.undone", "manual_import", import_id, counters)
        webhooks.notify(session, "import.undone", {"import_id": import_id, "kind": record.kind,
                                                   "restored": counters["restored"],
                                                   "refused": counters["refused"], "by": actor.username})
        ctx.step(session, message=f"undone: restored {counters['restored']:,}, refused {counters['refused']:,}")
    return {"import_id": import_id, **counters, "refused_numbers": refused_sample}


def _undo_batch(
    session: Session, actor: Principal, import_id: int, changes: list[Any], watermark: int
) -> tuple[int, list[dict[str, Any]]]:
    """Restore one batch; numbers a later change touched are left alone and returned (masked, with why)."""
    ids = [c.number_id for c in changes]
    opt_kind = changes[0].what == "optout"
    later_filter = (NumberEvent.source == optouts.EVENT_SOURCE) if opt_kind else or_(
        NumberEvent.source.is_(None), NumberEvent.source != optouts.EVENT_SOURCE)
    later: dict[int, tuple[str, str | None, str | None]] = {}
    for number_id, actor_name, reason, source in session.execute(
        select(NumberEvent.number_id, NumberEvent.actor, NumberEvent.reason, NumberEvent.source)
        .where(NumberEvent.number_id.in_(ids), NumberEvent.id > watermark, later_filter)
        .order_by(NumberEvent.id)
    ):
        later[number_id] = (actor_name, reason, source)
    numbers = {row.id: row for row in session.execute(
        select(PhoneNumber.id, PhoneNumber.status, PhoneNumber.authority, PhoneNumber.sealed, PhoneNumber.blind_index)
        .where(PhoneNumber.id.in_(ids)))}
    vault = get_vault()
    refused: list[dict[str, Any]] = []
    now = utcnow()
    label = f"undone: import {import_id}"
    updates: list[dict[str, Any]] = []
    events: list[dict[str, Any]] = []
    lifts: list[int] = []
    for change in changes:
        number = numbers.get(change.number_id)
        if number is None:
            continue  # erased since (privacy): nothing to restore
        if change.number_id in later:
            who, why, source = later[change.number_id]
            refused.append({"number": mask(vault.open(number.sealed, number.blind_index)),
                            "key": number.blind_index.hex(),
                            "changed_by": who, "reason": why, "source": source})
            continue
        if opt_kind:
            lifts.append(change.number_id)
            events.append({
                "number_id": change.number_id, "at": now, "status": number.status, "previous_status": number.status,
                "authority": number.authority or "manual", "reason": label[:64], "source": optouts.EVENT_SOURCE,
                "actor": actor.username[:64], "evidence": {"undo_of": import_id, "opt_out": "lifted"},
            })
            continue
        updates.append({
            "number_id": change.number_id, "status": change.before_status, "authority": change.before_authority,
            "reason": change.before_reason, "source": change.before_source, "listed_at": change.before_listed_at,
            "last_verdict": change.before_last_verdict, "updated_at": now,
        })
        events.append({
            "number_id": change.number_id, "at": now, "status": change.before_status, "verdict": change.before_status,
            "previous_status": number.status, "authority": change.before_authority or "manual",
            "reason": label[:64], "source": "UNDO", "actor": actor.username[:64], "evidence": {"undo_of": import_id},
        })
    if updates:
        table = core_table(PhoneNumber)
        session.execute(
            update(table).where(table.c.id == bindparam("number_id")).values(
                status=bindparam("status"), authority=bindparam("authority"), reason=bindparam("reason"),
                source=bindparam("source"), listed_at=bindparam("listed_at"), last_verdict=bindparam("last_verdict"),
                updated_at=bindparam("updated_at"),
            ),
            updates,
        )
    if lifts:
        session.execute(
            update(NumberOptOut).where(NumberOptOut.number_id.in_(lifts), NumberOptOut.state == "active")
            .values(state="lifted", lifted_at=now, lifted_by=actor.username[:64], lift_reason=label)
        )
    if events:
        session.execute(insert(core_table(NumberEvent)), events)
    return len(updates) + len(lifts), refused


# --- reading ---------------------------------------------------------------------------------------------------


def list_imports(session: Session, limit: int = 100) -> list[ManualImport]:
    return list(session.scalars(select(ManualImport).order_by(ManualImport.id.desc()).limit(limit)))


def get_import(session: Session, import_id: int) -> ManualImport:
    record = session.get(ManualImport, import_id)
    if record is None:
        raise NotFound(f"no import {import_id}")
    return record


def undo_deadline(record: ManualImport) -> str | None:
    if record.applied_at is None:
        return None
    return (record.applied_at + timedelta(days=get_settings().import_undo_days)).isoformat()
