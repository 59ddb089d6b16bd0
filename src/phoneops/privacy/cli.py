"""`phoneops privacy ...`: erase a number, check the ledger, purge raw rows past their retention."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.table import Table

from phoneops.core.commands import bootstrap as _bootstrap
from phoneops.core.commands import cli_actor, console, fail, run_here_or_queue
from phoneops.core.errors import AppError

NAME = "privacy"
app = typer.Typer(help="Privacy: erase a number everywhere, the erasure ledger, retention purge.",
                  no_args_is_help=True)


@app.command("erase")
def erase_number(
    number: str,
    region: Annotated[str | None, typer.Option(help="Default region for national writings")] = None,
    yes: Annotated[bool, typer.Option("--yes", help="Confirm: erasure cannot be undone")] = False,
    queue: Annotated[bool, typer.Option(help="Leave the job to workers instead of running it here")] = False,
) -> None:
    """Erase one number everywhere (rows, text, stored files); prints what was removed per place."""
    from phoneops.core.db import session_scope
    from phoneops.privacy import erase

    _bootstrap()
    try:
        erase.read_number(number, region)
    except AppError as exc:
        raise fail(exc) from None
    if not yes:
        typer.confirm("Erase this number everywhere? This cannot be undone", abort=True)
    try:
        with session_scope() as session:
            record = erase.request_erasure(session, cli_actor(), number, region)
            erasure_id, job_id, masked = record.id, record.job_id, record.masked
    except AppError as exc:
        raise fail(exc) from None
    console.print(f"erasure {erasure_id} of {masked}")
    assert job_id is not None
    status = run_here_or_queue(job_id, queue)
    if status == "queued":
        return
    with session_scope() as session:
        record = erase.get_erasure(session, erasure_id)
        counts = dict(record.counts)
    table = Table("place", "removed")
    for place, count in sorted(counts.items()):
        table.add_row(place, str(count))
    console.print(table if counts else "nothing held this number")
    raise typer.Exit(0 if status == "succeeded" else 1)


@app.command("check")
def check(number: str, region: Annotated[str | None, typer.Option()] = None) -> None:
    """Whether a number was erased (from the ledger)."""
    from phoneops.core.db import session_scope
    from phoneops.privacy import erase

    _bootstrap()
    try:
        with session_scope() as session:
            found = erase.was_erased(session, number, region)
    except AppError as exc:
        raise fail(exc) from None
    if found.erased:
        console.print(f"erased ({found.requests} time(s), last at {found.last_erased_at})")
    else:
        console.print("not erased")


@app.command("ledger")
def ledger(limit: int = 50) -> None:
    """The latest erasures: masked number, status, who, when, what was removed."""
    from phoneops.core.db import session_scope
    from phoneops.privacy import erase

    _bootstrap()
    table = Table("id", "number", "status", "by", "requested", "removed")
    with session_scope() as session:
        for e in erase.list_erasures(session, limit):
            table.add_row(str(e.id), e.masked, e.status, e.requested_by, e.requested_at.isoformat(timespec="seconds"),
                          ", ".join(f"{k}={v}" for k, v in sorted(e.counts.items())))
    console.print(table)


@app.command("purge")
def purge(dry_run: Annotated[bool, typer.Option("--dry-run", help="Only count what would be purged")] = False) -> None:
    """Purge raw tracker events and raw HLR rows older than their retention settings (0 keeps forever)."""
    from phoneops.privacy import retention

    _bootstrap()
    summary = retention.purge(cli_actor(), dry_run=dry_run)
    if summary.tracker_days == 0 and summary.hlr_days == 0:
        console.print("retention is off (RETENTION_TRACKER_EVENTS_DAYS=0, RETENTION_HLR_RAW_DAYS=0): nothing purged")
        return
    verb = "would purge" if dry_run else "purged"
    table = Table("rows", verb)
    for name, count in summary.deleted.items():
        table.add_row(name, str(count))
    console.print(table)
    console.print(json.dumps({"tracker_cutoff": summary.tracker_cutoff, "hlr_cutoff": summary.hlr_cutoff}))
