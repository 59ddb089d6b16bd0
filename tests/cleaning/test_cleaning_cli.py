"""`phoneops cleaning ...` through Typer's CliRunner, with DATABASE_URL from the environment."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from cleaning_kit import GB_1, SAMPLE, csv_bytes, read_csv, seed_lists
from typer.testing import CliRunner

from phoneops.cleaning.cli import app

runner = CliRunner()


@pytest.fixture(autouse=True)
def cli_database(db_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    from phoneops.core import jobs
    from phoneops.settings import reset_settings_cache

    monkeypatch.setenv("DATABASE_URL", db_url)
    reset_settings_cache()
    yield
    jobs.set_enqueue_hook(lambda job_id, delay: None)
    reset_settings_cache()


def test_clean_in_one_step(tmp_path: Path) -> None:
    seed_lists()
    source = tmp_path / "campaign.csv"
    source.write_bytes(csv_bytes(SAMPLE))
    result = runner.invoke(app, ["clean", str(source), "--out", str(tmp_path / "out"), "--filter", "monitor"])
    assert result.exit_code == 0, result.output
    assert "blacklisted" in result.output and "monitored" in result.output
    clean = read_csv((tmp_path / "out" / "clean_campaign.csv").read_text())
    assert clean[1] == ["ann", GB_1, "London"]
    rejected = read_csv((tmp_path / "out" / "rejected_campaign.csv").read_text())
    assert len(rejected) == 1 + 4  # invalid, duplicate, blacklisted, monitored


def test_upload_run_stats_download_and_delete(tmp_path: Path) -> None:
    from phoneops.core import jobs

    source = tmp_path / "list.tsv"
    source.write_bytes(csv_bytes(SAMPLE, "\t"))
    uploaded = runner.invoke(app, ["upload", str(source), "--region", "GB"])
    assert uploaded.exit_code == 0, uploaded.output
    assert "phone column: phone" in uploaded.output
    jobs.set_enqueue_hook(lambda job_id, delay: jobs.run_job(job_id))
    ran = runner.invoke(app, ["run", "1", "--add-to-used"])
    assert ran.exit_code == 0, ran.output
    stats = runner.invoke(app, ["stats", "1", "--json"])
    assert json.loads(stats.output.strip().splitlines()[-1])["outcomes"]["kept"] == 6
    saved = runner.invoke(app, ["download", "1", "rejected", "--out", str(tmp_path)])
    assert saved.exit_code == 0, saved.output
    assert (tmp_path / "rejected_list.tsv").read_text().startswith("name\tphone\tcity\treason\tdetail\n")
    listed = runner.invoke(app, ["list"])
    assert "list.tsv" in listed.output
    assert runner.invoke(app, ["delete", "1"]).exit_code == 0
    assert runner.invoke(app, ["download", "1", "clean"]).exit_code == 1


def test_bad_file_and_bad_options_exit_1(tmp_path: Path) -> None:
    empty = tmp_path / "empty.csv"
    empty.write_bytes(b"")
    result = runner.invoke(app, ["upload", str(empty)])
    assert result.exit_code == 1
    assert "the file is empty" in result.output
    good = tmp_path / "good.csv"
    good.write_bytes(csv_bytes(SAMPLE))
    assert runner.invoke(app, ["upload", str(good), "--region", "QQ"]).exit_code == 1
    assert runner.invoke(app, ["upload", str(good)]).exit_code == 0
    refused = runner.invoke(app, ["run", "1", "--column", "nope", "--no-wait"])
    assert refused.exit_code == 1 and "unknown column" in refused.output


def test_convert(tmp_path: Path) -> None:
    source = tmp_path / "numbers.csv"
    source.write_bytes(csv_bytes([["phone"], ["07400 123456"]]))
    result = runner.invoke(app, ["convert", str(source), "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert read_csv((tmp_path / "encrypted_numbers.csv").read_text())[1][0].startswith("v1.")


def test_clean_with_line_types_from_another_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    source = tmp_path / "in" / "lines.csv"
    source.parent.mkdir()
    source.write_bytes(csv_bytes([["name", "phone"], ["ann", "07400 123456"], ["bob", "0800 123 4567"]]))
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(app, ["clean", "in/lines.csv", "--out", "out", "--line-type", "--sms-only",
                                 "--sms-type", "mobile"])
    assert result.exit_code == 0, result.output
    assert read_csv((tmp_path / "out" / "clean_lines.csv").read_text()) == [["name", "phone", "line_type"],
                                                                              ["ann", GB_1, "mobile"]]
    rejected = read_csv((tmp_path / "out" / "rejected_lines.csv").read_text())
    assert rejected[1] == ["bob", "0800 123 4567", "cannot_receive_sms", "toll_free"]
    bad = runner.invoke(app, ["clean", "in/lines.csv", "--out", "out", "--sms-only", "--sms-type", "landline"])
    assert bad.exit_code == 1 and "landline" in bad.output
