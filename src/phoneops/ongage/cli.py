"""`phoneops ongage ...`: the conversion sync and CSV jobs.

`sync` runs the same job as the API and the UI start (here, with a progress bar; `--queue` leaves it to a
worker). CSV jobs run in `phoneops worker` processes; `csv follow` shows one's progress.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from phoneops.core.errors import AppError

NAME = "ongage"
app = typer.Typer(help="Ongage: converted numbers synced as contacts, CSV jobs sent at a pace.", no_args_is_help=True)
csv_app = typer.Typer(help="CSV jobs: upload, pace, start / pause / resume / cancel, follow.", no_args_is_help=True)
app.add_typer(csv_app, name="csv")

Queue = Annotated[bool, typer.Option("--queue", help="Leave the job to `phoneops worker` processes")]


def _boot() -> None:
    from phoneops.core.commands import bootstrap as _bootstrap

    _bootstrap()


def _console() -> Any:
    from phoneops.core.commands import console

    return console


def _fail(exc: AppError) -> typer.Exit:
    from phoneops.core.commands import fail

    return fail(exc)


def _actor() -> Any:
    from phoneops.core.commands import cli_actor

    return cli_actor()


# --- conversion sync -----------------------------------------------------------------------------------


@app.command("sync")
def sync(queue: Queue = False) -> None:
    """Send the converted numbers that are new or due for a retry now."""
    from phoneops.core.db import session_scope
    from phoneops.ongage.service_sync import start_sync

    _boot()
    try:
        with session_scope() as session:
            job_id = start_sync(session, _actor()).id
    except AppError as exc:
        raise _fail(exc) from None
    from phoneops.core.commands import run_here_or_queue

    status = run_here_or_queue(job_id, queue)
    if status == "queued":
        return
    _status()
    if status != "succeeded":
        raise typer.Exit(1)


@app.command("unsubscribes")
def unsubscribes(queue: Queue = False) -> None:
    """Record the contacts Ongage shows unsubscribed (ocx_unsubscribe_date) as opt-outs (docs/optouts.md)."""
    from phoneops.core.commands import run_here_or_queue, start_job
    from phoneops.ongage.unsubscribes import start_check

    _boot()
    start_job(start_check, queue, run_here_or_queue)


def _status() -> None:
    from phoneops.core.db import session_scope
    from phoneops.ongage.service_sync import counts, recent_runs

    with session_scope() as session:
        found = counts(session)
        _console().print("contacts: " + ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in found.items()))
        table = Table("started", "trigger", "status", "new", "contacts", "sent", "failed", "given up", "no number",
                      "error", title="recent runs")
        for r in recent_runs(session, 10):
            table.add_row(r.started_at.isoformat(timespec="seconds"), r.trigger, r.status, str(r.enrolled),
                          str(r.contacts), str(r.sent), str(r.failed), str(r.gave_up), str(r.invalid), r.error or "")
        _console().print(table)


@app.command("status")
def status() -> None:
    """Contacts per status and the recent sync runs."""
    from phoneops.ongage.provider import is_configured, sync_config

    _boot()
    config = sync_config()
    _console().print(f"Ongage {'configured' if is_configured() else 'NOT configured'}; countries "
                     f"{', '.join(config.countries)}; email {config.email_pattern}; batches of {config.batch_size}; "
                     f"{config.retry_limit} attempts")
    _status()


@app.command("failures")
def failures(
    status: Annotated[str, typer.Option(help="comma-separated: failed, gave_up, invalid")] = "failed,gave_up,invalid",
    limit: int = 50,
) -> None:
    """Contacts that did not go through (numbers masked)."""
    from phoneops.core.db import session_scope
    from phoneops.ongage.service_sync import problems

    _boot()
    table = Table("id", "number", "country", "kind", "status", "attempts", "last error", "next try")
    try:
        with session_scope() as session:
            for p in problems(session, [s.strip() for s in status.split(",") if s.strip()], limit):
                table.add_row(str(p.id), p.number, p.country, p.kind, p.status, str(p.attempts), p.last_error or "",
                              p.next_attempt_at.isoformat(timespec="minutes") if p.next_attempt_at else "")
    except AppError as exc:
        raise _fail(exc) from None
    _console().print(table)


@app.command("requeue")
def requeue(ids: Annotated[list[int] | None, typer.Argument(help="ids; none: every given-up contact")] = None) -> None:
    """Give given-up contacts a fresh retry budget."""
    from phoneops.core.db import session_scope
    from phoneops.ongage.service_sync import requeue as requeue_contacts

    _boot()
    with session_scope() as session:
        count = requeue_contacts(session, _actor(), ids or None)
    _console().print(f"{count} contact(s) queued again")


# --- CSV jobs ------------------------------------------------------------------------------------------


def _show(job_id: int) -> str:
    from phoneops.core.db import session_scope
    from phoneops.ongage.service_csv import get_csv_job, row_counts

    with session_scope() as session:
        job = get_csv_job(session, job_id)
        counts = row_counts(session, job_id)
        _console().print(f"job {job.id} [bold]{job.status}[/bold] {job.name}: {job.rows_total} rows, "
                         f"{counts['sent']} sent, {counts['failed']} failed, {counts['pending'] + counts['sending']} "
                         f"left; {job.lower_limit}-{job.upper_limit} rows every {job.interval_seconds:g} s, "
                         f"{job.batch_size} per call" + (f"; error: {job.error}" if job.error else ""))
        return job.status


@csv_app.command("upload")
def csv_upload(
    path: Path,
    interval: Annotated[float, typer.Option(help="Seconds between sends")] = 60.0,
    lower: Annotated[int, typer.Option(help="Rows per send, at least")] = 1,
    upper: Annotated[int, typer.Option(help="Rows per send, at most")] = 1,
    batch_size: Annotated[int, typer.Option(help="Contacts per Ongage call")] = 500,
    start: Annotated[bool, typer.Option(help="Start it at once")] = False,
) -> None:
    """Upload a CSV as a job (draft unless --start)."""
    import shutil

    from phoneops.core.db import session_scope
    from phoneops.core.storage import get_storage
    from phoneops.ongage.service_csv import FILE_KIND, Pace, create_csv_job, transition

    _boot()
    if not path.is_file():
        raise typer.BadParameter(f"{path} is not a file")
    try:
        with session_scope() as session:
            pace = Pace(interval, lower, upper, batch_size).checked()
            writer = get_storage().writer(session, _actor(), kind=FILE_KIND, original_name=path.name,
                                          content_type="text/csv")
            with writer as (out, created), path.open("rb") as source:
                shutil.copyfileobj(source, out)
            job = create_csv_job(session, _actor(), created[0], pace)
            if start:
                transition(session, _actor(), job.id, "start")
            job_id = job.id
    except AppError as exc:
        raise _fail(exc) from None
    _show(job_id)


@csv_app.command("list")
def csv_list(limit: int = 30) -> None:
    """CSV jobs, newest first."""
    from phoneops.core.db import session_scope
    from phoneops.ongage.service_csv import list_csv_jobs

    _boot()
    table = Table("id", "name", "status", "rows", "sent", "failed", "pace", "created")
    with session_scope() as session:
        for j in list_csv_jobs(session, limit):
            table.add_row(str(j.id), j.name, j.status, str(j.rows_total), str(j.rows_sent), str(j.rows_failed),
                          f"{j.lower_limit}-{j.upper_limit}/{j.interval_seconds:g}s",
                          j.created_at.isoformat(timespec="seconds"))
    _console().print(table)


@csv_app.command("show")
def csv_show(job_id: int) -> None:
    """A job's state, counts and pace."""
    _boot()
    try:
        _show(job_id)
    except AppError as exc:
        raise _fail(exc) from None


def _move(job_id: int, action: str) -> None:
    from phoneops.core.db import session_scope
    from phoneops.ongage.service_csv import transition

    _boot()
    try:
        with session_scope() as session:
            transition(session, _actor(), job_id, action)
    except AppError as exc:
        raise _fail(exc) from None
    _show(job_id)


@csv_app.command("start")
def csv_start(job_id: int) -> None:
    """draft -> running (a `phoneops worker` sends the rows)."""
    _move(job_id, "start")


@csv_app.command("pause")
def csv_pause(job_id: int) -> None:
    """running -> paused (between two calls)."""
    _move(job_id, "pause")


@csv_app.command("resume")
def csv_resume(job_id: int) -> None:
    """paused or failed -> running."""
    _move(job_id, "resume")


@csv_app.command("cancel")
def csv_cancel(job_id: int) -> None:
    """Any state but done -> cancelled."""
    _move(job_id, "cancel")


@csv_app.command("pace")
def csv_pace(
    job_id: int,
    interval: Annotated[float | None, typer.Option(help="Seconds between sends")] = None,
    lower: Annotated[int | None, typer.Option(help="Rows per send, at least")] = None,
    upper: Annotated[int | None, typer.Option(help="Rows per send, at most")] = None,
    batch_size: Annotated[int | None, typer.Option(help="Contacts per Ongage call")] = None,
) -> None:
    """Change a job's pace."""
    from phoneops.core.db import session_scope
    from phoneops.ongage.service_csv import set_pace

    _boot()
    try:
        with session_scope() as session:
            set_pace(session, _actor(), job_id, interval_seconds=interval, lower_limit=lower, upper_limit=upper,
                     batch_size=batch_size)
    except AppError as exc:
        raise _fail(exc) from None
    _show(job_id)


@csv_app.command("follow")
def csv_follow(job_id: int, timeout: float = 24 * 3600) -> None:
    """A progress bar until the job is done, paused, cancelled or failed."""
    from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn

    from phoneops.core.db import session_scope
    from phoneops.ongage.service_csv import get_csv_job, row_counts

    _boot()
    deadline = time.monotonic() + timeout
    with Progress(TextColumn("[bold]{task.description}"), BarColumn(), TaskProgressColumn(),
                  TextColumn("{task.completed:.0f}/{task.total}"), console=_console()) as progress:
        task = progress.add_task("csv job", total=None)
        while True:
            try:
                with session_scope() as session:
                    job = get_csv_job(session, job_id)
                    counts = row_counts(session, job_id)
                    state, total = job.status, job.rows_total
            except AppError as exc:
                raise _fail(exc) from None
            progress.update(task, description=f"job {job_id} [{state}]", completed=counts["sent"] + counts["failed"],
                            total=total)
            if state != "running" or time.monotonic() > deadline:
                break
            time.sleep(1.0)
    final = _show(job_id)
    raise typer.Exit(0 if final in ("done", "paused", "draft") else 1)
