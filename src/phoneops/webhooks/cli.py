"""`phoneops webhooks ...`: list, add, remove, enable/disable endpoints; send a test; deliveries; resend."""

from __future__ import annotations

import secrets
from typing import Annotated

import typer
from rich.table import Table

from phoneops.core.commands import bootstrap, cli_actor, console, fail
from phoneops.core.errors import AppError

NAME = "webhooks"
app = typer.Typer(help="Signed webhooks: endpoints, test sends, deliveries and resends (docs/api.md).",
                  no_args_is_help=True)
QUEUE = Annotated[bool, typer.Option(help="Leave the delivery to workers instead of sending it here")]


@app.command("list")
def list_endpoints() -> None:
    """Endpoints: id, URL, events, state, and how their last deliveries went."""
    from phoneops.core.db import session_scope
    from phoneops.webhooks import service

    bootstrap()
    table = Table("id", "url", "events", "state", "created by", "last delivery")
    with session_scope() as session:
        for endpoint in service.list_endpoints(session):
            last = service.list_deliveries(session, endpoint.id, limit=1)
            table.add_row(str(endpoint.id), endpoint.url, " ".join(endpoint.events),
                          "active" if endpoint.active else "disabled", endpoint.created_by,
                          f"{last[0].event} {last[0].status} ({last[0].attempts} tries)" if last else "-")
        empty = not table.rows
    console.print("no webhook endpoints; add one with `phoneops webhooks add URL --event job.finished`"
                  if empty else table)


@app.command("add")
def add(
    url: str,
    event: Annotated[list[str], typer.Option("--event", "-e", help="An event to send (repeat the option)")],
    secret: Annotated[str | None, typer.Option(help="Shared secret (16+ characters); generated when omitted")]
    = None,
) -> None:
    """Register an endpoint. Without --secret one is generated and printed once."""
    from phoneops.core.db import session_scope
    from phoneops.webhooks import service

    bootstrap()
    chosen = secret if secret is not None else "whsec_" + secrets.token_urlsafe(24)
    try:
        with session_scope() as session:
            endpoint = service.register(session, cli_actor(), url, chosen, event)
            endpoint_id, events = endpoint.id, endpoint.events
    except AppError as exc:
        raise fail(exc) from None
    console.print(f"endpoint {endpoint_id}: {url} for {' '.join(events)}")
    if secret is None:
        console.print(f"secret (shown once; verify signatures with it): {chosen}", soft_wrap=True)


@app.command("remove")
def remove(endpoint_id: int, yes: Annotated[bool, typer.Option("--yes", help="Do not ask")] = False) -> None:
    """Delete an endpoint with its delivery history."""
    from phoneops.core.db import session_scope
    from phoneops.webhooks import service

    bootstrap()
    if not yes:
        typer.confirm(f"Remove webhook endpoint {endpoint_id} and its delivery history?", abort=True)
    try:
        with session_scope() as session:
            service.remove(session, cli_actor(), endpoint_id)
    except AppError as exc:
        raise fail(exc) from None
    console.print(f"removed endpoint {endpoint_id}")


def _set_active(endpoint_id: int, active: bool) -> None:
    from phoneops.core.db import session_scope
    from phoneops.webhooks import service

    bootstrap()
    try:
        with session_scope() as session:
            service.set_active(session, cli_actor(), endpoint_id, active)
    except AppError as exc:
        raise fail(exc) from None
    console.print(f"endpoint {endpoint_id} {'enabled' if active else 'disabled'}")


@app.command("disable")
def disable(endpoint_id: int) -> None:
    """Stop sending to an endpoint (its pending deliveries fail)."""
    _set_active(endpoint_id, False)


@app.command("enable")
def enable(endpoint_id: int) -> None:
    """Send to a disabled endpoint again."""
    _set_active(endpoint_id, True)


def _send(delivery_id: int, job_id: str | None, queue: bool) -> None:
    from phoneops.core.db import session_scope
    from phoneops.core.jobs import run_job
    from phoneops.webhooks import service

    assert job_id is not None
    if queue:
        console.print(f"delivery {delivery_id} queued for the workers (job {job_id})")
        return
    run_job(job_id)  # one attempt here; a failed one is parked and retried by the workers
    with session_scope() as session:
        delivery = service.get_delivery(session, delivery_id)
        state, code, error = delivery.status, delivery.last_status_code, delivery.last_error
    console.print(f"delivery {delivery_id}: {state}" + (f", HTTP {code}" if code else "")
                  + (f" ({error}; retried by the workers)" if error and state == "pending" else
                     f" ({error})" if error else ""))
    raise typer.Exit(0 if state == "delivered" else 1)


@app.command("test")
def send_test(endpoint_id: int, queue: QUEUE = False) -> None:
    """Send a signed `ping` now and say how the endpoint answered."""
    from phoneops.core.db import session_scope
    from phoneops.webhooks import service

    bootstrap()
    try:
        with session_scope() as session:
            delivery = service.send_test(session, cli_actor(), endpoint_id)
            delivery_id, job_id = delivery.id, delivery.job_id
    except AppError as exc:
        raise fail(exc) from None
    _send(delivery_id, job_id, queue)


@app.command("deliveries")
def deliveries(
    endpoint_id: Annotated[int | None, typer.Option("--endpoint", help="Only this endpoint's")] = None,
    limit: Annotated[int, typer.Option(min=1, max=1000)] = 20,
) -> None:
    """Recent deliveries, newest first, with their attempts."""
    from phoneops.core.db import session_scope
    from phoneops.webhooks import service

    bootstrap()
    table = Table("id", "endpoint", "event", "status", "tries", "last answer", "created")
    with session_scope() as session:
        for d in service.list_deliveries(session, endpoint_id, limit):
            answer = f"HTTP {d.last_status_code}" if d.last_status_code else (d.last_error or "-")
            table.add_row(str(d.id), str(d.endpoint_id), d.event, d.status, str(d.attempts), answer[:60],
                          f"{d.created_at:%Y-%m-%d %H:%M:%S}")
    console.print(table)


@app.command("resend")
def resend(delivery_id: int, queue: QUEUE = False) -> None:
    """Send a delivery's event again (a new delivery; the old one keeps its history)."""
    from phoneops.core.db import session_scope
    from phoneops.webhooks import service

    bootstrap()
    try:
        with session_scope() as session:
            delivery = service.resend(session, cli_actor(), delivery_id)
            new_id, job_id = delivery.id, delivery.job_id
    except AppError as exc:
        raise fail(exc) from None
    _send(new_id, job_id, queue)
