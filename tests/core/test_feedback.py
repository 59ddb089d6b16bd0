"""Feedback and navigation: a flash message after an action (success and failure), job pages that link back
to what started them (and that page to the job), counters a person reads, and the navigation's notice when a
job the user started ends while they are on other pages."""

from __future__ import annotations

import re
from typing import Any

from phoneops.core.db import session_scope
from phoneops.core.jobs import cancel_job, get_job
from phoneops.core.sample import start_sample
from phoneops.core.security import Principal, Role
from support import login

HTML = {"Accept": "text/html,application/xhtml+xml"}


def _flash(page: str) -> str:
    match = re.search(r"data-flash>(.*?)</p>", page, flags=re.S)
    return match.group(1) if match else ""


def test_actions_answer_with_a_flash_and_jobs_link_both_ways(client: Any, users: Any, inline_jobs: list[str]) -> None:
    users.create("operator", "olga")
    csrf = login(client, "olga")
    started = client.post("/numbers/exports", data={"status": "blacklist", "csrf_token": csrf}, headers=HTML)
    assert started.status_code == 200
    flash = _flash(started.text)
    assert "Export of the blacklist started" in flash
    job_id = re.search(r'href="/jobs/([0-9a-f-]{36})" data-flash-link', flash)
    assert job_id, flash
    assert f'href="/jobs/{job_id.group(1)}"' in started.text.split("data-flash", 2)[2]  # the page lists the job
    job_page = client.get(f"/jobs/{job_id.group(1)}", headers=HTML).text
    assert 'data-job-origin>Started from <a href="/numbers/exports">Exports</a>' in job_page
    assert "<pre" not in job_page  # counters and result as labelled values, not JSON
    assert "data-flash" not in client.get("/numbers/exports", headers=HTML).text  # shown once
    # a failure is a flash too, and changes nothing
    refused = client.post("/numbers/exports", data={"status": "nolist", "csrf_token": csrf}, headers=HTML)
    assert refused.status_code == 200 and 'class="alert flash error"' in refused.text
    assert "Not started" in _flash(refused.text) and refused.text.count('data-job-id="') == 1
    assert "Sample job of 3 steps started." in _flash(
        client.post("/jobs/sample", data={"steps": "3", "csrf_token": csrf}, headers=HTML).text)


def test_counters_read_as_labelled_numbers(client: Any, users: Any, inline_jobs: list[str]) -> None:
    from phoneops.ui.render import human_pairs

    assert human_pairs({"rows_skipped": 12345, "cost": 2.5, "paid": True, "by_country": {"GB": 3}, "note": None}) == [
        ("Rows skipped", "12,345"), ("Cost", "2.5"), ("Paid", "yes"), ("By country", '{"GB": 3}'), ("Note", "—")]
    users.create("operator", "olga")
    login(client, "olga")
    with session_scope() as session:
        job = start_sample(session, Principal(user_id=None, username="cli", role=Role.operator), 3, 0)
    page = client.get(f"/jobs/{job.id}", headers=HTML).text
    assert "<dt>Steps</dt><dd>3</dd><dt>Resumed at</dt><dd>0</dd>" in page, page[page.find("Counters"):][:400]


def test_the_nav_tells_when_a_job_the_user_started_ends(client: Any, users: Any, inline_jobs: list[str]) -> None:
    users.create("operator", "olga")
    users.create("operator", "other")
    csrf = login(client, "olga")
    assert "data-job-notice" not in client.get("/", headers=HTML).text
    first = client.post("/jobs/sample", data={"steps": "1", "csrf_token": csrf}, follow_redirects=False)
    job_id = first.headers["location"].rsplit("/", 1)[1]
    assert get_job_status(job_id) == "succeeded"
    elsewhere = client.get("/numbers", headers=HTML).text
    notice = re.search(r'<a class="job-notice ok" href="/jobs/([^"]+)" data-job-notice[^>]*>(.*?)</a>', elsewhere)
    assert notice and notice.group(1) == job_id and "finished" in notice.group(2), elsewhere[:3000]
    assert "data-job-notice" in client.get("/voluum", headers=HTML).text  # until seen
    client.get(f"/jobs/{job_id}", headers=HTML)  # seen
    assert "data-job-notice" not in client.get("/numbers", headers=HTML).text
    # two more: one ends, one is cancelled; someone else's job is never told
    with session_scope() as session:
        olga = Principal(user_id=_user_id("olga"), username="olga", role=Role.operator)
        done = start_sample(session, olga, 1, 0).id
        start_sample(session, Principal(user_id=_user_id("other"), username="other", role=Role.operator), 1, 0)
    from phoneops.core import jobs

    jobs.set_enqueue_hook(lambda job_id, delay: None)  # the next one stays queued until cancelled
    with session_scope() as session:
        olga = Principal(user_id=_user_id("olga"), username="olga", role=Role.operator)
        stopped = start_sample(session, olga, 5, 0).id
    with session_scope() as session:
        cancel_job(session, olga, stopped)
    page = client.get("/numbers", headers=HTML).text
    assert "2 of your jobs ended" in page and 'href="/jobs?user=olga" data-job-notice' in page, done
    assert "data-job-notice" not in client.get("/jobs", headers=HTML).text  # the list marks them seen
    assert "data-job-notice" not in client.get("/numbers", headers=HTML).text
    # a forged "seen" cookie only changes this user's own notices, and a bad one is ignored
    client.cookies.set("phoneops_jobs_seen", "not-a-time")
    assert client.get("/numbers", headers=HTML).status_code == 200


def get_job_status(job_id: str) -> str:
    with session_scope() as session:
        return get_job(session, job_id).status


def _user_id(username: str) -> int:
    from sqlalchemy import select

    from phoneops.core.models import User

    with session_scope() as session:
        found = session.scalar(select(User.id).where(User.username == username))
        assert found is not None
        return found
