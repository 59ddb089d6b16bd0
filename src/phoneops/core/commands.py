"""What a domain's commands need from the `phoneops` command, below the domains (docs/architecture.md: a domain
never imports an entry point): the consoles, the CLI's actor, error output and start-up.

Start-up (the data directory, the demo's env files, logging, the database, the domains) belongs to the entry
point: `phoneops.cli` installs it with `set_bootstrap` when it loads. Without it (a domain's Typer app run on its
own, as tests do) `bootstrap` configures the database from the settings.
"""

from __future__ import annotations

from collections.abc import Callable

import typer
from rich.console import Console

from phoneops.core.errors import AppError
from phoneops.core.security import Principal, Role

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
