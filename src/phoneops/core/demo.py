"""What `make demo` prepares: migrated database and an admin user whose password is shown once."""

from __future__ import annotations

import os
import secrets

from rich.console import Console
from sqlalchemy import select

from phoneops.core.db import session_scope
from phoneops.core.migrate import upgrade
from phoneops.core.models import User
from phoneops.core.security import SYSTEM, create_user
from phoneops.settings import Settings


def prepare_demo(settings: Settings, console: Console) -> None:
    upgrade(settings.database_url)
    with session_scope() as session:
        exists = session.scalar(select(User.id).where(User.username == "admin")) is not None
        if not exists:
            password = os.environ.get("PHONEOPS_ADMIN_PASSWORD") or secrets.token_urlsafe(12)
            create_user(session, SYSTEM, "admin", password, "admin")
            shown = "(from PHONEOPS_ADMIN_PASSWORD)" if os.environ.get("PHONEOPS_ADMIN_PASSWORD") else password
            console.print(f"[bold green]admin user created[/bold green]: username [bold]admin[/bold], "
                          f"password [bold]{shown}[/bold] — shown once, keep it")
        else:
            console.print("admin user already exists (password unchanged)")
