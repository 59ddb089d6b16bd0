"""What a domain's commands need from the `phoneops` command, below the domains (docs/architecture.md: a domain
never imports an entry point): the consoles, the CLI's actor, error output and start-up.

Start-up (the data directory, the demo's env files, logging, the database, the domains) belongs to the entry
point: `phoneops.cli` installs it with `set_bootstrap` when it loads. Without it (a domain's Typer app run on its
own, as tests do) `bootstrap` configures the database from the settings.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeElapsedColumn

from phoneops.core.errors import AppError
from phoneops.core.security import Principal, Role
from phoneops.settings import Settings

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

console = Console()
err = Console(stderr=True)
CLI_ACTOR_NAME = "cli"
_bootstrap: Callable[[], object] | None = None


def set_bootstrap(hook: Callable[[], object]) -> None:
    global _bootstrap
    _bootstrap = hook


def bootstrap() -> Settings:
    """Start up a command (the entry point's start-up when installed) and return the settings."""
    from phoneops.settings import get_settings

    if _bootstrap is not None:
        _bootstrap()
        return get_settings()
    from phoneops.core import db

    settings = get_settings()
    db.configure(settings.database_url)
    return settings


def cli_actor() -> Principal:
    return Principal(user_id=None, username=CLI_ACTOR_NAME, role=Role.admin, via="cli")


def fail(exc: AppError) -> typer.Exit:
    err.print(f"[red]error:[/red] {exc.message}")
    return typer.Exit(1)


def start_job(start: Callable[[Session, Principal], Any], queue: bool, run: Callable[[str, bool], str]) -> None:
    """A command that starts one background job (an opt-out feed's check, ...) as the CLI's actor and hands its
    id to `run` (in this process, or left to workers with `queue`); exits 1 unless it succeeded or was queued."""
    from phoneops.core.db import session_scope

    try:
        with session_scope() as session:
            job_id = start(session, cli_actor()).id
    except AppError as exc:
        raise fail(exc) from None
    if run(job_id, queue) not in ("succeeded", "queued"):
        raise typer.Exit(1)


def follow_job(job_id: str, timeout: float = 24 * 3600, runner: threading.Thread | None = None) -> str:
    """Show a Rich progress bar for a job until it ends; returns its final status. `runner`: the thread running
    the job in this process, if any: the bar looks again as soon as it ends instead of at the next half second."""
    from phoneops.core.db import session_scope
    from phoneops.core.jobs import TERMINAL, get_job

    deadline = time.monotonic() + timeout
    with Progress(
        TextColumn("[bold]{task.description}"), BarColumn(), TaskProgressColumn(),
        TextColumn("{task.completed:.0f}/{task.total}"), TimeElapsedColumn(), console=console,
    ) as progress:
        task = progress.add_task("job", total=None)
        while True:
            with session_scope() as session:
                job = get_job(session, job_id)
                progress.update(task, description=f"{job.kind} [{job.status}]",
                                completed=job.progress_done, total=job.progress_total)
                status, error, message = job.status, job.error, job.message
            if status in TERMINAL or time.monotonic() > deadline:
                break
            if runner is not None and runner.is_alive():
                runner.join(0.5)
            else:
                time.sleep(0.5)
    if error:
        err.print(f"[red]{status}:[/red] {error}")
    elif message:
        console.print(message)
    console.print(f"job {job_id}: [bold]{status}[/bold]")
    return status


def run_here_or_queue(job_id: str, queue: bool) -> str:
    """Run a job in this process with a progress bar, or leave it to workers; returns its final status
    ("queued" when left to workers)."""
    from phoneops.core.jobs import run_job

    if queue:
        console.print(f"job {job_id} queued; follow it with `phoneops jobs follow {job_id}`")
        return "queued"
    worker = threading.Thread(target=run_job, args=(job_id,), daemon=True, name="cli-job")
    worker.start()
    status = follow_job(job_id, runner=worker)
    worker.join(timeout=5)
    return status
