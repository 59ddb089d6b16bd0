"""Broadcast pages: days (import, history files, cost pushes), a day's broadcasts, the live view, analytics."""

from __future__ import annotations

import datetime as dt
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import RedirectResponse, Response
from sqlalchemy.orm import Session

from phoneops.broadcasts import analytics, costs, days, live, money
from phoneops.broadcasts.provider import is_configured, parse_day, today, yesterday
from phoneops.core.deps import DbSession, page_admin, page_operator, page_viewer
from phoneops.core.errors import AppError
from phoneops.core.security import Principal
from phoneops.settings import get_settings
from phoneops.ui.flash import redirect_with
from phoneops.ui.render import form_error, render
from phoneops.ui.views import Card

router = APIRouter(include_in_schema=False)
DB = DbSession  # commit before the response is sent


def dashboard_cards(session: Session) -> list[Card]:
    last = days.recent_days(session, 1)
    if not last:
        return [Card("Broadcasts", "no day imported yet", "/broadcasts")]
    record = last[0]
    return [Card(f"Broadcast cost on {record.day}", f"{record.cost:,.2f} {money.billing_currency()}",
                 f"/broadcasts/days/{record.day}")]


def _overview(request: Request, session: Session, principal: Principal, *, error: str | None = None,
              status_code: int = 200) -> Response:
    from phoneops.voluum.provider import is_configured as voluum_configured

    recent = days.recent_days(session, 60)
    return render(
        request, "broadcasts/overview.html", principal, status_code=status_code, error=error,
        configured=is_configured(), voluum_configured=voluum_configured(), days=recent,
        jobs=days.import_jobs(session), yesterday=yesterday(), today=today(),
        currency=get_settings().voluum_currency, billing=money.billing_currency(),
        chart={str(d.day): float(d.cost) for d in reversed(recent[:30])},
    )


@router.get("/broadcasts")
def overview(request: Request, session: Session = DB, principal: Principal = Depends(page_viewer)
             ) -> Response:
    return _overview(request, session, principal)


@router.post("/broadcasts/import")
def start_import(
    request: Request,
    day: str = Form(...),
    push_costs: bool = Form(False),
    session: Session = DB,
    principal: Principal = Depends(page_operator),
) -> Response:
    try:
        job = days.start_import(session, principal, day, push_costs=push_costs)
    except AppError as exc:
        return form_error(session, exc, _overview, request, session, principal)
    return redirect_with("/broadcasts", f"Import of {day} started.", link=("Follow the job", f"/jobs/{job.id}"))


def _day_page(request: Request, session: Session, principal: Principal, day: dt.date, search: str, *,
              error: str | None = None, pushed: bool = False, status_code: int = 200) -> Response:
    from phoneops.voluum.provider import is_configured as voluum_configured

    record = days.get_day(session, day)
    stats = days.day_stats(session, day, search)
    groups: dict[str, list[object]] = {}
    for row in stats:
        groups.setdefault(row.group_name, []).append(row)
    return render(
        request, "broadcasts/day.html", principal, status_code=status_code, error=error, pushed=pushed,
        record=record, stats=stats, groups=groups, search=search, campaigns=days.campaign_days(session, day),
        pushes=costs.cost_pushes(session, day), voluum_configured=voluum_configured(),
        billing=money.billing_currency(), tracker=money.tracker_currency(),
        rate_missing=None if money.rate_for(session, day) is not None or record.cost == record.unattributed_cost
        else money.missing_message(day),
    )


@router.get("/broadcasts/days/{day}")
def day_page(request: Request, day: str, search: str = "", pushed: int = 0, session: Session = DB,
             principal: Principal = Depends(page_viewer)) -> Response:
    return _day_page(request, session, principal, parse_day(day), search.strip()[:200], pushed=bool(pushed))


@router.post("/broadcasts/days/{day}/costs")
def push_costs(
    request: Request,
    day: str,
    force: bool = Form(False),
    session: Session = DB,
    principal: Principal = Depends(page_operator),
) -> Response:
    when = parse_day(day)
    try:
        costs.push_day_costs(session, principal, when, force=force)
    except AppError as exc:
        return form_error(session, exc, _day_page, request, session, principal, when, "")
    return redirect_with(f"/broadcasts/days/{when}?pushed=1#costs", f"Costs of {when} pushed to Voluum: each "
                         "campaign's outcome is in the table below.")


@router.get("/broadcasts/live")
def live_page(request: Request, search: str = "", every: float = live.DEFAULT_EVERY,
              principal: Principal = Depends(page_viewer)) -> Response:
    return render(request, "broadcasts/live.html", principal, configured=is_configured(), search=search[:200],
                  today=today(), every=max(live.MIN_EVERY, min(every, 3600.0)))


def _campaign_key(point: analytics.Point) -> str:
    return point.key or analytics.NO_CAMPAIGN


def _campaign_label(point: analytics.Point, every: list[analytics.Point]) -> str:
    """The campaign's name; with its id when another campaign in the range has the same name."""
    if not point.key or point.label == point.key:
        return point.label
    if sum(1 for p in every if p.label == point.label) > 1:
        return f"{point.label} ({point.key[:8]})"
    return point.label


@router.get("/broadcasts/analytics")
def analytics_page(
    request: Request,
    date_from: str = "",
    date_to: str = "",
    campaign: str = "",
    session: Session = DB,
    principal: Principal = Depends(page_viewer),
) -> Response:
    error = None
    try:
        result = analytics.analytics(session, date_from or None, date_to or None, campaign or None)
    except AppError as exc:
        error = exc.message
        result = analytics.analytics(session)
    params = {"from": str(result.start), "to": str(result.end)}
    if result.campaign:
        params["campaign"] = result.campaign
    query = urlencode(params)
    top_cost = sorted(result.campaigns, key=lambda p: p.cost, reverse=True)[:12]
    top_ftds = sorted(result.campaigns, key=lambda p: p.ftds, reverse=True)[:12]
    return render(
        request, "broadcasts/analytics.html", principal, error=error, result=result, query=query,
        billing=money.billing_currency(),
        campaign=result.campaign or "", no_campaign=analytics.NO_CAMPAIGN,
        # keyed by campaign id (names repeat and share prefixes), labelled by name
        cost_by_campaign={_campaign_key(p): float(p.cost) for p in top_cost},
        ftds_by_campaign={_campaign_key(p): float(p.ftds) for p in top_ftds},
        campaign_labels={_campaign_key(p): _campaign_label(p, result.campaigns) for p in result.campaigns},
    )


# --- exchange rates (admins; docs/money.md) ------------------------------------------------------------


def _rates_page(request: Request, session: Session, principal: Principal, *, error: str | None = None,
                saved: str = "", status_code: int = 200, form: dict[str, str] | None = None) -> Response:
    billed, tracker = money.billing_currency(), money.tracker_currency()
    return render(request, "broadcasts/rates.html", principal, status_code=status_code, error=error, saved=saved,
                  billing=billed, tracker=tracker, needed=billed != tracker, rates=money.list_rates(session),
                  today=today(), yesterday=yesterday(), form=form or {})


@router.get("/broadcasts/rates")
def rates_page(request: Request, saved: str = "", session: Session = DB,
               principal: Principal = Depends(page_admin)) -> Response:
    return _rates_page(request, session, principal, saved=saved[:40])


@router.post("/broadcasts/rates")
def set_rate(request: Request, day: str = Form(""), rate: str = Form(""), session: Session = DB,
             principal: Principal = Depends(page_admin)) -> Response:
    try:
        row = money.set_rate(session, principal, day, rate)
    except AppError as exc:
        return form_error(session, exc, _rates_page, request, session, principal,
                          form={"day": day[:20], "rate": rate[:40]})
    return RedirectResponse(f"/broadcasts/rates?saved={row.day}", status_code=303)  # the page says it was saved


@router.post("/broadcasts/rates/{day}/delete")
def delete_rate(request: Request, day: str, session: Session = DB,
                principal: Principal = Depends(page_admin)) -> Response:
    try:
        money.delete_rate(session, principal, day)
    except AppError as exc:
        return form_error(session, exc, _rates_page, request, session, principal)
    return redirect_with("/broadcasts/rates", f"Rate of {day} deleted.")
