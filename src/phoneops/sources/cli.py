"""`phoneops sources report`: which lists pay, for a period, as a table or CSV (docs/sources.md)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from phoneops.core.commands import bootstrap, cli_actor, console, fail
from phoneops.core.errors import AppError

NAME = "sources"
app = typer.Typer(help="Sources: which lists pay (docs/sources.md).", no_args_is_help=True)

COLUMNS = ("lists", "numbers", "kept", "opted_out", "hlr_spend", "sms_sent", "sms_cost", "clicks", "regs", "ftds",
           "revenue", "cost", "cost_per_ftd", "roi_percent")


@app.callback()
def main() -> None:
    """Sources: which lists pay (docs/sources.md)."""


@app.command("report")
def report(
    date_from: Annotated[str | None, typer.Option("--from", help="First day, YYYY-MM-DD (default: 30 days back)")]
    = None,
    date_to: Annotated[str | None, typer.Option("--to", help="Last day, YYYY-MM-DD (default: today)")] = None,
    csv_path: Annotated[Path | None, typer.Option("--csv", help="Write the report as CSV to this file ('-': "
                                                                 "standard output) instead of a table")] = None,
) -> None:
    """Per source for the period: lists, numbers, kept, opted out, HLR spend, SMS, clicks, REG, FTD, revenue,
    cost, cost per FTD and ROI."""
    from phoneops.core.audit import audit
    from phoneops.core.db import session_scope
    from phoneops.sources import service

    bootstrap()
    try:
        with session_scope() as session:
            result = service.report(session, date_from, date_to)
            if csv_path is not None:
                audit(session, cli_actor(), "sources.export", "sources_report", None,
                      {"from": str(result.start), "to": str(result.end)})
    except AppError as exc:
        raise fail(exc) from None
    if csv_path is not None:
        text = "".join(service.csv_text(result))
        if str(csv_path) == "-":
            typer.echo(text, nl=False)
        else:
            csv_path.write_text(text, encoding="utf-8")
            console.print(f"wrote {len(result.sources)} sources ({result.start} to {result.end}) to {csv_path}")
        return
    if not result.sources:
        console.print(f"no sources yet ({result.start} to {result.end}): label a list when it comes in")
        return
    table = Table("source", *(c.replace("_", " ") for c in COLUMNS), title=f"{result.start} to {result.end}")
    for line in result.sources:
        values = line.as_dict()
        table.add_row(line.source, *("-" if values[c] is None else str(values[c]) for c in COLUMNS))
    console.print(table)
