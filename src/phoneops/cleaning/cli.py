"""`phoneops cleaning ...`: upload, clean (with a progress bar), stats, download, encrypt, archive, delete."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from phoneops.core.commands import bootstrap as _bootstrap
from phoneops.core.commands import cli_actor, console, fail, follow_job
from phoneops.core.errors import AppError

NAME = "cleaning"
app = typer.Typer(help="List cleaning: upload CSV/TSV/xlsx lists, clean them, download the results.",
                  no_args_is_help=True)

Region = Annotated[str | None, typer.Option(help="default region (ISO 3166), e.g. GB")]
Column = Annotated[str | None, typer.Option(help="phone column: header name or 1-based position")]


def _run_here(job_id: str, delay: float | None) -> None:
    from phoneops.core.jobs import run_job

    run_job(job_id)


def _upload(path: Path, purpose: str, region: str | None, column: str | None, header: str) -> int:
    from phoneops.cleaning.upload import upload_path
    from phoneops.core.db import session_scope

    if not path.is_file():
        console.print(f"[red]no such file: {path}[/red]")
        raise typer.Exit(2)
    try:
        with session_scope() as session:
            record = upload_path(session, cli_actor(), path, purpose=purpose, region=region, phone_column=column,
                                 header=header)
            file_id, columns, phone = record.id, record.columns, record.phone_column
    except AppError as exc:
        raise fail(exc) from None
    detected = columns[phone] if phone is not None else "not detected"
    console.print(f"file {file_id}: {len(columns)} columns, phone column: {detected}")
    return file_id


def _save(run_id: int, which: str, out_dir: Path) -> Path:
    from phoneops.cleaning.service import result_file
    from phoneops.core.db import session_scope
    from phoneops.core.storage import get_storage, safe_name

    with session_scope() as session:
        stored = result_file(session, cli_actor(), run_id, which)
        name = safe_name(stored.original_name)
    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / name
    get_storage().copy_to(stored, target)
    return target


def _show_stats(run_id: int) -> str:
    from phoneops.cleaning.service import get_run
    from phoneops.core.db import session_scope

    with session_scope() as session:
        run = get_run(session, run_id)
        status, stats, error, kind = run.status, dict(run.stats), run.error, run.kind
    if status != "succeeded":
        console.print(f"run {run_id}: [bold]{status}[/bold] {error or ''}")
        return status
    if kind == "clean":
        table = Table("outcome", "rows")
        for outcome, count in stats["outcomes"].items():
            table.add_row(outcome, f"{count:,}")
        console.print(table)
        countries = Table("country", "kept")
        for country, counts in list(stats["countries"].items())[:15]:
            countries.add_row(country, f"{counts.get('kept', 0):,}")
        console.print(countries)
    else:
        console.print(f"{stats['converted']:,} of {stats['rows']:,} rows converted, {stats['failed']:,} failed")
    return status


@app.command()
def upload(
    path: Path, region: Region = None, column: Column = None,
    header: Annotated[str, typer.Option(help="auto, yes or no")] = "auto",
    purpose: Annotated[str, typer.Option(help="clean or encrypt")] = "clean",
) -> None:
    """Upload a list (CSV, TSV or .xlsx) and show what was detected."""
    _bootstrap()
    _upload(path, purpose, region, column, header)


def _start_and_follow(file_id: int, column: str | None, region: str | None, filters: list[str],
                      add_to_used: bool, wait: bool, lines: LineOptions | None = None) -> tuple[int, str]:
    from phoneops.cleaning.service import start_clean
    from phoneops.core.db import session_scope

    try:
        with session_scope() as session:
            run = start_clean(session, cli_actor(), file_id, phone_column=column, region=region,
                              filters=filters, add_to_used=add_to_used, **(lines or {}))
            run_id, job_id = run.id, run.job_id
    except AppError as exc:
        raise fail(exc) from None
    console.print(f"run {run_id} queued (job {job_id})")
    if not wait or job_id is None:
        return run_id, "queued"
    return run_id, follow_job(job_id)


Filters = Annotated[list[str] | None,
                    typer.Option("--filter", help="monitor, used, ... (the blacklist always applies)")]
LineType = Annotated[bool, typer.Option("--line-type", help="add a line_type column (mobile, fixed_line, voip ...)")]
SmsOnly = Annotated[bool, typer.Option("--sms-only", help="keep only numbers that can receive SMS")]
SmsTypes = Annotated[list[str] | None, typer.Option("--sms-type", help="line types --sms-only keeps (repeatable; "
                                                    "default mobile and fixed_line_or_mobile)")]
LineOptions = dict[str, Any]


def _lines(line_type: bool, sms_only: bool, sms_types: list[str] | None) -> LineOptions:
    return {"line_type": line_type, "sms_only": sms_only, "sms_types": sms_types}


@app.command()
def run(
    file_id: int, column: Column = None, region: Region = None, filters: Filters = None,
    add_to_used: Annotated[bool, typer.Option(help="add the kept numbers to the main database")] = False,
    wait: bool = True, line_type: LineType = False, sms_only: SmsOnly = False, sms_types: SmsTypes = None,
) -> None:
    """Clean an uploaded file (a second run of the same file is refused while one runs)."""
    settings = _bootstrap()
    if settings.redis_url is None and wait:
        from phoneops.core.jobs import set_enqueue_hook

        set_enqueue_hook(_run_here)  # one machine: run it here rather than wait for a worker
    run_id, status = _start_and_follow(file_id, column, region, filters or [], add_to_used, wait,
                                       _lines(line_type, sms_only, sms_types))
    if wait:
        _show_stats(run_id)
        raise typer.Exit(0 if status == "succeeded" else 1)


@app.command()
def clean(
    path: Path, out: Annotated[Path, typer.Option(help="directory for the results")] = Path("."),
    region: Region = None, column: Column = None, filters: Filters = None,
    add_to_used: Annotated[bool, typer.Option(help="add the kept numbers to the main database")] = False,
    header: Annotated[str, typer.Option(help="auto, yes or no")] = "auto",
    line_type: LineType = False, sms_only: SmsOnly = False, sms_types: SmsTypes = None,
) -> None:
    """Upload, clean and save clean_<name> and rejected_<name> in one step (needs a worker, or runs here)."""
    settings = _bootstrap()
    file_id = _upload(path, "clean", region, column, header)
    if settings.redis_url is None:
        from phoneops.core.jobs import set_enqueue_hook

        set_enqueue_hook(_run_here)  # no worker needed on one machine
    run_id, status = _start_and_follow(file_id, column, region, filters or [], add_to_used, True,
                                       _lines(line_type, sms_only, sms_types))
    _show_stats(run_id)
    if status != "succeeded":
        raise typer.Exit(1)
    for which in ("clean", "rejected"):
        console.print(f"saved {_save(run_id, which, out)}")


@app.command()
def stats(run_id: int, as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Show a run's counts per outcome and per country."""
    from phoneops.cleaning.service import get_run
    from phoneops.core.db import session_scope

    _bootstrap()
    try:
        if as_json:
            with session_scope() as session:
                found = get_run(session, run_id)
                print(json.dumps({"run_id": found.id, "status": found.status, **found.stats}))
            return
        _show_stats(run_id)
    except AppError as exc:
        raise fail(exc) from None


@app.command()
def download(run_id: int, which: Annotated[str, typer.Argument(help="clean, rejected or output")] = "clean",
             out: Path = Path(".")) -> None:
    """Save a run's result file under its download name."""
    _bootstrap()
    try:
        console.print(f"saved {_save(run_id, which, out)}")
    except AppError as exc:
        raise fail(exc) from None


@app.command("list")
def list_files(purpose: str = "clean", archived: bool = False) -> None:
    """List uploaded files."""
    from phoneops.cleaning.upload import list_cleaning_files
    from phoneops.core.db import session_scope

    _bootstrap()
    table = Table("id", "file", "status", "phone column", "last run", "uploaded")
    with session_scope() as session:
        for f in list_cleaning_files(session, purpose, archived=archived):
            table.add_row(str(f.id), f.original_name, f.status,
                          f.columns[f.phone_column] if f.phone_column is not None else "-",
                          str(f.last_run_id or "-"), f.created_at.isoformat(timespec="seconds"))
    console.print(table)


@app.command()
def convert(
    path: Path, direction: Annotated[str, typer.Option(help="encrypt or decrypt")] = "encrypt",
    out: Path = Path("."), region: Region = None, column: Column = None,
) -> None:
    """Encryption file: phone column -> link tokens (or tokens -> numbers), saved as encrypted_<name>."""
    from phoneops.cleaning.service import start_encryption
    from phoneops.core.db import session_scope

    settings = _bootstrap()
    file_id = _upload(path, "encrypt", region, column, "auto")
    if settings.redis_url is None:
        from phoneops.core.jobs import set_enqueue_hook

        set_enqueue_hook(_run_here)
    try:
        with session_scope() as session:
            started = start_encryption(session, cli_actor(), file_id, direction, phone_column=column, region=region)
            run_id, job_id = started.id, started.job_id
    except AppError as exc:
        raise fail(exc) from None
    status = follow_job(job_id) if job_id else "queued"
    if _show_stats(run_id) != "succeeded" or status != "succeeded":
        raise typer.Exit(1)
    console.print(f"saved {_save(run_id, 'output', out)}")


@app.command()
def archive(file_id: int) -> None:
    """Archive a file (hidden from the list; its results stay)."""
    from phoneops.cleaning.upload import archive_file
    from phoneops.core.db import session_scope

    _bootstrap()
    try:
        with session_scope() as session:
            archive_file(session, cli_actor(), file_id)
    except AppError as exc:
        raise fail(exc) from None
    console.print(f"archived file {file_id}")


@app.command()
def delete(file_id: int) -> None:
    """Delete a file with its upload and every result file (audited)."""
    from phoneops.cleaning.upload import delete_file
    from phoneops.core.db import session_scope

    _bootstrap()
    try:
        with session_scope() as session:
            delete_file(session, cli_actor(), file_id)
    except AppError as exc:
        raise fail(exc) from None
    console.print(f"deleted file {file_id} and its results")
