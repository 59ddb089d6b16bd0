"""`phoneops hlr ...`: look numbers up (a file or a list), follow, confirm, resume, download; risky operators."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table

from phoneops.core.commands import bootstrap as _bootstrap
from phoneops.core.commands import cli_actor, console, err, fail, follow_job
from phoneops.core.errors import AppError

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from phoneops.core.security import Principal

NAME = "hlr"
app = typer.Typer(help="HLR live checks: batch lookups that never pay twice, risky operators.", no_args_is_help=True)
risky_app = typer.Typer(help="The risky-operator list.", no_args_is_help=True)
app.add_typer(risky_app, name="risky")


def _print(lookup: dict[str, Any]) -> None:
    e = lookup["estimate"]
    console.print(f"[bold]HLR lookup {lookup['id']}[/bold] {lookup['title']} ({lookup['mode']}): "
                  f"[bold]{lookup['status'].replace('_', ' ')}[/bold]")
    console.print(f"  {e['rows']:,} rows, {e['invalid']:,} invalid, {e['duplicates']:,} duplicates -> "
                  f"{e['numbers']:,} numbers; {e['fresh']:,} with a result younger than {e['ttl_days']} days; "
                  f"{e['to_lookup']:,} to look up ≈ {e['credits_estimate']} credits "
                  f"(budget {e['budget']:,})")
    if e["opted_out"] or e["not_mobile"]:
        kinds = ", ".join(f"{k.replace('_', ' ')} {v:,}" for k, v in e["not_mobile_types"].items())
        console.print(f"  left out, never paid: {e['opted_out']:,} opted out, {e['not_mobile']:,} not mobile"
                      + (f" ({kinds})" if kinds else "") + f" -> saves ≈ {e['credits_saved']} credits")
    if e["in_review"] or e["recently_paid"]:
        console.print(
            f"  of those, {e['in_review']:,} in review or in flight in another lookup (free if they were "
            f"paid), {e['recently_paid']:,} paid within 30 days but older than the TTL (paid again)"
        )
    console.print(f"  looked up {lookup['looked_up']:,}, needs review {lookup['review']:,}, failed "
                  f"{lookup['failed']:,}, credits spent {lookup['credits_spent']}")
    if lookup["error"]:
        err.print(f"  [red]{lookup['error']}[/red]")
    elif lookup["message"]:
        console.print(f"  {lookup['message']}")
    outcomes = lookup["breakdown"].get("outcomes") or {}
    if outcomes:
        console.print("  outcomes: " + ", ".join(f"{k} {v:,}" for k, v in outcomes.items()))


def _show(lookup_id: int) -> dict[str, Any]:
    from phoneops.core.db import session_scope
    from phoneops.hlr.lookups import describe_lookup, get_lookup

    with session_scope() as session:
        data = describe_lookup(session, get_lookup(session, lookup_id))
        job = data.pop("job")
        data["job_id"] = job.id if job is not None else None
        return data


def _check_path(path: Path | None) -> None:
    if path is not None and not path.is_file():
        err.print(f"[red]no such file: {path}[/red]")
        raise typer.Exit(2)


def _stored_file(session: Session, actor: Principal, path: Path | None, file_id: str | None) -> str:
    """The stored file to read: PATH uploaded now, or the given --file-id."""
    from phoneops.core.storage import get_storage

    if path is not None:
        return get_storage().save_bytes(session, actor, path.read_bytes(), kind="upload", original_name=path.name).id
    assert file_id is not None
    return file_id


def _after_start(lookup_id: int, wait: bool) -> None:
    data = _show(lookup_id)
    _print(data)
    if data["status"] == "awaiting_confirmation":
        console.print(f"nothing is paid until confirmed: [bold]phoneops hlr confirm {lookup_id}[/bold] (or --yes)")
        raise typer.Exit(3)
    if wait and data["job_id"]:
        status = follow_job(data["job_id"])
        _print(_show(lookup_id))
        raise typer.Exit(0 if status == "succeeded" else 1)


@app.command()
def lookup(
    path: Annotated[Path | None, typer.Argument(help="A CSV/XLSX file to upload and look up")] = None,
    file_id: Annotated[str | None, typer.Option(help="A stored file instead (e.g. a cleaned file)")] = None,
    column: Annotated[str | None, typer.Option(help="Phone column: header name or 1-based number")] = None,
    region: Annotated[str | None, typer.Option(help="Default region for national numbers")] = None,
    list_status: Annotated[
        str | None, typer.Option("--list", help="Look up a list: blacklist, monitor, whitelist")
    ] = None,
    country: Annotated[str | None, typer.Option(help="With --list: only this country (ISO code)")] = None,
    mode: Annotated[str, typer.Option(help="batch or realtime")] = "batch",
    batch_size: Annotated[int | None, typer.Option(help="Numbers per provider batch")] = None,
    yes: Annotated[bool, typer.Option("--yes", help="Confirm a cost above the budget")] = False,
    estimate_only: Annotated[bool, typer.Option("--estimate", help="Estimate only; start later with confirm")] = False,
    include_non_mobile: Annotated[bool, typer.Option(
        "--include-non-mobile", help="Also look up numbers known not to be mobile (fixed line, toll-free)")] = False,
    wait: Annotated[bool, typer.Option(help="Follow the job with a progress bar")] = True,
) -> None:
    """Estimate, then look up the numbers of a file or a list (only those without a fresh result)."""
    from phoneops.core.db import session_scope
    from phoneops.hlr.lookups import FileSource, ListSource, create_lookup

    _bootstrap()
    if sum(x is not None for x in (path, file_id, list_status)) != 1:
        err.print("[red]give exactly one of: a PATH, --file-id or --list[/red]")
        raise typer.Exit(2)
    _check_path(path)
    try:
        with session_scope() as session:
            actor = cli_actor()
            source: FileSource | ListSource
            if list_status is not None:
                source = ListSource(list_status, country)
            else:
                source = FileSource(_stored_file(session, actor, path, file_id), column, region)
            lookup_id = create_lookup(session, actor, source, mode=mode, batch_size=batch_size, confirm=yes,
                                      start=not estimate_only, include_non_mobile=include_non_mobile).id
    except AppError as exc:
        raise fail(exc) from None
    _after_start(lookup_id, wait)


@app.command()
def estimate(
    path: Annotated[Path | None, typer.Argument(help="A CSV/XLSX file to upload and estimate")] = None,
    file_id: Annotated[str | None, typer.Option(help="A stored file's id instead of a PATH")] = None,
    column: Annotated[str | None, typer.Option(help="Phone column: header name or 1-based number")] = None,
    region: Annotated[str | None, typer.Option(help="Default region for national numbers")] = None,
    include_non_mobile: Annotated[bool, typer.Option(
        "--include-non-mobile", help="Count numbers known not to be mobile as looked up")] = False,
    queue: Annotated[bool, typer.Option("--queue", help="Leave the job to the workers instead of running it here")]
    = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the estimate as JSON")] = False,
) -> None:
    """Estimate what looking a file up would cost, as a background job with progress (nothing is stored
    but the job; a file of millions takes seconds). Start the lookup itself with `phoneops hlr lookup`."""
    import json

    from phoneops.core.commands import run_here_or_queue
    from phoneops.core.db import session_scope
    from phoneops.core.jobs import get_job
    from phoneops.hlr.estimates import start_estimate
    from phoneops.hlr.lookups import FileSource

    _bootstrap()
    if (path is None) == (file_id is None):
        err.print("[red]give exactly one of: a PATH or --file-id[/red]")
        raise typer.Exit(2)
    _check_path(path)
    try:
        with session_scope() as session:
            actor = cli_actor()
            job_id = start_estimate(session, actor, FileSource(_stored_file(session, actor, path, file_id), column,
                                                               region),
                                    include_non_mobile=include_non_mobile).id
    except AppError as exc:
        raise fail(exc) from None
    if run_here_or_queue(job_id, queue) == "queued":
        return
    with session_scope() as session:
        job = get_job(session, job_id)
        status, result = job.status, dict(job.result or {})
    if status != "succeeded":
        raise typer.Exit(1)
    if as_json:
        console.print_json(json.dumps(result))
        return
    e = result
    console.print(f"[bold]HLR estimate[/bold] of {e['source']['file_name']} ({e['source']['phone_column']}, "
                  f"region {e['source']['region']})")
    console.print(f"  {e['rows']:,} rows, {e['invalid']:,} invalid, {e['duplicates']:,} duplicates -> "
                  f"{e['numbers']:,} numbers; {e['fresh']:,} with a result younger than {e['ttl_days']} days; "
                  f"{e['to_lookup']:,} to look up ≈ {e['credits_estimate']} credits (budget {e['budget']:,})")
    console.print(f"  left out, never paid: {e['opted_out']:,} opted out, {e['not_mobile']:,} not mobile "
                  f"-> saves ≈ {e['credits_saved']} credits")
    if e["in_review"] or e["recently_paid"]:
        console.print(f"  of those, {e['in_review']:,} in review or in flight in another lookup, "
                      f"{e['recently_paid']:,} paid within 30 days but older than the TTL (paid again)")


@app.command()
def confirm(lookup_id: int, wait: Annotated[bool, typer.Option()] = True) -> None:
    """Confirm a lookup waiting for confirmation (its cost is above the budget) and start it."""
    _act(lookup_id, "confirm", wait)


@app.command()
def resume(lookup_id: int, wait: Annotated[bool, typer.Option()] = True) -> None:
    """Resume a stopped lookup (out of credit after a top-up, failed, cancelled): nothing is paid twice."""
    _act(lookup_id, "resume", wait)


@app.command("retry-review")
def retry_review(lookup_id: int, wait: Annotated[bool, typer.Option()] = True) -> None:
    """Look the numbers in review up again: their interrupted call may have been paid (an explicit decision)."""
    _act(lookup_id, "release-review", wait)


@app.command()
def cancel(lookup_id: int) -> None:
    """Stop a lookup at its next step."""
    _act(lookup_id, "cancel", False)


def _act(lookup_id: int, action: str, wait: bool) -> None:
    from phoneops.core.db import session_scope
    from phoneops.hlr import lookups

    _bootstrap()
    call = {"confirm": lookups.confirm_lookup, "resume": lookups.resume_lookup, "cancel": lookups.cancel_lookup,
            "release-review": lookups.release_review}
    try:
        with session_scope() as session:
            call[action](session, cli_actor(), lookup_id)
    except AppError as exc:
        raise fail(exc) from None
    _after_start(lookup_id, wait)


@app.command()
def status(lookup_id: int) -> None:
    """Show a lookup: estimate, progress, credits, breakdown."""
    _bootstrap()
    try:
        _print(_show(lookup_id))
    except AppError as exc:
        raise fail(exc) from None


@app.command("list")
def list_lookups(limit: int = 20) -> None:
    """Recent lookups."""
    from phoneops.core.db import session_scope
    from phoneops.hlr.lookups import describe_lookup, list_lookups

    _bootstrap()
    table = Table("id", "status", "numbers", "fresh", "looked up", "review", "credits", "title")
    with session_scope() as session:
        for row in list_lookups(session, limit):
            d = describe_lookup(session, row)
            table.add_row(str(d["id"]), d["status"], f"{d['estimate']['numbers']:,}", f"{d['estimate']['fresh']:,}",
                          f"{d['looked_up']:,}", str(d["review"]), d["credits_spent"], d["title"])
    console.print(table)


@app.command()
def download(
    lookup_id: int,
    output: Annotated[Path, typer.Option("-o", "--output", help="Where to write the file")],
    raw: Annotated[bool, typer.Option("--raw", help="The raw results file instead of the clean file")] = False,
) -> None:
    """Write a lookup's clean file (or raw results) to OUTPUT (an audited export)."""
    from phoneops.core import storage
    from phoneops.core.audit import audit
    from phoneops.core.db import session_scope
    from phoneops.core.errors import NotFound
    from phoneops.hlr.lookups import get_lookup

    _bootstrap()
    try:
        with session_scope() as session:
            found = get_lookup(session, lookup_id)
            file_id = found.raw_file_id if raw else found.clean_file_id
            if not file_id:
                raise NotFound(f"HLR lookup {lookup_id} has no {'raw' if raw else 'clean'} file yet")
            row = storage.get_file(session, file_id)
            storage.get_storage().copy_to(row, output)
            audit(session, cli_actor(), "file.download", "file", row.id, {"name": row.original_name, "to": "cli"})
    except AppError as exc:
        raise fail(exc) from None
    console.print(f"wrote {output}")


# --- risky operators ------------------------------------------------------------------------------------


@risky_app.command("list")
def risky_list(query: Annotated[str | None, typer.Argument(help="Search")] = None) -> None:
    from phoneops.core.db import session_scope
    from phoneops.hlr.risky import count_operators, list_operators

    _bootstrap()
    table = Table("id", "name", "key", "mcc-mnc", "source", "note")
    with session_scope() as session:
        for o in list_operators(session, query):
            table.add_row(str(o.id), o.name, o.normalized, o.mccmnc, o.source, o.note or "")
        total = count_operators(session)
    console.print(table)
    console.print(f"{total} risky operators")


@risky_app.command("add")
def risky_add(
    name: Annotated[str, typer.Option(help="Network name")] = "",
    mccmnc: Annotated[str, typer.Option(help="MCC-MNC, 5 or 6 digits")] = "",
    note: Annotated[str | None, typer.Option()] = None,
) -> None:
    from phoneops.core.db import session_scope
    from phoneops.hlr.risky import add_operator

    _bootstrap()
    try:
        with session_scope() as session:
            row = add_operator(session, cli_actor(), name, mccmnc, note)
            console.print(f"added {row.id}: {row.name} ({row.normalized or '-'} / {row.mccmnc or '-'})")
    except AppError as exc:
        raise fail(exc) from None


@risky_app.command("remove")
def risky_remove(operator_id: int) -> None:
    from phoneops.core.db import session_scope
    from phoneops.hlr.risky import remove_operator

    _bootstrap()
    try:
        with session_scope() as session:
            remove_operator(session, cli_actor(), operator_id)
    except AppError as exc:
        raise fail(exc) from None
    console.print(f"removed {operator_id}")


@risky_app.command("restore")
def risky_restore() -> None:
    """Put back the original's names that were removed."""
    from phoneops.core.db import session_scope
    from phoneops.hlr.risky import restore_seed

    _bootstrap()
    with session_scope() as session:
        count = restore_seed(session, cli_actor())
    console.print(f"restored {count} names")
