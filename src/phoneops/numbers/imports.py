"""Manual imports: a CSV of numbers into the blacklist or the monitor list, with a per-row result file.

Required columns phone, reason, source; optional OS version, user agent, IP (headers matched loosely:
case, spaces, underscores and dashes ignored). A file that cannot be parsed, or lacks a required
column, changes nothing. Otherwise good rows are added and every bad row is reported with its reason.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from phoneops.core.audit import audit
from phoneops.core.csvio import TableError, iter_rows, neutralise, normalise_header, sniff_table
from phoneops.core.errors import NotFound, ValidationFailed
from phoneops.core.models import StoredFile
from phoneops.core.security import Principal
from phoneops.core.storage import get_storage
from phoneops.numbers.lists import SEVERITY, Authority, Verdict, apply_verdicts, states_of_indexes
from phoneops.numbers.models import ManualImport
from phoneops.numbers.normalize import normalize
from phoneops.numbers.vault import get_vault

TARGETS = ("blacklist", "monitor")
REQUIRED = ("phone", "reason", "source")
OPTIONAL = {
    "osversion": "os_version",
    "os": "os_version",
    "useragent": "user_agent",
    "ua": "user_agent",
    "ip": "ip",
    "ipaddress": "ip",
}
MAX_ROWS = 2_000_000


def _columns(header: list[str]) -> dict[str, int]:
    found: dict[str, int] = {}
    for position, name in enumerate(header):
        key = normalise_header(name)
        key = OPTIONAL.get(key, key)
        if key in (*REQUIRED, "os_version", "user_agent", "ip") and key not in found:
            found[key] = position
    return found


def import_numbers(
    session: Session,
    actor: Principal,
    stored: StoredFile,
    target: str,
    *,
    region: str,
) -> ManualImport:
    if target not in TARGETS:
        raise ValidationFailed(f"target must be one of {', '.join(TARGETS)}")
    path = get_storage().session_local_path(session, stored)  # NotFound when deleted or missing
    try:
        info = sniff_table(path)
        rows = iter_rows(path, info)
        header = next(rows, None)
    except TableError as exc:
        raise ValidationFailed(f"{stored.original_name}: {exc}") from None
    if header is None:
        raise ValidationFailed(f"{stored.original_name}: the file is empty")
    columns = _columns(header)
    missing = [name for name in REQUIRED if name not in columns]
    if missing:
        raise ValidationFailed(
            f"{stored.original_name}: missing required column(s): {', '.join(missing)}",
            details={"missing": missing, "header": header[:50]},
        )

    parsed: list[tuple[list[str], str | None, str | None, dict[str, Any]]] = []  # row, e164, problem, fields
    try:
        for row in rows:
            if not any(cell.strip() for cell in row):
                continue
            if len(parsed) >= MAX_ROWS:
                raise ValidationFailed(f"{stored.original_name}: more than {MAX_ROWS} rows")
            fields = {name: (row[pos].strip() if pos < len(row) else "") for name, pos in columns.items()}
            absent = [name for name in REQUIRED if not fields.get(name)]
            if absent:
                parsed.append((row, None, f"missing field: {', '.join(absent)}", fields))
                continue
            result = normalize(fields["phone"], region)
            if result.e164 is None:
                parsed.append((row, None, f"invalid: {result.reason}", fields))
            else:
                parsed.append((row, result.e164, None, fields))
    except UnicodeDecodeError:
        raise ValidationFailed(f"{stored.original_name}: the file's text encoding is not readable") from None
    if not parsed:
        raise ValidationFailed(f"{stored.original_name}: the file has a header but no rows")

    vault = get_vault()
    valid = [(i, e164) for i, (_, e164, problem, _) in enumerate(parsed) if e164 and not problem]
    current = states_of_indexes(session, vault.index_many([e for _, e in valid]))
    outcomes: list[str] = [problem or "" for _, _, problem, _ in parsed]
    seen: set[str] = set()
    verdicts: list[Verdict] = []
    for i, e164 in valid:
        if e164 in seen:
            outcomes[i] = "duplicate in file"
            continue
        seen.add(e164)
        status, authority = current.get(vault.index(e164), (None, None))
        listed = SEVERITY[status] >= SEVERITY[target]
        if listed and authority == Authority.manual.value:
            outcomes[i] = f"already listed ({status})"
            continue
        fields = parsed[i][3]
        evidence = {k: fields[k] for k in ("os_version", "user_agent", "ip") if fields.get(k)}
        evidence.update(import_file=stored.original_name[:255], file_id=stored.id)
        # An automatically listed number becomes a manual decision (never loosened: the stronger list stays).
        decided = status if listed else target
        verdicts.append(
            Verdict(e164, decided, Authority.manual, fields["reason"][:64], fields["source"][:32], evidence)
        )
        outcomes[i] = f"already listed ({status}), now a manual decision" if listed else f"added to {target}"
    apply_verdicts(session, actor, verdicts)

    added = sum(1 for o in outcomes if o.startswith("added"))
    already = sum(1 for o in outcomes if o.startswith("already"))
    result_name = f"result_{Path(stored.original_name).stem}.csv"
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow([neutralise(h) for h in [*header, "e164", "result"]])
    for (row, number, _, _), outcome in zip(parsed, outcomes, strict=True):
        writer.writerow([neutralise(v) for v in [*row, number or "", outcome]])
    result_file = get_storage().save_bytes(
        session,
        actor,
        buffer.getvalue().encode("utf-8"),
        kind="import_result",
        original_name=result_name,
        content_type="text/csv",
    )
    record = ManualImport(
        target=target,
        file_id=stored.id,
        result_file_id=result_file.id,
        original_name=stored.original_name,
        rows=len(parsed),
        added=added,
        already_listed=already,
        rejected=len(parsed) - added - already,
        created_by=actor.username,
    )
    session.add(record)
    session.flush()
    audit(
        session,
        actor,
        "numbers.import",
        "manual_import",
        record.id,
        {"target": target, "file": stored.original_name, "added": added, "rejected": record.rejected},
    )
    return record


def list_imports(session: Session, limit: int = 100) -> list[ManualImport]:
    return list(session.scalars(select(ManualImport).order_by(ManualImport.id.desc()).limit(limit)))


def get_import(session: Session, import_id: int) -> ManualImport:
    record = session.get(ManualImport, import_id)
    if record is None:
        raise NotFound(f"no import {import_id}")
    return record
