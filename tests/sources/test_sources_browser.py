"""The sources page on the demo, as the marketing lead meets it: `phoneops demo` seeds three labelled lists whose
ROI differ; the page shows them with their numbers and money, a chart each, and the CSV says the same."""

from __future__ import annotations

import csv
import io
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from support import TEST_ENV, free_port, stop_process, wait_http

SHOTS = Path(os.environ.get("PHONEOPS_SCREENSHOTS", "/tmp/i19"))


@pytest.mark.timeout(900)
@pytest.mark.xdist_group("processes")
def test_the_demo_shows_three_sources_whose_roi_differ(tmp_path: Path, browser: Any) -> None:
    env = {k: v for k, v in os.environ.items()
           if k not in TEST_ENV and not k.startswith(("GSM_", "HLR_", "VOLUUM_", "ONGAGE_", "MESSAGEWHIZ_"))}
    env["PYTHONUNBUFFERED"] = "1"
    port = free_port()
    log = tmp_path / "demo.log"
    with log.open("wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "phoneops", "demo", "--port", str(port)], cwd=tmp_path,
                                env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        base = f"http://127.0.0.1:{port}"
        wait_http(f"{base}/health", timeout=600)
        text = log.read_text()
        assert "Traceback" not in text, text
        password = re.search(r"password (\S+) ", text)
        assert password, text
        page = browser.new_page(viewport={"width": 1440, "height": 1000})
        page.goto(base + "/login")
        page.fill("input[name=username]", "admin")
        page.fill("input[name=password]", password.group(1))
        page.click("button[type=submit]")
        page.wait_for_selector("h1:has-text('Dashboard')")
        page.click("nav.nav a:has-text('Sources')")
        page.wait_for_selector("h1:has-text('Sources')")
        rows = page.locator("table[data-table=sources] tbody tr")
        assert rows.count() >= 3, page.content()[:3000]
        roi = [rows.nth(i).locator("[data-field=roi]").inner_text().strip() for i in range(rows.count())]
        assert len(set(roi)) >= 3 and all(r.endswith("%") for r in roi[:3]), roi
        values = [float(r.rstrip("%")) for r in roi[:3]]
        assert values == sorted(values, reverse=True) and values[0] > 0 > values[-1], values  # best first
        first = rows.nth(0).inner_text()
        assert re.search(r"\b[1-9]\d*\b", first)  # numbers and FTDs counted
        assert page.locator("section[data-chart] svg.line-chart").count() >= 3
        SHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SHOTS / "sources-demo.png"), full_page=True)
        # A bad period is refused with a message, the page still shows the sources.
        page.fill("input[name=date_from]", "2026-12-31")
        page.fill("input[name=date_to]", "2026-01-01")
        page.click("form[data-form=sources] button[type=submit]")
        page.wait_for_selector("[data-field=error]")
        assert "ends" in page.locator("[data-field=error]").inner_text()
        assert page.locator("table[data-table=sources] tbody tr").count() == rows.count()
        # The CSV says what the page says.
        csv_text = page.request.get(base + "/api/sources/report.csv").text()
        lines = list(csv.DictReader(io.StringIO(csv_text)))
        assert [f"{line['roi_percent']}%" for line in lines][:3] == roi[:3]
        assert all(re.fullmatch(r"[a-z0-9 ._-]+", line["source"]) for line in lines)
    finally:
        stop_process(proc)
