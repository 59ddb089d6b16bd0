"""A list as a table (Numbers → a list): filters, sortable columns, real pages with the total, the filtered
table as CSV; a bad sort key or a hostile value is a clear message, never a 500, and changes nothing.
Risky operators: real pages with the total."""

from __future__ import annotations

import csv
import io
import re
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import func, select, update

from phoneops.core.db import session_scope, utcnow
from phoneops.core.errors import ValidationFailed
from phoneops.core.models import AuditEvent
from phoneops.core.security import SYSTEM, Principal, Role
from phoneops.numbers import browse
from phoneops.numbers.lists import Authority, Verdict, apply_verdicts
from phoneops.numbers.models import PhoneNumber
from support import login

# (number, country, reason, source, days ago)
SEED = [
    ("+447400123401", "GB", "OS_VERSION", "VOLUUM", 1),
    ("+447400123402", "GB", "COMPLAINT", "support desk", 3),
    ("+447400123403", "GB", "OS_VERSION", "VOLUUM", 10),
    ("+61412345601", "AU", "OS_VERSION", "VOLUUM_LIVE", 2),
    ("+61412345602", "AU", "HLR_DEAD", "HLR", 20),
    ("+12127365001", "US", "COMPLAINT", "support desk", 5),
]


@pytest.fixture
def seeded(db_url: str) -> None:
    with session_scope() as session:
        apply_verdicts(session, SYSTEM, [Verdict(n, "blacklist", Authority.manual, reason, source)
                                         for n, _c, reason, source, _d in SEED])
    with session_scope() as session:  # spread the listing days (what weeks of syncs would have done)
        now = utcnow()
        for number, _c, _r, _s, days in SEED:
            from phoneops.numbers.vault import get_vault

            session.execute(update(PhoneNumber).where(PhoneNumber.blind_index == get_vault().index(number))
                            .values(listed_at=now - timedelta(days=days)))


def _numbers(rows: list[dict[str, Any]]) -> list[str]:
    return [r["number"] for r in rows]


ADMIN = Principal(user_id=None, username="boss", role=Role.admin)
VIEWER = Principal(user_id=None, username="val", role=Role.viewer)


def test_filters_sorts_and_pages_in_sql(seeded: None) -> None:
    with session_scope() as session:
        everything = browse.page(session, ADMIN, browse.ListQuery("blacklist"))
        # default: newest listed first
        assert _numbers(everything) == ["+447400123401", "+61412345601", "+447400123402", "+12127365001",
                                        "+447400123403", "+61412345602"]
        gb_os = browse.ListQuery("blacklist", country="gb", reason="OS_VERSION")
        assert browse.count(session, gb_os) == 2
        assert _numbers(browse.page(session, ADMIN, gb_os)) == ["+447400123401", "+447400123403"]
        by_source = browse.ListQuery("blacklist", source="support desk", sort="country")
        assert [r["country"] for r in browse.page(session, ADMIN, by_source)] == ["GB", "US"]
        recent = browse.ListQuery("blacklist", date_from=(utcnow() - timedelta(days=4)).date())
        assert browse.count(session, recent) == 3
        countries = [r["country"] for r in browse.page(session, ADMIN, browse.ListQuery("blacklist", sort="-country"))]
        assert countries == sorted(countries, reverse=True)
        second = browse.page(session, ADMIN, browse.ListQuery("blacklist"), limit=4, offset=4)
        assert _numbers(second) == _numbers(everything)[4:]
        assert browse.facets(session, "blacklist")["country"] == ["AU", "GB", "US"]
        masked = browse.page(session, VIEWER, gb_os)[0]["number"]
        assert "*" in masked and masked != "+447400123401"


def test_a_bad_sort_key_is_refused_with_the_keys_that_exist(seeded: None) -> None:
    for sort in ("number", "sealed", "listed_at; DROP TABLE phone_numbers", "--country", "id"):
        with session_scope() as session, pytest.raises(ValidationFailed) as refused:
            browse.page(session, ADMIN, browse.ListQuery("blacklist", sort=sort))
        assert refused.value.code == "bad_sort" and "country, reason, source, authority, listed_at" in refused.value.message
    with session_scope() as session:
        assert session.scalar(select(func.count(PhoneNumber.id))) == len(SEED)


def test_the_list_page_sorts_filters_pages_and_exports(seeded: None, client: Any, users: Any) -> None:
    users.create("viewer", "vera")
    login(client, "vera")
    page = client.get("/numbers/lists/blacklist", params={"country": "GB", "sort": "reason"})
    assert page.status_code == 200
    assert re.search(r"3 numbers matching", page.text)
    assert 'aria-sort="ascending"' in page.text and "sort=-reason" in page.text  # the header reverses it
    assert page.text.index("COMPLAINT") < page.text.index("OS_VERSION")
    # a hostile filter value is a bound parameter: no match, nothing changed
    odd = client.get("/numbers/lists/blacklist", params={"reason": "x' OR '1'='1"})
    assert odd.status_code == 200 and "No number matches these filters" in odd.text
    # a bad sort key: back to the table (filters kept) with the message, not a 500
    bad = client.get("/numbers/lists/blacklist", params={"country": "AU", "sort": "number"}, follow_redirects=False)
    assert bad.status_code == 303 and bad.headers["location"] == "/numbers/lists/blacklist?country=AU"
    shown = client.get(bad.headers["location"])
    assert "cannot sort by &#39;number&#39;" in shown.text and "2 numbers matching" in shown.text
    browser = {"Accept": "text/html"}  # as a browser asks: a bad date is dropped with the message
    bad_day = client.get("/numbers/lists/blacklist", params={"date_from": "not-a-day"}, headers=browser)
    assert bad_day.status_code == 200 and "Not a valid value" in bad_day.text and "6 numbers" in bad_day.text
    export = client.get("/numbers/lists/blacklist/export.csv", params={"source": "support desk", "sort": "country"})
    assert export.status_code == 200 and export.headers["content-type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(export.text)))
    assert rows[0] == list(browse.CSV_COLUMNS)
    assert [r[1] for r in rows[1:]] == ["GB", "US"] and all("*" in r[0] for r in rows[1:])  # masked for a viewer
    refused = client.get("/numbers/lists/blacklist/export.csv", params={"sort": "sealed"})
    assert refused.status_code == 422 and "cannot sort by" in refused.text
    with session_scope() as session:
        exports = session.scalars(select(AuditEvent).where(AuditEvent.action == "numbers.list.export")).all()
        assert len(exports) == 1 and exports[0].target_id == "blacklist"
        assert session.scalar(select(func.count(PhoneNumber.id))) == len(SEED)


def test_admin_export_has_the_numbers(seeded: None, client: Any, users: Any) -> None:
    users.create("admin", "ada")
    login(client, "ada")
    export = client.get("/numbers/lists/blacklist/export.csv", params={"country": "AU"})
    numbers = [r[0] for r in list(csv.reader(io.StringIO(export.text)))[1:]]
    assert numbers == ["+61412345601", "+61412345602"]


def test_risky_operators_come_in_pages(client: Any, users: Any) -> None:
    from phoneops.hlr import risky
    from phoneops.hlr.views import RISKY_PER_PAGE as PER

    with session_scope() as session:
        risky.restore_seed(session, SYSTEM)
        total = risky.count_operators(session)
    assert total > 2 * PER  # the original's names: several pages
    users.create("viewer", "rita")
    login(client, "rita")
    first = client.get("/hlr/risky")
    pages = -(-total // PER)
    assert f"{total:,} operators · page 1 of {pages}" in first.text
    assert first.text.count("<tr><td>") == PER and "page=2" in first.text
    last = client.get("/hlr/risky", params={"page": 999})
    assert last.status_code == 200 and last.text.count("<tr><td>") == total - PER * (pages - 1)
    found = client.get("/hlr/risky", params={"q": "vodafone"})
    assert re.search(r"\d+ of [\d,]+ operators · page 1 of 1", found.text)
    zero = client.get("/hlr/risky", params={"page": "0"}, headers={"Accept": "text/html"})
    assert zero.status_code == 200 and "Not a valid value" in zero.text and "page 1 of" in zero.text
