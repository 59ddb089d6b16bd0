# Over 400 lines: the live-event path end to end: SNS/SQS envelopes, parsing, storing, consuming.
"""Live events: Voluum -> SNS -> SQS, consumed with boto3 (or posted to the HTTP endpoint).

A message body is an SNS envelope whose `Message` is a JSON string holding a list of events (one event object
is tolerated; a bare list or event without the envelope is accepted too). The consumer:

1. long-polls (`WaitTimeSeconds` 20, up to 10 messages, `VisibilityTimeout` 60);
2. reads every message; one that cannot be read is a dead letter;
3. in ONE transaction stores every event raw (its phone value removed from the payload; unique on message id
   and position, so a redelivered message is stored once), upserts the latest event per number (link tokens
   decrypted; several events of one number in a batch are fine: the latest wins), applies the OS rules to
   each number's latest event as tracker verdicts (docs/lists.md), and stores dead letters;
4. deletes the messages only after that commit (the original never deleted them: the queue never drained);
5. backs off when the queue is empty (1 s doubling to 60 s on top of the long poll).

If the batch transaction fails, each message is retried in its own transaction; one that keeps failing is left
on the queue until its receive count reaches `max_receives`, then dead-lettered and deleted. Nothing starts at
import: `phoneops voluum consume` (or `Consumer.run`) starts the loop.
"""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import structlog
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from phoneops.core.db import session_scope, utcnow
from phoneops.core.errors import ProviderNotConfigured, ValidationFailed
from phoneops.core.logging import register_secret
from phoneops.core.security import SYSTEM, Principal
from phoneops.numbers.lists import Authority, Verdict, apply_verdicts
from phoneops.numbers.rules import current_rules
from phoneops.settings import Settings, get_settings
from phoneops.voluum import lookups
from phoneops.voluum.agents import click_verdict
from phoneops.voluum.models import DeadLetter, LiveEvent, LiveRawEvent
from phoneops.voluum.provider import ERASED, PhoneReader, chunks, phone_reader, text
from phoneops.voluum.wire import parse_time

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient

log = structlog.get_logger("phoneops.voluum.live")

MAX_BODY = 256 * 1024  # SQS's own limit on a message
MAX_EVENTS_PER_BATCH = 10_000
LIVE_REASON, LIVE_SOURCE = "OS_VERSION", "VOLUUM_LIVE"
SQS_BATCH = 10


class MalformedMessage(ValueError):
    """A message (or posted batch) that holds no readable events; the text says why."""


# --- reading messages ----------------------------------------------------------------------------------


def parse_body(body: str | bytes) -> list[dict[str, Any]]:
    """The events of a message body: an SNS envelope (its `Message` a JSON string), a list, or one event."""
    if isinstance(body, bytes):
        try:
            body = body.decode("utf-8")
        except UnicodeDecodeError:
            raise MalformedMessage("the body is not UTF-8 text") from None
    if len(body) > MAX_BODY * 4:
        raise MalformedMessage("the body is too large")
    try:
        data: Any = json.loads(body)
    except ValueError as exc:
        raise MalformedMessage(f"the body is not JSON: {exc}") from None
    if isinstance(data, dict) and "Message" in data and ("TopicArn" in data or data.get("Type") == "Notification"):
        inner = data["Message"]
        if isinstance(inner, str):
            try:
                data = json.loads(inner)
            except ValueError as exc:
                raise MalformedMessage(f"the SNS Message is not JSON: {exc}") from None
        else:
            data = inner
    elif isinstance(data, dict) and isinstance(data.get("events"), list):
        data = data["events"]
    events = data if isinstance(data, list) else [data]
    if not events:
        raise MalformedMessage("the message holds no events")
    if len(events) > MAX_EVENTS_PER_BATCH:
        raise MalformedMessage(f"at most {MAX_EVENTS_PER_BATCH} events per message")
    for position, event in enumerate(events):
        problem = event_problem(event)
        if problem:
            raise MalformedMessage(f"event {position}: {problem}")
    return events


def event_problem(event: Any) -> str | None:
    """Why an event cannot be used, or None."""
    if not isinstance(event, dict):
        return "not a JSON object"
    if parse_time(event.get("timestamp")) is None:
        return "no readable `timestamp`"
    variables = event.get("customVariables")
    if variables is not None and not isinstance(variables, list):
        return "`customVariables` is not a list"
    if not any(event.get(k) for k in ("clickId", "campaignId", "offerId")):
        return "no clickId, campaignId or offerId"
    return None


def sns_envelope(events: Sequence[dict[str, Any]] | dict[str, Any], topic_arn: str = "") -> str:
    """An SQS body as SNS delivers it (what Voluum's live feed looks like on the queue)."""
    return json.dumps({
        "Type": "Notification", "MessageId": str(uuid.uuid4()),
        "TopicArn": topic_arn or "arn:aws:sns:eu-west-1:000000000000:voluum-live-events",
        "Message": json.dumps(events), "Timestamp": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z",
        "SignatureVersion": "1", "Signature": "", "SigningCertURL": "", "UnsubscribeURL": "",
    })


def send_bodies(sqs: SQSClient, queue_url: str, bodies: Iterable[str]) -> int:
    """Send message bodies to a queue, ten per call (tests, demos, replays). Returns how many were sent."""
    sent = 0
    for batch in chunks(bodies, SQS_BATCH):
        entries = [{"Id": str(n), "MessageBody": body} for n, body in enumerate(batch)]
        answer = sqs.send_message_batch(QueueUrl=queue_url, Entries=entries)  # type: ignore[arg-type]
        if answer.get("Failed"):
            raise RuntimeError(f"SQS refused {len(answer['Failed'])} messages: {answer['Failed'][0]}")
        sent += len(batch)
    return sent


def send_event_batches(sqs: SQSClient, queue_url: str, batches: Iterable[Sequence[dict[str, Any]]],
                       topic_arn: str = "") -> int:
    """Fill a queue with SNS-wrapped event batches, one message per batch."""
    return send_bodies(sqs, queue_url, (sns_envelope(list(b), topic_arn) for b in batches))


# --- storing events ------------------------------------------------------------------------------------


@dataclass
class IngestResult:
    messages: int = 0
    events: int = 0
    stored: int = 0  # raw events new to the database (a redelivered message adds none)
    with_number: int = 0
    numbers: int = 0  # distinct numbers whose latest event was upserted
    skipped: int = 0  # events without a readable number (kept raw, no latest-event row)
    dead_letters: int = 0
    list_changes: int = 0  # numbers whose list status the events' OS changed
    offer_ids: dict[str, str] = field(default_factory=dict)
    campaign_ids: dict[str, str] = field(default_factory=dict)

    def as_dict(self) -> dict[str, int]:
        data = asdict(self)
        return {k: v for k, v in data.items() if isinstance(v, int)}

    def add(self, other: IngestResult) -> None:
        for key, value in other.as_dict().items():
            setattr(self, key, getattr(self, key) + value)


def _redacted(event: dict[str, Any]) -> dict[str, Any]:
    payload = dict(event)
    variables = payload.get("customVariables")
    if isinstance(variables, list) and variables:
        payload["customVariables"] = ["", *variables[1:]]
    return payload


def ingest(
    session: Session,
    messages: Sequence[tuple[str, Sequence[dict[str, Any]]]],
    *,
    source: str,
    reader: PhoneReader | None = None,
) -> IngestResult:
    """Store (message id, events) pairs: raw rows, then the latest event per number (set-based upsert)."""
    reader = reader or phone_reader()
    reader.exclude_erased(session)
    reader.prime((e.get("customVariables") or [None])[0] for _, events in messages for e in events)
    result = IngestResult(messages=len(messages))
    now = utcnow()
    raw: list[dict[str, Any]] = []
    latest: dict[bytes, dict[str, Any]] = {}
    numbers: dict[bytes, tuple[str, str]] = {}  # index -> (E.164, user agent) of the latest event
    for message_id, events in messages:
        for position, event in enumerate(events):
            result.events += 1
            variables = event.get("customVariables") or []
            value = reader.read(variables[0] if variables else None)
            moment = parse_time(event.get("timestamp"))
            payload = {} if value.kind == ERASED else _redacted(event)  # an erased number's event keeps no trace
            row = {
                "source": source, "message_id": text(message_id, 128), "position": position,
                "click_id": text(event.get("clickId"), 64), "campaign_id": text(event.get("campaignId"), 64),
                "offer_id": text(event.get("offerId"), 64), "event_at": moment, "blind_index": value.index,
                "number_kind": value.kind, "payload": payload, "received_at": now,
            }
            raw.append(row)
            if value.index is None or moment is None:
                result.skipped += 1
                continue
            result.with_number += 1
            current = latest.get(value.index)
            if current is None or moment >= current["event_at"]:
                numbers[value.index] = (value.e164 or "", text(event.get("userAgent"), 1000))
                latest[value.index] = {
                    "blind_index": value.index, "click_id": row["click_id"], "campaign_id": row["campaign_id"],
                    "offer_id": row["offer_id"], "event_at": moment,
                    "country_code": text(event.get("countryCode"), 8), "os": text(event.get("os"), 64),
                    "os_version": text(event.get("osVersion"), 120), "browser": text(event.get("browser"), 120),
                    "ip": text(event.get("ip"), 64), "payload": payload, "updated_at": now,
                }
    for batch in chunks(raw, 2000):
        statement = insert_raw(session).on_conflict_do_nothing(index_elements=["message_id", "position"])
        result.stored += _rowcount(session.execute(statement.returning(LiveRawEvent.id), batch))
    for batch in chunks(sorted(latest.values(), key=lambda r: r["blind_index"]), 2000):
        statement = insert_latest(session)
        columns = {c: statement.excluded[c] for c in batch[0] if c != "blind_index"}
        session.execute(
            statement.on_conflict_do_update(
                index_elements=["blind_index"], set_=columns,
                where=LiveEvent.__table__.c.event_at <= statement.excluded.event_at,
            ),
            batch,
        )
    result.numbers = len(latest)
    result.list_changes = _apply_os_verdicts(session, latest, numbers)
    for row in raw:
        if row["offer_id"]:
            result.offer_ids.setdefault(str(row["offer_id"]), "")
        if row["campaign_id"]:
            result.campaign_ids.setdefault(str(row["campaign_id"]), "")
    return result


def _apply_os_verdicts(
    session: Session, latest: dict[bytes, dict[str, Any]], numbers: dict[bytes, tuple[str, str]]
) -> int:
    """The OS rules on each number's latest event, as tracker verdicts through the number core's precedence
    (docs/lists.md): a live click lists a number as the daily sync would, without waiting for it."""
    rules = current_rules(session)
    verdicts: list[Verdict] = []
    for index, row in latest.items():
        e164, user_agent = numbers.get(index, ("", ""))
        if not e164:
            continue
        os_text = " ".join(part for part in (row["os"], row["os_version"]) if part)
        found = click_verdict(os_text, user_agent, rules)
        if found.status is None:
            continue
        evidence = {"os": found.family, "version": found.version, "os_text": os_text,
                    "browser": row["browser"], "ip": row["ip"], "click_id": row["click_id"],
                    "at": row["event_at"].isoformat()}
        verdicts.append(Verdict(e164, found.status.value, Authority.auto, LIVE_REASON, LIVE_SOURCE, evidence))
    return apply_verdicts(session, SYSTEM, verdicts).changed if verdicts else 0


def insert_raw(session: Session) -> Any:
    from phoneops.voluum.provider import insert_for

    return insert_for(session, LiveRawEvent)


def insert_latest(session: Session) -> Any:
    from phoneops.voluum.provider import insert_for

    return insert_for(session, LiveEvent)


def _rowcount(result: Any) -> int:
    return len(result.fetchall())


def message_key(body: str | bytes, fallback: str) -> str:
    """What makes a message's raw events unique: the SNS MessageId when the body is an SNS envelope (a message
    SNS re-publishes reaches the queue again under a new SQS id, with the same SNS id), else `fallback`."""
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return fallback
    if isinstance(data, dict) and isinstance(data.get("MessageId"), str) and data["MessageId"].strip() and (
            "TopicArn" in data or data.get("Type") == "Notification"):
        return f"sns:{data['MessageId'].strip()}"[:128]
    return fallback


def ingest_body(session: Session, actor: Principal, body: str | bytes) -> IngestResult:
    """The HTTP endpoint: a posted batch (SNS envelope, list, `{"events": [...]}` or one event). A batch that
    cannot be read is refused whole (422) and nothing is stored."""
    try:
        events = parse_body(body)
    except MalformedMessage as exc:
        raise ValidationFailed(f"live events not readable: {exc}", code="malformed_events") from None
    result = ingest(session, [(message_key(body, f"http-{uuid.uuid4()}"), events)], source="http")
    from phoneops.core.audit import audit

    audit(session, actor, "voluum.live.post", None, None, result.as_dict())
    return result


def note_lookups(session: Session, actor: Principal, result: IngestResult) -> None:
    """Offers and campaigns met in a posted batch (after it is committed: a refresh from Voluum that this may
    start then holds no pooled connection)."""
    _note_lookups(session, actor, result)


def _note_lookups(session: Session, actor: Principal, result: IngestResult) -> None:
    try:
        lookups.note_entities(session, actor, offers=result.offer_ids, campaigns=result.campaign_ids)
    except Exception:  # lookups are a nicety; never lose events over them
        log.warning("voluum.live.lookups_failed", exc_info=True)


# --- the SQS consumer ----------------------------------------------------------------------------------


def sqs_client(settings: Settings | None = None) -> SQSClient:
    """A boto3 SQS client from settings (region, optional endpoint such as moto's server, optional keys)."""
    import boto3

    settings = settings or get_settings()
    secret = settings.aws_secret_access_key.get_secret_value() if settings.aws_secret_access_key else None
    register_secret(secret)
    client: SQSClient = boto3.client(
        "sqs", region_name=settings.aws_region, endpoint_url=settings.aws_endpoint_url or None,
        aws_access_key_id=settings.aws_access_key_id or None, aws_secret_access_key=secret,
    )
    return client


def queue_url(settings: Settings | None = None) -> str:
    settings = settings or get_settings()
    if not settings.sqs_queue_url:
        raise ProviderNotConfigured("AWS SQS (live events)", ["SQS_QUEUE_URL", "AWS_REGION"])
    return settings.sqs_queue_url


@dataclass
class ConsumerConfig:
    wait_seconds: int = 20
    visibility_timeout: int = 60
    max_messages: int = 10
    idle_initial: float = 1.0
    idle_max: float = 60.0
    max_receives: int = 5  # a message failing this many times is dead-lettered


@dataclass
class ConsumerStats:
    batches: int = 0
    empty_receives: int = 0
    deleted: int = 0
    left_on_queue: int = 0
    errors: int = 0
    totals: IngestResult = field(default_factory=IngestResult)

    def as_dict(self) -> dict[str, int]:
        return {"batches": self.batches, "empty_receives": self.empty_receives, "deleted": self.deleted,
                "left_on_queue": self.left_on_queue, "errors": self.errors, **self.totals.as_dict()}


class Consumer:
    """Long-polls one queue; `run()` loops until `stop()` (or, with `drain=True`, until a receive is empty)."""

    def __init__(
        self,
        sqs: SQSClient,
        url: str,
        *,
        config: ConsumerConfig | None = None,
        actor: Principal = SYSTEM,
        sleep: Callable[[float], Any] | None = None,
    ) -> None:
        self.sqs, self.url = sqs, url
        self.config = config or ConsumerConfig()
        self.actor = actor
        self.stats = ConsumerStats()
        self._stop = threading.Event()
        self._sleep = sleep or self._stop.wait

    def stop(self) -> None:
        self._stop.set()

    @property
    def stopped(self) -> bool:
        return self._stop.is_set()

    def run(self, *, drain: bool = False, max_batches: int | None = None) -> ConsumerStats:
        """Poll until stopped. An empty receive backs off (doubling up to `idle_max`); so does an SQS error,
        except with `drain=True` (one-off runs), where it is raised."""
        log.info("voluum.live.consumer_start", queue=self.url, drain=drain)
        idle = 0
        while not self._stop.is_set():
            if max_batches is not None and self.stats.batches >= max_batches:
                break
            try:
                received = self.poll_once()
            except Exception as exc:
                if drain:
                    raise
                self.stats.errors += 1
                log.warning("voluum.live.receive_failed", error=f"{type(exc).__name__}: {exc}")
                received = 0
            if received:
                idle = 0
                continue
            idle += 1
            if drain:
                break
            self._sleep(min(self.config.idle_max, self.config.idle_initial * 2 ** (idle - 1)))
        log.info("voluum.live.consumer_stop", **self.stats.as_dict())
        return self.stats

    def poll_once(self) -> int:
        """Receive one batch, store it, delete what was stored. Returns the number of messages received."""
        cfg = self.config
        answer = self.sqs.receive_message(
            QueueUrl=self.url, MaxNumberOfMessages=cfg.max_messages, WaitTimeSeconds=cfg.wait_seconds,
            VisibilityTimeout=cfg.visibility_timeout, MessageSystemAttributeNames=["ApproximateReceiveCount"],
        )
        messages = answer.get("Messages", [])
        if not messages:
            self.stats.empty_receives += 1
            return 0
        self.stats.batches += 1
        good: list[tuple[dict[str, Any], list[dict[str, Any]]]] = []
        bad: list[tuple[dict[str, Any], str]] = []
        for message in messages:
            try:
                good.append((dict(message), parse_body(message.get("Body", ""))))
            except MalformedMessage as exc:
                bad.append((dict(message), str(exc)))
        done = self._store(good, bad)
        self._delete(done)
        self.stats.left_on_queue += len(messages) - len(done)
        return len(messages)

    def _store(self, good: list[tuple[dict[str, Any], list[dict[str, Any]]]],
               bad: list[tuple[dict[str, Any], str]]) -> list[dict[str, Any]]:
        """Store the batch in one transaction; on failure, message by message. Returns the messages to delete."""
        try:
            with session_scope() as session:
                result = ingest(session, [(message_key(m.get("Body", ""), m["MessageId"]), events)
                                         for m, events in good], source="sqs")
                for message, error in bad:
                    session.add(_dead_letter(message, error))
                result.dead_letters = len(bad)
            self.stats.totals.add(result)
            self._lookups(result)
            return [m for m, _ in good] + [m for m, _ in bad]
        except Exception:
            log.warning("voluum.live.batch_failed", messages=len(good) + len(bad), exc_info=True)
        done: list[dict[str, Any]] = []
        for message, events in good:
            try:
                with session_scope() as session:
                    one = ingest(session, [(message_key(message.get("Body", ""), message["MessageId"]), events)],
                                 source="sqs")
                self.stats.totals.add(one)
                done.append(message)
            except Exception as exc:
                count = _receive_count(message)
                log.warning("voluum.live.message_failed", message_id=message.get("MessageId"), receives=count,
                            error=f"{type(exc).__name__}: {exc}")
                if count >= self.config.max_receives:
                    bad.append((message, f"could not be stored after {count} receives: {type(exc).__name__}"))
        for message, error in bad:
            try:
                with session_scope() as session:
                    session.add(_dead_letter(message, error))
                self.stats.totals.dead_letters += 1
                done.append(message)
            except Exception:
                log.warning("voluum.live.dead_letter_failed", message_id=message.get("MessageId"), exc_info=True)
        return done

    def _lookups(self, result: IngestResult) -> None:
        if not (result.offer_ids or result.campaign_ids):
            return
        try:
            with session_scope() as session:
                _note_lookups(session, self.actor, result)
        except Exception:
            log.warning("voluum.live.lookups_failed", exc_info=True)

    def _delete(self, messages: list[dict[str, Any]]) -> None:
        for batch in chunks(messages, SQS_BATCH):
            entries = [{"Id": str(n), "ReceiptHandle": m["ReceiptHandle"]} for n, m in enumerate(batch)]
            answer = self.sqs.delete_message_batch(QueueUrl=self.url, Entries=entries)  # type: ignore[arg-type]
            failed = answer.get("Failed", [])
            self.stats.deleted += len(entries) - len(failed)
            for failure in failed:
                log.warning("voluum.live.delete_failed", entry=failure.get("Id"), code=failure.get("Code"))


def _receive_count(message: dict[str, Any]) -> int:
    attributes = message.get("Attributes") or {}
    try:
        return int(attributes.get("ApproximateReceiveCount", 1))
    except (TypeError, ValueError):
        return 1


def _dead_letter(message: dict[str, Any], error: str) -> DeadLetter:
    body = message.get("Body", "")
    return DeadLetter(source="sqs", message_id=text(message.get("MessageId"), 128),
                      receive_count=_receive_count(message), error=error[:2000],
                      body=body if isinstance(body, str) else repr(body))


def make_consumer(settings: Settings | None = None, **options: Any) -> Consumer:
    settings = settings or get_settings()
    return Consumer(sqs_client(settings), queue_url(settings), **options)


# --- reading -------------------------------------------------------------------------------------------


def counts(session: Session, now: datetime | None = None) -> dict[str, int]:
    now = now or utcnow()
    day_ago = now - timedelta(hours=24)
    return {
        "raw_events": session.scalar(select(func.count(LiveRawEvent.id))) or 0,
        "raw_events_24h": session.scalar(select(func.count(LiveRawEvent.id)).where(LiveRawEvent.received_at >= day_ago))
        or 0,
        "numbers": session.scalar(select(func.count(LiveEvent.blind_index))) or 0,
        "numbers_24h": session.scalar(select(func.count(LiveEvent.blind_index)).where(LiveEvent.event_at >= day_ago))
        or 0,
        "dead_letters": session.scalar(select(func.count(DeadLetter.id))) or 0,
    }


def recent_events(session: Session, limit: int = 50) -> list[LiveEvent]:
    return list(session.scalars(select(LiveEvent).order_by(LiveEvent.event_at.desc()).limit(max(1, min(limit, 500)))))


def dead_letters(session: Session, limit: int = 50) -> list[DeadLetter]:
    return list(session.scalars(select(DeadLetter).order_by(DeadLetter.id.desc()).limit(max(1, min(limit, 500)))))
