"""The list of domains. A domain plugs in by having the modules below; nothing else to edit."""

from __future__ import annotations

import importlib
import importlib.util
from types import ModuleType

DOMAINS = ["numbers", "cleaning", "voluum", "hlr", "broadcasts", "ongage", "imei", "privacy", "webhooks", "sources"]
PARTS = ("models", "tasks", "router", "views", "cli", "metrics")


def domain_modules(part: str) -> list[ModuleType]:
    modules = []
    for domain in DOMAINS:
        name = f"phoneops.{domain}.{part}"
        try:
            found = importlib.util.find_spec(name)
        except ModuleNotFoundError:
            found = None
        if found is not None:
            modules.append(importlib.import_module(name))
    return modules


def load_domains() -> None:
    """Import every domain's models and tasks (jobs and periodic tasks register themselves), and connect jobs
    to the queue. Every entry point calls this first (`phoneops.app`, `phoneops.cli`)."""
    import phoneops.core.sample  # noqa: F401  (the sample job)
    from phoneops.core import jobs, queue

    jobs.set_sender(queue.send)

    domain_modules("models")
    domain_modules("tasks")
