"""Live events: boto3 against moto's SQS server on 127.0.0.1 (the real SQS protocol), and the HTTP endpoint."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import func, select

from phoneops.core.db import session_scope
from phoneops.numbers.vault import get_vault
from phoneops.voluum import live
from phoneops.voluum.live import Consumer, ConsumerConfig, send_bodies, send_event_batches, sns_envelope, sqs_client
from phoneops.voluum.models import DeadLetter, LiveEvent, LiveRawEvent, Offer

BASE = datetime(2026, 2, 6, 12, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def moto_url() -> Iterator[str]:
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


@pytest.fixture
def queue(moto_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A fresh queue; settings point at it (AWS_ENDPOINT_URL = moto's server)."""
    from phoneops.settings import reset_settings_cache

    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_url)
    monkeypatch.setenv("AWS_REGION", "eu-west-1")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing-secret")
    reset_settings_cache()
    url = sqs_client().create_queue(QueueName=f"voluum-live-{uuid.uuid4().hex[:8]}")["QueueUrl"]
    monkeypatch.setenv("SQS_QUEUE_URL", url)
    reset_settings_cache()
    yield url
    monkeypatch.undo()
    reset_settings_cache()


def phone(n: int) -> str:
    return f"+4479111{n:05d}"


def event(n: int, number: int | None, *, offer: str = "offer-a", value: str | None = None) -> dict[str, Any]:
    """Event `n` (its timestamp BASE + n seconds) for number `number` (None: the placeholder)."""
    if value is None:
        value = "{{phoneNumber}}" if number is None else phone(number)[1:]
    return {
        "clickId": f"click-{n}", "campaignId": "camp-1", "offerId": offer,
        "timestamp": (BASE + timedelta(seconds=n)).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "externalId": "", "trafficSourceId": "ts-1", "landerId": "00000000-0000-0000-0000-000000000000",
        "affiliateNetworkId": "an-1", "brand": "Apple", "browser": "Mobile Safari", "browserVersion": "18",
        "device": "MOBILE", "model": "iPhone", "os": "iOS", "osVersion": "18.6", "city": "London",
        "region": "England", "countryCode": "GB", "isp": "EE", "ip": f"203.0.113.{n % 250}", "referrer": "",
        "customVariables": [value, "", "", "", "", "", "", "", "", ""], "url": "https://trk.example.com/x",
        "userAgent": "Mozilla/5.0", "language": "en", "mobileCarrier": "EE", "connectionType": 2,
        "flowId": "00000000-0000-0000-0000-000000000000", "pathId": "p-1",
    }


def queue_is_empty(url: str) -> bool:
    attrs = sqs_client().get_queue_attributes(
        QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
    )["Attributes"]
    return attrs["ApproximateNumberOfMessages"] == "0" and attrs["ApproximateNumberOfMessagesNotVisible"] == "0"


FAST = ConsumerConfig(wait_seconds=1, visibility_timeout=30, idle_initial=0.01, idle_max=0.05)


# --- the Done-when proof -------------------------------------------------------------------------------


def test_consumer_drains_1000_events_with_duplicates_and_3_malformed(db_url: str, queue: str) -> None:
    cipher = get_vault().cipher
    batches: list[list[dict[str, Any]]] = []
    latest: dict[int, int] = {}  # number -> n of its latest event
    for m in range(95):
        batch = []
        for k in range(10):
            n = m * 10 + k
            number = None if n % 97 == 0 else (n * 7) % 240
            if k == 1 and number is not None:
                number = batch[0]["number"] if batch[0]["number"] is not None else number  # twice in one batch
            value = cipher.encrypt(phone(number)) if number is not None and n % 5 == 0 else None
            item = event(n, number, value=value, offer=f"offer-{n % 3}")
            item["number"] = number
            batch.append(item)
            if number is not None:
                latest[number] = max(latest.get(number, -1), n)
        batches.append(batch)
    batches += batches[:5]  # five messages delivered twice (as separate SQS messages)
    for batch in batches:
        for item in batch:
            item.pop("number", None)
    assert sum(len(b) for b in batches) == 1000
    send_event_batches(sqs_client(), queue, batches)
    send_bodies(sqs_client(), queue, [
        "{not json",
        json.dumps({"Type": "Notification", "TopicArn": "arn:x", "Message": "[{broken"}),
        sns_envelope([{"clickId": "c", "customVariables": ["447911100001"]}]),  # no timestamp
    ])

    stats = Consumer(sqs_client(), queue, config=FAST).run(drain=True)

    assert queue_is_empty(queue)
    assert stats.deleted == 103 and stats.left_on_queue == 0
    vault = get_vault()
    with session_scope() as session:
        assert session.scalar(select(func.count(LiveRawEvent.id))) == 1000
        dead = session.scalars(select(DeadLetter).order_by(DeadLetter.id)).all()
        assert len(dead) == 3
        assert {d.error.split(":")[0] for d in dead} == {"the body is not JSON", "the SNS Message is not JSON",
                                                         "event 0"}
        rows = {e.blind_index: e for e in session.scalars(select(LiveEvent))}
        assert len(rows) == len(latest)
        for number, n in latest.items():
            row = rows[vault.index(phone(number))]
            assert row.click_id == f"click-{n}" and row.event_at == BASE + timedelta(seconds=n)
        raw = session.scalars(select(LiveRawEvent).where(LiveRawEvent.number_kind == "token").limit(1)).one()
        assert raw.blind_index is not None and raw.payload["customVariables"][0] == ""  # decrypted, not kept
        assert session.scalar(select(func.count(LiveRawEvent.id)).where(LiveRawEvent.blind_index.is_(None))) > 0
        assert {o.offer_id for o in session.scalars(select(Offer))} == {"offer-0", "offer-1", "offer-2"}


# --- delivery guarantees -------------------------------------------------------------------------------


def test_messages_are_deleted_only_after_the_commit(
    db_url: str, queue: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    send_event_batches(sqs_client(), queue, [[event(1, 1)], [event(2, 2)]])
    config = ConsumerConfig(wait_seconds=1, visibility_timeout=1, idle_initial=0.01, idle_max=0.05, max_receives=3)
    real = live.ingest

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("database is down")

    monkeypatch.setattr(live, "ingest", broken)
    consumer = Consumer(sqs_client(), queue, config=config)
    assert consumer.poll_once() == 2
    assert consumer.stats.deleted == 0 and consumer.stats.left_on_queue == 2
    assert not queue_is_empty(queue)
    with session_scope() as session:
        assert session.scalar(select(func.count(LiveRawEvent.id))) == 0

    monkeypatch.setattr(live, "ingest", real)
    time.sleep(1.2)  # the visibility timeout ends: the messages come back
    stats = Consumer(sqs_client(), queue, config=config).run(drain=True)
    assert stats.deleted == 2 and queue_is_empty(queue)
    with session_scope() as session:
        assert session.scalar(select(func.count(LiveRawEvent.id))) == 2


def test_a_message_that_keeps_failing_is_dead_lettered(
    db_url: str, queue: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    send_event_batches(sqs_client(), queue, [[event(1, 1)]])

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("cannot store this one")

    monkeypatch.setattr(live, "ingest", broken)
    config = ConsumerConfig(wait_seconds=1, visibility_timeout=1, idle_initial=0.01, idle_max=0.05, max_receives=2)
    consumer = Consumer(sqs_client(), queue, config=config)
    consumer.run(max_batches=1)
    time.sleep(1.2)
    consumer.run(max_batches=2)
    assert queue_is_empty(queue)
    with session_scope() as session:
        dead = session.scalars(select(DeadLetter)).one()
        assert dead.receive_count == 2 and "after 2 receives" in dead.error


def test_sqs_errors_back_off_instead_of_crashing(db_url: str, queue: str) -> None:
    missing = queue.rsplit("/", 1)[0] + "/no-such-queue"
    waits: list[float] = []
    consumer = Consumer(sqs_client(), missing, config=FAST, sleep=lambda s: waits.append(s) or (
        consumer.stop() if len(waits) >= 3 else None))
    stats = consumer.run()
    assert stats.errors == 3 and waits == [0.01, 0.02, 0.04]
    with pytest.raises(Exception, match=r"NonExistentQueue|QueueDoesNotExist"):
        Consumer(sqs_client(), missing, config=FAST).run(drain=True)


def test_redelivery_and_late_events(db_url: str) -> None:
    vault = get_vault()
    with session_scope() as session:
        first = live.ingest(session, [("m-1", [event(10, 1), event(5, 1)])], source="sqs")
        assert (first.stored, first.numbers) == (2, 1)
    with session_scope() as session:
        again = live.ingest(session, [("m-1", [event(10, 1), event(5, 1)])], source="sqs")  # the same message
        assert again.stored == 0
        older = live.ingest(session, [("m-2", [event(3, 1)])], source="sqs")  # arrives late, is older
        assert older.stored == 1
    with session_scope() as session:
        row = session.get(LiveEvent, vault.index(phone(1)))
        assert row is not None and row.click_id == "click-10"
        assert session.scalar(select(func.count(LiveRawEvent.id))) == 3


# --- the HTTP endpoint and the CLI ---------------------------------------------------------------------


def test_http_endpoint_takes_the_same_batches(client: Any, users: Any) -> None:
    operator = users.headers("operator")
    url = "/api/voluum/live-events"
    assert client.post(url, content=sns_envelope([event(1, 1)]), headers=users.headers("viewer")).status_code == 403
    answer = client.post(url, content=sns_envelope([event(1, 1), event(2, 2), event(3, None)]), headers=operator)
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"messages": 1, "events": 3, "stored": 3, "with_number": 2, "numbers": 2, "skipped": 1,
                             "dead_letters": 0, "list_changes": 2}  # both clicks' OS lists the numbers
    assert client.post(url, json=[event(4, 4)], headers=operator).json()["events"] == 1
    assert client.post(url, json={"events": [event(5, 5)]}, headers=operator).json()["events"] == 1
    for bad in ("{nope", json.dumps({"events": []}), json.dumps([{"clickId": "x"}])):
        refused = client.post(url, content=bad, headers=operator)
        assert refused.status_code == 422 and refused.json()["error"]["code"] == "malformed_events"
    assert client.post(url, content=b"x" * (live.MAX_BODY * 4 + 1), headers=operator).status_code == 413
    counts = client.get("/api/voluum/live-events/counts", headers=operator).json()
    assert counts["raw_events"] == 5 and counts["numbers"] == 4 and counts["dead_letters"] == 0


def test_cli_consume_drains_the_queue(db_url: str, queue: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    from phoneops.settings import reset_settings_cache
    from phoneops.voluum.cli import app

    monkeypatch.setenv("DATABASE_URL", db_url)
    reset_settings_cache()
    send_event_batches(sqs_client(), queue, [[event(1, 1), event(2, 2)], [event(3, 3)]])
    result = CliRunner().invoke(app, ["consume", "--drain", "--wait", "1"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["deleted"] == 2
    assert queue_is_empty(queue)


def test_consume_without_a_queue_says_what_to_set(db_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    from phoneops.settings import reset_settings_cache
    from phoneops.voluum.cli import app

    monkeypatch.setenv("DATABASE_URL", db_url)
    monkeypatch.delenv("SQS_QUEUE_URL", raising=False)
    reset_settings_cache()
    result = CliRunner().invoke(app, ["consume", "--drain"])
    assert result.exit_code == 1 and "SQS_QUEUE_URL" in result.output


def test_a_republished_sns_message_is_stored_once(client: Any, users: Any) -> None:
    """SNS may publish a message again: it reaches us under a new transport id with the same SNS MessageId."""
    operator = users.headers("operator")
    body = sns_envelope([event(1, 1), event(2, 2)])
    first = client.post("/api/voluum/live-events", content=body, headers=operator).json()
    again = client.post("/api/voluum/live-events", content=body, headers=operator).json()
    assert (first["stored"], again["stored"]) == (2, 0)
    plain = json.dumps([event(3, 3)])  # without an envelope there is no id to dedupe on: each post is new
    assert client.post("/api/voluum/live-events", content=plain, headers=operator).json()["stored"] == 1
    assert client.post("/api/voluum/live-events", content=plain, headers=operator).json()["stored"] == 1
