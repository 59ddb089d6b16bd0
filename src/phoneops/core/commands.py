"""What a domain's commands need from the `phoneops` command, below the domains (docs/architecture.md: a domain
never imports an entry point): the consoles, the CLI's actor, error output and start-up.

Start-up (the data directory, the demo's env files, logging, the database, the domains) belongs to the entry
point: `phoneops.cli` installs it with `set_bootstrap` when it loads. Without it (a domain's Typer app run on its
own, as tests do) `bootstrap` configures the database from the settings.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import typer
from rich.console import Console

from phoneops.core.errors import AppError
from phoneops.core.security import Principal, Role

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

console = Console()
err = Console(stderr=True)
CLI_ACTOR_NAME = "cli"
_bootstrap: Callable[[], object] | None = None


def set_bootstrap(hook: Callable[[], object]) -> None:
    global _bootstrap
    _bootstrap = hook


def bootstrap() -> None:
    if _bootstrap is not None:
        _bootstrap()
        return
    from phoneops.core import db
    from phoneops.settings import get_settings

    db.configure(get_settings().database_url)


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
