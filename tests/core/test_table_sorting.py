"""Jobs and audit tables sort by the column header a person clicks, keep their filters, and refuse a sort key
they do not know with a message on the page (the table still shows), never a 500 or SQL from the address."""

from __future__ import annotations

import re
from typing import Any

import pytest

from phoneops.core.audit import audit, search_events
from phoneops.core.db import session_scope
from phoneops.core.errors import ValidationFailed
from phoneops.core.jobs import create_job, list_jobs
from phoneops.core.models import Job
from phoneops.core.security import Principal, Role
from support import login

HTML = {"Accept": "text/html,application/xhtml+xml"}
ADMIN = Principal(user_id=None, username="cli", role=Role.admin, via="cli")


def _job_ids(page: str) -> list[str]:
    return re.findall(r'data-job-id="([0-9a-f-]{36})"', page)


def test_jobs_sort_by_each_header_and_keep_their_filters(client: Any, users: Any) -> None:
    users.create("operator", "olga")
    login(client, "olga")
    with session_scope() as session:
        made = {title: create_job(session, ADMIN, "sample.count", {"steps": 1}, title=title).id
                for title in ("charlie", "alpha", "bravo")}
        failed = session.get(Job, made["alpha"])
        assert failed is not None
        failed.status = "failed"
    by_title = _job_ids(client.get("/jobs?sort=title", headers=HTML).text)
    assert by_title == [made["alpha"], made["bravo"], made["charlie"]]
    assert _job_ids(client.get("/jobs?sort=-title", headers=HTML).text) == by_title[::-1]
    newest_first = _job_ids(client.get("/jobs", headers=HTML).text)
    assert newest_first == [made["bravo"], made["alpha"], made["charlie"]]
    page = client.get("/jobs?status=queued&sort=title", headers=HTML).text
    assert _job_ids(page) == [made["bravo"], made["charlie"]]  # the filter holds under the sort
    assert 'href="/jobs?status=queued&amp;sort=-title" data-sort="title"' in page  # clicking again reverses
    assert 'name="sort" value="title"' in page  # filtering again keeps the sort
    with session_scope() as session:
        assert next(j.id for j in list_jobs(session, sort="status")) == made["alpha"]  # failed < queued


@pytest.mark.parametrize("bad", ["id; DROP TABLE jobs", "sealed", "--created", "progress"])
def test_an_unknown_sort_key_is_said_on_the_page_and_changes_nothing(client: Any, users: Any, bad: str) -> None:
    users.create("admin", "ada")
    login(client, "ada")
    with session_scope() as session:
        job_id = create_job(session, ADMIN, "sample.count", {"steps": 1}, title="kept").id
        with pytest.raises(ValidationFailed, match="cannot sort by"):
            list_jobs(session, sort=bad)
        with pytest.raises(ValidationFailed, match="sort by one of at, actor, action, target"):
            search_events(session, sort=bad)
    for path in ("/jobs", "/admin/audit"):
        answer = client.get(path, params={"sort": bad}, headers=HTML)
        assert answer.status_code == 422 and "cannot sort by" in answer.text and "<table" in answer.text
    assert _job_ids(client.get("/jobs", headers=HTML).text) == [job_id]


def test_the_audit_log_sorts_by_action_and_user(client: Any, users: Any) -> None:
    users.create("admin", "ada")
    login(client, "ada")
    with session_scope() as session:
        for actor, action in (("zoe", "b.second"), ("amy", "c.third"), ("kim", "a.first")):
            audit(session, Principal(user_id=None, username=actor, role=Role.operator, via="api"), action, None, None)
    page = client.get("/admin/audit?sort=action", headers=HTML).text
    order = list(re.findall(r"<td>([abc]\.\w+)</td>", page))
    assert order == ["a.first", "b.second", "c.third"]
    page = client.get("/admin/audit?sort=-actor&user=amy", headers=HTML).text
    assert re.findall(r"<td>([abc]\.\w+)</td>", page) == ["c.third"]
    assert 'href="/admin/audit?user=amy&amp;sort=actor" data-sort="actor"' in page


def test_the_audit_log_exports_what_the_table_shows(client: Any, users: Any) -> None:
    users.create("admin", "ada")
    users.create("operator", "olga")
    login(client, "ada")
    with session_scope() as session:
        for actor, action in (("zoe", "b.second"), ("amy", "=c.third"), ("amy", "a.first")):
            audit(session, Principal(user_id=None, username=actor, role=Role.operator, via="api"), action, None, None,
                  {"note": "=HYPERLINK(1)"})
    page = client.get("/admin/audit?user=amy&sort=action", headers=HTML).text
    assert 'href="/admin/audit/export.csv?user=amy&amp;sort=action" data-export="csv"' in page
    answer = client.get("/admin/audit/export.csv?user=amy&sort=action")
    assert answer.status_code == 200 and answer.headers["content-type"].startswith("text/csv")
    rows = answer.text.splitlines()
    assert rows[0] == "at,user,action,target_type,target_id,client_ip,detail"
    actions = [row.split(",")[2] for row in rows[1:]]
    assert actions == ["'=c.third", "a.first"]  # the filter and the sort hold; formulas are neutralised
    assert all(row.split(",", 6)[6].startswith('"{') for row in rows[1:])  # the detail is one JSON cell
    with session_scope() as session:
        assert [e.detail["rows"] for e in search_events(session, action="audit.export")] == [2]
    client.cookies.clear()
    login(client, "olga")
    assert client.get("/admin/audit/export.csv").status_code == 403
