"""The demo's live feed: moto's SQS on 127.0.0.1, the feeder and the production consumer; events reach the
database and the Live events page while it runs, and everything stops with the demo."""

from __future__ import annotations

import contextlib
import os
import random
import threading
import time
from typing import Any

import phonenumbers
import pytest
from sqlalchemy import func, select

from phoneops.core.db import session_scope
from phoneops.demo_live import demo_events, start_live_feed
from phoneops.voluum.models import LiveEvent, LiveRawEvent
from support import login

SETTINGS = ("SQS_QUEUE_URL", "AWS_ENDPOINT_URL", "AWS_REGION", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")


def _stored() -> tuple[int, int]:
    with session_scope() as session:
        return (session.scalar(select(func.count(LiveRawEvent.id))) or 0,
                session.scalar(select(func.count(LiveEvent.blind_index))) or 0)


def test_demo_events_are_valid_numbers_of_the_demo_campaigns() -> None:
    events = demo_events(random.Random(7), 40)
    assert len(events) == 40 and len({e["clickId"] for e in events}) == 40
    for event in events:
        number = phonenumbers.parse("+" + event["customVariables"][0])
        assert phonenumbers.is_valid_number(number), event["customVariables"][0]
        assert event["countryCode"] in ("GB", "AU", "US") and event["offerId"] and event["campaignId"]


def test_live_feed_fills_the_live_page_and_stops_with_the_demo(
    db_url: str, monkeypatch: pytest.MonkeyPatch, client: Any, users: Any
) -> None:
    for name in SETTINGS:  # start_live_feed writes these into the environment: put them back afterwards
        monkeypatch.setenv(name, "")
        monkeypatch.delenv(name)
    with contextlib.ExitStack() as stack:
        feed = start_live_feed(os.environ, stack, every=0.3)
        assert feed is not None and feed.queue_url.endswith("/phoneops-demo-voluum-live")
        assert os.environ["SQS_QUEUE_URL"] == feed.queue_url
        deadline = time.monotonic() + 30
        while _stored()[0] < 5 and time.monotonic() < deadline:
            time.sleep(0.3)
        raw, numbers = _stored()
        assert raw >= 5 and numbers >= 1, (raw, numbers, feed.sent, feed.consumer.stats.as_dict())
        assert feed.consumer.stats.totals.skipped == 0  # every demo number is readable
        users.create("viewer", "live-viewer")
        login(client, "live-viewer")
        page = client.get("/voluum/live").text
        assert 'data-refresh="3"' in page and "phoneops-demo-voluum-live" in page
        assert "No live events yet" not in page
    raw_after_stop, _ = _stored()
    time.sleep(1.5)
    assert _stored()[0] == raw_after_stop  # the feeder and the consumer stopped with the stack
    assert not any(t.name.startswith("demo-live") and t.is_alive() for t in threading.enumerate())


def test_a_real_queue_is_left_to_its_own_consumer(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SQS_QUEUE_URL", "https://sqs.eu-west-1.amazonaws.com/123456789012/real")
    with contextlib.ExitStack() as stack:
        assert start_live_feed(os.environ, stack) is None
    assert os.environ["SQS_QUEUE_URL"].endswith("/real")
