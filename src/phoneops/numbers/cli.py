"""`phoneops numbers ...`: look up, set statuses, import, export, OS rules, link tokens."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from phoneops.core.commands import bootstrap as _bootstrap
from phoneops.core.commands import cli_actor, console, fail, follow_job
from phoneops.core.errors import AppError

NAME = "numbers"
app = typer.Typer(help="Phone numbers: lists, imports, exports, OS rules, link tokens.", no_args_is_help=True)


@app.command()
def lookup(
    number: str,
    region: Annotated[str | None, typer.Option()] = None,
    as_json: Annotated[bool, typer.Option("--json", help="The whole story as JSON (as the API gives it).")] = False,
) -> None:
    """A number's whole story: status and history, tracker, HLR, broadcasts, Ongage, cleaning, erasure."""
    import json

    from phoneops.core.db import session_scope
    from phoneops.numbers.router import region_or_default
    from phoneops.numbers.story import story_for_number

    _bootstrap()
    try:
        with session_scope() as session:
            story = story_for_number(session, cli_actor(), number, region_or_default(region))
    except AppError as exc:
        raise fail(exc) from None
    if as_json:
        console.print_json(json.dumps(story.as_dict(), default=str))
        return
    status = story.status or {}
    console.print(
        f"[bold]{story.number}[/bold] ({story.country or '?'}) status: [bold]{status.get('status') or 'on no list'}"
        f"[/bold] reason: {status.get('reason') or '-'} authority: {status.get('authority') or '-'}"
        + ("" if story.known else " (not in the number store)")
    )
    table = Table("when", "source said", "status after", "authority", "source", "reason", "by", "note",
                  title="history")
    for e in status.get("history", []):
        table.add_row(e["at"][:19], e["verdict"] or "-", e["status"] or "none", e["authority"], e["source"] or "",
                      e["reason"] or "", e["actor"], e["note"] or "")
    console.print(table)
    hlr = Table("looked up (UTC)", "live status", "network", "outcome", title=f"HLR results ({len(story.hlr)})")
    for h in story.hlr[:20]:
        hlr.add_row(h["looked_up_at"][:19], h["live_status"], h["current_network"],
                    f"{h['outcome']} {h['reason'] or ''}".strip())
    console.print(hlr)
    voluum = story.voluum
    console.print(f"tracker: {voluum['traffic_rows']} traffic rows, {voluum['traffic_visits']} visits, "
                  f"{len(voluum['conversions'])} conversions"
                  + (f", latest live event {voluum['live']['event_at'][:19]}" if voluum["live"] else ""))
    for c in voluum["conversions"][:10]:
        console.print(f"  {str(c['postback_at'] or '')[:19]} {c['kind']} {c['country'] or '?'} {c['offer_name']}")
    console.print(f"broadcasts (by campaign and day): {len(story.broadcasts)}; Ongage: "
                  + (", ".join(f"{o['kind']} {o['status']}" for o in story.ongage) or "never sent"))
    used = story.cleaning
    console.print("main database: " + (f"since {used['added_at'][:19]} (cleaning run {used['run_id']})" if used
                                       else "no") + f"; imports: {len(story.imports)}")
    for e in story.erasures:
        console.print(f"erasure: {e['status']} requested {e['requested_at'][:19]} by {e['requested_by']}")


@app.command("set")
def set_status(
    number: str,
    status: Annotated[str, typer.Argument(help="blacklist, monitor, whitelist or none")],
    reason: Annotated[str, typer.Option()],
    region: Annotated[str | None, typer.Option()] = None,
) -> None:
    """Set a number's status (a manual decision)."""
    from phoneops.core.db import session_scope
    from phoneops.numbers.lists import set_status as do_set
    from phoneops.numbers.router import region_or_default

    _bootstrap()
    try:
        with session_scope() as session:
            result = do_set(
                session,
                cli_actor(),
                number,
                None if status == "none" else status,
                reason,
                region=region_or_default(region),
            )
    except AppError as exc:
        raise fail(exc) from None
    console.print(f"changed: {result.changed}, overruled: {result.overruled}")


def _show_import(import_id: int) -> tuple[str, str | None]:
    """Print an import's state and preview; returns (status, error)."""
    from phoneops.core.db import session_scope
    from phoneops.numbers.imports import get_import

    with session_scope() as session:
        record = get_import(session, import_id)
        status, error, preview, undo_result = record.status, record.error, dict(record.preview), dict(record.undo)
        summary = (f"import {record.id} ({record.kind} -> {record.target}, {record.original_name}): "
                   f"[bold]{record.status}[/bold]")
    console.print(summary)
    if error:
        console.print(f"[red]{error}[/red]")
    counts = preview.get("counts") or {}
    if counts:
        console.print(
            f"rows {counts.get('rows', 0)}: new {counts.get('new', 0)}, change {counts.get('change', 0)}, "
            f"unchanged {counts.get('unchanged', 0)}, refused {counts.get('refused', 0)}"
        )
        for transition, count in (preview.get("transitions") or {}).items():
            console.print(f"  {transition}: {count}")
        for reason, count in (preview.get("refused_reasons") or {}).items():
            console.print(f"  refused, {reason}: {count}")
        table = Table("category", "line", "number", "from", "to", "outcome")
        for category, rows in (preview.get("samples") or {}).items():
            for row in rows:
                table.add_row(category, str(row["line"]), row["number"], row["from"] or "", row["to"] or "",
                              row["outcome"])
        console.print(table)
    if undo_result:
        console.print(f"undo: restored {undo_result.get('restored', 0)}, refused {undo_result.get('refused', 0)}")
        for item in undo_result.get("refused_numbers") or []:
            console.print(f"  refused {item['number']}: changed later by {item['changed_by']} ({item['reason']})")
    return status, error


def _run(job_id: str | None) -> None:
    from phoneops.core.commands import run_here_or_queue

    if job_id:
        run_here_or_queue(job_id, queue=False)


@app.command("import")
def import_file(
    path: Path,
    target: Annotated[str, typer.Option(help="list kind: blacklist, monitor or whitelist")] = "",
    kind: Annotated[str, typer.Option(help="list, optout (phone, reason) or inbound (phone, message)")] = "list",
    region: Annotated[str | None, typer.Option()] = None,
    preview: Annotated[bool, typer.Option("--preview", help="Only show what would change; apply nothing")] = False,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Apply without asking after the preview")] = False,
) -> None:
    """Preview a list import (then apply it when confirmed): new / change / unchanged / refused."""
    from phoneops.core.db import session_scope
    from phoneops.core.storage import get_storage
    from phoneops.numbers.imports import start_import
    from phoneops.numbers.router import region_or_default

    _bootstrap()
    if not path.is_file():
        console.print(f"[red]no such file: {path}[/red]")
        raise typer.Exit(2)
    try:
        with session_scope() as session:
            actor = cli_actor()
            stored = get_storage().save_bytes(session, actor, path.read_bytes(), kind="import", original_name=path.name)
            record = start_import(session, actor, stored, kind=kind, target=target or None,
                                  region=region_or_default(region))
            import_id, job_id = record.id, record.job_id
    except AppError as exc:
        raise fail(exc) from None
    _run(job_id)
    status, _ = _show_import(import_id)
    if status != "preview":
        raise typer.Exit(1)
    if preview:
        console.print(f"nothing changed; apply with `phoneops numbers apply {import_id}`")
        return
    if not yes and not typer.confirm(f"Apply import {import_id}?", default=False):
        console.print(f"not applied; apply later with `phoneops numbers apply {import_id}`")
        return
    apply(import_id)


@app.command()
def apply(import_id: int) -> None:
    """Apply a previewed import."""
    from phoneops.core.db import session_scope
    from phoneops.numbers.imports import confirm

    _bootstrap()
    try:
        with session_scope() as session:
            job_id = confirm(session, cli_actor(), import_id).job_id
    except AppError as exc:
        raise fail(exc) from None
    _run(job_id)
    status, _ = _show_import(import_id)
    if status != "applied":
        raise typer.Exit(1)
    console.print(f"undo with `phoneops numbers undo {import_id}`")


@app.command()
def undo(import_id: int) -> None:
    """Undo an applied import: every number it changed goes back (numbers changed since are refused, listed)."""
    from phoneops.core.db import session_scope
    from phoneops.numbers.imports import undo as do_undo

    _bootstrap()
    try:
        with session_scope() as session:
            record = do_undo(session, cli_actor(), import_id)
            job_id = record.job_id if record.status == "undoing" else None
            if job_id is None:
                console.print(f"import {import_id} is already {record.status}; nothing to do")
    except AppError as exc:
        raise fail(exc) from None
    _run(job_id)
    status, _ = _show_import(import_id)
    if status != "undone":
        raise typer.Exit(1)


@app.command("imports")
def list_imports_cmd(limit: int = 20) -> None:
    """Recent imports and their state."""
    from phoneops.core.db import session_scope
    from phoneops.numbers.imports import list_imports

    _bootstrap()
    table = Table("id", "kind", "target", "file", "status", "rows", "new", "changed", "unchanged", "refused", "by")
    with session_scope() as session:
        for r in list_imports(session, limit):
            table.add_row(str(r.id), r.kind, r.target, r.original_name, r.status, str(r.rows), str(r.added),
                          str(r.changed), str(r.already_listed), str(r.rejected), r.created_by)
    console.print(table)


@app.command("optout")
def optout_add(
    number: str,
    reason: Annotated[str, typer.Option(help="sms_stop, email_unsubscribe, complaint or manual")],
    detail: Annotated[str | None, typer.Option()] = None,
    region: Annotated[str | None, typer.Option()] = None,
) -> None:
    """Record an opt-out for a number (it sticks: no import or sync lifts it)."""
    from phoneops.core.db import session_scope
    from phoneops.numbers.optouts import add
    from phoneops.numbers.router import region_or_default

    _bootstrap()
    try:
        with session_scope() as session:
            result = add(session, cli_actor(), number, reason, region=region_or_default(region), source="cli",
                         detail=detail)
    except AppError as exc:
        raise fail(exc) from None
    console.print("opted out" if result.recorded else "already opted out")


@app.command("lift-optout")
def optout_lift(
    number: str,
    reason: Annotated[str, typer.Option(help="why the opt-out no longer applies (audited)")],
    region: Annotated[str | None, typer.Option()] = None,
) -> None:
    """Lift a number's opt-out (an admin decision, audited)."""
    from phoneops.core.db import session_scope
    from phoneops.numbers.optouts import lift
    from phoneops.numbers.router import region_or_default

    _bootstrap()
    try:
        with session_scope() as session:
            lift(session, cli_actor(), number, reason, region=region_or_default(region))
    except AppError as exc:
        raise fail(exc) from None
    console.print("opt-out lifted")


@app.command("optouts")
def optouts_list(lifted: bool = False, limit: int = 100) -> None:
    """Opt-outs (active ones, or --lifted)."""
    from phoneops.core.db import session_scope
    from phoneops.numbers.optouts import counts, list_optouts

    _bootstrap()
    table = Table("number", "reason", "source", "since", "by", "lifted")
    with session_scope() as session:
        for row in list_optouts(session, cli_actor(), active=not lifted, limit=limit):
            table.add_row(row["number"], row["reason"], row["source"], row["opted_out_at"][:19], row["recorded_by"],
                          row["lift_reason"] or "")
        totals = counts(session)
    console.print(table)
    console.print(", ".join(f"{k}: {v}" for k, v in totals.items()))


@app.command()
def export(status: str, out: Annotated[Path | None, typer.Option(help="Copy the CSV here")] = None) -> None:
    """Export a list to CSV (a background job; numbers in full since the CLI acts as admin)."""
    from phoneops.core.db import session_scope
    from phoneops.core.jobs import get_job, run_job
    from phoneops.core.storage import get_file, get_storage
    from phoneops.numbers.exports import start_export

    _bootstrap()
    try:
        with session_scope() as session:
            job_id = start_export(session, cli_actor(), status).id
    except AppError as exc:
        raise fail(exc) from None
    run_job(job_id)
    follow_job(job_id)
    with session_scope() as session:
        job = get_job(session, job_id)
        if job.status != "succeeded":
            raise typer.Exit(1)
        if out is not None:
            get_storage().copy_to(get_file(session, str(job.result["file_id"])), out)
            console.print(f"{job.result['rows']} rows written to {out}")


@app.command()
def rules(
    set_from: Annotated[Path | None, typer.Option("--set", help="Replace the rules from a JSON file")] = None,
) -> None:
    """Show (or replace) the OS classification rules."""
    from phoneops.core.db import session_scope
    from phoneops.numbers.rules import replace_rules, rules_as_dicts

    _bootstrap()
    try:
        with session_scope() as session:
            if set_from is not None:
                replace_rules(session, cli_actor(), json.loads(set_from.read_text()), note=f"cli: {set_from.name}")
            console.print_json(json.dumps(rules_as_dicts(session)))
    except AppError as exc:
        raise fail(exc) from None


@app.command()
def encrypt(values: list[str], region: Annotated[str | None, typer.Option()] = None) -> None:
    """Turn numbers into link tokens."""
    from phoneops.numbers.normalize import normalize
    from phoneops.numbers.router import region_or_default
    from phoneops.numbers.vault import get_vault

    _bootstrap()
    cipher = get_vault().cipher
    for value in values:
        result = normalize(value, region_or_default(region))
        print(f"{value}\t{cipher.encrypt(result.e164) if result.e164 else 'invalid: ' + str(result.reason)}")


@app.command()
def decrypt(tokens: list[str]) -> None:
    """Turn link tokens back into numbers."""
    from phoneops.numbers.vault import get_vault

    _bootstrap()
    cipher = get_vault().cipher
    for token in tokens:
        try:
            print(f"{token}\t{cipher.decrypt(token)}")
        except AppError as exc:
            print(f"{token}\terror: {exc.message}")
