"""`phoneops numbers ...`: look up, set statuses, import, export, OS rules, link tokens."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from phoneops.cli import _bootstrap, cli_actor, console, fail, follow_job
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
                  title="history")  # fmt: skip
    for e in status.get("history", []):
        table.add_row(e["at"][:19], e["verdict"] or "-", e["status"] or "none", e["authority"], e["source"] or "",
                      e["reason"] or "", e["actor"], e["note"] or "")  # fmt: skip
    console.print(table)
    hlr = Table("looked up (UTC)", "live status", "network", "outcome", title=f"HLR results ({len(story.hlr)})")
    for h in story.hlr[:20]:
        hlr.add_row(h["looked_up_at"][:19], h["live_status"], h["current_network"],
                    f"{h['outcome']} {h['reason'] or ''}".strip())  # fmt: skip
    console.print(hlr)
    voluum = story.voluum
    console.print(f"tracker: {voluum['traffic_rows']} traffic rows, {voluum['traffic_visits']} visits, "
                  f"{len(voluum['conversions'])} conversions"
                  + (f", latest live event {voluum['live']['event_at'][:19]}" if voluum["live"] else ""))  # fmt: skip
    for c in voluum["conversions"][:10]:
        console.print(f"  {str(c['postback_at'] or '')[:19]} {c['kind']} {c['country'] or '?'} {c['offer_name']}")
    console.print(f"broadcasts (by campaign and day): {len(story.broadcasts)}; Ongage: "
                  + (", ".join(f"{o['kind']} {o['status']}" for o in story.ongage) or "never sent"))  # fmt: skip
    used = story.cleaning
    console.print("main database: " + (f"since {used['added_at'][:19]} (cleaning run {used['run_id']})" if used
                                       else "no") + f"; imports: {len(story.imports)}")  # fmt: skip
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


@app.command("import")
def import_file(
    path: Path,
    target: Annotated[str, typer.Option(help="blacklist or monitor")],
    region: Annotated[str | None, typer.Option()] = None,
) -> None:
    """Import a CSV (phone, reason, source, ...) into the blacklist or the monitor list."""
    from phoneops.core.db import session_scope
    from phoneops.core.storage import get_storage
    from phoneops.numbers.imports import import_numbers
    from phoneops.numbers.router import region_or_default

    _bootstrap()
    if not path.is_file():
        console.print(f"[red]no such file: {path}[/red]")
        raise typer.Exit(2)
    try:
        with session_scope() as session:
            actor = cli_actor()
            stored = get_storage().save_bytes(session, actor, path.read_bytes(), kind="import", original_name=path.name)
            record = import_numbers(session, actor, stored, target, region=region_or_default(region))
            summary = (record.rows, record.added, record.already_listed, record.rejected, record.result_file_id)
    except AppError as exc:
        raise fail(exc) from None
    console.print(
        f"rows {summary[0]}: added {summary[1]}, already listed {summary[2]}, rejected {summary[3]}"
        f" (result file {summary[4]})"
    )


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
