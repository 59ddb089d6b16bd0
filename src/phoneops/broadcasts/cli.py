"""`phoneops broadcasts ...`: import days, push costs, show days and analytics, watch today's broadcasts.

An import is the same background job as the API and the UI start; by default the CLI runs it in its own
process with a Rich progress bar, `--queue` leaves it to `phoneops worker`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from phoneops.core.errors import AppError

NAME = "broadcasts"
app = typer.Typer(help="SMS broadcasts (MessageWhiz): day imports, history files, cost pushes, analytics.",
                  no_args_is_help=True)

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


def _run(job_id: str, queue: bool) -> str:
    from phoneops.core.commands import run_here_or_queue

    return run_here_or_queue(job_id, queue)


@app.command("import")
def import_day(
    day: Annotated[str, typer.Argument(help="The day (YYYY-MM-DD, UTC); default yesterday")] = "",
    no_costs: Annotated[bool, typer.Option("--no-costs", help="Do not push the day's costs afterwards")] = False,
    queue: Queue = False,
) -> None:
    """Import a day's broadcasts (stats rows and history files), then push its costs to Voluum."""
    from phoneops.broadcasts.days import start_import
    from phoneops.broadcasts.provider import yesterday
    from phoneops.core.db import session_scope

    _boot()
    try:
        with session_scope() as session:
            job_id = start_import(session, _actor(), day or yesterday(), push_costs=not no_costs).id
    except AppError as exc:
        raise _fail(exc) from None
    status = _run(job_id, queue)
    if status not in ("succeeded", "queued"):
        raise typer.Exit(1)
    if status == "succeeded":
        _show_day(day or str(yesterday()))


@app.command("unsubscribers")
def sync_unsubscribers(queue: Queue = False) -> None:
    """Record the MessageWhiz unsubscribe lists' members as opt-outs (sms_stop; docs/optouts.md)."""
    from phoneops.broadcasts.unsubscribers import start_sync
    from phoneops.core.commands import start_job

    _boot()
    start_job(start_sync, queue, _run)


def _show_day(day: str) -> None:
    from phoneops.broadcasts.days import campaign_days, get_day
    from phoneops.broadcasts.money import billing_currency
    from phoneops.core.db import session_scope

    with session_scope() as session:
        record = get_day(session, day)
        _console().print(f"{record.day}: [bold]{record.broadcasts}[/bold] broadcasts ({record.with_notes} with a "
                         f"note), {record.campaigns} campaigns, cost {record.cost:,.2f} {billing_currency()} "
                         f"(of which {record.unattributed_cost:,.2f} without a campaign), Voluum {record.voluum}")
        table = Table("campaign", "broadcasts", "cost", "recipients", "unique clicks", "visits", "REG", "FTD")
        for c in campaign_days(session, day):
            table.add_row(c.campaign_name or c.campaign_id, str(c.broadcasts), f"{c.cost:,.2f}", str(c.recipients),
                          str(c.unique_clicks), _opt(c.voluum_visits), _opt(c.voluum_regs), _opt(c.voluum_ftds))
        _console().print(table)


def _opt(value: int | None) -> str:
    return "-" if value is None else str(value)


@app.command("days")
def list_days(limit: int = 30) -> None:
    """Imported days, newest first."""
    from phoneops.broadcasts.days import recent_days
    from phoneops.core.db import session_scope

    _boot()
    from phoneops.broadcasts.money import billing_currency

    table = Table("day", "broadcasts", "with a note", "campaigns", f"cost ({billing_currency()})",
                  "of which no campaign", "Voluum", "imported")
    with session_scope() as session:
        for d in recent_days(session, limit):
            table.add_row(str(d.day), str(d.broadcasts), str(d.with_notes), str(d.campaigns), f"{d.cost:,.2f}",
                          f"{d.unattributed_cost:,.2f}", d.voluum, d.imported_at.isoformat(timespec="seconds"))
    _console().print(table)


@app.command("show")
def show_day(
    day: str,
    search: Annotated[str, typer.Option(help="Broadcast name contains")] = "",
) -> None:
    """A day's broadcasts (with their notes) and campaigns."""
    from phoneops.broadcasts.days import day_stats
    from phoneops.core.db import session_scope

    _boot()
    try:
        _show_day(day)
    except AppError as exc:
        raise _fail(exc) from None
    table = Table("id", "name", "sent", "status", "campaign", "price", "recipients", "clicks", "CTR", "delivered",
                  "note")
    with session_scope() as session:
        for s in day_stats(session, day, search or None):
            table.add_row(str(s.broadcast_id), s.name, s.send_at.strftime("%H:%M") if s.send_at else "", s.status,
                          s.campaign_id or "", "" if s.price is None else f"{s.price:,.2f}", str(s.recipients),
                          f"{s.unique_clicks}/{s.total_clicks}", "" if s.ctr is None else f"{s.ctr}%",
                          str(s.delivered), s.note or "")
    _console().print(table)


@app.command("history")
def history(
    day: str,
    out: Annotated[Path, typer.Option(help="Write the file here")],
    fmt: Annotated[str, typer.Option("--format", help="csv or xlsx")] = "csv",
) -> None:
    """Copy a day's history file (CSV or XLSX)."""
    from phoneops.broadcasts.days import history_file
    from phoneops.core.audit import audit
    from phoneops.core.db import session_scope
    from phoneops.core.storage import get_storage

    _boot()
    try:
        with session_scope() as session:
            row = history_file(session, day, fmt)
            get_storage().copy_to(row, out)
            audit(session, _actor(), "file.download", "file", row.id, {"name": row.original_name})
    except AppError as exc:
        raise _fail(exc) from None
    _console().print(f"{row.original_name} written to {out}")


@app.command("costs")
def push_costs(
    day: str,
    force: Annotated[bool, typer.Option(help="Send even the costs Voluum already has")] = False,
) -> None:
    """Push an imported day's cost per campaign to Voluum now (an unchanged cost is not sent again)."""
    from phoneops.broadcasts.costs import push_day_costs
    from phoneops.core.db import session_scope

    _boot()
    table = Table("campaign", "cost", "broadcasts", "outcome", "error")
    try:
        with session_scope() as session:
            pushed = push_day_costs(session, _actor(), day, force=force)
            for p in pushed:
                table.add_row(p.campaign_id, f"{p.cost} {p.currency}", str(p.broadcasts), p.outcome, p.error or "")
    except AppError as exc:
        raise _fail(exc) from None
    _console().print(table)
    if any(p.outcome == "failed" for p in pushed):
        raise typer.Exit(1)


@app.command("live")
def live(search: Annotated[str, typer.Option(help="Broadcast name contains")] = "") -> None:
    """Today's broadcasts now, grouped by list (one pass; the web page follows them live)."""
    from phoneops.broadcasts.live import group_totals, today_rows
    from phoneops.broadcasts.provider import get_client

    _boot()
    try:
        rows = list(today_rows(get_client(), search or None))
    except AppError as exc:
        raise _fail(exc) from None
    for name, total in group_totals(rows).items():
        table = Table("id", "name", "sent", "status", "recipients", "clicks", "CTR", "delivered",
                      title=f"{name}: {total['broadcasts']} broadcasts, cost {total['price']}")
        for r in rows:
            if r["group"] == name:
                table.add_row(str(r["id"]), r["name"], (r["send_date"] or "")[11:16], r["status"], str(r["recipients"]),
                              f"{r['unique_clicks']}/{r['total_clicks']}", f"{r['ctr'] or ''}%", str(r["delivered"]))
        _console().print(table)
    if not rows:
        _console().print("no broadcast today" + (f" whose name contains {search!r}" if search else ""))


@app.command("analytics")
def show_analytics(
    date_from: Annotated[str, typer.Option("--from")] = "",
    date_to: Annotated[str, typer.Option("--to")] = "",
    campaign: str = "",
    by: Annotated[str, typer.Option(help="days or campaigns")] = "campaigns",
    out: Annotated[Path | None, typer.Option(help="Write the CSV here")] = None,
) -> None:
    """Cost, clicks, CTR, delivery and conversions per day or per campaign (default: last 30 days)."""
    from phoneops.broadcasts.analytics import analytics, csv_rows
    from phoneops.core.audit import audit
    from phoneops.core.db import session_scope

    _boot()
    if by not in ("days", "campaigns"):
        raise typer.BadParameter("--by must be days or campaigns")
    try:
        with session_scope() as session:
            result = analytics(session, date_from or None, date_to or None, campaign or None)
            if out is not None:
                out.write_text("".join(csv_rows(result, by)), encoding="utf-8")
                audit(session, _actor(), "broadcasts.analytics.export", "broadcast_analytics", by,
                      {"from": str(result.start), "to": str(result.end), "campaign": result.campaign})
    except AppError as exc:
        raise _fail(exc) from None
    points = result.days if by == "days" else result.campaigns
    table = Table(by[:-1], "broadcasts", "cost", "unique clicks", "CTR %", "delivery %", "visits", "REG", "FTD",
                  title=f"{result.start} to {result.end}")
    for p in [*points, result.total]:
        if by == "days" and not p.broadcasts and p is not result.total:
            continue
        table.add_row(p.label, str(p.broadcasts), f"{p.cost:,.2f}", str(p.unique_clicks), str(p.ctr),
                      str(p.delivery_rate), str(p.visits), str(p.regs), str(p.ftds))
    _console().print(table)
    if out is not None:
        _console().print(f"CSV written to {out}")


# --- exchange rates (docs/money.md) ----------------------------------------------------------------------

rates_app = typer.Typer(help="The admins' exchange rates: MESSAGEWHIZ_CURRENCY → VOLUUM_CURRENCY, one per day.",
                        no_args_is_help=True)
app.add_typer(rates_app, name="rates")


@rates_app.command("list")
def rates_list() -> None:
    """The billing and tracker currencies and every stored rate, newest day first."""
    from phoneops.broadcasts.money import billing_currency, list_rates, tracker_currency
    from phoneops.core.db import session_scope

    _boot()
    billed, tracker = billing_currency(), tracker_currency()
    table = Table("day", "pair", "rate", "set by", "set at (UTC)")
    with session_scope() as session:
        for r in list_rates(session):
            table.add_row(str(r.day), f"{r.from_currency}→{r.to_currency}", str(r.rate.normalize()), r.set_by,
                          r.set_at.isoformat(timespec="seconds"))
    note = "no rate needed" if billed == tracker else "costs are pushed converted with the day's rate"
    _console().print(f"MessageWhiz bills in {billed}, Voluum counts in {tracker}: {note}.")
    _console().print(table)


@rates_app.command("set")
def rates_set(
    day: Annotated[str, typer.Argument(help="The day (YYYY-MM-DD, UTC)")],
    rate: Annotated[str, typer.Argument(help="Units of VOLUUM_CURRENCY one unit of MESSAGEWHIZ_CURRENCY is worth")],
) -> None:
    """Set or replace one day's rate (audited with the previous value)."""
    from phoneops.broadcasts.money import set_rate
    from phoneops.core.db import session_scope

    _boot()
    try:
        with session_scope() as session:
            row = set_rate(session, _actor(), day, rate)
            text = f"{row.day}: 1 {row.from_currency} = {row.rate.normalize()} {row.to_currency}"
    except AppError as exc:
        raise _fail(exc) from None
    _console().print(text)


@rates_app.command("delete")
def rates_delete(day: Annotated[str, typer.Argument(help="The day (YYYY-MM-DD, UTC)")]) -> None:
    """Delete one day's rate (audited); that day's pushes wait again until a rate is set."""
    from phoneops.broadcasts.money import delete_rate
    from phoneops.core.db import session_scope

    _boot()
    try:
        with session_scope() as session:
            delete_rate(session, _actor(), day)
    except AppError as exc:
        raise _fail(exc) from None
    _console().print(f"rate of {day} deleted")
