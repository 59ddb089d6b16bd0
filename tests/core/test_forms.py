"""Pages as a browser uses them: empty fields mean "not set", a bad value shows the form again with the
message (never raw JSON), the 403 page keeps the navigation, flash messages show once, charts keyed by id."""

from __future__ import annotations

import re
from datetime import date
from decimal import Decimal
from typing import Any

import pytest

from phoneops.ui.charts import bar_chart, colour_for
from support import login

HTML = {"Accept": "text/html,application/xhtml+xml"}


def _is_json(response: Any) -> bool:
    return response.headers.get("content-type", "").startswith("application/json")


def test_empty_form_fields_mean_not_set(client: Any, users: Any) -> None:
    users.create("viewer", "vera")
    login(client, "vera")
    # what a browser sends for the IMEI history search with every field left empty
    fields = ("imei", "imeis", "order_id", "status", "state", "service_id", "date_from", "date_to", "q", "batch_id")
    empty = dict.fromkeys(fields, "")
    history = client.get("/imei/history", params=empty, headers=HTML)
    assert history.status_code == 200 and not _is_json(history)
    one = client.get("/imei/history", params={**empty, "date_to": "2026-01-31"}, headers=HTML)
    assert one.status_code == 200 and 'value="2026-01-31"' in one.text
    stats = client.get("/imei/stats?days=", headers=HTML)
    assert stats.status_code == 200 and not _is_json(stats)
    # the API reads an empty parameter the same way
    api = client.get("/api/imei/orders", params={"date_from": "", "date_to": ""})
    assert api.status_code == 200, api.text
    assert client.get("/api/imei/spend?days=").status_code == 200


def test_a_bad_value_shows_the_form_again_with_the_message(client: Any, users: Any) -> None:
    users.create("viewer", "vera")
    login(client, "vera")
    answer = client.get("/imei/history?date_from=yesterday&imei=356938035643809", headers=HTML,
                        follow_redirects=False)
    assert answer.status_code == 303
    # the other fields are kept, the bad one dropped
    assert answer.headers["location"] == "/imei/history?imei=356938035643809"
    page = client.get(answer.headers["location"], headers=HTML)
    assert page.status_code == 200 and not _is_json(page)
    assert "date_from" in page.text and "Not a valid value" in page.text
    assert '>356938035643809</textarea>' in page.text
    # shown once
    again = client.get("/imei/history", headers=HTML)
    assert "Not a valid value" not in again.text
    stats = client.get("/imei/stats?days=0", headers=HTML)
    assert stats.status_code == 200 and "days" in stats.text and "Not a valid value" in stats.text
    # a bad path value: the error page (with the navigation), not JSON
    bad_path = client.get("/imei/orders/not-a-number", headers=HTML)
    assert bad_path.status_code == 422 and not _is_json(bad_path) and 'class="nav"' in bad_path.text
    # the API keeps its JSON error shape
    api = client.get("/api/imei/orders?date_from=yesterday")
    assert api.status_code == 422 and api.json()["error"]["code"] == "validation_error"


def test_forbidden_page_keeps_the_navigation(client: Any, users: Any) -> None:
    users.create("viewer", "vera")
    login(client, "vera")
    page = client.get("/admin/users", headers=HTML)
    assert page.status_code == 403
    assert 'class="nav"' in page.text and "vera" in page.text and "Log out" in page.text


def test_a_forged_flash_cookie_shows_nothing(client: Any, users: Any) -> None:
    users.create("viewer", "vera")
    login(client, "vera")
    client.cookies.set("phoneops_flash", "eyJ0ZXh0IjoiaGFja2VkIn0.forged.sig")
    page = client.get("/", headers=HTML)
    assert page.status_code == 200 and "hacked" not in page.text


def test_bar_chart_keys_by_id_labels_readably_and_colours_by_meaning() -> None:
    # four campaigns whose names share their first 18 characters stay four bars
    data = {f"c{i}": v for i, v in enumerate((100.5, 200.0, 300.0, 29.33))}
    labels = {f"c{i}": f"Black Friday promo - GB - wave {i}" for i in range(4)}
    svg = str(bar_chart(data, labels=labels, title="Cost"))
    assert svg.count("<rect") == 4
    for i in range(4):
        assert f'data-key="c{i}"' in svg
        assert f"<title>Black Friday promo - GB - wave {i}: " in svg  # the full name in the tooltip
    assert "629.83" not in svg and "29.33" in svg
    lists = str(bar_chart({"whitelist": 5, "blacklist": 7, "monitor": 1}))
    fills = dict(re.findall(r'data-key="(\w+)">.*?fill="(#[0-9a-f]+)"', lists))
    assert fills["blacklist"] == colour_for("blacklist") == "#dc2626"
    assert fills["whitelist"] == "#16a34a"
    # the same meaning gets the same colour whatever its row
    assert str(bar_chart({"blacklist": 1})).count(colour_for("blacklist")) == 1


@pytest.mark.parametrize("names", [["Black Friday promo - GB - wave 1", "Black Friday promo - GB - wave 2",
                                    "Black Friday promo - GB - wave 3", "Black Friday promo - GB - wave 4"]])
def test_broadcast_analytics_charts_one_bar_per_campaign(
    client: Any, users: Any, session: Any, names: list[str]
) -> None:
    from phoneops.broadcasts.models import BroadcastStat

    day = date(2026, 11, 20)
    costs = [Decimal("100.50"), Decimal("200.00"), Decimal("300.00"), Decimal("29.33")]
    for i, (name, cost) in enumerate(zip(names, costs, strict=True)):
        session.add(BroadcastStat(broadcast_id=9000 + i, day=day, name=f"b{i}", group_name=f"b{i}",
                                  campaign_id=f"camp-{i:04d}-aaaa", campaign_name=name, price=cost,
                                  recipients=1000, unique_clicks=10 + i, delivered=900))
    session.commit()
    users.create("viewer", "vera")
    login(client, "vera")
    page = client.get("/broadcasts/analytics?date_from=2026-11-01&date_to=2026-11-30&campaign=", headers=HTML)
    assert page.status_code == 200
    cost_chart = page.text.split('aria-label="Cost per campaign"', 1)[1].split("</svg>", 1)[0]
    assert cost_chart.count("<rect") == 4
    for i, name in enumerate(names):
        assert f'data-key="camp-{i:04d}-aaaa"' in cost_chart and f"<title>{name}: " in cost_chart
    assert "300" in cost_chart and "29.33" in cost_chart and "629.83" not in cost_chart


def test_jobs_table_pages_filters_and_exports_what_it_shows(client: Any, users: Any, session: Any) -> None:
    from phoneops.core.jobs import create_job
    from phoneops.core.security import SYSTEM
    from phoneops.imei.tasks import SYNC_KIND

    for i in range(57):
        create_job(session, SYSTEM, "sample.count" if i % 3 else SYNC_KIND, {"i": i}, title=f"job {i}")
    session.commit()
    users.create("viewer", "vera")
    login(client, "vera")
    first = client.get("/jobs?status=&kind=&user=&date_from=&date_to=", headers=HTML)  # the form, left empty
    assert first.status_code == 200 and "57 jobs" in first.text and "page 1 of 2" in first.text
    assert first.text.count('data-job-id="') == 50
    second = client.get("/jobs?page=2", headers=HTML)
    assert second.text.count('data-job-id="') == 7
    beta = client.get(f"/jobs?kind={SYNC_KIND}", headers=HTML)
    assert "19 jobs matching" in beta.text and "page 1 of 1" in beta.text
    csv = client.get(f"/jobs/export.csv?kind={SYNC_KIND}")
    assert csv.status_code == 200 and csv.headers["content-type"].startswith("text/csv")
    lines = csv.text.strip().splitlines()
    assert lines[0].startswith("id,kind,title") and len(lines) == 1 + 19
    assert all(f",{SYNC_KIND}," in line for line in lines[1:])
    nobody = client.get("/jobs?user=nobody-at-all", headers=HTML)
    assert "0 jobs matching" in nobody.text


def test_audit_log_filters_and_pages(client: Any, users: Any, session: Any) -> None:
    from phoneops.core.audit import audit
    from phoneops.core.security import SYSTEM

    for i in range(130):
        audit(session, SYSTEM, "walk.test" if i % 2 else "walk.other", "thing", str(i), {"i": i})
    session.commit()
    users.create("admin", "ada")
    login(client, "ada")
    page = client.get("/admin/audit?action=&user=&date_from=&date_to=", headers=HTML)  # the form, left empty
    assert page.status_code == 200 and "page 1 of 2" in page.text
    test_only = client.get("/admin/audit?action=walk.test&user=system", headers=HTML)
    assert "65 events matching" in test_only.text and "page 1 of 1" in test_only.text
    assert "walk.other" not in test_only.text.split("<tbody>", 1)[1]
    last = client.get("/admin/audit?page=2", headers=HTML)
    assert last.status_code == 200 and "← newer" in last.text
