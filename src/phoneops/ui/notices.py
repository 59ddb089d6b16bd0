"""The navigation's job notice: a job the user started ended (succeeded, failed or was cancelled) while they
were on other pages. Every page shows it until the user opens the jobs list or that job's page; what was
seen is a timestamp in a cookie of this browser (a forged value only hides or shows the user's own notices).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from urllib.parse import urlencode

import structlog
from fastapi import Request, Response
from sqlalchemy.exc import SQLAlchemyError

from phoneops.core.security import Principal
from phoneops.settings import get_settings

log = structlog.get_logger("phoneops.ui.notices")

SEEN_COOKIE = "phoneops_jobs_seen"
FIRST_LOOKBACK = timedelta(minutes=30)  # a browser that has seen nothing yet: jobs ended this recently
MAX_AGE = timedelta(days=1)  # never older than this
JOB_PAGE = re.compile(r"^/jobs/([0-9a-f-]{36})$")


@dataclass(frozen=True)
class JobNotice:
    text: str
    href: str
    kind: str  # ok | error


def _seen(request: Request, now: datetime) -> datetime:
    raw = request.cookies.get(SEEN_COOKIE, "")
    try:
        seen = datetime.fromtimestamp(float(raw), tz=UTC)
    except (ValueError, OverflowError, OSError):
        seen = now - FIRST_LOOKBACK
    return max(seen, now - MAX_AGE)


def job_notice(request: Request, principal: Principal | None) -> tuple[JobNotice | None, bool]:
    """The notice for this page, and whether to mark every ended job as seen (the jobs list, or the page of
    the only job there was to tell about)."""
    if principal is None or principal.user_id is None or principal.via != "session":
        return None, False
    path = request.url.path
    if path == "/jobs":
        return None, True
    from phoneops.core.db import session_scope, utcnow
    from phoneops.core.jobs import finished_since

    now = utcnow()
    try:
        with session_scope() as session:
            ended = [(j.id, j.title or j.kind, j.status)
                     for j in finished_since(session, principal.user_id, _seen(request, now), limit=10)]
    except SQLAlchemyError:  # a page (an error page) must render even when the database does not answer
        log.warning("ui.job_notice_failed", exc_info=True)
        return None, False
    viewing = JOB_PAGE.match(path)
    others = [job for job in ended if not viewing or job[0] != viewing.group(1)]
    if not others:
        return None, bool(viewing and ended)
    failed = sum(1 for _id, _title, status in others if status == "failed")
    if len(others) == 1:
        job_id, title, status = others[0]
        word = {"succeeded": "finished", "failed": "failed", "cancelled": "was cancelled"}.get(status, status)
        return JobNotice(f"Your job “{title[:60]}” {word}", f"/jobs/{job_id}", "error" if failed else "ok"), False
    more = "+" if len(others) >= 10 else ""
    text = f"{len(others)}{more} of your jobs ended" + (f", {failed} failed" if failed else "")
    return JobNotice(text, "/jobs?" + urlencode({"user": principal.username}), "error" if failed else "ok"), False


def mark_seen(response: Response) -> None:
    from phoneops.core.db import utcnow

    response.set_cookie(SEEN_COOKIE, f"{utcnow().timestamp():.3f}", max_age=int(MAX_AGE.total_seconds()), path="/",
                        httponly=True, samesite="lax", secure=get_settings().secure_cookies)
