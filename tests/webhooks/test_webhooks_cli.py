"""`phoneops webhooks`: add (with a generated secret), list, test against a real receiver (signed), deliveries,
resend, disable, remove; bad input refused with nothing stored."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from typer.testing import CliRunner

from phoneops.webhooks.cli import app
from webhook_receiver import Receiver, receiver, verify_signature

__all__ = ["receiver"]  # the fixture
runner = CliRunner()


@pytest.fixture
def cli_env(db_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    from phoneops.core import commands
    from phoneops.core.logging import configure_logging
    from phoneops.settings import get_settings, reset_settings_cache

    monkeypatch.setenv("DATABASE_URL", db_url)
    reset_settings_cache()
    for console in (commands.console, commands.err):  # wide enough that no line or table cell wraps
        monkeypatch.setattr(console, "width", 250)
    yield
    reset_settings_cache()
    settings = get_settings()
    configure_logging(settings.log_json, settings.log_level)  # the runner's captured stderr is closed now


def invoke(*args: str) -> Any:
    return runner.invoke(app, list(args), catch_exceptions=False)


def test_webhooks_cli_manages_endpoints_and_sends_signed_tests(cli_env: None, receiver: Receiver) -> None:
    refused = invoke("add", "ftp://example.org/x", "--event", "ping")
    assert refused.exit_code == 1 and "http(s) address" in refused.output
    unknown = invoke("add", receiver.url, "--event", "everything")
    assert unknown.exit_code == 1 and "unknown: everything" in unknown.output
    assert "no webhook endpoints" in invoke("list").output  # nothing stored by the refusals

    added = invoke("add", receiver.url, "-e", "job.failed", "-e", "ping")
    assert added.exit_code == 0, added.output
    endpoint_id = re.search(r"endpoint (\d+):", added.output).group(1)  # type: ignore[union-attr]
    secret = re.search(r"shown once; verify signatures with it\): (\S+)", added.output).group(1)  # type: ignore[union-attr]
    listed = invoke("list").output
    assert receiver.url in listed and "job.failed ping" in listed and "active" in listed

    sent = invoke("test", endpoint_id)
    assert sent.exit_code == 0 and "delivered, HTTP 200" in sent.output, sent.output
    [(headers, body)] = receiver.received
    assert verify_signature(secret, headers["phoneops-signature"], body) and headers["phoneops-event"] == "ping"

    receiver.statuses = [500]
    failing = invoke("test", endpoint_id)
    assert failing.exit_code == 1 and "pending, HTTP 500" in failing.output and "retried by the workers" in failing.output
    shown = invoke("deliveries", "--endpoint", endpoint_id).output
    assert "HTTP 500" in shown and "HTTP 200" in shown
    delivery_id = re.search(r"delivery (\d+): pending", failing.output).group(1)  # type: ignore[union-attr]
    resent = invoke("resend", delivery_id)
    assert resent.exit_code == 0 and "delivered" in resent.output and len(receiver.received) == 3

    assert "disabled" in invoke("disable", endpoint_id).output
    assert "disabled" in invoke("list").output
    assert invoke("test", endpoint_id).exit_code == 1  # a disabled endpoint is not sent to
    assert len(receiver.received) == 3
    assert invoke("remove", "999999", "--yes").exit_code == 1
    assert invoke("remove", endpoint_id, "--yes").exit_code == 0
    assert "no webhook endpoints" in invoke("list").output
    assert "ping" not in invoke("deliveries").output  # its history went with it
